//! The auth service's operations: sign-up, sessions, teams, members and keys, each checked
//! against the caller's role and scoped to the caller's organization. The HTTP surface
//! ([`crate::http`]) and the operator CLI both go through here.
//!
//! One module a domain, each named as its part of [`crate::store`]: sign-ups, sessions,
//! teams, members, limits, cache policies, guardrail policies, budgets, alert webhooks, keys,
//! invitations, admin API tokens and provider keys; `levels` finds the level a policy is set
//! on. Here: the service itself, the callers it acts for, and the checks and password hashing
//! they share.

use std::future::Future;
use std::sync::Arc;

use rust_decimal::Decimal;
use tollgate_common::config::{AuthConfig, LimitsConfig};
use tollgate_common::outbound::OutboundPolicy;
use tollgate_common::{OrgId, UserId};

use crate::error::AuthError;
use crate::feed::KeyChangeFeed;
use crate::mailer::Mailer;
use crate::roles::Role;
use crate::secrets::{PasswordHashing, PasswordWorkError, PasswordWorkers, random_token};
use crate::sessions::AccessTokens;
use crate::store::AuthStore;
use crate::throttle::LoginThrottle;

mod admin_tokens;
mod alert_webhooks;
mod audit;
mod budgets;
mod cache_policy;
mod guardrails;
mod invitations;
mod keys;
mod levels;
mod limits;
mod members;
mod organizations;
mod provider_keys;
mod sessions;
mod signups;
mod teams;

pub use admin_tokens::IssuedAdminToken;
pub use alert_webhooks::{AlertWebhook, AlertWebhookRequest};
pub use budgets::{BudgetPatch, BudgetSpec};
pub use guardrails::MAX_GUARDRAIL_POLICY_BYTES;
pub use invitations::{AcceptInvitation, InvitationPreview, IssuedInvitation};
pub use keys::{IssuedKey, KeyPatch, KeySpec, KeyView, RotateRequest};
pub use levels::PolicyTarget;
pub use provider_keys::OwnProviderKeys;
pub use sessions::{LoginRequest, Me, MembershipView, PasswordChange, PasswordChanged, TokenPair};
pub use signups::{SignupOutcome, SignupRequest, SignupResponse, VerificationSent};

/// A logged-in user acting in one organization, with their current role there.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserId,
    pub org: OrgId,
    pub role: Role,
}

impl Caller {
    fn actor(&self) -> String {
        format!("user:{}", self.user)
    }

    fn require(&self, role: Role, action: &str) -> Result<(), AuthError> {
        if self.role.at_least(role) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "Your role ({}) cannot {action}; it needs {role} or above.",
                self.role
            )))
        }
    }
}

/// Who performs a change: a user through the API, or an operator through the CLI.
#[derive(Debug, Clone)]
pub enum Actor {
    User(Caller),
    Operator,
}

impl Actor {
    fn label(&self) -> String {
        match self {
            Actor::User(caller) => caller.actor(),
            Actor::Operator => "cli".into(),
        }
    }
}

/// Longest display names and the like.
const MAX_NAME_CHARS: usize = 100;
const MAX_EMAIL_CHARS: usize = 254;
const MAX_MODELS: usize = 100;
const MAX_TAGS: usize = 50;
const MAX_METADATA_BYTES: usize = 4096;

/// The auth service.
pub struct AuthService {
    store: AuthStore,
    tokens: AccessTokens,
    passwords: PasswordWorkers,
    throttle: LoginThrottle,
    feed: KeyChangeFeed,
    config: AuthConfig,
    /// Verified against when an email is unknown, so that a login takes as long either way.
    decoy_hash: String,
    /// `None` where organizations cannot bring their own provider keys.
    own_keys: Option<OwnProviderKeys>,
    /// Where tenant-chosen URLs (the alert webhook) may point.
    outbound: OutboundPolicy,
    /// `None` where no mail is sent (`auth.mailer`).
    mailer: Option<Arc<dyn Mailer>>,
    /// Sign-ups per client, made accounts included; `None` counts none.
    signups: Option<LoginThrottle>,
    /// The deployment's ceilings on rate limits, and whether billing (and so plans) is on.
    limits: LimitsConfig,
    billing_on: bool,
}

