//! Rate limits of an organization and its teams, held to the deployment's ceilings.

use tollgate_common::OrgId;
use tollgate_common::config::PlanCeilings;

use super::{AuthService, Caller, MAX_MODELS};
use crate::error::AuthError;
use crate::roles::Role;
use crate::store::{RatePair, TeamLimits};

impl AuthService {
    /// Refuses limits above the ceiling of `org`'s plan, naming the field (`prefix` + `rpm`
    /// or `tpm`, or the key's `rpm_limit` / `tpm_limit`).
    pub(super) async fn check_ceiling(
        &self,
        org: OrgId,
        names: (&str, &str),
        rpm: Option<i64>,
        tpm: Option<i64>,
    ) -> Result<(), AuthError> {
        let has_plans = self.billing_on && self.limits.plans != PlanCeilings::default();
        let facts = if has_plans {
            Some(self.store.billing_facts(org).await?)
        } else {
            None
        };
        let ceiling = self.limits.ceiling(facts.as_ref(), self.billing_on);
        let positive = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
        match ceiling.admits(positive(rpm), positive(tpm)) {
            Ok(()) => Ok(()),
            Err((unit, most)) => {
                let param = if unit == "rpm" { names.0 } else { names.1 };
                Err(AuthError::invalid(
                    param,
                    format!("`{param}` must be at most {most}, this deployment's ceiling."),
                ))
            }
        }
    }

    /// The organization's default limits for keys that set none.
    pub async fn org_limits(&self, caller: &Caller) -> Result<RatePair, AuthError> {
        self.store
            .org_limits(caller.org)
            .await?
            .ok_or(AuthError::NotFound("organization"))
    }

    pub async fn set_org_limits(
        &self,
        caller: &Caller,
        limits: RatePair,
    ) -> Result<RatePair, AuthError> {
        caller.require(Role::Admin, "set the organization's rate limits")?;
        validate_pair("", &limits)?;
        self.check_ceiling(caller.org, ("rpm", "tpm"), limits.rpm, limits.tpm)
            .await?;
        let stale = self
            .store
            .set_org_limits(caller.org, &limits, &caller.actor())
            .await?
            .ok_or(AuthError::NotFound("organization"))?;
        self.stale_keys(stale).await;
        Ok(limits)
    }

    pub async fn team_limits(&self, caller: &Caller, team: &str) -> Result<TeamLimits, AuthError> {
        let team = self.team(caller, team).await?;
        self.store
            .team_limits(caller.org, team.id)
            .await?
            .ok_or(AuthError::NotFound("team"))
    }

    pub async fn set_team_limits(
        &self,
        caller: &Caller,
        team: &str,
        limits: TeamLimits,
    ) -> Result<TeamLimits, AuthError> {
        let team = self.team(caller, team).await?;
        self.require_team_admin(caller, team.id, "set this team's rate limits")
            .await?;
        validate_pair(
            "",
            &RatePair {
                rpm: limits.rpm,
                tpm: limits.tpm,
            },
        )?;
        if limits.models.len() > MAX_MODELS {
            return Err(AuthError::invalid(
                "models",
                format!("at most {MAX_MODELS} models"),
            ));
        }
        for (model, pair) in &limits.models {
            if model.is_empty() || model.len() > 200 || model.chars().any(char::is_control) {
                return Err(AuthError::invalid(
                    "models",
                    "model names must be 1 to 200 characters",
                ));
            }
            validate_pair(&format!("models.{model}."), pair)?;
            let names = (format!("models.{model}.rpm"), format!("models.{model}.tpm"));
            self.check_ceiling(caller.org, (&names.0, &names.1), pair.rpm, pair.tpm)
                .await?;
        }
        self.check_ceiling(caller.org, ("rpm", "tpm"), limits.rpm, limits.tpm)
            .await?;
        let stale = self
            .store
            .set_team_limits(caller.org, team.id, &limits, &caller.actor())
            .await?
            .ok_or(AuthError::NotFound("team"))?;
        self.stale_keys(stale).await;
        Ok(limits)
    }
}

pub(super) fn validate_limit(param: &str, limit: Option<i64>) -> Result<Option<i64>, AuthError> {
    match limit {
        Some(v) if !(1..=1_000_000_000_000).contains(&v) => Err(AuthError::invalid(
            param,
            format!("`{param}` must be a positive whole number."),
        )),
        other => Ok(other),
    }
}

fn validate_pair(prefix: &str, pair: &RatePair) -> Result<(), AuthError> {
    validate_limit(&format!("{prefix}rpm"), pair.rpm)?;
    validate_limit(&format!("{prefix}tpm"), pair.tpm)?;
    Ok(())
}
