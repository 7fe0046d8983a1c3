//! What the pipeline says of a finished request: the [`UsageEvent`] the recorder makes of it
//! and hands to the meter stage, and how an answer hears that its event was durably written.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rust_decimal::Decimal;
use tokio::sync::oneshot;
use tollgate_common::{GuardrailAction, TokenUsage};

use super::context::KeyContext;
use crate::openai::Endpoint;

/// Hears whether a usage event was durably recorded.
pub type Written = oneshot::Sender<bool>;

/// One request's record: who, what, how much, how it went.
#[derive(Debug, Clone)]
pub struct UsageEvent {
    pub request_id: String,
    /// Unique per request, made by the gateway: the ledger's idempotency key.
    pub event_id: String,
    pub time: SystemTime,
    pub key: Arc<KeyContext>,
    pub end_user: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub endpoint: Endpoint,
    pub requested_model: String,
    pub provider: Option<String>,
    pub provider_model: Option<String>,
    pub usage: TokenUsage,
    /// True when the tokens were counted by Tollgate because the upstream reported none.
    pub usage_estimated: bool,
    /// USD; `None` when the model has no price in the catalog.
    pub cost: Option<Decimal>,
    pub latency: Duration,
    pub time_to_first_token: Option<Duration>,
    pub status: u16,
    pub error: Option<&'static str>,
    pub attempts: u32,
    pub stream: bool,
    /// `hit`, `miss` or `off`.
    pub cache: &'static str,
    /// USD reserved against budgets at admission.
    pub budget_reserved: Decimal,
    /// For a cache hit: what the answer cost when it was made, i.e. what the hit saved.
    pub saved: Option<Decimal>,
    /// What guardrails did to the request and its answer, in order; empty when none acted.
    pub guardrails: Vec<GuardrailAction>,
}
