//! `POST /billing/stripe/webhook`: Stripe's deliveries, each checked against its signature and
//! processed once. Answers 200 once an event is processed (or was before), 400 for a delivery
//! that is not Stripe's (bad or stale signature, not an event), and 500 when the database
//! failed, so that Stripe delivers it again. A delivery without a `Stripe-Signature` header is
//! refused before its body is read; a body over 1 MiB gets 413, one slower than
//! `server.body_read_timeout_ms` 408.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use async_trait::async_trait;
use serde_json::json;
use tollgate_common::Secret;
use tollgate_common::body::{BodyError, BodyLimits, read_payload};

use super::webhooks::{Event, Processed, SignatureError, WebhookProcessor, verify_signature};

/// Deliveries larger than this are refused; Stripe's events are a few kilobytes.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Told when an event changed what an organization's keys carry (card, standing, credit), so
/// that gateways reload them.
#[async_trait]
pub trait OrganizationChanged: Send + Sync {
    async fn organization_changed(&self, org: &str);
}

/// The endpoint's state.
pub struct StripeWebhookEndpoint {
    processor: WebhookProcessor,
    secret: Secret,
    tolerance_secs: i64,
    listener: Arc<dyn OrganizationChanged>,
}

impl StripeWebhookEndpoint {
    pub fn new(
        processor: WebhookProcessor,
        secret: Secret,
        tolerance_secs: u64,
        listener: Arc<dyn OrganizationChanged>,
    ) -> Self {
        StripeWebhookEndpoint {
            processor,
            secret,
            tolerance_secs: i64::try_from(tolerance_secs).unwrap_or(i64::MAX),
            listener,
        }
    }
}

/// Registers `/billing/stripe/webhook`, reading bodies under `limits` (and at most
/// [`MAX_BODY_BYTES`]).
pub fn configure(
    endpoint: Arc<StripeWebhookEndpoint>,
    limits: BodyLimits,
) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    let limits = limits.at_most(MAX_BODY_BYTES);
    move |cfg: &mut web::ServiceConfig| {
        cfg.service(
            web::resource("/billing/stripe/webhook")
                .app_data(web::Data::from(endpoint.clone()))
                .app_data(web::Data::new(limits))
                .route(web::post().to(receive)),
        );
    }
}

/// The answer to a body that could not be read.
fn unread(error: &BodyError) -> HttpResponse {
    let (status, code) = match error {
        BodyError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "request_too_large"),
        BodyError::TimedOut { .. } => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
        BodyError::Unreadable(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
    };
    refused(status, code, &error.to_string())
}

fn refused(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}
    }))
}

async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    endpoint: web::Data<StripeWebhookEndpoint>,
    limits: web::Data<BodyLimits>,
) -> HttpResponse {
    let header = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // Unsigned, it cannot be Stripe's, whatever the body says.
    if header.is_empty() {
        return refused(
            StatusCode::BAD_REQUEST,
            "invalid_signature",
            &SignatureError::Malformed.to_string(),
        );
    }
    let body = match read_payload(&req, payload, **limits).await {
        Ok(body) => body,
        Err(err) => return unread(&err),
    };
    let now_secs = tollgate_common::now_ms() / 1000;
    if let Err(err) = verify_signature(
        &body,
        header,
        endpoint.secret.expose(),
        now_secs,
        endpoint.tolerance_secs,
    ) {
        tracing::warn!(%err, "stripe webhook refused");
        return refused(
            StatusCode::BAD_REQUEST,
            "invalid_signature",
            &err.to_string(),
        );
    }
    let event: Event = match serde_json::from_slice(&body) {
        Ok(event) => event,
        Err(err) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "invalid_event",
                &format!("The body is not a Stripe event: {err}"),
            );
        }
    };
    match endpoint.processor.process(&event).await {
        Ok(Processed::Applied { changed }) => {
            if let Some(org) = changed {
                endpoint.listener.organization_changed(&org).await;
            }
            HttpResponse::Ok().json(json!({"received": true}))
        }
        Ok(Processed::Duplicate) => {
            HttpResponse::Ok().json(json!({"received": true, "duplicate": true}))
        }
        Err(err) => {
            tracing::error!(%err, event = %event.id, "stripe webhook: cannot process; Stripe will retry");
            refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "processing_failed",
                "The event could not be processed; deliver it again.",
            )
        }
    }
}
