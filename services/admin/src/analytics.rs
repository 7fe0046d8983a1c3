//! Usage analytics: totals and time series of one organization's usage, by hour or by day in
//! the caller's time zone, optionally grouped by one dimension and filtered.
//!
//! Answers come from the rollup tables only (`usage_rollups`, `usage_tag_rollups`; see
//! `migrations/*/0003_usage.sql`), never from the raw ledger, so the work grows with buckets
//! times groups rather than with requests. The ledger
//! (`tollgate_billing::usage::ledger`) adds each request to exactly one `usage_rollups` row
//! per hour and per day, keyed by every dimension at once (team, key, end user, model,
//! provider, guardrail outcome; '' for none): grouping by one dimension sums over the others.
//! It also adds the request to one `usage_tag_rollups` row per tag it carries.
//!
//! Which rollups answer a query:
//!
//! | bucket | UTC offset | rows read                                                      |
//! |--------|------------|----------------------------------------------------------------|
//! | hour   | any        | hourly rollups; hours are UTC hours whatever the offset        |
//! | day    | 0          | daily rollups (24 times fewer rows)                            |
//! | day    | non-zero   | hourly rollups, each hour shifted by the offset, floored to the local day |
//!
//! A day therefore starts at local midnight for a fixed offset: a range across a daylight
//! saving change keeps the offset it was asked with. For an offset that is not a whole number
//! of hours (+05:30), an hour counts in the local day in which it starts. Hourly rollups are
//! pruned after the billing retention (`Retention::hourly_days`); day buckets at a non-zero
//! offset read them, so they see no further back than that.
//!
//! Money stays whole picodollars ([`Picodollars`]), summed by the database as `BIGINT`;
//! `Picodollars::to_usd` gives the exact decimal and its `Display` the `$` form.
//!
//! Every statement starts its `WHERE` with the organization (and the granularity), the prefix
//! of both rollup tables' primary keys, so one tenant's query never reads another's rows.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use tollgate_billing::usage::ledger::ROLLUP_SUMS;
use tollgate_common::latency::{LATENCY_BUCKETS, latency_column};
use tollgate_common::{LatencyHistogram, Picodollars};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// The longest range of hour buckets: about 750 points per group, a month.
pub const MAX_HOUR_RANGE_DAYS: i64 = 31;
/// The longest range of day buckets: a year and a bit, for year-on-year views.
pub const MAX_DAY_RANGE_DAYS: i64 = 400;
/// The furthest any time zone is from UTC (UTC+14, Line Islands; UTC-12 is nearer).
pub const MAX_UTC_OFFSET_MINUTES: i32 = 14 * 60;
/// Every time zone in use is a whole number of quarter hours from UTC (+05:45, +08:45, +12:45
/// are the finest).
pub const UTC_OFFSET_STEP_MINUTES: i32 = 15;
/// The latest accepted instant, 9999-12-31T23:59:59.999Z; bounds the arithmetic on times.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// The length of a time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// A UTC hour.
    Hour,
    /// A day from local midnight at the query's UTC offset.
    Day,
}

impl Bucket {
    /// The longest range a query with these buckets may cover.
    pub fn max_range_days(self) -> i64 {
        match self {
            Bucket::Hour => MAX_HOUR_RANGE_DAYS,
            Bucket::Day => MAX_DAY_RANGE_DAYS,
        }
    }

    /// The start of the bucket holding `time_ms`. Hours ignore the offset (they are UTC
    /// hours); days start at local midnight for `utc_offset_minutes`.
    pub fn floor(self, time_ms: i64, utc_offset_minutes: i32) -> i64 {
        let (size, offset_ms) = match self {
            Bucket::Hour => (HOUR_MS, 0),
            Bucket::Day => (DAY_MS, i64::from(utc_offset_minutes) * 60_000),
        };
        // Saturating: a range is widened before it is checked, so `time_ms` may be any `i64`
        // a client sent; one this far out is then refused as out of range.
        time_ms.saturating_sub(time_ms.saturating_add(offset_ms).rem_euclid(size))
    }

