//! The ledger: one row per request in `usage_events`, and the hourly and daily totals that
//! analytics and budgets read, kept in the same transaction as the rows they count.
//!
//! Writing a batch twice changes nothing: rows are inserted with `ON CONFLICT DO NOTHING` on
//! the event id, and only the rows actually inserted are added to the rollups.
//!
//! Rows go in many to a statement: on SQLite each statement is a round trip to the
//! connection's thread, which cost more than the insert itself when it was one per row.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{AnyPool, Row};
use tollgate_common::LatencyHistogram;
use tollgate_common::latency::{LATENCY_BUCKETS, latency_column};

use super::dead_letters::{self, DeadLetters};
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
    "guardrail",
    "guardrail_actions",
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
    parameters: ParameterStyle,
}

/// How the database names a statement's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParameterStyle {
    /// `$1, $2, ...` (PostgreSQL).
    Numbered,
    /// `?` (SQLite): binding a numbered parameter makes SQLite search the statement's list of
    /// names, so a statement of hundreds of them would bind in quadratic time.
    Anonymous,
}

/// Rows per `INSERT`, largest first: a batch is cut into these sizes, so that only four
/// statement texts exist and each is prepared once per connection.
const ROWS_PER_INSERT: [usize; 4] = [64, 16, 4, 1];

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

/// (granularity, bucket start, org, team, key, end user, model, provider, guardrail)
type RollupKey<'r> = (
    &'static str,
    i64,
    &'r str,
    &'r str,
    &'r str,
    &'r str,
    &'r str,
    &'r str,
    &'r str,
);
/// (granularity, bucket start, org, tag key, tag value)
type TagKey<'r> = (&'static str, i64, &'r str, &'r str, &'r str);

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Ledger {
    pub fn new(pool: AnyPool) -> Self {
        let parameters = if pool.connect_options().database_url.scheme() == "sqlite" {
            ParameterStyle::Anonymous
        } else {
            ParameterStyle::Numbered
        };
        Ledger { pool, parameters }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Stores `records`; returns those that were new (not already in the ledger).
    pub async fn record<'r>(
        &self,
        records: &'r [UsageRecord],
    ) -> Result<Vec<&'r UsageRecord>, sqlx::Error> {
        let mut seen = HashSet::new();
        let records: Vec<&UsageRecord> = records
            .iter()
            .filter(|r| seen.insert(r.event_id.as_str()))
            .collect();
        let mut tx = self.pool.begin().await?;
        let new = match self.insert_all_new(&mut tx, &records).await? {
            Some(()) => records,
            None => {
                // Some rows were there already (a batch shipped again after a crash or a
                // redelivery): start over, row by row, to learn which ones are new.
                tx.rollback().await?;
                tx = self.pool.begin().await?;
                self.insert_each(&mut tx, records).await?
            }
        };
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

    /// Inserts `records` many to a statement. `None` when some were in the ledger already:
    /// the transaction then holds an unknown mix and must be rolled back.
    async fn insert_all_new(
        &self,
        tx: &mut sqlx::AnyConnection,
        records: &[&UsageRecord],
    ) -> Result<Option<()>, sqlx::Error> {
        let mut rest = records;
        while !rest.is_empty() {
            // The last size is 1, so some size always fits.
            let size = ROWS_PER_INSERT
                .iter()
                .position(|&rows| rows <= rest.len())
                .unwrap_or(ROWS_PER_INSERT.len() - 1);
            let rows = ROWS_PER_INSERT[size];
            let (chunk, after) = rest.split_at(rows);
            let sql = insert_sql(self.parameters, size);
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for record in chunk {
                query = bind_record(query, record);
            }
            if query.execute(&mut *tx).await?.rows_affected() != rows as u64 {
                return Ok(None);
            }
            rest = after;
        }
        Ok(Some(()))
    }

    /// Inserts `records` one at a time; returns those that were not in the ledger yet.
    async fn insert_each<'r>(
        &self,
        tx: &mut sqlx::AnyConnection,
        records: Vec<&'r UsageRecord>,
    ) -> Result<Vec<&'r UsageRecord>, sqlx::Error> {
        let sql = insert_sql(self.parameters, ROWS_PER_INSERT.len() - 1);
        let mut new = Vec::new();
        for record in records {
            let done = bind_record(sqlx::query(sqlx::AssertSqlSafe(sql)), record)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 1 {
                new.push(record);
            }
        }
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

