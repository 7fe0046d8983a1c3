//! Admin API tokens: long-lived bearer tokens for scripts that call the admin API, each
//! acting with a role no higher than its creator's.

use serde::Serialize;
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use tollgate_common::{OrgId, UserId};

use super::audit::AuditEntry;
use super::{AuthStore, StoreError, duplicate_as, id_column, now_ms, role_column};
use crate::roles::Role;

/// An admin token as the API shows it: never the secret.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AdminTokenRecord {
    pub id: String,
    pub org_id: OrgId,
    pub created_by: UserId,
    pub name: String,
    pub role: Role,
    pub display_prefix: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// What a new token is made of.
pub struct NewAdminToken<'a> {
    pub name: &'a str,
    pub role: Role,
    pub token_hash: &'a str,
    pub display_prefix: &'a str,
    pub expires_at: Option<i64>,
}

const COLUMNS: &str = "id, org_id, created_by, name, role, display_prefix, created_at, \
                       expires_at, last_used_at, revoked_at";

/// `last_used_at` is written at most this often per token, so that a busy script does not
/// turn every read into a write.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

fn from_row(row: &AnyRow) -> Result<AdminTokenRecord, StoreError> {
    let role = role_column(row, "admin_tokens")?;
    Ok(AdminTokenRecord {
        id: row.try_get("id")?,
        org_id: id_column(row, "org_id", "admin_tokens")?,
        created_by: id_column(row, "created_by", "admin_tokens")?,
        name: row.try_get("name")?,
        role,
        display_prefix: row.try_get("display_prefix")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

impl AuthStore {
    pub async fn create_admin_token(
        &self,
        org: OrgId,
        created_by: UserId,
        token: NewAdminToken<'_>,
    ) -> Result<AdminTokenRecord, StoreError> {
        self.write_audited(async |conn| {
            let token_record = AdminTokenRecord {
                id: uuid::Uuid::now_v7().hyphenated().to_string(),
                org_id: org,
                created_by,
                name: token.name.to_owned(),
                role: token.role,
                display_prefix: token.display_prefix.to_owned(),
                created_at: now_ms(),
                expires_at: token.expires_at,
                last_used_at: None,
                revoked_at: None,
            };
            sqlx::query(
                "INSERT INTO admin_tokens (id, org_id, created_by, name, role, token_hash, \
                 display_prefix, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&token_record.id)
            .bind(org.to_string())
            .bind(created_by.to_string())
            .bind(&token_record.name)
            .bind(token_record.role.as_str())
            .bind(token.token_hash)
            .bind(&token_record.display_prefix)
            .bind(token_record.created_at)
            .bind(token_record.expires_at)
            .execute(&mut *conn)
            .await
            .map_err(duplicate_as("an admin token with this secret"))?;
            let entry = AuditEntry::new(
                org,
                &format!("user:{created_by}"),
                "admin_token.create",
                "admin_token",
            )
            .target(&token_record.id)
            .after(json!({
                "name": token_record.name,
                "role": token_record.role,
                "expires_at": token_record.expires_at,
            }));
            Ok((token_record, entry))
        })
        .await
    }

    /// The organization's tokens (of one creator when given), newest first, revoked ones
    /// included.
    pub async fn admin_tokens(
        &self,
        org: OrgId,
        created_by: Option<UserId>,
    ) -> Result<Vec<AdminTokenRecord>, StoreError> {
        let rows =
            match created_by {
                Some(user) => {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM admin_tokens WHERE org_id = $1 AND created_by = $2 \
                     ORDER BY created_at DESC"
                    )))
                    .bind(org.to_string())
                    .bind(user.to_string())
                    .fetch_all(&self.pool)
                    .await?
                }
                None => sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM admin_tokens WHERE org_id = $1 ORDER BY created_at DESC"
                )))
                .bind(org.to_string())
                .fetch_all(&self.pool)
                .await?,
            };
        rows.iter().map(from_row).collect()
    }

    pub async fn admin_token(
        &self,
        org: OrgId,
        id: &str,
    ) -> Result<Option<AdminTokenRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM admin_tokens WHERE org_id = $1 AND id = $2"
        )))
        .bind(org.to_string())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Revokes a token of `org`; `None` if there is none with this id. Revoking twice keeps
    /// the first time.
    pub async fn revoke_admin_token(
        &self,
        org: OrgId,
        id: &str,
        actor: &str,
    ) -> Result<Option<AdminTokenRecord>, StoreError> {
        self.write_audited(async |conn| {
            let done = sqlx::query(
                "UPDATE admin_tokens SET revoked_at = $1 WHERE org_id = $2 AND id = $3 \
                 AND revoked_at IS NULL",
            )
            .bind(now_ms())
            .bind(org.to_string())
            .bind(id)
            .execute(&mut *conn)
            .await?;
            let entry = (done.rows_affected() == 1).then(|| {
                AuditEntry::new(org, actor, "admin_token.revoke", "admin_token").target(id)
            });
            Ok(((), entry))
        })
        .await?;
        self.admin_token(org, id).await
    }

    /// The live token behind a secret's hash (not revoked, not expired), noting its use.
    pub async fn admin_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<AdminTokenRecord>, StoreError> {
        let now = now_ms();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM admin_tokens WHERE token_hash = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2)"
        )))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(token) = row.as_ref().map(from_row).transpose()? else {
            return Ok(None);
        };
        if token
            .last_used_at
            .is_none_or(|at| now - at >= LAST_USED_GRANULARITY_MS)
        {
            sqlx::query("UPDATE admin_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&token.id)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(token))
    }
}
