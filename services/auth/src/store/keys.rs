//! Virtual keys: only a SHA-256 of each key is stored, with a short prefix to recognize it by.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tollgate_common::{KeyId, OrgId, TeamId, UserId};

use super::audit::{AuditEntry, record};
use super::{AuthStore, StoreError, id_column, json_column, now_ms, optional_id_column};

/// A key as stored, without its secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyRecord {
    pub id: KeyId,
    pub org_id: OrgId,
    pub team_id: TeamId,
    pub created_by: Option<UserId>,
    pub name: String,
    /// The first characters of the key, to tell keys apart in lists.
    pub display_prefix: String,
    /// Exact model names and globs; empty allows every model.
    pub allowed_models: Vec<String>,
    pub expires_at: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    #[serde(with = "rust_decimal::serde::str_option")]
    pub budget_usd: Option<Decimal>,
    pub budget_period: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub disabled: bool,
    pub revoked_at: Option<i64>,
    /// Set on a key that was rotated: the key that replaces it.
    pub rotated_to: Option<KeyId>,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(skip)]
    pub key_hash: String,
}

/// A key with the limits it inherits from its team and organization: what verification needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerifiedKey {
    pub key: KeyRecord,
    pub team: super::TeamLimits,
    pub org: super::RatePair,
    /// Every budget that applies to the key's requests.
    #[serde(default)]
    pub budgets: Vec<tollgate_common::BudgetRule>,
    /// The key's cache policy merged with its team's and organization's.
    #[serde(default)]
    pub cache: tollgate_common::CachePolicy,
    /// The guardrail policies of the key's organization, team and the key itself, widest
    /// first, named by their level; levels that set nothing are left out.
    #[serde(default)]
    pub guardrails: Vec<tollgate_common::guardrails::NamedPolicy>,
    /// The organization's payment standing, card and prepaid credit.
    #[serde(default)]
    pub billing: tollgate_common::BillingFacts,
    /// The organization's own provider keys, sealed: opened only by the gateway that uses them.
    #[serde(default)]
    pub provider_keys: Vec<crate::provider_keys::SealedProviderKey>,
}

/// Whether a key opens the gateway at a given moment, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    /// Replaced by a rotation; works until its grace period ends.
    Rotating,
    Disabled,
    Expired,
    Revoked,
}

impl KeyRecord {
    pub fn status(&self, now_ms: i64) -> KeyStatus {
        if self.revoked_at.is_some_and(|at| at <= now_ms) {
            KeyStatus::Revoked
        } else if self.disabled {
            KeyStatus::Disabled
        } else if self.expires_at.is_some_and(|at| at <= now_ms) {
            KeyStatus::Expired
        } else if self.rotated_to.is_some() {
            KeyStatus::Rotating
        } else {
            KeyStatus::Active
        }
    }
}

/// Everything a new key is created with.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    pub key_hash: String,
    pub display_prefix: String,
    pub allowed_models: Vec<String>,
    pub expires_at: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub budget_usd: Option<Decimal>,
    pub budget_period: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// A partial update: `None` leaves a field alone, `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default)]
pub struct KeyChanges {
    pub name: Option<String>,
    pub allowed_models: Option<Vec<String>>,
    pub expires_at: Option<Option<i64>>,
    pub rpm_limit: Option<Option<i64>>,
    pub tpm_limit: Option<Option<i64>>,
    pub budget_usd: Option<Option<Decimal>>,
    pub budget_period: Option<Option<String>>,
    pub tags: Option<BTreeMap<String, String>>,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    pub disabled: Option<bool>,
}

/// The columns of `virtual_keys`, in the order of [`key_from_row`]'s reads.
macro_rules! key_columns {
    () => {
        "id, org_id, team_id, created_by, name, key_hash, display_prefix, allowed_models, \
         expires_at, rpm_limit, tpm_limit, budget_usd, budget_period, tags, metadata, \
         disabled_at, revoked_at, rotated_to, last_used_at, created_at, updated_at"
    };
}