/// Threads hashing passwords, and how many computations may wait for them. One thread: each
/// keeps argon2's 7 MiB of working memory for good (the allocator would not give a freed copy
/// back), and logins are rare next to gateway traffic: one hash takes about 10 ms, so one core
/// serves close to a hundred a second. A burst beyond the queue (under a second of work) is
/// answered 429.
const PASSWORD_THREADS: usize = 1;
const PASSWORD_QUEUE: usize = 64;

impl AuthService {
    pub async fn new(
        store: AuthStore,
        tokens: AccessTokens,
        throttle: LoginThrottle,
        feed: KeyChangeFeed,
        config: AuthConfig,
    ) -> Result<Self, AuthError> {
        let passwords = PasswordWorkers::start(PASSWORD_THREADS, PASSWORD_QUEUE)
            .map_err(|e| AuthError::Internal(format!("cannot start password workers: {e}")))?;
        let decoy = random_token();
        let decoy_hash = passwords
            .run(move |hashing| hashing.hash(&decoy))
            .await
            .map_err(|e| AuthError::Internal(format!("password workers: {e:?}")))?
            .map_err(AuthError::Internal)?;
        Ok(AuthService {
            store,
            tokens,
            passwords,
            throttle,
            feed,
            config,
            decoy_hash,
            own_keys: None,
            outbound: OutboundPolicy::default(),
            mailer: None,
            signups: None,
            limits: LimitsConfig::default(),
            billing_on: false,
        })
    }

    /// Counts every sign-up against its client with `signups`.
    pub fn with_signup_throttle(mut self, signups: LoginThrottle) -> Self {
        self.signups = Some(signups);
        self
    }

    /// Sends sign-up confirmations and notices with `mailer`.
    pub fn with_mailer(mut self, mailer: Option<Arc<dyn Mailer>>) -> Self {
        self.mailer = mailer;
        self
    }

    /// Holds every rate limit set through this service to `limits`' ceilings (and, where
    /// `billing_on`, the organization's plan's).
    pub fn with_ceilings(mut self, limits: LimitsConfig, billing_on: bool) -> Self {
        self.limits = limits;
        self.billing_on = billing_on;
        self
    }

    /// Lets owners set their organization's own provider keys.
    pub fn with_own_provider_keys(mut self, own_keys: Option<OwnProviderKeys>) -> Self {
        self.own_keys = own_keys;
        self
    }

    /// Opens the names and addresses of `outbound.allow_hosts` to tenant-chosen URLs; without
    /// it, only public destinations are accepted.
    pub fn with_outbound_policy(mut self, outbound: OutboundPolicy) -> Self {
        self.outbound = outbound;
        self
    }

    pub fn store(&self) -> &AuthStore {
        &self.store
    }

    /// Runs `check`, a password check on `account` (`Some` when the password is right), as
    /// an attempt counted by the login throttle before it starts: a wrong password stays
    /// counted, a right one or an error gives the count back.
    async fn password_attempt<T>(
        &self,
        account: &str,
        ip: Option<&str>,
        check: impl Future<Output = Result<Option<T>, AuthError>>,
    ) -> Result<Option<T>, AuthError> {
        let attempt = self
            .throttle
            .reserve(account, ip)
            .await
            .map_err(AuthError::Throttled)?;
        let outcome = check.await;
        match &outcome {
            Ok(Some(_)) => self.throttle.succeeded(attempt).await,
            Ok(None) => self.throttle.failed(attempt),
            Err(_) => self.throttle.release(attempt).await,
        }
        outcome
    }

