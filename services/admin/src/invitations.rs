//! Invitations as the GraphQL API shows them (never their token, except once when issued), and
//! the ways to invite someone and to withdraw an invitation.

use async_graphql::{Context, Error, ID, Object, SimpleObject};
use tollgate_auth::service::IssuedInvitation as Issued;
use tollgate_auth::store::InvitationRecord;

use crate::errors::OrGraphql;
use crate::schema::{RoleName, caller, service};

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

#[derive(Default)]
pub struct InvitationsQuery;

#[Object]
impl InvitationsQuery {
    /// Invitations not yet accepted, withdrawn or expired (admins).
    async fn invitations(&self, ctx: &Context<'_>) -> Result<Vec<Invitation>, Error> {
        let invitations = service(ctx).invitations(caller(ctx)?).await.or_graphql()?;
        Ok(invitations.into_iter().map(Invitation::from).collect())
    }
}

#[derive(Default)]
pub struct InvitationsMutation;

#[Object]
impl InvitationsMutation {
    /// Invites someone by email; the token in the answer is shown this once.
    async fn invite_member(
        &self,
        ctx: &Context<'_>,
        email: String,
        role: RoleName,
    ) -> Result<IssuedInvitation, Error> {
        let issued = service(ctx)
            .invite(caller(ctx)?, &email, role.into())
            .await
            .or_graphql()?;
        Ok(issued.into())
    }

    async fn revoke_invitation(&self, ctx: &Context<'_>, id: ID) -> Result<bool, Error> {
        service(ctx)
            .revoke_invitation(caller(ctx)?, &id)
            .await
            .or_graphql()?;
        Ok(true)
    }
}
