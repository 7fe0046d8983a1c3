//! Cache policies set on an organization, a team or a key.

use tollgate_common::CachePolicy;

use super::{AuthService, Caller};
use crate::error::AuthError;
use crate::roles::Role;
use crate::store::PolicyLevel;

/// Where a cache policy is read or set, as the caller names it (ids from the URL).
#[derive(Debug, Clone, Copy)]
pub enum PolicyTarget<'a> {
    Organization,
    Team(&'a str),
    Key(&'a str),
}

impl AuthService {
    /// The cache policy set at one level: the organization (`team` and `key` both `None`), a
    /// team, or a key.
    pub async fn cache_policy(
        &self,
        caller: &Caller,
        level: PolicyTarget<'_>,
    ) -> Result<CachePolicy, AuthError> {
        let (level, what) = self.policy_level(caller, level).await?;
        self.store
            .cache_policy(caller.org, level)
            .await?
            .ok_or(AuthError::NotFound(what))
    }

    /// Replaces the cache policy set at one level. Organization policies need an admin, team
    /// policies a team admin, key policies whoever may change the key.
    pub async fn set_cache_policy(
        &self,
        caller: &Caller,
        target: PolicyTarget<'_>,
        policy: CachePolicy,
    ) -> Result<CachePolicy, AuthError> {
        // Found and authorized in one step: each level's record is read once.
        let (level, what) = match target {
            PolicyTarget::Organization => {
                caller.require(Role::Admin, "set the organization's cache policy")?;
                (PolicyLevel::Organization, "organization")
            }
            PolicyTarget::Team(team) => {
                let team = self.team(caller, team).await?.id;
                self.require_team_admin(caller, team, "set this team's cache policy")
                    .await?;
                (PolicyLevel::Team(team), "team")
            }
            PolicyTarget::Key(key) => {
                let record = self.key_record(caller.org, key).await?;
                self.require_key_manager(caller, &record).await?;
                (PolicyLevel::Key(record.id), "key")
            }
        };
        if let Some((field, message)) = policy.problem() {
            return Err(AuthError::invalid(field, message));
        }
        let stale = self
            .store
            .set_cache_policy(caller.org, level, &policy, &caller.actor())
            .await?
            .ok_or(AuthError::NotFound(what))?;
        self.stale_keys(stale).await;
        Ok(policy)
    }

    async fn policy_level(
        &self,
        caller: &Caller,
        target: PolicyTarget<'_>,
    ) -> Result<(PolicyLevel, &'static str), AuthError> {
        Ok(match target {
            PolicyTarget::Organization => (PolicyLevel::Organization, "organization"),
            PolicyTarget::Team(team) => {
                (PolicyLevel::Team(self.team(caller, team).await?.id), "team")
            }
            PolicyTarget::Key(key) => (
                PolicyLevel::Key(self.key_record(caller.org, key).await?.id),
                "key",
            ),
        })
    }
}
