//! Usage analytics in the GraphQL schema: the inputs and figures of `usageTotals` and
//! `usageSeries`, over [`crate::analytics`].

use async_graphql::{Context, Enum, Error, ErrorExtensions, InputObject, Object, SimpleObject};
use sqlx::AnyPool;
use tollgate_common::Picodollars;

use crate::analytics::{
    self, AnalyticsError, Bucket, Dimension, Group, Point, UsageFigures, UsageFilters, UsageQuery,
};
use crate::errors::bad_input;
use crate::requests::GuardrailOutcome;
use crate::schema::{caller, service};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum UsageBucket {
    /// UTC hours.
    Hour,
    /// Days from local midnight at `utcOffsetMinutes`.
    Day,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum UsageDimension {
    /// The model the client asked for.
    Model,
    Provider,
    Team,
    Key,
    /// OpenAI's `user` field.
    EndUser,
    /// The most severe thing guardrails did to each request (`blocked`, `redacted`, ...);
    /// requests no guardrail acted on have a null key.
    Guardrail,
    /// The values of the tag named by `tagKey`.
    Tag,
}

/// Which usage to sum: a time range (moved out to whole buckets), grouping and filters.
#[derive(InputObject)]
pub struct UsageInput {
    /// Unix milliseconds, inclusive.
    pub from: i64,
    /// Unix milliseconds, exclusive.
    pub to: i64,
    #[graphql(default_with = "UsageBucket::Day")]
    pub bucket: UsageBucket,
    /// Minutes east of UTC where a day starts (+120 for UTC+02:00).
    #[graphql(default)]
    pub utc_offset_minutes: i32,
    pub group_by: Option<UsageDimension>,
    /// The tag key, with `groupBy: TAG`.
    pub tag_key: Option<String>,
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub model: Option<String>,
    /// Only requests whose most severe guardrail action was this one.
    pub guardrail: Option<GuardrailOutcome>,
}

/// What a set of requests amounted to. Groups by tag lack cache hits, cached tokens, savings
/// and latency (null).
#[derive(SimpleObject)]
#[graphql(name = "UsageFigures")]
pub struct Figures {
    pub requests: i64,
    /// Requests answered with an HTTP status of 400 or more.
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// USD, exact decimal.
    pub cost_usd: String,
    pub cache_hits: Option<i64>,
    pub cached_tokens: Option<i64>,
    /// What cache hits would have cost upstream, USD, exact decimal.
    pub saved_usd: Option<String>,
    pub latency_ms_avg: Option<f64>,
    /// Median time to the full answer, estimated from latency buckets (±20 %).
    #[graphql(name = "latencyMsP50")]
    pub latency_ms_p50: Option<f64>,
    /// 95th percentile of the time to the full answer, estimated likewise.
    #[graphql(name = "latencyMsP95")]
    pub latency_ms_p95: Option<f64>,
}

fn usd(amount: Picodollars) -> String {
    amount.to_usd().normalize().to_string()
}

impl From<UsageFigures> for Figures {
    fn from(figures: UsageFigures) -> Self {
        Figures {
            requests: figures.requests,
            errors: figures.errors,
            input_tokens: figures.input_tokens,
            output_tokens: figures.output_tokens,
            cost_usd: usd(figures.cost_pico),
            cache_hits: figures.cache_hits,
            cached_tokens: figures.cached_tokens,
            saved_usd: figures.saved_pico.map(usd),
            latency_ms_avg: figures.latency_ms_avg,
            latency_ms_p50: figures.latency_ms_p50,
            latency_ms_p95: figures.latency_ms_p95,
        }
    }
}

/// One group's figures over the whole range.
#[derive(SimpleObject)]
pub struct UsageGroup {
    /// The group's value (null when ungrouped, or for requests without one).
    pub key: Option<String>,
    pub figures: Figures,
}

/// One group's figures in one bucket.
#[derive(SimpleObject)]
pub struct UsagePoint {
    /// The bucket's first instant, Unix milliseconds.
    pub bucket_start: i64,
    pub key: Option<String>,
    pub figures: Figures,
}

/// The analytics query for `org` that `input` asks.
fn query(org: String, input: UsageInput) -> Result<UsageQuery, Error> {
    let group_by = match (input.group_by, input.tag_key) {
        (Some(UsageDimension::Tag), Some(key)) => Some(Dimension::Tag(key)),
        (Some(UsageDimension::Tag), None) => {
            return Err(bad_input("tagKey", "Grouping by tag needs `tagKey`."));
        }
        (Some(UsageDimension::Model), _) => Some(Dimension::Model),
        (Some(UsageDimension::Provider), _) => Some(Dimension::Provider),
        (Some(UsageDimension::Team), _) => Some(Dimension::Team),
        (Some(UsageDimension::Key), _) => Some(Dimension::Key),
        (Some(UsageDimension::EndUser), _) => Some(Dimension::EndUser),
        (Some(UsageDimension::Guardrail), _) => Some(Dimension::Guardrail),
        (None, _) => None,
    };
    let bucket = match input.bucket {
        UsageBucket::Hour => Bucket::Hour,
        UsageBucket::Day => Bucket::Day,
    };
    let mut query = UsageQuery::new(org, input.from, input.to, bucket);
    query.utc_offset_minutes = input.utc_offset_minutes;
    query.group_by = group_by;
    query.filters = UsageFilters {
        team_id: input.team_id,
        key_id: input.key_id,
        model: input.model,
        guardrail: input.guardrail.map(|g| g.taken().name().to_owned()),
    };
    // Only a valid offset can widen the range; an invalid one is reported by the query.
    Ok(
        // `unsigned_abs`: the absolute value of `i32::MIN` does not fit an `i32`.
        if query.utc_offset_minutes.unsigned_abs()
            <= analytics::MAX_UTC_OFFSET_MINUTES.unsigned_abs()
        {
            query.widened()
        } else {
            query
        },
    )
}

fn analytics_error(error: AnalyticsError) -> Error {
    match error {
        AnalyticsError::Query(problem) => {
            bad_input(graphql_field(problem.field()), problem.to_string())
        }
        AnalyticsError::Database(err) => {
            tracing::error!(%err, "usage analytics failed");
            Error::new("The server had an error while reading usage.")
                .extend_with(|_, extensions| extensions.set("code", "INTERNAL"))
        }
    }
}

/// The GraphQL input field for an analytics query field.
fn graphql_field(field: &str) -> &'static str {
    match field {
        "from_ms" => "from",
        "to_ms" => "to",
        "utc_offset_minutes" => "utcOffsetMinutes",
        "group_by" => "tagKey",
        "filters.team_id" => "teamId",
        "filters.key_id" => "keyId",
        "filters.model" => "model",
        "filters.guardrail" => "guardrail",
        _ => "input",
    }
}

