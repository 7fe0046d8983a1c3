//! The ledger: one row per request in `usage_events`, and the hourly and daily totals that
//! analytics and budgets read, kept in the same transaction as the rows they count.
//!
//! Writing a batch twice changes nothing: rows are inserted with `ON CONFLICT DO NOTHING` on
//! the event id, and only the rows actually inserted are added to the rollups.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{AnyPool, Row};
use tollgate_common::LatencyHistogram;
use tollgate_common::latency::{LATENCY_BUCKETS, latency_column};

use super::{UsageRecord, UsageSink};
use crate::alerts::BudgetAlerts;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// Columns of `usage_events`, in the order [`bind_record`] binds them.
const EVENT_COLUMNS: &[&str] = &[
    "event_id",
    "request_id",
    "time",
    "org_id",
    "team_id",
    "key_id",
    "user_id",
    "end_user",
    "tags",
    "endpoint",
    "requested_model",
    "provider",
    "provider_model",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "usage_estimated",
    "cost_pico",
    "reserved_pico",
    "saved_pico",
    "latency_ms",
    "ttft_ms",
    "status",
    "error",
    "cache",
    "attempts",
    "stream",
];

/// How long raw rows and hourly totals are kept; daily totals are kept for ever.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub events_days: u32,
    pub hourly_days: u32,
}

/// The ledger's tables.
#[derive(Clone)]
pub struct Ledger {
    pool: AnyPool,
}

/// Totals of one rollup row.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    requests: i64,
    errors: i64,
    cache_hits: i64,
    input_tokens: i64,
    output_tokens: i64,
    cached_tokens: i64,
    cost_pico: i64,
    saved_pico: i64,
    latency_ms: i64,
    latency: LatencyHistogram,
}

impl Totals {
    fn add(&mut self, record: &UsageRecord) {
        self.requests += 1;
        self.errors += i64::from(record.status >= 400);
        self.cache_hits += i64::from(record.cache == "hit");
        self.input_tokens += to_i64(record.input_tokens);
        self.output_tokens += to_i64(record.output_tokens);
        self.cached_tokens += to_i64(record.cached_tokens);
        self.cost_pico += record.cost_pico.unwrap_or(0);
        self.saved_pico += record.saved_pico.unwrap_or(0);
        self.latency_ms += to_i64(record.latency_ms);
        self.latency.record(record.latency_ms);
    }
}

/// (granularity, bucket start, org, team, key, end user, model, provider)
type RollupKey = (
    &'static str,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
);
/// (granularity, bucket start, org, tag key, tag value)
type TagKey = (&'static str, i64, String, String, String);

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Ledger {
    pub fn new(pool: AnyPool) -> Self {
        Ledger { pool }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Stores `records`; returns those that were new (not already in the ledger).
    pub async fn record(&self, records: &[UsageRecord]) -> Result<Vec<UsageRecord>, sqlx::Error> {
        let mut seen = HashSet::new();
        let records: Vec<&UsageRecord> = records
            .iter()
            .filter(|r| seen.insert(r.event_id.as_str()))
            .collect();
        let mut tx = self.pool.begin().await?;
        // One prepared statement, row by row: the same SQL text every time, so it is parsed
        // once per connection (a multi-row VALUES list is parsed anew for every batch size, and
        // SQLite resolves each of its hundreds of parameters by name).
        let mut inserted = HashSet::new();
        for record in &records {
            let done = bind_record(
                sqlx::query(sqlx::AssertSqlSafe(INSERT_EVENT.as_str())),
                record,
            )
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                inserted.insert(record.event_id.clone());
            }
        }
        let new: Vec<UsageRecord> = records
            .into_iter()
            .filter(|r| inserted.contains(&r.event_id))
            .cloned()
            .collect();
        let (rollups, tags) = totals(&new);
        for (key, totals) in rollups {
            add_rollup(&mut tx, key, totals).await?;
        }
        for (key, totals) in tags {
            add_tag_rollup(&mut tx, key, totals).await?;
        }
        tx.commit().await?;
        Ok(new)
    }

    /// How many ledger rows the organization has for `request_id` (the client's id).
    pub async fn rows_for_request(&self, org: &str, request_id: &str) -> Result<i64, sqlx::Error> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM usage_events WHERE org_id = $1 AND request_id = $2",
        )
        .bind(org.to_owned())
        .bind(request_id.to_owned())
        .fetch_one(&self.pool)
        .await?;
        row.try_get("n")
    }

    /// Deletes raw rows and hourly totals older than the retention allows.
    pub async fn prune(&self, retention: Retention, now_ms: i64) -> Result<u64, sqlx::Error> {
        let events_before = now_ms - i64::from(retention.events_days) * DAY_MS;
        let hourly_before = now_ms - i64::from(retention.hourly_days) * DAY_MS;
        let events = sqlx::query("DELETE FROM usage_events WHERE time < $1")
            .bind(events_before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        for table in [
            "DELETE FROM usage_rollups WHERE granularity = 'hour' AND bucket_start < $1",
            "DELETE FROM usage_tag_rollups WHERE granularity = 'hour' AND bucket_start < $1",
        ] {
            sqlx::query(table)
                .bind(hourly_before)
                .execute(&self.pool)
                .await?;
        }
        Ok(events)
    }
}

