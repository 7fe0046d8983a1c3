//! Cache defaults set on an organization, a team or a key (a JSON column on each). A key's
//! requests use the three merged, the narrowest level winning field by field.

use sqlx::Row;
use tollgate_common::{CachePolicy, KeyId, OrgId, TeamId};

use super::audit::AuditEntry;
use super::limits::key_hashes;
use super::{AuthStore, StoreError, json_column};

/// Where a cache policy is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyLevel {
    Organization,
    Team(TeamId),
    Key(KeyId),
}

impl PolicyLevel {
    /// The row's id, the audit target type, and the statements reading and replacing its
    /// policy (both bound as: policy for the update, then organization, then row id).
    fn row(self, org: OrgId) -> (String, &'static str, &'static str, &'static str) {
        match self {
            PolicyLevel::Organization => (
                org.to_string(),
                "organization",
                "SELECT cache_policy FROM organizations WHERE id = $1 AND id = $2",
                "UPDATE organizations SET cache_policy = $1 WHERE id = $2 AND id = $3",
            ),
            PolicyLevel::Team(team) => (
                team.to_string(),
                "team",
                "SELECT cache_policy FROM teams WHERE org_id = $1 AND id = $2",
                "UPDATE teams SET cache_policy = $1 WHERE org_id = $2 AND id = $3",
            ),
            PolicyLevel::Key(key) => (
                key.to_string(),
                "key",
                "SELECT cache_policy FROM virtual_keys WHERE org_id = $1 AND id = $2",
                "UPDATE virtual_keys SET cache_policy = $1 WHERE org_id = $2 AND id = $3",
            ),
        }
    }
}

impl AuthStore {
    /// The policy set at `level` itself (not merged); `None` when `org` has no such team or key.
    pub async fn cache_policy(
        &self,
        org: OrgId,
        level: PolicyLevel,
    ) -> Result<Option<CachePolicy>, StoreError> {
        let (id, target_type, select, _) = level.row(org);
        let row = sqlx::query(select)
            .bind(org.to_string())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| json_column(&row, "cache_policy", target_type))
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
        let (id, target_type, _, update) = level.row(org);
        self.change_audited(self.cache_policy(org, level), async |conn, before| {
            sqlx::query(update)
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
            let hashes = match level {
                PolicyLevel::Organization => key_hashes(conn, org, None).await?,
                PolicyLevel::Team(team) => key_hashes(conn, org, Some(team)).await?,
                PolicyLevel::Key(_) => {
                    let row = sqlx::query(
                        "SELECT key_hash FROM virtual_keys WHERE org_id = $1 AND id = $2",
                    )
                    .bind(org.to_string())
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await?;
                    vec![row.try_get("key_hash")?]
                }
            };
            Ok((hashes, entry))
        })
        .await
    }

    /// A key's policy merged with its team's and organization's.
    pub(super) async fn effective_cache_policy(
        &self,
        org: OrgId,
        team: TeamId,
        key: KeyId,
    ) -> Result<CachePolicy, StoreError> {
        let row = sqlx::query(
            "SELECT o.cache_policy AS org_policy, t.cache_policy AS team_policy, \
                    k.cache_policy AS key_policy \
             FROM virtual_keys k \
             JOIN teams t ON t.id = k.team_id \
             JOIN organizations o ON o.id = k.org_id \
             WHERE k.org_id = $1 AND k.team_id = $2 AND k.id = $3",
        )
        .bind(org.to_string())
        .bind(team.to_string())
        .bind(key.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(CachePolicy::default());
        };
        let org_policy: CachePolicy = json_column(&row, "org_policy", "organizations")?;
        let team_policy: CachePolicy = json_column(&row, "team_policy", "teams")?;
        let key_policy: CachePolicy = json_column(&row, "key_policy", "virtual_keys")?;
        Ok(key_policy.over(team_policy.over(org_policy)))
    }
}
