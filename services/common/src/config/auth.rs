//! The `auth` section: sign-up, sessions, virtual-key verification, and how mail reaches
//! users; with the checks of the settings that protect logins, sign-ups and stored secrets.

use std::collections::HashSet;

use serde::Deserialize;

use super::billing::decoded_len;
use super::{ConfigProblem, IpNetwork, Secret, is_http_url, problem};

/// Sign-up, sessions and virtual-key verification.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether `POST /auth/signup` is open to anyone.
    pub signup_enabled: bool,
    /// Lifetime of a JWT access token.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token (each use replaces it with a new one).
    pub refresh_token_ttl_secs: u64,
    /// How long a session lasts from its login, however often its refresh token is rotated;
    /// then the user logs in again.
    pub session_max_lifetime_secs: u64,
    /// The `iss` and `aud` of access tokens.
    pub issuer: String,
    /// HMAC keys for access tokens; the first signs, all verify, so that a key can be rotated
    /// by adding the new one first and removing the old one a token lifetime later. Without
    /// any, a key is generated once and kept in the database, shared by every replica.
    pub signing_keys: Vec<SigningKeyConfig>,
    /// How long a verified key is trusted from memory without asking storage again. With
    /// Redis, changes reach every replica at once and this is only a safety net.
    pub key_cache_ttl_secs: u64,
    /// How long a rotated key keeps working unless the rotation says otherwise.
    pub rotation_grace_secs: u64,
    pub login_throttle: LoginThrottleConfig,
    /// Sign-ups one client may make per window, successful ones included.
    pub signup_throttle: SignupThrottleConfig,
    /// Proxies (CIDRs) whose `X-Forwarded-For` names the client; from any other peer the
    /// header is ignored, since a client could write anything in it.
    pub trusted_proxies: Vec<IpNetwork>,
    /// The AES-256 key (32 bytes, base64) that the generated JWT signing key is encrypted
    /// with in the database. Without it that key is stored as is.
    pub encryption_key: Option<Secret>,
    /// How a sign-up proves its address.
    pub signup: SignupConfig,
    /// How mail is sent; without it, none is.
    pub mailer: Option<MailerConfig>,
    /// The dashboard's address, which links in mail point to (`https://tollgate.example.com`).
    pub public_url: Option<String>,
    /// A split deployment's auth service (`http://auth:8080`): keys are verified there over
    /// HTTP instead of in this process.
    pub service_url: Option<String>,
    /// Shared secret that the gateway presents to the auth service's internal endpoints.
    pub service_token: Option<Secret>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            signup_enabled: true,
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            session_max_lifetime_secs: 30 * 24 * 3600,
            issuer: "tollgate".into(),
            signing_keys: Vec::new(),
            key_cache_ttl_secs: 10,
            rotation_grace_secs: 24 * 3600,
            login_throttle: LoginThrottleConfig::default(),
            signup_throttle: SignupThrottleConfig::default(),
            trusted_proxies: Vec::new(),
            encryption_key: None,
            signup: SignupConfig::default(),
            mailer: None,
            public_url: None,
            service_url: None,
            service_token: None,
        }
    }
}

impl AuthConfig {
    /// Whether sign-ups wait for a mailed link: as configured, else whenever mail can be sent.
    pub fn verifies_signups(&self) -> bool {
        self.signup.verify_email.unwrap_or(self.mailer.is_some())
    }
}

/// Sign-up's address check.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignupConfig {
    /// Whether a sign-up waits for its address to be confirmed through a mailed link before
    /// the account exists (needs `auth.mailer`); sign-up then answers alike whether or not the
    /// address has an account. Unset, it is on when a mailer is configured: without mail an
    /// account can only be given at once, which means refusing a taken address.
    pub verify_email: Option<bool>,
}

/// One JWT signing key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyConfig {
    /// Key id, written in each token's header.
    pub kid: String,
    /// At least 32 bytes.
    pub secret: Secret,
}

/// Sign-ups allowed from one client (an IPv4 address or an IPv6 /64) per window, counting
/// those that made an account: every new organization gets the free allowance, so a client
/// making organizations by the hundred is the abuse, not one guessing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignupThrottleConfig {
    pub per_ip: u32,
    pub window_secs: u64,
}

impl Default for SignupThrottleConfig {
    fn default() -> Self {
        SignupThrottleConfig {
            per_ip: 10,
            window_secs: 3600,
        }
    }
}

