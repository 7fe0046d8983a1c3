//! Rate limits set on teams (overall and per model) and organization defaults for keys that
//! set none of their own. A key's own limits live on the key (`keys.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use tollgate_common::{OrgId, TeamId};

use super::audit::AuditEntry;
use super::{AuthStore, StoreError, json_column};

/// Requests and tokens per minute; `None` sets no limit at this level.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RatePair {
    #[serde(default)]
    pub rpm: Option<i64>,
    #[serde(default)]
    pub tpm: Option<i64>,
}

/// A team's limits: for all its keys together, and per model.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TeamLimits {
    #[serde(default)]
    pub rpm: Option<i64>,
    #[serde(default)]
    pub tpm: Option<i64>,
    /// By the model name clients send.
    #[serde(default)]
    pub models: BTreeMap<String, RatePair>,
}

/// The hashes of an organization's keys (of one team when given): their cached contexts go
/// stale when the limits they inherit change.
impl AuthStore {
    /// The hashes of every key of `org`, whose cached contexts a change of the organization
    /// makes stale.
    pub async fn organization_key_hashes(&self, org: OrgId) -> Result<Vec<String>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        key_hashes(&mut conn, org, None).await
    }
}

pub(super) async fn key_hashes(
    conn: &mut AnyConnection,
    org: OrgId,
    team: Option<TeamId>,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT key_hash FROM virtual_keys WHERE org_id = $1 AND ($2 IS NULL OR team_id = $2)",
    )
    .bind(org.to_string())
    .bind(team.map(|t| t.to_string()))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| Ok(row.try_get("key_hash")?))
        .collect()
}

impl AuthStore {
    /// `None` when `org` has no such team.
    pub async fn team_limits(
        &self,
        org: OrgId,
        team: TeamId,
    ) -> Result<Option<TeamLimits>, StoreError> {
        let row = sqlx::query(
            "SELECT rpm_limit, tpm_limit, model_limits FROM teams WHERE org_id = $1 AND id = $2",
        )
        .bind(org.to_string())
        .bind(team.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(TeamLimits {
                rpm: row.try_get("rpm_limit")?,
                tpm: row.try_get("tpm_limit")?,
                models: json_column(&row, "model_limits", "teams")?,
            })
        })
        .transpose()
    }

    /// Replaces a team's limits. Returns the hashes of the team's keys, whose cached contexts
    /// are now stale; `None` when `org` has no such team.
    pub async fn set_team_limits(
        &self,
        org: OrgId,
        team: TeamId,
        limits: &TeamLimits,
        actor: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        self.change_audited(self.team_limits(org, team), async |conn, before| {
            sqlx::query(
                "UPDATE teams SET rpm_limit = $1, tpm_limit = $2, model_limits = $3 \
                 WHERE org_id = $4 AND id = $5",
            )
            .bind(limits.rpm)
            .bind(limits.tpm)
            .bind(serde_json::to_string(&limits.models).unwrap_or_else(|_| "{}".into()))
            .bind(org.to_string())
            .bind(team.to_string())
            .execute(&mut *conn)
            .await?;
            let entry =
                AuditEntry::change(org, actor, "team.limits", "team", team, &before, limits);
            let hashes = key_hashes(conn, org, Some(team)).await?;
            Ok((hashes, entry))
        })
        .await
    }

    /// The organization's default limits for keys that set none.
    pub async fn org_limits(&self, org: OrgId) -> Result<Option<RatePair>, StoreError> {
        let row = sqlx::query("SELECT rpm_limit, tpm_limit FROM organizations WHERE id = $1")
            .bind(org.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(RatePair {
                rpm: row.try_get("rpm_limit")?,
                tpm: row.try_get("tpm_limit")?,
            })
        })
        .transpose()
    }

    /// Replaces the organization's defaults. Returns the hashes of all its keys (stale now).
    pub async fn set_org_limits(
        &self,
        org: OrgId,
        limits: &RatePair,
        actor: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        self.change_audited(self.org_limits(org), async |conn, before| {
            sqlx::query("UPDATE organizations SET rpm_limit = $1, tpm_limit = $2 WHERE id = $3")
                .bind(limits.rpm)
                .bind(limits.tpm)
                .bind(org.to_string())
                .execute(&mut *conn)
                .await?;
            let entry = AuditEntry::change(
                org,
                actor,
                "organization.limits",
                "organization",
                org,
                &before,
                limits,
            );
            let hashes = key_hashes(conn, org, None).await?;
            Ok((hashes, entry))
        })
        .await
    }
}
