//! The parts of the `auth` section about accounts and sessions: how mail reaches users, and
//! the checks of the settings that protect logins, sign-ups and stored secrets.

use serde::Deserialize;

use super::billing::decoded_len;
use super::{AuthConfig, ConfigProblem, Secret, is_http_url, problem};

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

/// Checks the account and session settings of `auth`, naming each field.
pub(super) fn validate_accounts(auth: &AuthConfig, problems: &mut Vec<ConfigProblem>) {
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
