//! The organization's billing as the GraphQL API shows it: plan, standing, card, prepaid
//! credit, this month's running cost and projected bill, invoices; and the ways to pay (Stripe
//! Checkout for a card or prepaid credit, the customer portal). Owners and admins read it;
//! only owners start a payment.

use std::sync::Arc;

use async_graphql::{Context, Enum, Error, ErrorExtensions, Object, SimpleObject};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sqlx::{AnyPool, Row};
use tollgate_auth::{AuthError, AuthService, Caller, Role};
use tollgate_billing::payments::accounts::{Accounts, Standing, invoiced};
use tollgate_billing::payments::pricing::{ModelUsage, Plan, SellPrices};
use tollgate_billing::payments::reports::{customer_key, month_of};
use tollgate_billing::payments::stripe::StripeApi;
use tollgate_common::Picodollars;
use tollgate_common::config::BillingConfig;

use crate::errors::{bad_input, graphql_error};
use crate::schema::{caller, service};

const DAY_MS: i64 = 86_400_000;

/// What billing resolvers need: the deployment's prices, and Stripe when it is configured.
#[derive(Clone)]
pub struct BillingSetup {
    pub config: BillingConfig,
    pub stripe: Option<Arc<StripeApi>>,
}

#[derive(SimpleObject)]
pub struct PaymentMethod {
    pub brand: String,
    pub last4: String,
    pub exp_month: i64,
    pub exp_year: i64,
}

/// This calendar month (UTC) so far.
#[derive(SimpleObject)]
pub struct BillingPeriod {
    /// Unix milliseconds.
    pub start: i64,
    pub end: i64,
    /// Usage at the organization's prices so far, USD.
    pub running_usd: String,
    /// What the providers charged for it, USD.
    pub provider_cost_usd: String,
    /// What the month's invoice is projected to be, USD: the projected billable usage
    /// (`projectedBillableUsd`) less the month's free allowance and the prepaid credit (left,
    /// and drawn this month), never below zero.
    pub projected_usd: String,
    /// The running cost carried on at this month's pace to the month's end, before the free
    /// allowance and credit, USD.
    pub projected_billable_usd: String,
    /// The free allowance of the month, and what of it is used, USD.
    pub free_allowance_usd: String,
    pub free_used_usd: String,
    /// Prepaid credit drawn this month, USD.
    pub credit_used_usd: String,
}

#[derive(SimpleObject)]
pub struct InvoiceView {
    pub id: String,
    /// `draft`, `open`, `paid`, `uncollectible` or `void`.
    pub status: String,
    pub currency: String,
    pub amount_due_usd: String,
    pub amount_paid_usd: String,
    /// Stripe's page for the invoice.
    pub hosted_url: Option<String>,
    pub pdf_url: Option<String>,
    /// Unix seconds.
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub created_at: i64,
}

/// The organization's billing.
#[derive(SimpleObject)]
pub struct Billing {
    /// False when this deployment bills nothing (no Stripe account configured).
    pub enabled: bool,
    /// The smallest prepaid credit purchase, USD.
    pub min_top_up_usd: String,
    /// `payg` (provider cost plus markup) or `byok` (own provider keys, platform fee).
    pub plan: String,
    /// `good`, `grace` (a payment failed; still served until `graceEndsAt`) or `suspended`
    /// (refused with 402 until an invoice is paid).
    pub standing: String,
    pub past_due_since: Option<i64>,
    pub grace_ends_at: Option<i64>,
    pub payment_method: Option<PaymentMethod>,
    /// Prepaid credit left, USD.
    pub credit_usd: String,
    pub current_period: BillingPeriod,
    pub invoices: Vec<InvoiceView>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum CheckoutPurpose {
    /// Add a card for monthly invoices.
    PaymentMethod,
    /// Buy prepaid credit.
    Credit,
}

/// Where to send the customer: a Stripe Checkout or portal page.
#[derive(SimpleObject)]
pub struct PaymentRedirect {
    pub url: String,
}

fn usd(amount: i64) -> String {
    Picodollars(amount)
        .to_usd()
        .round_dp(6)
        .normalize()
        .to_string()
}

fn cents(amount: i64) -> String {
    (Decimal::from(amount) / Decimal::from(100))
        .round_dp(2)
        .to_string()
}

pub(crate) fn setup<'a>(ctx: &'a Context<'_>) -> &'a BillingSetup {
    ctx.data_unchecked::<BillingSetup>()
}

pub(crate) fn internal(err: impl std::fmt::Display) -> Error {
    graphql_error(AuthError::Internal(err.to_string()))
}

pub(crate) fn require(caller: &Caller, role: Role, action: &str) -> Result<(), Error> {
    if caller.role.at_least(role) {
        return Ok(());
    }
    Err(graphql_error(AuthError::Forbidden(format!(
        "Your role ({}) cannot {action}; it needs {role} or above.",
        caller.role
    ))))
}

/// The month's usage per model, from the daily rollups.
async fn month_usage(
    pool: &AnyPool,
    org: &str,
    start: i64,
) -> Result<Vec<ModelUsage>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT model, CAST(SUM(requests - errors) AS BIGINT) AS requests, \
         CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, \
         CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, \
         CAST(SUM(cost_pico) AS BIGINT) AS cost_pico FROM usage_rollups \
         WHERE granularity = 'day' AND org_id = $1 AND bucket_start >= $2 GROUP BY model",
    )
    .bind(org.to_owned())
    .bind(start)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ModelUsage {
                model: row.try_get("model")?,
                requests: row.try_get("requests")?,
                input_tokens: row.try_get("input_tokens")?,
                output_tokens: row.try_get("output_tokens")?,
                cost: Picodollars(row.try_get("cost_pico")?),
            })
        })
        .collect()
}

