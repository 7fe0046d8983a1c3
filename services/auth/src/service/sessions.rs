//! Sessions: login, refresh and logout, password changes, and who is calling.

use serde::{Deserialize, Serialize};
use tollgate_common::{OrgId, UserId};

use super::{AuthService, Caller, MAX_EMAIL_CHARS};
use crate::error::AuthError;
use crate::roles::Role;
use crate::secrets::{ADMIN_TOKEN_PREFIX, hash_token, password_problem, random_token};
use crate::store::{Organization, RefreshOutcome, User};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// Which of the user's organizations to act in; the oldest membership by default.
    #[serde(default)]
    pub organization_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Serialize)]
pub struct PasswordChanged {
    /// The user's sessions that were ended (all but the one that changed the password).
    pub other_sessions_ended: u64,
}

#[derive(Debug, Serialize)]
pub struct Me {
    pub user: User,
    pub organization: Organization,
    pub role: Role,
    pub organizations: Vec<MembershipView>,
}

#[derive(Debug, Serialize)]
pub struct MembershipView {
    pub organization: Organization,
    pub role: Role,
}

impl AuthService {
    pub async fn login(
        &self,
        request: LoginRequest,
        ip: Option<&str>,
    ) -> Result<TokenPair, AuthError> {
        let email = request.email.trim().to_lowercase();
        // No account has such an email (sign-up refuses them), and PostgreSQL refuses a NUL
        // byte in text: answer before any query.
        if email.is_empty()
            || email.len() > MAX_EMAIL_CHARS
            || email.chars().any(char::is_control)
            || request.password.len() > 1024
        {
            return Err(AuthError::BadCredentials);
        }
        let user = self
            .password_attempt(&email, ip, self.check_password(&email, request.password))
            .await?
            .ok_or(AuthError::BadCredentials)?;
        let memberships = self.store.memberships(user).await?;
        let org = match request.organization_id {
            Some(wanted) => memberships
                .iter()
                .find(|(org, _)| org.id.to_string() == wanted)
                .map(|(org, _)| org.id)
                .ok_or(AuthError::BadCredentials)?,
            None => memberships.first().map(|(org, _)| org.id).ok_or_else(|| {
                AuthError::Forbidden("You are not a member of any organization.".into())
            })?,
        };
        self.start_session(user, org).await
    }

    /// The user with this email and password, if there is one; as long to find out either way.
    async fn check_password(
        &self,
        email: &str,
        password: String,
    ) -> Result<Option<UserId>, AuthError> {
        let (user, phc) = match self.store.credentials(email).await? {
            Some((user, phc)) => (Some(user), phc),
            None => (None, self.decoy_hash.clone()),
        };
        let matches = self
            .with_argon2(move |passwords| passwords.verify(&password, &phc))
            .await?;
        Ok(user.filter(|_| matches))
    }

