//! Teams as the GraphQL API shows them: the organization's teams, the ways to create, rename
//! and delete them, and [`TeamLoader`] for the team of each key in an answer.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, Error, ID, Object, SimpleObject};
use tollgate_auth::store::Team;
use tollgate_auth::{AuthService, Caller};

use crate::errors::OrGraphql;
use crate::schema::{caller, service};

#[derive(SimpleObject, Clone)]
#[graphql(name = "Team")]
pub struct TeamObject {
    pub id: ID,
    pub name: String,
    pub created_at: i64,
}

impl From<Team> for TeamObject {
    fn from(team: Team) -> Self {
        TeamObject {
            id: ID(team.id.to_string()),
            name: team.name,
            created_at: team.created_at,
        }
    }
}

/// Loads the teams that the records of one request refer to in one query, however many
/// records there are (one per request: it is bound to the caller's organization).
pub struct TeamLoader {
    service: Arc<AuthService>,
    caller: Caller,
}

impl TeamLoader {
    pub fn new(service: Arc<AuthService>, caller: Caller) -> DataLoader<TeamLoader> {
        DataLoader::new(TeamLoader { service, caller }, tokio::spawn)
    }
}

impl Loader<String> for TeamLoader {
    type Value = TeamObject;
    type Error = Arc<Error>;

    async fn load(&self, ids: &[String]) -> Result<HashMap<String, TeamObject>, Self::Error> {
        let teams = self
            .service
            .teams(&self.caller)
            .await
            .or_graphql()
            .map_err(Arc::new)?;
        Ok(teams
            .into_iter()
            .filter(|team| ids.contains(&team.id.to_string()))
            .map(|team| (team.id.to_string(), TeamObject::from(team)))
            .collect())
    }
}

#[derive(Default)]
pub struct TeamsQuery;

#[Object]
impl TeamsQuery {
    async fn teams(&self, ctx: &Context<'_>) -> Result<Vec<TeamObject>, Error> {
        let teams = service(ctx).teams(caller(ctx)?).await.or_graphql()?;
        Ok(teams.into_iter().map(TeamObject::from).collect())
    }
}

#[derive(Default)]
pub struct TeamsMutation;

#[Object]
impl TeamsMutation {
    async fn create_team(&self, ctx: &Context<'_>, name: String) -> Result<TeamObject, Error> {
        let team = service(ctx)
            .create_team(caller(ctx)?, &name)
            .await
            .or_graphql()?;
        Ok(team.into())
    }

    async fn rename_team(
        &self,
        ctx: &Context<'_>,
        id: ID,
        name: String,
    ) -> Result<TeamObject, Error> {
        let team = service(ctx)
            .rename_team(caller(ctx)?, &id, &name)
            .await
            .or_graphql()?;
        Ok(team.into())
    }

    /// Deletes a team (and revokes nothing: a team with keys cannot be deleted).
    async fn delete_team(&self, ctx: &Context<'_>, id: ID) -> Result<bool, Error> {
        service(ctx)
            .delete_team(caller(ctx)?, &id)
            .await
            .or_graphql()?;
        Ok(true)
    }
}
