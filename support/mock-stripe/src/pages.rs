//! The pages behind the links the API hands out, small enough for a browser test to click
//! through: the Checkout page (`url` of a Checkout Session) with a button that completes the
//! session and redirects to its `success_url`; the customer portal (`url` of a portal session);
//! the hosted invoice page and its PDF.

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};
use serde_json::Value;

use crate::control;
use crate::resources::payment_methods::TestCard;
use crate::state::State;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: u16, title: &str, body: &str) -> HttpResponse {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}\
         button{{font-size:1rem;padding:.6rem 1.4rem}}table{{border-collapse:collapse}}\
         td,th{{padding:.2rem .6rem;text-align:left}}</style></head>\
         <body><p><small>tollgate-mock-stripe (test mode)</small></p>{body}</body></html>\n",
        title = escape(title)
    );
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .content_type("text/html; charset=utf-8")
    .body(html)
}

fn money(amount: i64, currency: &str) -> String {
    format!(
        "{}.{:02} {}",
        amount / 100,
        (amount % 100).abs(),
        currency.to_ascii_uppercase()
    )
}

pub(crate) async fn checkout(state: web::Data<State>, id: web::Path<String>) -> HttpResponse {
    let Some(session) = state.read(|store| store.typed(&id, "checkout.session").cloned()) else {
        return page(404, "Not found", "<h1>No such Checkout Session</h1>");
    };
    let status = session["status"].as_str().unwrap_or("unknown");
    if status != "open" {
        return page(
            410,
            "Checkout",
            &format!("<h1>This Checkout Session is {}</h1>", escape(status)),
        );
    }
    let setup = session["mode"] == "setup";
    let heading = if setup {
        "Save a card for future payments".to_owned()
    } else {
        format!(
            "Pay {}",
            money(
                session["amount_total"].as_i64().unwrap_or(0),
                session["currency"].as_str().unwrap_or("usd")
            )
        )
    };
    let items = if setup {
        String::new()
    } else {
        let rows: String = state
            .read(|store| store.checkout_items.get(id.as_str()).cloned())
            .unwrap_or_default()
            .iter()
            .map(|item| {
                format!(
                    "<tr><td>{}</td><td>× {}</td><td>{}</td></tr>",
                    escape(item["description"].as_str().unwrap_or("Item")),
                    item["quantity"],
                    money(
                        item["amount_total"].as_i64().unwrap_or(0),
                        item["currency"].as_str().unwrap_or("usd")
                    )
                )
            })
            .collect();
        format!("<table>{rows}</table>")
    };
    let cancel = session["cancel_url"]
        .as_str()
        .map(|url| format!(" <a id=\"cancel\" href=\"{}\">Cancel</a>", escape(url)))
        .unwrap_or_default();
    let button = if setup { "Save card" } else { "Pay" };
    page(
        200,
        "Checkout",
        &format!(
            "<h1>{heading}</h1>{items}\
             <p>Card: Visa ending in 4242 (test card)</p>\
             <form method=\"post\" action=\"/checkout/{id}/submit\">\
             <button id=\"submit\" type=\"submit\">{button}</button>{cancel}</form>",
            heading = escape(&heading),
            id = escape(&id),
        ),
    )
}

/// The Checkout page's button: completes the session, then sends the browser to `success_url`
/// with `{CHECKOUT_SESSION_ID}` filled in, as Stripe does.
pub(crate) async fn checkout_submit(
    state: web::Data<State>,
    id: web::Path<String>,
) -> HttpResponse {
    match control::complete_checkout(&state, &id, &TestCard::default()) {
        Ok(session) => {
            let target = session["success_url"]
                .as_str()
                .unwrap_or("/")
                .replace("{CHECKOUT_SESSION_ID}", &id);
            HttpResponse::SeeOther()
                .insert_header((LOCATION, target))
                .finish()
        }
        Err(error) => page(
            409,
            "Checkout",
            &format!("<h1>Cannot complete</h1><p>{}</p>", escape(&error.message)),
        ),
    }
}

