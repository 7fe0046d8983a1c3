//! Calls to Stripe that must be made exactly once, however long Stripe is away: written to the
//! `stripe_outbox` table in the same transaction as the change that needs them, then sent by a
//! worker with retries and exponential backoff. Each call carries an idempotency key (and a
//! meter event its identifier), so a call retried after an answer was lost is still one call
//! at Stripe.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, AnyPool, Row};

use super::accounts::Accounts;
use super::stripe::{StripeApi, StripeCallError};

/// One call to Stripe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum StripeCall {
    /// The organization's Stripe customer.
    CreateCustomer {
        org_id: String,
        name: String,
        email: Option<String>,
    },
    /// The organization's customer subscribed to the usage price, so that its usage is
    /// invoiced.
    Subscribe { org_id: String },
    /// An hour's usage to the meter, for the organization's customer.
    ReportUsage {
        org_id: String,
        micros: i64,
        identifier: String,
        /// Unix seconds (inside the hour reported).
        timestamp: i64,
    },
}

impl StripeCall {
    fn kind(&self) -> &'static str {
        match self {
            StripeCall::CreateCustomer { .. } => "create_customer",
            StripeCall::Subscribe { .. } => "subscribe",
            StripeCall::ReportUsage { .. } => "report_usage",
        }
    }

    fn org_id(&self) -> &str {
        match self {
            StripeCall::CreateCustomer { org_id, .. }
            | StripeCall::Subscribe { org_id }
            | StripeCall::ReportUsage { org_id, .. } => org_id,
        }
    }
}

/// A usage report or subscription waits for its organization's customer.
const NO_CUSTOMER_YET: &str = "the organization has no Stripe customer yet";

/// First retry after a second, doubling to an hour.
const FIRST_RETRY_MS: i64 = 1_000;
const MAX_RETRY_MS: i64 = 3_600_000;
/// Stripe keeps idempotency keys, and refuses repeated meter event identifiers, for at least
/// 24 hours: a call not made by then is given up (and shows in reconciliation) rather than
/// risk being counted twice.
const GIVE_UP_AFTER_MS: i64 = 20 * 3_600_000;
/// How long a worker owns the calls it claimed.
const LEASE_MS: i64 = 60_000;

/// What one pass of the worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    pub sent: usize,
    pub retrying: usize,
    pub given_up: usize,
}

/// The outbox table.
#[derive(Clone)]
pub struct Outbox {
    pool: AnyPool,
}

/// A claimed call.
struct Pending {
    id: String,
    call: StripeCall,
    idempotency_key: String,
    attempts: i64,
    created_at: i64,
}

impl Outbox {
    pub fn new(pool: AnyPool) -> Self {
        Outbox { pool }
    }

    /// Queues `call` in the caller's transaction; a call with the same idempotency key
    /// already queued (or made) is not queued again. Returns whether it was queued.
    pub async fn enqueue(
        conn: &mut AnyConnection,
        call: &StripeCall,
        idempotency_key: &str,
        now_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        let form = serde_json::to_string(call).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let done = sqlx::query(
            "INSERT INTO stripe_outbox (id, org_id, kind, idempotency_key, path, form, \
             created_at, attempts, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $7) \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(call.org_id().to_owned())
        .bind(call.kind())
        .bind(idempotency_key.to_owned())
        .bind(call.kind())
        .bind(form)
        .bind(now_ms)
        .execute(conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Calls neither made nor given up.
    pub async fn pending(&self) -> Result<i64, sqlx::Error> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM stripe_outbox WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        row.try_get("n")
    }

    /// Claims up to `limit` due calls for `LEASE_MS`; another worker (another replica) skips
    /// them meanwhile.
    async fn claim(&self, now_ms: i64, limit: i64) -> Result<Vec<Pending>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, form, idempotency_key, attempts, created_at FROM stripe_outbox \
             WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 \
             AND (claimed_until IS NULL OR claimed_until < $1) \
             ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("id")?;
            let took = sqlx::query(
                "UPDATE stripe_outbox SET claimed_until = $1 WHERE id = $2 \
                 AND (claimed_until IS NULL OR claimed_until < $3) AND sent_at IS NULL",
            )
            .bind(now_ms + LEASE_MS)
            .bind(id.clone())
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
            if took.rows_affected() == 0 {
                continue;
            }
            let form: String = row.try_get("form")?;
            let Ok(call) = serde_json::from_str::<StripeCall>(&form) else {
                tracing::error!(%id, "stripe outbox: unreadable call, given up");
                self.give_up(&id, "unreadable call", now_ms).await?;
                continue;
            };
            claimed.push(Pending {
                id,
                call,
                idempotency_key: row.try_get("idempotency_key")?,
                attempts: row.try_get("attempts")?,
                created_at: row.try_get("created_at")?,
            });
        }
        Ok(claimed)
    }

