//! Customers: `POST /v1/customers`, `GET /v1/customers[/{id}]`, `POST /v1/customers/{id}`.

use serde_json::{Value, json};

use super::{apply_metadata, created_filter, new_metadata, page, previous_attributes};
use crate::error::ApiError;
use crate::form::Params;
use crate::ids;
use crate::state::Ctx;

/// What an update may change; a new customer may also name a `payment_method` to attach.
const UPDATABLE: &[&str] = &[
    "address",
    "balance",
    "description",
    "email",
    "invoice_prefix",
    "invoice_settings",
    "metadata",
    "name",
    "phone",
    "preferred_locales",
    "tax_exempt",
];

const ADDRESS: &[&str] = &["city", "country", "line1", "line2", "postal_code", "state"];
const INVOICE_SETTINGS: &[&str] = &["default_payment_method", "footer"];

pub(crate) fn create(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    let allowed: Vec<&str> = UPDATABLE
        .iter()
        .copied()
        .chain(["payment_method"])
        .collect();
    p.only(&allowed)?;
    p.only_under(&["address"], ADDRESS)?;
    p.only_under(&["invoice_settings"], INVOICE_SETTINGS)?;
    let id = ids::of(ids::kind::CUSTOMER);
    let mut customer = json!({
        "id": id,
        "object": "customer",
        "address": null,
        "balance": 0,
        "created": ctx.now,
        "currency": null,
        "default_source": null,
        "delinquent": false,
        "description": null,
        "discount": null,
        "email": null,
        "invoice_prefix": ids::hex(8).to_ascii_uppercase(),
        "invoice_settings": {
            "custom_fields": null,
            "default_payment_method": null,
            "footer": null,
            "rendering_options": null,
        },
        "livemode": false,
        "metadata": new_metadata(p)?,
        "name": null,
        "next_invoice_sequence": 1,
        "phone": null,
        "preferred_locales": [],
        "shipping": null,
        "tax_exempt": "none",
        "test_clock": null,
    });
    // A payment method given to attach may also be named the default in the same request.
    let attached = match p.str(&["payment_method"])?.filter(|pm| !pm.is_empty()) {
        Some(pm) => {
            let mut method = ctx.find(
                pm,
                "payment_method",
                "PaymentMethod",
                Some("payment_method"),
            )?;
            if !method["customer"].is_null() {
                return Err(ApiError::invalid(format!(
                    "The payment method {pm} is already attached to a customer."
                ))
                .param("payment_method"));
            }
            method["customer"] = json!(id);
            Some(method)
        }
        None => None,
    };
    apply_fields(ctx, p, &mut customer, attached.as_ref())?;
    ctx.store.put(customer.clone());
    ctx.emit("customer.created", &customer, None);
    if let Some(method) = attached {
        ctx.store.put(method.clone());
        ctx.emit("payment_method.attached", &method, None);
    }
    Ok(customer)
}

pub(crate) fn update(ctx: &mut Ctx<'_>, p: &Params, id: &str) -> Result<Value, ApiError> {
    p.only(UPDATABLE)?;
    p.only_under(&["address"], ADDRESS)?;
    p.only_under(&["invoice_settings"], INVOICE_SETTINGS)?;
    let old = ctx.find(id, "customer", "customer", None)?;
    let mut customer = old.clone();
    apply_fields(ctx, p, &mut customer, None)?;
    apply_metadata(&mut customer, p)?;
    ctx.store.put(customer.clone());
    if let Some(previous) = previous_attributes(&old, &customer) {
        ctx.emit("customer.updated", &customer, Some(previous));
    }
    Ok(customer)
}

pub(crate) fn list(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.only(&[
        "email",
        "limit",
        "starting_after",
        "ending_before",
        "created",
    ])?;
    let email = p.str(&["email"])?;
    let created = created_filter(p)?;
    let items = ctx
        .store
        .all("customer")
        .into_iter()
        .filter(|c| email.is_none_or(|email| c["email"].as_str() == Some(email)))
        .filter(|c| created(c))
        .cloned()
        .collect();
    page(items, p, "/v1/customers")
}

/// Sets the plain fields present in `p`; an empty value clears a field, as in Stripe.
fn apply_fields(
    ctx: &Ctx<'_>,
    p: &Params,
    customer: &mut Value,
    attaching: Option<&Value>,
) -> Result<(), ApiError> {
    for key in ["description", "email", "name", "phone"] {
        if let Some(text) = p.str(&[key])? {
            customer[key] = if text.is_empty() {
                Value::Null
            } else {
                json!(text)
            };
        }
    }
    if let Some(prefix) = p.str(&["invoice_prefix"])?.filter(|t| !t.is_empty()) {
        customer["invoice_prefix"] = json!(prefix);
    }
    if let Some(balance) = p.int(&["balance"])? {
        customer["balance"] = json!(balance);
    }
    if let Some(exempt) = p.one_of(&["tax_exempt"], &["exempt", "none", "reverse"])? {
        customer["tax_exempt"] = json!(exempt);
    }
    if let Some(locales) = p.strings(&["preferred_locales"])? {
        customer["preferred_locales"] = json!(locales);
    }
    if p.get(&["address"]).is_some() {
        let mut address = json!({});
        for key in ADDRESS {
            address[*key] = p.str(&["address", key])?.map_or(Value::Null, |t| json!(t));
        }
        customer["address"] = address;
    }
    if let Some(footer) = p.str(&["invoice_settings", "footer"])? {
        customer["invoice_settings"]["footer"] = if footer.is_empty() {
            Value::Null
        } else {
            json!(footer)
        };
    }
    if let Some(pm) = p.str(&["invoice_settings", "default_payment_method"])? {
        if pm.is_empty() {
            customer["invoice_settings"]["default_payment_method"] = Value::Null;
        } else {
            let param = "invoice_settings[default_payment_method]";
            let method = match attaching {
                Some(method) if method["id"] == json!(pm) => method.clone(),
                _ => ctx.find(pm, "payment_method", "PaymentMethod", Some(param))?,
            };
            if method["customer"] != customer["id"] {
                return Err(ApiError::invalid(format!(
                    "The customer does not have a payment method with the ID {pm}. \
                     The payment method must be attached to the customer."
                ))
                .code("resource_missing")
                .param(param));
            }
            customer["invoice_settings"]["default_payment_method"] = json!(pm);
        }
    }
    Ok(())
}
