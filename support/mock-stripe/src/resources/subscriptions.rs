//! Subscriptions: `POST /v1/subscriptions` (active at once, one item per price),
//! `GET /v1/subscriptions[/{id}]`, `POST /v1/subscriptions/{id}` (metadata, cancel at period
//! end, default payment method), `DELETE /v1/subscriptions/{id}` (cancel now); and the test
//! controls that change a subscription's status.
//!
//! The mock does not charge for the first period: a new subscription is `active` whether or not
//! the customer has a card (Stripe would make a licensed, paid subscription without one
//! `incomplete`, or refuse it).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{apply_metadata, new_metadata, page, previous_attributes, text};
use crate::clock::add_interval;
use crate::error::ApiError;
use crate::form::{Params, param_name};
use crate::ids;
use crate::state::Ctx;

const STATUSES: &[&str] = &[
    "active",
    "canceled",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
];

/// A change a test makes to a subscription, emitted as `customer.subscription.updated`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubscriptionChange {
    pub status: Option<String>,
    pub cancel_at_period_end: Option<bool>,
    pub metadata: Option<Map<String, Value>>,
}

pub(crate) fn create(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.only(&[
        "cancel_at_period_end",
        "collection_method",
        "customer",
        "days_until_due",
        "default_payment_method",
        "description",
        "items",
        "metadata",
        "off_session",
        "payment_behavior",
        "proration_behavior",
    ])?;
    let customer = p.required_str(&["customer"])?.to_owned();
    ctx.find(&customer, "customer", "customer", Some("customer"))?;
    let Some(Value::Array(entries)) = p.get(&["items"]) else {
        return Err(ApiError::missing_param("items"));
    };
    if entries.is_empty() {
        return Err(ApiError::missing_param("items"));
    }
    let id = ids::of(ids::kind::SUBSCRIPTION);
    let now = ctx.now;
    let mut items = Vec::new();
    let mut currency: Option<String> = None;
    let mut period_end: Option<i64> = None;
    for index in 0..entries.len() {
        let i = index.to_string();
        let i = i.as_str();
        p.only_under(&["items", i], &["price", "quantity", "metadata"])?;
        let price_path = ["items", i, "price"];
        let price_id = p.required_str(&price_path)?;
        let price = ctx.find(price_id, "price", "price", Some(&param_name(&price_path)))?;
        let Some(recurring) = price["recurring"].as_object().cloned() else {
            return Err(ApiError::invalid(format!(
                "The price {price_id} is a one-time price; subscriptions take recurring prices."
            ))
            .param(&param_name(&price_path)));
        };
        let code = text(&price, "currency").unwrap_or_default();
        if currency.get_or_insert_with(|| code.clone()) != &code {
            return Err(ApiError::invalid("All items must use the same currency.")
                .param(&param_name(&price_path)));
        }
        let interval = recurring
            .get("interval")
            .and_then(Value::as_str)
            .unwrap_or("month");
        let count = recurring
            .get("interval_count")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        period_end.get_or_insert(add_interval(now, interval, count));
        let metered = recurring.get("usage_type").and_then(Value::as_str) == Some("metered");
        let quantity_path = ["items", i, "quantity"];
        let quantity = p.int(&quantity_path)?;
        if metered && quantity.is_some() {
            return Err(ApiError::invalid(
                "Quantity should not be specified where usage_type is `metered`.",
            )
            .param(&param_name(&quantity_path)));
        }
        let metadata = p
            .string_map(&["items", i, "metadata"])?
            .flatten()
            .unwrap_or_default();
        let item_period_end = add_interval(now, interval, count);
        items.push(json!({
            "id": ids::of(ids::kind::SUBSCRIPTION_ITEM),
            "object": "subscription_item",
            "billing_thresholds": null,
            "created": now,
            "current_period_end": item_period_end,
            "current_period_start": now,
            "discounts": [],
            "metadata": metadata,
            "plan": plan_of(&price),
            "price": price,
            "quantity": if metered { Value::Null } else { json!(quantity.unwrap_or(1)) },
            "subscription": id,
            "tax_rates": [],
        }));
    }
    let default_pm = match p
        .str(&["default_payment_method"])?
        .filter(|s| !s.is_empty())
    {
        Some(pm) => default_payment_method(ctx, pm, &customer)?,
        None => Value::Null,
    };
    let item_count = items.len();
    let subscription = json!({
        "id": id,
        "object": "subscription",
        "application": null,
        "application_fee_percent": null,
        "automatic_tax": { "disabled_reason": null, "enabled": false, "liability": null },
        "billing_cycle_anchor": now,
        "billing_cycle_anchor_config": null,
        "billing_mode": { "flexible": null, "type": "classic", "updated_at": null },
        "billing_schedules": [],
        "billing_thresholds": null,
        "cancel_at": null,
        "cancel_at_period_end": p.bool(&["cancel_at_period_end"])?.unwrap_or(false),
        "canceled_at": null,
        "cancellation_details": { "comment": null, "feedback": null, "reason": null },
        "collection_method": p
            .one_of(&["collection_method"], &["charge_automatically", "send_invoice"])?
            .unwrap_or_else(|| "charge_automatically".into()),
        "created": now,
        "currency": currency,
        "current_period_end": period_end.unwrap_or(now),
        "current_period_start": now,
        "customer": customer,
        "days_until_due": p.int(&["days_until_due"])?,
        "default_payment_method": default_pm,
        "default_source": null,
        "default_tax_rates": [],
        "description": p.str(&["description"])?,
        "discount": null,
        "discounts": [],
        "ended_at": null,
        "invoice_settings": { "account_tax_ids": null, "issuer": { "type": "self" } },
        "items": {
            "object": "list",
            "data": items,
            "has_more": false,
            "total_count": item_count,
            "url": format!("/v1/subscription_items?subscription={id}"),
        },
        "latest_invoice": null,
        "livemode": false,
        "metadata": new_metadata(p)?,
        "next_pending_invoice_item_invoice": null,
        "on_behalf_of": null,
        "pause_collection": null,
        "payment_settings": {
            "payment_method_options": null,
            "payment_method_types": null,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": null,
        "pending_setup_intent": null,
        "pending_update": null,
        "schedule": null,
        "start_date": now,
        "status": "active",
        "test_clock": null,
        "transfer_data": null,
        "trial_end": null,
        "trial_settings": { "end_behavior": { "missing_payment_method": "create_invoice" } },
        "trial_start": null,
    });
    ctx.store.put(subscription.clone());
    ctx.emit("customer.subscription.created", &subscription, None);
    Ok(subscription)
}

/// The legacy `plan` a subscription item carries beside its `price`, with the price's id.
fn plan_of(price: &Value) -> Value {
    let recurring = &price["recurring"];
    json!({
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "aggregate_usage": recurring["aggregate_usage"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": recurring["interval"],
        "interval_count": recurring["interval_count"],
        "livemode": false,
        "metadata": price["metadata"],
        "meter": recurring["meter"],
        "nickname": price["nickname"],
        "product": price["product"],
        "tiers_mode": null,
        "transform_usage": null,
        "trial_period_days": recurring["trial_period_days"],
        "usage_type": recurring["usage_type"],
    })
}

pub(crate) fn list(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.only(&[
        "customer",
        "price",
        "status",
        "limit",
        "starting_after",
        "ending_before",
    ])?;
    let customer = p.str(&["customer"])?.filter(|s| !s.is_empty());
    let price = p.str(&["price"])?.filter(|s| !s.is_empty());
    let mut allowed = STATUSES.to_vec();
    allowed.extend(["all", "ended"]);
    let status = p.one_of(&["status"], &allowed)?;
    let items = ctx
        .store
        .all("subscription")
        .into_iter()
        .filter(|s| customer.is_none_or(|c| s["customer"].as_str() == Some(c)))
        .filter(|s| {
            price.is_none_or(|pr| {
                s["items"]["data"].as_array().is_some_and(|items| {
                    items.iter().any(|i| i["price"]["id"].as_str() == Some(pr))
                })
            })
        })
        .filter(|s| {
            let current = s["status"].as_str().unwrap_or_default();
            // By default Stripe lists the subscriptions that are not canceled.
            match status.as_deref() {
                None => current != "canceled",
                Some("all") => true,
                Some("ended") => current == "canceled" || current == "incomplete_expired",
                Some(wanted) => current == wanted,
            }
        })
        .cloned()
        .collect();
    page(items, p, "/v1/subscriptions")
}

pub(crate) fn update(ctx: &mut Ctx<'_>, p: &Params, id: &str) -> Result<Value, ApiError> {
    p.only(&[
        "cancel_at_period_end",
        "default_payment_method",
        "description",
        "metadata",
        "proration_behavior",
    ])?;
    let old = ctx.find(id, "subscription", "subscription", None)?;
    let mut subscription = old.clone();
    if let Some(cancel) = p.bool(&["cancel_at_period_end"])? {
        subscription["cancel_at_period_end"] = json!(cancel);
        subscription["cancel_at"] = if cancel {
            subscription["current_period_end"].clone()
        } else {
            Value::Null
        };
    }
    if let Some(description) = p.str(&["description"])? {
        subscription["description"] = if description.is_empty() {
            Value::Null
        } else {
            json!(description)
        };
    }
    if let Some(pm) = p.str(&["default_payment_method"])? {
        subscription["default_payment_method"] = if pm.is_empty() {
            Value::Null
        } else {
            let customer = subscription["customer"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            default_payment_method(ctx, pm, &customer)?
        };
    }
    apply_metadata(&mut subscription, p)?;
    save_update(ctx, &old, subscription)
}

/// `default_payment_method`: a payment method of the subscription's customer, as Stripe
/// requires.
fn default_payment_method(ctx: &Ctx<'_>, pm: &str, customer: &str) -> Result<Value, ApiError> {
    let method = ctx.find(
        pm,
        "payment_method",
        "PaymentMethod",
        Some("default_payment_method"),
    )?;
    if method["customer"].as_str() != Some(customer) {
        return Err(ApiError::invalid(format!(
            "The payment method {pm} is not attached to customer {customer}."
        ))
        .param("default_payment_method"));
    }
    Ok(json!(pm))
}

pub(crate) fn cancel(ctx: &mut Ctx<'_>, p: &Params, id: &str) -> Result<Value, ApiError> {
    p.only(&["cancellation_details", "invoice_now", "prorate"])?;
    cancel_now(ctx, id)
}

/// Cancels at once: status `canceled`, `customer.subscription.deleted`.
pub(crate) fn cancel_now(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let mut subscription = ctx.find(id, "subscription", "subscription", None)?;
    if subscription["status"] == "canceled" {
        return Err(ApiError::invalid(format!(
            "No such subscription: '{id}' (it is already canceled)"
        ))
        .code("resource_missing"));
    }
    subscription["status"] = json!("canceled");
    subscription["canceled_at"] = json!(ctx.now);
    subscription["ended_at"] = json!(ctx.now);
    subscription["cancellation_details"]["reason"] = json!("cancellation_requested");
    ctx.store.put(subscription.clone());
    ctx.emit("customer.subscription.deleted", &subscription, None);
    Ok(subscription)
}

/// A test's change to a subscription.
pub(crate) fn change(
    ctx: &mut Ctx<'_>,
    id: &str,
    change: &SubscriptionChange,
) -> Result<Value, ApiError> {
    let old = ctx.find(id, "subscription", "subscription", None)?;
    let mut subscription = old.clone();
    if let Some(status) = &change.status {
        if !STATUSES.contains(&status.as_str()) {
            return Err(ApiError::invalid(format!(
                "Invalid status {status:?}: must be one of {}",
                STATUSES.join(", ")
            )));
        }
        if status == "canceled" {
            return cancel_now(ctx, id);
        }
        subscription["status"] = json!(status);
    }
    if let Some(cancel) = change.cancel_at_period_end {
        subscription["cancel_at_period_end"] = json!(cancel);
        subscription["cancel_at"] = if cancel {
            subscription["current_period_end"].clone()
        } else {
            Value::Null
        };
    }
    if let Some(metadata) = &change.metadata {
        subscription["metadata"] = Value::Object(metadata.clone());
    }
    save_update(ctx, &old, subscription)
}

/// Stores an updated subscription and emits `customer.subscription.updated` if it changed.
pub(crate) fn save_update(
    ctx: &mut Ctx<'_>,
    old: &Value,
    subscription: Value,
) -> Result<Value, ApiError> {
    ctx.store.put(subscription.clone());
    if let Some(previous) = previous_attributes(old, &subscription) {
        ctx.emit(
            "customer.subscription.updated",
            &subscription,
            Some(previous),
        );
    }
    Ok(subscription)
}
