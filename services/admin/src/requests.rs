//! The request log: an organization's usage events, newest first, filtered and paginated with
//! opaque cursors (`requests` in the schema). Pages come from the `(org_id, time)` index (or
//! `(org_id, guardrail, time)` when filtered by guardrail outcome): a page costs the same
//! wherever it is in the log.

use async_graphql::{Context, Enum, Error, ErrorExtensions, InputObject, Object, SimpleObject};
use sqlx::{AnyPool, Row};
use tollgate_common::{GuardrailAction, Picodollars, Taken};

use crate::errors::bad_input;
use crate::keys::Tag;
use crate::schema::{caller, service};

/// Rows per page when the caller does not say.
const DEFAULT_PAGE: i64 = 50;
/// The most rows a page may hold.
const MAX_PAGE: i64 = 200;

/// Which requests to list.
#[derive(InputObject, Default)]
pub struct RequestFilter {
    /// Unix milliseconds, inclusive.
    pub from: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub to: Option<i64>,
    /// An exact HTTP status.
    pub status: Option<i64>,
    /// Only failed (true) or only successful (false) requests.
    pub failed: Option<bool>,
    /// The model the client asked for.
    pub model: Option<String>,
    pub key_id: Option<String>,
    pub team_id: Option<String>,
    /// OpenAI's `user` field.
    pub end_user: Option<String>,
    /// Requests carrying this tag.
    pub tag: Option<Tag>,
    /// Requests whose most severe guardrail action was this one (`BLOCKED`: those refused).
    pub guardrail: Option<GuardrailOutcome>,
}

/// What a guardrail did, from the most to the least severe.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum GuardrailOutcome {
    /// Refused the request or the answer.
    Blocked,
    /// Changed by the organization's webhook.
    Modified,
    /// Personal data replaced by placeholders.
    Redacted,
    /// Cut at the policy's length.
    Truncated,
    /// A rule matched and was only recorded; or a webhook failed open.
    Flagged,
    /// Redacted values put back into the answer.
    Restored,
    /// Personal data found and left as it was.
    Logged,
}

impl GuardrailOutcome {
    pub fn taken(self) -> Taken {
        match self {
            GuardrailOutcome::Blocked => Taken::Blocked,
            GuardrailOutcome::Modified => Taken::Modified,
            GuardrailOutcome::Redacted => Taken::Redacted,
            GuardrailOutcome::Truncated => Taken::Truncated,
            GuardrailOutcome::Flagged => Taken::Flagged,
            GuardrailOutcome::Restored => Taken::Restored,
            GuardrailOutcome::Logged => Taken::Logged,
        }
    }

    fn of(taken: Taken) -> Self {
        match taken {
            Taken::Blocked => GuardrailOutcome::Blocked,
            Taken::Modified => GuardrailOutcome::Modified,
            Taken::Redacted => GuardrailOutcome::Redacted,
            Taken::Truncated => GuardrailOutcome::Truncated,
            Taken::Flagged => GuardrailOutcome::Flagged,
            Taken::Restored => GuardrailOutcome::Restored,
            Taken::Logged => GuardrailOutcome::Logged,
        }
    }

    /// The outcome the ledger stores by name (`blocked`); `None` for a name it does not know.
    fn named(name: &str) -> Option<Self> {
        serde_json::from_value::<Taken>(serde_json::Value::from(name))
            .ok()
            .map(Self::of)
    }
}

/// One thing a guardrail did to a request or its answer: which policy and rule, and the types
/// of what it found, never the values.
#[derive(SimpleObject)]
pub struct RequestGuardrailAction {
    /// The policy's name (`organization`, `team`, `key`, or the configuration's name).
    pub policy: String,
    /// The rule within it (`input.pii`, `input.deny_regex[0]`, `output.max_chars`, ...).
    pub rule: String,
    pub taken: GuardrailOutcome,
    /// The entity types found (`email`, `credit_card`, ...).
    pub entities: Vec<String>,
}

impl From<GuardrailAction> for RequestGuardrailAction {
    fn from(action: GuardrailAction) -> Self {
        RequestGuardrailAction {
            policy: action.policy,
            rule: action.rule,
            taken: GuardrailOutcome::of(action.taken),
            entities: action
                .entities
                .into_iter()
                .map(|e| e.name().to_owned())
                .collect(),
        }
    }
}

