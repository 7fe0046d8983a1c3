//! The auth service's operations: sign-up, sessions, teams, members and keys, each checked
//! against the caller's role and scoped to the caller's organization. The HTTP surface
//! ([`crate::http`]) and the operator CLI both go through here.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use tollgate_common::config::{AuthConfig, LimitsConfig, PlanCeilings};
use tollgate_common::outbound::OutboundPolicy;
use tollgate_common::{BudgetPeriod, BudgetScope, CachePolicy, KeyId, OrgId, TeamId, UserId};

use crate::error::AuthError;
use crate::feed::KeyChangeFeed;
use crate::mailer::{self, Mail, Mailer};
use crate::roles::Role;
use crate::secrets::{
    ADMIN_TOKEN_PREFIX, PasswordHashing, PasswordWorkError, PasswordWorkers, generate_key,
    hash_token, password_problem, random_token,
};
use crate::sessions::AccessTokens;
use crate::store::{
    AuditRecord, AuthStore, BudgetRecord, DEFAULT_THRESHOLDS, KeyChanges, KeyRecord, KeyStatus,
    Member, NewBudget, NewKey, NewPendingSignup, Organization, PendingSignupOutcome, PolicyLevel,
    RatePair, RefreshOutcome, Team, TeamLimits, User, now_ms,
};
use crate::throttle::LoginThrottle;

mod access;
mod provider_keys;

pub use access::{AcceptInvitation, InvitationPreview, IssuedAdminToken, IssuedInvitation};
pub use provider_keys::OwnProviderKeys;

