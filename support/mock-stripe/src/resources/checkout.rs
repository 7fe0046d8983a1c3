//! Checkout Sessions: `POST /v1/checkout/sessions` in `setup` mode (collect a card for later)
//! and `payment` mode (one-off payments such as prepaid top-ups), retrieval, listing, line
//! items, expiry; and completing a session, which the Checkout page or a test control does.
//!
//! As in Stripe (API 2022-08-01 and later), `setup_intent` and `payment_intent` stay null until
//! the session completes.

use std::str::FromStr as _;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive as _;
use serde_json::{Value, json};

use super::payment_methods::{TestCard, new_card};
use super::prices::{new_inline_price, new_product};
use super::{created_filter, currency, new_metadata, page, text};
use crate::error::ApiError;
use crate::form::{Params, param_name};
use crate::ids;
use crate::state::Ctx;

const DAY: i64 = 86_400;

pub(crate) fn create(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.only(&[
        "allow_promotion_codes",
        "billing_address_collection",
        "cancel_url",
        "client_reference_id",
        "currency",
        "customer",
        "customer_creation",
        "customer_email",
        "expires_at",
        "line_items",
        "locale",
        "metadata",
        "mode",
        "payment_intent_data",
        "payment_method_types",
        "setup_intent_data",
        "submit_type",
        "success_url",
        "ui_mode",
    ])?;
    let mode = p
        .one_of(&["mode"], &["payment", "setup", "subscription"])?
        .ok_or_else(|| ApiError::missing_param("mode"))?;
    if mode == "subscription" {
        return Err(ApiError::invalid(
            "tollgate-mock-stripe supports Checkout in payment and setup mode only",
        )
        .param("mode"));
    }
    if let Some(ui_mode) = p.one_of(&["ui_mode"], &["hosted", "embedded", "custom"])?
        && ui_mode != "hosted"
    {
        return Err(
            ApiError::invalid("tollgate-mock-stripe supports hosted Checkout only")
                .param("ui_mode"),
        );
    }
    let success_url = p.required_str(&["success_url"])?.to_owned();
    let customer_id = p.str(&["customer"])?.filter(|c| !c.is_empty());
    let customer_email = p.str(&["customer_email"])?.filter(|c| !c.is_empty());
    if customer_id.is_some() && customer_email.is_some() {
        return Err(ApiError::invalid(
            "You may only specify one of these parameters: customer, customer_email.",
        ));
    }
    let customer = match customer_id {
        Some(id) => Some(ctx.find(id, "customer", "customer", Some("customer"))?),
        None => None,
    };
    let payment_method_types = p.strings(&["payment_method_types"])?;
    let mut session_currency = currency(p, &["currency"])?;
    let now = ctx.now;
    let expires_at = match p.int(&["expires_at"])? {
        Some(at) if at < now + 30 * 60 || at > now + DAY => {
            return Err(ApiError::invalid(
                "expires_at must be between 30 minutes and 24 hours from now",
            )
            .param("expires_at"));
        }
        Some(at) => at,
        None => now + DAY,
    };
    let id = ids::of(ids::kind::CHECKOUT_SESSION);

    let (amount, items) = if mode == "payment" {
        let (currency_code, amount, items) = read_line_items(ctx, p)?;
        if session_currency
            .as_ref()
            .is_some_and(|c| *c != currency_code)
        {
            return Err(
                ApiError::invalid("currency must match the currency of the line items")
                    .param("currency"),
            );
        }
        session_currency = Some(currency_code);
        (Some(amount), items)
    } else {
        if p.get(&["line_items"]).is_some() {
            return Err(
                ApiError::invalid("line_items cannot be used in setup mode").param("line_items")
            );
        }
        if session_currency.is_none() && payment_method_types.is_none() {
            return Err(ApiError::invalid(
                "currency is required in setup mode when payment_method_types is not set",
            )
            .param("currency"));
        }
        (None, Vec::new())
    };

    let intent_data = intent_data(p, &mode)?;

    let session = json!({
        "id": id,
        "object": "checkout.session",
        "after_expiration": null,
        "allow_promotion_codes": p.bool(&["allow_promotion_codes"])?,
        "amount_subtotal": amount,
        "amount_total": amount,
        "automatic_tax": { "enabled": false, "liability": null, "status": null },
        "billing_address_collection": p.str(&["billing_address_collection"])?,
        "cancel_url": p.str(&["cancel_url"])?,
        "client_reference_id": p.str(&["client_reference_id"])?,
        "client_secret": null,
        "consent": null,
        "consent_collection": null,
        "created": now,
        "currency": session_currency,
        "currency_conversion": null,
        "custom_fields": [],
        "custom_text": {
            "after_submit": null,
            "shipping_address": null,
            "submit": null,
            "terms_of_service_acceptance": null,
        },
        "customer": customer_id,
        "customer_creation": if customer.is_none() && mode == "payment" { json!("if_required") } else { Value::Null },
        "customer_details": customer_email.map(|email| json!({
            "address": null, "email": email, "name": null, "phone": null,
            "tax_exempt": "none", "tax_ids": null,
        })),
        "customer_email": customer_email,
        "expires_at": expires_at,
        "invoice": null,
        "invoice_creation": if mode == "payment" {
            json!({
                "enabled": false,
                "invoice_data": {
                    "account_tax_ids": null, "custom_fields": null, "description": null,
                    "footer": null, "issuer": null, "metadata": {}, "rendering_options": null,
                },
            })
        } else {
            Value::Null
        },
        "livemode": false,
        "locale": p.str(&["locale"])?,
        "metadata": new_metadata(p)?,
        "mode": mode,
        "payment_intent": null,
        "payment_link": null,
        "payment_method_collection": null,
        "payment_method_configuration_details": null,
        "payment_method_options": {},
        "payment_method_types": payment_method_types.unwrap_or_else(|| vec!["card".into()]),
        "payment_status": if mode == "payment" { "unpaid" } else { "no_payment_required" },
        "phone_number_collection": { "enabled": false },
        "recovered_from": null,
        "setup_intent": null,
        "shipping_address_collection": null,
        "shipping_cost": null,
        "shipping_details": null,
        "shipping_options": [],
        "status": "open",
        "submit_type": p.str(&["submit_type"])?,
        "subscription": null,
        "success_url": success_url,
        "total_details": if mode == "payment" {
            json!({ "amount_discount": 0, "amount_shipping": 0, "amount_tax": 0 })
        } else {
            Value::Null
        },
        "ui_mode": "hosted",
        "url": ctx.link(&format!("/checkout/{id}")),
    });
    ctx.store.put(session.clone());
    ctx.store
        .checkout_intent_data
        .insert(id.clone(), intent_data);
    ctx.store.checkout_items.insert(id, items);
    Ok(session)
}

