//! Test controls: what Stripe's dashboard, its billing cycle and the customer's browser would
//! do, and what tests need to read back. Not part of Stripe's API; served under `/_mock/...`
//! (JSON in, JSON out, no API key) and offered as methods of [`crate::MockStripe`].
//!
//! | route | does |
//! |---|---|
//! | `POST /_mock/checkout/{id}/complete` (body: optional [`TestCard`]) | completes a Checkout Session |
//! | `POST /_mock/invoices` ([`InvoiceSpec`]) | creates an invoice (draft, then open) |
//! | `POST /_mock/invoices/{id}/{pay,fail,uncollectible,void}` | moves an invoice on |
//! | `POST /_mock/subscriptions/{id}/update` ([`SubscriptionChange`]) | `customer.subscription.updated` |
//! | `POST /_mock/subscriptions/{id}/cancel` | `customer.subscription.deleted` |
//! | `POST /_mock/payment_methods/{id}/detach` | `payment_method.detached` |
//! | `POST /_mock/events` (`{"type", "object"}`) | emits any event |
//! | `POST /_mock/webhooks/deliver` (`{"events": [ids]}`) | delivers events (again) in this order |
//! | `POST /_mock/webhooks/hold` (`{"hold": bool}`), `POST /_mock/webhooks/release` | holds events back, releases them |
//! | `POST /_mock/webhooks/endpoint` (`{"url", "secret"?, "enabled_events"?}` or `{"url": null}`) | sets the endpoint |
//! | `POST /_mock/failures` (`{"fail_next"?: n, "outage"?: "error500" \| "close_connection" \| null}`), `DELETE /_mock/failures` | failure injection |
//! | `POST /_mock/clock/advance` (`{"seconds": n}`) | moves the mock's clock |
//! | `GET /_mock/requests`, `DELETE /_mock/requests` | the API request log |
//! | `GET /_mock/meter_events` | `{"accepted": [...], "refused": [...]}` |
//! | `GET /_mock/webhooks` | endpoint, held events, pending count, every delivery attempt |
//! | `GET /_mock/events`, `GET /_mock/objects/{id}` | every event (oldest first), any object |

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ControlError};
use crate::records::Outage;
use crate::resources::checkout;
use crate::resources::invoices::{self, InvoiceSpec};
use crate::resources::payment_methods::{self, TestCard};
use crate::resources::subscriptions::{self, SubscriptionChange};
use crate::state::State;
use crate::webhooks::WebhookEndpoint;

pub(crate) fn complete_checkout(
    state: &State,
    id: &str,
    card: &TestCard,
) -> Result<Value, ControlError> {
    Ok(state.run(None, |ctx| checkout::complete(ctx, id, card))?)
}

pub(crate) fn create_invoice(state: &State, spec: &InvoiceSpec) -> Result<Value, ControlError> {
    Ok(state.run(None, |ctx| invoices::create(ctx, spec))?)
}

/// What happens to an open invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InvoiceOutcome {
    Pay,
    Fail,
    Uncollectible,
    Void,
}

pub(crate) fn settle_invoice(
    state: &State,
    id: &str,
    outcome: InvoiceOutcome,
) -> Result<Value, ControlError> {
    Ok(state.run(None, |ctx| match outcome {
        InvoiceOutcome::Pay => invoices::pay(ctx, id),
        InvoiceOutcome::Fail => invoices::fail_payment(ctx, id),
        InvoiceOutcome::Uncollectible => invoices::mark_uncollectible(ctx, id),
        InvoiceOutcome::Void => invoices::void(ctx, id),
    })?)
}

pub(crate) fn update_subscription(
    state: &State,
    id: &str,
    change: &SubscriptionChange,
) -> Result<Value, ControlError> {
    Ok(state.run(None, |ctx| subscriptions::change(ctx, id, change))?)
}

pub(crate) fn cancel_subscription(state: &State, id: &str) -> Result<Value, ControlError> {
    Ok(state.run(None, |ctx| subscriptions::cancel_now(ctx, id))?)
}

pub(crate) fn detach_payment_method(state: &State, id: &str) -> Result<Value, ControlError> {
    Ok(state.run(None, |ctx| payment_methods::detach(ctx, id))?)
}

pub(crate) fn emit_event(state: &State, event_type: &str, object: &Value) -> Value {
    state.run(None, |ctx| ctx.emit(event_type, object, None))
}

