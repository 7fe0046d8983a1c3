//! Mail to users: sign-up confirmation links and notices to account owners (`auth.mailer`).
//!
//! Messages are sent off the request path (see [`AuthService`](crate::AuthService)), so that
//! how long a mail service takes never shows in an answer's timing.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tollgate_common::Secret;
use tollgate_common::config::MailerConfig;

/// One message, in plain text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot reach the mail service: {0}")]
    Unreachable(String),
    #[error("the mail service answered {0}")]
    Refused(u16),
}

/// Sends mail.
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: Mail) -> Result<(), MailError>;
}

/// Writes each message to the log instead of sending it: for development, where the
/// confirmation link is read from the log.
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        tracing::info!(to = %mail.to, subject = %mail.subject, text = %mail.text, "mail (not sent: auth.mailer is `log`)");
        Ok(())
    }
}

/// POSTs each message as JSON to a service that sends it.
pub struct WebhookMailer {
    client: reqwest::Client,
    url: String,
    token: Option<Secret>,
}

impl WebhookMailer {
    pub fn new(url: &str, token: Option<Secret>) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(WebhookMailer {
            client,
            url: url.to_owned(),
            token,
        })
    }
}

#[async_trait]
impl Mailer for WebhookMailer {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        let mut request = self.client.post(&self.url).json(&mail);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|e| MailError::Unreachable(e.to_string()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(MailError::Refused(response.status().as_u16()))
        }
    }
}

/// The mailer `auth.mailer` describes.
pub fn configured(config: &MailerConfig) -> Result<Box<dyn Mailer>, reqwest::Error> {
    Ok(match config {
        MailerConfig::Log => Box::new(LogMailer),
        MailerConfig::Webhook { url, token } => Box::new(WebhookMailer::new(url, token.clone())?),
    })
}

/// The message that confirms a sign-up. The organization's name is left out: it is the
/// requester's text, and this goes to an address the requester may not own.
pub fn signup_confirmation(to: &str, public_url: &str, token: &str) -> Mail {
    let base = public_url.trim_end_matches('/');
    Mail {
        to: to.to_owned(),
        subject: "Confirm your Tollgate account".into(),
        text: format!(
            "Someone, hopefully you, asked to create a Tollgate account with this address.\n\n\
             To confirm it, open this link within 24 hours:\n\n{base}/#/verify/{token}\n\n\
             If it was not you, ignore this message: nothing is created without the link.\n"
        ),
    }
}

/// The message to the owner of an address that someone tried to sign up again with.
pub fn signup_for_existing_account(to: &str, public_url: &str) -> Mail {
    let base = public_url.trim_end_matches('/');
    Mail {
        to: to.to_owned(),
        subject: "Someone tried to sign up with your Tollgate address".into(),
        text: format!(
            "Someone asked to create a Tollgate account with this address, which already has \
             one. Nothing was changed.\n\nIf it was you, log in instead: {base}/#/login\n\n\
             If it was not, you need not do anything.\n"
        ),
    }
}
