//! Invitations to join an organization: created by its admins, accepted once by whoever holds
//! the token sent to the invitee's email.

use serde::Serialize;
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use tollgate_common::{OrgId, UserId};

use super::audit::{AuditEntry, record};
use super::members::add_org_member;
use super::organizations::Organization;
use super::users::normalize_email;
use super::{
    AuthStore, StoreError, duplicate_as, id_column, now_ms, optional_id_column, role_column,
};
use crate::roles::Role;

/// A pending invitation; never its token.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InvitationRecord {
    pub id: String,
    pub org_id: OrgId,
    pub email: String,
    pub role: Role,
    pub invited_by: Option<UserId>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Who accepts an invitation.
pub enum Invitee<'a> {
    /// A user who already has an account with the invitation's email.
    Existing(UserId),
    /// A new account with the invitation's email and this password hash.
    New { password_hash: &'a str },
}

const COLUMNS: &str = "id, org_id, email, role, invited_by, created_at, expires_at";

fn from_row(row: &AnyRow) -> Result<InvitationRecord, StoreError> {
    let role = role_column(row, "invitations")?;
    Ok(InvitationRecord {
        id: row.try_get("id")?,
        org_id: id_column(row, "org_id", "invitations")?,
        email: row.try_get("email")?,
        role,
        invited_by: optional_id_column(row, "invited_by", "invitations")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

impl AuthStore {
    /// A new invitation of `email` to `org`; an earlier pending one for the same email is
    /// withdrawn, so that only the newest link works.
    pub async fn create_invitation(
        &self,
        org: OrgId,
        email: &str,
        role: Role,
        token_hash: &str,
        invited_by: UserId,
        expires_at: i64,
    ) -> Result<InvitationRecord, StoreError> {
        self.write_audited(async |conn| {
            let now = now_ms();
            let normalized = normalize_email(email);
            sqlx::query(
            "UPDATE invitations SET revoked_at = $1 WHERE org_id = $2 AND email_normalized = $3 \
             AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(org.to_string())
        .bind(&normalized)
        .execute(&mut *conn)
        .await?;
            let invitation = InvitationRecord {
                id: uuid::Uuid::now_v7().hyphenated().to_string(),
                org_id: org,
                email: email.trim().to_owned(),
                role,
                invited_by: Some(invited_by),
                created_at: now,
                expires_at,
            };
            sqlx::query(
                "INSERT INTO invitations (id, org_id, email, email_normalized, role, token_hash, \
                 invited_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&invitation.id)
            .bind(org.to_string())
            .bind(&invitation.email)
            .bind(&normalized)
            .bind(role.as_str())
            .bind(token_hash)
            .bind(invited_by.to_string())
            .bind(now)
            .bind(expires_at)
            .execute(&mut *conn)
            .await
            .map_err(duplicate_as("an invitation with this token"))?;
            let entry = AuditEntry::new(
                org,
                &format!("user:{invited_by}"),
                "invitation.create",
                "invitation",
            )
            .target(&invitation.id)
            .after(json!({"email": invitation.email, "role": role}));
            Ok((invitation, entry))
        })
        .await
    }

    /// The organization's invitations that can still be accepted, newest first.
    pub async fn pending_invitations(
        &self,
        org: OrgId,
    ) -> Result<Vec<InvitationRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM invitations WHERE org_id = $1 AND accepted_at IS NULL \
             AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC"
        )))
        .bind(org.to_string())
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Withdraws a pending invitation of `org`; false if there is none with this id.
    pub async fn revoke_invitation(
        &self,
        org: OrgId,
        id: &str,
        actor: &str,
    ) -> Result<bool, StoreError> {
        self.write_audited(async |conn| {
            let done = sqlx::query(
                "UPDATE invitations SET revoked_at = $1 WHERE org_id = $2 AND id = $3 \
                 AND accepted_at IS NULL AND revoked_at IS NULL",
            )
            .bind(now_ms())
            .bind(org.to_string())
            .bind(id)
            .execute(&mut *conn)
            .await?;
            let revoked = done.rows_affected() > 0;
            let entry = revoked
                .then(|| AuditEntry::new(org, actor, "invitation.revoke", "invitation").target(id));
            Ok((revoked, entry))
        })
        .await
    }

    /// The pending invitation behind a token, with its organization.
    pub async fn invitation_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(InvitationRecord, Organization)>, StoreError> {
        let row = sqlx::query(
            "SELECT i.id, i.org_id, i.email, i.role, i.invited_by, i.created_at, i.expires_at, \
             o.name AS org_name, o.created_at AS org_created_at \
             FROM invitations i JOIN organizations o ON o.id = i.org_id \
             WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL \
             AND i.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let invitation = from_row(&row)?;
            let organization = Organization {
                id: invitation.org_id,
                name: row.try_get("org_name")?,
                created_at: row.try_get("org_created_at")?,
            };
            Ok((invitation, organization))
        })
        .transpose()
    }

    /// Accepts the pending invitation behind `token_hash` as `invitee`, all or nothing: marks
    /// it used (so a second use finds nothing), makes the account if new, and adds the
    /// membership. Returns the user and organization, or `None` if the token is no longer
    /// valid.
    pub async fn accept_invitation(
        &self,
        token_hash: &str,
        invitee: Invitee<'_>,
    ) -> Result<Option<(UserId, OrgId)>, StoreError> {
        let Some((invitation, _)) = self.invitation_by_token(token_hash).await? else {
            return Ok(None);
        };
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let user = match invitee {
            Invitee::Existing(user) => user,
            Invitee::New { password_hash } => {
                let user = UserId::generate();
                sqlx::query(
                    "INSERT INTO users (id, email, email_normalized, password_hash, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(user.to_string())
                .bind(&invitation.email)
                .bind(normalize_email(&invitation.email))
                .bind(password_hash)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(duplicate_as("an account with this email"))?;
                user
            }
        };
        // The check and the use are one statement: of two acceptances racing, one wins.
        let claimed = sqlx::query(
            "UPDATE invitations SET accepted_at = $1, accepted_by = $2 WHERE token_hash = $3 \
             AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(user.to_string())
        .bind(token_hash)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            return Ok(None);
        }
        let actor = format!("user:{user}");
        add_org_member(&mut tx, invitation.org_id, user, invitation.role, &actor)
            .await
            .map_err(|err| match err {
                StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    StoreError::Duplicate("a membership of this organization")
                }
                other => other,
            })?;
        record(
            &mut tx,
            AuditEntry::new(invitation.org_id, &actor, "invitation.accept", "invitation")
                .target(&invitation.id),
        )
        .await?;
        tx.commit().await?;
        Ok(Some((user, invitation.org_id)))
    }
}
