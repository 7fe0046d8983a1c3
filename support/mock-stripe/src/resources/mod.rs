//! The API's resources, one module each, and what they share: lists with cursor pagination,
//! `expand[]`, metadata updates, `previous_attributes` for update events.
//!
//! Every endpoint is `fn(&mut Ctx, &Params, ...) -> Result<Value, ApiError>`: it reads its
//! parameters, checks them the way Stripe does, changes the store, emits events, and returns the
//! object Stripe would answer with. [`route`] maps method and path to the endpoint.

pub(crate) mod checkout;
pub(crate) mod customers;
pub(crate) mod events;
pub(crate) mod invoices;
pub(crate) mod meters;
pub(crate) mod payment_methods;
pub(crate) mod portal;
pub(crate) mod prices;
pub(crate) mod subscriptions;

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::form::Params;
use crate::state::{Ctx, Store};

/// Runs the endpoint for `method` and `path` (`/v1/...`).
pub(crate) fn route(
    ctx: &mut Ctx<'_>,
    method: &str,
    path: &str,
    p: &Params,
) -> Result<Value, ApiError> {
    let segments: Vec<&str> = path
        .trim_start_matches("/v1/")
        .trim_end_matches('/')
        .split('/')
        .collect();
    match (method, segments.as_slice()) {
        ("POST", ["customers"]) => customers::create(ctx, p),
        ("GET", ["customers"]) => customers::list(ctx, p),
        ("GET", ["customers", id]) => retrieve(ctx, p, id, "customer", "customer"),
        ("POST", ["customers", id]) => customers::update(ctx, p, id),
        ("GET", ["customers", id, "payment_methods"]) => {
            payment_methods::list_for_customer(ctx, p, id)
        }

        ("POST", ["checkout", "sessions"]) => checkout::create(ctx, p),
        ("GET", ["checkout", "sessions"]) => checkout::list(ctx, p),
        ("GET", ["checkout", "sessions", id]) => {
            retrieve(ctx, p, id, "checkout.session", "checkout.session")
        }
        ("GET", ["checkout", "sessions", id, "line_items"]) => checkout::line_items(ctx, p, id),
        ("POST", ["checkout", "sessions", id, "expire"]) => checkout::expire(ctx, p, id),

        ("POST", ["billing_portal", "sessions"]) => portal::create(ctx, p),

        ("POST", ["billing", "meters"]) => meters::create(ctx, p),
        ("GET", ["billing", "meters"]) => meters::list(ctx, p),
        ("GET", ["billing", "meters", id]) => {
            retrieve(ctx, p, id, "billing.meter", "billing.meter")
        }
        ("POST", ["billing", "meters", id, "deactivate"]) => meters::set_active(ctx, p, id, false),
        ("POST", ["billing", "meters", id, "reactivate"]) => meters::set_active(ctx, p, id, true),
        ("GET", ["billing", "meters", id, "event_summaries"]) => {
            meters::event_summaries(ctx, p, id)
        }
        ("POST", ["billing", "meter_events"]) => meters::create_event(ctx, p),

        ("POST", ["products"]) => prices::create_product(ctx, p),
        ("GET", ["products", id]) => prices::retrieve_product(ctx, p, id),
        ("POST", ["prices"]) => prices::create(ctx, p),
        ("GET", ["prices"]) => prices::list(ctx, p),
        ("GET", ["prices", id]) => retrieve(ctx, p, id, "price", "price"),

        ("POST", ["subscriptions"]) => subscriptions::create(ctx, p),
        ("GET", ["subscriptions"]) => subscriptions::list(ctx, p),
        ("GET", ["subscriptions", id]) => retrieve(ctx, p, id, "subscription", "subscription"),
        ("POST", ["subscriptions", id]) => subscriptions::update(ctx, p, id),
        ("DELETE", ["subscriptions", id]) => subscriptions::cancel(ctx, p, id),

        ("GET", ["invoices"]) => invoices::list(ctx, p),
        ("GET", ["invoices", id]) => retrieve(ctx, p, id, "invoice", "invoice"),
        ("GET", ["invoices", id, "lines"]) => invoices::lines(ctx, p, id),

        ("GET", ["payment_methods"]) => payment_methods::list(ctx, p),
        ("GET", ["payment_methods", id]) => retrieve(ctx, p, id, "payment_method", "PaymentMethod"),
        ("POST", ["payment_methods", id, "detach"]) => payment_methods::detach_endpoint(ctx, p, id),

        ("GET", ["events"]) => events::list(ctx, p),
        ("GET", ["events", id]) => retrieve(ctx, p, id, "event", "event"),

        _ => Err(ApiError::unrecognized_url(method, path)),
    }
}

