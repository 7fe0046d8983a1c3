//! Budgets on an organization, its teams, keys and end users.

use rust_decimal::Decimal;
use serde::Deserialize;
use tollgate_common::{BudgetPeriod, BudgetScope, TeamId};

use super::{AuthService, Caller, parse_amount};
use crate::error::AuthError;
use crate::roles::Role;
use crate::store::{BudgetRecord, DEFAULT_THRESHOLDS, NewBudget};

/// A budget to create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// `organization`, `team`, `key` or `user`.
    pub scope: String,
    /// The team (id or name), key id, or end user (`*` for each end user); none for the
    /// organization.
    #[serde(default)]
    pub target: Option<String>,
    pub period: String,
    /// USD, as a string (`"25.00"`) or a number.
    pub limit_usd: serde_json::Value,
    /// Alert thresholds in percent of the limit; 50, 80 and 100 by default.
    #[serde(default)]
    pub thresholds: Option<Vec<u32>>,
}

/// A change of a budget's limit or thresholds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetPatch {
    #[serde(default)]
    pub limit_usd: Option<serde_json::Value>,
    #[serde(default)]
    pub thresholds: Option<Vec<u32>>,
}

impl AuthService {
    /// The organization's budgets.
    pub async fn budgets(&self, caller: &Caller) -> Result<Vec<BudgetRecord>, AuthError> {
        Ok(self.store.budgets(caller.org).await?)
    }

    /// Creates a budget: on the organization or its end users (admins), on a team (its admins)
    /// or on a key (whoever manages the key's team).
    pub async fn create_budget(
        &self,
        caller: &Caller,
        spec: BudgetSpec,
    ) -> Result<BudgetRecord, AuthError> {
        let period = BudgetPeriod::parse(&spec.period).ok_or_else(|| {
            AuthError::invalid(
                "period",
                "`period` must be daily, weekly, monthly or lifetime.",
            )
        })?;
        let limit_usd = parse_budget_limit(&spec.limit_usd)?;
        let thresholds = validate_thresholds(spec.thresholds)?;
        let target = spec.target.unwrap_or_default();
        let target = match spec.scope.as_str() {
            "organization" => {
                caller.require(Role::Admin, "set the organization's budget")?;
                String::new()
            }
            "user" => {
                caller.require(Role::Admin, "set end-user budgets")?;
                if target.is_empty() || target.len() > 256 || target.chars().any(char::is_control) {
                    return Err(AuthError::invalid(
                        "target",
                        "`target` must be an end-user id (the `user` field of requests), or \"*\" for each end user.",
                    ));
                }
                target
            }
            "team" => {
                let team = self.team(caller, &target).await?;
                self.require_team_admin(caller, team.id, "set this team's budget")
                    .await?;
                team.id.to_string()
            }
            "key" => {
                let record = self.key_record(caller.org, &target).await?;
                self.require_team_admin(caller, record.team_id, "set this key's budget")
                    .await?;
                record.id.to_string()
            }
            _ => {
                return Err(AuthError::invalid(
                    "scope",
                    "`scope` must be organization, team, key or user.",
                ));
            }
        };
        let new = NewBudget {
            scope: spec.scope,
            target,
            period,
            limit_usd,
            thresholds,
        };
        let (budget, stale) = self
            .store
            .create_budget(caller.org, new, &caller.actor())
            .await?;
        self.stale_keys(stale).await;
        Ok(budget)
    }

    /// Changes a budget's limit or thresholds.
    pub async fn update_budget(
        &self,
        caller: &Caller,
        id: &str,
        patch: BudgetPatch,
    ) -> Result<BudgetRecord, AuthError> {
        let budget = self.budget_to_manage(caller, id).await?;
        let limit = patch
            .limit_usd
            .as_ref()
            .map(parse_budget_limit)
            .transpose()?;
        let thresholds = patch
            .thresholds
            .map(|t| validate_thresholds(Some(t)))
            .transpose()?;
        let (updated, stale) = self
            .store
            .update_budget(caller.org, &budget.id, limit, thresholds, &caller.actor())
            .await?
            .ok_or(AuthError::NotFound("budget"))?;
        self.stale_keys(stale).await;
        Ok(updated)
    }

    pub async fn delete_budget(&self, caller: &Caller, id: &str) -> Result<(), AuthError> {
        let budget = self.budget_to_manage(caller, id).await?;
        let stale = self
            .store
            .delete_budget(caller.org, &budget.id, &caller.actor())
            .await?
            .ok_or(AuthError::NotFound("budget"))?;
        self.stale_keys(stale).await;
        Ok(())
    }

    /// A budget of the caller's organization that the caller may change.
    async fn budget_to_manage(&self, caller: &Caller, id: &str) -> Result<BudgetRecord, AuthError> {
        let budget = self
            .store
            .budget(caller.org, id)
            .await?
            .ok_or(AuthError::NotFound("budget"))?;
        let team = match budget.budget_scope() {
            BudgetScope::Team(team) => team.parse::<TeamId>().ok(),
            BudgetScope::Key(key) => Some(self.key_record(caller.org, &key).await?.team_id),
            _ => None,
        };
        match team {
            Some(team) => {
                self.require_team_admin(caller, team, "change this budget")
                    .await?
            }
            None => caller.require(Role::Admin, "change this budget")?,
        }
        Ok(budget)
    }
}

/// The largest budget: shared budget counters are exact to the nanodollar up to about nine
/// million dollars.
const MAX_BUDGET_USD: u32 = 1_000_000;

fn parse_budget_limit(value: &serde_json::Value) -> Result<Decimal, AuthError> {
    let amount = parse_amount("limit_usd", value)?;
    if amount > Decimal::from(MAX_BUDGET_USD) {
        return Err(AuthError::invalid(
            "limit_usd",
            format!("`limit_usd` must be at most {MAX_BUDGET_USD}."),
        ));
    }
    Ok(amount)
}

/// Sorted, distinct percentages from 1 to 1000; at most ten.
fn validate_thresholds(thresholds: Option<Vec<u32>>) -> Result<Vec<u32>, AuthError> {
    let Some(mut thresholds) = thresholds else {
        return Ok(DEFAULT_THRESHOLDS.to_vec());
    };
    thresholds.sort_unstable();
    thresholds.dedup();
    if thresholds.len() > 10 || thresholds.iter().any(|t| !(1..=1000).contains(t)) {
        return Err(AuthError::invalid(
            "thresholds",
            "`thresholds` must be at most ten percentages from 1 to 1000.",
        ));
    }
    Ok(thresholds)
}