/// Where a cache policy is read or set, as the caller names it (ids from the URL).
#[derive(Debug, Clone, Copy)]
pub enum PolicyTarget<'a> {
    Organization,
    Team(&'a str),
    Key(&'a str),
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    pub email: String,
    pub password: String,
    /// The organization's display name.
    pub organization: String,
}

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

/// A key as the API shows it: never the secret, with its current status.
#[derive(Debug, Serialize)]
pub struct KeyView {
    #[serde(flatten)]
    pub key: KeyRecord,
    pub status: KeyStatus,
}

impl From<KeyRecord> for KeyView {
    fn from(key: KeyRecord) -> Self {
        let status = key.status(now_ms());
        KeyView { key, status }
    }
}

/// A key just created or rotated: the secret, shown this once.
#[derive(Debug, Serialize)]
pub struct IssuedKey {
    /// The full key; it cannot be shown again.
    pub key: String,
    #[serde(flatten)]
    pub view: KeyView,
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

/// Settings of a new key (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    #[serde(default)]
    pub name: Option<String>,
    /// The team the key belongs to; the organization's first team by default.
    #[serde(default)]
    pub team_id: Option<String>,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// Unix milliseconds.
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub rpm_limit: Option<i64>,
    #[serde(default)]
    pub tpm_limit: Option<i64>,
    /// USD, as a string (`"25.00"`) or a number.
    #[serde(default)]
    pub budget_usd: Option<serde_json::Value>,
    #[serde(default)]
    pub budget_period: Option<String>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A partial update of a key; `null` clears a nullable field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub expires_at: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub rpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub tpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub budget_usd: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    pub budget_period: Option<Option<String>>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// Tells "absent" (`None`) from "null" (`Some(None)`).
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the old key keeps working; the deployment's default when absent.
    #[serde(default)]
    pub grace_seconds: Option<u64>,
}

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

    /// Refuses limits above the ceiling of `org`'s plan, naming the field (`prefix` + `rpm`
    /// or `tpm`, or the key's `rpm_limit` / `tpm_limit`).
    async fn check_ceiling(
        &self,
        org: OrgId,
        names: (&str, &str),
        rpm: Option<i64>,
        tpm: Option<i64>,
    ) -> Result<(), AuthError> {
        let has_plans = self.billing_on && self.limits.plans != PlanCeilings::default();
        let facts = if has_plans {
            Some(self.store.billing_facts(org).await?)
        } else {
            None
        };
        let ceiling = self.limits.ceiling(facts.as_ref(), self.billing_on);
        let positive = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
        match ceiling.admits(positive(rpm), positive(tpm)) {
            Ok(()) => Ok(()),
            Err((unit, most)) => {
                let param = if unit == "rpm" { names.0 } else { names.1 };
                Err(AuthError::invalid(
                    param,
                    format!("`{param}` must be at most {most}, this deployment's ceiling."),
                ))
            }
        }
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

    // ---- sign-up and sessions ----

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

    async fn start_session(&self, user: UserId, org: OrgId) -> Result<TokenPair, AuthError> {
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

    // ---- teams and members ----

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

    pub async fn audit_log(
        &self,
        caller: &Caller,
        limit: Option<i64>,
    ) -> Result<Vec<AuditRecord>, AuthError> {
        caller.require(Role::Admin, "read the audit log")?;
        let limit = limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(AuthError::invalid("limit", "must be between 1 and 1000"));
        }
        Ok(self.store.audit_log(caller.org, limit).await?)
    }

    async fn require_team_admin(
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

    // ---- rate limits ----

    /// The organization's default limits for keys that set none.
    pub async fn org_limits(&self, caller: &Caller) -> Result<RatePair, AuthError> {
        self.store
            .org_limits(caller.org)
            .await?
            .ok_or(AuthError::NotFound("organization"))
    }

    pub async fn set_org_limits(
        &self,
        caller: &Caller,
        limits: RatePair,
    ) -> Result<RatePair, AuthError> {
        caller.require(Role::Admin, "set the organization's rate limits")?;
        validate_pair("", &limits)?;
        self.check_ceiling(caller.org, ("rpm", "tpm"), limits.rpm, limits.tpm)
            .await?;
        let stale = self
            .store
            .set_org_limits(caller.org, &limits, &caller.actor())
            .await?
            .ok_or(AuthError::NotFound("organization"))?;
        for hash in stale {
            self.feed.key_changed(&hash).await;
        }
        Ok(limits)
    }

    pub async fn team_limits(&self, caller: &Caller, team: &str) -> Result<TeamLimits, AuthError> {
        let team = self.team(caller, team).await?;
        self.store
            .team_limits(caller.org, team.id)
            .await?
            .ok_or(AuthError::NotFound("team"))
    }

    pub async fn set_team_limits(
        &self,
        caller: &Caller,
        team: &str,
        limits: TeamLimits,
    ) -> Result<TeamLimits, AuthError> {
        let team = self.team(caller, team).await?;
        self.require_team_admin(caller, team.id, "set this team's rate limits")
            .await?;
        validate_pair(
            "",
            &RatePair {
                rpm: limits.rpm,
                tpm: limits.tpm,
            },
        )?;
        if limits.models.len() > MAX_MODELS {
            return Err(AuthError::invalid(
                "models",
                format!("at most {MAX_MODELS} models"),
            ));
        }
        for (model, pair) in &limits.models {
            if model.is_empty() || model.len() > 200 || model.chars().any(char::is_control) {
                return Err(AuthError::invalid(
                    "models",
                    "model names must be 1 to 200 characters",
                ));
            }
            validate_pair(&format!("models.{model}."), pair)?;
            let names = (format!("models.{model}.rpm"), format!("models.{model}.tpm"));
            self.check_ceiling(caller.org, (&names.0, &names.1), pair.rpm, pair.tpm)
                .await?;
        }
        self.check_ceiling(caller.org, ("rpm", "tpm"), limits.rpm, limits.tpm)
            .await?;
        let stale = self
            .store
            .set_team_limits(caller.org, team.id, &limits, &caller.actor())
            .await?
            .ok_or(AuthError::NotFound("team"))?;
        for hash in stale {
            self.feed.key_changed(&hash).await;
        }
        Ok(limits)
    }

    // ---- cache policies ----

    /// The cache policy set at one level: the organization (`team` and `key` both `None`), a
    /// team, or a key.
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
        // Found and authorized in one step: each level's record is read once.
        let (level, what) = match target {
            PolicyTarget::Organization => {
                caller.require(Role::Admin, "set the organization's cache policy")?;
                (PolicyLevel::Organization, "organization")
            }
            PolicyTarget::Team(team) => {
                let team = self.team(caller, team).await?.id;
                self.require_team_admin(caller, team, "set this team's cache policy")
                    .await?;
                (PolicyLevel::Team(team), "team")
            }
            PolicyTarget::Key(key) => {
                let record = self.key_record(caller.org, key).await?;
                self.require_key_manager(caller, &record).await?;
                (PolicyLevel::Key(record.id), "key")
            }
        };
        if let Some((field, message)) = policy.problem() {
            return Err(AuthError::invalid(field, message));
        }
        let stale = self
            .store
            .set_cache_policy(caller.org, level, &policy, &caller.actor())
            .await?
            .ok_or(AuthError::NotFound(what))?;
        for hash in stale {
            self.feed.key_changed(&hash).await;
        }
        Ok(policy)
    }

    async fn policy_level(
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

    // ---- budgets ----

    /// The organization's budgets.
    pub async fn budgets(&self, caller: &Caller) -> Result<Vec<BudgetRecord>, AuthError> {
        Ok(self.store.budgets(caller.org).await?)
    }

    /// Creates a budget: on the organization or its end users (admins), on a team (its admins)
    /// or on a key (whoever manages the key's team).
    pub async fn create_budget(
        &self,
        caller: &Caller,
        spec: BudgetSpec,
    ) -> Result<BudgetRecord, AuthError> {
        let period = BudgetPeriod::parse(&spec.period).ok_or_else(|| {
            AuthError::invalid(
                "period",
                "`period` must be daily, weekly, monthly or lifetime.",
            )
        })?;
        let limit_usd = parse_budget_limit(&spec.limit_usd)?;
        let thresholds = validate_thresholds(spec.thresholds)?;
        let target = spec.target.unwrap_or_default();
        let target = match spec.scope.as_str() {
            "organization" => {
                caller.require(Role::Admin, "set the organization's budget")?;
                String::new()
            }
            "user" => {
                caller.require(Role::Admin, "set end-user budgets")?;
                if target.is_empty() || target.len() > 256 || target.chars().any(char::is_control) {
                    return Err(AuthError::invalid(
                        "target",
                        "`target` must be an end-user id (the `user` field of requests), or \"*\" for each end user.",
                    ));
                }
                target
            }
            "team" => {
                let team = self.team(caller, &target).await?;
                self.require_team_admin(caller, team.id, "set this team's budget")
                    .await?;
                team.id.to_string()
            }
            "key" => {
                let record = self.key_record(caller.org, &target).await?;
                self.require_team_admin(caller, record.team_id, "set this key's budget")
                    .await?;
                record.id.to_string()
            }
            _ => {
                return Err(AuthError::invalid(
                    "scope",
                    "`scope` must be organization, team, key or user.",
                ));
            }
        };
        let new = NewBudget {
            scope: spec.scope,
            target,
            period,
            limit_usd,
            thresholds,
        };
        let (budget, stale) = self
            .store
            .create_budget(caller.org, new, &caller.actor())
            .await?;
        self.stale_keys(stale).await;
        Ok(budget)
    }

    /// Changes a budget's limit or thresholds.
    pub async fn update_budget(
        &self,
        caller: &Caller,
        id: &str,
        patch: BudgetPatch,
    ) -> Result<BudgetRecord, AuthError> {
        let budget = self.budget_to_manage(caller, id).await?;
        let limit = patch
            .limit_usd
            .as_ref()
            .map(parse_budget_limit)
            .transpose()?;
        let thresholds = patch
            .thresholds
            .map(|t| validate_thresholds(Some(t)))
            .transpose()?;
        let (updated, stale) = self
            .store
            .update_budget(caller.org, &budget.id, limit, thresholds, &caller.actor())
            .await?
            .ok_or(AuthError::NotFound("budget"))?;
        self.stale_keys(stale).await;
        Ok(updated)
    }

    pub async fn delete_budget(&self, caller: &Caller, id: &str) -> Result<(), AuthError> {
        let budget = self.budget_to_manage(caller, id).await?;
        let stale = self
            .store
            .delete_budget(caller.org, &budget.id, &caller.actor())
            .await?
            .ok_or(AuthError::NotFound("budget"))?;
        self.stale_keys(stale).await;
        Ok(())
    }

    /// A budget of the caller's organization that the caller may change.
    async fn budget_to_manage(&self, caller: &Caller, id: &str) -> Result<BudgetRecord, AuthError> {
        let budget = self
            .store
            .budget(caller.org, id)
            .await?
            .ok_or(AuthError::NotFound("budget"))?;
        let team = match budget.budget_scope() {
            BudgetScope::Team(team) => team.parse::<TeamId>().ok(),
            BudgetScope::Key(key) => Some(self.key_record(caller.org, &key).await?.team_id),
            _ => None,
        };
        match team {
            Some(team) => {
                self.require_team_admin(caller, team, "change this budget")
                    .await?
            }
            None => caller.require(Role::Admin, "change this budget")?,
        }
        Ok(budget)
    }

    /// Where budget alerts go, without the secret.
    pub async fn alert_webhook(&self, caller: &Caller) -> Result<AlertWebhook, AuthError> {
        let webhook = self.store.alert_webhook(caller.org).await?;
        Ok(AlertWebhook {
            url: webhook.map(|(url, _)| url),
            secret: None,
        })
    }

    /// Sets the alert webhook and issues a new signing secret, shown only in this answer;
    /// `url: null` removes it.
    pub async fn set_alert_webhook(
        &self,
        caller: &Caller,
        request: AlertWebhookRequest,
    ) -> Result<AlertWebhook, AuthError> {
        caller.require(Role::Admin, "set the alert webhook")?;
        let Some(url) = request.url else {
            self.store
                .set_alert_webhook(caller.org, None, &caller.actor())
                .await?;
            return Ok(AlertWebhook::default());
        };
        if url.len() > 2048 {
            return Err(AuthError::invalid(
                "url",
                "`url` must be at most 2048 characters.",
            ));
        }
        // Delivery checks again on every connection; this check answers now, rather than
        // with deliveries failing later.
        if let Err(refusal) = self.outbound.check_url_and_resolve(&url).await {
            return Err(AuthError::invalid(
                "url",
                format!("`url` must be a public http(s) URL: {refusal}."),
            ));
        }
        let secret = format!("whsec_{}", random_token());
        self.store
            .set_alert_webhook(caller.org, Some((&url, &secret)), &caller.actor())
            .await?;
        Ok(AlertWebhook {
            url: Some(url),
            secret: Some(secret),
        })
    }

    /// Something about `org` that its keys' contexts carry changed outside this service (its
    /// payment standing, card or credit): every gateway reloads its keys.
    pub async fn organization_changed(&self, org: OrgId) -> Result<(), AuthError> {
        let hashes = self.store.organization_key_hashes(org).await?;
        self.stale_keys(hashes).await;
        Ok(())
    }

    /// Tells every gateway that these keys' cached contexts are stale.
    async fn stale_keys(&self, hashes: Vec<String>) {
        for hash in hashes {
            self.feed.key_changed(&hash).await;
        }
    }

    // ---- virtual keys ----

    pub async fn keys(
        &self,
        caller: &Caller,
        team: Option<&str>,
    ) -> Result<Vec<KeyView>, AuthError> {
        let team = match team {
            Some(team) => Some(self.team(caller, team).await?.id),
            None => None,
        };
        Ok(self
            .store
            .keys(caller.org, team)
            .await?
            .into_iter()
            .map(KeyView::from)
            .collect())
    }

    pub async fn key(&self, caller: &Caller, key: &str) -> Result<KeyView, AuthError> {
        Ok(self.key_record(caller.org, key).await?.into())
    }

    async fn key_record(&self, org: OrgId, key: &str) -> Result<KeyRecord, AuthError> {
        let id = parse_id::<KeyId>(key, "key")?;
        self.store
            .key(org, id)
            .await?
            .ok_or(AuthError::NotFound("key"))
    }

    /// Creates a key in `org`: through the API (`actor` a user, `org` theirs) or the CLI.
    pub async fn create_key(
        &self,
        actor: &Actor,
        org: OrgId,
        spec: KeySpec,
    ) -> Result<IssuedKey, AuthError> {
        let team = match &spec.team_id {
            Some(team) => {
                let team = parse_id::<TeamId>(team, "team")?;
                self.store
                    .team(org, team)
                    .await?
                    .ok_or(AuthError::NotFound("team"))?
            }
            None => self
                .store
                .teams(org)
                .await?
                .into_iter()
                .next()
                .ok_or(AuthError::NotFound("team"))?,
        };
        let created_by = match actor {
            Actor::User(caller) => {
                caller.require(Role::Member, "create keys")?;
                if !caller.role.at_least(Role::Admin)
                    && !self
                        .store
                        .team_role(org, team.id, caller.user)
                        .await?
                        .is_some_and(|r| r.at_least(Role::Member))
                {
                    return Err(AuthError::Forbidden(
                        "You can create keys only in teams where you are a member.".into(),
                    ));
                }
                Some(caller.user)
            }
            Actor::Operator => None,
        };
        self.check_ceiling(
            org,
            ("rpm_limit", "tpm_limit"),
            spec.rpm_limit,
            spec.tpm_limit,
        )
        .await?;
        let generated = generate_key();
        let new = NewKey {
            name: validate_name("name", spec.name.as_deref().unwrap_or("unnamed key"))?,
            key_hash: generated.hash,
            display_prefix: generated.display_prefix,
            allowed_models: validate_models(spec.allowed_models.unwrap_or_default())?,
            expires_at: validate_expiry(spec.expires_at)?,
            rpm_limit: validate_limit("rpm_limit", spec.rpm_limit)?,
            tpm_limit: validate_limit("tpm_limit", spec.tpm_limit)?,
            budget_usd: spec.budget_usd.as_ref().map(parse_usd).transpose()?,
            budget_period: validate_period(spec.budget_period)?,
            tags: validate_tags(spec.tags.unwrap_or_default())?,
            metadata: validate_metadata(spec.metadata.unwrap_or_default())?,
        };
        let record = self
            .store
            .create_key(org, team.id, created_by, new, &actor.label())
            .await?;
        Ok(IssuedKey {
            key: generated.secret,
            view: record.into(),
        })
    }

    pub async fn update_key(
        &self,
        caller: &Caller,
        key: &str,
        patch: KeyPatch,
    ) -> Result<KeyView, AuthError> {
        let record = self.key_record(caller.org, key).await?;
        self.require_key_manager(caller, &record).await?;
        self.check_ceiling(
            caller.org,
            ("rpm_limit", "tpm_limit"),
            patch.rpm_limit.flatten(),
            patch.tpm_limit.flatten(),
        )
        .await?;
        let changes = KeyChanges {
            name: patch.name.map(|n| validate_name("name", &n)).transpose()?,
            allowed_models: patch.allowed_models.map(validate_models).transpose()?,
            expires_at: patch.expires_at.map(validate_expiry).transpose()?,
            rpm_limit: patch
                .rpm_limit
                .map(|v| validate_limit("rpm_limit", v))
                .transpose()?,
            tpm_limit: patch
                .tpm_limit
                .map(|v| validate_limit("tpm_limit", v))
                .transpose()?,
            budget_usd: patch
                .budget_usd
                .map(|v| v.as_ref().map(parse_usd).transpose())
                .transpose()?,
            budget_period: patch.budget_period.map(validate_period).transpose()?,
            tags: patch.tags.map(validate_tags).transpose()?,
            metadata: patch.metadata.map(validate_metadata).transpose()?,
            disabled: patch.disabled,
        };
        let updated = self
            .store
            .update_key(caller.org, record.id, changes, &caller.actor())
            .await?
            .ok_or(AuthError::NotFound("key"))?;
        self.feed.key_changed(&updated.key_hash).await;
        Ok(updated.into())
    }

    /// Revokes a key: through the API (`actor` a user of `org`) or the CLI.
    pub async fn revoke_key(
        &self,
        actor: &Actor,
        org: OrgId,
        key: &str,
    ) -> Result<KeyView, AuthError> {
        let record = self.key_record(org, key).await?;
        if let Actor::User(caller) = actor {
            self.require_key_manager(caller, &record).await?;
        }
        let revoked = self
            .store
            .revoke_key(org, record.id, &actor.label())
            .await?
            .ok_or(AuthError::NotFound("key"))?;
        self.feed.key_changed(&revoked.key_hash).await;
        Ok(revoked.into())
    }

    /// Issues a new secret for a key; the old one works for the grace period, then stops.
    pub async fn rotate_key(
        &self,
        caller: &Caller,
        key: &str,
        request: RotateRequest,
    ) -> Result<IssuedKey, AuthError> {
        let record = self.key_record(caller.org, key).await?;
        self.require_key_manager(caller, &record).await?;
        match record.status(now_ms()) {
            KeyStatus::Active => {}
            KeyStatus::Rotating => {
                return Err(AuthError::Conflict(
                    "This key was already rotated; rotate its replacement instead.".into(),
                ));
            }
            _ => {
                return Err(AuthError::Conflict(
                    "Only an active key can be rotated.".into(),
                ));
            }
        }
        let grace = request
            .grace_seconds
            .unwrap_or(self.config.rotation_grace_secs);
        if grace > 30 * 24 * 3600 {
            return Err(AuthError::invalid(
                "grace_seconds",
                "must be at most 30 days (2592000)",
            ));
        }
        let generated = generate_key();
        let stops_at = now_ms().saturating_add(i64::try_from(grace * 1000).unwrap_or(i64::MAX));
        let (old, new) = self
            .store
            .rotate_key(
                caller.org,
                record.id,
                generated.hash,
                generated.display_prefix,
                stops_at,
                &caller.actor(),
            )
            .await?
            .ok_or(AuthError::NotFound("key"))?;
        self.feed.key_changed(&old.key_hash).await;
        Ok(IssuedKey {
            key: generated.secret,
            view: new.into(),
        })
    }

    async fn require_key_manager(&self, caller: &Caller, key: &KeyRecord) -> Result<(), AuthError> {
        let own = key.created_by == Some(caller.user) && caller.role.at_least(Role::Member);
        if own || caller.role.at_least(Role::Admin) {
            return Ok(());
        }
        if self
            .store
            .team_role(caller.org, key.team_id, caller.user)
            .await?
            == Some(Role::Admin)
        {
            return Ok(());
        }
        Err(AuthError::Forbidden(
            "You can change only keys you created, or those of teams you administer.".into(),
        ))
    }
}

fn millis(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
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

fn validate_models(models: Vec<String>) -> Result<Vec<String>, AuthError> {
    if models.len() > MAX_MODELS {
        return Err(AuthError::invalid(
            "allowed_models",
            format!("at most {MAX_MODELS} entries"),
        ));
    }
    for model in &models {
        if model.is_empty() || model.len() > 200 || model.chars().any(char::is_control) {
            return Err(AuthError::invalid(
                "allowed_models",
                "each entry must be a model name or glob of 1 to 200 characters",
            ));
        }
    }
    Ok(models)
}

fn validate_expiry(expires_at: Option<i64>) -> Result<Option<i64>, AuthError> {
    match expires_at {
        Some(at) if at <= now_ms() => Err(AuthError::invalid(
            "expires_at",
            "`expires_at` (Unix milliseconds) must be in the future.",
        )),
        other => Ok(other),
    }
}

fn validate_limit(param: &str, limit: Option<i64>) -> Result<Option<i64>, AuthError> {
    match limit {
        Some(v) if !(1..=1_000_000_000_000).contains(&v) => Err(AuthError::invalid(
            param,
            format!("`{param}` must be a positive whole number."),
        )),
        other => Ok(other),
    }
}

fn validate_pair(prefix: &str, pair: &RatePair) -> Result<(), AuthError> {
    validate_limit(&format!("{prefix}rpm"), pair.rpm)?;
    validate_limit(&format!("{prefix}tpm"), pair.tpm)?;
    Ok(())
}

fn validate_period(period: Option<String>) -> Result<Option<String>, AuthError> {
    match period.as_deref() {
        None | Some("daily" | "weekly" | "monthly" | "lifetime") => Ok(period),
        Some(_) => Err(AuthError::invalid(
            "budget_period",
            "`budget_period` must be daily, weekly, monthly or lifetime.",
        )),
    }
}

fn validate_tags(tags: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AuthError> {
    if tags.len() > MAX_TAGS {
        return Err(AuthError::invalid(
            "tags",
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    for (key, value) in &tags {
        // Tags travel with every usage event into the ledger's tag rollups, whose text
        // columns cannot hold NUL (PostgreSQL) and whose index keys must stay small.
        if key.is_empty()
            || key.len() > 64
            || value.len() > 256
            || key.chars().chain(value.chars()).any(char::is_control)
        {
            return Err(AuthError::invalid(
                "tags",
                "tag names must be 1 to 64 bytes and values at most 256, without control characters",
            ));
        }
    }
    Ok(tags)
}

fn validate_metadata(
    metadata: serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Map<String, serde_json::Value>, AuthError> {
    let size = serde_json::to_vec(&metadata)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(AuthError::invalid(
            "metadata",
            format!("`metadata` must be at most {MAX_METADATA_BYTES} bytes of JSON."),
        ));
    }
    Ok(metadata)
}

/// A budget to create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// `organization`, `team`, `key` or `user`.
    pub scope: String,
    /// The team (id or name), key id, or end user (`*` for each end user); none for the
    /// organization.
    #[serde(default)]
    pub target: Option<String>,
    pub period: String,
    /// USD, as a string (`"25.00"`) or a number.
    pub limit_usd: serde_json::Value,
    /// Alert thresholds in percent of the limit; 50, 80 and 100 by default.
    #[serde(default)]
    pub thresholds: Option<Vec<u32>>,
}

/// A change of a budget's limit or thresholds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetPatch {
    #[serde(default)]
    pub limit_usd: Option<serde_json::Value>,
    #[serde(default)]
    pub thresholds: Option<Vec<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertWebhookRequest {
    pub url: Option<String>,
}

/// The alert webhook; `secret` only in the answer that issued it.
#[derive(Debug, Default, Serialize)]
pub struct AlertWebhook {
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The largest budget: shared budget counters are exact to the nanodollar up to about nine
/// million dollars.
const MAX_BUDGET_USD: u32 = 1_000_000;

fn parse_budget_limit(value: &serde_json::Value) -> Result<Decimal, AuthError> {
    let amount = parse_amount("limit_usd", value)?;
    if amount > Decimal::from(MAX_BUDGET_USD) {
        return Err(AuthError::invalid(
            "limit_usd",
            format!("`limit_usd` must be at most {MAX_BUDGET_USD}."),
        ));
    }
    Ok(amount)
}

/// Sorted, distinct percentages from 1 to 1000; at most ten.
fn validate_thresholds(thresholds: Option<Vec<u32>>) -> Result<Vec<u32>, AuthError> {
    let Some(mut thresholds) = thresholds else {
        return Ok(DEFAULT_THRESHOLDS.to_vec());
    };
    thresholds.sort_unstable();
    thresholds.dedup();
    if thresholds.len() > 10 || thresholds.iter().any(|t| !(1..=1000).contains(t)) {
        return Err(AuthError::invalid(
            "thresholds",
            "`thresholds` must be at most ten percentages from 1 to 1000.",
        ));
    }
    Ok(thresholds)
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
