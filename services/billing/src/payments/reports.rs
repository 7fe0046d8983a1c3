//! Hourly usage reports: each organization's billable usage per hour, read from the ledger's
//! hourly rollups, drawn first from the month's free allowance, then from prepaid credit, and
//! the rest queued for Stripe's meter.
//!
//! An hour is reported once it has ended, and looked at again for two days: usage of the hour
//! that reaches the ledger later (a journal replayed after a crash, a slow billing consumer) is
//! reported as a new revision of the hour, for what the earlier revisions did not cover. Each
//! revision is one row (the primary key makes it once, however often and wherever the job
//! runs), written in one transaction with the credit it used and the Stripe call it queued;
//! its meter event identifier is derived from (organization, meter, hour, revision), so a
//! retried or replayed report can never bill twice.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, AnyPool, Row};
use tollgate_common::Picodollars;
use tollgate_common::config::BillingConfig;

use super::outbox::{Outbox, StripeCall};
use super::pricing::{ModelUsage, PICO_PER_MICRO, Plan, SellPrices};

const HOUR_MS: i64 = 3_600_000;
/// How far back hours are looked at again for usage that arrived late.
const LOOKBACK_MS: i64 = 48 * HOUR_MS;

/// What one run reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportRun {
    /// Report rows written.
    pub reports: usize,
    /// Micro-USD queued for the meter.
    pub metered_micros: i64,
}

/// What an hour of one organization came to, before what earlier reports covered.
#[derive(Debug, Default)]
struct Hour {
    models: Vec<ModelUsage>,
}

/// What the earlier revisions of an hour reported.
#[derive(Debug, Default, Clone, Copy)]
struct Reported {
    billable: i64,
    cost: i64,
    last_revision: Option<i64>,
}

/// Turns the ledger's hourly rollups into usage reports.
pub struct UsageReporter {
    pool: AnyPool,
    prices: SellPrices,
    free_monthly: Picodollars,
    /// The meter reported to, part of every report's identifier.
    meter: String,
}

impl UsageReporter {
    pub fn new(pool: AnyPool, config: &BillingConfig) -> Self {
        UsageReporter {
            pool,
            prices: SellPrices::new(config),
            free_monthly: Picodollars::from_usd(config.free_tier.monthly_usd).unwrap_or_default(),
            meter: config
                .stripe
                .as_ref()
                .map_or_else(|| "none".to_owned(), |s| s.meter_event_name.clone()),
        }
    }

    pub fn prices(&self) -> &SellPrices {
        &self.prices
    }

    /// Reports every hour of the two days before `until_ms` that has ended by then and has
    /// unreported usage (`until_ms` is now, except for an operator reporting ahead).
    pub async fn report(&self, until_ms: i64) -> Result<ReportRun, sqlx::Error> {
        let current_hour = until_ms - until_ms.rem_euclid(HOUR_MS);
        let from = current_hour - LOOKBACK_MS;
        let rows = sqlx::query(
            "SELECT org_id, bucket_start, model, CAST(SUM(requests - errors) AS BIGINT) AS requests, \
             CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, \
             CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, \
             CAST(SUM(cost_pico) AS BIGINT) AS cost_pico FROM usage_rollups \
             WHERE granularity = 'hour' AND bucket_start >= $1 AND bucket_start < $2 \
             GROUP BY org_id, bucket_start, model",
        )
        .bind(from)
        .bind(current_hour)
        .fetch_all(&self.pool)
        .await?;
        let mut hours: BTreeMap<(String, i64), Hour> = BTreeMap::new();
        for row in rows {
            let key = (row.try_get("org_id")?, row.try_get("bucket_start")?);
            hours.entry(key).or_default().models.push(ModelUsage {
                model: row.try_get("model")?,
                requests: row.try_get("requests")?,
                input_tokens: row.try_get("input_tokens")?,
                output_tokens: row.try_get("output_tokens")?,
                cost: Picodollars(row.try_get("cost_pico")?),
            });
        }
        let reported = self.reported_since(from).await?;
        let mut run = ReportRun::default();
        // Oldest hour first per organization: the free allowance and credit go to usage in
        // the order it happened.
        for ((org, hour), usage) in hours {
            let done = reported
                .get(&(org.clone(), hour))
                .copied()
                .unwrap_or_default();
            let now_ms = tollgate_common::now_ms();
            if let Some(micros) = self.report_hour(&org, hour, &usage, done, now_ms).await? {
                run.reports += 1;
                run.metered_micros += micros;
            }
        }
        Ok(run)
    }

