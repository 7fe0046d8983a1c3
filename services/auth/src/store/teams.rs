//! Teams and their members.

use serde::Serialize;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tollgate_common::{OrgId, TeamId, UserId};

use super::audit::{AuditEntry, record};
use super::members::{Member, member_from_row};
use super::{AuthStore, StoreError, duplicate_as, id_column, now_ms, role_column};
use crate::roles::Role;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Team {
    pub id: TeamId,
    pub org_id: OrgId,
    pub name: String,
    pub created_at: i64,
}

fn team_from_row(row: &AnyRow) -> Result<Team, StoreError> {
    Ok(Team {
        id: id_column(row, "id", "teams")?,
        org_id: id_column(row, "org_id", "teams")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

impl AuthStore {
    pub async fn teams(&self, org: OrgId) -> Result<Vec<Team>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, org_id, name, created_at FROM teams WHERE org_id = $1 ORDER BY created_at",
        )
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(team_from_row).collect()
    }

    pub async fn team(&self, org: OrgId, team: TeamId) -> Result<Option<Team>, StoreError> {
        let row = sqlx::query(
            "SELECT id, org_id, name, created_at FROM teams WHERE org_id = $1 AND id = $2",
        )
        .bind(org.to_string())
        .bind(team.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(team_from_row).transpose()
    }

    pub async fn create_team(
        &self,
        org: OrgId,
        name: &str,
        actor: &str,
    ) -> Result<Team, StoreError> {
        let team = Team {
            id: TeamId::generate(),
            org_id: org,
            name: name.to_owned(),
            created_at: now_ms(),
        };
        self.write_audited(async |conn| {
            sqlx::query("INSERT INTO teams (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(team.id.to_string())
                .bind(org.to_string())
                .bind(&team.name)
                .bind(team.created_at)
                .execute(&mut *conn)
                .await
                .map_err(duplicate_as("a team with this name"))?;
            let entry = AuditEntry::new(org, actor, "team.create", "team")
                .target(team.id)
                .after(json!(team));
            Ok((team, entry))
        })
        .await
    }

    pub async fn rename_team(
        &self,
        org: OrgId,
        team: TeamId,
        name: &str,
        actor: &str,
    ) -> Result<Option<Team>, StoreError> {
        self.change_audited(self.team(org, team), async |conn, before| {
            sqlx::query("UPDATE teams SET name = $1 WHERE org_id = $2 AND id = $3")
                .bind(name)
                .bind(org.to_string())
                .bind(team.to_string())
                .execute(&mut *conn)
                .await
                .map_err(duplicate_as("a team with this name"))?;
            let after = Team {
                name: name.to_owned(),
                ..before.clone()
            };
            let entry =
                AuditEntry::change(org, actor, "team.update", "team", team, &before, &after);
            Ok((after, entry))
        })
        .await
    }

    /// Deletes a team with no keys left; `Ok(false)` when there is no such team.
    pub async fn delete_team(
        &self,
        org: OrgId,
        team: TeamId,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let deleted = self
            .change_audited(self.team(org, team), async |conn, before| {
                let keys: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM virtual_keys WHERE org_id = $1 AND team_id = $2",
                )
                .bind(org.to_string())
                .bind(team.to_string())
                .fetch_one(&mut *conn)
                .await?
                .try_get("n")?;
                if keys > 0 {
                    return Err(StoreError::Duplicate("keys in this team"));
                }
                sqlx::query("DELETE FROM team_members WHERE org_id = $1 AND team_id = $2")
                    .bind(org.to_string())
                    .bind(team.to_string())
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("DELETE FROM teams WHERE org_id = $1 AND id = $2")
                    .bind(org.to_string())
                    .bind(team.to_string())
                    .execute(&mut *conn)
                    .await?;
                let entry = AuditEntry::new(org, actor, "team.delete", "team")
                    .target(team)
                    .before(json!(before));
                Ok(((), entry))
            })
            .await?;
        Ok(deleted.is_some())
    }

    pub async fn team_members(&self, org: OrgId, team: TeamId) -> Result<Vec<Member>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.user_id, u.email, m.role, m.created_at FROM team_members m \
             JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND m.team_id = $2 \
             ORDER BY m.created_at",
        )
        .bind(org.to_string())
        .bind(team.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| member_from_row(row, "team_members"))
            .collect()
    }

    /// The user's role in a team of `org`, if they are on it.
    pub async fn team_role(
        &self,
        org: OrgId,
        team: TeamId,
        user: UserId,
    ) -> Result<Option<Role>, StoreError> {
        let row = sqlx::query(
            "SELECT role FROM team_members WHERE org_id = $1 AND team_id = $2 AND user_id = $3",
        )
        .bind(org.to_string())
        .bind(team.to_string())
        .bind(user.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| role_column(&row, "team_members")).transpose()
    }

    /// Adds an organization member to a team, or changes their team role.
    pub async fn set_team_member(
        &self,
        org: OrgId,
        team: TeamId,
        user: UserId,
        role: Role,
        actor: &str,
    ) -> Result<(), StoreError> {
        let before = self.team_role(org, team, user).await?;
        self.write_audited(async |conn| {
            if before.is_none() {
                // A new membership is recorded as it is added.
                add_team_member(conn, org, team, user, role, actor).await?;
                return Ok(((), None));
            }
            sqlx::query(
                "UPDATE team_members SET role = $1 WHERE org_id = $2 AND team_id = $3 AND user_id = $4",
            )
            .bind(role.as_str())
            .bind(org.to_string())
            .bind(team.to_string())
            .bind(user.to_string())
            .execute(&mut *conn)
            .await?;
            let entry = AuditEntry::change(
                org,
                actor,
                "team_member.update",
                "user",
                user,
                &json!({"team_id": team, "role": before}),
                &json!({"team_id": team, "role": role}),
            );
            Ok(((), Some(entry)))
        })
        .await
    }

    pub async fn remove_team_member(
        &self,
        org: OrgId,
        team: TeamId,
        user: UserId,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let removed = self
            .change_audited(self.team_role(org, team, user), async |conn, before| {
                sqlx::query(
                    "DELETE FROM team_members WHERE org_id = $1 AND team_id = $2 AND user_id = $3",
                )
                .bind(org.to_string())
                .bind(team.to_string())
                .bind(user.to_string())
                .execute(&mut *conn)
                .await?;
                let entry = AuditEntry::new(org, actor, "team_member.remove", "user")
                    .target(user)
                    .before(json!({"team_id": team, "role": before}));
                Ok(((), entry))
            })
            .await?;
        Ok(removed.is_some())
    }
}

pub(super) async fn add_team_member(
    conn: &mut AnyConnection,
    org: OrgId,
    team: TeamId,
    user: UserId,
    role: Role,
    actor: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO team_members (org_id, team_id, user_id, role, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(org.to_string())
    .bind(team.to_string())
    .bind(user.to_string())
    .bind(role.as_str())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    record(
        conn,
        AuditEntry::new(org, actor, "team_member.add", "user")
            .target(user)
            .after(json!({"team_id": team, "role": role})),
    )
    .await
}
