//! Latency of a month's usage series, grouped by model, over a million requests' rollups.
//!
//! `cargo run --release -p tollgate-admin --example seed_and_query -- --database <URL>
//! [--events 1000000] [--runs 20]`, with `<URL>` such as
//! `sqlite:///tmp/tollgate-analytics.db?mode=rwc` or `postgres://postgres@127.0.0.1/analytics`
//! (the database must exist; its migrations are applied).
//!
//! Seeds one organization (`org-analytics-example`, its rows replaced on every run) with the
//! hourly and daily rollups, as the ledger would write them, of `--events` requests spread
//! over the 30 days from 2025-06-01: busier in working hours and on weekdays, over 6 models
//! of 4 providers with their list prices, 12 keys in 4 teams, each key with one named end
//! user and requests without one, and a `feature` tag of 3 values. Then times
//! `analytics::series` for the 30 days by day, grouped by model, at UTC (daily rollups) and at
//! UTC+02:00 (hourly rollups folded into local days), over `--runs` runs after one warm-up,
//! and prints the median and the slowest.

#![expect(
    clippy::print_stdout,
    reason = "an example's whole output is its report"
)]

use std::collections::HashMap;
use std::error::Error;
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use tollgate_admin::analytics::{self, Bucket, Dimension, UsageQuery};
use tollgate_auth::store::AuthStore;

const ORG: &str = "org-analytics-example";
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// 2025-06-01T00:00:00Z, a Sunday.
const START_MS: i64 = 1_748_736_000_000;
const DAYS: i64 = 30;

/// (model, provider, picodollars per input token, per output token, share of requests in %)
const MODELS: [(&str, &str, i64, i64, u64); 6] = [
    ("gpt-4o", "openai", 2_500_000, 10_000_000, 35),
    ("gpt-4o-mini", "openai", 150_000, 600_000, 30),
    ("claude-sonnet-4", "anthropic", 3_000_000, 15_000_000, 15),
    ("claude-3-5-haiku", "anthropic", 800_000, 4_000_000, 10),
    ("gemini-2.0-flash", "google", 100_000, 400_000, 7),
    ("llama-3.3-70b", "groq", 590_000, 790_000, 3),
];
const TEAMS: u64 = 4;
const KEYS: u64 = 12;
const FEATURES: [&str; 3] = ["chat", "search", "summarize"];
/// Rows per multi-row `INSERT`: 17 parameters each, well under both databases' limits.
const ROWS_PER_INSERT: usize = 500;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse()?;
    let store = AuthStore::connect(&args.database).await?;
    store.migrate().await?;
    let pool = store.pool().clone();

    let started = Instant::now();
    let (hourly, daily, tagged) = seed(&pool, args.events).await?;
    println!(
        "seeded {} requests for {ORG}: {hourly} hourly + {daily} daily rollup rows, \
         {tagged} tag rollup rows, in {:.1?}",
        args.events,
        started.elapsed()
    );

    for (offset, percentiles) in [(0, false), (120, false), (0, true), (120, true)] {
        let query = UsageQuery {
            group_by: Some(Dimension::Model),
            utc_offset_minutes: offset,
            latency_percentiles: percentiles,
            ..UsageQuery::new(
                ORG,
                Bucket::Day.floor(START_MS, offset),
                Bucket::Day.floor(START_MS + DAYS * DAY_MS, offset),
                Bucket::Day,
            )
        };
        let points = analytics::series(&pool, &query).await?;
        let requests: i64 = points.iter().map(|p| p.figures.requests).sum();
        let mut times: Vec<Duration> = Vec::with_capacity(args.runs);
        for _ in 0..args.runs {
            let started = Instant::now();
            analytics::series(&pool, &query).await?;
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "30 days by day, grouped by model, UTC offset {offset:+} min, latency percentiles \
             {percentiles}: {} points, {requests} requests; p50 {:.2?}, max {:.2?} over {} runs",
            points.len(),
            times.get(times.len() / 2).copied().unwrap_or_default(),
            times.last().copied().unwrap_or_default(),
            times.len(),
        );
    }
    pool.close().await;
    Ok(())
}

