//! The logged-in user as the GraphQL API shows them: who they are, the organization they act
//! in and their role there (`viewer` in the schema).

use async_graphql::{Context, Error, ID, Object, SimpleObject};

use crate::errors::OrGraphql;
use crate::schema::{RoleName, caller, service};

/// The logged-in user, in the organization they act in.
#[derive(SimpleObject)]
pub struct Viewer {
    pub user_id: ID,
    pub email: String,
    pub organization: Organization,
    pub role: RoleName,
}

#[derive(SimpleObject)]
pub struct Organization {
    pub id: ID,
    pub name: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// The logged-in user, their organization and role.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer, Error> {
        let caller = caller(ctx)?;
        let me = service(ctx).me(caller).await.or_graphql()?;
        Ok(Viewer {
            user_id: ID(me.user.id.to_string()),
            email: me.user.email,
            organization: Organization {
                id: ID(me.organization.id.to_string()),
                name: me.organization.name,
                created_at: me.organization.created_at,
            },
            role: me.role.into(),
        })
    }
}