/// The organization's billing, read by owners and admins.
pub async fn billing(
    ctx: &Context<'_>,
    service: &AuthService,
    caller: &Caller,
) -> Result<Billing, Error> {
    require(caller, Role::Admin, "see billing")?;
    let setup = setup(ctx);
    let pool = service.store().pool();
    let org = caller.org.to_string();
    let accounts = Accounts::new(pool.clone());
    let account = accounts.get(&org).await.map_err(internal)?;
    let now = tollgate_common::now_ms();
    let (start, end) = month_of(now);
    let plan = account.as_ref().map_or(Plan::PayAsYouGo, |a| a.plan);
    let usage = month_usage(pool, &org, start).await.map_err(internal)?;
    let prices = SellPrices::new(&setup.config);
    let running = prices.billable(plan, &usage).0;
    let cost: i64 = usage.iter().map(|m| m.cost.0).sum();
    let elapsed = (now - start).max(1);
    let projected = (Decimal::from(running) * Decimal::from(end - start) / Decimal::from(elapsed))
        .to_i64()
        .unwrap_or(i64::MAX);
    let reported = sqlx::query(
        "SELECT CAST(COALESCE(SUM(free_used_pico), 0) AS BIGINT) AS free_used, \
         CAST(COALESCE(SUM(credit_used_pico), 0) AS BIGINT) AS credit_used \
         FROM usage_reports WHERE org_id = $1 AND hour_start >= $2 AND hour_start < $3",
    )
    .bind(org.clone())
    .bind(start)
    .bind(end)
    .fetch_one(pool)
    .await
    .map_err(internal)?;
    let free_allowance = Picodollars::from_usd(setup.config.free_tier.monthly_usd)
        .unwrap_or_default()
        .0;
    let free_used: i64 = reported.try_get("free_used").map_err(internal)?;
    let credit_used: i64 = reported.try_get("credit_used").map_err(internal)?;
    let credit_left = account.as_ref().map_or(0, |a| a.credit.0);
    let grace_ms = i64::from(setup.config.grace_days) * DAY_MS;
    let (standing, past_due_since, grace_ends_at) = match account.as_ref().map(|a| a.standing) {
        Some(Standing::PastDue { since }) => {
            let ends = since.saturating_add(grace_ms);
            let standing = if now < ends { "grace" } else { "suspended" };
            (standing, Some(since), Some(ends))
        }
        _ => ("good", None, None),
    };
    let invoices = accounts.invoices(&org, 24).await.map_err(internal)?;
    Ok(Billing {
        enabled: setup.stripe.is_some(),
        min_top_up_usd: setup.config.min_top_up_usd.normalize().to_string(),
        plan: plan.as_str().to_owned(),
        standing: standing.to_owned(),
        past_due_since,
        grace_ends_at,
        payment_method: account
            .as_ref()
            .and_then(|a| a.card.clone())
            .map(|card| PaymentMethod {
                brand: card.brand,
                last4: card.last4,
                exp_month: card.exp_month,
                exp_year: card.exp_year,
            }),
        credit_usd: usd(credit_left),
        current_period: BillingPeriod {
            start,
            end,
            running_usd: usd(running),
            provider_cost_usd: usd(cost),
            projected_usd: usd(invoiced(
                projected,
                free_allowance,
                credit_left,
                credit_used,
            )),
            projected_billable_usd: usd(projected),
            free_allowance_usd: usd(free_allowance),
            free_used_usd: usd(free_used),
            credit_used_usd: usd(credit_used),
        },
        invoices: invoices
            .into_iter()
            .map(|invoice| InvoiceView {
                id: invoice.id,
                status: invoice.status,
                currency: invoice.currency,
                amount_due_usd: cents(invoice.amount_due),
                amount_paid_usd: cents(invoice.amount_paid),
                hosted_url: invoice.hosted_url,
                pdf_url: invoice.pdf_url,
                period_start: invoice.period_start,
                period_end: invoice.period_end,
                created_at: invoice.created_at,
            })
            .collect(),
    })
}

