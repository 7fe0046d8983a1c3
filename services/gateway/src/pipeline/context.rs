//! The per-request state that travels through the pipeline's stages.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::header::{HeaderName, HeaderValue};
use std::time::{Instant, SystemTime};

pub use tollgate_common::KeyContext;

use crate::ingress::Ingress;
use crate::openai::Endpoint;

/// What one request carries from stage to stage.
#[derive(Clone)]
pub struct RequestContext {
    pub request_id: String,
    /// Made here for every request: the usage ledger's idempotency key (the request id can
    /// come from the client, so it cannot be one).
    pub event_id: String,
    pub received_at: SystemTime,
    pub started: Instant,
    /// The API the client called, which decides the shape of its answer.
    pub ingress: Ingress,
    /// The pipeline's operation.
    pub endpoint: Endpoint,
    /// Who is calling; shared, since it comes from the key cache.
    pub key: Arc<KeyContext>,
    /// Where the model routes (set by the route stage).
    pub route: Option<Arc<crate::routing::RouteGroup>>,
    /// The model name the client sent (empty until the body is parsed).
    pub requested_model: String,
    pub stream: bool,
    /// OpenAI's end-user field, for per-user attribution.
    pub end_user: Option<String>,
    /// Cost-attribution tags: the key's, with the request's `x-tollgate-tags` on top.
    pub tags: BTreeMap<String, String>,
    /// How the cache stage served the request: `hit`, `miss` or `off`.
    pub cache: &'static str,
    /// What the cache stage worked out at lookup, for its store step; set only when the answer
    /// may be kept (a streamed answer is collected only then). Opaque to the pipeline.
    pub cache_state: Option<Arc<dyn std::any::Any + Send + Sync>>,
    /// Headers admission wants on the answer, whatever it is (the rate-limit headers).
    pub response_headers: Vec<(HeaderName, HeaderValue)>,
    /// What guardrails did to the request and its answer.
    pub guardrails: Vec<tollgate_common::GuardrailAction>,
}

impl std::fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContext")
            .field("request_id", &self.request_id)
            .field("endpoint", &self.endpoint)
            .field("requested_model", &self.requested_model)
            .field("stream", &self.stream)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl RequestContext {
    /// When the request arrived, in Unix milliseconds.
    pub fn received_at_ms(&self) -> i64 {
        self.received_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    pub fn new(request_id: String, ingress: Ingress, key: Arc<KeyContext>) -> Self {
        RequestContext {
            request_id,
            event_id: uuid::Uuid::now_v7().to_string(),
            received_at: SystemTime::now(),
            started: Instant::now(),
            ingress,
            endpoint: ingress.endpoint(),
            key,
            route: None,
            requested_model: String::new(),
            stream: false,
            end_user: None,
            tags: BTreeMap::new(),
            cache: "off",
            cache_state: None,
            response_headers: Vec::new(),
            guardrails: Vec::new(),
        }
    }
}