    /// Changes the password of the user behind `access_token`, given their current one, and
    /// ends every other session of theirs: whoever else had one must log in with the new
    /// password. Admin API tokens cannot: they act for scripts, which do not know a password.
    pub async fn change_password(
        &self,
        access_token: &str,
        request: PasswordChange,
        ip: Option<&str>,
    ) -> Result<PasswordChanged, AuthError> {
        if access_token.starts_with(ADMIN_TOKEN_PREFIX) {
            return Err(AuthError::Forbidden(
                "An admin API token cannot change a password; log in as the user.".into(),
            ));
        }
        let caller = self.caller(access_token).await?;
        let session = self.tokens.verify(access_token)?.sid;
        let (email, phc) = self
            .store
            .user_credentials(caller.user)
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        let email = email.trim().to_lowercase();
        if let Some(problem) = password_problem(&request.new_password, &email) {
            return Err(AuthError::invalid("new_password", problem));
        }
        let wrong_password =
            || AuthError::invalid("current_password", "The current password is not correct.");
        if request.current_password.len() > 1024 {
            return Err(wrong_password());
        }
        // Guessing the current password with a stolen session counts as guessing it at login.
        let current = request.current_password;
        let check = async {
            let matches = self
                .with_argon2(move |passwords| passwords.verify(&current, &phc))
                .await?;
            Ok(matches.then_some(()))
        };
        self.password_attempt(&email, ip, check)
            .await?
            .ok_or_else(wrong_password)?;
        let password_hash = self.hash_password(request.new_password).await?;
        let other_sessions_ended = self
            .store
            .change_password(caller.user, &password_hash, &session)
            .await?;
        Ok(PasswordChanged {
            other_sessions_ended,
        })
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AuthError> {
        if refresh_token.is_empty() || refresh_token.len() > 200 {
            return Err(AuthError::BadRefreshToken);
        }
        let next = random_token();
        let outcome = self
            .store
            .rotate_refresh_token(
                &hash_token(refresh_token),
                &hash_token(&next),
                self.refresh_ttl_ms(),
            )
            .await?;
        match outcome {
            RefreshOutcome::Rotated(record) => {
                // A user removed from the organization cannot keep a session in it.
                if self
                    .store
                    .org_role(record.org_id, record.user_id)
                    .await?
                    .is_none()
                {
                    return Err(AuthError::BadRefreshToken);
                }
                let access_token = self
                    .tokens
                    .issue(record.user_id, record.org_id, &record.family_id)
                    .map_err(AuthError::Internal)?;
                Ok(TokenPair {
                    access_token,
                    refresh_token: next,
                    token_type: "Bearer",
                    expires_in: self.tokens.ttl_secs(),
                })
            }
            RefreshOutcome::Reused => {
                tracing::warn!("a spent refresh token was presented again; its session is revoked");
                Err(AuthError::BadRefreshToken)
            }
            RefreshOutcome::Invalid => Err(AuthError::BadRefreshToken),
        }
    }

    /// Ends the session of `refresh_token`. Unknown tokens are accepted silently: logging out
    /// twice is not an error.
    pub async fn logout(&self, refresh_token: &str) -> Result<(), AuthError> {
        if refresh_token.len() <= 200 {
            self.store
                .revoke_refresh_family(&hash_token(refresh_token))
                .await?;
        }
        Ok(())
    }

    /// The caller behind an access token (valid signature, live session, still a member) or
    /// behind an admin API token.
    pub async fn caller(&self, access_token: &str) -> Result<Caller, AuthError> {
        if access_token.starts_with(crate::secrets::ADMIN_TOKEN_PREFIX) {
            return self.admin_token_caller(access_token).await;
        }
        let claims = self.tokens.verify(access_token)?;
        if !self.store.refresh_family_active(&claims.sid).await? {
            return Err(AuthError::Token(crate::sessions::TokenError::Invalid));
        }
        let role = self
            .store
            .org_role(claims.org, claims.sub)
            .await?
            .ok_or(AuthError::Token(crate::sessions::TokenError::Invalid))?;
        Ok(Caller {
            user: claims.sub,
            org: claims.org,
            role,
        })
    }

    pub async fn me(&self, caller: &Caller) -> Result<Me, AuthError> {
        let user = self
            .store
            .user(caller.user)
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        let organization = self
            .store
            .organization(caller.org)
            .await?
            .ok_or(AuthError::NotFound("organization"))?;
        let organizations = self
            .store
            .memberships(caller.user)
            .await?
            .into_iter()
            .map(|(organization, role)| MembershipView { organization, role })
            .collect();
        Ok(Me {
            user,
            organization,
            role: caller.role,
            organizations,
        })
    }

    pub(super) async fn start_session(
        &self,
        user: UserId,
        org: OrgId,
    ) -> Result<TokenPair, AuthError> {
        let refresh_token = random_token();
        let record = self
            .store
            .insert_refresh_token(
                &hash_token(&refresh_token),
                user,
                org,
                self.refresh_ttl_ms(),
                millis(self.config.session_max_lifetime_secs),
            )
            .await?;
        let access_token = self
            .tokens
            .issue(user, org, &record.family_id)
            .map_err(AuthError::Internal)?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            token_type: "Bearer",
            expires_in: self.tokens.ttl_secs(),
        })
    }

    fn refresh_ttl_ms(&self) -> i64 {
        millis(self.config.refresh_token_ttl_secs)
    }
}

fn millis(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}
