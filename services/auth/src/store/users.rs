//! Users: their accounts and the credentials they log in with.

use serde::Serialize;
use sqlx::Row;
use tollgate_common::UserId;

use super::{AuthStore, StoreError, id_column};

/// A user as others may see them: never the password hash.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub created_at: i64,
}

impl AuthStore {
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
}

/// Emails are unique whatever their case and surrounding blanks.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}
