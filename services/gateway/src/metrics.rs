//! Prometheus metrics, named `tollgate_<name>_<unit>[_total]` with bounded labels: the model
//! label is the target (`provider/model`) from configuration, never the client's free text.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::pipeline::metering::UsageEvent;

const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0,
];

pub struct Metrics {
    registry: Registry,
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
            requests,
            request_duration,
            time_to_first_token,
            upstream_attempts,
            tokens,
        })
    }

    /// Records one finished request.
    pub fn observe(&self, event: &UsageEvent) {
        let target = match (&event.provider, &event.provider_model) {
            (Some(p), Some(m)) => format!("{p}/{m}"),
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
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(%err, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
