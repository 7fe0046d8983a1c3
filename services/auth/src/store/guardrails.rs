//! Guardrail policies set on an organization, a team or a key (a JSON column on each). A
//! key's requests are checked against all three, widest first (read with the key's other
//! inherited policies, in `levels.rs`); how they combine is the guardrails service's rule.

use serde_json::Value;
use sqlx::Row;
use tollgate_common::OrgId;
use tollgate_common::guardrails::GuardrailPolicy;

use super::audit::AuditEntry;
use super::levels::{PolicyColumn, PolicyLevel};
use super::{AuthStore, StoreError};

impl AuthStore {
    /// The policy set at `level` itself; `None` when `org` has no such team or key. A stored
    /// document this code cannot read is an error naming the column.
    pub async fn guardrail_policy(
        &self,
        org: OrgId,
        level: PolicyLevel,
    ) -> Result<Option<GuardrailPolicy>, StoreError> {
        let (_, target_type) = level.target(org);
        let Some(text) = self.stored_guardrail_policy(org, level).await? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                table: target_type,
                detail: format!("guardrail_policy: {e}"),
            })
    }

    /// Replaces the policy set at `level`. Returns the hashes of the keys it applies to (their
    /// cached contexts are now stale); `None` when `org` has no such team or key.
    ///
    /// The document replaced is audited as it was stored, without being read as a policy, so
    /// that one this code cannot read (written by a newer version, or by hand) can always be
    /// replaced.
    pub async fn set_guardrail_policy(
        &self,
        org: OrgId,
        level: PolicyLevel,
        policy: &GuardrailPolicy,
        actor: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let (id, target_type) = level.target(org);
        let before = async {
            let text = self.stored_guardrail_policy(org, level).await?;
            Ok(text.map(|text| serde_json::from_str(&text).unwrap_or(Value::String(text))))
        };
        self.change_audited(before, async |conn, before: Value| {
            let after = serde_json::to_value(policy).unwrap_or_default();
            sqlx::query(level.update(PolicyColumn::Guardrails))
                .bind(after.to_string())
                .bind(org.to_string())
                .bind(id.clone())
                .execute(&mut *conn)
                .await?;
            let entry = AuditEntry::change(
                org,
                actor,
                "guardrails.set",
                target_type,
                &id,
                &before,
                &after,
            );
            Ok((level.key_hashes(conn, org).await?, entry))
        })
        .await
    }

    /// The column's text as stored.
    async fn stored_guardrail_policy(
        &self,
        org: OrgId,
        level: PolicyLevel,
    ) -> Result<Option<String>, StoreError> {
        let (id, _) = level.target(org);
        let row = sqlx::query(level.select(PolicyColumn::Guardrails))
            .bind(org.to_string())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|row| row.try_get(PolicyColumn::Guardrails.name()))
            .transpose()?)
    }
}
