//! The GraphQL schema: queries and mutations over the caller's organization.
//!
//! Every resolver acts as the caller through the auth service's operations, which check the
//! caller's role and scope every read and write to their organization; ids of another
//! organization's records are simply not found. Queries are bounded in depth and complexity,
//! documents in width, and each user's mutations in rate ([`crate::limits`]).

use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{
    ComplexObject, Context, EmptySubscription, Enum, Error, ID, InputObject, Object, Schema,
    SimpleObject,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tollgate_auth::service::{IssuedKey, KeyView, PolicyTarget};
use tollgate_auth::store::{BudgetRecord, Member, RatePair, Team, TeamLimits};
use tollgate_auth::{Actor, AuthError, AuthService, Caller, Role};
use tollgate_billing::BudgetCounters;
use tollgate_billing::budgets::counter_name;
use tollgate_common::{
    BudgetScope, CachePolicy, CachePolicyMode, CacheShare, ModelPrice, PriceCatalog,
};

use crate::access::{AdminToken, Invitation, IssuedAdminToken, IssuedInvitation};
use crate::billing::{Billing, BillingSetup, CheckoutPurpose, PaymentRedirect};

use crate::errors::{ErrorCodes, OrGraphql, bad_input};
use crate::limits::{IntrospectionGate, MutationLimiter, MutationRateLimit, OperationShape};
use crate::provider_keys::{BillingPlan, OwnProviderKeys, ProviderKey};
use crate::requests::{RequestFilter, RequestPage};
use crate::usage::{UsageGroup, UsageInput, UsagePoint};

/// The admin schema.
pub type AdminSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Deepest query accepted: deep enough for every real screen, too shallow for abuse.
pub const MAX_DEPTH: usize = 10;
/// Most complex query accepted (each field counts 1, lists by their page size).
pub const MAX_COMPLEXITY: usize = 1_000;

/// Builds the schema over `service`; `budgets` are the counters that hold reservations of
/// requests in flight, `mutations` the buckets every mutation is charged to.
pub fn build(
    service: Arc<AuthService>,
    catalog: Arc<PriceCatalog>,
    budgets: Arc<BudgetCounters>,
    billing: BillingSetup,
    mutations: Arc<MutationLimiter>,
) -> AdminSchema {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
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
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
        .finish()
        .sdl()
}

/// The request's caller, set by the HTTP handler from the bearer token.
pub struct RequestCaller(pub Result<Caller, AuthError>);

fn caller<'a>(ctx: &'a Context<'_>) -> Result<&'a Caller, Error> {
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

    async fn load(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, TeamObject>, Self::Error> {
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

fn service<'a>(ctx: &'a Context<'_>) -> &'a AuthService {
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

/// A tag of a key, for cost attribution.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "TagInput")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// A virtual key; never its secret.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct VirtualKey {
    pub id: ID,
    pub team_id: ID,
    pub name: String,
    /// The key's first characters, to tell keys apart.
    pub display_prefix: String,
    /// `active`, `rotating`, `disabled`, `expired` or `revoked`.
    pub status: String,
    pub allowed_models: Vec<String>,
    pub expires_at: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    /// USD, exact decimal.
    pub budget_usd: Option<String>,
    pub budget_period: Option<String>,
    pub tags: Vec<Tag>,
    pub created_by: Option<ID>,
    pub revoked_at: Option<i64>,
    pub rotated_to: Option<ID>,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
}

impl From<KeyView> for VirtualKey {
    fn from(view: KeyView) -> Self {
        let key = view.key;
        let status = serde_json::to_value(view.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        VirtualKey {
            id: ID(key.id.to_string()),
            team_id: ID(key.team_id.to_string()),
            name: key.name,
            display_prefix: key.display_prefix,
            status,
            allowed_models: key.allowed_models,
            expires_at: key.expires_at,
            rpm_limit: key.rpm_limit,
            tpm_limit: key.tpm_limit,
            budget_usd: key.budget_usd.map(|d| d.to_string()),
            budget_period: key.budget_period,
            tags: key
                .tags
                .into_iter()
                .map(|(key, value)| Tag { key, value })
                .collect(),
            created_by: key.created_by.map(|u| ID(u.to_string())),
            revoked_at: key.revoked_at,
            rotated_to: key.rotated_to.map(|k| ID(k.to_string())),
            last_used_at: key.last_used_at,
            created_at: key.created_at,
        }
    }
}

#[ComplexObject]
impl VirtualKey {
    /// The key's team (loaded once for all the keys of an answer).
    async fn team(&self, ctx: &Context<'_>) -> Result<Option<TeamObject>, Error> {
        let Ok(loader) = ctx.data::<DataLoader<TeamLoader>>() else {
            return Err(crate::errors::graphql_error(AuthError::MissingToken));
        };
        loader
            .load_one(self.team_id.to_string())
            .await
            .map_err(|err| (*err).clone())
    }
}

/// A key just created or rotated, with its secret: shown this once.
#[derive(SimpleObject)]
pub struct IssuedVirtualKey {
    /// The full key; it cannot be read again.
    pub secret: String,
    pub key: VirtualKey,
}

impl From<IssuedKey> for IssuedVirtualKey {
    fn from(issued: IssuedKey) -> Self {
        IssuedVirtualKey {
            secret: issued.key,
            key: issued.view.into(),
        }
    }
}

#[derive(SimpleObject)]
pub struct Budget {
    pub id: ID,
    /// `organization`, `team`, `key` or `user`.
    pub scope: String,
    /// The team or key id, the end user, or `*` for each end user; empty for the organization.
    pub target: String,
    /// `daily`, `weekly`, `monthly` or `lifetime`.
    pub period: String,
    /// USD, exact decimal.
    pub limit_usd: String,
    /// Alert thresholds, percent of the limit.
    pub thresholds: Vec<u32>,
    /// When the current period started, Unix milliseconds (UTC).
    pub period_start: i64,
    /// Settled spend in the current period, USD (for a budget on each end user, the most
    /// any one spent). Requests in flight are not included.
    pub spent_usd: String,
    /// Held by requests in flight in the current period, USD, until they settle (0 for a
    /// budget on each end user: each end user's reservations are apart).
    pub reserved_usd: String,
    /// What is left of the limit in the current period, USD, never below zero.
    pub remaining_usd: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Budget {
    /// The budget with its spend in the current period, from the ledger's daily rollups.
    async fn with_spend(ctx: &Context<'_>, budget: BudgetRecord) -> Result<Budget, Error> {
        let (spent, period_start) = service(ctx)
            .store()
            .budget_spent(&budget, tollgate_common::now_ms())
            .await
            .map_err(|e| crate::errors::graphql_error(AuthError::Internal(e.to_string())))?;
        let spent_usd = spent.to_usd();
        let remaining = (budget.limit_usd - spent_usd).max(Decimal::ZERO);
        let reserved_usd = match budget.budget_scope() {
            BudgetScope::EveryUser => Decimal::ZERO,
            _ => {
                let counters = ctx.data_unchecked::<Arc<BudgetCounters>>();
                let counter = counter_name(&budget.id, period_start, None);
                // Counters are whole nanodollars.
                let reserved = counters.read(&counter).await.map_or(0, |(_, r)| r.max(0));
                Decimal::new(reserved, 9)
            }
        };
        Ok(Budget {
            id: ID(budget.id),
            scope: budget.scope,
            target: budget.target,
            period: budget.period.as_str().to_owned(),
            limit_usd: budget.limit_usd.to_string(),
            thresholds: budget.thresholds,
            period_start,
            spent_usd: spent_usd.normalize().to_string(),
            reserved_usd: reserved_usd.normalize().to_string(),
            remaining_usd: remaining.normalize().to_string(),
            created_at: budget.created_at,
            updated_at: budget.updated_at,
        })
    }
}

/// A model's prices, USD per million tokens, exact decimals.
#[derive(SimpleObject)]
pub struct ModelPricing {
    /// Who publishes the model (`openai`, `anthropic`, `gemini`, ...).
    pub family: String,
    pub model: String,
    pub input_per_million: String,
    pub output_per_million: String,
    /// Prompt tokens served from the provider's prompt cache.
    pub cached_input_per_million: Option<String>,
    /// The day the price was read from the provider's price page.
    pub as_of: String,
}

impl From<&ModelPrice> for ModelPricing {
    fn from(price: &ModelPrice) -> Self {
        ModelPricing {
            family: price.family.clone(),
            model: price.model.clone(),
            input_per_million: price.input.normalize().to_string(),
            output_per_million: price.output.normalize().to_string(),
            cached_input_per_million: price.cached_input.map(|p| p.normalize().to_string()),
            as_of: price.as_of.clone(),
        }
    }
}

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

/// Where a cache policy is set: the organization (no ids), a team or a key.
#[derive(InputObject)]
pub struct PolicyLevelInput {
    pub team_id: Option<ID>,
    pub key_id: Option<ID>,
}

fn policy_target(level: &PolicyLevelInput) -> Result<PolicyTarget<'_>, Error> {
    match (&level.team_id, &level.key_id) {
        (None, None) => Ok(PolicyTarget::Organization),
        (Some(team), None) => Ok(PolicyTarget::Team(team.as_str())),
        (None, Some(key)) => Ok(PolicyTarget::Key(key.as_str())),
        (Some(_), Some(_)) => Err(bad_input(
            "level",
            "Name a team or a key, not both (neither for the organization).",
        )),
    }
}

/// A new key's settings; the organization's first team when `teamId` is absent.
#[derive(InputObject)]
pub struct CreateKeyInput {
    pub name: Option<String>,
    pub team_id: Option<ID>,
    pub allowed_models: Option<Vec<String>>,
    pub expires_at: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    /// USD, exact decimal (`"25.00"`).
    pub budget_usd: Option<String>,
    pub budget_period: Option<String>,
    pub tags: Option<Vec<Tag>>,
}

/// A key change; absent fields stay as they are.
#[derive(InputObject)]
pub struct UpdateKeyInput {
    pub name: Option<String>,
    pub allowed_models: Option<Vec<String>>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub budget_usd: Option<String>,
    pub budget_period: Option<String>,
    pub tags: Option<Vec<Tag>>,
    pub disabled: Option<bool>,
}

#[derive(InputObject)]
pub struct CreateBudgetInput {
    /// `organization`, `team`, `key` or `user`.
    pub scope: String,
    /// The team (id or name), key id, or end user (`*` for each end user).
    pub target: Option<String>,
    /// `daily`, `weekly`, `monthly` or `lifetime`.
    pub period: String,
    /// USD, exact decimal (`"25.00"`).
    pub limit_usd: String,
    /// Percent of the limit; 50, 80 and 100 when absent.
    pub thresholds: Option<Vec<u32>>,
}

#[derive(InputObject)]
pub struct UpdateBudgetInput {
    pub limit_usd: Option<String>,
    pub thresholds: Option<Vec<u32>>,
}

fn tags_json(tags: &Option<Vec<Tag>>) -> Option<Value> {
    tags.as_ref().map(|tags| {
        Value::Object(
            tags.iter()
                .map(|tag| (tag.key.clone(), Value::String(tag.value.clone())))
                .collect(),
        )
    })
}

/// Removes absent fields, so that the auth service sees only what the caller set.
fn present(value: Value) -> Value {
    match value {
        Value::Object(fields) => {
            Value::Object(fields.into_iter().filter(|(_, v)| !v.is_null()).collect())
        }
        other => other,
    }
}

/// Reads a JSON document into one of the auth service's request types (which validate it).
fn parse<T: serde::de::DeserializeOwned>(what: &str, value: Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| bad_input(what, e.to_string()))
}

pub struct QueryRoot;

#[Object]
impl QueryRoot {
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

    async fn teams(&self, ctx: &Context<'_>) -> Result<Vec<TeamObject>, Error> {
        let teams = service(ctx).teams(caller(ctx)?).await.or_graphql()?;
        Ok(teams.into_iter().map(TeamObject::from).collect())
    }

    async fn members(&self, ctx: &Context<'_>) -> Result<Vec<MemberObject>, Error> {
        let members = service(ctx).members(caller(ctx)?).await.or_graphql()?;
        Ok(members.into_iter().map(MemberObject::from).collect())
    }

    /// The organization's keys (of one team when given).
    async fn keys(&self, ctx: &Context<'_>, team_id: Option<ID>) -> Result<Vec<VirtualKey>, Error> {
        let keys = service(ctx)
            .keys(caller(ctx)?, team_id.as_ref().map(|id| id.as_str()))
            .await
            .or_graphql()?;
        Ok(keys.into_iter().map(VirtualKey::from).collect())
    }

    async fn key(&self, ctx: &Context<'_>, id: ID) -> Result<VirtualKey, Error> {
        let key = service(ctx).key(caller(ctx)?, &id).await.or_graphql()?;
        Ok(key.into())
    }

    async fn budgets(&self, ctx: &Context<'_>) -> Result<Vec<Budget>, Error> {
        let budgets = service(ctx).budgets(caller(ctx)?).await.or_graphql()?;
        let mut with_spend = Vec::with_capacity(budgets.len());
        for budget in budgets {
            with_spend.push(Budget::with_spend(ctx, budget).await?);
        }
        Ok(with_spend)
    }

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

    /// Usage over a time range, one entry per group (one in all when ungrouped), costliest
    /// first. Read from the hourly and daily rollups, never the raw ledger.
    async fn usage_totals(
        &self,
        ctx: &Context<'_>,
        input: UsageInput,
    ) -> Result<Vec<UsageGroup>, Error> {
        let org = caller(ctx)?.org.to_string();
        let percentiles = crate::usage::wants_percentiles(ctx);
        crate::usage::totals(service(ctx).store().pool(), org, input, percentiles).await
    }

    /// The request log, newest first: `first` rows (50 by default, at most 200) after the
    /// cursor `after`.
    async fn requests(
        &self,
        ctx: &Context<'_>,
        filter: Option<RequestFilter>,
        first: Option<i64>,
        after: Option<String>,
    ) -> Result<RequestPage, Error> {
        let org = caller(ctx)?.org.to_string();
        let filter = filter.unwrap_or_default();
        crate::requests::page(service(ctx).store().pool(), &org, filter, first, after).await
    }

    /// One request of the log by its event id; null when the organization has none such.
    async fn request(
        &self,
        ctx: &Context<'_>,
        event_id: String,
    ) -> Result<Option<crate::requests::RequestRecord>, Error> {
        let org = caller(ctx)?.org.to_string();
        crate::requests::one(service(ctx).store().pool(), &org, &event_id).await
    }

    /// Usage per time bucket and group, oldest first.
    async fn usage_series(
        &self,
        ctx: &Context<'_>,
        input: UsageInput,
    ) -> Result<Vec<UsagePoint>, Error> {
        let org = caller(ctx)?.org.to_string();
        let percentiles = crate::usage::wants_percentiles(ctx);
        crate::usage::series(service(ctx).store().pool(), org, input, percentiles).await
    }

    /// The price catalog used for costs and budgets, by family and model.
    async fn models(&self, ctx: &Context<'_>) -> Result<Vec<ModelPricing>, Error> {
        caller(ctx)?;
        let catalog = ctx.data_unchecked::<Arc<PriceCatalog>>();
        let mut models: Vec<ModelPricing> = catalog.entries().map(ModelPricing::from).collect();
        models.sort_by(|a, b| (&a.family, &a.model).cmp(&(&b.family, &b.model)));
        Ok(models)
    }

    /// The organization's plan, payment standing, card, credit, this month's cost and
    /// invoices (admins and owners).
    async fn billing(&self, ctx: &Context<'_>) -> Result<Billing, Error> {
        crate::billing::billing(ctx, service(ctx), caller(ctx)?).await
    }

    /// Bring your own key: whether it is offered, the organization's own provider keys and
    /// the platform fee (admins and owners).
    async fn own_provider_keys(&self, ctx: &Context<'_>) -> Result<OwnProviderKeys, Error> {
        crate::provider_keys::own_provider_keys(ctx, service(ctx), caller(ctx)?).await
    }

    /// Invitations not yet accepted, withdrawn or expired (admins).
    async fn invitations(&self, ctx: &Context<'_>) -> Result<Vec<Invitation>, Error> {
        let invitations = service(ctx).invitations(caller(ctx)?).await.or_graphql()?;
        Ok(invitations.into_iter().map(Invitation::from).collect())
    }

    /// Admin API tokens: all of the organization's for admins, one's own otherwise.
    async fn admin_tokens(&self, ctx: &Context<'_>) -> Result<Vec<AdminToken>, Error> {
        let tokens = service(ctx).admin_tokens(caller(ctx)?).await.or_graphql()?;
        Ok(tokens.into_iter().map(AdminToken::from).collect())
    }

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

pub struct MutationRoot;

#[Object]
impl MutationRoot {
    /// A Stripe Checkout page to add a card, or to buy `amountUsd` of prepaid credit
    /// (owners).
    async fn start_checkout(
        &self,
        ctx: &Context<'_>,
        purpose: CheckoutPurpose,
        amount_usd: Option<String>,
    ) -> Result<PaymentRedirect, Error> {
        crate::billing::start_checkout(ctx, service(ctx), caller(ctx)?, purpose, amount_usd).await
    }

    /// Stripe's customer portal, to manage cards and invoices (owners).
    async fn open_billing_portal(&self, ctx: &Context<'_>) -> Result<PaymentRedirect, Error> {
        crate::billing::open_portal(ctx, service(ctx), caller(ctx)?).await
    }

    /// Sets the organization's own key for `provider`, replacing any it had (owners). It is
    /// stored encrypted and never shown again; only its last four characters are.
    async fn set_provider_key(
        &self,
        ctx: &Context<'_>,
        provider: String,
        api_key: String,
    ) -> Result<ProviderKey, Error> {
        let record = service(ctx)
            .set_provider_key(caller(ctx)?, &provider, &api_key)
            .await
            .or_graphql()?;
        Ok(record.into())
    }

    /// Removes the organization's own key for `provider` (owners).
    async fn delete_provider_key(
        &self,
        ctx: &Context<'_>,
        provider: String,
    ) -> Result<bool, Error> {
        service(ctx)
            .delete_provider_key(caller(ctx)?, &provider)
            .await
            .or_graphql()?;
        Ok(true)
    }

    /// Moves the organization to a billing plan (owners): pay as you go, or its own provider
    /// keys where the deployment offers that.
    async fn set_billing_plan(&self, ctx: &Context<'_>, plan: BillingPlan) -> Result<bool, Error> {
        crate::provider_keys::set_billing_plan(ctx, service(ctx), caller(ctx)?, plan).await
    }

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

    /// Creates a key; its secret is in the answer and nowhere else, ever.
    async fn create_key(
        &self,
        ctx: &Context<'_>,
        input: CreateKeyInput,
    ) -> Result<IssuedVirtualKey, Error> {
        let spec = parse(
            "input",
            present(json!({
                "name": input.name,
                "team_id": input.team_id.map(|id| id.0),
                "allowed_models": input.allowed_models,
                "expires_at": input.expires_at,
                "rpm_limit": input.rpm_limit,
                "tpm_limit": input.tpm_limit,
                "budget_usd": input.budget_usd,
                "budget_period": input.budget_period,
                "tags": tags_json(&input.tags),
            })),
        )?;
        let caller = caller(ctx)?;
        let issued = service(ctx)
            .create_key(&Actor::User(caller.clone()), caller.org, spec)
            .await
            .or_graphql()?;
        Ok(issued.into())
    }

    async fn update_key(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateKeyInput,
    ) -> Result<VirtualKey, Error> {
        let patch = parse(
            "input",
            present(json!({
                "name": input.name,
                "allowed_models": input.allowed_models,
                "rpm_limit": input.rpm_limit,
                "tpm_limit": input.tpm_limit,
                "budget_usd": input.budget_usd,
                "budget_period": input.budget_period,
                "tags": tags_json(&input.tags),
                "disabled": input.disabled,
            })),
        )?;
        let key = service(ctx)
            .update_key(caller(ctx)?, &id, patch)
            .await
            .or_graphql()?;
        Ok(key.into())
    }

    /// Replaces a key: the new secret in the answer, the old key working for `graceSeconds`.
    async fn rotate_key(
        &self,
        ctx: &Context<'_>,
        id: ID,
        grace_seconds: Option<u64>,
    ) -> Result<IssuedVirtualKey, Error> {
        let request = parse("graceSeconds", json!({ "grace_seconds": grace_seconds }))?;
        let issued = service(ctx)
            .rotate_key(caller(ctx)?, &id, request)
            .await
            .or_graphql()?;
        Ok(issued.into())
    }

    async fn revoke_key(&self, ctx: &Context<'_>, id: ID) -> Result<VirtualKey, Error> {
        let caller = caller(ctx)?;
        let key = service(ctx)
            .revoke_key(&Actor::User(caller.clone()), caller.org, &id)
            .await
            .or_graphql()?;
        Ok(key.into())
    }

    async fn create_budget(
        &self,
        ctx: &Context<'_>,
        input: CreateBudgetInput,
    ) -> Result<Budget, Error> {
        let spec = parse(
            "input",
            present(json!({
                "scope": input.scope,
                "target": input.target,
                "period": input.period,
                "limit_usd": input.limit_usd,
                "thresholds": input.thresholds,
            })),
        )?;
        let budget = service(ctx)
            .create_budget(caller(ctx)?, spec)
            .await
            .or_graphql()?;
        Budget::with_spend(ctx, budget).await
    }

    async fn update_budget(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateBudgetInput,
    ) -> Result<Budget, Error> {
        let patch = parse(
            "input",
            present(json!({ "limit_usd": input.limit_usd, "thresholds": input.thresholds })),
        )?;
        let budget = service(ctx)
            .update_budget(caller(ctx)?, &id, patch)
            .await
            .or_graphql()?;
        Budget::with_spend(ctx, budget).await
    }

    async fn delete_budget(&self, ctx: &Context<'_>, id: ID) -> Result<bool, Error> {
        service(ctx)
            .delete_budget(caller(ctx)?, &id)
            .await
            .or_graphql()?;
        Ok(true)
    }

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
