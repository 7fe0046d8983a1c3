//! The deployment's ceilings on rate limits: no organization, team or key may set a limit above
//! them, and the gateway never counts one above them either (a limit set before the ceiling
//! was lowered is held to it). Where billing is on, each plan may have tighter ceilings, so
//! that an organization without a card cannot give itself what a paying one has.

use serde::Deserialize;

use super::{ConfigProblem, problem};
use crate::BillingFacts;

/// `limits.max_rpm`, `limits.max_tpm` and `limits.plans`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PlanCeilings {
    /// Organizations without a card (served from the free allowance and prepaid credit).
    pub free: Ceiling,
    /// Organizations paying provider cost plus markup with a card.
    pub pay_as_you_go: Ceiling,
    /// Organizations on their own provider keys.
    pub bring_your_own_key: Ceiling,
}

/// Requests and tokens per minute at most; `None` is no ceiling.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Ceiling {
    pub max_rpm: Option<u64>,
    pub max_tpm: Option<u64>,
}

impl Ceiling {
    /// The lower of two ceilings, field by field.
    pub fn and(self, other: Ceiling) -> Ceiling {
        let lower = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ceiling {
            max_rpm: lower(self.max_rpm, other.max_rpm),
            max_tpm: lower(self.max_tpm, other.max_tpm),
        }
    }

    /// `limit` held to this ceiling's requests per minute.
    pub fn rpm(&self, limit: u64) -> u64 {
        self.max_rpm.map_or(limit, |most| limit.min(most))
    }

    /// `limit` held to this ceiling's tokens per minute.
    pub fn tpm(&self, limit: u64) -> u64 {
        self.max_tpm.map_or(limit, |most| limit.min(most))
    }

    /// Whether `rpm` and `tpm` (either may be absent) fit under the ceiling; the name of the
    /// field that does not, and the ceiling, otherwise.
    pub fn admits(&self, rpm: Option<u64>, tpm: Option<u64>) -> Result<(), (&'static str, u64)> {
        if let (Some(value), Some(most)) = (rpm, self.max_rpm)
            && value > most
        {
            return Err(("rpm", most));
        }
        if let (Some(value), Some(most)) = (tpm, self.max_tpm)
            && value > most
        {
            return Err(("tpm", most));
        }
        Ok(())
    }
}

impl PlanCeilings {
    /// The ceiling of the plan an organization is on, judged from its payment facts.
    pub fn for_plan(&self, facts: &BillingFacts) -> Ceiling {
        if facts.own_provider_keys {
            self.bring_your_own_key
        } else if facts.has_card {
            self.pay_as_you_go
        } else {
            self.free
        }
    }
}

pub(super) fn validate_ceilings(
    deployment: Ceiling,
    plans: &PlanCeilings,
    default: (u64, u64),
    problems: &mut Vec<ConfigProblem>,
) {
    let named = [
        ("limits", deployment),
        ("limits.plans.free", plans.free),
        ("limits.plans.pay_as_you_go", plans.pay_as_you_go),
        ("limits.plans.bring_your_own_key", plans.bring_your_own_key),
    ];
    for (path, ceiling) in named {
        for (field, value) in [("max_rpm", ceiling.max_rpm), ("max_tpm", ceiling.max_tpm)] {
            if value == Some(0) {
                problems.push(problem(format!("{path}.{field}"), "must be greater than 0"));
            }
        }
    }
    // Keys that set no limit get the deployment's default; it must itself be allowed.
    if let Err((field, most)) = deployment.admits(Some(default.0), Some(default.1)) {
        problems.push(problem(
            format!("limits.default.{field}"),
            format!("must not exceed limits.max_{field} ({most})"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lower_ceiling_wins_and_a_missing_one_is_no_ceiling() {
        let deployment = Ceiling {
            max_rpm: Some(1000),
            max_tpm: None,
        };
        let plan = Ceiling {
            max_rpm: Some(5000),
            max_tpm: Some(10_000),
        };
        let both = deployment.and(plan);
        assert_eq!((both.max_rpm, both.max_tpm), (Some(1000), Some(10_000)));
        assert_eq!(both.rpm(600), 600);
        assert_eq!(both.rpm(60_000), 1000);
        assert_eq!(both.admits(Some(1001), None), Err(("rpm", 1000)));
        assert_eq!(both.admits(None, Some(10_000)), Ok(()));
    }

    #[test]
    fn the_plan_follows_the_organizations_payments() {
        let plans = PlanCeilings {
            free: Ceiling {
                max_rpm: Some(1),
                max_tpm: None,
            },
            pay_as_you_go: Ceiling {
                max_rpm: Some(2),
                max_tpm: None,
            },
            bring_your_own_key: Ceiling {
                max_rpm: Some(3),
                max_tpm: None,
            },
        };
        let mut facts = BillingFacts::default();
        assert_eq!(plans.for_plan(&facts).max_rpm, Some(1));
        facts.has_card = true;
        assert_eq!(plans.for_plan(&facts).max_rpm, Some(2));
        facts.own_provider_keys = true;
        assert_eq!(plans.for_plan(&facts).max_rpm, Some(3));
    }
}