struct Args {
    database: String,
    events: u64,
    runs: usize,
}

impl Args {
    fn parse() -> Result<Args, Box<dyn Error>> {
        let mut database = None;
        let mut events = 1_000_000;
        let mut runs = 20;
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--database" => database = Some(value),
                "--events" => events = value.parse()?,
                "--runs" => runs = value.parse()?,
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        Ok(Args {
            database: database.ok_or("--database <URL> is required")?,
            events,
            runs,
        })
    }
}

/// The sums of one rollup row.
#[derive(Default, Clone, Copy)]
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
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.cache_hits += other.cache_hits;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_tokens += other.cached_tokens;
        self.cost_pico += other.cost_pico;
        self.saved_pico += other.saved_pico;
        self.latency_ms += other.latency_ms;
    }
}

/// (bucket start, model index, key index, has end user)
type Cell = (i64, usize, u64, bool);

/// Replaces the organization's rollups with those of `events` made-up requests; returns the
/// numbers of hourly, daily and tag rows written.
async fn seed(pool: &AnyPool, events: u64) -> Result<(usize, usize, usize), Box<dyn Error>> {
    let mut random = SplitMix64(0x7011_6a7e);
    // Cumulative, for a binary search per request: 720 hours.
    let hours: Vec<u64> = hour_weights()
        .iter()
        .scan(0, |sum, w| {
            *sum += w;
            Some(*sum)
        })
        .collect();
    let hour_total = hours.last().copied().unwrap_or(0);
    let shares: Vec<u64> = MODELS.iter().map(|m| m.4).collect();
    let model_total: u64 = shares.iter().sum();

    let mut hourly: HashMap<Cell, Totals> = HashMap::new();
    let mut tags: HashMap<(i64, usize), Totals> = HashMap::new();
    for _ in 0..events {
        let ticket = random.below(hour_total);
        let hour = hours.partition_point(|&end| end <= ticket);
        let model = pick(&shares, random.below(model_total));
        let (_, _, input_price, output_price, _) = MODELS[model];
        let key = random.below(KEYS);
        let named_user = random.below(10) < 7;
        let input = 200 + random.below(2_800) as i64;
        let output = 20 + random.below(780) as i64;
        let cached = if random.below(4) == 0 { input / 2 } else { 0 };
        let cost = input * input_price + output * output_price;
        let hit = random.below(100) < 5;
        let event = Totals {
            requests: 1,
            errors: i64::from(random.below(100) < 2),
            cache_hits: i64::from(hit),
            input_tokens: input,
            output_tokens: output,
            cached_tokens: cached,
            // A cache hit costs nothing and saves what the answer cost when it was made.
            cost_pico: if hit { 0 } else { cost },
            saved_pico: if hit { cost } else { 0 },
            latency_ms: if hit { 30 } else { 250 + output * 15 },
        };
        let start = START_MS + hour as i64 * HOUR_MS;
        hourly
            .entry((start, model, key, named_user))
            .or_default()
            .add(&event);
        let feature = pick(&[6, 3, 1], random.below(10));
        tags.entry((start, feature)).or_default().add(&event);
    }
    // Daily rows are the sums of the hourly ones, as the ledger's would be.
    let mut daily: HashMap<Cell, Totals> = HashMap::new();
    for ((start, model, key, named), totals) in &hourly {
        let day = start - start.rem_euclid(DAY_MS);
        daily
            .entry((day, *model, *key, *named))
            .or_default()
            .add(totals);
    }
    let mut daily_tags: HashMap<(i64, usize), Totals> = HashMap::new();
    for ((start, feature), totals) in &tags {
        let day = start - start.rem_euclid(DAY_MS);
        daily_tags.entry((day, *feature)).or_default().add(totals);
    }

    let mut tx = pool.begin().await?;
    for table in ["usage_rollups", "usage_tag_rollups"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE org_id = $1"
        )))
        .bind(ORG)
        .execute(&mut *tx)
        .await?;
    }
    for (granularity, rows) in [("hour", &hourly), ("day", &daily)] {
        let rows: Vec<(&Cell, &Totals)> = rows.iter().collect();
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            insert_rollups(&mut tx, granularity, chunk).await?;
        }
    }
    for (granularity, rows) in [("hour", &tags), ("day", &daily_tags)] {
        for ((start, feature), t) in rows {
            sqlx::query(
                "INSERT INTO usage_tag_rollups (granularity, bucket_start, org_id, tag_key, \
                 tag_value, requests, errors, input_tokens, output_tokens, cost_pico) \
                 VALUES ($1, $2, $3, 'feature', $4, $5, $6, $7, $8, $9)",
            )
            .bind(granularity)
            .bind(*start)
            .bind(ORG)
            .bind(FEATURES[*feature])
            .bind(t.requests)
            .bind(t.errors)
            .bind(t.input_tokens)
            .bind(t.output_tokens)
            .bind(t.cost_pico)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok((hourly.len(), daily.len(), tags.len() + daily_tags.len()))
}

async fn insert_rollups(
    tx: &mut sqlx::AnyConnection,
    granularity: &str,
    rows: &[(&Cell, &Totals)],
) -> Result<(), sqlx::Error> {
    const COLUMNS: usize = 17;
    let values: Vec<String> = (0..rows.len())
        .map(|r| {
            let params: Vec<String> = (1..=COLUMNS)
                .map(|c| format!("${}", r * COLUMNS + c))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO usage_rollups (granularity, bucket_start, org_id, team_id, key_id, \
         end_user, model, provider, requests, errors, cache_hits, input_tokens, output_tokens, \
         cached_tokens, cost_pico, saved_pico, latency_ms_sum) VALUES {}",
        values.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for ((start, model, key, named_user), t) in rows {
        let (model, provider, ..) = MODELS[*model];
        query = query
            .bind(granularity.to_owned())
            .bind(*start)
            .bind(ORG)
            .bind(format!("team-{}", key % TEAMS))
            .bind(format!("key-{key}"))
            .bind(if *named_user {
                format!("user-of-key-{key}")
            } else {
                String::new()
            })
            .bind(model)
            .bind(provider)
            .bind(t.requests)
            .bind(t.errors)
            .bind(t.cache_hits)
            .bind(t.input_tokens)
            .bind(t.output_tokens)
            .bind(t.cached_tokens)
            .bind(t.cost_pico)
            .bind(t.saved_pico)
            .bind(t.latency_ms);
    }
    query.execute(&mut *tx).await?;
    Ok(())
}

/// Relative traffic of each hour of the 30 days: a working-day curve peaking mid-afternoon
/// UTC, a quarter as much at night, half as much at weekends.
fn hour_weights() -> Vec<u64> {
    (0..DAYS * 24)
        .map(|h| {
            // START_MS is a Sunday: days 0, 6, 7, 13, … are weekend days.
            let weekend = matches!((h / 24) % 7, 0 | 6);
            let hour_of_day = h % 24;
            let daytime: u64 = match hour_of_day {
                0..=5 => 25,
                6..=8 => 60,
                9..=17 => 100,
                18..=21 => 70,
                _ => 40,
            };
            if weekend { daytime / 2 } else { daytime }
        })
        .collect()
}

/// The index whose cumulative weight range holds `ticket` (less than the weights' sum).
fn pick(weights: &[u64], mut ticket: u64) -> usize {
    for (i, w) in weights.iter().enumerate() {
        if ticket < *w {
            return i;
        }
        ticket -= w;
    }
    weights.len().saturating_sub(1)
}

/// A small, seeded generator: the same data on every run and database.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
