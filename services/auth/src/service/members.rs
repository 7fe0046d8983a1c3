//! An organization's members and their roles.

use tollgate_common::UserId;

use super::{AuthService, Caller, parse_id};
use crate::error::AuthError;
use crate::roles::Role;
use crate::store::Member;

impl AuthService {
    pub async fn members(&self, caller: &Caller) -> Result<Vec<Member>, AuthError> {
        Ok(self.store.members(caller.org).await?)
    }

    pub async fn member(&self, caller: &Caller, user: &str) -> Result<Member, AuthError> {
        let user = parse_id::<UserId>(user, "member")?;
        self.store
            .member(caller.org, user)
            .await?
            .ok_or(AuthError::NotFound("member"))
    }

    pub async fn set_member_role(
        &self,
        caller: &Caller,
        user: &str,
        role: Role,
    ) -> Result<Member, AuthError> {
        caller.require(Role::Owner, "change roles")?;
        let target = self.member(caller, user).await?;
        if target.role == Role::Owner
            && role != Role::Owner
            && self.store.owner_count(caller.org).await? <= 1
        {
            return Err(AuthError::Conflict(
                "The organization must keep at least one owner.".into(),
            ));
        }
        self.store
            .set_member_role(caller.org, target.user_id, role, &caller.actor())
            .await?
            .ok_or(AuthError::NotFound("member"))
    }

    pub async fn remove_member(&self, caller: &Caller, user: &str) -> Result<(), AuthError> {
        let target = self.member(caller, user).await?;
        // Anyone may leave; only owners remove others.
        if target.user_id != caller.user {
            caller.require(Role::Owner, "remove members")?;
        }
        if target.role == Role::Owner && self.store.owner_count(caller.org).await? <= 1 {
            return Err(AuthError::Conflict(
                "The organization must keep at least one owner.".into(),
            ));
        }
        self.store
            .remove_member(caller.org, target.user_id, &caller.actor())
            .await?;
        Ok(())
    }
}