fn key_from_row(row: &AnyRow) -> Result<KeyRecord, StoreError> {
    const TABLE: &str = "virtual_keys";
    let budget: Option<String> = row.try_get("budget_usd")?;
    let budget_usd = budget
        .map(|text| {
            text.parse::<Decimal>().map_err(|e| StoreError::Corrupt {
                table: TABLE,
                detail: format!("budget_usd = {text:?}: {e}"),
            })
        })
        .transpose()?;
    let disabled_at: Option<i64> = row.try_get("disabled_at")?;
    Ok(KeyRecord {
        id: id_column(row, "id", TABLE)?,
        org_id: id_column(row, "org_id", TABLE)?,
        team_id: id_column(row, "team_id", TABLE)?,
        created_by: optional_id_column(row, "created_by", TABLE)?,
        name: row.try_get("name")?,
        display_prefix: row.try_get("display_prefix")?,
        allowed_models: json_column(row, "allowed_models", TABLE)?,
        expires_at: row.try_get("expires_at")?,
        rpm_limit: row.try_get("rpm_limit")?,
        tpm_limit: row.try_get("tpm_limit")?,
        budget_usd,
        budget_period: row.try_get("budget_period")?,
        tags: json_column(row, "tags", TABLE)?,
        metadata: json_column(row, "metadata", TABLE)?,
        disabled: disabled_at.is_some(),
        revoked_at: row.try_get("revoked_at")?,
        rotated_to: optional_id_column(row, "rotated_to", TABLE)?,
        last_used_at: row.try_get("last_used_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        key_hash: row.try_get("key_hash")?,
    })
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

pub(super) async fn insert_key(
    conn: &mut AnyConnection,
    org: OrgId,
    team: TeamId,
    created_by: Option<UserId>,
    new: NewKey,
    actor: &str,
) -> Result<KeyRecord, StoreError> {
    let now = now_ms();
    let key = KeyRecord {
        id: KeyId::generate(),
        org_id: org,
        team_id: team,
        created_by,
        name: new.name,
        display_prefix: new.display_prefix,
        allowed_models: new.allowed_models,
        expires_at: new.expires_at,
        rpm_limit: new.rpm_limit,
        tpm_limit: new.tpm_limit,
        budget_usd: new.budget_usd,
        budget_period: new.budget_period,
        tags: new.tags,
        metadata: new.metadata,
        disabled: false,
        revoked_at: None,
        rotated_to: None,
        last_used_at: None,
        created_at: now,
        updated_at: now,
        key_hash: new.key_hash,
    };
    sqlx::query(concat!(
        "INSERT INTO virtual_keys (",
        key_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         NULL, NULL, NULL, NULL, $16, $17)"
    ))
    .bind(key.id.to_string())
    .bind(org.to_string())
    .bind(team.to_string())
    .bind(created_by.map(|u| u.to_string()))
    .bind(&key.name)
    .bind(&key.key_hash)
    .bind(&key.display_prefix)
    .bind(to_json(&key.allowed_models))
    .bind(key.expires_at)
    .bind(key.rpm_limit)
    .bind(key.tpm_limit)
    .bind(key.budget_usd.map(|d| d.to_string()))
    .bind(key.budget_period.clone())
    .bind(to_json(&key.tags))
    .bind(to_json(&key.metadata))
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    record(
        conn,
        AuditEntry::new(org, actor, "key.create", "virtual_key")
            .target(key.id)
            .after(json!(key)),
    )
    .await?;
    Ok(key)
}

async fn key_in(
    conn: &mut AnyConnection,
    org: OrgId,
    id: KeyId,
) -> Result<Option<KeyRecord>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        key_columns!(),
        " FROM virtual_keys WHERE org_id = $1 AND id = $2"
    ))
    .bind(org.to_string())
    .bind(id.to_string())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(key_from_row).transpose()
}

