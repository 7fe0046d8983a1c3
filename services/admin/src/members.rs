//! The organization's members as the GraphQL API shows them, and the ways to change a
//! member's role or remove them.

use async_graphql::{Context, Error, ID, Object, SimpleObject};
use tollgate_auth::store::Member;

use crate::errors::OrGraphql;
use crate::schema::{RoleName, caller, service};

#[derive(SimpleObject)]
#[graphql(name = "Member")]
pub struct MemberObject {
    pub user_id: ID,
    pub email: String,
    pub role: RoleName,
    pub joined_at: i64,
}

impl From<Member> for MemberObject {
    fn from(member: Member) -> Self {
        MemberObject {
            user_id: ID(member.user_id.to_string()),
            email: member.email,
            role: member.role.into(),
            joined_at: member.joined_at,
        }
    }
}

#[derive(Default)]
pub struct MembersQuery;

#[Object]
impl MembersQuery {
    async fn members(&self, ctx: &Context<'_>) -> Result<Vec<MemberObject>, Error> {
        let members = service(ctx).members(caller(ctx)?).await.or_graphql()?;
        Ok(members.into_iter().map(MemberObject::from).collect())
    }
}

#[derive(Default)]
pub struct MembersMutation;

#[Object]
impl MembersMutation {
    async fn set_member_role(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        role: RoleName,
    ) -> Result<MemberObject, Error> {
        let member = service(ctx)
            .set_member_role(caller(ctx)?, &user_id, role.into())
            .await
            .or_graphql()?;
        Ok(member.into())
    }

    async fn remove_member(&self, ctx: &Context<'_>, user_id: ID) -> Result<bool, Error> {
        service(ctx)
            .remove_member(caller(ctx)?, &user_id)
            .await
            .or_graphql()?;
        Ok(true)
    }
}
