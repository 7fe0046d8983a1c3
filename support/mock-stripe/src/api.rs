//! The API pipeline: every `/v1/...` request goes through these stages, in this order.
//!
//! 1. **Record**: the request (method, path, decoded parameters, idempotency key) joins the
//!    request log, whatever happens next.
//! 2. **Injected failures**: during an outage, or while `fail_next` counts down, the request
//!    fails here (500 `api_error`, or the connection is closed) and nothing else runs, so it
//!    changes no state and stores no idempotent result, like a failure in front of Stripe's API.
//! 3. **Authentication**: `Authorization: Bearer <key>` or HTTP basic auth with the key as user
//!    name; a missing or wrong key is a 401.
//! 4. **Parameters**: form-encoded, bracket notation ([`crate::form`]); a JSON body is refused as
//!    Stripe refuses it.
//! 5. **Idempotency** (POST with `Idempotency-Key`): within 24 hours, the same key with the same
//!    endpoint and parameters replays the saved answer with `Idempotent-Replayed: true`; with
//!    different ones it is a 400 `idempotency_error`. Answers are saved once the endpoint ran and
//!    succeeded or failed with a 5xx; a request refused for its parameters saves nothing, so a
//!    corrected retry may use the same key (<https://docs.stripe.com/api/idempotent_requests>).
//! 6. **Endpoint** ([`crate::resources::route`]) with the store locked, then `expand[]`.
//! 7. **Events** the endpoint emitted go to the webhook hub once the store is unlocked.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine as _;
use serde_json::Value;

use crate::config::API_VERSION;
use crate::error::ApiError;
use crate::form::Params;
use crate::ids;
use crate::records::{Outage, RecordedRequest};
use crate::resources;
use crate::state::{IdempotentResult, State};

/// How long an idempotency key's answer is kept.
const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3_600;
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// What a request is answered with.
struct Answer {
    status: u16,
    body: Value,
    replayed: bool,
    /// The request id to send: a replay repeats the original's.
    request_id: String,
    should_retry: Option<bool>,
}

impl Answer {
    fn error(error: &ApiError, request_id: &str) -> Answer {
        Answer {
            status: error.status,
            body: error.body(request_id),
            replayed: false,
            request_id: request_id.to_owned(),
            should_retry: error.should_retry,
        }
    }
}

