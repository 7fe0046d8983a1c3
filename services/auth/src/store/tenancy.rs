//! Organizations, users, teams and memberships.

use serde::Serialize;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tollgate_common::{OrgId, TeamId, UserId};

use super::audit::{AuditEntry, record};
use super::keys::{NewKey, insert_key};
use super::{AuthStore, StoreError, duplicate_as, id_column, now_ms};
use crate::roles::Role;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    pub created_at: i64,
}

/// A user as others may see them: never the password hash.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Team {
    pub id: TeamId,
    pub org_id: OrgId,
    pub name: String,
    pub created_at: i64,
}

/// A user's membership of an organization or a team.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub joined_at: i64,
}

/// Everything sign-up creates, in one transaction.
#[derive(Debug)]
pub struct SignupRecords {
    pub user: User,
    pub organization: Organization,
    pub team: Team,
}

fn role_column(row: &AnyRow, table: &'static str) -> Result<Role, StoreError> {
    let text: String = row.try_get("role")?;
    text.parse()
        .map_err(|detail| StoreError::Corrupt { table, detail })
}

fn team_from_row(row: &AnyRow) -> Result<Team, StoreError> {
    Ok(Team {
        id: id_column(row, "id", "teams")?,
        org_id: id_column(row, "org_id", "teams")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn member_from_row(row: &AnyRow, table: &'static str) -> Result<Member, StoreError> {
    Ok(Member {
        user_id: id_column(row, "user_id", table)?,
        email: row.try_get("email")?,
        role: role_column(row, table)?,
        joined_at: row.try_get("created_at")?,
    })
}

async fn insert_org_and_team(
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
    /// Sign-up: a user, their organization with a default team, the owner membership and the
    /// first key, all or nothing.
    pub async fn signup(
        &self,
        email: &str,
        password_hash: &str,
        organization_name: &str,
        first_key: NewKey,
    ) -> Result<(SignupRecords, super::KeyRecord), StoreError> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let user = User {
            id: UserId::generate(),
            email: email.trim().to_owned(),
            created_at: now,
        };
        let actor = format!("user:{}", user.id);
        sqlx::query(
            "INSERT INTO users (id, email, email_normalized, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user.id.to_string())
        .bind(&user.email)
        .bind(normalize_email(email))
        .bind(password_hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(duplicate_as("an account with this email"))?;
        let (organization, team) = insert_org_and_team(&mut tx, organization_name, &actor).await?;
        add_org_member(&mut tx, organization.id, user.id, Role::Owner, &actor).await?;
        add_team_member(
            &mut tx,
            organization.id,
            team.id,
            user.id,
            Role::Admin,
            &actor,
        )
        .await?;
        let key = insert_key(
            &mut tx,
            organization.id,
            team.id,
            Some(user.id),
            first_key,
            &actor,
        )
        .await?;
        tx.commit().await?;
        Ok((
            SignupRecords {
                user,
                organization,
                team,
            },
            key,
        ))
    }

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

    /// Every organization, for operators.
    pub async fn all_organizations(&self) -> Result<Vec<Organization>, StoreError> {
        let rows =
            sqlx::query("SELECT id, name, created_at FROM organizations ORDER BY created_at")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(Organization {
                    id: id_column(row, "id", "organizations")?,
                    name: row.try_get("name")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    pub async fn organization(&self, org: OrgId) -> Result<Option<Organization>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM organizations WHERE id = $1")
            .bind(org.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(Organization {
                id: id_column(&row, "id", "organizations")?,
                name: row.try_get("name")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    /// The user id and password hash for a login attempt.
    pub async fn credentials(&self, email: &str) -> Result<Option<(UserId, String)>, StoreError> {
        let row = sqlx::query("SELECT id, password_hash FROM users WHERE email_normalized = $1")
            .bind(normalize_email(email))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok((
                id_column(&row, "id", "users")?,
                row.try_get("password_hash")?,
            ))
        })
        .transpose()
    }

    pub async fn user(&self, user: UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT id, email, created_at FROM users WHERE id = $1")
            .bind(user.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(User {
                id: id_column(&row, "id", "users")?,
                email: row.try_get("email")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
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
                    Organization {
                        id: id_column(row, "id", "organizations")?,
                        name: row.try_get("name")?,
                        created_at: row.try_get("created_at")?,
                    },
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
        let Some(before) = self.member(org, user).await? else {
            return Ok(None);
        };
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE org_members SET role = $1 WHERE org_id = $2 AND user_id = $3")
            .bind(role.as_str())
            .bind(org.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        let after = Member {
            role,
            ..before.clone()
        };
        record(
            &mut tx,
            AuditEntry::change(org, actor, "member.update", "user", user, &before, &after),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(after))
    }

    /// Removes a user from `org` and from its teams. Their keys stay, owned by their team.
    pub async fn remove_member(
        &self,
        org: OrgId,
        user: UserId,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let Some(before) = self.member(org, user).await? else {
            return Ok(false);
        };
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM team_members WHERE org_id = $1 AND user_id = $2")
            .bind(org.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM org_members WHERE org_id = $1 AND user_id = $2")
            .bind(org.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        record(
            &mut tx,
            AuditEntry::new(org, actor, "member.remove", "user")
                .target(user)
                .before(json!(before)),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

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
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO teams (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(team.id.to_string())
            .bind(org.to_string())
            .bind(&team.name)
            .bind(team.created_at)
            .execute(&mut *tx)
            .await
            .map_err(duplicate_as("a team with this name"))?;
        record(
            &mut tx,
            AuditEntry::new(org, actor, "team.create", "team")
                .target(team.id)
                .after(json!(team)),
        )
        .await?;
        tx.commit().await?;
        Ok(team)
    }

    pub async fn rename_team(
        &self,
        org: OrgId,
        team: TeamId,
        name: &str,
        actor: &str,
    ) -> Result<Option<Team>, StoreError> {
        let Some(before) = self.team(org, team).await? else {
            return Ok(None);
        };
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE teams SET name = $1 WHERE org_id = $2 AND id = $3")
            .bind(name)
            .bind(org.to_string())
            .bind(team.to_string())
            .execute(&mut *tx)
            .await
            .map_err(duplicate_as("a team with this name"))?;
        let after = Team {
            name: name.to_owned(),
            ..before.clone()
        };
        record(
            &mut tx,
            AuditEntry::change(org, actor, "team.update", "team", team, &before, &after),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(after))
    }

    /// Deletes a team with no keys left; `Ok(false)` when there is no such team.
    pub async fn delete_team(
        &self,
        org: OrgId,
        team: TeamId,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let Some(before) = self.team(org, team).await? else {
            return Ok(false);
        };
        let mut tx = self.begin_write().await?;
        let keys: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM virtual_keys WHERE org_id = $1 AND team_id = $2",
        )
        .bind(org.to_string())
        .bind(team.to_string())
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if keys > 0 {
            return Err(StoreError::Duplicate("keys in this team"));
        }
        sqlx::query("DELETE FROM team_members WHERE org_id = $1 AND team_id = $2")
            .bind(org.to_string())
            .bind(team.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM teams WHERE org_id = $1 AND id = $2")
            .bind(org.to_string())
            .bind(team.to_string())
            .execute(&mut *tx)
            .await?;
        record(
            &mut tx,
            AuditEntry::new(org, actor, "team.delete", "team")
                .target(team)
                .before(json!(before)),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
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
        let mut tx = self.begin_write().await?;
        if before.is_some() {
            sqlx::query(
                "UPDATE team_members SET role = $1 WHERE org_id = $2 AND team_id = $3 AND user_id = $4",
            )
            .bind(role.as_str())
            .bind(org.to_string())
            .bind(team.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
            record(
                &mut tx,
                AuditEntry::change(
                    org,
                    actor,
                    "team_member.update",
                    "user",
                    user,
                    &json!({"team_id": team, "role": before}),
                    &json!({"team_id": team, "role": role}),
                ),
            )
            .await?;
        } else {
            add_team_member(&mut tx, org, team, user, role, actor).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn remove_team_member(
        &self,
        org: OrgId,
        team: TeamId,
        user: UserId,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let Some(before) = self.team_role(org, team, user).await? else {
            return Ok(false);
        };
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM team_members WHERE org_id = $1 AND team_id = $2 AND user_id = $3")
            .bind(org.to_string())
            .bind(team.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        record(
            &mut tx,
            AuditEntry::new(org, actor, "team_member.remove", "user")
                .target(user)
                .before(json!({"team_id": team, "role": before})),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
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

async fn add_team_member(
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

/// Emails are unique whatever their case and surrounding blanks.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}
