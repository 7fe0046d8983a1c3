//! Budgets as the gateway sees them: which limits apply to a request, over which period, and
//! what the ledger said had been spent when the key was loaded.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime, Time};

use crate::money::Picodollars;

/// Over what span a budget's spend accumulates; periods start at 00:00 UTC (weeks on Monday,
/// months on the 1st).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    Daily,
    Weekly,
    Monthly,
    Lifetime,
}

impl BudgetPeriod {
    pub fn parse(name: &str) -> Option<BudgetPeriod> {
        Some(match name {
            "daily" => BudgetPeriod::Daily,
            "weekly" => BudgetPeriod::Weekly,
            "monthly" => BudgetPeriod::Monthly,
            "lifetime" => BudgetPeriod::Lifetime,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Daily => "daily",
            BudgetPeriod::Weekly => "weekly",
            BudgetPeriod::Monthly => "monthly",
            BudgetPeriod::Lifetime => "lifetime",
        }
    }

    /// The start of the period holding `at_ms` (Unix milliseconds); 0 for a lifetime budget.
    pub fn start(self, at_ms: i64) -> i64 {
        let Ok(at) = OffsetDateTime::from_unix_timestamp(at_ms.div_euclid(1000)) else {
            return 0;
        };
        let day = at.replace_time(Time::MIDNIGHT);
        let start = match self {
            BudgetPeriod::Lifetime => return 0,
            BudgetPeriod::Daily => day,
            BudgetPeriod::Weekly => {
                day - Duration::days(i64::from(at.weekday().number_days_from_monday()))
            }
            BudgetPeriod::Monthly => day.replace_day(1).unwrap_or(day),
        };
        start.unix_timestamp() * 1000
    }

    /// How long a counter for the period starting at `start_ms` must live: to its end, plus a
    /// day for requests still in flight at the boundary. `None` for a lifetime budget.
    pub fn counter_ttl_secs(self, start_ms: i64) -> Option<u64> {
        let days = match self {
            BudgetPeriod::Daily => 1,
            BudgetPeriod::Weekly => 7,
            BudgetPeriod::Monthly => 31,
            BudgetPeriod::Lifetime => return None,
        };
        let end_ms = start_ms + days * 86_400_000;
        let now_ms = OffsetDateTime::now_utc().unix_timestamp() * 1000;
        Some(((end_ms - now_ms).max(0) / 1000 + 86_400) as u64)
    }
}

/// Whose spending a budget limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "scope", content = "target", rename_all = "snake_case")]
pub enum BudgetScope {
    Organization,
    Team(String),
    Key(String),
    /// One end user (the OpenAI `user` field).
    User(String),
    /// Each end user of the organization, separately.
    EveryUser,
}

impl BudgetScope {
    pub fn kind(&self) -> &'static str {
        match self {
            BudgetScope::Organization => "organization",
            BudgetScope::Team(_) => "team",
            BudgetScope::Key(_) => "key",
            BudgetScope::User(_) | BudgetScope::EveryUser => "user",
        }
    }
}

/// One budget that applies to a key's requests, with the ledger's spend at load time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetRule {
    /// The budget's id; a key's own budget (set on the key) is `key:<key id>`.
    pub id: String,
    pub scope: BudgetScope,
    pub period: BudgetPeriod,
    pub limit_usd: Decimal,
    /// Alert thresholds in percent of the limit.
    pub thresholds: Vec<u32>,
    /// How a refusal names the budget: `team "ml" monthly budget`.
    pub label: String,
    /// The start of the period `spent` was read for.
    pub baseline_period_start: i64,
    /// Spent in that period according to the ledger when the key was loaded.
    pub spent: Picodollars,
    /// For [`BudgetScope::EveryUser`]: spend per end user in that period.
    #[serde(default)]
    pub spent_by_user: BTreeMap<String, Picodollars>,
}

impl BudgetRule {
    /// Whether the rule limits a request from `end_user` (None when the request names none).
    pub fn applies_to(&self, end_user: Option<&str>) -> bool {
        match &self.scope {
            BudgetScope::User(user) => end_user == Some(user.as_str()),
            BudgetScope::EveryUser => end_user.is_some(),
            _ => true,
        }
    }

    /// What the ledger had spent for `end_user` in the period starting at `period_start`: the
    /// load-time figure for the same period, nothing for a period that began since.
    pub fn baseline(&self, period_start: i64, end_user: Option<&str>) -> Picodollars {
        if period_start != self.baseline_period_start {
            return Picodollars::ZERO;
        }
        match (&self.scope, end_user) {
            (BudgetScope::EveryUser, Some(user)) => {
                self.spent_by_user.get(user).copied().unwrap_or_default()
            }
            _ => self.spent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-25T18:30:00Z, a Wednesday.
    const AT: i64 = 1_795_631_400_000;

    #[test]
    fn periods_start_at_utc_boundaries() {
        let day = BudgetPeriod::Daily.start(AT);
        assert_eq!(day, 1_795_564_800_000); // 2026-11-25T00:00Z
        assert_eq!(BudgetPeriod::Weekly.start(AT), day - 2 * 86_400_000); // Monday the 23rd
        assert_eq!(BudgetPeriod::Monthly.start(AT), day - 24 * 86_400_000); // the 1st
        assert_eq!(BudgetPeriod::Lifetime.start(AT), 0);
        assert_eq!(BudgetPeriod::Daily.start(day), day);
    }

    #[test]
    fn baselines_belong_to_their_period() {
        let rule = BudgetRule {
            id: "b".into(),
            scope: BudgetScope::EveryUser,
            period: BudgetPeriod::Daily,
            limit_usd: Decimal::ONE,
            thresholds: vec![],
            label: "x".into(),
            baseline_period_start: 10,
            spent: Picodollars(5),
            spent_by_user: BTreeMap::from([("u1".to_owned(), Picodollars(7))]),
        };
        assert_eq!(rule.baseline(10, Some("u1")), Picodollars(7));
        assert_eq!(rule.baseline(10, Some("u2")), Picodollars(0));
        assert_eq!(rule.baseline(20, Some("u1")), Picodollars(0));
        assert!(!rule.applies_to(None));
        assert!(rule.applies_to(Some("u2")));
    }
}
