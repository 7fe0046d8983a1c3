//! Products and prices: `POST /v1/products`, `POST /v1/prices` (one-time, recurring licensed,
//! recurring metered on a billing meter), retrieval and listing.

use std::str::FromStr as _;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive as _;
use serde_json::{Value, json};

use super::{currency, new_metadata, page};
use crate::error::ApiError;
use crate::form::{Params, param_name};
use crate::ids;
use crate::state::Ctx;

/// A new product, stored (no event).
pub(crate) fn new_product(
    ctx: &mut Ctx<'_>,
    name: &str,
    description: Option<&str>,
    metadata: Value,
) -> Value {
    let product = json!({
        "id": ids::of(ids::kind::PRODUCT),
        "object": "product",
        "active": true,
        "created": ctx.now,
        "default_price": null,
        "description": description,
        "images": [],
        "livemode": false,
        "marketing_features": [],
        "metadata": metadata,
        "name": name,
        "package_dimensions": null,
        "shippable": null,
        "statement_descriptor": null,
        "tax_code": null,
        "type": "service",
        "unit_label": null,
        "updated": ctx.now,
        "url": null,
    });
    ctx.store.put(product.clone());
    product
}

pub(crate) fn create_product(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.only(&[
        "name",
        "description",
        "metadata",
        "active",
        "tax_code",
        "unit_label",
    ])?;
    let name = p.required_str(&["name"])?.to_owned();
    let description = p.str(&["description"])?.map(str::to_owned);
    let product = new_product(ctx, &name, description.as_deref(), new_metadata(p)?);
    ctx.emit("product.created", &product, None);
    Ok(product)
}

pub(crate) fn retrieve_product(ctx: &mut Ctx<'_>, p: &Params, id: &str) -> Result<Value, ApiError> {
    p.only(&[])?;
    ctx.find(id, "product", "product", None)
}

/// `unit_amount` (integer) or `unit_amount_decimal` (up to 12 decimal places) under `path`:
/// exactly one must be given.
fn unit_amount(p: &Params, path: &[&str]) -> Result<Decimal, ApiError> {
    let at = |key: &'static str| {
        let mut full = path.to_vec();
        full.push(key);
        full
    };
    let integer = p.int(&at("unit_amount"))?;
    let decimal = p.str(&at("unit_amount_decimal"))?.filter(|d| !d.is_empty());
    match (integer, decimal) {
        (Some(_), Some(_)) => Err(ApiError::invalid(format!(
            "You may only specify one of these parameters: {}, {}.",
            param_name(&at("unit_amount")),
            param_name(&at("unit_amount_decimal"))
        ))),
        (Some(amount), None) if amount >= 0 => Ok(Decimal::from(amount)),
        (Some(_), None) => Err(ApiError::invalid("unit_amount must be 0 or more")
            .param(&param_name(&at("unit_amount")))),
        (None, Some(text)) => match Decimal::from_str(text) {
            Ok(amount) if amount >= Decimal::ZERO && amount.scale() <= 12 => Ok(amount.normalize()),
            _ => Err(ApiError::invalid(format!(
                "Invalid decimal: {text} (a non-negative number with at most 12 decimal places)"
            ))
            .param(&param_name(&at("unit_amount_decimal")))),
        },
        (None, None) => Err(ApiError::missing_param(&param_name(&at("unit_amount")))),
    }
}

/// The fields a new price is made from.
struct PriceSpec<'a> {
    currency: &'a str,
    amount: Decimal,
    product: &'a str,
    recurring: Option<Value>,
    active: bool,
    metadata: Value,
    nickname: Option<&'a str>,
    lookup_key: Option<&'a str>,
}

fn price_object(ctx: &Ctx<'_>, spec: PriceSpec<'_>) -> Value {
    let whole = spec
        .amount
        .fract()
        .is_zero()
        .then(|| spec.amount.to_i64())
        .flatten();
    let kind = if spec.recurring.is_some() {
        "recurring"
    } else {
        "one_time"
    };
    json!({
        "id": ids::of(ids::kind::PRICE),
        "object": "price",
        "active": spec.active,
        "billing_scheme": "per_unit",
        "created": ctx.now,
        "currency": spec.currency,
        "custom_unit_amount": null,
        "livemode": false,
        "lookup_key": spec.lookup_key,
        "metadata": spec.metadata,
        "nickname": spec.nickname,
        "product": spec.product,
        "recurring": spec.recurring,
        "tax_behavior": "unspecified",
        "tiers_mode": null,
        "transform_quantity": null,
        "type": kind,
        "unit_amount": whole,
        "unit_amount_decimal": spec.amount.to_string(),
    })
}

/// The inactive one-time price behind a Checkout `price_data` entry at `path`.
pub(crate) fn new_inline_price(
    ctx: &mut Ctx<'_>,
    p: &Params,
    path: &[&str],
    currency_code: &str,
    product: &str,
) -> Result<Value, ApiError> {
    let amount = unit_amount(p, path)?;
    let price = price_object(
        ctx,
        PriceSpec {
            currency: currency_code,
            amount,
            product,
            recurring: None,
            active: false,
            metadata: json!({}),
            nickname: None,
            lookup_key: None,
        },
    );
    ctx.store.put(price.clone());
    Ok(price)
}

