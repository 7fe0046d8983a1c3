//! What operators check: our usage reports against what Stripe's meter recorded, hour by hour,
//! and revenue, provider cost and margin per organization. The comparison runs on demand
//! (`tollgate billing reconcile`) and on a schedule ([`scheduled_run`]), which logs every
//! difference it finds.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::{AnyPool, Row};

use super::accounts::Accounts;
use super::reports::month_of;
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
    reconcile_paced(pool, api, from_ms, to_ms, Duration::ZERO).await
}

/// [`reconcile`], waiting `pause` between organizations: a background run spreads its reads
/// rather than spend Stripe's rate limit in one burst, which the requests of customers (Checkout,
/// the portal) and the outbox share.
pub async fn reconcile_paced(
    pool: &AnyPool,
    api: &StripeApi,
    from_ms: i64,
    to_ms: i64,
    pause: Duration,
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
    let mut report = Reconciliation {
        organizations: ours.len(),
        ..Reconciliation::default()
    };
    // Nothing metered, nothing to compare: no call to Stripe (looking the meter up could even
    // create it).
    let meter = if ours.is_empty() {
        String::new()
    } else {
        api.usage_meter().await?
    };
    for (n, ((org, customer), hours)) in ours.into_iter().enumerate() {
        if n > 0 && !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
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

/// How long after a month ends it is still reconciled by the scheduled runs: usage of an hour
/// that reaches the ledger late is reported for two days after the hour, and the outbox gives
/// a report 20 hours to reach Stripe, so a month's last reports land within three days; a
/// fourth day leaves runs that see them settled.
const PREVIOUS_MONTH_FOR_MS: i64 = 4 * 24 * HOUR_MS;
/// Hours this recent are left out of a scheduled run: their reports may still be on their way
/// to Stripe (written when the hour ends, sent by the outbox seconds later, summarised by
/// Stripe after that), and would show as differences that are only in flight.
const SETTLE_MS: i64 = HOUR_MS;
/// Between organizations in a scheduled run.
const SCHEDULED_PAUSE: Duration = Duration::from_millis(100);

/// The periods `[from, to)` a scheduled run at `now_ms` compares: this month up to the hours
/// that have settled, and the previous month in full during the first days of this one. The
/// current month comes first.
pub fn periods_due(now_ms: i64) -> Vec<(i64, i64)> {
    let (start, _) = month_of(now_ms);
    let settled = now_ms - now_ms.rem_euclid(HOUR_MS) - SETTLE_MS;
    let mut periods = Vec::with_capacity(2);
    if settled > start {
        periods.push((start, settled));
    }
    if now_ms - start < PREVIOUS_MONTH_FOR_MS {
        let (previous, _) = month_of(start - 1);
        periods.push((previous, start.min(settled)));
    }
    periods
}

/// What a scheduled run compared, per period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodCheck {
    /// Unix milliseconds, `[from_ms, to_ms)`.
    pub from_ms: i64,
    pub to_ms: i64,
    pub reconciliation: Reconciliation,
}

/// One scheduled reconciliation at `now_ms`, for the run slot of `every` that holds it: the
/// first process to claim the slot compares [`periods_due`] and logs a warning per difference;
/// any other process gets `None` and asks Stripe nothing.
///
/// The claim is a row in `stripe_events` under an id no Stripe event has, written with
/// [`Accounts::first_delivery`], the same insert-once that makes each webhook event apply
/// once; a run that fails gives its slot back, so that another process may try again. The run
/// only reads, so two processes racing would be harmless, but each would spend Stripe's rate
/// limit on the same summaries.
pub async fn scheduled_run(
    pool: &AnyPool,
    api: &StripeApi,
    now_ms: i64,
    every: Duration,
) -> Result<Option<Vec<PeriodCheck>>, ReconcileError> {
    let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
    let slot = now_ms.div_euclid(every_ms);
    let claim = format!("tollgate-reconciliation-{slot}");
    let accounts = Accounts::new(pool.clone());
    if !accounts
        .first_delivery(&claim, "tollgate.reconciliation", slot * every_ms / 1000)
        .await?
    {
        return Ok(None);
    }
    let mut checks = Vec::new();
    for (from_ms, to_ms) in periods_due(now_ms) {
        match reconcile_paced(pool, api, from_ms, to_ms, SCHEDULED_PAUSE).await {
            Ok(reconciliation) => checks.push(PeriodCheck {
                from_ms,
                to_ms,
                reconciliation,
            }),
            Err(err) => {
                if let Err(forget) = accounts.forget_delivery(&claim).await {
                    tracing::warn!(%forget, "reconciliation: cannot give the run back");
                }
                return Err(err);
            }
        }
    }
    for check in &checks {
        warn_differences(check);
    }
    Ok(Some(checks))
}

fn warn_differences(check: &PeriodCheck) {
    let report = &check.reconciliation;
    for d in &report.differences {
        tracing::warn!(
            org = %d.org_id,
            hour_start = d.hour_start,
            ours_micros = d.ours,
            stripe_micros = d.stripe,
            "reconciliation: our usage report and Stripe's meter differ"
        );
    }
    if report.given_up > 0 {
        tracing::warn!(
            from = check.from_ms,
            given_up = report.given_up,
            "reconciliation: meter reports were given up and never reached Stripe"
        );
    }
    tracing::info!(
        from = check.from_ms,
        to = check.to_ms,
        organizations = report.organizations,
        hours = report.hours,
        differences = report.differences.len(),
        queued = report.queued,
        "reconciliation done"
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-01T00:00:00Z and 2026-12-01T00:00:00Z.
    const NOV: i64 = 1_793_491_200_000;
    const DEC: i64 = 1_796_083_200_000;

    #[test]
    fn scheduled_runs_check_the_settled_hours_and_the_previous_month_early_on() {
        // 2026-11-26T04:30Z: November up to 03:00, October is long settled
        let late_november = 1_795_665_600_000 + 30 * 60_000;
        assert_eq!(
            periods_due(late_november),
            [(NOV, late_november - 30 * 60_000 - HOUR_MS)]
        );
        // 2026-12-02T10:15Z: December so far, and all of November
        let early_december = DEC + 34 * HOUR_MS + 15 * 60_000;
        assert_eq!(
            periods_due(early_december),
            [(DEC, DEC + 33 * HOUR_MS), (NOV, DEC)]
        );
        // the first hour of December: no settled December hour yet, November up to its
        // settled hours
        assert_eq!(periods_due(DEC + 10 * 60_000), [(NOV, DEC - HOUR_MS)]);
        // past the fourth day, December only
        assert_eq!(periods_due(DEC + 4 * 24 * HOUR_MS).len(), 1);
    }
}