/// One request as the ledger recorded it.
#[derive(SimpleObject)]
pub struct RequestRecord {
    pub event_id: String,
    pub request_id: String,
    /// Unix milliseconds.
    pub time: i64,
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub user_id: Option<String>,
    pub end_user: Option<String>,
    pub tags: Vec<Tag>,
    /// `chat` or `embeddings`.
    pub endpoint: String,
    pub requested_model: String,
    pub provider: Option<String>,
    pub provider_model: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    /// Token counts estimated by the gateway (the provider reported none).
    pub usage_estimated: bool,
    /// USD, exact decimal; null for a model without a price.
    pub cost_usd: Option<String>,
    /// For a cache hit: what the answer cost when it was made, USD.
    pub saved_usd: Option<String>,
    pub latency_ms: i64,
    pub time_to_first_token_ms: Option<i64>,
    pub status: i64,
    pub error: Option<String>,
    /// `hit`, `miss` or `bypass`.
    pub cache: String,
    pub attempts: i64,
    pub stream: bool,
    /// The most severe thing guardrails did; null when none acted.
    pub guardrail: Option<GuardrailOutcome>,
    /// What each guardrail did, in order (at most 32 are kept per request).
    pub guardrail_actions: Vec<RequestGuardrailAction>,
}

/// One page of the log.
#[derive(SimpleObject)]
pub struct RequestPage {
    pub items: Vec<RequestRecord>,
    /// Pass as `after` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// A position in the log: the last row's time and event id.
fn parse_cursor(cursor: &str) -> Result<(i64, String), Error> {
    let bad = || bad_input("after", "Not a cursor this API gave out.");
    let (time, id) = cursor.split_once(':').ok_or_else(bad)?;
    Ok((time.parse().map_err(|_| bad())?, id.to_owned()))
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn usd(pico: Option<i64>) -> Option<String> {
    pico.map(|p| Picodollars(p).to_usd().normalize().to_string())
}

/// One page of `org`'s requests matching `filter`, newest first, after `after`.
pub async fn page(
    pool: &AnyPool,
    org: &str,
    filter: RequestFilter,
    first: Option<i64>,
    after: Option<String>,
) -> Result<RequestPage, Error> {
    let limit = first.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(bad_input(
            "first",
            format!("`first` must be from 1 to {MAX_PAGE}."),
        ));
    }
    let mut conditions = vec!["org_id = $1".to_owned()];
    let mut texts: Vec<String> = vec![org.to_owned()];
    let mut numbers: Vec<(usize, i64)> = Vec::new();
    // Placeholders are numbered in the order their values are bound below: texts, then numbers.
    let mut text = |conditions: &mut Vec<String>, column: &str, op: &str, value: String| {
        texts.push(value);
        conditions.push(format!("{column} {op} ${}", texts.len()));
    };
    if let Some(model) = filter.model {
        text(&mut conditions, "requested_model", "=", model);
    }
    if let Some(key) = filter.key_id {
        text(&mut conditions, "key_id", "=", key);
    }
    if let Some(team) = filter.team_id {
        text(&mut conditions, "team_id", "=", team);
    }
    if let Some(user) = filter.end_user {
        text(&mut conditions, "end_user", "=", user);
    }
    if let Some(outcome) = filter.guardrail {
        text(
            &mut conditions,
            "guardrail",
            "=",
            outcome.taken().name().to_owned(),
        );
    }
    if let Some(tag) = filter.tag {
        // Tags are stored as a JSON object with sorted keys; a pair appears as `"k":"v"`.
        let pair = serde_json::to_string(&serde_json::json!({ tag.key: tag.value }))
            .map_err(|e| bad_input("tag", e.to_string()))?;
        let inner = pair.trim_start_matches('{').trim_end_matches('}');
        text(
            &mut conditions,
            "tags",
            "LIKE",
            format!("%{}%", like_literal(inner)),
        );
        if let Some(last) = conditions.last_mut() {
            last.push_str(" ESCAPE '\\'");
        }
    }
    let cursor = after.as_deref().map(parse_cursor).transpose()?;
    if let Some((_, id)) = &cursor {
        texts.push(id.clone());
    }
    let cursor_id_param = texts.len();
    let mut next = texts.len();
    let mut number = |conditions: &mut Vec<String>, sql: &str, value: i64| {
        next += 1;
        numbers.push((next, value));
        conditions.push(sql.replace('?', &format!("${next}")));
    };
    if let Some(from) = filter.from {
        number(&mut conditions, "time >= ?", from);
    }
    if let Some(to) = filter.to {
        number(&mut conditions, "time < ?", to);
    }
    if let Some(status) = filter.status {
        number(&mut conditions, "status = ?", status);
    }
    match filter.failed {
        Some(true) => conditions.push("status >= 400".into()),
        Some(false) => conditions.push("status < 400".into()),
        None => {}
    }
    if let Some((time, _)) = cursor {
        // Strictly after the cursor in (time desc, event_id desc) order.
        next += 1;
        numbers.push((next, time));
        conditions.push(format!(
            "(time < ${next} OR (time = ${next} AND event_id < ${cursor_id_param}))"
        ));
    }
    next += 1;
    numbers.push((next, limit + 1));
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM usage_events WHERE {} \
         ORDER BY time DESC, event_id DESC LIMIT ${next}",
        conditions.join(" AND ")
    );
    // Only fixed fragments and `$n` parameter numbers are formatted in; values are bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for value in &texts {
        query = query.bind(value.clone());
    }
    for (_, value) in &numbers {
        query = query.bind(*value);
    }
    let rows = query.fetch_all(pool).await.map_err(internal)?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        items.push(record(row).map_err(internal)?);
    }
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| {
            items
                .last()
                .map(|last| format!("{}:{}", last.time, last.event_id))
        })
        .flatten();
    Ok(RequestPage { items, next_cursor })
}

