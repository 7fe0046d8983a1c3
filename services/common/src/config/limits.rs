//! The `limits` section: the rate limits of keys that set none, the ceilings on what anyone
//! may set, and what to do while Redis is unreachable.

use serde::Deserialize;

use super::ceilings::{self, Ceiling, PlanCeilings};
use super::{ConfigProblem, problem};

/// Rate limits applied to every virtual key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Limits of keys that set none of their own.
    pub default: RateLimitPair,
    /// What to do while Redis is unreachable: `local` (count per process) or `reject` (503).
    pub on_redis_failure: RedisFailurePolicy,
    /// Output tokens that token-per-minute limits count for a request that sets no
    /// `max_tokens`; budgets reserve the model's maximum output instead, and this only for a
    /// model whose maximum the price catalog does not know.
    pub default_max_tokens: u64,
    /// The most requests per minute any organization, team or key may set.
    pub max_rpm: Option<u64>,
    /// The most tokens per minute any organization, team or key may set.
    pub max_tpm: Option<u64>,
    /// Tighter ceilings per plan, applied where billing is on.
    pub plans: PlanCeilings,
}

impl LimitsConfig {
    /// The ceiling for an organization with `facts`: the deployment's, lowered by its plan's
    /// where `billing_on`.
    pub fn ceiling(&self, facts: Option<&crate::BillingFacts>, billing_on: bool) -> Ceiling {
        let deployment = Ceiling {
            max_rpm: self.max_rpm,
            max_tpm: self.max_tpm,
        };
        match facts {
            Some(facts) if billing_on => deployment.and(self.plans.for_plan(facts)),
            _ => deployment,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            default: RateLimitPair {
                rpm: 600,
                tpm: 1_000_000,
            },
            on_redis_failure: RedisFailurePolicy::Local,
            default_max_tokens: 1024,
            max_rpm: None,
            max_tpm: None,
            plans: PlanCeilings::default(),
        }
    }
}

/// Requests and tokens per minute.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitPair {
    pub rpm: u64,
    pub tpm: u64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RedisFailurePolicy {
    #[default]
    Local,
    Reject,
}

pub(super) fn validate_limits(limits: &LimitsConfig, problems: &mut Vec<ConfigProblem>) {
    ceilings::validate_ceilings(
        limits.ceiling(None, false),
        &limits.plans,
        (limits.default.rpm, limits.default.tpm),
        problems,
    );
    for (field, value) in [
        ("limits.default.rpm", limits.default.rpm),
        ("limits.default.tpm", limits.default.tpm),
        ("limits.default_max_tokens", limits.default_max_tokens),
    ] {
        if value == 0 {
            problems.push(problem(field, "must be greater than 0"));
        }
    }
}
