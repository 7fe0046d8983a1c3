//! Admin API tokens as the GraphQL API shows them (never their secret, except once when
//! issued), and the ways to create and revoke them.

use async_graphql::{Context, Error, ID, Object, SimpleObject};
use tollgate_auth::service::IssuedAdminToken as IssuedToken;
use tollgate_auth::store::AdminTokenRecord;

use crate::errors::OrGraphql;
use crate::schema::{RoleName, caller, service};

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

#[derive(Default)]
pub struct AdminTokensQuery;

#[Object]
impl AdminTokensQuery {
    /// Admin API tokens: all of the organization's for admins, one's own otherwise.
    async fn admin_tokens(&self, ctx: &Context<'_>) -> Result<Vec<AdminToken>, Error> {
        let tokens = service(ctx).admin_tokens(caller(ctx)?).await.or_graphql()?;
        Ok(tokens.into_iter().map(AdminToken::from).collect())
    }
}

#[derive(Default)]
pub struct AdminTokensMutation;

#[Object]
impl AdminTokensMutation {
    /// A token for scripts, with a role no higher than the caller's; its secret is in the
    /// answer and nowhere else, ever.
    async fn create_admin_token(
        &self,
        ctx: &Context<'_>,
        name: String,
        role: RoleName,
        expires_at: Option<i64>,
    ) -> Result<IssuedAdminToken, Error> {
        let issued = service(ctx)
            .create_admin_token(caller(ctx)?, &name, role.into(), expires_at)
            .await
            .or_graphql()?;
        Ok(issued.into())
    }

    async fn revoke_admin_token(&self, ctx: &Context<'_>, id: ID) -> Result<AdminToken, Error> {
        let token = service(ctx)
            .revoke_admin_token(caller(ctx)?, &id)
            .await
            .or_graphql()?;
        Ok(token.into())
    }
}