    /// The start of the first bucket at or after `time_ms`: with [`Bucket::floor`], widens a
    /// range to whole buckets.
    pub fn ceil(self, time_ms: i64, utc_offset_minutes: i32) -> i64 {
        let floor = self.floor(time_ms, utc_offset_minutes);
        if floor == time_ms {
            floor
        } else {
            floor.saturating_add(match self {
                Bucket::Hour => HOUR_MS,
                Bucket::Day => DAY_MS,
            })
        }
    }
}

/// What figures can be grouped by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// The model the client asked for.
    Model,
    Provider,
    Team,
    Key,
    /// OpenAI's `user` field.
    EndUser,
    /// What guardrails did: the most severe action taken on the request (`blocked`,
    /// `modified`, `redacted`, `truncated`, `flagged`, `restored`, `logged`); requests no
    /// guardrail acted on are the group without a key.
    Guardrail,
    /// The values of one tag key. Tag rollups keep fewer figures (see [`UsageFigures`]) and
    /// no other dimension, so filters cannot be combined with them.
    Tag(String),
}

impl Dimension {
    /// The `usage_rollups` column; `None` for tags, which live in their own table.
    fn rollup_column(&self) -> Option<&'static str> {
        match self {
            Dimension::Model => Some("model"),
            Dimension::Provider => Some("provider"),
            Dimension::Team => Some("team_id"),
            Dimension::Key => Some("key_id"),
            Dimension::EndUser => Some("end_user"),
            Dimension::Guardrail => Some("guardrail"),
            Dimension::Tag(_) => None,
        }
    }
}

/// Restricts a query to one team, key, model and/or guardrail outcome (each exact; unset
/// means all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageFilters {
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    /// The model the client asked for.
    pub model: Option<String>,
    /// The most severe guardrail action (`blocked`, ...), as [`Dimension::Guardrail`] groups.
    pub guardrail: Option<String>,
}

impl UsageFilters {
    /// The set filters as (field name, `usage_rollups` column, value).
    fn set(&self) -> impl Iterator<Item = (&'static str, &'static str, &str)> {
        [
            ("filters.team_id", "team_id", &self.team_id),
            ("filters.key_id", "key_id", &self.key_id),
            ("filters.model", "model", &self.model),
            ("filters.guardrail", "guardrail", &self.guardrail),
        ]
        .into_iter()
        .filter_map(|(field, column, value)| value.as_deref().map(|v| (field, column, v)))
    }
}

/// One question about an organization's usage over `[from_ms, to_ms)`.
///
/// Both ends must fall on bucket boundaries (UTC hours, or local midnights at
/// `utc_offset_minutes` for days): rollups cannot split a bucket. [`UsageQuery::widened`]
/// moves them out to the nearest boundaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageQuery {
    pub org_id: String,
    /// Unix milliseconds, inclusive.
    pub from_ms: i64,
    /// Unix milliseconds, exclusive.
    pub to_ms: i64,
    pub bucket: Bucket,
    /// Minutes east of UTC (+120 for UTC+02:00): where a day bucket starts. Within ±14 hours,
    /// in steps of 15 minutes.
    pub utc_offset_minutes: i32,
    pub group_by: Option<Dimension>,
    pub filters: UsageFilters,
    /// Whether to estimate latency percentiles: they sum 24 histogram columns more, which
    /// a query that shows no percentile need not pay for.
    pub latency_percentiles: bool,
}

impl UsageQuery {
    /// All of an organization's usage in `[from_ms, to_ms)`, in UTC, ungrouped and unfiltered.
    pub fn new(org_id: impl Into<String>, from_ms: i64, to_ms: i64, bucket: Bucket) -> Self {
        UsageQuery {
            org_id: org_id.into(),
            from_ms,
            to_ms,
            bucket,
            utc_offset_minutes: 0,
            group_by: None,
            filters: UsageFilters::default(),
            latency_percentiles: true,
        }
    }

