//! Usage analytics on both databases, from rollups written by the billing ledger.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

use sqlx::AnyPool;
use tollgate_admin::analytics::{
    self, AnalyticsError, Bucket, Dimension, Group, Point, QueryError, UsageFigures, UsageQuery,
};
use tollgate_auth::store::{AuthStore, scratch};
use tollgate_billing::usage::{Ledger, UsageRecord};
use tollgate_common::{GuardrailAction, Picodollars, Taken};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// 2025-06-01T00:00:00Z
const D0: i64 = 1_748_736_000_000;
const D1: i64 = D0 + DAY;
const D2: i64 = D1 + DAY;
const D3: i64 = D2 + DAY;

const ORG: &str = "org-a";
const OTHER_ORG: &str = "org-b";

struct Event {
    n: u32,
    time_ms: i64,
    model: &'static str,
    provider: &'static str,
    team: &'static str,
    key: &'static str,
    end_user: Option<&'static str>,
    tags: &'static [(&'static str, &'static str)],
    status: u16,
    cache_hit: bool,
    cost_pico: i64,
    /// What guardrails did, if anything.
    guardrail: Option<Taken>,
}

/// Org A's four requests over two UTC days:
/// 1. D0 10:00 gpt-4o  team-1 key-1 u1    feature=chat
/// 2. D0 23:30 claude  team-2 key-2 —     feature=search, failed, a cache hit, blocked
/// 3. D1 01:00 gpt-4o  team-1 key-3 u2    no tags
/// 4. D1 22:00 claude  team-2 key-2 u1    feature=chat env=prod, redacted
const EVENTS: [Event; 4] = [
    Event {
        n: 1,
        time_ms: D0 + 10 * HOUR,
        model: "gpt-4o",
        provider: "openai",
        team: "team-1",
        key: "key-1",
        end_user: Some("u1"),
        tags: &[("feature", "chat")],
        status: 200,
        cache_hit: false,
        cost_pico: 1_000_000,
        guardrail: None,
    },
    Event {
        n: 2,
        time_ms: D0 + 23 * HOUR + HOUR / 2,
        model: "claude",
        provider: "anthropic",
        team: "team-2",
        key: "key-2",
        end_user: None,
        tags: &[("feature", "search")],
        status: 500,
        cache_hit: true,
        cost_pico: 20_000_000,
        guardrail: Some(Taken::Blocked),
    },
    Event {
        n: 3,
        time_ms: D1 + HOUR,
        model: "gpt-4o",
        provider: "openai",
        team: "team-1",
        key: "key-3",
        end_user: Some("u2"),
        tags: &[],
        status: 200,
        cache_hit: false,
        cost_pico: 300_000_000,
        guardrail: None,
    },
    Event {
        n: 4,
        time_ms: D1 + 22 * HOUR,
        model: "claude",
        provider: "anthropic",
        team: "team-2",
        key: "key-2",
        end_user: Some("u1"),
        tags: &[("feature", "chat"), ("env", "prod")],
        status: 200,
        cache_hit: false,
        cost_pico: 4_000_000_000,
        guardrail: Some(Taken::Redacted),
    },
];

fn record(org: &str, e: &Event) -> UsageRecord {
    UsageRecord {
        event_id: format!("{org}-e{}", e.n),
        request_id: format!("r{}", e.n),
        time_ms: e.time_ms,
        org_id: org.to_owned(),
        team_id: Some(e.team.to_owned()),
        key_id: Some(e.key.to_owned()),
        user_id: None,
        end_user: e.end_user.map(str::to_owned),
        tags: e
            .tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        endpoint: "chat.completions".into(),
        requested_model: e.model.to_owned(),
        provider: Some(e.provider.to_owned()),
        provider_model: Some(e.model.to_owned()),
        input_tokens: 100 * u64::from(e.n),
        output_tokens: 10 * u64::from(e.n),
        cached_tokens: u64::from(e.n),
        usage_estimated: false,
        cost_pico: Some(e.cost_pico),
        reserved_pico: 0,
        saved_pico: e.cache_hit.then_some(7_000),
        latency_ms: 100 * u64::from(e.n),
        ttft_ms: None,
        status: e.status,
        error: None,
        cache: if e.cache_hit { "hit" } else { "miss" }.into(),
        attempts: 1,
        stream: false,
        guardrail: e.guardrail.map(|t| t.name().to_owned()),
        guardrail_actions: e
            .guardrail
            .map(|taken| GuardrailAction {
                policy: "organization".into(),
                rule: "input.pii".into(),
                taken,
                entities: Vec::new(),
            })
            .into_iter()
            .collect(),
    }
}

