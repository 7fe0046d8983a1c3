//! Bring your own key, as the GraphQL API shows it: whether the deployment offers it, the
//! organization's plan, its own provider keys (the last four characters only), and the owners'
//! ways to change them.

use async_graphql::{Context, Enum, Error, Object, SimpleObject};
use tollgate_auth::store::ProviderKeyRecord;
use tollgate_auth::{AuthError, AuthService, Caller, Role};
use tollgate_billing::payments::accounts::Accounts;
use tollgate_billing::payments::pricing::Plan;

use crate::billing::{internal, require, setup};
use crate::errors::{OrGraphql, graphql_error};
use crate::schema::{caller, service};

/// How an organization is charged.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum BillingPlan {
    /// Provider cost plus the deployment's markup, through the deployment's provider keys.
    PayAsYouGo,
    /// The organization's own provider keys, and a platform fee instead of provider cost.
    BringYourOwnKey,
}

impl From<BillingPlan> for Plan {
    fn from(plan: BillingPlan) -> Plan {
        match plan {
            BillingPlan::PayAsYouGo => Plan::PayAsYouGo,
            BillingPlan::BringYourOwnKey => Plan::BringYourOwnKey,
        }
    }
}

/// One of the organization's own provider keys; the key itself is never shown again.
#[derive(SimpleObject)]
pub struct ProviderKey {
    /// The provider's name in this deployment (`openai`, `anthropic`...).
    pub provider: String,
    /// `…` and the key's last four characters.
    pub hint: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl From<ProviderKeyRecord> for ProviderKey {
    fn from(record: ProviderKeyRecord) -> Self {
        ProviderKey {
            provider: record.provider,
            hint: record.hint,
            created_at: record.created_at,
        }
    }
}

/// The organization's side of bring your own key.
#[derive(SimpleObject)]
pub struct OwnProviderKeys {
    /// Whether this deployment lets organizations bring their own provider keys.
    pub available: bool,
    /// Whether this organization is on that plan: its requests use its own keys only.
    pub in_use: bool,
    /// The providers a key can be set for.
    pub providers: Vec<String>,
    pub keys: Vec<ProviderKey>,
    /// The platform fee instead of provider cost, USD.
    pub fee_per_request_usd: String,
    pub fee_per_million_tokens_usd: String,
}

/// What the organization has of its own provider keys (admins and owners).
pub async fn own_provider_keys(
    ctx: &Context<'_>,
    service: &AuthService,
    caller: &Caller,
) -> Result<OwnProviderKeys, Error> {
    let keys = service.provider_keys(caller).await.or_graphql()?;
    let accounts = Accounts::new(service.store().pool().clone());
    let account = accounts
        .get(&caller.org.to_string())
        .await
        .map_err(internal)?;
    let fees = &setup(ctx).config.bring_your_own_key;
    Ok(OwnProviderKeys {
        available: service.own_provider_keys().is_some(),
        in_use: account.is_some_and(|a| a.plan == Plan::BringYourOwnKey),
        providers: service
            .own_provider_keys()
            .map(|own| own.providers.clone())
            .unwrap_or_default(),
        keys: keys.into_iter().map(ProviderKey::from).collect(),
        fee_per_request_usd: fees.per_request_usd.normalize().to_string(),
        fee_per_million_tokens_usd: fees.per_million_tokens_usd.normalize().to_string(),
    })
}

/// Moves the organization to `plan` (owners). Bring your own key needs the deployment to
/// offer it, at least one key of the organization's and, where the deployment bills, a card
/// for the platform fee, so that the organization is not cut off at once.
pub async fn set_billing_plan(
    ctx: &Context<'_>,
    service: &AuthService,
    caller: &Caller,
    plan: BillingPlan,
) -> Result<bool, Error> {
    require(caller, Role::Owner, "change the billing plan")?;
    if plan == BillingPlan::BringYourOwnKey {
        if service.own_provider_keys().is_none() {
            return Err(graphql_error(AuthError::Forbidden(
                "This deployment does not let organizations bring their own provider keys.".into(),
            )));
        }
        if service.provider_keys(caller).await.or_graphql()?.is_empty() {
            return Err(graphql_error(AuthError::InvalidField {
                param: "plan".into(),
                message: "Add a provider key before moving to your own keys.".into(),
            }));
        }
    }
    let accounts = Accounts::new(service.store().pool().clone());
    let org = caller.org.to_string();
    if plan == BillingPlan::BringYourOwnKey && setup(ctx).config.stripe.is_some() {
        let account = accounts.get(&org).await.map_err(internal)?;
        if account.and_then(|a| a.card).is_none() {
            return Err(graphql_error(AuthError::InvalidField {
                param: "plan".into(),
                message: "Add a card first: the platform fee of your own keys is charged to it."
                    .into(),
            }));
        }
    }
    accounts
        .set_plan(&org, plan.into())
        .await
        .map_err(internal)?;
    service
        .organization_changed(caller.org)
        .await
        .or_graphql()?;
    Ok(true)
}

#[derive(Default)]
pub struct ProviderKeysQuery;

#[Object]
impl ProviderKeysQuery {
    /// Bring your own key: whether it is offered, the organization's own provider keys and
    /// the platform fee (admins and owners).
    async fn own_provider_keys(&self, ctx: &Context<'_>) -> Result<OwnProviderKeys, Error> {
        own_provider_keys(ctx, service(ctx), caller(ctx)?).await
    }
}

#[derive(Default)]
pub struct ProviderKeysMutation;

#[Object]
impl ProviderKeysMutation {
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
        set_billing_plan(ctx, service(ctx), caller(ctx)?, plan).await
    }
}