/// `INSERT` of one event unless its id is already there (then it affects no row); made from
/// [`EVENT_COLUMNS`] alone.
static INSERT_EVENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(insert_sql);

fn insert_sql() -> String {
    let params: Vec<String> = (1..=EVENT_COLUMNS.len()).map(|c| format!("${c}")).collect();
    format!(
        "INSERT INTO usage_events ({}) VALUES ({}) ON CONFLICT (event_id) DO NOTHING",
        EVENT_COLUMNS.join(", "),
        params.join(", ")
    )
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn bind_record<'q>(query: AnyQuery<'q>, r: &UsageRecord) -> AnyQuery<'q> {
    query
        .bind(r.event_id.clone())
        .bind(r.request_id.clone())
        .bind(r.time_ms)
        .bind(r.org_id.clone())
        .bind(r.team_id.clone())
        .bind(r.key_id.clone())
        .bind(r.user_id.clone())
        .bind(r.end_user.clone())
        .bind(serde_json::to_string(&r.tags).unwrap_or_else(|_| "{}".into()))
        .bind(r.endpoint.clone())
        .bind(r.requested_model.clone())
        .bind(r.provider.clone())
        .bind(r.provider_model.clone())
        .bind(to_i64(r.input_tokens))
        .bind(to_i64(r.output_tokens))
        .bind(to_i64(r.cached_tokens))
        .bind(i64::from(r.usage_estimated))
        .bind(r.cost_pico)
        .bind(r.reserved_pico)
        .bind(r.saved_pico)
        .bind(to_i64(r.latency_ms))
        .bind(r.ttft_ms.map(to_i64))
        .bind(i64::from(r.status))
        .bind(r.error.clone())
        .bind(r.cache.clone())
        .bind(i64::from(r.attempts))
        .bind(i64::from(r.stream))
}

/// The rollup and tag-rollup increments of `records`, per hour and per day.
fn totals(records: &[UsageRecord]) -> (BTreeMap<RollupKey, Totals>, BTreeMap<TagKey, Totals>) {
    let mut rollups: BTreeMap<RollupKey, Totals> = BTreeMap::new();
    let mut tags: BTreeMap<TagKey, Totals> = BTreeMap::new();
    for record in records {
        for (granularity, size) in [("hour", HOUR_MS), ("day", DAY_MS)] {
            let bucket = record.time_ms - record.time_ms.rem_euclid(size);
            let key = (
                granularity,
                bucket,
                record.org_id.clone(),
                record.team_id.clone().unwrap_or_default(),
                record.key_id.clone().unwrap_or_default(),
                record.end_user.clone().unwrap_or_default(),
                record.requested_model.clone(),
                record.provider.clone().unwrap_or_default(),
            );
            rollups.entry(key).or_default().add(record);
            for (tag, value) in &record.tags {
                let key = (
                    granularity,
                    bucket,
                    record.org_id.clone(),
                    tag.clone(),
                    value.clone(),
                );
                tags.entry(key).or_default().add(record);
            }
        }
    }
    (rollups, tags)
}

