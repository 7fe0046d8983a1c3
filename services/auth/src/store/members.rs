//! Memberships of organizations, each with a role.

use serde::Serialize;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tollgate_common::{OrgId, UserId};

use super::audit::{AuditEntry, record};
use super::organizations::{Organization, organization_from_row};
use super::{AuthStore, StoreError, id_column, now_ms, role_column};
use crate::roles::Role;

/// A user's membership of an organization or a team.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub joined_at: i64,
}

pub(super) fn member_from_row(row: &AnyRow, table: &'static str) -> Result<Member, StoreError> {
    Ok(Member {
        user_id: id_column(row, "user_id", table)?,
        email: row.try_get("email")?,
        role: role_column(row, table)?,
        joined_at: row.try_get("created_at")?,
    })
}

impl AuthStore {
    /// Adds an existing user to `org` with `role` (there is no invitation flow yet: operators
    /// and tests add members this way).
    pub async fn add_member(
        &self,
        org: OrgId,
        user: UserId,
        role: Role,
        actor: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        add_org_member(&mut tx, org, user, role, actor).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The organizations a user belongs to, oldest membership first, with their role.
    pub async fn memberships(&self, user: UserId) -> Result<Vec<(Organization, Role)>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.id, o.name, o.created_at, m.role FROM org_members m \
             JOIN organizations o ON o.id = m.org_id WHERE m.user_id = $1 ORDER BY m.created_at",
        )
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    organization_from_row(row)?,
                    role_column(row, "org_members")?,
                ))
            })
            .collect()
    }

    /// The user's role in `org`, if they are a member.
    pub async fn org_role(&self, org: OrgId, user: UserId) -> Result<Option<Role>, StoreError> {
        let row = sqlx::query("SELECT role FROM org_members WHERE org_id = $1 AND user_id = $2")
            .bind(org.to_string())
            .bind(user.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| role_column(&row, "org_members")).transpose()
    }

    pub async fn members(&self, org: OrgId) -> Result<Vec<Member>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.user_id, u.email, m.role, m.created_at FROM org_members m \
             JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 ORDER BY m.created_at",
        )
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| member_from_row(row, "org_members"))
            .collect()
    }

    pub async fn member(&self, org: OrgId, user: UserId) -> Result<Option<Member>, StoreError> {
        let row = sqlx::query(
            "SELECT m.user_id, u.email, m.role, m.created_at FROM org_members m \
             JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND m.user_id = $2",
        )
        .bind(org.to_string())
        .bind(user.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| member_from_row(&row, "org_members"))
            .transpose()
    }

    /// How many owners `org` has: the last one may not be demoted or removed.
    pub async fn owner_count(&self, org: OrgId) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM org_members WHERE org_id = $1 AND role = 'owner'",
        )
        .bind(org.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn set_member_role(
        &self,
        org: OrgId,
        user: UserId,
        role: Role,
        actor: &str,
    ) -> Result<Option<Member>, StoreError> {
        self.change_audited(self.member(org, user), async |conn, before| {
            sqlx::query("UPDATE org_members SET role = $1 WHERE org_id = $2 AND user_id = $3")
                .bind(role.as_str())
                .bind(org.to_string())
                .bind(user.to_string())
                .execute(&mut *conn)
                .await?;
            let after = Member {
                role,
                ..before.clone()
            };
            let entry =
                AuditEntry::change(org, actor, "member.update", "user", user, &before, &after);
            Ok((after, entry))
        })
        .await
    }

    /// Removes a user from `org` and from its teams. Their keys stay, owned by their team.
    pub async fn remove_member(
        &self,
        org: OrgId,
        user: UserId,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let removed = self
            .change_audited(self.member(org, user), async |conn, before| {
                sqlx::query("DELETE FROM team_members WHERE org_id = $1 AND user_id = $2")
                    .bind(org.to_string())
                    .bind(user.to_string())
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("DELETE FROM org_members WHERE org_id = $1 AND user_id = $2")
                    .bind(org.to_string())
                    .bind(user.to_string())
                    .execute(&mut *conn)
                    .await?;
                let entry = AuditEntry::new(org, actor, "member.remove", "user")
                    .target(user)
                    .before(json!(before));
                Ok(((), entry))
            })
            .await?;
        Ok(removed.is_some())
    }
}

pub(super) async fn add_org_member(
    conn: &mut AnyConnection,
    org: OrgId,
    user: UserId,
    role: Role,
    actor: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO org_members (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(org.to_string())
    .bind(user.to_string())
    .bind(role.as_str())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    record(
        conn,
        AuditEntry::new(org, actor, "member.add", "user")
            .target(user)
            .after(json!({"role": role})),
    )
    .await
}
