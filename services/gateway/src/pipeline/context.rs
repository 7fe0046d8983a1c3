//! The per-request state that travels through the pipeline's stages.

use std::time::{Instant, SystemTime};

use crate::openai::Endpoint;

/// Who is calling, as the authenticate stage established it. Later stages (limits, budgets,
/// metering) read it; nothing else identifies the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyContext {
    /// `None` when the deployment runs without virtual keys (open access).
    pub org_id: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub key_id: Option<String>,
    /// Cost-attribution tags (`feature=search`, ...).
    pub tags: Vec<(String, String)>,
}

/// What one request carries from stage to stage.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub received_at: SystemTime,
    pub started: Instant,
    pub endpoint: Endpoint,
    pub key: KeyContext,
    /// The model name the client sent (empty until the body is parsed).
    pub requested_model: String,
    pub stream: bool,
    /// OpenAI's end-user field, for per-user attribution.
    pub end_user: Option<String>,
}

impl RequestContext {
    pub fn new(request_id: String, endpoint: Endpoint) -> Self {
        RequestContext {
            request_id,
            received_at: SystemTime::now(),
            started: Instant::now(),
            endpoint,
            key: KeyContext::default(),
            requested_model: String::new(),
            stream: false,
            end_user: None,
        }
    }
}