/// Failed logins allowed per window before further attempts are refused. A client is an
/// IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginThrottleConfig {
    /// Failures on one account from one client.
    pub per_email_per_client: u32,
    /// Failures from one client, whatever the accounts.
    pub per_ip: u32,
    /// Failures on one account from all clients together: a ceiling on guessing from many
    /// addresses at once. Reaching it locks the account for everyone until the window ends,
    /// so it is kept far above `per_email_per_client`.
    pub per_email: u32,
    pub window_secs: u64,
}

impl Default for LoginThrottleConfig {
    fn default() -> Self {
        LoginThrottleConfig {
            per_email_per_client: 10,
            per_ip: 100,
            per_email: 1000,
            window_secs: 900,
        }
    }
}

/// How the auth service sends mail (sign-up confirmations, notices to account owners).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MailerConfig {
    /// Writes each message to the log instead of sending it: for development.
    Log,
    /// POSTs each message as JSON (`{"to", "subject", "text"}`) to a service that sends it,
    /// with `Authorization: Bearer <token>` when a token is set.
    Webhook {
        url: String,
        #[serde(default)]
        token: Option<Secret>,
    },
}

pub(super) fn validate_auth(auth: &AuthConfig, problems: &mut Vec<ConfigProblem>) {
    for (field, value) in [
        ("access_token_ttl_secs", auth.access_token_ttl_secs),
        ("refresh_token_ttl_secs", auth.refresh_token_ttl_secs),
        ("key_cache_ttl_secs", auth.key_cache_ttl_secs),
        (
            "login_throttle.window_secs",
            auth.login_throttle.window_secs,
        ),
        (
            "signup_throttle.window_secs",
            auth.signup_throttle.window_secs,
        ),
        (
            "signup_throttle.per_ip",
            u64::from(auth.signup_throttle.per_ip),
        ),
    ] {
        if value == 0 {
            problems.push(problem(format!("auth.{field}"), "must be greater than 0"));
        }
    }
    if auth.issuer.is_empty() {
        problems.push(problem("auth.issuer", "must not be empty"));
    }
    let mut kids = HashSet::new();
    for (i, key) in auth.signing_keys.iter().enumerate() {
        if key.kid.is_empty() || key.kid.len() > 64 {
            problems.push(problem(
                format!("auth.signing_keys[{i}].kid"),
                "must be 1 to 64 characters",
            ));
        } else if !kids.insert(key.kid.as_str()) {
            problems.push(problem(
                format!("auth.signing_keys[{i}].kid"),
                format!("`{}` is used twice", key.kid),
            ));
        }
        if key.secret.expose().len() < 32 {
            problems.push(problem(
                format!("auth.signing_keys[{i}].secret"),
                "must be at least 32 bytes",
            ));
        }
    }
    if let Some(url) = &auth.service_url
        && !is_http_url(url)
    {
        problems.push(problem(
            "auth.service_url",
            format!("`{url}` is not an http:// or https:// URL"),
        ));
    }
    if auth.service_url.is_some() && auth.service_token.is_none() {
        problems.push(problem(
            "auth.service_token",
            "is required when auth.service_url is set",
        ));
    }
    validate_accounts(auth, problems);
}

