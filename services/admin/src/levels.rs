//! The level a policy is read or set at, as GraphQL arguments name it; shared by the policy
//! domains set on the organization, a team or a key (cache and guardrail policies).

use async_graphql::{Error, ID, InputObject};
use tollgate_auth::service::PolicyTarget;

use crate::errors::bad_input;

/// Where a policy is set: the organization (no ids), a team or a key.
#[derive(InputObject)]
pub struct PolicyLevelInput {
    pub team_id: Option<ID>,
    pub key_id: Option<ID>,
}

pub fn policy_target(level: &PolicyLevelInput) -> Result<PolicyTarget<'_>, Error> {
    match (&level.team_id, &level.key_id) {
        (None, None) => Ok(PolicyTarget::Organization),
        (Some(team), None) => Ok(PolicyTarget::Team(team.as_str())),
        (None, Some(key)) => Ok(PolicyTarget::Key(key.as_str())),
        (Some(_), Some(_)) => Err(bad_input(
            "level",
            "Name a team or a key, not both (neither for the organization).",
        )),
    }
}