/// A fresh database holding org A's events and, at the same instants and in the same
/// dimensions, org B's, each a million times dearer (so a leak shows in every figure).
async fn seeded(store: &AuthStore) -> AnyPool {
    let ledger = Ledger::new(store.pool().clone());
    let mut records: Vec<UsageRecord> = EVENTS.iter().map(|e| record(ORG, e)).collect();
    for e in &EVENTS {
        let mut other = record(OTHER_ORG, e);
        other.cost_pico = other.cost_pico.map(|c| c * 1_000_000);
        other.input_tokens *= 1_000_000;
        records.push(other);
    }
    assert_eq!(ledger.record(&records).await.unwrap().len(), 8);
    store.pool().clone()
}

async fn both(check: impl AsyncFn(AnyPool)) {
    let sqlite = scratch::sqlite().await.unwrap();
    check(seeded(&sqlite).await).await;
    let postgres = scratch::postgres().await.unwrap();
    check(seeded(&postgres).await).await;
}

fn query(from_ms: i64, to_ms: i64, bucket: Bucket) -> UsageQuery {
    UsageQuery::new(ORG, from_ms, to_ms, bucket)
}

fn grouped(mut q: UsageQuery, by: Dimension) -> UsageQuery {
    q.group_by = Some(by);
    q
}

/// (key, requests) of each group, in the order returned.
fn requests_by_key(groups: &[Group]) -> Vec<(Option<&str>, i64)> {
    groups
        .iter()
        .map(|g| (g.key.as_deref(), g.figures.requests))
        .collect()
}

/// (bucket start, key, requests) of each point.
fn points(series: &[Point]) -> Vec<(i64, Option<&str>, i64)> {
    series
        .iter()
        .map(|p| (p.bucket_start_ms, p.key.as_deref(), p.figures.requests))
        .collect()
}

#[tokio::test]
async fn totals_add_up_every_figure() {
    both(async |pool: AnyPool| {
        let groups = analytics::totals(&pool, &query(D0, D2, Bucket::Day))
            .await
            .unwrap();
        // Latencies of 100, 200, 300 and 400 ms: percentiles estimated from the rollups'
        // buckets, p50 at the top of the (135, 200] bucket, p95 within (300, 450].
        let figures = groups[0].figures;
        assert_eq!(figures.latency_ms_p50, Some(200.0));
        let p95 = figures.latency_ms_p95.unwrap();
        assert!((p95 - 420.0).abs() < 1e-6, "{p95}");
        let mut without_percentiles = groups.clone();
        without_percentiles[0].figures.latency_ms_p50 = None;
        without_percentiles[0].figures.latency_ms_p95 = None;
        assert_eq!(
            without_percentiles,
            [Group {
                key: None,
                figures: UsageFigures {
                    requests: 4,
                    errors: 1,
                    input_tokens: 1_000,
                    output_tokens: 100,
                    cost_pico: Picodollars(4_321_000_000),
                    cache_hits: Some(1),
                    cached_tokens: Some(10),
                    saved_pico: Some(Picodollars(7_000)),
                    latency_ms_avg: Some(250.0),
                    latency_ms_p50: None,
                    latency_ms_p95: None,
                },
            }]
        );
        // Money is exact, as a decimal of USD.
        assert_eq!(
            groups[0].figures.cost_pico.to_usd().normalize().to_string(),
            "0.004321"
        );
        assert_eq!(groups[0].figures.cost_pico.to_string(), "$0.004321");

        // The same from the hourly rollups (hour buckets) and from hourly rows folded into
        // days (a non-zero offset; UTC-01:00 still holds all four events in D0..D2 + 1h).
        let hourly = analytics::totals(&pool, &query(D0, D2, Bucket::Hour))
            .await
            .unwrap();
        assert_eq!(hourly, groups);
        let mut shifted = query(D0 + HOUR, D2 + HOUR, Bucket::Day);
        shifted.utc_offset_minutes = -60;
        assert_eq!(analytics::totals(&pool, &shifted).await.unwrap(), groups);

        // No usage: no groups.
        let empty = analytics::totals(&pool, &query(D3, D3 + DAY, Bucket::Day))
            .await
            .unwrap();
        assert_eq!(empty, []);
    })
    .await;
}

