//! Organizations' own provider keys, stored sealed (see [`crate::provider_keys`]).

use serde::Serialize;
use serde_json::json;
use sqlx::Row;
use tollgate_common::{OrgId, UserId};

use super::audit::AuditEntry;
use super::{AuthStore, StoreError, now_ms};
use crate::provider_keys::SealedProviderKey;

/// An organization's provider key as the API shows it: the provider and the last four
/// characters, never the key.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProviderKeyRecord {
    pub provider: String,
    pub hint: String,
    pub created_by: Option<UserId>,
    pub created_at: i64,
}

impl AuthStore {
    /// Sets (or replaces) `org`'s key for `provider`.
    pub async fn set_provider_key(
        &self,
        org: OrgId,
        sealed: &SealedProviderKey,
        hint: &str,
        actor: UserId,
    ) -> Result<ProviderKeyRecord, StoreError> {
        let now = now_ms();
        self.write_audited(async |conn| {
            sqlx::query("DELETE FROM provider_keys WHERE org_id = $1 AND provider = $2")
                .bind(org.to_string())
                .bind(&sealed.provider)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
            "INSERT INTO provider_keys (org_id, provider, sealed, hint, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(org.to_string())
        .bind(&sealed.provider)
        .bind(&sealed.sealed)
        .bind(hint)
        .bind(actor.to_string())
        .bind(now)
        .execute(&mut *conn)
        .await?;
            let entry = AuditEntry::new(
                org,
                &format!("user:{actor}"),
                "provider_key.set",
                "provider_key",
            )
            .target(&sealed.provider)
            .after(json!({ "provider": sealed.provider, "hint": hint }));
            Ok((
                ProviderKeyRecord {
                    provider: sealed.provider.clone(),
                    hint: hint.to_owned(),
                    created_by: Some(actor),
                    created_at: now,
                },
                entry,
            ))
        })
        .await
    }

    /// `org`'s provider keys as shown, by provider.
    pub async fn provider_keys(&self, org: OrgId) -> Result<Vec<ProviderKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT provider, hint, created_by, created_at FROM provider_keys \
             WHERE org_id = $1 ORDER BY provider",
        )
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let created_by: Option<String> = row.try_get("created_by")?;
                Ok(ProviderKeyRecord {
                    provider: row.try_get("provider")?,
                    hint: row.try_get("hint")?,
                    created_by: created_by.and_then(|id| id.parse().ok()),
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// `org`'s provider keys, sealed: what its virtual keys carry to the gateways.
    pub async fn sealed_provider_keys(
        &self,
        org: OrgId,
    ) -> Result<Vec<SealedProviderKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT provider, sealed FROM provider_keys WHERE org_id = $1 ORDER BY provider",
        )
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SealedProviderKey {
                    provider: row.try_get("provider")?,
                    sealed: row.try_get("sealed")?,
                })
            })
            .collect()
    }

    /// Removes `org`'s key for `provider`; whether there was one.
    pub async fn delete_provider_key(
        &self,
        org: OrgId,
        provider: &str,
        actor: UserId,
    ) -> Result<bool, StoreError> {
        self.write_audited(async |conn| {
            let deleted =
                sqlx::query("DELETE FROM provider_keys WHERE org_id = $1 AND provider = $2")
                    .bind(org.to_string())
                    .bind(provider)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected()
                    > 0;
            let entry = deleted.then(|| {
                AuditEntry::new(
                    org,
                    &format!("user:{actor}"),
                    "provider_key.delete",
                    "provider_key",
                )
                .target(provider)
            });
            Ok((deleted, entry))
        })
        .await
    }
}