    async fn reported_since(
        &self,
        from: i64,
    ) -> Result<BTreeMap<(String, i64), Reported>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT org_id, hour_start, CAST(SUM(billable_pico) AS BIGINT) AS billable, \
             CAST(SUM(provider_cost_pico) AS BIGINT) AS cost, MAX(revision) AS last_revision \
             FROM usage_reports WHERE hour_start >= $1 GROUP BY org_id, hour_start",
        )
        .bind(from)
        .fetch_all(&self.pool)
        .await?;
        let mut reported = BTreeMap::new();
        for row in rows {
            reported.insert(
                (row.try_get("org_id")?, row.try_get("hour_start")?),
                Reported {
                    billable: row.try_get("billable")?,
                    cost: row.try_get("cost")?,
                    last_revision: row.try_get("last_revision")?,
                },
            );
        }
        Ok(reported)
    }

    /// Writes the next revision of one hour if it has anything new; returns the micro-USD
    /// it queued for the meter, or `None` when there was nothing to report (or another
    /// process reported it first).
    async fn report_hour(
        &self,
        org: &str,
        hour: i64,
        usage: &Hour,
        done: Reported,
        now_ms: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let account = open_account(&mut tx, org, now_ms).await?;
        let billable = self.prices.billable(account.plan, &usage.models).0 - done.billable;
        let cost = usage.models.iter().map(|m| m.cost.0).sum::<i64>() - done.cost;
        if billable <= 0 && cost <= 0 {
            return Ok(None);
        }
        let billable = billable.max(0);
        let revision = done.last_revision.map_or(0, |r| r + 1);
        let (month_start, month_end) = month_of(hour);
        let free_used_this_month = sum(
            &mut tx,
            "SELECT CAST(COALESCE(SUM(free_used_pico), 0) AS BIGINT) AS n FROM usage_reports \
             WHERE org_id = $1 AND hour_start >= $2 AND hour_start < $3",
            org,
            Some((month_start, month_end)),
        )
        .await?;
        let free = (self.free_monthly.0 - free_used_this_month).clamp(0, billable);
        let credit = account.credit.clamp(0, billable - free);
        // Sub-micro remainders are carried to the next report, so that nothing is lost to
        // rounding: what is metered never exceeds what is owed, and trails it by under a
        // micro-USD.
        let owed_before = sum(
            &mut tx,
            "SELECT CAST(COALESCE(SUM(billable_pico - free_used_pico - credit_used_pico \
             - metered_micros * 1000000), 0) AS BIGINT) AS n FROM usage_reports WHERE org_id = $1",
            org,
            None,
        )
        .await?;
        let owed = owed_before + billable - free - credit;
        let micros = owed.max(0) / PICO_PER_MICRO;
        let identifier = format!("tg-{org}-{}-{}-{revision}", self.meter, hour / 1000);
        let inserted = sqlx::query(
            "INSERT INTO usage_reports (org_id, hour_start, revision, billable_pico, \
             provider_cost_pico, free_used_pico, credit_used_pico, metered_micros, identifier, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (org_id, hour_start, revision) DO NOTHING",
        )
        .bind(org.to_owned())
        .bind(hour)
        .bind(revision)
        .bind(billable)
        .bind(cost.max(0))
        .bind(free)
        .bind(credit)
        .bind(micros)
        .bind(identifier.clone())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(None);
        }
        if credit > 0 {
            sqlx::query(
                "UPDATE billing_accounts SET credit_pico = credit_pico - $1, updated_at = $2 \
                 WHERE org_id = $3",
            )
            .bind(credit)
            .bind(now_ms)
            .bind(org.to_owned())
            .execute(&mut *tx)
            .await?;
        }
        if micros > 0 {
            if !account.has_customer {
                let name: Option<String> =
                    sqlx::query("SELECT name FROM organizations WHERE id = $1")
                        .bind(org.to_owned())
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|row| row.try_get("name"))
                        .transpose()?;
                let call = StripeCall::CreateCustomer {
                    org_id: org.to_owned(),
                    name: name.unwrap_or_else(|| org.to_owned()),
                    email: None,
                };
                Outbox::enqueue(&mut tx, &call, &customer_key(org), now_ms).await?;
                let subscribe = StripeCall::Subscribe {
                    org_id: org.to_owned(),
                };
                let key = format!("tollgate-subscription-{org}-first");
                Outbox::enqueue(&mut tx, &subscribe, &key, now_ms).await?;
            }
            let call = StripeCall::ReportUsage {
                org_id: org.to_owned(),
                micros,
                identifier: identifier.clone(),
                timestamp: hour / 1000,
            };
            Outbox::enqueue(&mut tx, &call, &identifier, now_ms).await?;
        }
        tx.commit().await?;
        Ok(Some(micros))
    }
}