/// `GET /v1/<resources>/<id>`: one stored object of kind `object` (`label` names it in the
/// error when there is none).
fn retrieve(
    ctx: &mut Ctx<'_>,
    p: &Params,
    id: &str,
    object: &str,
    label: &str,
) -> Result<Value, ApiError> {
    p.only(&[])?;
    ctx.find(id, object, label, None)
}

/// A page of `items` (newest first) as a Stripe list object, honouring `limit`,
/// `starting_after` and `ending_before`.
pub(crate) fn page(items: Vec<Value>, p: &Params, url: &str) -> Result<Value, ApiError> {
    let limit = p.int(&["limit"])?.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(
            ApiError::invalid("Invalid limit: must be an integer between 1 and 100").param("limit"),
        );
    }
    let limit = usize::try_from(limit).unwrap_or(10);
    let position = |cursor: &str, param: &str| {
        items
            .iter()
            .position(|item| item.get("id").and_then(Value::as_str) == Some(cursor))
            .ok_or_else(|| ApiError::no_such("object", cursor, Some(param)))
    };
    let (window, has_more) =
        if let Some(cursor) = p.str(&["starting_after"])?.filter(|c| !c.is_empty()) {
            let at = position(cursor, "starting_after")?;
            let rest: Vec<Value> = items.iter().skip(at + 1).cloned().collect();
            let more = rest.len() > limit;
            (rest.into_iter().take(limit).collect::<Vec<_>>(), more)
        } else if let Some(cursor) = p.str(&["ending_before"])?.filter(|c| !c.is_empty()) {
            let at = position(cursor, "ending_before")?;
            let before = &items[..at];
            let start = before.len().saturating_sub(limit);
            (before[start..].to_vec(), start > 0)
        } else {
            let more = items.len() > limit;
            (items.into_iter().take(limit).collect(), more)
        };
    Ok(json!({
        "object": "list",
        "data": window,
        "has_more": has_more,
        "url": url,
    }))
}

/// The `created` filter of list endpoints: `created=<t>` or `created[gt|gte|lt|lte]=<t>`.
pub(crate) fn created_filter(p: &Params) -> Result<impl Fn(&Value) -> bool + use<>, ApiError> {
    p.only_under(&["created"], &["gt", "gte", "lt", "lte"])?;
    let exact = match p.get(&["created"]) {
        Some(Value::String(_)) => p.int(&["created"])?,
        _ => None,
    };
    let gt = p.int(&["created", "gt"])?;
    let gte = p.int(&["created", "gte"])?;
    let lt = p.int(&["created", "lt"])?;
    let lte = p.int(&["created", "lte"])?;
    Ok(move |value: &Value| {
        let created = value["created"].as_i64().unwrap_or(0);
        exact.is_none_or(|t| created == t)
            && gt.is_none_or(|t| created > t)
            && gte.is_none_or(|t| created >= t)
            && lt.is_none_or(|t| created < t)
            && lte.is_none_or(|t| created <= t)
    })
}

/// Replaces the ids at each `expand[]` path with the objects they name, as Stripe does;
/// `data.` paths reach into lists.
pub(crate) fn expand(store: &Store, value: &mut Value, paths: &[String]) -> Result<(), ApiError> {
    for path in paths {
        let segments: Vec<&str> = path.split('.').collect();
        expand_path(store, value, &segments, path)?;
    }
    Ok(())
}

fn expand_path(
    store: &Store,
    node: &mut Value,
    segments: &[&str],
    full: &str,
) -> Result<(), ApiError> {
    let cannot =
        || ApiError::invalid(format!("This property cannot be expanded ({full}).")).param("expand");
    let Some((first, rest)) = segments.split_first() else {
        return Ok(());
    };
    if node.get("object").and_then(Value::as_str) == Some("list") && *first == "data" {
        if let Some(Value::Array(items)) = node.get_mut("data") {
            for item in items {
                expand_path(store, item, rest, full)?;
            }
        }
        return Ok(());
    }
    if node.get("object").and_then(Value::as_str) == Some("checkout.session")
        && *first == "line_items"
        && node.get("line_items").is_none()
    {
        let id = node
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let items = store.checkout_items.get(&id).cloned().unwrap_or_default();
        let total = items.len();
        node["line_items"] = json!({
            "object": "list",
            "data": items,
            "has_more": false,
            "total_count": total,
            "url": format!("/v1/checkout/sessions/{id}/line_items"),
        });
    }
    let Some(field) = node.get_mut(*first) else {
        return Err(cannot());
    };
    if let Value::String(id) = field {
        match store.get(id) {
            Some(object) => *field = object.clone(),
            None => return Err(cannot()),
        }
    }
    match field {
        Value::Null => Ok(()),
        Value::Object(_) if rest.is_empty() => Ok(()),
        Value::Object(_) => expand_path(store, field, rest, full),
        _ => Err(cannot()),
    }
}