/// Whether the selection asks for a latency percentile (they cost more to read).
pub fn wants_percentiles(ctx: &Context<'_>) -> bool {
    let figures = ctx.look_ahead().field("figures");
    figures.field("latencyMsP50").exists() || figures.field("latencyMsP95").exists()
}

pub async fn totals(
    pool: &AnyPool,
    org: String,
    input: UsageInput,
    percentiles: bool,
) -> Result<Vec<UsageGroup>, Error> {
    let mut query = query(org, input)?;
    query.latency_percentiles = percentiles;
    let groups = analytics::totals(pool, &query)
        .await
        .map_err(analytics_error)?;
    Ok(groups
        .into_iter()
        .map(|Group { key, figures }| UsageGroup {
            key,
            figures: figures.into(),
        })
        .collect())
}

pub async fn series(
    pool: &AnyPool,
    org: String,
    input: UsageInput,
    percentiles: bool,
) -> Result<Vec<UsagePoint>, Error> {
    let mut query = query(org, input)?;
    query.latency_percentiles = percentiles;
    let points = analytics::series(pool, &query)
        .await
        .map_err(analytics_error)?;
    Ok(points
        .into_iter()
        .map(
            |Point {
                 bucket_start_ms,
                 key,
                 figures,
             }| UsagePoint {
                bucket_start: bucket_start_ms,
                key,
                figures: figures.into(),
            },
        )
        .collect())
}

// Two slices rather than one, so that the schema keeps listing `usageSeries` after the request
// log, as `api-schema/schema.graphql` always has.
#[derive(Default)]
pub struct UsageTotalsQuery;

#[Object]
impl UsageTotalsQuery {
    /// Usage over a time range, one entry per group (one in all when ungrouped), costliest
    /// first. Read from the hourly and daily rollups, never the raw ledger.
    async fn usage_totals(
        &self,
        ctx: &Context<'_>,
        input: UsageInput,
    ) -> Result<Vec<UsageGroup>, Error> {
        let org = caller(ctx)?.org.to_string();
        let percentiles = wants_percentiles(ctx);
        totals(service(ctx).store().pool(), org, input, percentiles).await
    }
}

#[derive(Default)]
pub struct UsageSeriesQuery;

#[Object]
impl UsageSeriesQuery {
    /// Usage per time bucket and group, oldest first.
    async fn usage_series(
        &self,
        ctx: &Context<'_>,
        input: UsageInput,
    ) -> Result<Vec<UsagePoint>, Error> {
        let org = caller(ctx)?.org.to_string();
        let percentiles = wants_percentiles(ctx);
        series(service(ctx).store().pool(), org, input, percentiles).await
    }
}