/// The idempotency key of an organization's customer: every process makes the same one.
pub fn customer_key(org: &str) -> String {
    format!("tollgate-customer-{org}")
}

/// What reporting needs of an account.
struct AccountView {
    plan: Plan,
    has_customer: bool,
    credit: i64,
}

/// The organization's account, opened on pay-as-you-go if it has none, read in `conn`'s
/// transaction.
async fn open_account(
    conn: &mut AnyConnection,
    org: &str,
    now_ms: i64,
) -> Result<AccountView, sqlx::Error> {
    sqlx::query(
        "INSERT INTO billing_accounts (org_id, plan, standing, standing_event_at, credit_pico, \
         created_at, updated_at) VALUES ($1, 'payg', 'good', 0, 0, $2, $2) \
         ON CONFLICT (org_id) DO NOTHING",
    )
    .bind(org.to_owned())
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query(
        "SELECT plan, stripe_customer_id, credit_pico FROM billing_accounts WHERE org_id = $1",
    )
    .bind(org.to_owned())
    .fetch_one(&mut *conn)
    .await?;
    let plan: String = row.try_get("plan")?;
    let customer: Option<String> = row.try_get("stripe_customer_id")?;
    Ok(AccountView {
        plan: Plan::parse(&plan).unwrap_or(Plan::PayAsYouGo),
        has_customer: customer.is_some(),
        credit: row.try_get("credit_pico")?,
    })
}

async fn sum(
    conn: &mut AnyConnection,
    sql: &'static str,
    org: &str,
    range: Option<(i64, i64)>,
) -> Result<i64, sqlx::Error> {
    let mut query = sqlx::query(sql).bind(org.to_owned());
    if let Some((from, to)) = range {
        query = query.bind(from).bind(to);
    }
    query.fetch_one(&mut *conn).await?.try_get("n")
}

/// The calendar month (UTC) holding `time_ms`: its first and next month's first instant.
pub fn month_of(time_ms: i64) -> (i64, i64) {
    let date = time::OffsetDateTime::from_unix_timestamp(time_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date();
    let first = time::Date::from_calendar_date(date.year(), date.month(), 1).unwrap_or(date);
    let next = match date.month() {
        time::Month::December => {
            time::Date::from_calendar_date(date.year() + 1, time::Month::January, 1)
        }
        month => time::Date::from_calendar_date(date.year(), month.next(), 1),
    }
    .unwrap_or(first);
    let ms = |d: time::Date| d.midnight().assume_utc().unix_timestamp() * 1000;
    (ms(first), ms(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_run_from_the_first_to_the_first() {
        // 2026-11-26T04:00:00Z
        let (start, end) = month_of(1_795_665_600_000);
        assert_eq!(start, 1_793_491_200_000); // 2026-11-01
        assert_eq!(end, 1_796_083_200_000); // 2026-12-01
        let (start, end) = month_of(1_798_718_400_000); // 2026-12-31T12:00Z
        assert_eq!(start, 1_796_083_200_000);
        assert_eq!(end, 1_798_761_600_000); // 2027-01-01
    }
}