/// The columns [`record`] reads.
const RECORD_COLUMNS: &str = "event_id, request_id, time, team_id, key_id, user_id, end_user, \
     tags, endpoint, requested_model, provider, provider_model, input_tokens, output_tokens, \
     cached_tokens, usage_estimated, cost_pico, saved_pico, latency_ms, ttft_ms, status, error, \
     cache, attempts, stream, guardrail, guardrail_actions";

/// One request of `org` by its event id; `None` when `org` has no such request.
pub async fn one(
    pool: &AnyPool,
    org: &str,
    event_id: &str,
) -> Result<Option<RequestRecord>, Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM usage_events WHERE org_id = $1 AND event_id = $2"
    )))
    .bind(org.to_owned())
    .bind(event_id.to_owned())
    .fetch_optional(pool)
    .await
    .map_err(internal)?;
    row.as_ref().map(record).transpose().map_err(internal)
}

/// A database failure: logged, and answered without its details.
fn internal(err: sqlx::Error) -> Error {
    tracing::error!(%err, "request log query failed");
    Error::new("The server had an error while reading the request log.")
        .extend_with(|_, extensions| extensions.set("code", "INTERNAL"))
}

fn record(row: &sqlx::any::AnyRow) -> Result<RequestRecord, sqlx::Error> {
    let tags: String = row.try_get("tags")?;
    let tags: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&tags).unwrap_or_default();
    let guardrail: Option<String> = row.try_get("guardrail")?;
    let actions: Vec<GuardrailAction> = row
        .try_get::<Option<String>, _>("guardrail_actions")?
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default();
    Ok(RequestRecord {
        event_id: row.try_get("event_id")?,
        request_id: row.try_get("request_id")?,
        time: row.try_get("time")?,
        team_id: row.try_get("team_id")?,
        key_id: row.try_get("key_id")?,
        user_id: row.try_get("user_id")?,
        end_user: row.try_get("end_user")?,
        tags: tags
            .into_iter()
            .map(|(key, value)| Tag { key, value })
            .collect(),
        endpoint: row.try_get("endpoint")?,
        requested_model: row.try_get("requested_model")?,
        provider: row.try_get("provider")?,
        provider_model: row.try_get("provider_model")?,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        cached_tokens: row.try_get("cached_tokens")?,
        usage_estimated: row.try_get::<i64, _>("usage_estimated")? != 0,
        cost_usd: usd(row.try_get("cost_pico")?),
        saved_usd: usd(row.try_get("saved_pico")?),
        latency_ms: row.try_get("latency_ms")?,
        time_to_first_token_ms: row.try_get("ttft_ms")?,
        status: row.try_get("status")?,
        error: row.try_get("error")?,
        cache: row.try_get("cache")?,
        attempts: row.try_get("attempts")?,
        stream: row.try_get::<i64, _>("stream")? != 0,
        guardrail: guardrail.as_deref().and_then(GuardrailOutcome::named),
        guardrail_actions: actions.into_iter().map(Into::into).collect(),
    })
}

#[derive(Default)]
pub struct RequestsQuery;

#[Object]
impl RequestsQuery {
    /// The request log, newest first: `first` rows (50 by default, at most 200) after the
    /// cursor `after`.
    async fn requests(
        &self,
        ctx: &Context<'_>,
        filter: Option<RequestFilter>,
        first: Option<i64>,
        after: Option<String>,
    ) -> Result<RequestPage, Error> {
        let org = caller(ctx)?.org.to_string();
        let filter = filter.unwrap_or_default();
        page(service(ctx).store().pool(), &org, filter, first, after).await
    }

    /// One request of the log by its event id; null when the organization has none such.
    async fn request(
        &self,
        ctx: &Context<'_>,
        event_id: String,
    ) -> Result<Option<RequestRecord>, Error> {
        let org = caller(ctx)?.org.to_string();
        one(service(ctx).store().pool(), &org, &event_id).await
    }
}
