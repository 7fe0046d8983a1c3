//! Cache policies set on an organization, a team or a key.

use tollgate_common::CachePolicy;

use super::levels::PolicyTarget;
use super::{AuthService, Caller};
use crate::error::AuthError;

impl AuthService {
    /// The cache policy set at one level: the organization, a team, or a key.
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
        let (level, what) = self
            .policy_level_to_set(caller, target, "cache policy")
            .await?;
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
}
