//! The level a policy is read or set at, as the caller names it, found in the caller's
//! organization and checked against their role. Shared by the policy domains set on the
//! organization, a team or a key (cache policies, guardrail policies).

use super::{AuthService, Caller};
use crate::error::AuthError;
use crate::roles::Role;
use crate::store::PolicyLevel;

/// Where a policy is read or set, as the caller names it (ids from the URL).
#[derive(Debug, Clone, Copy)]
pub enum PolicyTarget<'a> {
    Organization,
    Team(&'a str),
    Key(&'a str),
}

impl AuthService {
    /// The level `target` names in the caller's organization, and what to call it when it is
    /// not found. Any member may read every level's policy.
    pub(super) async fn policy_level(
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

    /// [`policy_level`](Self::policy_level) for a change of its `policy` (`"cache policy"`):
    /// the organization's needs an admin, a team's a team admin, a key's whoever may change
    /// the key. Found and authorized in one step: each level's record is read once.
    pub(super) async fn policy_level_to_set(
        &self,
        caller: &Caller,
        target: PolicyTarget<'_>,
        policy: &str,
    ) -> Result<(PolicyLevel, &'static str), AuthError> {
        Ok(match target {
            PolicyTarget::Organization => {
                caller.require(Role::Admin, &format!("set the organization's {policy}"))?;
                (PolicyLevel::Organization, "organization")
            }
            PolicyTarget::Team(team) => {
                let team = self.team(caller, team).await?.id;
                self.require_team_admin(caller, team, &format!("set this team's {policy}"))
                    .await?;
                (PolicyLevel::Team(team), "team")
            }
            PolicyTarget::Key(key) => {
                let record = self.key_record(caller.org, key).await?;
                self.require_key_manager(caller, &record).await?;
                (PolicyLevel::Key(record.id), "key")
            }
        })
    }
}
