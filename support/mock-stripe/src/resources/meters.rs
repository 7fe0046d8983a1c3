//! Billing meters and meter events: `POST/GET /v1/billing/meters`,
//! `POST /v1/billing/meter_events`, `GET /v1/billing/meters/{id}/event_summaries`.
//!
//! Meter events are checked when they arrive (<https://docs.stripe.com/api/billing/meter-event/create>):
//! the event name must name an active meter, the payload must carry the meter's customer key and
//! value key, the timestamp must lie within the past 35 days and at most 5 minutes ahead. An
//! identifier already seen is refused the way Stripe refuses it (400 `invalid_request_error`,
//! "An event already exists with identifier ...", `Stripe-Should-Retry: false`; the wording
//! client code matches on in public Stripe integrations) and is not counted. Stripe promises
//! uniqueness for at least 24 hours; the mock remembers identifiers for its whole life.
//!
//! Two checks are stricter than Stripe's API, by design for tests: the customer must exist
//! (Stripe v1 accepts the event and reports an unknown customer later, asynchronously, through
//! `v1.billing.meter.error_report_triggered`), and the value must be a non-negative integer or
//! decimal.

use std::str::FromStr as _;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::page;
use crate::error::ApiError;
use crate::form::{Params, param_name};
use crate::ids;
use crate::records::{MeterEventRecord, RefusedMeterEvent};
use crate::state::Ctx;

/// How far back a meter event's timestamp may lie.
const MAX_AGE_SECS: i64 = 35 * 86_400;
/// How far ahead it may lie.
const MAX_AHEAD_SECS: i64 = 5 * 60;
const MAX_IDENTIFIER_LEN: usize = 100;

pub(crate) fn create(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.only(&[
        "customer_mapping",
        "default_aggregation",
        "display_name",
        "event_name",
        "event_time_window",
        "value_settings",
    ])?;
    p.only_under(&["customer_mapping"], &["event_payload_key", "type"])?;
    p.only_under(&["default_aggregation"], &["formula"])?;
    p.only_under(&["value_settings"], &["event_payload_key"])?;
    let display_name = p.required_str(&["display_name"])?.to_owned();
    let event_name = p.required_str(&["event_name"])?.to_owned();
    let formula = p
        .one_of(
            &["default_aggregation", "formula"],
            &["count", "last", "sum"],
        )?
        .ok_or_else(|| ApiError::missing_param("default_aggregation[formula]"))?;
    let mapping_type = p
        .one_of(&["customer_mapping", "type"], &["by_id"])?
        .unwrap_or_else(|| "by_id".into());
    let customer_key = p
        .str(&["customer_mapping", "event_payload_key"])?
        .filter(|k| !k.is_empty())
        .unwrap_or("stripe_customer_id")
        .to_owned();
    let value_key = p
        .str(&["value_settings", "event_payload_key"])?
        .filter(|k| !k.is_empty())
        .unwrap_or("value")
        .to_owned();
    let window = p.one_of(&["event_time_window"], &["day", "hour"])?;
    // Assumed: an event name already used by an active meter is refused; Stripe lets only one
    // meter record a given event name.
    if active_meter(ctx, &event_name).is_some() {
        return Err(ApiError::invalid(format!(
            "A meter with event_name {event_name} already exists."
        ))
        .param("event_name"));
    }
    let meter = json!({
        "id": ids::of(ids::kind::METER),
        "object": "billing.meter",
        "created": ctx.now,
        "customer_mapping": { "event_payload_key": customer_key, "type": mapping_type },
        "default_aggregation": { "formula": formula },
        "display_name": display_name,
        "event_name": event_name,
        "event_time_window": window,
        "livemode": false,
        "status": "active",
        "status_transitions": { "deactivated_at": null },
        "updated": ctx.now,
        "value_settings": { "event_payload_key": value_key },
    });
    ctx.store.put(meter.clone());
    ctx.emit("billing.meter.created", &meter, None);
    Ok(meter)
}

pub(crate) fn list(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.only(&["status", "limit", "starting_after", "ending_before"])?;
    let status = p.one_of(&["status"], &["active", "inactive"])?;
    let items = ctx
        .store
        .all("billing.meter")
        .into_iter()
        .filter(|m| {
            status
                .as_ref()
                .is_none_or(|s| m["status"].as_str() == Some(s.as_str()))
        })
        .cloned()
        .collect();
    page(items, p, "/v1/billing/meters")
}

pub(crate) fn set_active(
    ctx: &mut Ctx<'_>,
    p: &Params,
    id: &str,
    active: bool,
) -> Result<Value, ApiError> {
    p.only(&[])?;
    let old = ctx.find(id, "billing.meter", "billing.meter", None)?;
    let mut meter = old.clone();
    meter["status"] = json!(if active { "active" } else { "inactive" });
    meter["status_transitions"]["deactivated_at"] =
        if active { Value::Null } else { json!(ctx.now) };
    meter["updated"] = json!(ctx.now);
    ctx.store.put(meter.clone());
    let event_type = if active {
        "billing.meter.reactivated"
    } else {
        "billing.meter.deactivated"
    };
    ctx.emit(event_type, &meter, super::previous_attributes(&old, &meter));
    Ok(meter)
}

