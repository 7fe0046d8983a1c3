//! Refresh tokens (stored as hashes, rotated on every use, revoked by family, each family
//! ending a fixed time after its login), password changes, and the JWT signing keys the
//! platform generates for itself.

use sqlx::{AnyConnection, Row};
use tollgate_common::{OrgId, UserId};

use super::audit::{AuditEntry, record};
use super::{AuthStore, StoreError, id_column, now_ms};

/// A refresh token's row.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    pub family_id: String,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub expires_at: i64,
    /// When the session (the family) ends, however often its token is rotated.
    pub session_expires_at: i64,
}

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// The token was valid and is now spent; `new` was issued in its family.
    Rotated(RefreshRecord),
    /// Unknown, expired or revoked.
    Invalid,
    /// Already spent: someone replayed it, so its whole family has been revoked.
    Reused,
}

async fn insert_token(
    conn: &mut AnyConnection,
    record: &RefreshRecord,
    token_hash: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, user_id, org_id, token_hash, created_at, \
         expires_at, session_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&record.family_id)
    .bind(record.user_id.to_string())
    .bind(record.org_id.to_string())
    .bind(token_hash)
    .bind(now)
    .bind(record.expires_at)
    .bind(record.session_expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

impl AuthStore {
    /// Starts a session: its first refresh token, valid for `ttl_ms`, in a new family that
    /// ends `session_lifetime_ms` from now.
    pub async fn insert_refresh_token(
        &self,
        token_hash: &str,
        user: UserId,
        org: OrgId,
        ttl_ms: i64,
        session_lifetime_ms: i64,
    ) -> Result<RefreshRecord, StoreError> {
        let now = now_ms();
        let session_expires_at = now.saturating_add(session_lifetime_ms);
        let record = RefreshRecord {
            family_id: uuid::Uuid::now_v7().to_string(),
            user_id: user,
            org_id: org,
            expires_at: now.saturating_add(ttl_ms).min(session_expires_at),
            session_expires_at,
        };
        let mut conn = self.pool.acquire().await?;
        insert_token(&mut conn, &record, token_hash, now).await?;
        Ok(record)
    }

    /// Spends a refresh token and issues its successor (`new_hash`) in the same family, valid
    /// for `ttl_ms` but never past the session's end; or detects a replay and revokes the
    /// family.
    pub async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        new_hash: &str,
        ttl_ms: i64,
    ) -> Result<RefreshOutcome, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query(
            "SELECT id, family_id, user_id, org_id, expires_at, used_at, revoked_at, \
             session_expires_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(RefreshOutcome::Invalid);
        };
        let id: String = row.try_get("id")?;
        let family_id: String = row.try_get("family_id")?;
        let revoked_at: Option<i64> = row.try_get("revoked_at")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        let used_at: Option<i64> = row.try_get("used_at")?;
        // Rows from before sessions had an end end with their token.
        let session_expires_at: i64 = row
            .try_get::<Option<i64>, _>("session_expires_at")?
            .unwrap_or(expires_at);
        if revoked_at.is_some() || expires_at <= now || session_expires_at <= now {
            return Ok(RefreshOutcome::Invalid);
        }
        // Spend it only if nobody else has: of two concurrent uses, one is a replay.
        let spent = if used_at.is_none() {
            sqlx::query(
                "UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL \
                 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1
        } else {
            false
        };
        if !spent {
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(&family_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(RefreshOutcome::Reused);
        }
        let record = RefreshRecord {
            family_id,
            user_id: id_column(&row, "user_id", "refresh_tokens")?,
            org_id: id_column(&row, "org_id", "refresh_tokens")?,
            expires_at: now.saturating_add(ttl_ms).min(session_expires_at),
            session_expires_at,
        };
        insert_token(&mut tx, &record, new_hash, now).await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Rotated(record))
    }

    /// Ends the session the token belongs to (its whole family). `false` if unknown.
    pub async fn revoke_refresh_family(&self, token_hash: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        let result = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND family_id IN \
             (SELECT family_id FROM refresh_tokens WHERE token_hash = $2)",
        )
        .bind(now)
        .bind(token_hash)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Whether the session family is still live (not logged out, not revoked for reuse or by
    /// a password change, not past its end).
    pub async fn refresh_family_active(&self, family_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NULL \
             AND COALESCE(session_expires_at, expires_at) > $2",
        )
        .bind(family_id)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        let live: i64 = row.try_get("n")?;
        Ok(live > 0)
    }

    /// A user's email and password hash.
    pub async fn user_credentials(
        &self,
        user: UserId,
    ) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query("SELECT email, password_hash FROM users WHERE id = $1")
            .bind(user.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Ok((row.try_get("email")?, row.try_get("password_hash")?)))
            .transpose()
    }

    /// Sets a user's password and ends every session of theirs but `keep_family` (the one
    /// that changed it), recorded in the audit log of each organization they belong to.
    /// Returns how many sessions ended.
    pub async fn change_password(
        &self,
        user: UserId,
        password_hash: &str,
        keep_family: &str,
    ) -> Result<u64, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        let ended = sqlx::query(
            "SELECT COUNT(DISTINCT family_id) AS n FROM refresh_tokens WHERE user_id = $1 \
             AND family_id <> $2 AND revoked_at IS NULL",
        )
        .bind(user.to_string())
        .bind(keep_family)
        .fetch_one(&mut *tx)
        .await?
        .try_get::<i64, _>("n")?;
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND family_id <> $3 \
             AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user.to_string())
        .bind(keep_family)
        .execute(&mut *tx)
        .await?;
        let orgs = sqlx::query("SELECT org_id FROM org_members WHERE user_id = $1")
            .bind(user.to_string())
            .fetch_all(&mut *tx)
            .await?;
        let actor = format!("user:{user}");
        for row in &orgs {
            let org: OrgId = id_column(row, "org_id", "org_members")?;
            let entry = AuditEntry::new(org, &actor, "user.password_change", "user")
                .target(user)
                .after(serde_json::json!({ "other_sessions_ended": ended }));
            record(&mut tx, entry).await?;
        }
        tx.commit().await?;
        Ok(u64::try_from(ended).unwrap_or(0))
    }

    /// Replaces a generated signing key's stored secret, if it is still `current` (another
    /// replica may have replaced it first). `false` if it was not.
    pub async fn replace_signing_secret(
        &self,
        kid: &str,
        current: &str,
        replacement: &str,
    ) -> Result<bool, StoreError> {
        let result =
            sqlx::query("UPDATE signing_keys SET secret = $1 WHERE kid = $2 AND secret = $3")
                .bind(replacement)
                .bind(kid)
                .bind(current)
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The generated signing keys, oldest first. `candidate` is stored first if no key exists
    /// yet, so that every replica starting at once ends up with the same key.
    pub async fn signing_keys_or_create(
        &self,
        kid: &str,
        candidate: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, secret, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (kid) DO NOTHING",
        )
        .bind(kid)
        .bind(candidate)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        let rows = sqlx::query("SELECT kid, secret FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("kid")?, row.try_get("secret")?)))
            .collect()
    }
}