    async fn hash_password(&self, password: String) -> Result<String, AuthError> {
        self.with_argon2(move |passwords| passwords.hash(&password))
            .await?
            .map_err(AuthError::Internal)
    }

    /// Runs an argon2 computation on the password workers.
    async fn with_argon2<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut PasswordHashing) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        self.passwords.run(work).await.map_err(|err| match err {
            PasswordWorkError::Busy => AuthError::Overloaded,
            PasswordWorkError::Stopped => AuthError::Internal("password workers stopped".into()),
        })
    }

    /// Tells every gateway that these keys' cached contexts are stale.
    async fn stale_keys(&self, hashes: Vec<String>) {
        for hash in hashes {
            self.feed.key_changed(&hash).await;
        }
    }
}

/// An id from a URL or body; a malformed one is simply not found (no hint about ids' shape).
fn parse_id<T: std::str::FromStr>(text: &str, what: &'static str) -> Result<T, AuthError> {
    text.parse().map_err(|_| AuthError::NotFound(what))
}

fn validate_name(param: &str, name: &str) -> Result<String, AuthError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AuthError::invalid(
            param,
            format!("`{param}` must not be empty."),
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(AuthError::invalid(
            param,
            format!("`{param}` must be at most {MAX_NAME_CHARS} characters."),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(AuthError::invalid(
            param,
            format!("`{param}` must not contain control characters."),
        ));
    }
    Ok(name.to_owned())
}

fn validate_email(email: &str) -> Result<String, AuthError> {
    let email = email.trim();
    let valid = email.len() <= MAX_EMAIL_CHARS
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        });
    if valid {
        Ok(email.to_owned())
    } else {
        Err(AuthError::invalid(
            "email",
            "`email` must be a valid email address (at most 254 characters).",
        ))
    }
}

/// A USD amount from a JSON string or number, exactly (never through a float).
fn parse_usd(value: &serde_json::Value) -> Result<Decimal, AuthError> {
    parse_amount("budget_usd", value)
}

/// An amount of USD for `field`, between 0 and 1,000,000,000.
fn parse_amount(field: &str, value: &serde_json::Value) -> Result<Decimal, AuthError> {
    let problem = || {
        AuthError::invalid(
            field,
            format!("`{field}` must be an amount such as \"25.00\"."),
        )
    };
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return Err(problem()),
    };
    let amount: Decimal = text
        .trim()
        .parse()
        .or_else(|_| Decimal::from_scientific(text.trim()))
        .map_err(|_| problem())?;
    if amount.is_sign_negative() || amount > Decimal::from(1_000_000_000u32) {
        return Err(AuthError::invalid(
            field,
            format!("`{field}` must be between 0 and 1000000000."),
        ));
    }
    Ok(amount)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_exactly() {
        assert_eq!(
            parse_usd(&serde_json::json!("25.10")).unwrap().to_string(),
            "25.10"
        );
        assert_eq!(
            parse_usd(&serde_json::json!(0.1)).unwrap().to_string(),
            "0.1"
        );
        assert!(parse_usd(&serde_json::json!("-1")).is_err());
        assert!(parse_usd(&serde_json::json!("ten")).is_err());
        assert!(parse_usd(&serde_json::json!(true)).is_err());
    }

    #[test]
    fn emails_and_names_are_checked() {
        assert!(validate_email("a@example.com").is_ok());
        assert!(validate_email("not-an-email").is_err());
        assert!(validate_email("a@b").is_err());
        assert!(validate_email(&format!("{}@example.com", "a".repeat(250))).is_err());
        assert!(validate_name("name", "  ").is_err());
        assert!(validate_name("name", &"x".repeat(101)).is_err());
        assert_eq!(
            validate_name("name", " Robert'); DROP TABLE teams;-- ").unwrap(),
            "Robert'); DROP TABLE teams;--"
        );
    }
}
