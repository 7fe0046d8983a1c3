//! Events: `GET /v1/events[/{id}]`, the record of everything that happened, as Stripe keeps it
//! for 30 days (the mock, for its whole life).

use serde_json::Value;

use super::{created_filter, page};
use crate::error::ApiError;
use crate::form::Params;
use crate::state::Ctx;

pub(crate) fn list(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.only(&[
        "type",
        "types",
        "limit",
        "starting_after",
        "ending_before",
        "created",
    ])?;
    let single = p.str(&["type"])?.filter(|t| !t.is_empty());
    let several = p.strings(&["types"])?;
    let wanted = |event_type: &str| {
        single.is_none_or(|t| matches_type(t, event_type))
            && several
                .as_ref()
                .is_none_or(|types| types.iter().any(|t| matches_type(t, event_type)))
    };
    let created = created_filter(p)?;
    let items = ctx
        .store
        .all("event")
        .into_iter()
        .filter(|e| created(e))
        .filter(|e| e["type"].as_str().is_some_and(wanted))
        .cloned()
        .collect();
    page(items, p, "/v1/events")
}

/// `invoice.*` matches every invoice event, as Stripe's `type` filter allows.
fn matches_type(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => event_type.starts_with(prefix),
        None => pattern == event_type,
    }
}