    /// The same query with `from_ms` moved back and `to_ms` forward to bucket boundaries,
    /// e.g. "the last 30 days" to whole days.
    pub fn widened(mut self) -> Self {
        self.from_ms = self.bucket.floor(self.from_ms, self.utc_offset_minutes);
        self.to_ms = self.bucket.ceil(self.to_ms, self.utc_offset_minutes);
        self
    }

    /// Checks the query and decides which rollups answer it.
    fn plan(&self) -> Result<Plan<'_>, QueryError> {
        if self.org_id.is_empty() {
            return Err(QueryError::MissingOrg);
        }
        let offset = self.utc_offset_minutes;
        // `unsigned_abs`: the absolute value of `i32::MIN` does not fit an `i32`.
        if offset.unsigned_abs() > MAX_UTC_OFFSET_MINUTES.unsigned_abs()
            || offset % UTC_OFFSET_STEP_MINUTES != 0
        {
            return Err(QueryError::UtcOffset { minutes: offset });
        }
        for (field, value) in [("from_ms", self.from_ms), ("to_ms", self.to_ms)] {
            if !(0..=MAX_TIME_MS).contains(&value) {
                return Err(QueryError::OutOfRange { field, value });
            }
        }
        if self.to_ms <= self.from_ms {
            return Err(QueryError::EmptyRange {
                from_ms: self.from_ms,
                to_ms: self.to_ms,
            });
        }
        let max_days = self.bucket.max_range_days();
        if self.to_ms - self.from_ms > max_days * DAY_MS {
            return Err(QueryError::RangeTooLong {
                bucket: self.bucket,
                max_days,
            });
        }
        for (field, value) in [("from_ms", self.from_ms), ("to_ms", self.to_ms)] {
            if self.bucket.floor(value, offset) != value {
                return Err(QueryError::Unaligned {
                    field,
                    value,
                    bucket: self.bucket,
                });
            }
        }
        if let Some(Dimension::Tag(tag_key)) = &self.group_by {
            if tag_key.is_empty() {
                return Err(QueryError::EmptyTagKey);
            }
            if let Some((field, _, _)) = self.filters.set().next() {
                return Err(QueryError::FilterWithTag { field });
            }
        }
        let (granularity, day_shift_ms) = match (self.bucket, offset) {
            (Bucket::Hour, _) => ("hour", None),
            (Bucket::Day, 0) => ("day", None),
            (Bucket::Day, minutes) => ("hour", Some(i64::from(minutes) * 60_000)),
        };
        Ok(Plan {
            query: self,
            granularity,
            day_shift_ms,
        })
    }
}

/// A query that cannot be answered as asked; [`QueryError::field`] names the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("org_id is required")]
    MissingOrg,
    #[error("{field} ({value}) must be between 0 and {MAX_TIME_MS} (Unix milliseconds)")]
    OutOfRange { field: &'static str, value: i64 },
    #[error("to_ms ({to_ms}) must be after from_ms ({from_ms})")]
    EmptyRange { from_ms: i64, to_ms: i64 },
    #[error("to_ms: a range of {bucket:?} buckets covers at most {max_days} days")]
    RangeTooLong { bucket: Bucket, max_days: i64 },
    #[error("{field} ({value}) is not the start of a {bucket:?} bucket")]
    Unaligned {
        field: &'static str,
        value: i64,
        bucket: Bucket,
    },
    #[error(
        "utc_offset_minutes ({minutes}) must be within ±{MAX_UTC_OFFSET_MINUTES} in steps of {UTC_OFFSET_STEP_MINUTES}"
    )]
    UtcOffset { minutes: i32 },
    #[error("group_by: the tag key must not be empty")]
    EmptyTagKey,
    #[error("{field} cannot be combined with grouping by tag: tag rollups keep no other dimension")]
    FilterWithTag { field: &'static str },
}

