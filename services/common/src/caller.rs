//! Who is calling the gateway: the context a verified virtual key carries through every stage.

use std::collections::BTreeMap;

use wildmatch::WildMatch;

use crate::budget::BudgetRule;
use crate::ids::{KeyId, OrgId, TeamId, UserId};

/// The caller of one gateway request, as key verification established it. Limits, budgets and
/// metering read it; nothing else identifies the caller.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyContext {
    /// `None` only when the gateway runs without virtual keys (open access).
    pub org_id: Option<OrgId>,
    pub team_id: Option<TeamId>,
    /// The user who created the key.
    pub user_id: Option<UserId>,
    pub key_id: Option<KeyId>,
    pub key_name: String,
    pub models: ModelAllowList,
    /// The key's own limits, else its organization's defaults (else the deployment's apply).
    pub rpm_limit: Option<u64>,
    pub tpm_limit: Option<u64>,
    /// Limits shared by every key of the team.
    pub team_limits: RateLimits,
    /// Limits shared by every key of the team, per model name clients send.
    pub team_model_limits: BTreeMap<String, RateLimits>,
    /// Every budget the key's requests count against: the organization's, the team's, the
    /// key's own and the end users'.
    pub budgets: Vec<BudgetRule>,
    /// Cost-attribution tags (`feature=search`, ...).
    pub tags: BTreeMap<String, String>,
    /// The key's cache defaults, already merged with its team's and organization's.
    pub cache: crate::CachePolicy,
    /// Unix milliseconds after which the key no longer opens anything.
    pub expires_at: Option<i64>,
    /// How the key's organization stands with its payments, as of when the key was loaded.
    pub billing: BillingFacts,
    /// The organization's own provider keys by provider name, used instead of the
    /// deployment's when `billing.own_provider_keys`.
    pub provider_keys: BTreeMap<String, crate::Secret>,
    /// The guardrail policies stored for the key's organization, team and key itself.
    pub guardrails: std::sync::Arc<crate::GuardrailLevels>,
}

/// What the gateway needs to know of an organization's payments to serve it or ask for
/// payment first. Money in picodollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BillingFacts {
    /// A card Stripe can charge.
    pub has_card: bool,
    /// When a payment failed, if no invoice has been paid since (Unix ms).
    pub past_due_since: Option<i64>,
    /// Prepaid credit left, billable picodollars.
    pub credit: i64,
    /// Prepaid credit used so far this calendar month (UTC).
    pub credit_used_this_month: i64,
    /// The organization's provider cost so far this calendar month.
    pub month_cost: i64,
    /// On the bring-your-own-key plan: its requests go out with its own provider keys only.
    #[serde(default)]
    pub own_provider_keys: bool,
}

/// Requests and tokens per minute; `None` is no limit at this level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

impl KeyContext {
    /// Whether the key may call `model` (a model group or `provider/model` name).
    pub fn allows_model(&self, model: &str) -> bool {
        self.models.allows(model)
    }
}

/// The models a key may use: exact names and globs (`gpt-4o*`, `anthropic/*`). Empty means
/// every model.
#[derive(Debug, Clone, Default)]
pub struct ModelAllowList {
    patterns: Vec<String>,
    compiled: Vec<WildMatch>,
}

impl ModelAllowList {
    pub fn new(patterns: Vec<String>) -> Self {
        let compiled = patterns.iter().map(|p| WildMatch::new(p)).collect();
        ModelAllowList { patterns, compiled }
    }

    pub fn allows(&self, model: &str) -> bool {
        self.compiled.is_empty() || self.compiled.iter().any(|p| p.matches(model))
    }

    /// The patterns as written.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

impl PartialEq for ModelAllowList {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matches_exact_names_and_globs() {
        let list = ModelAllowList::new(vec!["gpt-4o*".into(), "anthropic/*".into(), "fast".into()]);
        assert!(list.allows("gpt-4o-mini"));
        assert!(list.allows("anthropic/claude-sonnet-4"));
        assert!(list.allows("fast"));
        assert!(!list.allows("faster"));
        assert!(!list.allows("gpt-3.5-turbo"));
        assert!(ModelAllowList::default().allows("anything"));
    }
}