/// Applies a `metadata` parameter to `current`: keys set, empty values delete, `metadata=`
/// (empty) clears, as Stripe documents for updates.
pub(crate) fn apply_metadata(current: &mut Value, p: &Params) -> Result<(), ApiError> {
    match p.string_map(&["metadata"])? {
        None => {}
        Some(None) => current["metadata"] = json!({}),
        Some(Some(update)) => {
            let mut merged = current
                .get("metadata")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for (key, value) in update {
                if value.as_str() == Some("") {
                    merged.remove(&key);
                } else {
                    merged.insert(key, value);
                }
            }
            current["metadata"] = Value::Object(merged);
        }
    }
    Ok(())
}

/// The metadata of a create request.
pub(crate) fn new_metadata(p: &Params) -> Result<Value, ApiError> {
    Ok(Value::Object(
        p.string_map(&["metadata"])?.flatten().unwrap_or_default(),
    ))
}

/// `previous_attributes` for an update: the old values of what changed, nested objects
/// reduced to their changed keys.
pub(crate) fn previous_attributes(old: &Value, new: &Value) -> Option<Value> {
    fn diff(old: &Map<String, Value>, new: &Map<String, Value>) -> Map<String, Value> {
        let mut changed = Map::new();
        for (key, old_value) in old {
            let new_value = new.get(key).unwrap_or(&Value::Null);
            if old_value == new_value {
                continue;
            }
            match (old_value, new_value) {
                (Value::Object(o), Value::Object(n)) if key != "metadata" => {
                    changed.insert(key.clone(), Value::Object(diff(o, n)));
                }
                _ => {
                    changed.insert(key.clone(), old_value.clone());
                }
            }
        }
        changed
    }
    let changed = diff(old.as_object()?, new.as_object()?);
    (!changed.is_empty()).then_some(Value::Object(changed))
}

/// A three-letter currency code, lower-cased as Stripe returns it.
pub(crate) fn currency(p: &Params, path: &[&str]) -> Result<Option<String>, ApiError> {
    match p.str(path)? {
        None | Some("") => Ok(None),
        Some(code) if code.len() == 3 && code.chars().all(|c| c.is_ascii_alphabetic()) => {
            Ok(Some(code.to_ascii_lowercase()))
        }
        Some(code) => Err(ApiError::invalid(format!(
            "Invalid currency: {code}. Stripe currencies are three-letter ISO codes."
        ))
        .param(&crate::form::param_name(path))),
    }
}

/// Values of a string-or-null JSON field.
pub(crate) fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_attributes_keep_only_changes() {
        let old = json!({"email": "a", "name": "n", "invoice_settings": {"default_payment_method": null, "footer": null}});
        let new = json!({"email": "b", "name": "n", "invoice_settings": {"default_payment_method": "pm_1", "footer": null}});
        assert_eq!(
            previous_attributes(&old, &new),
            Some(json!({"email": "a", "invoice_settings": {"default_payment_method": null}}))
        );
        assert_eq!(previous_attributes(&old, &old), None);
    }

    #[test]
    fn pages_follow_cursors() {
        let items: Vec<Value> = (0..5).map(|i| json!({"id": format!("x_{i}")})).collect();
        let first = page(items.clone(), &Params::parse(b"limit=2").unwrap(), "/v1/x").unwrap();
        assert_eq!(first["data"], json!([{"id": "x_0"}, {"id": "x_1"}]));
        assert_eq!(first["has_more"], json!(true));
        let next = page(
            items.clone(),
            &Params::parse(b"limit=2&starting_after=x_3").unwrap(),
            "/v1/x",
        )
        .unwrap();
        assert_eq!(next["data"], json!([{"id": "x_4"}]));
        assert_eq!(next["has_more"], json!(false));
        let before = page(
            items,
            &Params::parse(b"limit=2&ending_before=x_3").unwrap(),
            "/v1/x",
        )
        .unwrap();
        assert_eq!(before["data"], json!([{"id": "x_1"}, {"id": "x_2"}]));
        assert_eq!(before["has_more"], json!(true));
    }
}
