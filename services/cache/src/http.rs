//! The cache service's endpoints, for deployments where the gateways and the cache run as
//! separate processes (embedding work then scales on its own). A gateway reaches them through
//! [`crate::remote::RemoteCache`]; both endpoints need the shared service token.
//!
//! - `POST /cache/internal/lookup` with a [`CacheRequest`]: `{"hit": null | CacheHit}`.
//! - `POST /cache/internal/store` with `{"request", "answer", "semantic"}`: 202, kept after the
//!   reply.
//!
//! The token is checked before the body is read; bodies are read under
//! `server.body_read_timeout_ms` and at most 8 MiB.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tollgate_common::body::{BodyError, BodyLimits, read_payload};
use tollgate_common::config::ServerConfig;

use crate::answers::{CacheHit, CacheRequest, SemanticCache};

/// Header carrying the shared service token.
pub const SERVICE_TOKEN_HEADER: &str = "x-tollgate-service-token";

/// The largest request body accepted: a cached answer plus its request.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// What the endpoints serve.
#[derive(Clone)]
pub struct CacheHttp {
    cache: Arc<dyn SemanticCache>,
    /// SHA-256 of the service token: compared digest to digest, so the time taken does not
    /// depend on how much of a guess is right.
    token_digest: [u8; 32],
    body_limits: BodyLimits,
}

impl CacheHttp {
    pub fn new(cache: Arc<dyn SemanticCache>, service_token: &str) -> Self {
        CacheHttp {
            cache,
            token_digest: Sha256::digest(service_token.as_bytes()).into(),
            body_limits: BodyLimits::model_calls(&ServerConfig::default()).at_most(MAX_BODY_BYTES),
        }
    }

    /// Reads bodies within `limits` (and at most 8 MiB).
    pub fn with_body_limits(mut self, limits: BodyLimits) -> Self {
        self.body_limits = limits.at_most(MAX_BODY_BYTES);
        self
    }
}

/// Why a call to the cache service was refused.
#[derive(Debug, thiserror::Error)]
pub enum CacheHttpError {
    #[error("A valid `x-tollgate-service-token` is required.")]
    Unauthorized,
    #[error("The request body is not a valid cache call: {0}")]
    BadBody(String),
    #[error("{0}")]
    Unread(#[from] BodyError),
}

impl ResponseError for CacheHttpError {
    fn status_code(&self) -> StatusCode {
        match self {
            CacheHttpError::Unauthorized => StatusCode::UNAUTHORIZED,
            CacheHttpError::BadBody(_) | CacheHttpError::Unread(BodyError::Unreadable(_)) => {
                StatusCode::BAD_REQUEST
            }
            CacheHttpError::Unread(BodyError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            CacheHttpError::Unread(BodyError::TimedOut { .. }) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (kind, code) = match self {
            CacheHttpError::Unauthorized => ("authentication_error", "invalid_service_token"),
            CacheHttpError::BadBody(_) | CacheHttpError::Unread(BodyError::Unreadable(_)) => {
                ("invalid_request_error", "invalid_body")
            }
            CacheHttpError::Unread(BodyError::TooLarge { .. }) => {
                ("invalid_request_error", "request_too_large")
            }
            CacheHttpError::Unread(BodyError::TimedOut { .. }) => {
                ("invalid_request_error", "request_timeout")
            }
        };
        HttpResponse::build(self.status_code()).json(json!({
            "error": { "message": self.to_string(), "type": kind, "param": null, "code": code }
        }))
    }
}

/// A store call's body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreCall {
    pub request: CacheRequest,
    pub answer: String,
    pub semantic: bool,
}

/// A lookup's answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct LookupAnswer {
    pub hit: Option<CacheHit>,
}

/// Registers the endpoints under `/cache/internal`.
pub fn configure(state: CacheHttp) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.service(
            web::scope("/cache/internal")
                .app_data(web::Data::new(state.clone()))
                .route("/lookup", web::post().to(lookup))
                .route("/store", web::post().to(store)),
        );
    }
}

fn authorize(req: &HttpRequest, state: &CacheHttp) -> Result<(), CacheHttpError> {
    let presented = req
        .headers()
        .get(SERVICE_TOKEN_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let digest: [u8; 32] = Sha256::digest(presented).into();
    if digest == state.token_digest {
        Ok(())
    } else {
        Err(CacheHttpError::Unauthorized)
    }
}

/// The body as `T`, read only once the caller is known to be a gateway.
async fn authorized_body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    state: &CacheHttp,
) -> Result<T, CacheHttpError> {
    authorize(req, state)?;
    let body = read_payload(req, payload, state.body_limits).await?;
    serde_json::from_slice(&body).map_err(|e| CacheHttpError::BadBody(e.to_string()))
}

async fn lookup(
    req: HttpRequest,
    state: web::Data<CacheHttp>,
    payload: web::Payload,
) -> Result<HttpResponse, CacheHttpError> {
    let body: CacheRequest = authorized_body(&req, payload, &state).await?;
    let hit = state.cache.lookup(&body).await;
    Ok(HttpResponse::Ok().json(LookupAnswer { hit }))
}

async fn store(
    req: HttpRequest,
    state: web::Data<CacheHttp>,
    payload: web::Payload,
) -> Result<HttpResponse, CacheHttpError> {
    let call: StoreCall = authorized_body(&req, payload, &state).await?;
    let cache = state.cache.clone();
    // The gateway does not wait for embedding and writing.
    actix_web::rt::spawn(async move {
        cache
            .store(&call.request, &call.answer, call.semantic)
            .await
    });
    Ok(HttpResponse::Accepted().finish())
}
