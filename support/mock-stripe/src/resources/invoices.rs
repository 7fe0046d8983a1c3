//! Invoices: `GET /v1/invoices[/{id}[/lines]]`; and the test controls that stand in for
//! Stripe's billing cycle: create (draft, then finalized to `open`), pay, fail a payment, mark
//! uncollectible, void.
//!
//! Events follow Stripe's: `invoice.created` (draft), `invoice.finalized` (open), `invoice.paid`
//! and `invoice.payment_succeeded`, `invoice.payment_failed` (the invoice stays open and its
//! subscription, if active, becomes `past_due`), `invoice.marked_uncollectible`,
//! `invoice.voided`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::subscriptions::save_update;
use super::{created_filter, page, text};
use crate::error::ApiError;
use crate::form::Params;
use crate::ids;
use crate::state::Ctx;

/// An invoice a test creates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InvoiceSpec {
    pub customer: String,
    /// In the currency's smallest unit.
    pub amount_due: i64,
    /// Defaults to the subscription's currency, else `usd`.
    pub currency: Option<String>,
    pub subscription: Option<String>,
    pub description: Option<String>,
    /// Default: the subscription's current period, else now.
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    /// Leave it a draft (no `invoice.finalized`).
    pub draft: bool,
}

pub(crate) fn list(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.only(&[
        "collection_method",
        "created",
        "customer",
        "ending_before",
        "limit",
        "starting_after",
        "status",
        "subscription",
    ])?;
    let customer = p.str(&["customer"])?.filter(|s| !s.is_empty());
    let subscription = p.str(&["subscription"])?.filter(|s| !s.is_empty());
    let status = p.one_of(
        &["status"],
        &["draft", "open", "paid", "uncollectible", "void"],
    )?;
    let method = p.one_of(
        &["collection_method"],
        &["charge_automatically", "send_invoice"],
    )?;
    let created = created_filter(p)?;
    let items = ctx
        .store
        .all("invoice")
        .into_iter()
        .filter(|i| created(i))
        .filter(|i| {
            method
                .as_ref()
                .is_none_or(|m| i["collection_method"].as_str() == Some(m.as_str()))
        })
        .filter(|i| customer.is_none_or(|c| i["customer"].as_str() == Some(c)))
        .filter(|i| subscription.is_none_or(|s| i["subscription"].as_str() == Some(s)))
        .filter(|i| {
            status
                .as_ref()
                .is_none_or(|s| i["status"].as_str() == Some(s.as_str()))
        })
        .cloned()
        .collect();
    page(items, p, "/v1/invoices")
}

