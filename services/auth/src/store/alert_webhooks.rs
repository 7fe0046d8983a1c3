//! Where an organization's budget alerts go: a webhook URL and the secret its deliveries are
//! signed with.

use sqlx::Row;
use tollgate_common::OrgId;

use super::audit::AuditEntry;
use super::{AuthStore, StoreError};

impl AuthStore {
    /// The organization's alert webhook: its URL and signing secret.
    pub async fn alert_webhook(&self, org: OrgId) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT alert_webhook_url, alert_webhook_secret FROM organizations WHERE id = $1",
        )
        .bind(org.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let url: Option<String> = row.try_get("alert_webhook_url")?;
        let secret: Option<String> = row.try_get("alert_webhook_secret")?;
        Ok(url.zip(secret))
    }

    /// Sets (or with `None`, removes) the alert webhook, with a new signing secret.
    pub async fn set_alert_webhook(
        &self,
        org: OrgId,
        webhook: Option<(&str, &str)>,
        actor: &str,
    ) -> Result<(), StoreError> {
        self.write_audited(async |conn| {
            sqlx::query(
                "UPDATE organizations SET alert_webhook_url = $1, alert_webhook_secret = $2 \
                 WHERE id = $3",
            )
            .bind(webhook.map(|(url, _)| url.to_owned()))
            .bind(webhook.map(|(_, secret)| secret.to_owned()))
            .bind(org.to_string())
            .execute(&mut *conn)
            .await?;
            // The secret never reaches the audit log.
            let entry = AuditEntry::new(org, actor, "organization.alert_webhook", "organization")
                .target(org)
                .after(serde_json::json!({ "url": webhook.map(|(url, _)| url) }));
            Ok(((), entry))
        })
        .await
    }
}