/// `payment_intent_data` (payment mode) or `setup_intent_data` (setup mode): what the intent
/// made on completion carries. The session's own metadata stays on the session, as in Stripe.
fn intent_data(p: &Params, mode: &str) -> Result<Value, ApiError> {
    let (key, other, allowed): (&str, &str, &[&str]) = if mode == "payment" {
        (
            "payment_intent_data",
            "setup_intent_data",
            &[
                "description",
                "metadata",
                "receipt_email",
                "setup_future_usage",
                "statement_descriptor",
                "statement_descriptor_suffix",
            ],
        )
    } else {
        (
            "setup_intent_data",
            "payment_intent_data",
            &["description", "metadata"],
        )
    };
    if p.get(&[other]).is_some() {
        return Err(
            ApiError::invalid(format!("{other} cannot be used in {mode} mode")).param(other),
        );
    }
    p.only_under(&[key], allowed)?;
    Ok(json!({
        "description": p.str(&[key, "description"])?,
        "metadata": p.string_map(&[key, "metadata"])?.flatten().unwrap_or_default(),
        "setup_future_usage": p.one_of(&[key, "setup_future_usage"], &["off_session", "on_session"])?,
    }))
}

/// Reads `line_items`: each either `price` (an existing one-time price) or `price_data`, with a
/// `quantity`. Returns the currency, the total, and the line item objects.
fn read_line_items(ctx: &mut Ctx<'_>, p: &Params) -> Result<(String, i64, Vec<Value>), ApiError> {
    let Some(Value::Array(entries)) = p.get(&["line_items"]) else {
        return Err(ApiError::missing_param("line_items"));
    };
    if entries.is_empty() {
        return Err(ApiError::missing_param("line_items"));
    }
    let mut total = 0i64;
    let mut currency_code: Option<String> = None;
    let mut items = Vec::new();
    for index in 0..entries.len() {
        let i = index.to_string();
        let i = i.as_str();
        p.only_under(&["line_items", i], &["price", "price_data", "quantity"])?;
        p.only_under(
            &["line_items", i, "price_data"],
            &[
                "currency",
                "product",
                "product_data",
                "tax_behavior",
                "unit_amount",
                "unit_amount_decimal",
            ],
        )?;
        p.only_under(
            &["line_items", i, "price_data", "product_data"],
            &["name", "description", "images", "metadata", "tax_code"],
        )?;
        let quantity_path = ["line_items", i, "quantity"];
        let quantity = p
            .int(&quantity_path)?
            .ok_or_else(|| ApiError::missing_param(&param_name(&quantity_path)))?;
        if quantity < 1 {
            return Err(
                ApiError::invalid("quantity must be at least 1").param(&param_name(&quantity_path))
            );
        }
        let price_path = ["line_items", i, "price"];
        let price = match p.str(&price_path)?.filter(|s| !s.is_empty()) {
            Some(price_id) => {
                let param = param_name(&price_path);
                let price = ctx.find(price_id, "price", "price", Some(&param))?;
                if price["type"] != "one_time" {
                    return Err(ApiError::invalid(format!(
                        "The price {price_id} is recurring; payment mode takes one-time prices only."
                    ))
                    .param(&param));
                }
                price
            }
            None => inline_price(ctx, p, &["line_items", i, "price_data"])?,
        };
        let code = text(&price, "currency").unwrap_or_default();
        if currency_code.get_or_insert_with(|| code.clone()) != &code {
            return Err(
                ApiError::invalid("All line items must use the same currency.").param("line_items"),
            );
        }
        let unit = price["unit_amount_decimal"]
            .as_str()
            .and_then(|d| Decimal::from_str(d).ok())
            .unwrap_or_default();
        let amount = (unit * Decimal::from(quantity))
            .round()
            .to_i64()
            .unwrap_or(i64::MAX);
        total = total.saturating_add(amount);
        let description = price["product"]
            .as_str()
            .and_then(|product| ctx.store.get(product))
            .and_then(|product| text(product, "name"));
        items.push(json!({
            "id": ids::of(ids::kind::CHECKOUT_LINE_ITEM),
            "object": "item",
            "amount_discount": 0,
            "amount_subtotal": amount,
            "amount_tax": 0,
            "amount_total": amount,
            "currency": code,
            "description": description,
            "price": price,
            "quantity": quantity,
        }));
    }
    Ok((currency_code.unwrap_or_default(), total, items))
}

