//! Sign-up: an account made at once, or, with `auth.signup.verify_email`, once the link
//! mailed to its address is followed.

use serde::{Deserialize, Serialize};

use super::keys::IssuedKey;
use super::sessions::TokenPair;
use super::{AuthService, validate_email, validate_name};
use crate::error::AuthError;
use crate::mailer::{self, Mail};
use crate::secrets::{generate_key, hash_token, password_problem, random_token};
use crate::store::{NewKey, NewPendingSignup, Organization, PendingSignupOutcome, Team, User};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    pub email: String,
    pub password: String,
    /// The organization's display name.
    pub organization: String,
}

#[derive(Debug, Serialize)]
pub struct SignupResponse {
    pub user: User,
    pub organization: Organization,
    pub team: Team,
    pub api_key: IssuedKey,
    #[serde(flatten)]
    pub session: TokenPair,
}

/// What a sign-up gives: the account at once, or, with `auth.signup.verify_email`, word that
/// a link was mailed, the same whether or not the address already has an account.
#[derive(Debug)]
pub enum SignupOutcome {
    Created(Box<SignupResponse>),
    VerificationSent(VerificationSent),
}

#[derive(Debug, Serialize)]
pub struct VerificationSent {
    /// Always `verification_sent`.
    pub status: &'static str,
    pub email: String,
}

/// How long a mailed sign-up link works.
const SIGNUP_LINK_TTL_MS: i64 = 24 * 3600 * 1000;

impl AuthService {
    pub async fn signup(
        &self,
        request: SignupRequest,
        ip: Option<&str>,
    ) -> Result<SignupOutcome, AuthError> {
        if !self.config.signup_enabled {
            return Err(AuthError::SignupDisabled);
        }
        let email = validate_email(&request.email)?;
        let organization = validate_name("organization", &request.organization)?;
        if let Some(problem) = password_problem(&request.password, &email) {
            return Err(AuthError::invalid("password", problem));
        }
        // Every sign-up counts against its client, the ones that make an account too: each new
        // organization gets the free allowance, so making them by the hundred is the abuse.
        if let Some(signups) = &self.signups {
            let counted = signups
                .reserve("signup", ip)
                .await
                .map_err(AuthError::Throttled)?;
            signups.failed(counted);
        }
        // Sign-ups are counted like logins, per address and client and per client, so that
        // they cannot be used to probe which addresses have accounts, nor to flood an inbox
        // with confirmations: an account made at once gives its count back, a refused or a
        // mailed sign-up keeps it.
        let attempt = self
            .throttle
            .reserve(&format!("signup:{}", email.to_lowercase()), ip)
            .await
            .map_err(AuthError::Throttled)?;
        // Hashed whether or not the address has an account, so that both take as long.
        let password_hash = match self.hash_password(request.password).await {
            Ok(hash) => hash,
            Err(err) => {
                self.throttle.release(attempt).await;
                return Err(err);
            }
        };
        if self.config.verifies_signups() {
            self.throttle.failed(attempt);
            return self
                .signup_by_mail(&email, &organization, &password_hash)
                .await;
        }
        match self
            .create_account(&email, &password_hash, &organization)
            .await
        {
            Ok(created) => {
                self.throttle.succeeded(attempt).await;
                Ok(SignupOutcome::Created(Box::new(created)))
            }
            Err(err) => {
                self.throttle.failed(attempt);
                if matches!(err, AuthError::Conflict(_)) {
                    self.send_mail(mailer::signup_for_existing_account(
                        &email,
                        self.public_url(),
                    ));
                }
                Err(err)
            }
        }
    }

    /// Keeps the sign-up and mails its link, or, for an address that has an account, mails
    /// its owner a notice; answers the same either way.
    async fn signup_by_mail(
        &self,
        email: &str,
        organization: &str,
        password_hash: &str,
    ) -> Result<SignupOutcome, AuthError> {
        let token = random_token();
        let token_hash = hash_token(&token);
        let outcome = self
            .store
            .add_pending_signup(NewPendingSignup {
                token_hash: &token_hash,
                email,
                password_hash,
                organization,
                ttl_ms: SIGNUP_LINK_TTL_MS,
            })
            .await?;
        self.send_mail(match outcome {
            PendingSignupOutcome::Pending => {
                mailer::signup_confirmation(email, self.public_url(), &token)
            }
            PendingSignupOutcome::AccountExists => {
                mailer::signup_for_existing_account(email, self.public_url())
            }
        });
        Ok(SignupOutcome::VerificationSent(VerificationSent {
            status: "verification_sent",
            email: email.to_owned(),
        }))
    }

    /// Creates the account of a sign-up whose mailed link was followed: the token proves the
    /// address. A link works once.
    pub async fn verify_signup(&self, token: &str) -> Result<SignupResponse, AuthError> {
        if !self.config.signup_enabled {
            return Err(AuthError::SignupDisabled);
        }
        if token.is_empty() || token.len() > 200 {
            return Err(AuthError::NotFound("sign-up link"));
        }
        let pending = self
            .store
            .take_pending_signup(&hash_token(token))
            .await?
            .ok_or(AuthError::NotFound("sign-up link"))?;
        self.create_account(
            &pending.email,
            &pending.password_hash,
            &pending.organization,
        )
        .await
    }

    /// A user, their organization, its first team and key, and a session.
    async fn create_account(
        &self,
        email: &str,
        password_hash: &str,
        organization: &str,
    ) -> Result<SignupResponse, AuthError> {
        let key = generate_key();
        let first_key = NewKey {
            name: "default".into(),
            key_hash: key.hash,
            display_prefix: key.display_prefix,
            ..NewKey::default()
        };
        let (records, record) = self
            .store
            .signup(email, password_hash, organization, first_key)
            .await?;
        let session = self
            .start_session(records.user.id, records.organization.id)
            .await?;
        Ok(SignupResponse {
            user: records.user,
            organization: records.organization,
            team: records.team,
            api_key: IssuedKey {
                key: key.secret,
                view: record.into(),
            },
            session,
        })
    }

    fn public_url(&self) -> &str {
        self.config.public_url.as_deref().unwrap_or_default()
    }

    /// Sends `mail` off the request path: a slow mail service must not show in the answer's
    /// timing (which would tell a new address from a known one).
    fn send_mail(&self, mail: Mail) {
        let Some(mailer) = self.mailer.clone() else {
            return;
        };
        tokio::spawn(async move {
            if let Err(err) = mailer.send(mail).await {
                tracing::warn!(%err, "a mail to a user could not be sent");
            }
        });
    }
}
