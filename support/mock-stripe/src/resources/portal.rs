//! Customer portal sessions: `POST /v1/billing_portal/sessions`. The session's `url` opens a
//! small page on the mock that lists the customer's cards and invoices and links back to
//! `return_url`.

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::form::Params;
use crate::ids;
use crate::state::Ctx;

pub(crate) fn create(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.only(&[
        "customer",
        "return_url",
        "configuration",
        "locale",
        "on_behalf_of",
    ])?;
    let customer = p.required_str(&["customer"])?.to_owned();
    ctx.find(&customer, "customer", "customer", Some("customer"))?;
    let configuration = match p.str(&["configuration"])?.filter(|c| !c.is_empty()) {
        Some(configuration) if configuration != ctx.store.portal_configuration => {
            return Err(ApiError::no_such(
                "billing portal configuration",
                configuration,
                Some("configuration"),
            ));
        }
        _ => ctx.store.portal_configuration.clone(),
    };
    let id = ids::of(ids::kind::PORTAL_SESSION);
    let session = json!({
        "id": id,
        "object": "billing_portal.session",
        "configuration": configuration,
        "created": ctx.now,
        "customer": customer,
        "flow": null,
        "livemode": false,
        "locale": p.str(&["locale"])?,
        "on_behalf_of": p.str(&["on_behalf_of"])?,
        "return_url": p.str(&["return_url"])?,
        "url": ctx.link(&format!("/billing_portal/{id}")),
    });
    ctx.store.put(session.clone());
    Ok(session)
}
