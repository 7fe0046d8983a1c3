//! What several Tollgate services share: configuration, typed ids, the caller's key context,
//! budgets, cache policies, money, the price catalog, telemetry, request bodies read under a
//! limit and a deadline, IP networks, and the policy for calls to URLs tenants choose.

pub mod body;
pub mod budget;
pub mod cache_policy;
pub mod caller;
pub mod catalog;
pub mod config;
pub mod guardrails;
pub mod ids;
pub mod latency;
pub mod money;
pub mod network;
pub mod outbound;
pub mod telemetry;

pub use budget::{BudgetPeriod, BudgetRule, BudgetScope};
pub use cache_policy::{CachePolicy, CachePolicyMode, CacheShare};
pub use caller::{BillingFacts, KeyContext, ModelAllowList, RateLimits};
pub use catalog::{ModelPrice, PriceCatalog, TokenUsage};
pub use config::{Config, ConfigError, ConfigProblem, ProviderKind, Secret};
pub use guardrails::{
    EntityKind, GuardrailAction, GuardrailLevels, GuardrailPolicy, NamedPolicy, PiiAction, Taken,
};
pub use ids::{KeyId, OrgId, TeamId, UserId};
pub use latency::LatencyHistogram;
pub use money::Picodollars;

/// Current time in Unix milliseconds (0 before 1970, saturating far in the future).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