/// Checks the account and session settings of `auth`, naming each field.
fn validate_accounts(auth: &AuthConfig, problems: &mut Vec<ConfigProblem>) {
    let throttle = &auth.login_throttle;
    for (field, value) in [
        ("per_email_per_client", throttle.per_email_per_client),
        ("per_ip", throttle.per_ip),
        ("per_email", throttle.per_email),
    ] {
        if value == 0 {
            problems.push(problem(
                format!("auth.login_throttle.{field}"),
                "must be greater than 0",
            ));
        }
    }
    if throttle.per_email <= throttle.per_email_per_client {
        problems.push(problem(
            "auth.login_throttle.per_email",
            format!(
                "must be greater than per_email_per_client ({}): it counts the failures of all \
                 clients together, and one as low lets a single client lock the account",
                throttle.per_email_per_client
            ),
        ));
    }
    if auth.session_max_lifetime_secs == 0 {
        problems.push(problem(
            "auth.session_max_lifetime_secs",
            "must be greater than 0",
        ));
    }
    if let Some(key) = &auth.encryption_key
        && decoded_len(key.expose()) != Some(32)
    {
        problems.push(problem(
            "auth.encryption_key",
            "must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)",
        ));
    }
    match &auth.public_url {
        Some(url) if !is_http_url(url) => problems.push(problem(
            "auth.public_url",
            format!("`{url}` is not an http:// or https:// URL"),
        )),
        None if auth.mailer.is_some() => problems.push(problem(
            "auth.public_url",
            "is required with auth.mailer (links in mail point there)",
        )),
        _ => {}
    }
    if let Some(MailerConfig::Webhook { url, .. }) = &auth.mailer
        && !is_http_url(url)
    {
        problems.push(problem(
            "auth.mailer.url",
            format!("`{url}` is not an http:// or https:// URL"),
        ));
    }
    if auth.signup.verify_email == Some(true) && auth.mailer.is_none() {
        problems.push(problem(
            "auth.mailer",
            "is required with auth.signup.verify_email (the confirmation link is mailed)",
        ));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::config::{Config, MailerConfig};

    fn paths(yaml: &str) -> Vec<String> {
        match Config::parse(yaml, &BTreeMap::<String, String>::new()) {
            Ok(_) => Vec::new(),
            Err(err) => err.problems().iter().map(|p| p.path.clone()).collect(),
        }
    }

    #[test]
    fn trusted_proxies_are_networks_named_by_their_field() {
        let config = Config::parse(
            "auth: { trusted_proxies: [\"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.1\"] }",
            &BTreeMap::<String, String>::new(),
        )
        .unwrap();
        assert_eq!(config.auth.trusted_proxies.len(), 3);
        assert_eq!(
            paths("auth: { trusted_proxies: [\"10.0.0.0/8\", \"10.0.0.0/40\"] }"),
            ["auth.trusted_proxies[1]"]
        );
        assert_eq!(
            paths("auth: { trusted_proxies: [\"load-balancer\"] }"),
            ["auth.trusted_proxies[0]"]
        );
    }

    #[test]
    fn account_settings_are_checked_field_by_field() {
        assert!(paths("auth: { session_max_lifetime_secs: 86400 }").is_empty());
        assert_eq!(
            paths("auth: { session_max_lifetime_secs: 0 }"),
            ["auth.session_max_lifetime_secs"]
        );
        // A ceiling over all clients no higher than one client's allowance lets one client
        // lock the account.
        assert_eq!(
            paths("auth: { login_throttle: { per_email: 10 } }"),
            ["auth.login_throttle.per_email"]
        );
        assert_eq!(
            paths("auth: { login_throttle: { per_ip: 0 } }"),
            ["auth.login_throttle.per_ip"]
        );
        assert_eq!(
            paths("auth: { encryption_key: \"c2hvcnQ=\" }"),
            ["auth.encryption_key"]
        );
        assert_eq!(
            paths("auth: { signup: { verify_email: true } }"),
            ["auth.mailer"]
        );
        assert_eq!(
            paths("auth: { mailer: { kind: log } }"),
            ["auth.public_url"]
        );
        assert_eq!(
            paths(
                "auth: { mailer: { kind: webhook, url: \"mail\" }, public_url: \"https://t.example\" }"
            ),
            ["auth.mailer.url"]
        );
        assert_eq!(
            paths("auth: { mailer: { kind: smtp }, public_url: \"https://t.example\" }"),
            ["auth.mailer.kind"]
        );
        let config = Config::parse(
            "auth: { signup: { verify_email: true }, public_url: \"https://t.example\", \
             mailer: { kind: webhook, url: \"https://mail.example/send\", token: t } }",
            &BTreeMap::<String, String>::new(),
        )
        .unwrap();
        assert!(matches!(
            config.auth.mailer,
            Some(MailerConfig::Webhook { .. })
        ));
    }

    #[test]
    fn sign_up_verifies_addresses_once_mail_can_be_sent_unless_told_otherwise() {
        let parse = |yaml: &str| {
            Config::parse(yaml, &BTreeMap::<String, String>::new())
                .unwrap()
                .auth
        };
        let mail = "public_url: \"https://t.example\", mailer: { kind: log }";
        assert!(!parse("auth: {}").verifies_signups());
        assert!(parse(&format!("auth: {{ {mail} }}")).verifies_signups());
        assert!(
            !parse(&format!(
                "auth: {{ {mail}, signup: {{ verify_email: false }} }}"
            ))
            .verifies_signups()
        );
        assert!(
            parse(&format!(
                "auth: {{ {mail}, signup: {{ verify_email: true }} }}"
            ))
            .verifies_signups()
        );
    }
}