/// The organization's Stripe customer, made now if it has none (the same one the usage
/// reports would make: the idempotency key is the organization's).
async fn customer(
    stripe: &StripeApi,
    service: &AuthService,
    caller: &Caller,
) -> Result<String, Error> {
    let org = caller.org.to_string();
    let accounts = Accounts::new(service.store().pool().clone());
    let account = accounts
        .open(&org, Plan::PayAsYouGo)
        .await
        .map_err(internal)?;
    if let Some(customer) = account.stripe_customer_id {
        return Ok(customer);
    }
    let me = service.me(caller).await.map_err(graphql_error)?;
    let made = stripe
        .create_customer(
            &org,
            &me.organization.name,
            Some(&me.user.email),
            &customer_key(&org),
        )
        .await
        .map_err(unavailable)?;
    accounts.set_customer(&org, &made).await.map_err(internal)?;
    // Another request may have made it first; the account keeps the first.
    let account = accounts.get(&org).await.map_err(internal)?;
    Ok(account.and_then(|a| a.stripe_customer_id).unwrap_or(made))
}

fn unavailable(err: impl std::fmt::Display) -> Error {
    tracing::warn!(%err, "stripe call from the admin API failed");
    Error::new("Payments are unavailable right now; try again in a moment.")
        .extend_with(|_, extensions| extensions.set("code", "UNAVAILABLE"))
}

fn stripe_of(ctx: &Context<'_>) -> Result<(Arc<StripeApi>, String), Error> {
    let setup = setup(ctx);
    match (&setup.stripe, &setup.config.public_url) {
        (Some(stripe), Some(url)) => Ok((stripe.clone(), url.trim_end_matches('/').to_owned())),
        _ => Err(bad_input(
            "purpose",
            "This deployment takes no payments (billing.stripe is not configured).",
        )),
    }
}

/// A Stripe Checkout page: a card for monthly invoices, or `amount_usd` of prepaid credit.
pub async fn start_checkout(
    ctx: &Context<'_>,
    service: &AuthService,
    caller: &Caller,
    purpose: CheckoutPurpose,
    amount_usd: Option<String>,
) -> Result<PaymentRedirect, Error> {
    require(caller, Role::Owner, "manage billing")?;
    let (stripe, public) = stripe_of(ctx)?;
    let org = caller.org.to_string();
    let success = format!("{public}/#/billing?checkout=done");
    let cancel = format!("{public}/#/billing?checkout=cancelled");
    let redirect = match purpose {
        CheckoutPurpose::PaymentMethod => {
            let customer = customer(&stripe, service, caller).await?;
            stripe
                .checkout_setup(&customer, &org, &success, &cancel)
                .await
        }
        CheckoutPurpose::Credit => {
            let minimum = setup(ctx).config.min_top_up_usd;
            let amount = amount_usd
                .as_deref()
                .and_then(|a| a.trim().parse::<Decimal>().ok())
                .filter(|a| *a >= minimum && *a <= Decimal::from(100_000) && a.scale() <= 2)
                .ok_or_else(|| {
                    bad_input(
                        "amountUsd",
                        format!(
                            "`amountUsd` must be a USD amount with at most two decimals, from {minimum} to 100000."
                        ),
                    )
                })?;
            let cents = (amount * Decimal::from(100)).to_i64().unwrap_or(0);
            let customer = customer(&stripe, service, caller).await?;
            stripe
                .checkout_top_up(&customer, &org, cents, &success, &cancel)
                .await
        }
    };
    let redirect = redirect.map_err(unavailable)?;
    Ok(PaymentRedirect { url: redirect.url })
}

/// Stripe's customer portal, to manage cards and see invoices.
pub async fn open_portal(
    ctx: &Context<'_>,
    service: &AuthService,
    caller: &Caller,
) -> Result<PaymentRedirect, Error> {
    require(caller, Role::Owner, "manage billing")?;
    let (stripe, public) = stripe_of(ctx)?;
    let customer = customer(&stripe, service, caller).await?;
    let redirect = stripe
        .portal(&customer, &format!("{public}/#/billing"))
        .await
        .map_err(unavailable)?;
    Ok(PaymentRedirect { url: redirect.url })
}

#[derive(Default)]
pub struct BillingQuery;

#[Object]
impl BillingQuery {
    /// The organization's plan, payment standing, card, credit, this month's cost and
    /// invoices (admins and owners).
    async fn billing(&self, ctx: &Context<'_>) -> Result<Billing, Error> {
        billing(ctx, service(ctx), caller(ctx)?).await
    }
}

#[derive(Default)]
pub struct BillingMutation;

#[Object]
impl BillingMutation {
    /// A Stripe Checkout page to add a card, or to buy `amountUsd` of prepaid credit
    /// (owners).
    async fn start_checkout(
        &self,
        ctx: &Context<'_>,
        purpose: CheckoutPurpose,
        amount_usd: Option<String>,
    ) -> Result<PaymentRedirect, Error> {
        start_checkout(ctx, service(ctx), caller(ctx)?, purpose, amount_usd).await
    }

    /// Stripe's customer portal, to manage cards and invoices (owners).
    async fn open_billing_portal(&self, ctx: &Context<'_>) -> Result<PaymentRedirect, Error> {
        open_portal(ctx, service(ctx), caller(ctx)?).await
    }
}
