//! Teams and their members.

use tollgate_common::{TeamId, UserId};

use super::{AuthService, Caller, parse_id, validate_name};
use crate::error::AuthError;
use crate::roles::Role;
use crate::store::{Member, Team};

impl AuthService {
    pub async fn teams(&self, caller: &Caller) -> Result<Vec<Team>, AuthError> {
        Ok(self.store.teams(caller.org).await?)
    }

    pub async fn team(&self, caller: &Caller, team: &str) -> Result<Team, AuthError> {
        let team = parse_id::<TeamId>(team, "team")?;
        self.store
            .team(caller.org, team)
            .await?
            .ok_or(AuthError::NotFound("team"))
    }

    pub async fn create_team(&self, caller: &Caller, name: &str) -> Result<Team, AuthError> {
        caller.require(Role::Admin, "create teams")?;
        let name = validate_name("name", name)?;
        Ok(self
            .store
            .create_team(caller.org, &name, &caller.actor())
            .await?)
    }

    pub async fn rename_team(
        &self,
        caller: &Caller,
        team: &str,
        name: &str,
    ) -> Result<Team, AuthError> {
        let team = self.team(caller, team).await?;
        self.require_team_admin(caller, team.id, "rename this team")
            .await?;
        let name = validate_name("name", name)?;
        self.store
            .rename_team(caller.org, team.id, &name, &caller.actor())
            .await?
            .ok_or(AuthError::NotFound("team"))
    }

    pub async fn delete_team(&self, caller: &Caller, team: &str) -> Result<(), AuthError> {
        caller.require(Role::Admin, "delete teams")?;
        let team = self.team(caller, team).await?;
        match self
            .store
            .delete_team(caller.org, team.id, &caller.actor())
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(AuthError::NotFound("team")),
            Err(crate::store::StoreError::Duplicate(_)) => Err(AuthError::Conflict(
                "The team still has keys; revoke or move them first.".into(),
            )),
            Err(err) => Err(err.into()),
        }
    }

    pub async fn team_members(
        &self,
        caller: &Caller,
        team: &str,
    ) -> Result<Vec<Member>, AuthError> {
        let team = self.team(caller, team).await?;
        Ok(self.store.team_members(caller.org, team.id).await?)
    }

    pub async fn set_team_member(
        &self,
        caller: &Caller,
        team: &str,
        user: &str,
        role: Role,
    ) -> Result<(), AuthError> {
        let team = self.team(caller, team).await?;
        self.require_team_admin(caller, team.id, "manage this team's members")
            .await?;
        let user = parse_id::<UserId>(user, "member")?;
        if self.store.org_role(caller.org, user).await?.is_none() {
            return Err(AuthError::NotFound("member"));
        }
        if role == Role::Owner {
            return Err(AuthError::invalid(
                "role",
                "Teams have admin, member and viewer roles.",
            ));
        }
        Ok(self
            .store
            .set_team_member(caller.org, team.id, user, role, &caller.actor())
            .await?)
    }

    pub async fn remove_team_member(
        &self,
        caller: &Caller,
        team: &str,
        user: &str,
    ) -> Result<(), AuthError> {
        let team = self.team(caller, team).await?;
        self.require_team_admin(caller, team.id, "manage this team's members")
            .await?;
        let user = parse_id::<UserId>(user, "member")?;
        if self
            .store
            .remove_team_member(caller.org, team.id, user, &caller.actor())
            .await?
        {
            Ok(())
        } else {
            Err(AuthError::NotFound("member"))
        }
    }

    pub(super) async fn require_team_admin(
        &self,
        caller: &Caller,
        team: TeamId,
        action: &str,
    ) -> Result<(), AuthError> {
        if caller.role.at_least(Role::Admin)
            || self.store.team_role(caller.org, team, caller.user).await? == Some(Role::Admin)
        {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "You cannot {action}: it needs an organization admin or a team admin."
            )))
        }
    }
}
