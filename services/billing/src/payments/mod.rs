//! Payments: what organizations owe for their usage, and how they pay it through Stripe.
//!
//! - [`pricing`]: billable amounts (provider cost plus markup, sell prices, platform fees).
//! - [`accounts`]: each organization's billing account (customer, card, plan, standing,
//!   prepaid credit), processed Stripe events, invoices, credit top-ups.
//! - [`reports`]: hourly usage reports from the ledger's rollups, drawn from the free
//!   allowance and credit first, the rest queued for Stripe's meter.
//! - [`outbox`]: calls to Stripe, queued in the database and sent with retries, exactly once.
//! - [`stripe`]: the Stripe API calls themselves.
//! - [`webhooks`] and [`http`]: Stripe's events, verified and applied once.
//! - [`reconcile`]: our reports against Stripe's meter, on demand and every few hours;
//!   revenue and margin.

pub mod accounts;
pub mod http;
pub mod outbox;
pub mod pricing;
pub mod reconcile;
pub mod reports;
pub mod standing;
pub mod stripe;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use tollgate_common::config::BillingConfig;

use self::accounts::Accounts;
use self::http::{OrganizationChanged, StripeWebhookEndpoint};
use self::outbox::Outbox;
use self::reports::UsageReporter;
use self::stripe::{StripeApi, StripeCallError};
use self::webhooks::WebhookProcessor;

/// How often due Stripe calls are sent.
const OUTBOX_EVERY: Duration = Duration::from_secs(2);
/// How often ended hours are reported.
const REPORT_EVERY: Duration = Duration::from_secs(60);
/// How often our reports are compared with Stripe's meter: a difference is worth knowing
/// within hours, long before the month's invoice, and each run reads every reporting
/// organization's hours from Stripe.
const RECONCILE_EVERY: Duration = Duration::from_secs(6 * 3600);
/// The first comparison waits a little after start, away from the start-up work and from a
/// rolling deploy starting every replica at once.
const RECONCILE_FIRST_AFTER: Duration = Duration::from_secs(5 * 60);

/// Payments as one process runs them.
pub struct Payments {
    pub api: Arc<StripeApi>,
    pub accounts: Accounts,
    pub webhooks: Arc<StripeWebhookEndpoint>,
}

/// Starts payments when `billing.stripe` is configured: the outbox worker, the usage reporter,
/// the scheduled reconciliation and the webhook endpoint. Every replica may run them: each
/// report and each call is made once whichever process gets there first, and each
/// reconciliation run by the one process that claims it.
pub fn start(
    config: &BillingConfig,
    pool: AnyPool,
    listener: Arc<dyn OrganizationChanged>,
) -> Result<Option<Payments>, StripeCallError> {
    let Some(stripe) = &config.stripe else {
        return Ok(None);
    };
    let api = Arc::new(StripeApi::new(stripe)?);
    let accounts = Accounts::new(pool.clone());
    Outbox::new(pool.clone()).spawn_worker(api.clone(), accounts.clone(), OUTBOX_EVERY);
    spawn_reconciliation(pool.clone(), api.clone());
    let reporter = UsageReporter::new(pool, config);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REPORT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match reporter.report(tollgate_common::now_ms()).await {
                Ok(run) if run.reports > 0 => {
                    tracing::info!(
                        reports = run.reports,
                        micros = run.metered_micros,
                        "usage reported"
                    );
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "usage reports: cannot read the ledger"),
            }
        }
    });
    let webhooks = Arc::new(StripeWebhookEndpoint::new(
        WebhookProcessor::new(accounts.clone()),
        stripe.webhook_secret.clone(),
        stripe.webhook_tolerance_secs,
        listener,
    ));
    Ok(Some(Payments {
        api,
        accounts,
        webhooks,
    }))
}

/// Reconciles every [`RECONCILE_EVERY`]; see [`reconcile::scheduled_run`].
fn spawn_reconciliation(pool: AnyPool, api: Arc<StripeApi>) {
    tokio::spawn(async move {
        let first = tokio::time::Instant::now() + RECONCILE_FIRST_AFTER;
        let mut tick = tokio::time::interval_at(first, RECONCILE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = tollgate_common::now_ms();
            if let Err(err) = reconcile::scheduled_run(&pool, &api, now, RECONCILE_EVERY).await {
                tracing::warn!(%err, "scheduled reconciliation failed");
            }
        }
    });
}
