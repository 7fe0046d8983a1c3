//! Rate limits as the GraphQL API shows them: the organization's defaults for keys that set
//! none, and each team's limits for all its keys together and per model. A key's own limits
//! are on the key ([`crate::keys`]).

use async_graphql::{Context, Error, ID, InputObject, Object, SimpleObject};
use tollgate_auth::store::{RatePair, TeamLimits};

use crate::errors::OrGraphql;
use crate::schema::{caller, service};

/// Requests and tokens per minute; null is no limit at this level.
#[derive(SimpleObject, InputObject, Clone, Copy)]
#[graphql(input_name = "RateLimitsInput")]
pub struct RateLimits {
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
}

impl From<RatePair> for RateLimits {
    fn from(pair: RatePair) -> Self {
        RateLimits {
            rpm: pair.rpm,
            tpm: pair.tpm,
        }
    }
}

/// Limits for one model name clients send.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "ModelRateLimitsInput")]
pub struct ModelRateLimits {
    pub model: String,
    pub limits: RateLimits,
}

/// A team's limits: for all its keys together, and per model.
#[derive(SimpleObject)]
pub struct TeamRateLimits {
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub models: Vec<ModelRateLimits>,
}

impl From<TeamLimits> for TeamRateLimits {
    fn from(limits: TeamLimits) -> Self {
        TeamRateLimits {
            rpm: limits.rpm,
            tpm: limits.tpm,
            models: limits
                .models
                .into_iter()
                .map(|(model, pair)| ModelRateLimits {
                    model,
                    limits: pair.into(),
                })
                .collect(),
        }
    }
}

#[derive(Default)]
pub struct RateLimitsQuery;

#[Object]
impl RateLimitsQuery {
    /// The organization's default rate limits for keys that set none.
    async fn organization_rate_limits(&self, ctx: &Context<'_>) -> Result<RateLimits, Error> {
        let limits = service(ctx).org_limits(caller(ctx)?).await.or_graphql()?;
        Ok(limits.into())
    }

    /// A team's rate limits for all its keys together, and per model.
    async fn team_rate_limits(
        &self,
        ctx: &Context<'_>,
        team_id: ID,
    ) -> Result<TeamRateLimits, Error> {
        let limits = service(ctx)
            .team_limits(caller(ctx)?, &team_id)
            .await
            .or_graphql()?;
        Ok(limits.into())
    }
}

#[derive(Default)]
pub struct RateLimitsMutation;

#[Object]
impl RateLimitsMutation {
    async fn set_organization_rate_limits(
        &self,
        ctx: &Context<'_>,
        limits: RateLimits,
    ) -> Result<RateLimits, Error> {
        let pair = RatePair {
            rpm: limits.rpm,
            tpm: limits.tpm,
        };
        let set = service(ctx)
            .set_org_limits(caller(ctx)?, pair)
            .await
            .or_graphql()?;
        Ok(set.into())
    }

    /// Replaces a team's limits for all its keys together, and per model name clients send.
    async fn set_team_rate_limits(
        &self,
        ctx: &Context<'_>,
        team_id: ID,
        limits: RateLimits,
        #[graphql(default)] models: Vec<ModelRateLimits>,
    ) -> Result<TeamRateLimits, Error> {
        let limits = TeamLimits {
            rpm: limits.rpm,
            tpm: limits.tpm,
            models: models
                .into_iter()
                .map(|m| {
                    let pair = RatePair {
                        rpm: m.limits.rpm,
                        tpm: m.limits.tpm,
                    };
                    (m.model, pair)
                })
                .collect(),
        };
        let set = service(ctx)
            .set_team_limits(caller(ctx)?, &team_id, limits)
            .await
            .or_graphql()?;
        Ok(set.into())
    }
}