/// The `INSERT` of `ROWS_PER_INSERT[size]` events, skipping any whose id is already there;
/// made once per size from [`EVENT_COLUMNS`] alone.
fn insert_sql(parameters: ParameterStyle, size: usize) -> &'static str {
    type Texts = [std::sync::OnceLock<String>; ROWS_PER_INSERT.len()];
    static NUMBERED: Texts = [const { std::sync::OnceLock::new() }; ROWS_PER_INSERT.len()];
    static ANONYMOUS: Texts = [const { std::sync::OnceLock::new() }; ROWS_PER_INSERT.len()];
    let texts = match parameters {
        ParameterStyle::Numbered => &NUMBERED,
        ParameterStyle::Anonymous => &ANONYMOUS,
    };
    texts[size].get_or_init(|| {
        let columns = EVENT_COLUMNS.len();
        let values: Vec<String> = (0..ROWS_PER_INSERT[size])
            .map(|row| {
                let params: Vec<String> = (1..=columns)
                    .map(|c| match parameters {
                        ParameterStyle::Numbered => format!("${}", row * columns + c),
                        ParameterStyle::Anonymous => "?".to_owned(),
                    })
                    .collect();
                format!("({})", params.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO usage_events ({}) VALUES {} ON CONFLICT (event_id) DO NOTHING",
            EVENT_COLUMNS.join(", "),
            values.join(", ")
        )
    })
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
        .bind(r.guardrail.clone())
        .bind(guardrail_actions_json(r))
}

/// The record's guardrail actions as a JSON array; `None` (NULL) when there are none.
fn guardrail_actions_json(r: &UsageRecord) -> Option<String> {
    if r.guardrail_actions.is_empty() {
        return None;
    }
    serde_json::to_string(&r.guardrail_actions).ok()
}

/// The rollup and tag-rollup increments of `records`, per hour and per day.
fn totals<'r>(
    records: &[&'r UsageRecord],
) -> (
    BTreeMap<RollupKey<'r>, Totals>,
    BTreeMap<TagKey<'r>, Totals>,
) {
    let mut rollups: BTreeMap<RollupKey, Totals> = BTreeMap::new();
    let mut tags: BTreeMap<TagKey, Totals> = BTreeMap::new();
    for record in records {
        for (granularity, size) in [("hour", HOUR_MS), ("day", DAY_MS)] {
            let bucket = record.time_ms - record.time_ms.rem_euclid(size);
            let key = (
                granularity,
                bucket,
                record.org_id.as_str(),
                record.team_id.as_deref().unwrap_or_default(),
                record.key_id.as_deref().unwrap_or_default(),
                record.end_user.as_deref().unwrap_or_default(),
                record.requested_model.as_str(),
                record.provider.as_deref().unwrap_or_default(),
                record.guardrail.as_deref().unwrap_or_default(),
            );
            rollups.entry(key).or_default().add(record);
            for (tag, value) in &record.tags {
                let key = (
                    granularity,
                    bucket,
                    record.org_id.as_str(),
                    tag.as_str(),
                    value.as_str(),
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
        "guardrail",
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
         (granularity, org_id, bucket_start, team_id, key_id, end_user, model, provider, guardrail) \
         DO UPDATE SET {}",
        columns.join(", "),
        params.join(", "),
        updates.join(", ")
    )
}

async fn add_rollup(
    tx: &mut sqlx::AnyConnection,
    key: RollupKey<'_>,
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
        .bind(key.8)
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
    key: TagKey<'_>,
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

/// The ledger as a shipping destination, with the budget alerts it triggers and the dead
/// letters it sets aside.
pub struct LedgerSink {
    ledger: Ledger,
    alerts: Option<Arc<BudgetAlerts>>,
    dead_letters: DeadLetters,
}

impl LedgerSink {
    pub fn new(ledger: Ledger, alerts: Option<Arc<BudgetAlerts>>) -> Self {
        let dead_letters = DeadLetters::new(ledger.pool().clone());
        LedgerSink {
            ledger,
            alerts,
            dead_letters,
        }
    }

    pub fn dead_letters(&self) -> &DeadLetters {
        &self.dead_letters
    }

    /// Stores `records`; those the database refuses are set aside as dead letters. Returns
    /// the records that were new to the ledger.
    ///
    /// A refused batch is halved until each refused record stands alone, so one bad record
    /// among 2,048 costs about two dozen extra transactions, once. The halves already stored
    /// stay stored: shipping the batch again after a later failure is harmless (by event id).
    async fn record_or_set_aside<'r>(
        &self,
        records: &'r [UsageRecord],
    ) -> Result<Vec<&'r UsageRecord>, String> {
        let mut new = Vec::new();
        let mut parts = vec![records];
        while let Some(part) = parts.pop() {
            match self.ledger.record(part).await {
                Ok(stored) => new.extend(stored),
                Err(err) if dead_letters::refused(&err) => match part {
                    [record] => self
                        .dead_letters
                        .set_aside(record, &err.to_string())
                        .await
                        .map_err(|e| format!("dead letters: {e}"))?,
                    _ => {
                        let (first, second) = part.split_at(part.len() / 2);
                        parts.push(second);
                        parts.push(first);
                    }
                },
                Err(err) => return Err(format!("ledger: {err}")),
            }
        }
        Ok(new)
    }
}

#[async_trait]
impl UsageSink for LedgerSink {
    async fn ship(&self, records: &[UsageRecord]) -> Result<(), String> {
        let new = self.record_or_set_aside(records).await?;
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