pub(crate) async fn dispatch(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let request_id = ids::of(ids::kind::REQUEST);
    let method = req.method().as_str().to_owned();
    let raw: &[u8] = if method == "POST" {
        &body
    } else {
        req.query_string().as_bytes()
    };
    let params = Params::parse(raw);
    let idempotency_key = header(&req, "idempotency-key").map(str::to_owned);
    let mut record = RecordedRequest {
        request_id: request_id.clone(),
        method: method.clone(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        params: params
            .as_ref()
            .map(|p| p.pairs().to_vec())
            .unwrap_or_default(),
        idempotency_key: idempotency_key.clone(),
        status: 0,
        replayed: false,
        injected_failure: false,
        at: state.clock.now(),
    };

    if let Some(outage) = state.take_failure() {
        record.injected_failure = true;
        if outage == Outage::CloseConnection {
            state.log_request(record);
            return HttpResponse::Ok().body(Broken);
        }
        let answer = Answer::error(&ApiError::injected(), &request_id);
        record.status = answer.status;
        state.log_request(record);
        return respond(
            answer,
            idempotency_key.as_deref(),
            header(&req, "stripe-version"),
        );
    }

    let answer = match authenticate(&state, &req) {
        Err(error) => Answer::error(&error, &request_id),
        Ok(()) => match checked_params(&req, &body, params, idempotency_key.as_deref()) {
            Err(error) => Answer::error(&error, &request_id),
            Ok(params) => execute(
                &state,
                &method,
                req.path(),
                &params,
                idempotency_key,
                &request_id,
            ),
        },
    };
    record.status = answer.status;
    record.replayed = answer.replayed;
    state.log_request(record);
    respond(
        answer,
        header(&req, "idempotency-key"),
        header(&req, "stripe-version"),
    )
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn authenticate(state: &State, req: &HttpRequest) -> Result<(), ApiError> {
    let presented = header(req, "authorization").and_then(|value| {
        if let Some(token) = value.strip_prefix("Bearer ") {
            return Some(token.trim().to_owned());
        }
        let encoded = value.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        Some(text.split(':').next().unwrap_or_default().to_owned())
    });
    match presented {
        None => Err(ApiError::unauthorized(
            "No API key provided. Send your secret key as `Authorization: Bearer <key>`, or as \
             the user name of HTTP basic auth.",
        )),
        Some(key) if key.is_empty() => Err(ApiError::unauthorized(
            "No API key provided. Send your secret key as `Authorization: Bearer <key>`, or as \
             the user name of HTTP basic auth.",
        )),
        Some(key) if key == state.config.api_key => Ok(()),
        Some(key) => Err(ApiError::unauthorized(format!(
            "Invalid API Key provided: {}",
            mask(&key)
        ))),
    }
}

/// `sk_test_****abcd`: the key's prefix and last four characters.
fn mask(key: &str) -> String {
    let prefix_len = key
        .match_indices('_')
        .nth(1)
        .map_or(0, |(at, _)| at + 1)
        .min(key.len());
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{}****{tail}", &key[..prefix_len])
}

fn checked_params(
    req: &HttpRequest,
    body: &[u8],
    params: Result<Params, ApiError>,
    idempotency_key: Option<&str>,
) -> Result<Params, ApiError> {
    if req.method() == "POST"
        && !body.is_empty()
        && header(req, "content-type").is_some_and(|t| t.starts_with("application/json"))
    {
        return Err(ApiError::invalid(
            "Invalid request: the Stripe API takes form-encoded parameters \
             (Content-Type: application/x-www-form-urlencoded), not JSON.",
        ));
    }
    if let Some(key) = idempotency_key
        && key.len() > MAX_IDEMPOTENCY_KEY_LEN
    {
        return Err(ApiError::invalid(format!(
            "Idempotency keys may be at most {MAX_IDEMPOTENCY_KEY_LEN} characters long."
        )));
    }
    params
}

fn execute(
    state: &State,
    method: &str,
    path: &str,
    params: &Params,
    idempotency_key: Option<String>,
    request_id: &str,
) -> Answer {
    let idempotent = method == "POST" && idempotency_key.is_some();
    let request = Some((request_id.to_owned(), idempotency_key.clone()));
    state.run(request, |ctx| {
        if idempotent && let Some(key) = &idempotency_key {
            let saved = ctx.store.idempotency.get(key).cloned();
            match saved {
                Some(saved) if saved.at + IDEMPOTENCY_TTL_SECS <= ctx.now => {
                    ctx.store.idempotency.remove(key);
                }
                Some(saved) => {
                    if saved.method == method
                        && saved.path == path
                        && saved.params == params.canonical()
                    {
                        return Answer {
                            status: saved.status,
                            body: saved.body,
                            replayed: true,
                            request_id: saved.request_id,
                            should_retry: None,
                        };
                    }
                    return Answer::error(
                        &ApiError::idempotency(format!(
                            "Keys for idempotent requests can only be used with the same \
                             parameters they were first used with. Use a key other than \
                             '{key}' for a different request."
                        )),
                        request_id,
                    );
                }
                None => {}
            }
        }
        let result = resources::route(ctx, method, path, params).and_then(|mut value| {
            resources::expand(ctx.store, &mut value, &params.expand()?)?;
            Ok(value)
        });
        let answer = match result {
            Ok(body) => Answer {
                status: 200,
                body,
                replayed: false,
                request_id: request_id.to_owned(),
                should_retry: None,
            },
            Err(error) => Answer::error(&error, request_id),
        };
        if idempotent
            && let Some(key) = idempotency_key
            && (answer.status < 300 || answer.status >= 500)
        {
            ctx.store.idempotency.insert(
                key,
                IdempotentResult {
                    method: method.to_owned(),
                    path: path.to_owned(),
                    params: params.canonical(),
                    status: answer.status,
                    body: answer.body.clone(),
                    request_id: request_id.to_owned(),
                    at: ctx.now,
                },
            );
        }
        answer
    })
}

/// The answer with Stripe's headers; `Stripe-Version` echoes the version the client asked for.
fn respond(answer: Answer, idempotency_key: Option<&str>, version: Option<&str>) -> HttpResponse {
    let mut response = HttpResponse::build(
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    response
        .content_type("application/json")
        .insert_header(("request-id", answer.request_id))
        .insert_header(("stripe-version", version.unwrap_or(API_VERSION)))
        .insert_header(("cache-control", "no-cache, no-store"));
    if let Some(key) = idempotency_key {
        response.insert_header(("idempotency-key", key));
    }
    if answer.replayed {
        response.insert_header(("idempotent-replayed", "true"));
    }
    if let Some(retry) = answer.should_retry {
        response.insert_header(("stripe-should-retry", if retry { "true" } else { "false" }));
    }
    response.body(serde_json::to_vec_pretty(&answer.body).unwrap_or_default())
}

/// A body that fails at once, so the server drops the connection instead of answering.
struct Broken;

impl MessageBody for Broken {
    type Error = std::io::Error;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "connection closed by an injected outage",
        ))))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_masked() {
        assert_eq!(super::mask("sk_test_abcdefgh1234"), "sk_test_****1234");
        assert_eq!(super::mask("xyz"), "****xyz");
    }
}