fn active_meter(ctx: &Ctx<'_>, event_name: &str) -> Option<Value> {
    ctx.store
        .all("billing.meter")
        .into_iter()
        .find(|m| m["event_name"].as_str() == Some(event_name) && m["status"] == "active")
        .cloned()
}

/// `POST /v1/billing/meter_events`: every refusal is recorded with its error.
pub(crate) fn create_event(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    match accept_event(ctx, p) {
        Ok(event) => Ok(event),
        Err(error) => {
            let refused = RefusedMeterEvent {
                event_name: p.str(&["event_name"]).ok().flatten().map(str::to_owned),
                identifier: p.str(&["identifier"]).ok().flatten().map(str::to_owned),
                params: p.pairs().to_vec(),
                status: error.status,
                code: error.code.map(str::to_owned),
                message: error.message.clone(),
                at: ctx.now,
            };
            ctx.store.refused_meter_events.push(refused);
            Err(error)
        }
    }
}

fn accept_event(ctx: &mut Ctx<'_>, p: &Params) -> Result<Value, ApiError> {
    p.only(&["event_name", "identifier", "payload", "timestamp"])?;
    let event_name = p.required_str(&["event_name"])?.to_owned();
    let payload = p
        .string_map(&["payload"])?
        .flatten()
        .filter(|payload| !payload.is_empty())
        .ok_or_else(|| ApiError::missing_param("payload"))?;
    let identifier = match p.str(&["identifier"])?.filter(|i| !i.is_empty()) {
        Some(identifier) if identifier.len() > MAX_IDENTIFIER_LEN => {
            return Err(ApiError::invalid(format!(
                "identifier is too long ({} characters, at most {MAX_IDENTIFIER_LEN})",
                identifier.len()
            ))
            .param("identifier"));
        }
        Some(identifier) => identifier.to_owned(),
        None => ids::new("", 32),
    };
    let timestamp = p.int(&["timestamp"])?.unwrap_or(ctx.now);
    let meter = active_meter(ctx, &event_name).ok_or_else(|| {
        ApiError::invalid(format!(
            "No active meter was found for event_name {event_name}."
        ))
        .param("event_name")
    })?;
    let customer_key = meter["customer_mapping"]["event_payload_key"]
        .as_str()
        .unwrap_or("stripe_customer_id");
    let value_key = meter["value_settings"]["event_payload_key"]
        .as_str()
        .unwrap_or("value");
    let formula = meter["default_aggregation"]["formula"]
        .as_str()
        .unwrap_or("sum");
    let customer_param = param_name(&["payload", customer_key]);
    let customer = payload
        .get(customer_key)
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::missing_param(&customer_param))?
        .to_owned();
    ctx.find(&customer, "customer", "customer", Some(&customer_param))?;
    let value_param = param_name(&["payload", value_key]);
    let value_text = match payload.get(value_key).and_then(Value::as_str) {
        Some(text) => text.to_owned(),
        None if formula == "count" => "1".to_owned(),
        None => return Err(ApiError::missing_param(&value_param)),
    };
    parse_value(&value_text).ok_or_else(|| {
        ApiError::invalid(format!(
            "Invalid value {value_text:?}: the value must be a non-negative integer or decimal."
        ))
        .param(&value_param)
    })?;
    if timestamp < ctx.now - MAX_AGE_SECS || timestamp > ctx.now + MAX_AHEAD_SECS {
        return Err(ApiError::invalid(
            "The timestamp must lie within the past 35 calendar days and at most 5 minutes \
             in the future.",
        )
        .param("timestamp"));
    }
    if ctx.store.identifiers.contains(&identifier) {
        return Err(ApiError::invalid(format!(
            "An event already exists with identifier {identifier}."
        ))
        .should_retry(false));
    }
    ctx.store.identifiers.insert(identifier.clone());
    ctx.store.meter_events.push(MeterEventRecord {
        meter: meter["id"].as_str().unwrap_or_default().to_owned(),
        event_name: event_name.clone(),
        identifier: identifier.clone(),
        customer,
        value: value_text,
        timestamp,
        created: ctx.now,
        payload: payload.clone(),
    });
    Ok(json!({
        "object": "billing.meter_event",
        "created": ctx.now,
        "event_name": event_name,
        "identifier": identifier,
        "livemode": false,
        "payload": payload,
        "timestamp": timestamp,
    }))
}

