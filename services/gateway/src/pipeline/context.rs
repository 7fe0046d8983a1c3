//! The per-request state that travels through the pipeline's stages.

use std::sync::Arc;

use actix_web::http::header::{HeaderName, HeaderValue};
use std::time::{Instant, SystemTime};

pub use tollgate_common::KeyContext;

use crate::openai::Endpoint;

/// What one request carries from stage to stage.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub received_at: SystemTime,
    pub started: Instant,
    pub endpoint: Endpoint,
    /// Who is calling; shared, since it comes from the key cache.
    pub key: Arc<KeyContext>,
    /// The model name the client sent (empty until the body is parsed).
    pub requested_model: String,
    pub stream: bool,
    /// OpenAI's end-user field, for per-user attribution.
    pub end_user: Option<String>,
    /// Headers admission wants on the answer, whatever it is (the rate-limit headers).
    pub response_headers: Vec<(HeaderName, HeaderValue)>,
}

impl RequestContext {
    pub fn new(request_id: String, endpoint: Endpoint) -> Self {
        RequestContext {
            request_id,
            received_at: SystemTime::now(),
            started: Instant::now(),
            endpoint,
            key: Arc::default(),
            requested_model: String::new(),
            stream: false,
            end_user: None,
            response_headers: Vec::new(),
        }
    }
}