/// The price a `price_data` entry describes, stored (inactive, as Stripe keeps such prices).
fn inline_price(ctx: &mut Ctx<'_>, p: &Params, path: &[&str; 3]) -> Result<Value, ApiError> {
    let [items, i, _] = *path;
    if p.get(path).is_none() {
        return Err(ApiError::missing_param(&param_name(&[items, i, "price"])));
    }
    let currency_path = [items, i, "price_data", "currency"];
    let currency_code = currency(p, &currency_path)?
        .ok_or_else(|| ApiError::missing_param(&param_name(&currency_path)))?;
    let product_path = [items, i, "price_data", "product"];
    let product = match p.str(&product_path)?.filter(|s| !s.is_empty()) {
        Some(product) => {
            ctx.find(
                product,
                "product",
                "product",
                Some(&param_name(&product_path)),
            )?;
            product.to_owned()
        }
        None => {
            let name = p
                .required_str(&[items, i, "price_data", "product_data", "name"])?
                .to_owned();
            let description = p
                .str(&[items, i, "price_data", "product_data", "description"])?
                .map(str::to_owned);
            let product = new_product(ctx, &name, description.as_deref(), json!({}));
            text(&product, "id").unwrap_or_default()
        }
    };
    new_inline_price(ctx, p, path, &currency_code, &product)
}