impl AuthStore {
    pub async fn create_key(
        &self,
        org: OrgId,
        team: TeamId,
        created_by: Option<UserId>,
        new: NewKey,
        actor: &str,
    ) -> Result<KeyRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let key = insert_key(&mut tx, org, team, created_by, new, actor).await?;
        tx.commit().await?;
        Ok(key)
    }

    /// Keys of `org`, newest first; only those of `team` when given.
    pub async fn keys(
        &self,
        org: OrgId,
        team: Option<TeamId>,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM virtual_keys WHERE org_id = $1 AND ($2 IS NULL OR team_id = $2) \
             ORDER BY created_at DESC"
        ))
        .bind(org.to_string())
        .bind(team.map(|t| t.to_string()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    pub async fn key(&self, org: OrgId, id: KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        key_in(&mut conn, org, id).await
    }

    /// The key whose secret hashes to `key_hash`, with its team's and organization's limits.
    /// Not scoped by organization: the secret itself is the proof of whose key it is.
    pub async fn verified_key(&self, key_hash: &str) -> Result<Option<VerifiedKey>, StoreError> {
        let Some(key) = self.key_by_hash(key_hash).await? else {
            return Ok(None);
        };
        let team = self
            .team_limits(key.org_id, key.team_id)
            .await?
            .unwrap_or_default();
        let org = self.org_limits(key.org_id).await?.unwrap_or_default();
        let budgets = self.budget_rules(&key).await?;
        let inherited = self
            .inherited_policies(key.org_id, key.team_id, key.id)
            .await?;
        let billing = self.billing_facts(key.org_id).await?;
        let provider_keys = if billing.own_provider_keys {
            self.sealed_provider_keys(key.org_id).await?
        } else {
            Vec::new()
        };
        Ok(Some(VerifiedKey {
            key,
            team,
            org,
            budgets,
            cache: inherited.cache,
            guardrails: inherited.guardrails,
            billing,
            provider_keys,
        }))
    }

    /// The key whose secret hashes to `key_hash`. Not scoped by organization: the secret
    /// itself is the proof of which organization's key it is.
    pub async fn key_by_hash(&self, key_hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM virtual_keys WHERE key_hash = $1"
        ))
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// Applies `changes`; `None` when `org` has no such key.
    pub async fn update_key(
        &self,
        org: OrgId,
        id: KeyId,
        changes: KeyChanges,
        actor: &str,
    ) -> Result<Option<KeyRecord>, StoreError> {
        self.write_audited(async |conn| {
            let Some(before) = key_in(conn, org, id).await? else {
                return Ok((None, None));
            };
            let mut after = before.clone();
            let now = now_ms();
            if let Some(name) = changes.name {
                after.name = name;
            }
            if let Some(models) = changes.allowed_models {
                after.allowed_models = models;
            }
            if let Some(expires_at) = changes.expires_at {
                after.expires_at = expires_at;
            }
            if let Some(rpm) = changes.rpm_limit {
                after.rpm_limit = rpm;
            }
            if let Some(tpm) = changes.tpm_limit {
                after.tpm_limit = tpm;
            }
            if let Some(budget) = changes.budget_usd {
                after.budget_usd = budget;
            }
            if let Some(period) = changes.budget_period {
                after.budget_period = period;
            }
            if let Some(tags) = changes.tags {
                after.tags = tags;
            }
            if let Some(metadata) = changes.metadata {
                after.metadata = metadata;
            }
            let disabled_at: Option<i64> = match changes.disabled {
                Some(true) if !before.disabled => Some(now),
                Some(false) => None,
                _ => sqlx::query("SELECT disabled_at FROM virtual_keys WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get("disabled_at")?,
            };
            after.disabled = disabled_at.is_some();
            after.updated_at = now;
            sqlx::query(
                "UPDATE virtual_keys SET name = $1, allowed_models = $2, expires_at = $3, \
                 rpm_limit = $4, tpm_limit = $5, budget_usd = $6, budget_period = $7, tags = $8, \
                 metadata = $9, disabled_at = $10, updated_at = $11 \
                 WHERE org_id = $12 AND id = $13",
            )
            .bind(&after.name)
            .bind(to_json(&after.allowed_models))
            .bind(after.expires_at)
            .bind(after.rpm_limit)
            .bind(after.tpm_limit)
            .bind(after.budget_usd.map(|d| d.to_string()))
            .bind(after.budget_period.clone())
            .bind(to_json(&after.tags))
            .bind(to_json(&after.metadata))
            .bind(disabled_at)
            .bind(now)
            .bind(org.to_string())
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
            let entry =
                AuditEntry::change(org, actor, "key.update", "virtual_key", id, &before, &after);
            Ok((Some(after), Some(entry)))
        })
        .await
    }

    /// Revokes a key at once; revoking twice keeps the first time.
    pub async fn revoke_key(
        &self,
        org: OrgId,
        id: KeyId,
        actor: &str,
    ) -> Result<Option<KeyRecord>, StoreError> {
        self.write_audited(async |conn| {
            let Some(before) = key_in(conn, org, id).await? else {
                return Ok((None, None));
            };
            let now = now_ms();
            let revoked_at = match before.revoked_at {
                Some(at) if at <= now => at,
                _ => now,
            };
            sqlx::query(
                "UPDATE virtual_keys SET revoked_at = $1, updated_at = $2 \
                 WHERE org_id = $3 AND id = $4",
            )
            .bind(revoked_at)
            .bind(now)
            .bind(org.to_string())
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
            let after = KeyRecord {
                revoked_at: Some(revoked_at),
                updated_at: now,
                ..before.clone()
            };
            let entry =
                AuditEntry::change(org, actor, "key.revoke", "virtual_key", id, &before, &after);
            Ok((Some(after), Some(entry)))
        })
        .await
    }

    /// Replaces a key with a new secret and the same settings. The old key keeps working
    /// until `old_stops_at` (or its own expiry, if sooner). Returns `(old, new)`; `None` when
    /// `org` has no such key.
    pub async fn rotate_key(
        &self,
        org: OrgId,
        id: KeyId,
        key_hash: String,
        display_prefix: String,
        old_stops_at: i64,
        actor: &str,
    ) -> Result<Option<(KeyRecord, KeyRecord)>, StoreError> {
        self.write_audited(async |conn| {
            let Some(before) = key_in(conn, org, id).await? else {
                return Ok((None, None));
            };
            let new = NewKey {
                name: before.name.clone(),
                key_hash,
                display_prefix,
                allowed_models: before.allowed_models.clone(),
                expires_at: before.expires_at,
                rpm_limit: before.rpm_limit,
                tpm_limit: before.tpm_limit,
                budget_usd: before.budget_usd,
                budget_period: before.budget_period.clone(),
                tags: before.tags.clone(),
                metadata: before.metadata.clone(),
            };
            let replacement =
                insert_key(conn, org, before.team_id, before.created_by, new, actor).await?;
            let stops_at = before
                .expires_at
                .map_or(old_stops_at, |at| at.min(old_stops_at));
            let now = now_ms();
            sqlx::query(
                "UPDATE virtual_keys SET rotated_to = $1, expires_at = $2, updated_at = $3 \
                 WHERE org_id = $4 AND id = $5",
            )
            .bind(replacement.id.to_string())
            .bind(stops_at)
            .bind(now)
            .bind(org.to_string())
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
            let old = KeyRecord {
                rotated_to: Some(replacement.id),
                expires_at: Some(stops_at),
                updated_at: now,
                ..before.clone()
            };
            let entry =
                AuditEntry::change(org, actor, "key.rotate", "virtual_key", id, &before, &old);
            Ok((Some((old, replacement)), Some(entry)))
        })
        .await
    }

    /// Records when keys were last used; batched, so it costs one statement per key per
    /// flush, never one per request.
    pub async fn touch_keys(&self, used: &[(KeyId, i64)]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for (id, at) in used {
            sqlx::query(
                "UPDATE virtual_keys SET last_used_at = $1 WHERE id = $2 \
                 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(*at)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
