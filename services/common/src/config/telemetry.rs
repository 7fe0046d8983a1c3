//! The `telemetry` section: logs, traces and who may read the metrics.

use serde::Deserialize;

use super::{ConfigProblem, Secret, is_http_url, problem};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// A `tracing` filter directive, such as `info` or `tollgate_gateway=debug`.
    pub log_level: String,
    /// OTLP/HTTP endpoint (e.g. `http://127.0.0.1:4318`); traces are exported when set.
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
    /// When set, `/metrics` answers only requests bearing it (`Authorization: Bearer ...`):
    /// the metrics name every configured target and show the deployment's traffic.
    pub metrics_token: Option<Secret>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_level: "info".into(),
            otlp_endpoint: None,
            service_name: "tollgate".into(),
            metrics_token: None,
        }
    }
}

pub(super) fn validate_telemetry(telemetry: &TelemetryConfig, problems: &mut Vec<ConfigProblem>) {
    if telemetry
        .metrics_token
        .as_ref()
        .is_some_and(|token| token.expose().len() < 16)
    {
        problems.push(problem(
            "telemetry.metrics_token",
            "must be at least 16 characters",
        ));
    }
    if let Some(endpoint) = &telemetry.otlp_endpoint
        && !is_http_url(endpoint)
    {
        problems.push(problem(
            "telemetry.otlp_endpoint",
            format!("`{endpoint}` is not an http:// or https:// URL"),
        ));
    }
}