pub(crate) fn create(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.only(&[
        "active",
        "billing_scheme",
        "currency",
        "lookup_key",
        "metadata",
        "nickname",
        "product",
        "product_data",
        "recurring",
        "tax_behavior",
        "unit_amount",
        "unit_amount_decimal",
    ])?;
    p.only_under(
        &["product_data"],
        &[
            "name",
            "active",
            "metadata",
            "statement_descriptor",
            "tax_code",
            "unit_label",
        ],
    )?;
    p.only_under(
        &["recurring"],
        &[
            "interval",
            "interval_count",
            "usage_type",
            "meter",
            "aggregate_usage",
            "trial_period_days",
        ],
    )?;
    let currency_code =
        currency(p, &["currency"])?.ok_or_else(|| ApiError::missing_param("currency"))?;
    if let Some(scheme) = p.one_of(&["billing_scheme"], &["per_unit", "tiered"])?
        && scheme != "per_unit"
    {
        return Err(
            ApiError::invalid("tollgate-mock-stripe supports per_unit prices only")
                .param("billing_scheme"),
        );
    }
    let amount = unit_amount(p, &[])?;
    let recurring = if p.get(&["recurring"]).is_some() {
        let interval = p
            .one_of(
                &["recurring", "interval"],
                &["day", "week", "month", "year"],
            )?
            .ok_or_else(|| ApiError::missing_param("recurring[interval]"))?;
        let count = p.int(&["recurring", "interval_count"])?.unwrap_or(1);
        if count < 1 {
            return Err(ApiError::invalid("interval_count must be at least 1")
                .param("recurring[interval_count]"));
        }
        let usage_type = p
            .one_of(&["recurring", "usage_type"], &["licensed", "metered"])?
            .unwrap_or_else(|| "licensed".into());
        let meter = p.str(&["recurring", "meter"])?.filter(|m| !m.is_empty());
        if let Some(meter) = meter {
            ctx.find(
                meter,
                "billing.meter",
                "billing.meter",
                Some("recurring[meter]"),
            )?;
            if usage_type != "metered" {
                return Err(ApiError::invalid(
                    "recurring[meter] can only be set with recurring[usage_type]=metered",
                )
                .param("recurring[meter]"));
            }
        }
        Some(json!({
            "aggregate_usage": p.one_of(&["recurring", "aggregate_usage"], &["sum", "last_during_period", "last_ever", "max"])?,
            "interval": interval,
            "interval_count": count,
            "meter": meter,
            "trial_period_days": p.int(&["recurring", "trial_period_days"])?,
            "usage_type": usage_type,
        }))
    } else {
        None
    };
    let product = match p.str(&["product"])?.filter(|s| !s.is_empty()) {
        Some(product) => {
            ctx.find(product, "product", "product", Some("product"))?;
            product.to_owned()
        }
        None if p.get(&["product_data"]).is_some() => {
            let name = p.required_str(&["product_data", "name"])?.to_owned();
            let metadata = Value::Object(
                p.string_map(&["product_data", "metadata"])?
                    .flatten()
                    .unwrap_or_default(),
            );
            let product = new_product(ctx, &name, None, metadata);
            ctx.emit("product.created", &product, None);
            super::text(&product, "id").unwrap_or_default()
        }
        None => return Err(ApiError::missing_param("product")),
    };
    let mut price = price_object(
        ctx,
        PriceSpec {
            currency: &currency_code,
            amount,
            product: &product,
            recurring,
            active: p.bool(&["active"])?.unwrap_or(true),
            metadata: new_metadata(p)?,
            nickname: p.str(&["nickname"])?,
            lookup_key: p.str(&["lookup_key"])?,
        },
    );
    if let Some(behavior) = p.one_of(
        &["tax_behavior"],
        &["exclusive", "inclusive", "unspecified"],
    )? {
        price["tax_behavior"] = json!(behavior);
    }
    ctx.store.put(price.clone());
    ctx.emit("price.created", &price, None);
    Ok(price)
}

pub(crate) fn list(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.only(&[
        "active",
        "currency",
        "product",
        "type",
        "lookup_keys",
        "limit",
        "starting_after",
        "ending_before",
    ])?;
    let active = p.bool(&["active"])?;
    let product = p.str(&["product"])?.filter(|s| !s.is_empty());
    let kind = p.one_of(&["type"], &["one_time", "recurring"])?;
    let currency_code = currency(p, &["currency"])?;
    let lookup_keys = p.strings(&["lookup_keys"])?;
    let items = ctx
        .store
        .all("price")
        .into_iter()
        .filter(|price| active.is_none_or(|a| price["active"] == json!(a)))
        .filter(|price| product.is_none_or(|pr| price["product"].as_str() == Some(pr)))
        .filter(|price| {
            kind.as_ref()
                .is_none_or(|k| price["type"].as_str() == Some(k.as_str()))
        })
        .filter(|price| {
            currency_code
                .as_ref()
                .is_none_or(|c| price["currency"].as_str() == Some(c.as_str()))
        })
        .filter(|price| {
            lookup_keys.as_ref().is_none_or(|keys| {
                price["lookup_key"]
                    .as_str()
                    .is_some_and(|key| keys.iter().any(|k| k == key))
            })
        })
        .cloned()
        .collect();
    page(items, p, "/v1/prices")
}