impl QueryError {
    /// The query field at fault, as named in [`UsageQuery`] (`filters.model` for a filter).
    pub fn field(&self) -> &'static str {
        match self {
            QueryError::MissingOrg => "org_id",
            QueryError::OutOfRange { field, .. }
            | QueryError::Unaligned { field, .. }
            | QueryError::FilterWithTag { field } => field,
            QueryError::EmptyRange { .. } | QueryError::RangeTooLong { .. } => "to_ms",
            QueryError::UtcOffset { .. } => "utc_offset_minutes",
            QueryError::EmptyTagKey => "group_by",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("usage rollups could not be read: {0}")]
    Database(#[from] sqlx::Error),
}

/// What a set of requests amounted to.
///
/// Figures the tag rollups do not keep are `None` in groups by tag (including the group of
/// requests without the tag): cache hits, cached tokens, savings and latency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageFigures {
    pub requests: i64,
    /// Requests answered with an HTTP status of 400 or more.
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// What the requests cost; requests to unpriced models count nothing.
    pub cost_pico: Picodollars,
    /// Requests answered from the cache.
    pub cache_hits: Option<i64>,
    /// Input tokens the provider served from its prompt cache.
    pub cached_tokens: Option<i64>,
    /// What cache hits would have cost had they gone upstream.
    pub saved_pico: Option<Picodollars>,
    /// Mean time to the full answer; also `None` when there were no requests.
    pub latency_ms_avg: Option<f64>,
    /// Median and 95th percentile of the time to the full answer, estimated from the rollups'
    /// latency histograms (within a bucket of about ±20 %).
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p95: Option<f64>,
}

impl UsageFigures {
    /// The requests in `self` that are not in `part` (which `self` includes). Only the
    /// figures both tables keep can be told apart; the others are `None`.
    fn without(&self, part: &UsageFigures) -> UsageFigures {
        UsageFigures {
            requests: self.requests - part.requests,
            errors: self.errors - part.errors,
            input_tokens: self.input_tokens - part.input_tokens,
            output_tokens: self.output_tokens - part.output_tokens,
            cost_pico: Picodollars(self.cost_pico.0 - part.cost_pico.0),
            ..UsageFigures::default()
        }
    }

    fn add_common(&mut self, other: &UsageFigures) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cost_pico = self.cost_pico.saturating_add(other.cost_pico);
    }
}

/// The figures of one group over the whole range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The group's value of the dimension; `None` when the query is not grouped, or for
    /// requests without one (no team, no end user, not carrying the tag).
    pub key: Option<String>,
    pub figures: UsageFigures,
}

/// The figures of one group in one bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The bucket's first instant, Unix milliseconds (a local midnight for day buckets).
    pub bucket_start_ms: i64,
    /// As [`Group::key`].
    pub key: Option<String>,
    pub figures: UsageFigures,
}

/// The figures over the whole range, one [`Group`] per value of the grouping dimension (one in
/// all when ungrouped); the largest cost first, then the most requests, then by key. Groups
/// with no requests do not appear: no usage at all gives no groups.
pub async fn totals(pool: &AnyPool, query: &UsageQuery) -> Result<Vec<Group>, AnalyticsError> {
    let plan = query.plan()?;
    let mut groups: Vec<Group> = read(pool, &plan, false)
        .await?
        .into_iter()
        .map(|row| Group {
            key: row.key,
            figures: row.figures,
        })
        .collect();
    groups.sort_by(|a, b| {
        b.figures
            .cost_pico
            .cmp(&a.figures.cost_pico)
            .then(b.figures.requests.cmp(&a.figures.requests))
            .then_with(|| a.key.cmp(&b.key))
    });
    Ok(groups)
}

/// The figures per bucket and group, by bucket start then key (`None` first). Buckets and
/// groups with no requests do not appear.
pub async fn series(pool: &AnyPool, query: &UsageQuery) -> Result<Vec<Point>, AnalyticsError> {
    let plan = query.plan()?;
    let mut points: Vec<Point> = read(pool, &plan, true)
        .await?
        .into_iter()
        .map(|row| Point {
            bucket_start_ms: row.bucket_start_ms,
            key: row.key,
            figures: row.figures,
        })
        .collect();
    // Sorted here rather than in SQL: PostgreSQL orders text by the database's collation and
    // SQLite by bytes, and the answer must not depend on the database.
    points.sort_by(|a, b| {
        a.bucket_start_ms
            .cmp(&b.bucket_start_ms)
            .then_with(|| a.key.cmp(&b.key))
    });
    Ok(points)
}

