//! Organizations, each made with a default team.

use serde::Serialize;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tollgate_common::{OrgId, TeamId};

use super::audit::{AuditEntry, record};
use super::teams::Team;
use super::{AuthStore, StoreError, id_column, now_ms};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    pub created_at: i64,
}

pub(super) fn organization_from_row(row: &AnyRow) -> Result<Organization, StoreError> {
    Ok(Organization {
        id: id_column(row, "id", "organizations")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) async fn insert_org_and_team(
    conn: &mut AnyConnection,
    name: &str,
    actor: &str,
) -> Result<(Organization, Team), StoreError> {
    let now = now_ms();
    let organization = Organization {
        id: OrgId::generate(),
        name: name.to_owned(),
        created_at: now,
    };
    sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(organization.id.to_string())
        .bind(&organization.name)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    let team = Team {
        id: TeamId::generate(),
        org_id: organization.id,
        name: "default".into(),
        created_at: now,
    };
    sqlx::query("INSERT INTO teams (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(team.id.to_string())
        .bind(organization.id.to_string())
        .bind(&team.name)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    record(
        conn,
        AuditEntry::new(
            organization.id,
            actor,
            "organization.create",
            "organization",
        )
        .target(organization.id)
        .after(json!(organization)),
    )
    .await?;
    record(
        conn,
        AuditEntry::new(organization.id, actor, "team.create", "team")
            .target(team.id)
            .after(json!(team)),
    )
    .await?;
    Ok((organization, team))
}

impl AuthStore {
    /// An organization with its default team and no members: for operators (`tollgate orgs
    /// create`).
    pub async fn create_organization(
        &self,
        name: &str,
        actor: &str,
    ) -> Result<(Organization, Team), StoreError> {
        let mut tx = self.begin_write().await?;
        let created = insert_org_and_team(&mut tx, name, actor).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Every organization, for operators.
    pub async fn all_organizations(&self) -> Result<Vec<Organization>, StoreError> {
        let rows =
            sqlx::query("SELECT id, name, created_at FROM organizations ORDER BY created_at")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(organization_from_row).collect()
    }

    pub async fn organization(&self, org: OrgId) -> Result<Option<Organization>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM organizations WHERE id = $1")
            .bind(org.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(organization_from_row).transpose()
    }
}