#[tokio::test]
async fn totals_group_by_each_dimension_largest_cost_first() {
    both(async |pool: AnyPool| {
        let range = query(D0, D2, Bucket::Day);
        let by = async |dimension: Dimension| {
            analytics::totals(&pool, &grouped(range.clone(), dimension))
                .await
                .unwrap()
        };

        let models = by(Dimension::Model).await;
        assert_eq!(
            requests_by_key(&models),
            [(Some("claude"), 2), (Some("gpt-4o"), 2)]
        );
        assert_eq!(models[0].figures.cost_pico, Picodollars(4_020_000_000));
        assert_eq!(models[1].figures.cost_pico, Picodollars(301_000_000));
        assert_eq!(models[0].figures.errors, 1);
        assert_eq!(models[0].figures.latency_ms_avg, Some(300.0));

        let providers = by(Dimension::Provider).await;
        assert_eq!(
            requests_by_key(&providers),
            [(Some("anthropic"), 2), (Some("openai"), 2)]
        );

        let teams = by(Dimension::Team).await;
        assert_eq!(
            requests_by_key(&teams),
            [(Some("team-2"), 2), (Some("team-1"), 2)]
        );

        let keys = by(Dimension::Key).await;
        assert_eq!(
            requests_by_key(&keys),
            [(Some("key-2"), 2), (Some("key-3"), 1), (Some("key-1"), 1)]
        );

        // Request 2 has no end user: its group has no key.
        let end_users = by(Dimension::EndUser).await;
        assert_eq!(
            requests_by_key(&end_users),
            [(Some("u1"), 2), (Some("u2"), 1), (None, 1)]
        );
        assert_eq!(end_users[0].figures.cost_pico, Picodollars(4_001_000_000));
    })
    .await;
}

