//! Cache policies as the GraphQL API shows them: the defaults set at one level (the
//! organization, a team or a key), and the way to set them.

use async_graphql::{Context, Enum, Error, InputObject, Object, SimpleObject};
use tollgate_common::{CachePolicy, CachePolicyMode, CacheShare};

use crate::errors::OrGraphql;
use crate::levels::{PolicyLevelInput, policy_target};
use crate::schema::{caller, service};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum CacheModeName {
    Off,
    Exact,
    Semantic,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum CacheShareName {
    Organization,
    Team,
}

/// Cache defaults of one level; null inherits from the level above.
#[derive(SimpleObject, InputObject, Clone, Copy)]
#[graphql(name = "CachePolicy", input_name = "CachePolicyInput")]
pub struct CachePolicyObject {
    pub mode: Option<CacheModeName>,
    pub ttl_secs: Option<u64>,
    pub share: Option<CacheShareName>,
}

impl From<CachePolicy> for CachePolicyObject {
    fn from(policy: CachePolicy) -> Self {
        CachePolicyObject {
            mode: policy.mode.map(|mode| match mode {
                CachePolicyMode::Off => CacheModeName::Off,
                CachePolicyMode::Exact => CacheModeName::Exact,
                CachePolicyMode::Semantic => CacheModeName::Semantic,
            }),
            ttl_secs: policy.ttl_secs,
            share: policy.share.map(|share| match share {
                CacheShare::Organization => CacheShareName::Organization,
                CacheShare::Team => CacheShareName::Team,
            }),
        }
    }
}

impl From<CachePolicyObject> for CachePolicy {
    fn from(policy: CachePolicyObject) -> Self {
        CachePolicy {
            mode: policy.mode.map(|mode| match mode {
                CacheModeName::Off => CachePolicyMode::Off,
                CacheModeName::Exact => CachePolicyMode::Exact,
                CacheModeName::Semantic => CachePolicyMode::Semantic,
            }),
            ttl_secs: policy.ttl_secs,
            share: policy.share.map(|share| match share {
                CacheShareName::Organization => CacheShare::Organization,
                CacheShareName::Team => CacheShare::Team,
            }),
        }
    }
}

#[derive(Default)]
pub struct CachePolicyQuery;

#[Object]
impl CachePolicyQuery {
    /// The cache policy set at one level (not merged with the levels above).
    async fn cache_policy(
        &self,
        ctx: &Context<'_>,
        level: PolicyLevelInput,
    ) -> Result<CachePolicyObject, Error> {
        let policy = service(ctx)
            .cache_policy(caller(ctx)?, policy_target(&level)?)
            .await
            .or_graphql()?;
        Ok(policy.into())
    }
}

#[derive(Default)]
pub struct CachePolicyMutation;

#[Object]
impl CachePolicyMutation {
    async fn set_cache_policy(
        &self,
        ctx: &Context<'_>,
        level: PolicyLevelInput,
        policy: CachePolicyObject,
    ) -> Result<CachePolicyObject, Error> {
        let set = service(ctx)
            .set_cache_policy(caller(ctx)?, policy_target(&level)?, policy.into())
            .await
            .or_graphql()?;
        Ok(set.into())
    }
}