/// A validated query and the rollups that answer it.
struct Plan<'q> {
    query: &'q UsageQuery,
    /// The rollup rows read: `hour` or `day`.
    granularity: &'static str,
    /// For day buckets built from hourly rows: the UTC offset in milliseconds.
    day_shift_ms: Option<i64>,
}

/// One grouped result row; `bucket_start_ms` is 0 for totals.
struct Summed {
    bucket_start_ms: i64,
    key: Option<String>,
    figures: UsageFigures,
}

/// The table a statement reads, and what it groups by there.
enum Source<'a> {
    Rollups { group_column: Option<&'static str> },
    Tags { tag_key: &'a str },
}

async fn read(
    pool: &AnyPool,
    plan: &Plan<'_>,
    by_bucket: bool,
) -> Result<Vec<Summed>, sqlx::Error> {
    let Some(Dimension::Tag(tag_key)) = &plan.query.group_by else {
        let group_column = plan
            .query
            .group_by
            .as_ref()
            .and_then(Dimension::rollup_column);
        return select(pool, plan, by_bucket, Source::Rollups { group_column }).await;
    };
    let mut rows = select(pool, plan, by_bucket, Source::Tags { tag_key }).await?;
    // Requests without the tag have no tag rollup row: they are what the tagged groups leave
    // of the totals, per bucket. (Each request has at most one value per tag key, so the
    // tagged groups never overlap.)
    let mut tagged: BTreeMap<i64, UsageFigures> = BTreeMap::new();
    for row in &rows {
        tagged
            .entry(row.bucket_start_ms)
            .or_default()
            .add_common(&row.figures);
    }
    let all = select(
        pool,
        plan,
        by_bucket,
        Source::Rollups { group_column: None },
    )
    .await?;
    for total in all {
        let untagged = match tagged.get(&total.bucket_start_ms) {
            Some(part) => total.figures.without(part),
            None => total.figures.without(&UsageFigures::default()),
        };
        if untagged.requests > 0 {
            rows.push(Summed {
                bucket_start_ms: total.bucket_start_ms,
                key: None,
                figures: untagged,
            });
        }
    }
    Ok(rows)
}

/// One `SELECT … GROUP BY` over a rollup table. Only column names chosen here and the
/// validated offset are written into the SQL; every value from the query is bound.
async fn select(
    pool: &AnyPool,
    plan: &Plan<'_>,
    by_bucket: bool,
    source: Source<'_>,
) -> Result<Vec<Summed>, sqlx::Error> {
    let query = plan.query;
    let mut columns: Vec<String> = Vec::new();
    if by_bucket {
        columns.push(match plan.day_shift_ms {
            // The start of the local day holding the hour, back in UTC: the hour minus its
            // time since local midnight. `%` truncates towards zero in both databases; adding
            // a day and taking `%` again makes it a floor for times before an offset epoch.
            Some(shift) => format!(
                "bucket_start - ((((bucket_start + {shift}) % {DAY_MS}) + {DAY_MS}) % {DAY_MS}) \
                 AS bucket"
            ),
            None => "bucket_start AS bucket".to_owned(),
        });
    }
    let (table, group_column, sums): (&str, Option<&str>, &[String]) = match &source {
        Source::Rollups { group_column } if query.latency_percentiles => {
            ("usage_rollups", *group_column, &ROLLUP_SUMS)
        }
        Source::Rollups { group_column } => (
            "usage_rollups",
            *group_column,
            &ROLLUP_SUMS[..ROLLUP_SUMS.len() - LATENCY_BUCKETS],
        ),
        Source::Tags { .. } => ("usage_tag_rollups", Some("tag_value"), &TAG_SUMS),
    };
    if let Some(column) = group_column {
        columns.push(format!("{column} AS group_key"));
    }
    let grouped = columns.len();
    columns.extend(
        sums.iter()
            .map(|c| format!("CAST(SUM({c}) AS BIGINT) AS {c}")),
    );
    let mut sql = format!(
        "SELECT {} FROM {table} \
         WHERE org_id = $1 AND granularity = $2 AND bucket_start >= $3 AND bucket_start < $4",
        columns.join(", ")
    );
    let mut binds: Vec<&str> = Vec::new();
    match &source {
        Source::Rollups { .. } => {
            for (_, column, value) in query.filters.set() {
                binds.push(value);
                sql.push_str(&format!(" AND {column} = ${}", 4 + binds.len()));
            }
        }
        Source::Tags { tag_key } => {
            binds.push(tag_key);
            sql.push_str(" AND tag_key = $5");
        }
    }
    if grouped > 0 {
        // By position: the bucket expression would otherwise have to be repeated verbatim.
        let positions: Vec<String> = (1..=grouped).map(|p| p.to_string()).collect();
        sql.push_str(&format!(" GROUP BY {}", positions.join(", ")));
    }
    let mut statement = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(query.org_id.clone())
        .bind(plan.granularity)
        .bind(query.from_ms)
        .bind(query.to_ms);
    for value in binds {
        statement = statement.bind(value.to_owned());
    }
    let rows = statement.fetch_all(pool).await?;
    let mut summed = Vec::with_capacity(rows.len());
    for row in rows {
        // Ungrouped sums over no rows come back as one row of NULLs.
        let Some(requests) = row.try_get::<Option<i64>, _>("requests")? else {
            continue;
        };
        let figures = match source {
            Source::Rollups { .. } => rollup_figures(&row, requests, query.latency_percentiles)?,
            Source::Tags { .. } => tag_figures(&row, requests)?,
        };
        summed.push(Summed {
            bucket_start_ms: if by_bucket { row.try_get("bucket")? } else { 0 },
            key: match group_column {
                // '' is how the rollups store "none".
                Some(_) => Some(row.try_get::<String, _>("group_key")?).filter(|k| !k.is_empty()),
                None => None,
            },
            figures,
        });
    }
    Ok(summed)
}

static TAG_SUMS: LazyLock<Vec<String>> = LazyLock::new(|| {
    [
        "requests",
        "errors",
        "input_tokens",
        "output_tokens",
        "cost_pico",
    ]
    .map(String::from)
    .to_vec()
});

fn sum(row: &AnyRow, column: &str) -> Result<i64, sqlx::Error> {
    Ok(row.try_get::<Option<i64>, _>(column)?.unwrap_or(0))
}

fn rollup_figures(
    row: &AnyRow,
    requests: i64,
    percentiles: bool,
) -> Result<UsageFigures, sqlx::Error> {
    let latency_ms_sum = sum(row, "latency_ms_sum")?;
    let mut latency = LatencyHistogram::default();
    if percentiles {
        for (bucket, count) in latency.0.iter_mut().enumerate() {
            *count = sum(row, &latency_column(bucket))?;
        }
    }
    Ok(UsageFigures {
        requests,
        errors: sum(row, "errors")?,
        input_tokens: sum(row, "input_tokens")?,
        output_tokens: sum(row, "output_tokens")?,
        cost_pico: Picodollars(sum(row, "cost_pico")?),
        cache_hits: Some(sum(row, "cache_hits")?),
        cached_tokens: Some(sum(row, "cached_tokens")?),
        saved_pico: Some(Picodollars(sum(row, "saved_pico")?)),
        latency_ms_avg: (requests > 0).then(|| latency_ms_sum as f64 / requests as f64),
        latency_ms_p50: latency.quantile(0.50),
        latency_ms_p95: latency.quantile(0.95),
    })
}

fn tag_figures(row: &AnyRow, requests: i64) -> Result<UsageFigures, sqlx::Error> {
    Ok(UsageFigures {
        requests,
        errors: sum(row, "errors")?,
        input_tokens: sum(row, "input_tokens")?,
        output_tokens: sum(row, "output_tokens")?,
        cost_pico: Picodollars(sum(row, "cost_pico")?),
        ..UsageFigures::default()
    })
}
