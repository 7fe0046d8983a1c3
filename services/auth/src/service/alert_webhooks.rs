//! The webhook budget alerts are sent to, and its signing secret.

use serde::{Deserialize, Serialize};

use super::{AuthService, Caller};
use crate::error::AuthError;
use crate::roles::Role;
use crate::secrets::random_token;

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

impl AuthService {
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
}