#[tokio::test]
async fn tag_groups_include_the_requests_without_the_tag() {
    both(async |pool: AnyPool| {
        let features = analytics::totals(
            &pool,
            &grouped(query(D0, D2, Bucket::Day), Dimension::Tag("feature".into())),
        )
        .await
        .unwrap();
        assert_eq!(
            requests_by_key(&features),
            [(Some("chat"), 2), (None, 1), (Some("search"), 1)]
        );
        let chat = &features[0].figures;
        assert_eq!(chat.cost_pico, Picodollars(4_001_000_000));
        assert_eq!(chat.input_tokens, 500);
        // What tag rollups do not keep is absent, not zero.
        assert_eq!(chat.cache_hits, None);
        assert_eq!(chat.latency_ms_avg, None);
        assert_eq!(features[1].figures.cost_pico, Picodollars(300_000_000));
        assert_eq!(features[2].figures.errors, 1);

        // Per day: request 3 (untagged) on D1, beside chat.
        let mut by_env = grouped(query(D0, D2, Bucket::Day), Dimension::Tag("env".into()));
        let series = analytics::series(&pool, &by_env).await.unwrap();
        assert_eq!(
            points(&series),
            [(D0, None, 2), (D1, None, 1), (D1, Some("prod"), 1)]
        );
        // At UTC+02:00, from hourly rows.
        by_env.utc_offset_minutes = 120;
        by_env.from_ms = D0 - 2 * HOUR;
        by_env.to_ms = D3 - 2 * HOUR;
        let series = analytics::series(&pool, &by_env).await.unwrap();
        assert_eq!(
            points(&series),
            [
                (D0 - 2 * HOUR, None, 1),
                (D1 - 2 * HOUR, None, 2),
                (D2 - 2 * HOUR, Some("prod"), 1)
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn series_by_day_hour_and_local_day() {
    both(async |pool: AnyPool| {
        let by_model = grouped(query(D0, D2, Bucket::Day), Dimension::Model);
        let series = analytics::series(&pool, &by_model).await.unwrap();
        assert_eq!(
            points(&series),
            [
                (D0, Some("claude"), 1),
                (D0, Some("gpt-4o"), 1),
                (D1, Some("claude"), 1),
                (D1, Some("gpt-4o"), 1),
            ]
        );
        assert_eq!(series[3].figures.cost_pico, Picodollars(300_000_000));

        // UTC+02:00: request 2 (23:30 UTC) falls on the next local day, and request 4
        // (22:00 UTC) on the day after; days start at 22:00 UTC.
        let mut east = query(D0 - 2 * HOUR, D3 - 2 * HOUR, Bucket::Day);
        east.utc_offset_minutes = 120;
        let series = analytics::series(&pool, &east).await.unwrap();
        assert_eq!(
            points(&series),
            [
                (D0 - 2 * HOUR, None, 1),
                (D1 - 2 * HOUR, None, 2),
                (D2 - 2 * HOUR, None, 1)
            ]
        );
        assert_eq!(
            series[1].figures.cost_pico,
            Picodollars(320_000_000),
            "requests 2 and 3"
        );

        // UTC-02:00: request 3 (01:00 UTC on D1) is still on the local D0.
        let mut west = grouped(
            query(D0 + 2 * HOUR, D2 + 2 * HOUR, Bucket::Day),
            Dimension::Team,
        );
        west.utc_offset_minutes = -120;
        let series = analytics::series(&pool, &west).await.unwrap();
        assert_eq!(
            points(&series),
            [
                (D0 + 2 * HOUR, Some("team-1"), 2),
                (D0 + 2 * HOUR, Some("team-2"), 1),
                (D1 + 2 * HOUR, Some("team-2"), 1)
            ]
        );

        // UTC+05:30: local days start at 18:30 UTC; an hour counts on the local day it
        // starts in (23:00 UTC is 04:30 local on the next day).
        let mut india = query(
            D0 - 5 * HOUR - HOUR / 2,
            D2 - 5 * HOUR - HOUR / 2,
            Bucket::Day,
        );
        india.utc_offset_minutes = 330;
        let series = analytics::series(&pool, &india).await.unwrap();
        assert_eq!(
            points(&series),
            [
                (D0 - 5 * HOUR - HOUR / 2, None, 1),
                (D1 - 5 * HOUR - HOUR / 2, None, 2)
            ]
        );

        // Hour buckets are UTC hours, whatever the offset.
        let mut hours = grouped(query(D0, D1 + 2 * HOUR, Bucket::Hour), Dimension::Key);
        hours.utc_offset_minutes = 330;
        let series = analytics::series(&pool, &hours).await.unwrap();
        assert_eq!(
            points(&series),
            [
                (D0 + 10 * HOUR, Some("key-1"), 1),
                (D0 + 23 * HOUR, Some("key-2"), 1),
                (D1 + HOUR, Some("key-3"), 1)
            ]
        );
        assert_eq!(series[1].figures.cache_hits, Some(1));
        assert_eq!(series[1].figures.saved_pico, Some(Picodollars(7_000)));
    })
    .await;
}

#[tokio::test]
async fn filters_narrow_before_grouping() {
    both(async |pool: AnyPool| {
        let mut team_1 = grouped(query(D0, D2, Bucket::Day), Dimension::Key);
        team_1.filters.team_id = Some("team-1".into());
        let groups = analytics::totals(&pool, &team_1).await.unwrap();
        assert_eq!(
            requests_by_key(&groups),
            [(Some("key-3"), 1), (Some("key-1"), 1)]
        );

        let mut key_2 = query(D0, D2, Bucket::Day);
        key_2.filters.key_id = Some("key-2".into());
        let series = analytics::series(&pool, &key_2).await.unwrap();
        assert_eq!(points(&series), [(D0, None, 1), (D1, None, 1)]);

        let mut claude_u1 = grouped(query(D0, D2, Bucket::Hour), Dimension::EndUser);
        claude_u1.filters.model = Some("claude".into());
        claude_u1.filters.key_id = Some("key-2".into());
        let series = analytics::series(&pool, &claude_u1).await.unwrap();
        assert_eq!(
            points(&series),
            [(D0 + 23 * HOUR, None, 1), (D1 + 22 * HOUR, Some("u1"), 1)]
        );

        let mut nobody = query(D0, D2, Bucket::Day);
        nobody.filters.team_id = Some("team-9".into());
        assert_eq!(analytics::totals(&pool, &nobody).await.unwrap(), []);
    })
    .await;
}

#[tokio::test]
async fn totals_and_series_group_and_filter_by_guardrail_outcome() {
    both(async |pool: AnyPool| {
        // An outcome only the other organization has: it must not show up as a group.
        let mut modified = record(OTHER_ORG, &EVENTS[0]);
        modified.event_id = "org-b-modified".into();
        modified.guardrail = Some("modified".into());
        Ledger::new(pool.clone()).record(&[modified]).await.unwrap();

        let by_guardrail = grouped(query(D0, D2, Bucket::Day), Dimension::Guardrail);
        let groups = analytics::totals(&pool, &by_guardrail).await.unwrap();
        // Requests no guardrail acted on (1 and 3) are the group without a key.
        assert_eq!(
            requests_by_key(&groups),
            [(Some("redacted"), 1), (None, 2), (Some("blocked"), 1)]
        );
        assert_eq!(groups[0].figures.cost_pico, Picodollars(4_000_000_000));
        assert_eq!(groups[1].figures.cost_pico, Picodollars(301_000_000));
        assert_eq!(groups[1].figures.input_tokens, 400);
        let blocked = groups[2].figures;
        assert_eq!(blocked.cost_pico, Picodollars(20_000_000));
        assert_eq!(
            (blocked.errors, blocked.cache_hits, blocked.latency_ms_avg),
            (1, Some(1), Some(200.0))
        );

        // The same from hourly rows folded into days at UTC-01:00, and per day.
        let mut shifted = grouped(
            query(D0 + HOUR, D2 + HOUR, Bucket::Day),
            Dimension::Guardrail,
        );
        shifted.utc_offset_minutes = -60;
        assert_eq!(analytics::totals(&pool, &shifted).await.unwrap(), groups);
        let series = analytics::series(&pool, &by_guardrail).await.unwrap();
        assert_eq!(
            points(&series),
            [
                (D0, None, 1),
                (D0, Some("blocked"), 1),
                (D1, None, 1),
                (D1, Some("redacted"), 1)
            ]
        );

        // Filtered to one outcome, grouped by another dimension.
        let mut only_blocked = grouped(query(D0, D2, Bucket::Day), Dimension::Model);
        only_blocked.filters.guardrail = Some("blocked".into());
        let groups = analytics::totals(&pool, &only_blocked).await.unwrap();
        assert_eq!(requests_by_key(&groups), [(Some("claude"), 1)]);
        assert_eq!(groups[0].figures.cost_pico, Picodollars(20_000_000));
        let mut only_modified = query(D0, D2, Bucket::Day);
        only_modified.filters.guardrail = Some("modified".into());
        assert_eq!(analytics::totals(&pool, &only_modified).await.unwrap(), []);
    })
    .await;
}

#[tokio::test]
async fn another_organizations_rows_never_appear() {
    both(async |pool: AnyPool| {
        let dimensions = [
            None,
            Some(Dimension::Model),
            Some(Dimension::Provider),
            Some(Dimension::Team),
            Some(Dimension::Key),
            Some(Dimension::EndUser),
            Some(Dimension::Guardrail),
            Some(Dimension::Tag("feature".into())),
        ];
        for (bucket, offset) in [(Bucket::Day, 0), (Bucket::Day, 60), (Bucket::Hour, 0)] {
            for group_by in dimensions.clone() {
                let mut q = query(D0, D2, bucket);
                q.utc_offset_minutes = offset;
                if offset != 0 {
                    q = q.widened();
                    q.to_ms = bucket.floor(D2, offset);
                }
                q.group_by = group_by;
                let cost: i64 = analytics::series(&pool, &q)
                    .await
                    .unwrap()
                    .iter()
                    .map(|p| p.figures.cost_pico.0)
                    .sum();
                assert_eq!(cost, 4_321_000_000, "{q:?}");
                let totals = analytics::totals(&pool, &q).await.unwrap();
                assert_eq!(
                    totals.iter().map(|g| g.figures.input_tokens).sum::<i64>(),
                    1_000,
                    "{q:?}"
                );
            }
        }
        // The other organization sees its own.
        let mut theirs = query(D0, D2, Bucket::Day);
        theirs.org_id = OTHER_ORG.into();
        let groups = analytics::totals(&pool, &theirs).await.unwrap();
        assert_eq!(
            groups[0].figures.cost_pico,
            Picodollars(4_321_000_000_000_000)
        );
    })
    .await;
}

fn invalid(query: &UsageQuery) -> QueryError {
    match answer_without_database(query) {
        Err(AnalyticsError::Query(err)) => err,
        other => panic!("expected a query error, got {other:?}"),
    }
}

/// Answers `query` from a database that cannot be opened: a query error shows that the
/// query was refused before any database work, a database error that it was accepted.
fn answer_without_database(query: &UsageQuery) -> Result<Vec<Group>, AnalyticsError> {
    sqlx::any::install_default_drivers();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let pool = sqlx::any::AnyPoolOptions::new()
                .acquire_timeout(std::time::Duration::from_secs(1))
                .connect_lazy("sqlite:///nonexistent-directory/analytics.db")
                .unwrap();
            analytics::totals(&pool, query).await
        })
}

#[test]
fn queries_are_checked_and_name_the_field() {
    let day = query(D0, D2, Bucket::Day);

    let mut q = day.clone();
    q.org_id.clear();
    assert_eq!(invalid(&q), QueryError::MissingOrg);

    let q = query(D2, D0, Bucket::Day);
    assert_eq!(invalid(&q).field(), "to_ms");
    let q = query(D0, D0, Bucket::Day);
    assert!(matches!(invalid(&q), QueryError::EmptyRange { .. }));

    let q = query(-DAY, D0, Bucket::Day);
    assert_eq!(
        invalid(&q),
        QueryError::OutOfRange {
            field: "from_ms",
            value: -DAY
        }
    );

    // 31 days of hours and 400 of days are fine; a bucket more is not.
    assert!(
        answer_without_database(&query(D0, D0 + 31 * DAY, Bucket::Hour))
            .is_err_and(|e| matches!(e, AnalyticsError::Database(_)))
    );
    let q = query(D0, D0 + 31 * DAY + HOUR, Bucket::Hour);
    assert_eq!(
        invalid(&q),
        QueryError::RangeTooLong {
            bucket: Bucket::Hour,
            max_days: 31
        }
    );
    assert!(
        answer_without_database(&query(D0, D0 + 400 * DAY, Bucket::Day))
            .is_err_and(|e| matches!(e, AnalyticsError::Database(_)))
    );
    let q = query(D0, D0 + 401 * DAY, Bucket::Day);
    assert_eq!(invalid(&q).field(), "to_ms");

    let q = query(D0 + HOUR, D2, Bucket::Day);
    assert_eq!(
        invalid(&q),
        QueryError::Unaligned {
            field: "from_ms",
            value: D0 + HOUR,
            bucket: Bucket::Day
        }
    );
    let q = query(D0, D1 + 1, Bucket::Hour);
    assert_eq!(invalid(&q).field(), "to_ms");
    // UTC midnight is not a day boundary at UTC+01:00.
    let mut q = day.clone();
    q.utc_offset_minutes = 60;
    assert_eq!(invalid(&q).field(), "from_ms");
    // … until widened to local midnights.
    let widened = q.clone().widened();
    assert_eq!((widened.from_ms, widened.to_ms), (D0 - HOUR, D3 - HOUR));

    for minutes in [7, 14 * 60 + 15, -14 * 60 - 15] {
        let mut q = day.clone();
        q.utc_offset_minutes = minutes;
        assert_eq!(invalid(&q), QueryError::UtcOffset { minutes });
        assert_eq!(invalid(&q).field(), "utc_offset_minutes");
    }

    let q = grouped(day.clone(), Dimension::Tag(String::new()));
    assert_eq!(invalid(&q).field(), "group_by");
    let mut q = grouped(day.clone(), Dimension::Tag("feature".into()));
    q.filters.model = Some("gpt-4o".into());
    assert_eq!(
        invalid(&q),
        QueryError::FilterWithTag {
            field: "filters.model"
        }
    );
    let mut q = grouped(day.clone(), Dimension::Tag("feature".into()));
    q.filters.guardrail = Some("blocked".into());
    assert_eq!(invalid(&q).field(), "filters.guardrail");
}

#[test]
fn buckets_floor_and_ceil_at_the_offset() {
    assert_eq!(Bucket::Day.floor(D0 + 10 * HOUR, 0), D0);
    assert_eq!(Bucket::Day.floor(D0 + 23 * HOUR, 120), D1 - 2 * HOUR);
    assert_eq!(Bucket::Day.floor(D0 + HOUR, -120), D0 - DAY + 2 * HOUR);
    assert_eq!(Bucket::Day.ceil(D0 + 1, 0), D1);
    assert_eq!(Bucket::Day.ceil(D0, 0), D0);
    assert_eq!(Bucket::Hour.floor(D0 + HOUR + 5, 330), D0 + HOUR);
    assert_eq!(Bucket::Hour.ceil(D0 + HOUR + 5, 330), D0 + 2 * HOUR);
}
