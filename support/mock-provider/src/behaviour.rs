//! What the mock does besides answering: latency, injected failures, key checks, and the
//! magic model names that steer a single request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::stats::Stats;
use crate::vertex::IssuedTokens;

/// How the mock behaves; replaceable at runtime through `MockServer::set_config` or `POST /_mock/config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MockConfig {
    /// Delay before answering, before the response headers.
    pub latency_ms: u64,
    /// Content deltas in a streamed answer; non-streaming answers contain the same words.
    pub chunks: usize,
    /// Delay between streamed content chunks.
    pub chunk_delay_ms: u64,
    /// Probability (0..=1) that a request fails with `failure_status`.
    pub failure_rate: f64,
    /// Status of injected failures.
    pub failure_status: u16,
    /// The first N requests after start or the last config change fail with `failure_status`.
    pub fail_first: u32,
    /// When set, injected failures carry a Retry-After header.
    pub retry_after_secs: Option<u64>,
    /// OpenAI-format answers carry no usage, like some compatible servers.
    pub omit_usage: bool,
    /// Streams break off (connection dropped, no terminator) after this many content chunks.
    pub fail_mid_stream_after: Option<usize>,
    /// When set, requests must present this key the provider's way, else 401. (Bedrock has no
    /// key: its requests are checked against the `aws_*` key pair below instead.)
    pub require_key: Option<String>,
    /// When set, non-streaming answers report using every output token they were allowed,
    /// as a provider at its most expensive would: the request's output limit
    /// (`max_completion_tokens`, `max_tokens`), or this many without one, for each of its `n`
    /// choices.
    pub exhaust_output: Option<u64>,
    /// The AWS key pair Bedrock requests must be signed with (SigV4, checked on every
    /// request); by default the example pair of AWS's documentation.
    pub aws_access_key_id: String,
    pub aws_secret_access_key: String,
    /// When set, Bedrock requests must also carry this session token, signed.
    pub aws_session_token: Option<String>,
    /// The lifetime, in seconds, of the access tokens the Vertex AI token endpoint issues.
    pub token_expires_in_secs: u64,
}

/// The access key id of AWS's documentation examples, accepted by default.
pub const EXAMPLE_AWS_ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
/// Its secret.
pub const EXAMPLE_AWS_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            latency_ms: 0,
            chunks: 5,
            chunk_delay_ms: 0,
            failure_rate: 0.0,
            failure_status: 503,
            fail_first: 0,
            retry_after_secs: None,
            omit_usage: false,
            fail_mid_stream_after: None,
            require_key: None,
            exhaust_output: None,
            aws_access_key_id: EXAMPLE_AWS_ACCESS_KEY_ID.to_owned(),
            aws_secret_access_key: EXAMPLE_AWS_SECRET_ACCESS_KEY.to_owned(),
            aws_session_token: None,
            token_expires_in_secs: 3600,
        }
    }
}

/// A configuration together with the request counter `fail_first` consumes; replacing the
/// whole thing on a config change resets that counter atomically with the new settings.
pub(crate) struct Active {
    pub config: MockConfig,
    seen: AtomicU64,
}

/// Everything the request handlers share.
pub(crate) struct State {
    active: RwLock<Arc<Active>>,
    pub stats: Arc<Stats>,
    /// The Vertex AI access tokens issued so far.
    pub vertex_tokens: IssuedTokens,
}

impl State {
    pub fn new(config: MockConfig) -> State {
        State {
            active: RwLock::new(Arc::new(Active::new(config))),
            stats: Arc::new(Stats::default()),
            vertex_tokens: IssuedTokens::default(),
        }
    }

    /// The configuration for one request; held as an `Arc` so no lock outlives this call.
    pub fn active(&self) -> Arc<Active> {
        self.active
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn set_config(&self, config: MockConfig) {
        let fresh = Arc::new(Active::new(config));
        let old = std::mem::replace(
            &mut *self
                .active
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            fresh,
        );
        drop(old);
    }
}

impl Active {
    fn new(config: MockConfig) -> Active {
        Active {
            config,
            seen: AtomicU64::new(0),
        }
    }

