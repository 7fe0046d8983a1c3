//! Prometheus metrics, named `tollgate_<name>_<unit>[_total]` with bounded labels: the model
//! label is the target (`provider/model`) from configuration, never the client's free text.

use std::collections::HashSet;
use std::sync::RwLock;

use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use tollgate_common::config::Secret;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::pipeline::usage::UsageEvent;

const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0,
];

/// Distinct `target` label values a process keeps apart (see [`Metrics::target_label`]).
const MAX_TARGET_LABELS: usize = 500;

pub struct Metrics {
    registry: Registry,
    /// What a scraper must present, when `telemetry.metrics_token` is set.
    token: Option<Secret>,
    /// The `target` label values in use.
    targets: RwLock<HashSet<String>>,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    time_to_first_token: HistogramVec,
    upstream_attempts: IntCounterVec,
    tokens: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "tollgate_requests_total",
                "Requests by endpoint, target and status.",
            ),
            &["endpoint", "target", "status"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "tollgate_request_duration_seconds",
                "Time from receiving a request to its last byte.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["endpoint", "stream"],
        )?;
        let time_to_first_token = HistogramVec::new(
            HistogramOpts::new(
                "tollgate_time_to_first_token_seconds",
                "Time from receiving a streaming request to its first event.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["target"],
        )?;
        let upstream_attempts = IntCounterVec::new(
            Opts::new(
                "tollgate_upstream_failures_total",
                "Upstream tries that failed (then retried or failed over), by the request's last target.",
            ),
            &["target"],
        )?;
        let tokens = IntCounterVec::new(
            Opts::new("tollgate_tokens_total", "Tokens by target and direction."),
            &["target", "direction"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(time_to_first_token.clone()))?;
        registry.register(Box::new(upstream_attempts.clone()))?;
        registry.register(Box::new(tokens.clone()))?;
        Ok(Metrics {
            registry,
            token: None,
            targets: RwLock::default(),
            requests,
            request_duration,
            time_to_first_token,
            upstream_attempts,
            tokens,
        })
    }

    /// Requires `token` of every scraper (see [`Metrics::authorized`]).
    pub fn with_token(mut self, token: Option<Secret>) -> Self {
        self.token = token;
        self
    }

    /// Whether a `/metrics` request may read them: always without a token, else only with
    /// `Authorization: Bearer <token>`.
    pub fn authorized(&self, headers: &HeaderMap) -> bool {
        scraper_authorized(self.token.as_ref(), headers)
    }

    /// The `target` label of `provider/model`: the pair itself for the first
    /// [`MAX_TARGET_LABELS`] seen, `provider/other` after. The model of a direct
    /// `provider/model` route is the client's text, and a label value per name would let one
    /// client grow every process's metrics (and every scrape) without bound.
    fn target_label(&self, provider: &str, model: &str) -> String {
        let label = format!("{provider}/{model}");
        let seen = |set: &HashSet<String>| set.contains(&label);
        if seen(&self.targets.read().unwrap_or_else(|e| e.into_inner())) {
            return label;
        }
        let mut targets = self.targets.write().unwrap_or_else(|e| e.into_inner());
        if targets.len() < MAX_TARGET_LABELS {
            targets.insert(label.clone());
            return label;
        }
        if seen(&targets) {
            label
        } else {
            format!("{provider}/other")
        }
    }

    /// Records one finished request.
    pub fn observe(&self, event: &UsageEvent) {
        let target = match (&event.provider, &event.provider_model) {
            (Some(p), Some(m)) => self.target_label(p, m),
            _ => "none".to_owned(),
        };
        let status = event.status.to_string();
        self.requests
            .with_label_values(&[event.endpoint.as_str(), &target, &status])
            .inc();
        self.request_duration
            .with_label_values(&[
                event.endpoint.as_str(),
                if event.stream { "true" } else { "false" },
            ])
            .observe(event.latency.as_secs_f64());
        if let Some(ttft) = event.time_to_first_token {
            self.time_to_first_token
                .with_label_values(&[&target])
                .observe(ttft.as_secs_f64());
        }
        // Every try failed but the last one, unless the last one failed too.
        let answered = event.provider.is_some() && event.status < 500;
        let failures = event.attempts.saturating_sub(u32::from(answered));
        if failures > 0 {
            self.upstream_attempts
                .with_label_values(&[&target])
                .inc_by(u64::from(failures));
        }
        if event.usage.input_tokens > 0 {
            self.tokens
                .with_label_values(&[&target, "input"])
                .inc_by(event.usage.input_tokens);
        }
        if event.usage.output_tokens > 0 {
            self.tokens
                .with_label_values(&[&target, "output"])
                .inc_by(event.usage.output_tokens);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // The process's default registry holds what other services in this process count
        // (such as the usage dead letters), beside the gateway's own.
        let mut families = self.registry.gather();
        families.extend(prometheus::gather());
        if let Err(err) = TextEncoder::new().encode(&families, &mut out) {
            tracing::warn!(%err, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Whether a scrape of `/metrics` with `headers` may read them under `token` (see
/// [`Metrics::authorized`]); for processes that serve metrics without a gateway too.
pub fn scraper_authorized(token: Option<&Secret>, headers: &HeaderMap) -> bool {
    let Some(token) = token else {
        return true;
    };
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    token.matches(presented.trim().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_chosen_model_names_cannot_grow_the_target_labels_without_bound() {
        let metrics = Metrics::new().unwrap_or_else(|e| panic!("{e}"));
        for i in 0..MAX_TARGET_LABELS {
            assert_eq!(
                metrics.target_label("openai", &format!("m{i}")),
                format!("openai/m{i}")
            );
        }
        assert_eq!(metrics.target_label("openai", "m0"), "openai/m0");
        assert_eq!(metrics.target_label("openai", "junk-1"), "openai/other");
        assert_eq!(metrics.target_label("openai", "junk-2"), "openai/other");
    }

    #[test]
    fn a_metrics_token_is_required_once_set() {
        let open = HeaderMap::new();
        assert!(scraper_authorized(None, &open));
        let token = Secret::new("a-long-metrics-token");
        assert!(!scraper_authorized(Some(&token), &open));
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            actix_web::http::header::HeaderValue::from_static("Bearer a-long-metrics-token"),
        );
        assert!(scraper_authorized(Some(&token), &headers));
        headers.insert(
            AUTHORIZATION,
            actix_web::http::header::HeaderValue::from_static("Bearer a-long-metrics-tokeX"),
        );
        assert!(!scraper_authorized(Some(&token), &headers));
    }
}