pub(crate) fn lines(ctx: &mut Ctx<'_>, p: &Params, id: &str) -> Result<Value, ApiError> {
    p.only(&["limit", "starting_after", "ending_before"])?;
    let invoice = ctx.find(id, "invoice", "invoice", None)?;
    let items = invoice["lines"]["data"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    page(items, p, &format!("/v1/invoices/{id}/lines"))
}

pub(crate) fn create(ctx: &mut Ctx<'_>, spec: &InvoiceSpec) -> Result<Value, ApiError> {
    let customer = ctx.find(&spec.customer, "customer", "customer", Some("customer"))?;
    if spec.amount_due < 0 {
        return Err(ApiError::invalid("amount_due must be 0 or more").param("amount_due"));
    }
    let subscription = match &spec.subscription {
        Some(id) => Some(ctx.find(id, "subscription", "subscription", Some("subscription"))?),
        None => None,
    };
    if let Some(subscription) = &subscription
        && subscription["customer"] != customer["id"]
    {
        return Err(
            ApiError::invalid("The subscription belongs to another customer.")
                .param("subscription"),
        );
    }
    let currency = spec
        .currency
        .clone()
        .map(|c| c.to_ascii_lowercase())
        .or_else(|| subscription.as_ref().and_then(|s| text(s, "currency")))
        .unwrap_or_else(|| "usd".into());
    let now = ctx.now;
    let period_start = spec
        .period_start
        .or_else(|| {
            subscription
                .as_ref()
                .and_then(|s| s["current_period_start"].as_i64())
        })
        .unwrap_or(now);
    let period_end = spec
        .period_end
        .or_else(|| {
            subscription
                .as_ref()
                .and_then(|s| s["current_period_end"].as_i64())
        })
        .unwrap_or(now);
    let id = ids::of(ids::kind::INVOICE);
    let amount = spec.amount_due;
    let subscription_id = subscription.as_ref().map(|s| s["id"].clone());
    let line = json!({
        "id": ids::of(ids::kind::INVOICE_LINE),
        "object": "line_item",
        "amount": amount,
        "amount_excluding_tax": amount,
        "currency": currency,
        "description": spec.description,
        "discount_amounts": [],
        "discountable": true,
        "discounts": [],
        "invoice": id,
        "livemode": false,
        "metadata": {},
        "period": { "end": period_end, "start": period_start },
        "plan": null,
        "price": null,
        "proration": false,
        "proration_details": { "credited_items": null },
        "quantity": 1,
        "subtotal": amount,
        "subscription": subscription_id,
        "subscription_item": null,
        "tax_amounts": [],
        "tax_rates": [],
        "type": if subscription.is_some() { "subscription" } else { "invoiceitem" },
        "unit_amount_excluding_tax": amount.to_string(),
    });
    let mut invoice = json!({
        "id": id,
        "object": "invoice",
        "account_country": "US",
        "account_name": ctx.config.account_name,
        "account_tax_ids": null,
        "amount_due": amount,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": amount,
        "amount_shipping": 0,
        "application": null,
        "application_fee_amount": null,
        "attempt_count": 0,
        "attempted": false,
        "auto_advance": true,
        "automatic_tax": { "enabled": false, "liability": null, "status": null },
        "billing_reason": if subscription.is_some() { "subscription_cycle" } else { "manual" },
        "charge": null,
        "collection_method": "charge_automatically",
        "created": now,
        "currency": currency,
        "custom_fields": null,
        "customer": customer["id"],
        "customer_address": customer["address"],
        "customer_email": customer["email"],
        "customer_name": customer["name"],
        "customer_phone": customer["phone"],
        "customer_shipping": null,
        "customer_tax_exempt": customer["tax_exempt"],
        "customer_tax_ids": [],
        "default_payment_method": null,
        "default_source": null,
        "default_tax_rates": [],
        "description": spec.description,
        "discount": null,
        "discounts": [],
        "due_date": null,
        "effective_at": null,
        "ending_balance": null,
        "footer": null,
        "from_invoice": null,
        "hosted_invoice_url": null,
        "invoice_pdf": null,
        "issuer": { "type": "self" },
        "last_finalization_error": null,
        "latest_revision": null,
        "lines": {
            "object": "list",
            "data": [line],
            "has_more": false,
            "total_count": 1,
            "url": format!("/v1/invoices/{id}/lines"),
        },
        "livemode": false,
        "metadata": {},
        "next_payment_attempt": null,
        "number": null,
        "on_behalf_of": null,
        "paid": false,
        "paid_out_of_band": false,
        "payment_intent": null,
        "payment_settings": {
            "default_mandate": null,
            "payment_method_options": null,
            "payment_method_types": null,
        },
        "period_end": period_end,
        "period_start": period_start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "quote": null,
        "receipt_number": null,
        "rendering": null,
        "shipping_cost": null,
        "shipping_details": null,
        "starting_balance": 0,
        "statement_descriptor": null,
        "status": "draft",
        "status_transitions": {
            "finalized_at": null,
            "marked_uncollectible_at": null,
            "paid_at": null,
            "voided_at": null,
        },
        "subscription": subscription_id,
        "subscription_details": { "metadata": subscription.as_ref().map(|s| s["metadata"].clone()) },
        "subtotal": amount,
        "subtotal_excluding_tax": amount,
        "tax": null,
        "test_clock": null,
        "total": amount,
        "total_discount_amounts": [],
        "total_excluding_tax": amount,
        "total_tax_amounts": [],
        "transfer_data": null,
        "webhooks_delivered_at": null,
    });
    ctx.store.put(invoice.clone());
    ctx.emit("invoice.created", &invoice, None);
    if let Some(old) = subscription {
        let mut updated = old.clone();
        updated["latest_invoice"] = json!(id);
        ctx.store.put(updated);
    }
    if spec.draft {
        return Ok(invoice);
    }
    // Finalize: number it after the customer's prefix and sequence, link the hosted pages.
    let mut customer = customer;
    let sequence = customer["next_invoice_sequence"].as_i64().unwrap_or(1);
    customer["next_invoice_sequence"] = json!(sequence + 1);
    ctx.store.put(customer.clone());
    invoice["number"] = json!(format!(
        "{}-{sequence:04}",
        customer["invoice_prefix"].as_str().unwrap_or("MOCK")
    ));
    invoice["status"] = json!("open");
    invoice["effective_at"] = json!(now);
    invoice["ending_balance"] = json!(0);
    invoice["status_transitions"]["finalized_at"] = json!(now);
    invoice["hosted_invoice_url"] = json!(ctx.link(&format!("/invoices/{id}")));
    invoice["invoice_pdf"] = json!(ctx.link(&format!("/invoices/{id}/pdf")));
    if amount > 0 {
        invoice["next_payment_attempt"] = json!(now + 3_600);
    }
    ctx.store.put(invoice.clone());
    ctx.emit("invoice.finalized", &invoice, None);
    Ok(invoice)
}

fn open_invoice(ctx: &Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let invoice = ctx.find(id, "invoice", "invoice", None)?;
    if invoice["status"] != "open" {
        return Err(ApiError::invalid(format!(
            "Invoice {id} is {}, not open.",
            invoice["status"].as_str().unwrap_or("unknown")
        )));
    }
    Ok(invoice)
}

/// Pays an open invoice; a `past_due` subscription becomes `active` again.
pub(crate) fn pay(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let mut invoice = open_invoice(ctx, id)?;
    let amount = invoice["amount_due"].as_i64().unwrap_or(0);
    invoice["status"] = json!("paid");
    invoice["paid"] = json!(true);
    invoice["amount_paid"] = json!(amount);
    invoice["amount_remaining"] = json!(0);
    invoice["attempted"] = json!(true);
    invoice["attempt_count"] = json!(invoice["attempt_count"].as_i64().unwrap_or(0) + 1);
    invoice["next_payment_attempt"] = Value::Null;
    invoice["status_transitions"]["paid_at"] = json!(ctx.now);
    ctx.store.put(invoice.clone());
    ctx.emit("invoice.paid", &invoice, None);
    ctx.emit("invoice.payment_succeeded", &invoice, None);
    set_subscription_status(ctx, &invoice, "past_due", "active")?;
    Ok(invoice)
}

/// Fails a payment attempt: the invoice stays open with a later retry, and an `active`
/// subscription becomes `past_due`.
pub(crate) fn fail_payment(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let mut invoice = open_invoice(ctx, id)?;
    invoice["attempted"] = json!(true);
    invoice["attempt_count"] = json!(invoice["attempt_count"].as_i64().unwrap_or(0) + 1);
    invoice["next_payment_attempt"] = json!(ctx.now + 3 * 86_400);
    ctx.store.put(invoice.clone());
    ctx.emit("invoice.payment_failed", &invoice, None);
    set_subscription_status(ctx, &invoice, "active", "past_due")?;
    Ok(invoice)
}

pub(crate) fn mark_uncollectible(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let mut invoice = open_invoice(ctx, id)?;
    invoice["status"] = json!("uncollectible");
    invoice["next_payment_attempt"] = Value::Null;
    invoice["status_transitions"]["marked_uncollectible_at"] = json!(ctx.now);
    ctx.store.put(invoice.clone());
    ctx.emit("invoice.marked_uncollectible", &invoice, None);
    Ok(invoice)
}

pub(crate) fn void(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let mut invoice = open_invoice(ctx, id)?;
    invoice["status"] = json!("void");
    invoice["amount_remaining"] = json!(0);
    invoice["next_payment_attempt"] = Value::Null;
    invoice["status_transitions"]["voided_at"] = json!(ctx.now);
    ctx.store.put(invoice.clone());
    ctx.emit("invoice.voided", &invoice, None);
    Ok(invoice)
}

fn set_subscription_status(
    ctx: &mut Ctx<'_>,
    invoice: &Value,
    from: &str,
    to: &str,
) -> Result<(), ApiError> {
    let Some(id) = invoice["subscription"].as_str() else {
        return Ok(());
    };
    let Some(old) = ctx.store.typed(id, "subscription").cloned() else {
        return Ok(());
    };
    if old["status"] != from {
        return Ok(());
    }
    let mut subscription = old.clone();
    subscription["status"] = json!(to);
    save_update(ctx, &old, subscription)?;
    Ok(())
}