pub(crate) async fn portal(state: web::Data<State>, id: web::Path<String>) -> HttpResponse {
    let found = state.read(|store| {
        let session = store.typed(&id, "billing_portal.session")?.clone();
        let customer = session["customer"].as_str().unwrap_or_default().to_owned();
        let cards: Vec<Value> = store
            .all("payment_method")
            .into_iter()
            .filter(|m| m["customer"].as_str() == Some(customer.as_str()))
            .cloned()
            .collect();
        let invoices: Vec<Value> = store
            .all("invoice")
            .into_iter()
            .filter(|i| i["customer"].as_str() == Some(customer.as_str()))
            .cloned()
            .collect();
        Some((session, cards, invoices))
    });
    let Some((session, cards, invoices)) = found else {
        return page(404, "Not found", "<h1>No such portal session</h1>");
    };
    let cards: String = cards
        .iter()
        .map(|card| {
            format!(
                "<li>{} ending in {}</li>",
                escape(card["card"]["brand"].as_str().unwrap_or("card")),
                escape(card["card"]["last4"].as_str().unwrap_or("????"))
            )
        })
        .collect();
    let invoices: String = invoices
        .iter()
        .map(|invoice| {
            format!(
                "<li>{} {}: {}</li>",
                escape(invoice["number"].as_str().unwrap_or("draft")),
                money(
                    invoice["amount_due"].as_i64().unwrap_or(0),
                    invoice["currency"].as_str().unwrap_or("usd")
                ),
                escape(invoice["status"].as_str().unwrap_or(""))
            )
        })
        .collect();
    let back = session["return_url"]
        .as_str()
        .map(|url| {
            format!(
                "<p><a id=\"return\" href=\"{}\">Return</a></p>",
                escape(url)
            )
        })
        .unwrap_or_default();
    page(
        200,
        "Billing",
        &format!(
            "<h1>Billing</h1><h2>Payment methods</h2><ul>{cards}</ul>\
             <h2>Invoices</h2><ul>{invoices}</ul>{back}"
        ),
    )
}

pub(crate) async fn invoice(state: web::Data<State>, id: web::Path<String>) -> HttpResponse {
    let Some(invoice) = state.read(|store| store.typed(&id, "invoice").cloned()) else {
        return page(404, "Not found", "<h1>No such invoice</h1>");
    };
    page(
        200,
        "Invoice",
        &format!(
            "<h1>Invoice {}</h1><p>Amount due: {}</p><p>Status: {}</p>\
             <p><a href=\"/invoices/{}/pdf\">Download PDF</a></p>",
            escape(invoice["number"].as_str().unwrap_or("draft")),
            money(
                invoice["amount_due"].as_i64().unwrap_or(0),
                invoice["currency"].as_str().unwrap_or("usd")
            ),
            escape(invoice["status"].as_str().unwrap_or("")),
            escape(&id)
        ),
    )
}

/// A one-page PDF naming the invoice: enough for a download link to fetch a real PDF.
pub(crate) async fn invoice_pdf(state: web::Data<State>, id: web::Path<String>) -> HttpResponse {
    let Some(invoice) = state.read(|store| store.typed(&id, "invoice").cloned()) else {
        return HttpResponse::NotFound().finish();
    };
    let text = format!(
        "Invoice {} - {}",
        invoice["number"].as_str().unwrap_or("draft"),
        money(
            invoice["amount_due"].as_i64().unwrap_or(0),
            invoice["currency"].as_str().unwrap_or("usd")
        )
    )
    .replace(['(', ')', '\\'], "");
    HttpResponse::Ok()
        .content_type("application/pdf")
        .body(minimal_pdf(&text))
}

/// A valid single-page PDF showing one line of text.
fn minimal_pdf(text: &str) -> Vec<u8> {
    let content = format!("BT /F1 18 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_owned(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut pdf = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.push_str(&format!("{} 0 obj\n{object}\nendobj\n", i + 1));
    }
    let xref = pdf.len();
    pdf.push_str(&format!(
        "xref\n0 {}\n0000000000 65535 f \n",
        objects.len() + 1
    ));
    for offset in offsets {
        pdf.push_str(&format!("{offset:010} 00000 n \n"));
    }
    pdf.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    ));
    pdf.into_bytes()
}