/// Delivers stored events in the given order, whether or not they were delivered before.
pub(crate) fn deliver_events(state: &State, ids: &[String]) -> Result<(), ControlError> {
    let events = state.read(|store| {
        ids.iter()
            .map(|id| {
                store
                    .typed(id, "event")
                    .cloned()
                    .ok_or_else(|| ControlError {
                        status: 404,
                        message: format!("No such event: '{id}'"),
                    })
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    state.hub.deliver(&events);
    Ok(())
}

/// Every event, oldest first.
pub(crate) fn events(state: &State) -> Vec<Value> {
    let mut events: Vec<Value> =
        state.read(|store| store.all("event").into_iter().cloned().collect());
    events.reverse();
    events
}

fn reply(result: Result<Value, ControlError>) -> HttpResponse {
    match result {
        Ok(value) => HttpResponse::Ok().json(value),
        Err(error) => HttpResponse::build(
            actix_web::http::StatusCode::from_u16(error.status)
                .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
        )
        .json(json!({ "error": { "message": error.message } })),
    }
}

/// A JSON body, or the default when it is empty.
fn body<T: for<'de> Deserialize<'de> + Default>(bytes: &[u8]) -> Result<T, ControlError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|err| ControlError {
        status: 400,
        message: format!("invalid JSON body: {err}"),
    })
}

pub(crate) fn routes(config: &mut web::ServiceConfig) {
    config
        .route(
            "/_mock/checkout/{id}/complete",
            web::post().to(http_complete_checkout),
        )
        .route("/_mock/invoices", web::post().to(http_create_invoice))
        .route(
            "/_mock/invoices/{id}/{outcome}",
            web::post().to(http_settle_invoice),
        )
        .route(
            "/_mock/subscriptions/{id}/update",
            web::post().to(http_update_subscription),
        )
        .route(
            "/_mock/subscriptions/{id}/cancel",
            web::post().to(http_cancel_subscription),
        )
        .route(
            "/_mock/payment_methods/{id}/detach",
            web::post().to(http_detach),
        )
        .route("/_mock/events", web::post().to(http_emit))
        .route("/_mock/events", web::get().to(http_events))
        .route("/_mock/objects/{id}", web::get().to(http_object))
        .route("/_mock/webhooks", web::get().to(http_webhooks))
        .route("/_mock/webhooks/deliver", web::post().to(http_deliver))
        .route("/_mock/webhooks/hold", web::post().to(http_hold))
        .route("/_mock/webhooks/release", web::post().to(http_release))
        .route("/_mock/webhooks/endpoint", web::post().to(http_endpoint))
        .route("/_mock/failures", web::post().to(http_failures))
        .route("/_mock/failures", web::delete().to(http_clear_failures))
        .route("/_mock/clock/advance", web::post().to(http_advance))
        .route("/_mock/requests", web::get().to(http_requests))
        .route("/_mock/requests", web::delete().to(http_clear_requests))
        .route("/_mock/meter_events", web::get().to(http_meter_events));
}

async fn http_complete_checkout(
    state: web::Data<State>,
    id: web::Path<String>,
    bytes: web::Bytes,
) -> HttpResponse {
    reply(body::<TestCard>(&bytes).and_then(|card| complete_checkout(&state, &id, &card)))
}

async fn http_create_invoice(state: web::Data<State>, bytes: web::Bytes) -> HttpResponse {
    reply(body::<InvoiceSpec>(&bytes).and_then(|spec| create_invoice(&state, &spec)))
}

async fn http_settle_invoice(
    state: web::Data<State>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (id, outcome) = path.into_inner();
    let outcome = match outcome.as_str() {
        "pay" => InvoiceOutcome::Pay,
        "fail" => InvoiceOutcome::Fail,
        "uncollectible" => InvoiceOutcome::Uncollectible,
        "void" => InvoiceOutcome::Void,
        other => {
            return reply(Err(ControlError {
                status: 404,
                message: format!(
                    "unknown invoice action {other:?} (pay, fail, uncollectible, void)"
                ),
            }));
        }
    };
    reply(settle_invoice(&state, &id, outcome))
}

async fn http_update_subscription(
    state: web::Data<State>,
    id: web::Path<String>,
    bytes: web::Bytes,
) -> HttpResponse {
    reply(
        body::<SubscriptionChange>(&bytes)
            .and_then(|change| update_subscription(&state, &id, &change)),
    )
}

async fn http_cancel_subscription(state: web::Data<State>, id: web::Path<String>) -> HttpResponse {
    reply(cancel_subscription(&state, &id))
}

async fn http_detach(state: web::Data<State>, id: web::Path<String>) -> HttpResponse {
    reply(detach_payment_method(&state, &id))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmitBody {
    #[serde(rename = "type")]
    event_type: String,
    object: Value,
}

async fn http_emit(state: web::Data<State>, bytes: web::Bytes) -> HttpResponse {
    reply(body::<EmitBody>(&bytes).and_then(|emit| {
        if emit.event_type.is_empty() {
            return Err(ControlError {
                status: 400,
                message: "type is required".into(),
            });
        }
        Ok(emit_event(&state, &emit.event_type, &emit.object))
    }))
}

async fn http_events(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok().json(events(&state))
}

async fn http_object(state: web::Data<State>, id: web::Path<String>) -> HttpResponse {
    reply(
        state
            .read(|store| store.get(&id).cloned())
            .ok_or_else(|| ControlError::from(ApiError::no_such("object", &id, None))),
    )
}

async fn http_webhooks(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "endpoint": state.hub.endpoint(),
        "held": state.hub.held(),
        "pending": state.hub.pending(),
        "deliveries": state.hub.deliveries(),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliverBody {
    events: Vec<String>,
}

async fn http_deliver(state: web::Data<State>, bytes: web::Bytes) -> HttpResponse {
    reply(
        body::<DeliverBody>(&bytes)
            .and_then(|deliver| deliver_events(&state, &deliver.events))
            .map(|()| json!({ "queued": true })),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    hold: bool,
}

impl Default for HoldBody {
    fn default() -> Self {
        HoldBody { hold: true }
    }
}

async fn http_hold(state: web::Data<State>, bytes: web::Bytes) -> HttpResponse {
    reply(body::<HoldBody>(&bytes).map(|hold| {
        state.hub.set_hold(hold.hold);
        json!({ "hold": hold.hold })
    }))
}

async fn http_release(state: web::Data<State>) -> HttpResponse {
    let released = state.hub.held();
    state.hub.release();
    HttpResponse::Ok().json(json!({ "released": released }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointBody {
    url: Option<String>,
    secret: Option<String>,
    enabled_events: Option<Vec<String>>,
}

async fn http_endpoint(state: web::Data<State>, bytes: web::Bytes) -> HttpResponse {
    reply(body::<EndpointBody>(&bytes).map(|update| {
        let current = state.hub.endpoint();
        let endpoint = update.url.map(|url| WebhookEndpoint {
            url,
            secret: update
                .secret
                .or_else(|| current.as_ref().map(|c| c.secret.clone()))
                .unwrap_or_else(|| state.config.webhook_secret.clone()),
            enabled_events: update
                .enabled_events
                .or_else(|| current.as_ref().map(|c| c.enabled_events.clone()))
                .unwrap_or_else(|| state.config.enabled_events.clone()),
        });
        state.hub.set_endpoint(endpoint.clone());
        json!({ "endpoint": endpoint })
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailuresBody {
    fail_next: Option<u32>,
    #[serde(default, with = "explicit_null")]
    outage: Option<Option<Outage>>,
}

/// Tells `"outage": null` (end the outage) from a missing `outage` (leave it).
mod explicit_null {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

async fn http_failures(state: web::Data<State>, bytes: web::Bytes) -> HttpResponse {
    reply(body::<FailuresBody>(&bytes).map(|failures| {
        if let Some(count) = failures.fail_next {
            state.fail_next(count);
        }
        if let Some(outage) = failures.outage {
            state.set_outage(outage);
        }
        json!({ "ok": true })
    }))
}

async fn http_clear_failures(state: web::Data<State>) -> HttpResponse {
    state.clear_failures();
    HttpResponse::Ok().json(json!({ "ok": true }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceBody {
    seconds: i64,
}

async fn http_advance(state: web::Data<State>, bytes: web::Bytes) -> HttpResponse {
    reply(body::<AdvanceBody>(&bytes).map(|advance| {
        state.clock.advance(advance.seconds);
        json!({ "now": state.clock.now() })
    }))
}

async fn http_requests(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok().json(state.requests())
}

async fn http_clear_requests(state: web::Data<State>) -> HttpResponse {
    state.clear_requests();
    HttpResponse::Ok().json(json!({ "ok": true }))
}

async fn http_meter_events(state: web::Data<State>) -> HttpResponse {
    let (accepted, refused) = state.read(|store| {
        (
            store.meter_events.clone(),
            store.refused_meter_events.clone(),
        )
    });
    HttpResponse::Ok().json(json!({ "accepted": accepted, "refused": refused }))
}
