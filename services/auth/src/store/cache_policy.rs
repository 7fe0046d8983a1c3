//! Cache defaults set on an organization, a team or a key (a JSON column on each). A key's
//! requests use the three merged, the narrowest level winning field by field (read with the
//! key's other inherited policies, in `levels.rs`).

use tollgate_common::{CachePolicy, OrgId};

use super::audit::AuditEntry;
use super::levels::{PolicyColumn, PolicyLevel};
use super::{AuthStore, StoreError, json_column};

impl AuthStore {
    /// The policy set at `level` itself (not merged); `None` when `org` has no such team or key.
    pub async fn cache_policy(
        &self,
        org: OrgId,
        level: PolicyLevel,
    ) -> Result<Option<CachePolicy>, StoreError> {
        let (id, target_type) = level.target(org);
        let row = sqlx::query(level.select(PolicyColumn::Cache))
            .bind(org.to_string())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| json_column(&row, PolicyColumn::Cache.name(), target_type))
            .transpose()
    }

    /// Replaces the policy set at `level`. Returns the hashes of the keys it applies to (their
    /// cached contexts are now stale); `None` when `org` has no such team or key.
    pub async fn set_cache_policy(
        &self,
        org: OrgId,
        level: PolicyLevel,
        policy: &CachePolicy,
        actor: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let (id, target_type) = level.target(org);
        self.change_audited(self.cache_policy(org, level), async |conn, before| {
            sqlx::query(level.update(PolicyColumn::Cache))
                .bind(serde_json::to_string(policy).unwrap_or_else(|_| "{}".into()))
                .bind(org.to_string())
                .bind(id.clone())
                .execute(&mut *conn)
                .await?;
            let entry = AuditEntry::change(
                org,
                actor,
                "cache_policy.set",
                target_type,
                &id,
                &before,
                policy,
            );
            Ok((level.key_hashes(conn, org).await?, entry))
        })
        .await
    }
}
