//! Payment methods (cards): `GET /v1/payment_methods[/{id}]`,
//! `GET /v1/customers/{id}/payment_methods`, `POST /v1/payment_methods/{id}/detach`; and the
//! card a completed Checkout Session collects.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::page;
use crate::clock::year_of;
use crate::error::ApiError;
use crate::form::Params;
use crate::ids;
use crate::state::Ctx;

/// The card a test "enters" on the Checkout page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TestCard {
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    /// `None`: three years from now.
    pub exp_year: Option<i64>,
    pub funding: String,
    pub country: String,
}

impl Default for TestCard {
    fn default() -> Self {
        TestCard {
            brand: "visa".into(),
            last4: "4242".into(),
            exp_month: 12,
            exp_year: None,
            funding: "credit".into(),
            country: "US".into(),
        }
    }
}

/// A new card payment method, attached to `customer` if given, stored (no event).
pub(crate) fn new_card(ctx: &mut Ctx<'_>, customer: Option<&Value>, card: &TestCard) -> Value {
    let exp_year = card.exp_year.unwrap_or_else(|| year_of(ctx.now) + 3);
    let method = json!({
        "id": ids::of(ids::kind::PAYMENT_METHOD),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": {
                "city": null,
                "country": card.country,
                "line1": null,
                "line2": null,
                "postal_code": null,
                "state": null,
            },
            "email": customer.and_then(|c| c.get("email")).cloned().unwrap_or(Value::Null),
            "name": customer.and_then(|c| c.get("name")).cloned().unwrap_or(Value::Null),
            "phone": null,
        },
        "card": {
            "brand": card.brand,
            "checks": {
                "address_line1_check": null,
                "address_postal_code_check": null,
                "cvc_check": "pass",
            },
            "country": card.country,
            "display_brand": card.brand,
            "exp_month": card.exp_month,
            "exp_year": exp_year,
            "fingerprint": ids::new("", 16),
            "funding": card.funding,
            "generated_from": null,
            "last4": card.last4,
            "networks": { "available": [card.brand], "preferred": null },
            "three_d_secure_usage": { "supported": true },
            "wallet": null,
        },
        "created": ctx.now,
        "customer": customer.and_then(|c| c.get("id")).cloned().unwrap_or(Value::Null),
        "livemode": false,
        "metadata": {},
        "type": "card",
    });
    ctx.store.put(method.clone());
    method
}

pub(crate) fn list(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.only(&[
        "customer",
        "type",
        "limit",
        "starting_after",
        "ending_before",
    ])?;
    let customer = p.str(&["customer"])?.filter(|c| !c.is_empty());
    if let Some(customer) = customer {
        ctx.find(customer, "customer", "customer", Some("customer"))?;
    }
    let items = methods(ctx, customer, p.str(&["type"])?);
    page(items, p, "/v1/payment_methods")
}

pub(crate) fn list_for_customer(
    ctx: &mut Ctx<'_>,
    p: &Params,
    customer: &str,
) -> Result<Value, ApiError> {
    p.only(&[
        "type",
        "limit",
        "starting_after",
        "ending_before",
        "allow_redisplay",
    ])?;
    ctx.find(customer, "customer", "customer", None)?;
    let items = methods(ctx, Some(customer), p.str(&["type"])?);
    page(
        items,
        p,
        &format!("/v1/customers/{customer}/payment_methods"),
    )
}

fn methods(ctx: &Ctx<'_>, customer: Option<&str>, kind: Option<&str>) -> Vec<Value> {
    ctx.store
        .all("payment_method")
        .into_iter()
        .filter(|m| customer.is_none_or(|c| m["customer"].as_str() == Some(c)))
        .filter(|m| kind.is_none_or(|k| k.is_empty() || m["type"].as_str() == Some(k)))
        .cloned()
        .collect()
}

pub(crate) fn detach_endpoint(ctx: &mut Ctx<'_>, p: &Params, id: &str) -> Result<Value, ApiError> {
    p.only(&[])?;
    detach(ctx, id)
}

/// Detaches a payment method from its customer, clearing the customer's default if it was
/// this one; emits `payment_method.detached` (and `customer.updated` for the default).
pub(crate) fn detach(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let mut method = ctx.find(id, "payment_method", "PaymentMethod", None)?;
    let Some(customer_id) = method["customer"].as_str().map(str::to_owned) else {
        return Err(ApiError::invalid(format!(
            "The payment method {id} is not attached to a customer, so it cannot be detached."
        )));
    };
    method["customer"] = Value::Null;
    ctx.store.put(method.clone());
    ctx.emit(
        "payment_method.detached",
        &method,
        Some(json!({ "customer": customer_id })),
    );
    if let Some(old) = ctx.store.typed(&customer_id, "customer").cloned()
        && old["invoice_settings"]["default_payment_method"].as_str() == Some(id)
    {
        let mut customer = old;
        customer["invoice_settings"]["default_payment_method"] = Value::Null;
        ctx.store.put(customer.clone());
        ctx.emit(
            "customer.updated",
            &customer,
            Some(json!({ "invoice_settings": { "default_payment_method": id } })),
        );
    }
    Ok(method)
}
