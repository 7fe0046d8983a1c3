//! The audit log: who changed what, when, with the record before and after.

use serde::Serialize;
use sqlx::{AnyConnection, Row};
use tollgate_common::OrgId;

use super::{AuthStore, StoreError, id_column, now_ms};

/// One change about to be recorded, written in the same transaction as the change itself.
pub struct AuditEntry {
    org: OrgId,
    actor: String,
    action: &'static str,
    target_type: &'static str,
    target_id: String,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
}

impl AuditEntry {
    pub fn new(org: OrgId, actor: &str, action: &'static str, target_type: &'static str) -> Self {
        AuditEntry {
            org,
            actor: actor.to_owned(),
            action,
            target_type,
            target_id: String::new(),
            before: None,
            after: None,
        }
    }

    /// A change of one record, with its state before and after.
    pub fn change<T: Serialize>(
        org: OrgId,
        actor: &str,
        action: &'static str,
        target_type: &'static str,
        target: impl std::fmt::Display,
        before: &T,
        after: &T,
    ) -> Self {
        AuditEntry::new(org, actor, action, target_type)
            .target(target)
            .before(serde_json::to_value(before).unwrap_or_default())
            .after(serde_json::to_value(after).unwrap_or_default())
    }

    pub fn target(mut self, id: impl std::fmt::Display) -> Self {
        self.target_id = id.to_string();
        self
    }

    pub fn before(mut self, state: serde_json::Value) -> Self {
        self.before = Some(state);
        self
    }

    pub fn after(mut self, state: serde_json::Value) -> Self {
        self.after = Some(state);
        self
    }
}

/// A recorded change, as the audit endpoint shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub id: String,
    pub org_id: OrgId,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub created_at: i64,
}

pub(super) async fn record(conn: &mut AnyConnection, entry: AuditEntry) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (id, org_id, actor, action, target_type, target_id, \
         before_state, after_state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(entry.org.to_string())
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(entry.target_id)
    .bind(entry.before.map(|v| v.to_string()))
    .bind(entry.after.map(|v| v.to_string()))
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

impl AuthStore {
    /// Makes a change and its audit record in one write transaction. `change` runs in the
    /// transaction and returns its outcome with the entry to record (`None` when it changed
    /// nothing, or recorded its own entries); the entry is written last, just before the
    /// commit. When `change` fails, neither the change nor a record is kept.
    pub(super) async fn write_audited<T, E>(
        &self,
        change: impl AsyncFnOnce(&mut AnyConnection) -> Result<(T, E), StoreError>,
    ) -> Result<T, StoreError>
    where
        E: Into<Option<AuditEntry>>,
    {
        let mut tx = self.begin_write().await?;
        let (outcome, entry) = change(&mut tx).await?;
        if let Some(entry) = entry.into() {
            record(&mut tx, entry).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// [`AuthStore::write_audited`] for a change of one record: `before` reads its state first,
    /// outside the transaction (`None`: there is no such record, and nothing is written), then
    /// `change` makes the change from that state in the transaction and returns the entry to
    /// record.
    pub(super) async fn change_audited<B, T>(
        &self,
        before: impl Future<Output = Result<Option<B>, StoreError>>,
        change: impl AsyncFnOnce(&mut AnyConnection, B) -> Result<(T, AuditEntry), StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let Some(before) = before.await? else {
            return Ok(None);
        };
        self.write_audited(async |conn| {
            let (outcome, entry) = change(conn, before).await?;
            Ok((Some(outcome), entry))
        })
        .await
    }

    /// The newest `limit` changes in `org`.
    pub async fn audit_log(&self, org: OrgId, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, org_id, actor, action, target_type, target_id, before_state, \
             after_state, created_at FROM audit_log WHERE org_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(org.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let state = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        rows.iter()
            .map(|row| {
                Ok(AuditRecord {
                    id: row.try_get("id")?,
                    org_id: id_column(row, "org_id", "audit_log")?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    target_type: row.try_get("target_type")?,
                    target_id: row.try_get("target_id")?,
                    before: state(row.try_get("before_state")?),
                    after: state(row.try_get("after_state")?),
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}