pub(crate) fn list(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.only(&[
        "customer",
        "payment_intent",
        "status",
        "limit",
        "starting_after",
        "ending_before",
        "created",
    ])?;
    let customer = p.str(&["customer"])?.filter(|s| !s.is_empty());
    let intent = p.str(&["payment_intent"])?.filter(|s| !s.is_empty());
    let status = p.one_of(&["status"], &["open", "complete", "expired"])?;
    let created = created_filter(p)?;
    let items = ctx
        .store
        .all("checkout.session")
        .into_iter()
        .filter(|s| created(s))
        .filter(|s| customer.is_none_or(|c| s["customer"].as_str() == Some(c)))
        .filter(|s| intent.is_none_or(|i| s["payment_intent"].as_str() == Some(i)))
        .filter(|s| {
            status
                .as_ref()
                .is_none_or(|st| s["status"].as_str() == Some(st.as_str()))
        })
        .cloned()
        .collect();
    page(items, p, "/v1/checkout/sessions")
}

pub(crate) fn line_items(ctx: &mut Ctx<'_>, p: &Params, id: &str) -> Result<Value, ApiError> {
    p.only(&["limit", "starting_after", "ending_before"])?;
    ctx.find(id, "checkout.session", "checkout.session", None)?;
    let items = ctx
        .store
        .checkout_items
        .get(id)
        .cloned()
        .unwrap_or_default();
    page(items, p, &format!("/v1/checkout/sessions/{id}/line_items"))
}

pub(crate) fn expire(ctx: &mut Ctx<'_>, p: &Params, id: &str) -> Result<Value, ApiError> {
    p.only(&[])?;
    let mut session = ctx.find(id, "checkout.session", "checkout.session", None)?;
    if session["status"] != "open" {
        return Err(ApiError::invalid(format!(
            "Only Checkout Sessions with status open can be expired; {id} is {}.",
            session["status"].as_str().unwrap_or("unknown")
        )));
    }
    session["status"] = json!("expired");
    session["url"] = Value::Null;
    ctx.store.put(session.clone());
    ctx.emit("checkout.session.expired", &session, None);
    Ok(session)
}