    async fn mark_sent(&self, id: &str, now_ms: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE stripe_outbox SET sent_at = $1, claimed_until = NULL, \
             attempts = attempts + 1, last_error = NULL WHERE id = $2",
        )
        .bind(now_ms)
        .bind(id.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn retry_later(
        &self,
        id: &str,
        attempts: i64,
        error: &str,
        now_ms: i64,
    ) -> Result<(), sqlx::Error> {
        let backoff = FIRST_RETRY_MS
            .saturating_mul(1_i64 << attempts.clamp(0, 30))
            .min(MAX_RETRY_MS);
        sqlx::query(
            "UPDATE stripe_outbox SET attempts = $1, next_attempt_at = $2, claimed_until = NULL, \
             last_error = $3 WHERE id = $4",
        )
        .bind(attempts + 1)
        .bind(now_ms + backoff)
        .bind(error.to_owned())
        .bind(id.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn give_up(&self, id: &str, error: &str, now_ms: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE stripe_outbox SET failed_at = $1, claimed_until = NULL, \
             attempts = attempts + 1, last_error = $2 WHERE id = $3",
        )
        .bind(now_ms)
        .bind(error.to_owned())
        .bind(id.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sends every due call once. A transient failure (Stripe down, 5xx, 429) is retried
    /// later with backoff; Stripe refusing the call itself gives it up, as does reaching
    /// [`GIVE_UP_AFTER_MS`].
    pub async fn deliver_due(
        &self,
        api: &StripeApi,
        accounts: &Accounts,
        now_ms: i64,
    ) -> Result<Delivery, sqlx::Error> {
        let mut delivery = Delivery::default();
        loop {
            let batch = self.claim(now_ms, 100).await?;
            if batch.is_empty() {
                return Ok(delivery);
            }
            for pending in batch {
                let outcome = send(api, accounts, &pending).await;
                match outcome {
                    Ok(()) => {
                        self.mark_sent(&pending.id, now_ms).await?;
                        delivery.sent += 1;
                    }
                    Err(err)
                        if err.is_transient() && now_ms - pending.created_at < GIVE_UP_AFTER_MS =>
                    {
                        tracing::warn!(id = %pending.id, %err, "stripe outbox: will retry");
                        self.retry_later(&pending.id, pending.attempts, &err.to_string(), now_ms)
                            .await?;
                        delivery.retrying += 1;
                    }
                    Err(err) => {
                        tracing::error!(id = %pending.id, %err, "stripe outbox: given up");
                        self.give_up(&pending.id, &err.to_string(), now_ms).await?;
                        delivery.given_up += 1;
                    }
                }
            }
        }
    }

    /// Delivers due calls every `every` until the process ends.
    pub fn spawn_worker(self, api: std::sync::Arc<StripeApi>, accounts: Accounts, every: Duration) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(err) = self
                    .deliver_due(&api, &accounts, tollgate_common::now_ms())
                    .await
                {
                    tracing::warn!(%err, "stripe outbox: cannot read the queue");
                }
            }
        });
    }
}

fn database(err: sqlx::Error) -> StripeCallError {
    StripeCallError::Unreachable(format!("database: {err}"))
}

/// The organization's Stripe customer; a call for it waits until it is made.
async fn customer_of(accounts: &Accounts, org_id: &str) -> Result<String, StripeCallError> {
    accounts
        .get(org_id)
        .await
        .map_err(database)?
        .and_then(|a| a.stripe_customer_id)
        .ok_or(StripeCallError::Waiting(NO_CUSTOMER_YET))
}

async fn send(
    api: &StripeApi,
    accounts: &Accounts,
    pending: &Pending,
) -> Result<(), StripeCallError> {
    match &pending.call {
        StripeCall::CreateCustomer {
            org_id,
            name,
            email,
        } => {
            let customer = api
                .create_customer(org_id, name, email.as_deref(), &pending.idempotency_key)
                .await?;
            accounts
                .set_customer(org_id, &customer)
                .await
                .map_err(database)
        }
        StripeCall::Subscribe { org_id } => {
            let customer = customer_of(accounts, org_id).await?;
            let price = api.usage_price().await?;
            let subscription = api
                .subscribe(&customer, &price, org_id, &pending.idempotency_key)
                .await?;
            accounts
                .set_subscription(org_id, Some(&subscription))
                .await
                .map_err(database)
        }
        StripeCall::ReportUsage {
            org_id,
            micros,
            identifier,
            timestamp,
        } => {
            let customer = customer_of(accounts, org_id).await?;
            api.report_usage(&customer, *micros, identifier, *timestamp)
                .await
        }
    }
}
