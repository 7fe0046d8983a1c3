//! Sign-up: a user, their organization with its default team, the owner membership and the
//! first key, made together; and sign-ups waiting for their address to be confirmed
//! (`auth.signup.verify_email`): what the account will be made of, under the hash of the token
//! mailed to the address.

use sqlx::Row;
use tollgate_common::UserId;

use super::keys::{KeyRecord, NewKey, insert_key};
use super::members::add_org_member;
use super::organizations::{Organization, insert_org_and_team};
use super::teams::{Team, add_team_member};
use super::users::{User, normalize_email};
use super::{AuthStore, StoreError, duplicate_as, now_ms};
use crate::roles::Role;

/// Everything sign-up creates, in one transaction.
#[derive(Debug)]
pub struct SignupRecords {
    pub user: User,
    pub organization: Organization,
    pub team: Team,
}

/// A sign-up to be confirmed.
pub struct NewPendingSignup<'a> {
    pub token_hash: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub organization: &'a str,
    pub ttl_ms: i64,
}

/// What asking for a sign-up found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingSignupOutcome {
    /// Kept until confirmed or expired.
    Pending,
    /// The address already has an account; nothing was kept.
    AccountExists,
}

/// A confirmed sign-up's details, taken out of the table.
#[derive(Debug, Clone)]
pub struct PendingSignup {
    pub email: String,
    pub password_hash: String,
    pub organization: String,
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
    ) -> Result<(SignupRecords, KeyRecord), StoreError> {
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

    /// Keeps a sign-up until its token is presented, unless the address has an account.
    /// Expired sign-ups are swept on the way.
    pub async fn add_pending_signup(
        &self,
        signup: NewPendingSignup<'_>,
    ) -> Result<PendingSignupOutcome, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM pending_signups WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let exists = sqlx::query("SELECT 1 AS found FROM users WHERE email_normalized = $1")
            .bind(normalize_email(signup.email))
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if exists {
            tx.commit().await?;
            return Ok(PendingSignupOutcome::AccountExists);
        }
        sqlx::query(
            "INSERT INTO pending_signups (token_hash, email, password_hash, organization, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(signup.token_hash)
        .bind(signup.email)
        .bind(signup.password_hash)
        .bind(signup.organization)
        .bind(now)
        .bind(now.saturating_add(signup.ttl_ms))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(PendingSignupOutcome::Pending)
    }

    /// Takes the unexpired sign-up of a token out of the table: a link works once.
    pub async fn take_pending_signup(
        &self,
        token_hash: &str,
    ) -> Result<Option<PendingSignup>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT email, password_hash, organization, expires_at FROM pending_signups \
             WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        sqlx::query("DELETE FROM pending_signups WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let expires_at: i64 = row.try_get("expires_at")?;
        if expires_at <= now {
            return Ok(None);
        }
        Ok(Some(PendingSignup {
            email: row.try_get("email")?,
            password_hash: row.try_get("password_hash")?,
            organization: row.try_get("organization")?,
        }))
    }
}
