//! Invitations and admin API tokens as the GraphQL API shows them.

use async_graphql::{ID, SimpleObject};
use tollgate_auth::service::{IssuedAdminToken as IssuedToken, IssuedInvitation as Issued};
use tollgate_auth::store::{AdminTokenRecord, InvitationRecord};

use crate::schema::RoleName;

/// An invitation to join the organization, not yet accepted; never its token.
#[derive(SimpleObject)]
pub struct Invitation {
    pub id: ID,
    pub email: String,
    pub role: RoleName,
    pub invited_by: Option<ID>,
    pub created_at: i64,
    /// After this (Unix milliseconds) the link no longer works.
    pub expires_at: i64,
}

impl From<InvitationRecord> for Invitation {
    fn from(record: InvitationRecord) -> Self {
        Invitation {
            id: ID(record.id),
            email: record.email,
            role: record.role.into(),
            invited_by: record.invited_by.map(|u| ID(u.to_string())),
            created_at: record.created_at,
            expires_at: record.expires_at,
        }
    }
}

/// A new invitation with its token, shown this once: the invitee accepts it at
/// `/#/accept/<token>` on the dashboard, or with `POST /auth/invitations/accept`.
#[derive(SimpleObject)]
pub struct IssuedInvitation {
    pub token: String,
    pub invitation: Invitation,
}

impl From<Issued> for IssuedInvitation {
    fn from(issued: Issued) -> Self {
        IssuedInvitation {
            token: issued.token,
            invitation: issued.invitation.into(),
        }
    }
}

/// A bearer token for scripts calling the admin API; never its secret.
#[derive(SimpleObject)]
pub struct AdminToken {
    pub id: ID,
    pub name: String,
    /// What the token may do (never more than its creator can).
    pub role: RoleName,
    /// The token's first characters, to tell tokens apart.
    pub display_prefix: String,
    pub created_by: ID,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl From<AdminTokenRecord> for AdminToken {
    fn from(record: AdminTokenRecord) -> Self {
        AdminToken {
            id: ID(record.id),
            name: record.name,
            role: record.role.into(),
            display_prefix: record.display_prefix,
            created_by: ID(record.created_by.to_string()),
            created_at: record.created_at,
            expires_at: record.expires_at,
            last_used_at: record.last_used_at,
            revoked_at: record.revoked_at,
        }
    }
}

/// A new admin token with its secret, shown this once.
#[derive(SimpleObject)]
pub struct IssuedAdminToken {
    pub secret: String,
    pub token: AdminToken,
}

impl From<IssuedToken> for IssuedAdminToken {
    fn from(issued: IssuedToken) -> Self {
        IssuedAdminToken {
            secret: issued.secret,
            token: issued.token.into(),
        }
    }
}
