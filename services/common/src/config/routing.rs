//! The `routing` and `models` sections: the model names clients send, the targets that serve
//! each, and how requests are retried and targets skipped when they fail.

use std::collections::HashSet;

use serde::Deserialize;

use super::{ConfigProblem, problem};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Targets in the order written; the next one only when the one before failed.
    #[default]
    Fallback,
    /// A random target in proportion to its weight, the others as fallbacks.
    Weighted,
    /// The target with the lowest moving average latency first.
    LeastLatency,
    /// The target with the lowest catalog price first.
    Cheapest,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Tries per target, the first one included; 1 means no retry on the same target.
    pub attempts: u32,
    /// Upstream statuses that are retried (connection errors and timeouts always are).
    pub on_status: Vec<u16>,
    /// First backoff; doubled on each retry, with full jitter, capped by `max_backoff_ms`.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 2,
            on_status: vec![429, 500, 502, 503, 504],
            backoff_ms: 200,
            max_backoff_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerConfig {
    /// Failures within `window_ms` that open the circuit.
    pub failures: u32,
    pub window_ms: u64,
    /// How long an open circuit skips its target before one probe request is let through.
    pub cooldown_ms: u64,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            failures: 5,
            window_ms: 30_000,
            cooldown_ms: 30_000,
        }
    }
}

/// Defaults for every model group that does not set its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingDefaults {
    pub retry: RetryPolicy,
    pub timeout_ms: u64,
    pub circuit_breaker: CircuitBreakerConfig,
}

impl Default for RoutingDefaults {
    fn default() -> Self {
        RoutingDefaults {
            retry: RetryPolicy::default(),
            timeout_ms: 60_000,
            circuit_breaker: CircuitBreakerConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ModelGroupSpec {
    name: String,
    #[serde(default)]
    strategy: Strategy,
    #[serde(default)]
    retry: Option<RetryPolicy>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    circuit_breaker: Option<CircuitBreakerConfig>,
    targets: Vec<TargetConfig>,
}

/// A model name clients send, and the targets that serve it.
#[derive(Debug, Clone)]
pub struct ModelGroup {
    pub name: String,
    pub strategy: Strategy,
    pub retry: RetryPolicy,
    pub timeout_ms: u64,
    pub circuit_breaker: CircuitBreakerConfig,
    pub targets: Vec<TargetConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// A key of `providers`.
    pub provider: String,
    /// The model name the provider knows (for Azure, the deployment name).
    pub model: String,
    #[serde(default)]
    pub weight: Option<u32>,
}

pub(super) fn validate_routing(routing: &RoutingDefaults, problems: &mut Vec<ConfigProblem>) {
    validate_retry(&routing.retry, "routing.retry", problems);
    validate_breaker(
        &routing.circuit_breaker,
        "routing.circuit_breaker",
        problems,
    );
    if routing.timeout_ms == 0 {
        problems.push(problem("routing.timeout_ms", "must be greater than 0"));
    }
}

/// Checks each model group as written against `provider_names`, and fills in the `routing`
/// defaults it does not set.
pub(super) fn model_groups(
    model_specs: Vec<(usize, ModelGroupSpec)>,
    provider_names: &[String],
    routing: &RoutingDefaults,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<ModelGroup> {
    let mut groups = Vec::with_capacity(model_specs.len());
    let mut seen_names = HashSet::new();
    for (i, spec) in model_specs {
        let path = format!("models[{i}]");
        if spec.name.is_empty() {
            problems.push(problem(format!("{path}.name"), "must not be empty"));
        } else if spec.name.contains('/') {
            problems.push(problem(
                format!("{path}.name"),
                "must not contain `/`: `provider/model` names are reserved for direct access",
            ));
        } else if !seen_names.insert(spec.name.clone()) {
            problems.push(problem(
                format!("{path}.name"),
                format!("`{}` is defined twice", spec.name),
            ));
        }
        if spec.targets.is_empty() {
            problems.push(problem(
                format!("{path}.targets"),
                "needs at least one target",
            ));
        }
        for (t, target) in spec.targets.iter().enumerate() {
            let tpath = format!("{path}.targets[{t}]");
            if !provider_names.contains(&target.provider) {
                problems.push(problem(
                    format!("{tpath}.provider"),
                    format!(
                        "no provider named `{}` (configured: {})",
                        target.provider,
                        provider_names.join(", ")
                    ),
                ));
            }
            if target.model.is_empty() {
                problems.push(problem(format!("{tpath}.model"), "must not be empty"));
            }
            if target.weight == Some(0) {
                problems.push(problem(format!("{tpath}.weight"), "must be at least 1"));
            }
        }
        if let Some(retry) = &spec.retry {
            validate_retry(retry, &format!("{path}.retry"), problems);
        }
        if let Some(breaker) = &spec.circuit_breaker {
            validate_breaker(breaker, &format!("{path}.circuit_breaker"), problems);
        }
        if spec.timeout_ms == Some(0) {
            problems.push(problem(
                format!("{path}.timeout_ms"),
                "must be greater than 0",
            ));
        }
        groups.push(ModelGroup {
            name: spec.name,
            strategy: spec.strategy,
            retry: spec.retry.unwrap_or_else(|| routing.retry.clone()),
            timeout_ms: spec.timeout_ms.unwrap_or(routing.timeout_ms),
            circuit_breaker: spec
                .circuit_breaker
                .unwrap_or_else(|| routing.circuit_breaker.clone()),
            targets: spec.targets,
        });
    }
    groups
}

fn validate_retry(retry: &RetryPolicy, path: &str, problems: &mut Vec<ConfigProblem>) {
    if retry.attempts == 0 {
        problems.push(problem(
            format!("{path}.attempts"),
            "must be at least 1 (the first try counts)",
        ));
    }
    for status in &retry.on_status {
        if !(100..=599).contains(status) {
            problems.push(problem(
                format!("{path}.on_status"),
                format!("{status} is not an HTTP status"),
            ));
        }
    }
    if retry.max_backoff_ms < retry.backoff_ms {
        problems.push(problem(
            format!("{path}.max_backoff_ms"),
            "must not be smaller than backoff_ms",
        ));
    }
}

fn validate_breaker(breaker: &CircuitBreakerConfig, path: &str, problems: &mut Vec<ConfigProblem>) {
    if breaker.failures == 0 {
        problems.push(problem(format!("{path}.failures"), "must be at least 1"));
    }
    if breaker.window_ms == 0 {
        problems.push(problem(
            format!("{path}.window_ms"),
            "must be greater than 0",
        ));
    }
}
