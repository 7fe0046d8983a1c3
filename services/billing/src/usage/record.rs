//! One request's usage event, as journaled, streamed and stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who, what, how much and how it went, for one request. Ids are text, money picodollars.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Made by the gateway for each request: the ledger's idempotency key. (The request id
    /// can come from the client, so it cannot be one.)
    pub event_id: String,
    pub request_id: String,
    /// When the request arrived, Unix milliseconds.
    pub time_ms: i64,
    pub org_id: String,
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    /// The user who created the key.
    pub user_id: Option<String>,
    /// OpenAI's `user` field.
    pub end_user: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub endpoint: String,
    pub requested_model: String,
    pub provider: Option<String>,
    pub provider_model: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    /// The tokens were counted by Tollgate because the upstream reported none.
    pub usage_estimated: bool,
    /// `None` when the model has no price.
    pub cost_pico: Option<i64>,
    /// What admission reserved against budgets for the request.
    pub reserved_pico: i64,
    /// For a cache hit: what the answer cost when it was made.
    #[serde(default)]
    pub saved_pico: Option<i64>,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub status: u16,
    pub error: Option<String>,
    /// `hit`, `miss` or `off`.
    pub cache: String,
    pub attempts: u32,
    pub stream: bool,
}
