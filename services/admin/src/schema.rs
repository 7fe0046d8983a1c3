//! The GraphQL schema: queries and mutations over the caller's organization, assembled from
//! each domain's slice (`keys`, `teams`, `budgets`, ...).
//!
//! Every resolver acts as the caller through the auth service's operations, which check the
//! caller's role and scope every read and write to their organization; ids of another
//! organization's records are simply not found. Queries are bounded in depth and complexity,
//! documents in width, and each user's mutations in rate ([`crate::limits`]).

use std::sync::Arc;

use async_graphql::{Context, EmptySubscription, Enum, Error, MergedObject, Schema};
use serde_json::Value;
use tollgate_auth::{AuthError, AuthService, Caller, Role};
use tollgate_billing::BudgetCounters;
use tollgate_common::PriceCatalog;

use crate::admin_tokens::{AdminTokensMutation, AdminTokensQuery};
use crate::billing::{BillingMutation, BillingQuery, BillingSetup};
use crate::budgets::{BudgetsMutation, BudgetsQuery};
use crate::cache_policy::{CachePolicyMutation, CachePolicyQuery};
use crate::errors::{ErrorCodes, bad_input};
use crate::guardrails::{GuardrailsMutation, GuardrailsQuery};
use crate::invitations::{InvitationsMutation, InvitationsQuery};
use crate::keys::{KeysMutation, KeysQuery};
use crate::limits::{RateLimitsMutation, RateLimitsQuery};
use crate::members::{MembersMutation, MembersQuery};
use crate::models::ModelsQuery;
use crate::operation_limits::{
    IntrospectionGate, MutationLimiter, MutationRateLimit, OperationShape,
};
use crate::provider_keys::{ProviderKeysMutation, ProviderKeysQuery};
use crate::requests::RequestsQuery;
use crate::teams::{TeamsMutation, TeamsQuery};
use crate::usage::{UsageSeriesQuery, UsageTotalsQuery};
use crate::viewer::ViewerQuery;

/// The admin schema.
pub type AdminSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Deepest query accepted: deep enough for every real screen, too shallow for abuse.
pub const MAX_DEPTH: usize = 10;
/// Most complex query accepted (each field counts 1, lists by their page size).
pub const MAX_COMPLEXITY: usize = 1_000;

// The slices' order is the order of the fields in the schema (`api-schema/schema.graphql`).
// No doc comment on the roots: it would become their description in the schema.
#[derive(MergedObject, Default)]
pub struct QueryRoot(
    ViewerQuery,
    TeamsQuery,
    MembersQuery,
    KeysQuery,
    BudgetsQuery,
    RateLimitsQuery,
    UsageTotalsQuery,
    RequestsQuery,
    UsageSeriesQuery,
    ModelsQuery,
    BillingQuery,
    ProviderKeysQuery,
    InvitationsQuery,
    AdminTokensQuery,
    CachePolicyQuery,
    GuardrailsQuery,
);

#[derive(MergedObject, Default)]
pub struct MutationRoot(
    BillingMutation,
    ProviderKeysMutation,
    InvitationsMutation,
    AdminTokensMutation,
    TeamsMutation,
    MembersMutation,
    KeysMutation,
    BudgetsMutation,
    RateLimitsMutation,
    CachePolicyMutation,
    GuardrailsMutation,
);

/// Builds the schema over `service`; `budgets` are the counters that hold reservations of
/// requests in flight, `mutations` the buckets every mutation is charged to.
pub fn build(
    service: Arc<AuthService>,
    catalog: Arc<PriceCatalog>,
    budgets: Arc<BudgetCounters>,
    billing: BillingSetup,
    mutations: Arc<MutationLimiter>,
) -> AdminSchema {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        EmptySubscription,
    )
    .data(service)
    .data(catalog)
    .data(budgets)
    .data(billing)
    .limit_depth(MAX_DEPTH)
    .limit_complexity(MAX_COMPLEXITY)
    .extension(ErrorCodes)
    .extension(OperationShape)
    .extension(IntrospectionGate)
    .extension(MutationRateLimit::new(
        mutations,
        <MutationRoot as async_graphql::OutputType>::type_name(),
    ))
    .finish()
}

/// The schema in GraphQL SDL, as committed in `api-schema/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        EmptySubscription,
    )
    .finish()
    .sdl()
}

/// The request's caller, set by the HTTP handler from the bearer token.
pub struct RequestCaller(pub Result<Caller, AuthError>);

pub(crate) fn caller<'a>(ctx: &'a Context<'_>) -> Result<&'a Caller, Error> {
    match ctx.data::<RequestCaller>() {
        Ok(RequestCaller(Ok(caller))) => Ok(caller),
        Ok(RequestCaller(Err(err))) => Err(crate::errors::graphql_error(clone_auth_error(err))),
        Err(_) => Err(crate::errors::graphql_error(AuthError::MissingToken)),
    }
}

/// Auth errors are not `Clone`; the ones a token check gives are rebuilt.
pub(crate) fn clone_auth_error(error: &AuthError) -> AuthError {
    match error {
        AuthError::Token(token) => AuthError::Token(token.clone()),
        AuthError::MissingToken => AuthError::MissingToken,
        other => AuthError::Internal(other.to_string()),
    }
}

pub(crate) fn service<'a>(ctx: &'a Context<'_>) -> &'a AuthService {
    // `build` always adds it.
    ctx.data_unchecked::<Arc<AuthService>>()
}

/// A role in an organization or team.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "Role")]
pub enum RoleName {
    Viewer,
    Member,
    Admin,
    Owner,
}

impl From<Role> for RoleName {
    fn from(role: Role) -> Self {
        match role {
            Role::Viewer => RoleName::Viewer,
            Role::Member => RoleName::Member,
            Role::Admin => RoleName::Admin,
            Role::Owner => RoleName::Owner,
        }
    }
}

impl From<RoleName> for Role {
    fn from(role: RoleName) -> Self {
        match role {
            RoleName::Viewer => Role::Viewer,
            RoleName::Member => Role::Member,
            RoleName::Admin => Role::Admin,
            RoleName::Owner => Role::Owner,
        }
    }
}

/// Removes absent fields, so that the auth service sees only what the caller set.
pub(crate) fn present(value: Value) -> Value {
    match value {
        Value::Object(fields) => {
            Value::Object(fields.into_iter().filter(|(_, v)| !v.is_null()).collect())
        }
        other => other,
    }
}

/// Reads a JSON document into one of the auth service's request types (which validate it).
pub(crate) fn parse<T: serde::de::DeserializeOwned>(what: &str, value: Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| bad_input(what, e.to_string()))
}
