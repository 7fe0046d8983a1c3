//! Invitations: a way into an organization besides sign-up, for people.

use serde::{Deserialize, Serialize};

use super::sessions::TokenPair;
use super::{AuthService, Caller, validate_email};
use crate::error::AuthError;
use crate::roles::Role;
use crate::secrets::{hash_token, password_problem, random_token};
use crate::store::{InvitationRecord, Invitee, Organization, now_ms};

/// How long an invitation can be accepted.
const INVITATION_TTL_MS: i64 = 7 * 24 * 3_600_000;

/// A new invitation and its token, which is shown this once.
#[derive(Debug, Serialize)]
pub struct IssuedInvitation {
    /// Goes in the link sent to the invitee; cannot be read again.
    pub token: String,
    #[serde(flatten)]
    pub invitation: InvitationRecord,
}

/// What an invitation link offers, before it is accepted.
#[derive(Debug, Serialize)]
pub struct InvitationPreview {
    pub email: String,
    pub organization: Organization,
    pub role: Role,
    /// Whether the email has an account already (accepting then needs its password).
    pub existing_user: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    pub token: String,
    /// The new account's password, or the existing account's.
    pub password: String,
}

/// Invitation tokens are base64url of 32 random bytes; anything else is refused unread.
fn looks_like_invitation_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl AuthService {
    /// Invites `email` to the caller's organization with `role` (owners manage members).
    pub async fn invite(
        &self,
        caller: &Caller,
        email: &str,
        role: Role,
    ) -> Result<IssuedInvitation, AuthError> {
        caller.require(Role::Owner, "invite members")?;
        let email = validate_email(email)?;
        if let Some((user, _)) = self.store.credentials(&email).await?
            && self.store.org_role(caller.org, user).await?.is_some()
        {
            return Err(AuthError::Conflict(format!(
                "{email} is already a member of this organization."
            )));
        }
        let token = random_token();
        let invitation = self
            .store
            .create_invitation(
                caller.org,
                &email,
                role,
                &hash_token(&token),
                caller.user,
                now_ms() + INVITATION_TTL_MS,
            )
            .await?;
        Ok(IssuedInvitation { token, invitation })
    }

    /// The organization's invitations still open.
    pub async fn invitations(&self, caller: &Caller) -> Result<Vec<InvitationRecord>, AuthError> {
        caller.require(Role::Admin, "see invitations")?;
        Ok(self.store.pending_invitations(caller.org).await?)
    }

    pub async fn revoke_invitation(&self, caller: &Caller, id: &str) -> Result<(), AuthError> {
        caller.require(Role::Owner, "withdraw invitations")?;
        if self
            .store
            .revoke_invitation(caller.org, id, &caller.actor())
            .await?
        {
            Ok(())
        } else {
            Err(AuthError::NotFound("invitation"))
        }
    }

    /// What an invitation link is for; an unknown, used, withdrawn or expired token is
    /// "not found" alike.
    pub async fn preview_invitation(&self, token: &str) -> Result<InvitationPreview, AuthError> {
        if !looks_like_invitation_token(token) {
            return Err(AuthError::NotFound("invitation"));
        }
        let (invitation, organization) = self
            .store
            .invitation_by_token(&hash_token(token))
            .await?
            .ok_or(AuthError::NotFound("invitation"))?;
        let existing_user = self.store.credentials(&invitation.email).await?.is_some();
        Ok(InvitationPreview {
            email: invitation.email,
            organization,
            role: invitation.role,
            existing_user,
        })
    }

    /// Accepts an invitation: a new account with the invitation's email and this password,
    /// or, for an email that has one, that account after checking its password. Starts a
    /// session in the organization.
    pub async fn accept_invitation(
        &self,
        request: AcceptInvitation,
        ip: Option<&str>,
    ) -> Result<TokenPair, AuthError> {
        if !looks_like_invitation_token(&request.token) || request.password.len() > 1024 {
            return Err(AuthError::NotFound("invitation"));
        }
        let token_hash = hash_token(&request.token);
        let (invitation, _) = self
            .store
            .invitation_by_token(&token_hash)
            .await?
            .ok_or(AuthError::NotFound("invitation"))?;
        let email = invitation.email.trim().to_lowercase();
        let credentials = self.store.credentials(&email).await?;
        let password = request.password;
        let accepted = match credentials {
            Some((user, phc)) => {
                // The invitee's password is guessed at here as at login, and counted alike.
                let check = async {
                    let matches = self
                        .with_argon2(move |passwords| passwords.verify(&password, &phc))
                        .await?;
                    Ok(matches.then_some(user))
                };
                let user = self
                    .password_attempt(&email, ip, check)
                    .await?
                    .ok_or(AuthError::BadCredentials)?;
                self.store
                    .accept_invitation(&token_hash, Invitee::Existing(user))
                    .await
            }
            None => {
                if let Some(problem) = password_problem(&password, &email) {
                    return Err(AuthError::invalid("password", problem));
                }
                let password_hash = self.hash_password(password).await?;
                self.store
                    .accept_invitation(
                        &token_hash,
                        Invitee::New {
                            password_hash: &password_hash,
                        },
                    )
                    .await
            }
        };
        let (user, org) = accepted?.ok_or(AuthError::NotFound("invitation"))?;
        self.start_session(user, org).await
    }
}
