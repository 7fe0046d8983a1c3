//! Admin API tokens: a way into an organization's admin API for scripts.

use serde::Serialize;

use super::{AuthService, Caller, validate_name};
use crate::error::AuthError;
use crate::roles::Role;
use crate::secrets::{generate_admin_token, hash_token};
use crate::store::{AdminTokenRecord, NewAdminToken, now_ms};

/// A new admin API token and its secret, which is shown this once.
#[derive(Debug, Serialize)]
pub struct IssuedAdminToken {
    pub secret: String,
    #[serde(flatten)]
    pub token: AdminTokenRecord,
}

impl AuthService {
    /// A token for scripts, acting with `role` (at most the caller's own) until `expires_at`.
    pub async fn create_admin_token(
        &self,
        caller: &Caller,
        name: &str,
        role: Role,
        expires_at: Option<i64>,
    ) -> Result<IssuedAdminToken, AuthError> {
        let name = validate_name("name", name)?;
        if !caller.role.at_least(role) {
            return Err(AuthError::Forbidden(format!(
                "A token cannot have more power than its creator: your role is {}.",
                caller.role
            )));
        }
        if let Some(at) = expires_at
            && at <= now_ms()
        {
            return Err(AuthError::invalid(
                "expires_at",
                "`expires_at` must be in the future.",
            ));
        }
        let generated = generate_admin_token();
        let token = self
            .store
            .create_admin_token(
                caller.org,
                caller.user,
                NewAdminToken {
                    name: &name,
                    role,
                    token_hash: &generated.hash,
                    display_prefix: &generated.display_prefix,
                    expires_at,
                },
            )
            .await?;
        Ok(IssuedAdminToken {
            secret: generated.secret,
            token,
        })
    }

    /// Admins see every token of the organization; others see their own.
    pub async fn admin_tokens(&self, caller: &Caller) -> Result<Vec<AdminTokenRecord>, AuthError> {
        let only = (!caller.role.at_least(Role::Admin)).then_some(caller.user);
        Ok(self.store.admin_tokens(caller.org, only).await?)
    }

    /// Revokes a token: the caller's own, or any of the organization's for an admin.
    pub async fn revoke_admin_token(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<AdminTokenRecord, AuthError> {
        let token = self
            .store
            .admin_token(caller.org, id)
            .await?
            .ok_or(AuthError::NotFound("admin token"))?;
        if token.created_by != caller.user {
            caller.require(Role::Admin, "revoke other people's tokens")?;
        }
        self.store
            .revoke_admin_token(caller.org, id, &caller.actor())
            .await?
            .ok_or(AuthError::NotFound("admin token"))
    }

    /// The caller behind an admin token: its creator, with the lesser of the token's role and
    /// the creator's current one (a creator who left the organization takes the token's power
    /// with them).
    pub(super) async fn admin_token_caller(&self, secret: &str) -> Result<Caller, AuthError> {
        let invalid = || AuthError::Token(crate::sessions::TokenError::Invalid);
        let token = self
            .store
            .admin_token_by_hash(&hash_token(secret))
            .await?
            .ok_or_else(invalid)?;
        let creator_role = self
            .store
            .org_role(token.org_id, token.created_by)
            .await?
            .ok_or_else(invalid)?;
        Ok(Caller {
            user: token.created_by,
            org: token.org_id,
            role: token.role.min(creator_role),
        })
    }
}