/// A non-negative integer or decimal (`12`, `0.5`), digits only.
fn parse_value(text: &str) -> Option<Decimal> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let valid = !whole.is_empty()
        && digits(whole)
        && digits(fraction)
        && !(text.contains('.') && fraction.is_empty());
    valid.then(|| Decimal::from_str(text).ok()).flatten()
}

/// `GET /v1/billing/meters/{id}/event_summaries`: the customer's accepted events between
/// `start_time` (inclusive) and `end_time` (exclusive), aggregated by the meter's formula, as one
/// summary or one per hour or day (`value_grouping_window`), newest first. Grouped windows with no
/// events are left out (an assumption: the reference does not say).
pub(crate) fn event_summaries(
    ctx: &mut Ctx<'_>,
    p: &Params,
    meter_id: &str,
) -> Result<Value, ApiError> {
    p.only(&[
        "customer",
        "start_time",
        "end_time",
        "value_grouping_window",
        "limit",
        "starting_after",
        "ending_before",
    ])?;
    let meter = ctx.find(meter_id, "billing.meter", "billing.meter", None)?;
    let customer = p.required_str(&["customer"])?.to_owned();
    ctx.find(&customer, "customer", "customer", Some("customer"))?;
    let start = p
        .int(&["start_time"])?
        .ok_or_else(|| ApiError::missing_param("start_time"))?;
    let end = p
        .int(&["end_time"])?
        .ok_or_else(|| ApiError::missing_param("end_time"))?;
    for (name, value) in [("start_time", start), ("end_time", end)] {
        if value % 60 != 0 {
            return Err(ApiError::invalid(format!(
                "{name} must be aligned with minute boundaries."
            ))
            .param(name));
        }
    }
    if end <= start {
        return Err(ApiError::invalid("end_time must be after start_time.").param("end_time"));
    }
    let window = match p
        .one_of(&["value_grouping_window"], &["day", "hour"])?
        .as_deref()
    {
        Some("hour") => Some(3_600),
        Some(_) => Some(86_400),
        None => None,
    };
    let formula = meter["default_aggregation"]["formula"]
        .as_str()
        .unwrap_or("sum")
        .to_owned();
    let mut events: Vec<&MeterEventRecord> = ctx
        .store
        .meter_events
        .iter()
        .filter(|e| e.meter == meter_id && e.customer == customer)
        .filter(|e| e.timestamp >= start && e.timestamp < end)
        .collect();
    events.sort_by_key(|e| (e.timestamp, e.created));
    let mut summaries = Vec::new();
    match window {
        None => summaries.push(summary(meter_id, &customer, start, end, &formula, &events)),
        Some(size) => {
            let mut bucket_start = start.div_euclid(size) * size;
            while bucket_start < end {
                let from = bucket_start.max(start);
                let to = (bucket_start + size).min(end);
                let inside: Vec<&MeterEventRecord> = events
                    .iter()
                    .copied()
                    .filter(|e| e.timestamp >= from && e.timestamp < to)
                    .collect();
                if !inside.is_empty() {
                    summaries.push(summary(meter_id, &customer, from, to, &formula, &inside));
                }
                bucket_start += size;
            }
        }
    }
    summaries.reverse();
    page(
        summaries,
        p,
        &format!("/v1/billing/meters/{meter_id}/event_summaries"),
    )
}

fn summary(
    meter: &str,
    customer: &str,
    start: i64,
    end: i64,
    formula: &str,
    events: &[&MeterEventRecord],
) -> Value {
    let mut values = events.iter().filter_map(|e| parse_value(&e.value));
    let aggregated = match formula {
        "count" => Decimal::from(events.len()),
        "last" => values.next_back().unwrap_or_default(),
        _ => values.sum(),
    };
    let digest = Sha256::digest(format!("{meter}|{customer}|{start}|{end}").as_bytes());
    json!({
        "id": format!("mtrusg_test_{}", &hex::encode(digest)[..40]),
        "object": "billing.meter_event_summary",
        "aggregated_value": number(aggregated),
        "end_time": end,
        "livemode": false,
        "meter": meter,
        "start_time": start,
    })
}

/// A JSON number: an integer when whole, else a float.
fn number(value: Decimal) -> Value {
    let value = value.normalize();
    if value.fract().is_zero()
        && let Some(whole) = value.to_i64()
    {
        return json!(whole);
    }
    value.to_f64().map_or(Value::Null, |f| json!(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_non_negative_numbers() {
        assert_eq!(parse_value("12"), Some(Decimal::from(12)));
        assert_eq!(parse_value("0.5"), Decimal::from_str("0.5").ok());
        for bad in ["", "-1", "1.", ".5", "1e3", "abc", "1.2.3", " 1"] {
            assert_eq!(parse_value(bad), None, "{bad:?}");
        }
        assert_eq!(number(Decimal::from_str("15.000").unwrap()), json!(15));
        assert_eq!(number(Decimal::from_str("1.5").unwrap()), json!(1.5));
    }
}