/// Completes an open session as if the customer had filled in the page with `card`.
///
/// Setup mode: a card payment method is created and attached to the session's customer (and
/// made its default when configured), a succeeded SetupIntent records it, and
/// `payment_method.attached`, `setup_intent.succeeded`, (`customer.updated`,)
/// `checkout.session.completed` are emitted. Payment mode: a succeeded PaymentIntent for
/// `amount_total` is created (carrying `payment_intent_data`; with `setup_future_usage` the
/// card is also attached to the customer, `payment_method.attached`) and
/// `payment_intent.succeeded`, `checkout.session.completed` (with `payment_status: paid`) are
/// emitted.
pub(crate) fn complete(ctx: &mut Ctx<'_>, id: &str, card: &TestCard) -> Result<Value, ApiError> {
    let mut session = ctx.find(id, "checkout.session", "checkout.session", None)?;
    if session["status"] != "open" {
        return Err(ApiError::invalid(format!(
            "The Checkout Session {id} is {}, not open.",
            session["status"].as_str().unwrap_or("unknown")
        )));
    }
    let customer = match session["customer"].as_str() {
        Some(customer) => ctx.store.typed(customer, "customer").cloned(),
        None => None,
    };
    let email = customer
        .as_ref()
        .and_then(|c| text(c, "email"))
        .or_else(|| text(&session, "customer_email"));
    session["customer_details"] = json!({
        "address": null,
        "email": email,
        "name": customer.as_ref().and_then(|c| text(c, "name")),
        "phone": null,
        "tax_exempt": "none",
        "tax_ids": [],
    });
    session["status"] = json!("complete");
    session["url"] = Value::Null;
    let intent_data = ctx
        .store
        .checkout_intent_data
        .get(id)
        .cloned()
        .unwrap_or_else(
            || json!({ "description": null, "metadata": {}, "setup_future_usage": null }),
        );
    if session["mode"] == "setup" {
        let method = new_card(ctx, customer.as_ref(), card);
        let intent = json!({
            "id": ids::of(ids::kind::SETUP_INTENT),
            "object": "setup_intent",
            "application": null,
            "automatic_payment_methods": null,
            "cancellation_reason": null,
            "client_secret": null,
            "created": ctx.now,
            "customer": session["customer"],
            "description": intent_data["description"],
            "flow_directions": null,
            "last_setup_error": null,
            "latest_attempt": null,
            "livemode": false,
            "mandate": null,
            "metadata": intent_data["metadata"],
            "next_action": null,
            "on_behalf_of": null,
            "payment_method": method["id"],
            "payment_method_configuration_details": null,
            "payment_method_options": {
                "card": { "mandate_options": null, "network": null, "request_three_d_secure": "automatic" },
            },
            "payment_method_types": ["card"],
            "single_use_mandate": null,
            "status": "succeeded",
            "usage": "off_session",
        });
        ctx.store.put(intent.clone());
        session["setup_intent"] = intent["id"].clone();
        ctx.store.put(session.clone());
        if customer.is_some() {
            ctx.emit("payment_method.attached", &method, None);
        }
        ctx.emit("setup_intent.succeeded", &intent, None);
        if let Some(old) = customer
            && ctx.config.checkout_sets_default_payment_method
        {
            let mut updated = old.clone();
            updated["invoice_settings"]["default_payment_method"] = method["id"].clone();
            ctx.store.put(updated.clone());
            if let Some(previous) = super::previous_attributes(&old, &updated) {
                ctx.emit("customer.updated", &updated, Some(previous));
            }
        }
    } else {
        // With setup_future_usage the card is saved on the customer for later payments.
        let saved = customer
            .as_ref()
            .filter(|_| !intent_data["setup_future_usage"].is_null());
        let method = new_card(ctx, saved, card);
        let amount = session["amount_total"].as_i64().unwrap_or(0);
        let intent = json!({
            "id": ids::of(ids::kind::PAYMENT_INTENT),
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": amount,
            "application": null,
            "application_fee_amount": null,
            "automatic_payment_methods": null,
            "canceled_at": null,
            "cancellation_reason": null,
            "capture_method": "automatic",
            "client_secret": null,
            "confirmation_method": "automatic",
            "created": ctx.now,
            "currency": session["currency"],
            "customer": session["customer"],
            "description": intent_data["description"],
            "invoice": null,
            "last_payment_error": null,
            "latest_charge": null,
            "livemode": false,
            "metadata": intent_data["metadata"],
            "next_action": null,
            "on_behalf_of": null,
            "payment_method": method["id"],
            "payment_method_configuration_details": null,
            "payment_method_options": {},
            "payment_method_types": ["card"],
            "processing": null,
            "receipt_email": null,
            "review": null,
            "setup_future_usage": intent_data["setup_future_usage"],
            "shipping": null,
            "source": null,
            "statement_descriptor": null,
            "statement_descriptor_suffix": null,
            "status": "succeeded",
            "transfer_data": null,
            "transfer_group": null,
        });
        ctx.store.put(intent.clone());
        session["payment_intent"] = intent["id"].clone();
        session["payment_status"] = json!("paid");
        ctx.store.put(session.clone());
        if saved.is_some() {
            ctx.emit("payment_method.attached", &method, None);
        }
        ctx.emit("payment_intent.succeeded", &intent, None);
    }
    ctx.emit("checkout.session.completed", &session, None);
    Ok(session)
}