/// The columns of `usage_rollups` that add up: the totals, then each latency bucket (what the
/// upsert adds to and what analytics sum).
pub static ROLLUP_SUMS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    [
        "requests",
        "errors",
        "cache_hits",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "cost_pico",
        "saved_pico",
        "latency_ms_sum",
    ]
    .map(String::from)
    .into_iter()
    .chain((0..LATENCY_BUCKETS).map(latency_column))
    .collect()
});

/// The rollup upsert: every total, and each latency bucket, added to the row's.
static UPSERT_ROLLUP: std::sync::LazyLock<String> = std::sync::LazyLock::new(upsert_rollup_sql);

fn upsert_rollup_sql() -> String {
    let mut columns: Vec<String> = [
        "granularity",
        "bucket_start",
        "org_id",
        "team_id",
        "key_id",
        "end_user",
        "model",
        "provider",
    ]
    .map(String::from)
    .to_vec();
    let summed = &*ROLLUP_SUMS;
    columns.extend(summed.iter().cloned());
    let params: Vec<String> = (1..=columns.len()).map(|c| format!("${c}")).collect();
    let updates: Vec<String> = summed
        .iter()
        .map(|c| format!("{c} = usage_rollups.{c} + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO usage_rollups ({}) VALUES ({}) ON CONFLICT \
         (granularity, org_id, bucket_start, team_id, key_id, end_user, model, provider) \
         DO UPDATE SET {}",
        columns.join(", "),
        params.join(", "),
        updates.join(", ")
    )
}

async fn add_rollup(
    tx: &mut sqlx::AnyConnection,
    key: RollupKey,
    t: Totals,
) -> Result<(), sqlx::Error> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(UPSERT_ROLLUP.as_str()))
        .bind(key.0)
        .bind(key.1)
        .bind(key.2)
        .bind(key.3)
        .bind(key.4)
        .bind(key.5)
        .bind(key.6)
        .bind(key.7)
        .bind(t.requests)
        .bind(t.errors)
        .bind(t.cache_hits)
        .bind(t.input_tokens)
        .bind(t.output_tokens)
        .bind(t.cached_tokens)
        .bind(t.cost_pico)
        .bind(t.saved_pico)
        .bind(t.latency_ms);
    for count in t.latency.0 {
        query = query.bind(count);
    }
    query.execute(&mut *tx).await?;
    Ok(())
}

async fn add_tag_rollup(
    tx: &mut sqlx::AnyConnection,
    key: TagKey,
    t: Totals,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO usage_tag_rollups (granularity, bucket_start, org_id, tag_key, tag_value, \
         requests, errors, input_tokens, output_tokens, cost_pico) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (granularity, org_id, bucket_start, tag_key, tag_value) \
         DO UPDATE SET requests = usage_tag_rollups.requests + excluded.requests, \
         errors = usage_tag_rollups.errors + excluded.errors, \
         input_tokens = usage_tag_rollups.input_tokens + excluded.input_tokens, \
         output_tokens = usage_tag_rollups.output_tokens + excluded.output_tokens, \
         cost_pico = usage_tag_rollups.cost_pico + excluded.cost_pico",
    )
    .bind(key.0)
    .bind(key.1)
    .bind(key.2)
    .bind(key.3)
    .bind(key.4)
    .bind(t.requests)
    .bind(t.errors)
    .bind(t.input_tokens)
    .bind(t.output_tokens)
    .bind(t.cost_pico)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The ledger as a shipping destination, with the budget alerts it triggers.
pub struct LedgerSink {
    pub ledger: Ledger,
    pub alerts: Option<Arc<BudgetAlerts>>,
}

#[async_trait]
impl UsageSink for LedgerSink {
    async fn ship(&self, records: &[UsageRecord]) -> Result<(), String> {
        let new = self
            .ledger
            .record(records)
            .await
            .map_err(|e| format!("ledger: {e}"))?;
        if let Some(alerts) = &self.alerts
            && !new.is_empty()
        {
            // Alerts are checked after the rows are committed; a failure here never undoes
            // or repeats the shipping of usage.
            if let Err(err) = alerts.check(&new).await {
                tracing::warn!(%err, "budget alerts could not be checked");
            }
        }
        Ok(())
    }
}
