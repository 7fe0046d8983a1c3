//! What operators check: our usage reports against what Stripe's meter recorded, hour by hour,
//! and revenue, provider cost and margin per organization.

use std::collections::BTreeMap;

use sqlx::{AnyPool, Row};

use super::stripe::{StripeApi, StripeCallError};

/// An hour where our reports and Stripe's meter disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourDifference {
    pub org_id: String,
    /// Unix milliseconds.
    pub hour_start: i64,
    /// Micro-USD we reported (queued or sent).
    pub ours: i64,
    /// Micro-USD Stripe recorded.
    pub stripe: i64,
}

/// A comparison over a period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// Organizations with a Stripe customer and reported usage.
    pub organizations: usize,
    /// Hours compared.
    pub hours: usize,
    pub differences: Vec<HourDifference>,
    /// Meter reports of the period still queued, and given up.
    pub queued: i64,
    pub given_up: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Stripe(#[from] StripeCallError),
}

const HOUR_MS: i64 = 3_600_000;

/// Compares the micro-USD we reported per organization and hour in `[from_ms, to_ms)` with
/// Stripe's meter summaries for the same hours.
pub async fn reconcile(
    pool: &AnyPool,
    api: &StripeApi,
    from_ms: i64,
    to_ms: i64,
) -> Result<Reconciliation, ReconcileError> {
    let rows = sqlx::query(
        "SELECT r.org_id, a.stripe_customer_id, r.hour_start, \
         CAST(SUM(r.metered_micros) AS BIGINT) AS micros FROM usage_reports r \
         JOIN billing_accounts a ON a.org_id = r.org_id \
         WHERE r.hour_start >= $1 AND r.hour_start < $2 AND a.stripe_customer_id IS NOT NULL \
         GROUP BY r.org_id, a.stripe_customer_id, r.hour_start",
    )
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(pool)
    .await?;
    let mut ours: BTreeMap<(String, String), BTreeMap<i64, i64>> = BTreeMap::new();
    for row in rows {
        let micros: i64 = row.try_get("micros")?;
        if micros == 0 {
            continue;
        }
        ours.entry((row.try_get("org_id")?, row.try_get("stripe_customer_id")?))
            .or_default()
            .insert(row.try_get("hour_start")?, micros);
    }
    let meter = api.usage_meter().await?;
    let mut report = Reconciliation {
        organizations: ours.len(),
        ..Reconciliation::default()
    };
    for ((org, customer), hours) in ours {
        let recorded: BTreeMap<i64, i64> = api
            .metered_hours(&meter, &customer, from_ms / 1000, to_ms / 1000)
            .await?
            .into_iter()
            .map(|h| (h.start * 1000, h.value.round() as i64))
            .collect();
        let mut all: Vec<i64> = hours.keys().chain(recorded.keys()).copied().collect();
        all.sort_unstable();
        all.dedup();
        for hour in all {
            report.hours += 1;
            let (mine, theirs) = (
                hours.get(&hour).copied().unwrap_or(0),
                recorded.get(&hour).copied().unwrap_or(0),
            );
            if mine != theirs {
                report.differences.push(HourDifference {
                    org_id: org.clone(),
                    hour_start: hour - hour.rem_euclid(HOUR_MS),
                    ours: mine,
                    stripe: theirs,
                });
            }
        }
    }
    let outbox = sqlx::query(
        "SELECT CAST(COALESCE(SUM(CASE WHEN sent_at IS NULL AND failed_at IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS queued, \
         CAST(COALESCE(SUM(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS given_up \
         FROM stripe_outbox WHERE kind = 'report_usage' AND created_at >= $1",
    )
    .bind(from_ms)
    .fetch_one(pool)
    .await?;
    report.queued = outbox.try_get("queued")?;
    report.given_up = outbox.try_get("given_up")?;
    Ok(report)
}

/// One organization's money over a period, picodollars.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revenue {
    pub org_id: String,
    pub org_name: String,
    /// Usage at the organization's prices.
    pub billable: i64,
    /// What the providers charged.
    pub provider_cost: i64,
    pub free: i64,
    pub credit: i64,
    /// Metered to Stripe, micro-USD.
    pub metered_micros: i64,
}

impl Revenue {
    /// Billable minus provider cost.
    pub fn margin(&self) -> i64 {
        self.billable - self.provider_cost
    }
}

/// Revenue, provider cost and margin per organization over the reported hours of a period,
/// largest revenue first.
pub async fn revenue(
    pool: &AnyPool,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Revenue>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT r.org_id, o.name, CAST(SUM(r.billable_pico) AS BIGINT) AS billable, \
         CAST(SUM(r.provider_cost_pico) AS BIGINT) AS cost, \
         CAST(SUM(r.free_used_pico) AS BIGINT) AS free, \
         CAST(SUM(r.credit_used_pico) AS BIGINT) AS credit, \
         CAST(SUM(r.metered_micros) AS BIGINT) AS micros FROM usage_reports r \
         JOIN organizations o ON o.id = r.org_id \
         WHERE r.hour_start >= $1 AND r.hour_start < $2 GROUP BY r.org_id, o.name",
    )
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(pool)
    .await?;
    let mut revenue = rows
        .iter()
        .map(|row| {
            Ok(Revenue {
                org_id: row.try_get("org_id")?,
                org_name: row.try_get("name")?,
                billable: row.try_get("billable")?,
                provider_cost: row.try_get("cost")?,
                free: row.try_get("free")?,
                credit: row.try_get("credit")?,
                metered_micros: row.try_get("micros")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    revenue.sort_by(|a, b| {
        b.billable
            .cmp(&a.billable)
            .then_with(|| a.org_id.cmp(&b.org_id))
    });
    Ok(revenue)
}