    /// Waits the configured latency plus whatever a `mock-slow-<ms>` model asks for.
    pub async fn pause(&self, model: &str) {
        let ms = self.config.latency_ms.saturating_add(slow_ms(model));
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    /// The status this request must fail with, if any; counts the failure when there is one.
    pub fn injected_failure(&self, model: &str, stats: &Stats) -> Option<u16> {
        let status = self.pick_failure(model)?;
        stats.failure_injected();
        Some(status)
    }

    fn pick_failure(&self, model: &str) -> Option<u16> {
        if let Some(status) = error_status(model) {
            return Some(status);
        }
        let cfg = &self.config;
        if cfg.fail_first > 0
            && self.seen.fetch_add(1, Ordering::Relaxed) < u64::from(cfg.fail_first)
        {
            return Some(cfg.failure_status);
        }
        if cfg.failure_rate > 0.0 && rand::random::<f64>() < cfg.failure_rate {
            return Some(cfg.failure_status);
        }
        None
    }

    /// Whether the presented key satisfies `require_key`.
    pub fn key_ok(&self, presented: Option<&str>) -> bool {
        match &self.config.require_key {
            None => true,
            Some(required) => presented == Some(required.as_str()),
        }
    }
}

/// The status of a `mock-error-<status>` model.
pub(crate) fn error_status(model: &str) -> Option<u16> {
    let status: u16 = magic_suffix(model, "mock-error-")?.parse().ok()?;
    (100..=999).contains(&status).then_some(status)
}

fn slow_ms(model: &str) -> u64 {
    magic_suffix(model, "mock-slow-")
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0)
}

fn magic_suffix<'a>(model: &'a str, prefix: &str) -> Option<&'a str> {
    // Clients may send Gemini-style "models/<name>" where a bare name is expected.
    let model = model.strip_prefix("models/").unwrap_or(model);
    model.strip_prefix(prefix)
}

/// The reason phrase used in error messages of injected failures.
pub(crate) fn failure_message(status: u16) -> String {
    let what = match status {
        400 => "Bad request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not found",
        408 => "Request timeout",
        // As OpenAI words it, naming the account: the gateway must not pass this on.
        429 => {
            "Rate limit reached for requests in organization org-mockdeployment42 on requests per min (RPM): Limit 3, Used 3, Requested 1"
        }
        500 => "Internal server error",
        502 => "Bad gateway",
        503 => "Service unavailable: the server is overloaded",
        504 => "Gateway timeout",
        529 => "Overloaded",
        _ => "Injected failure",
    };
    format!("{what} (status {status}, injected by tollgate-mock-provider)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_names() {
        assert_eq!(error_status("mock-error-503"), Some(503));
        assert_eq!(error_status("models/mock-error-429"), Some(429));
        assert_eq!(error_status("mock-error-x"), None);
        assert_eq!(error_status("gpt-4o"), None);
        assert_eq!(slow_ms("mock-slow-250"), 250);
        assert_eq!(slow_ms("gpt-4o"), 0);
    }

    #[test]
    fn fail_first_resets_with_config() {
        let state = State::new(MockConfig {
            fail_first: 2,
            ..MockConfig::default()
        });
        let stats = Stats::default();
        let a = state.active();
        assert_eq!(a.injected_failure("m", &stats), Some(503));
        assert_eq!(a.injected_failure("m", &stats), Some(503));
        assert_eq!(a.injected_failure("m", &stats), None);
        state.set_config(MockConfig {
            fail_first: 1,
            failure_status: 429,
            ..MockConfig::default()
        });
        let a = state.active();
        assert_eq!(a.injected_failure("m", &stats), Some(429));
        assert_eq!(a.injected_failure("m", &stats), None);
    }
}
