//! The ledger, rollups and budget alerts on both databases.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use std::sync::Arc;

use common::{OK, Receiver, both, usage_record};
use rust_decimal::Decimal;
use sqlx::Row;
use tollgate_auth::store::{AuthStore, NewBudget, scratch};
use tollgate_billing::alerts::{BudgetAlerts, SIGNATURE_HEADER, signature};
use tollgate_billing::usage::{Ledger, LedgerSink, UsageRecord, UsageSink};
use tollgate_common::config::OutboundConfig;
use tollgate_common::outbound::OutboundPolicy;
use tollgate_common::{BudgetPeriod, EntityKind, GuardrailAction, Taken, now_ms};

/// Request `r{n}` of `org`, now: two end users and two `feature` tag values, alternating.
fn record(org: &str, n: u32, cost_usd: &str) -> UsageRecord {
    UsageRecord {
        request_id: format!("r{n}"),
        team_id: Some("team-1".into()),
        key_id: Some("key-1".into()),
        end_user: Some(format!("user-{}", n % 2)),
        tags: [("feature".to_owned(), format!("f{}", n % 2))].into(),
        endpoint: "chat.completions".into(),
        requested_model: "gpt-4o".into(),
        ..usage_record(org, &format!("{org}-e{n}"), now_ms(), cost_usd)
    }
}

async fn scalar(store: &AuthStore, sql: &'static str) -> i64 {
    sqlx::query(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// Replays the dead letters named by `ids` (every waiting one when empty), with their text
/// repaired if `repair_text`: how many were stored and how many refused again.
async fn replay(
    sink: &LedgerSink,
    ledger: &Ledger,
    ids: &[String],
    repair_text: bool,
) -> (usize, usize) {
    let report = sink
        .dead_letters()
        .replay(ledger, ids, repair_text)
        .await
        .unwrap();
    (report.stored, report.refused)
}

#[tokio::test]
async fn a_batch_shipped_twice_is_stored_and_rolled_up_once() {
    both(async |store: AuthStore| {
        let ledger = Ledger::new(store.pool().clone());
        let batch: Vec<UsageRecord> = (0..5).map(|n| record("org-a", n, "0.001")).collect();
        assert_eq!(ledger.record(&batch).await.unwrap().len(), 5);
        // Again, and overlapping, with a duplicate inside the batch itself.
        let mut again = batch[3..].to_vec();
        again.push(record("org-a", 5, "0.001"));
        again.push(record("org-a", 5, "0.001"));
        assert_eq!(ledger.record(&again).await.unwrap().len(), 1);
        assert_eq!(scalar(&store, "SELECT COUNT(*) FROM usage_events").await, 6);
        assert_eq!(
            scalar(&store, "SELECT CAST(SUM(requests) AS BIGINT) FROM usage_rollups WHERE granularity = 'day'").await,
            6
        );
        assert_eq!(
            scalar(&store, "SELECT CAST(SUM(cost_pico) AS BIGINT) FROM usage_rollups WHERE granularity = 'hour'").await,
            6_000_000_000
        );
        // One row per tag value per bucket: f0 for even, f1 for odd requests.
        assert_eq!(
            scalar(&store, "SELECT CAST(SUM(requests) AS BIGINT) FROM usage_tag_rollups WHERE granularity = 'day' AND tag_value = 'f0'").await,
            3
        );
        assert_eq!(ledger.rows_for_request("org-a", "r5").await.unwrap(), 1);
    })
    .await;
}

/// Batches as large as the shipper's go in many rows to a statement: every row lands with its
/// own values, and a batch that overlaps what is stored adds only its new rows.
#[tokio::test]
async fn large_batches_keep_each_rows_values_and_skip_stored_rows() {
    both(async |store: AuthStore| {
        let ledger = Ledger::new(store.pool().clone());
        let batch: Vec<UsageRecord> = (0..150)
            .map(|n| {
                let mut r = record("org-b", n, "0.000001");
                r.input_tokens = u64::from(n);
                r
            })
            .collect();
        assert_eq!(ledger.record(&batch).await.unwrap().len(), 150);
        let rows = sqlx::query(
            "SELECT request_id, input_tokens, end_user FROM usage_events WHERE org_id = 'org-b'",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(rows.len(), 150);
        for row in rows {
            let request: String = row.try_get(0).unwrap();
            let n: i64 = request.trim_start_matches('r').parse().unwrap();
            assert_eq!(row.try_get::<i64, _>(1).unwrap(), n, "{request}");
            let user: String = row.try_get(2).unwrap();
            assert_eq!(user, format!("user-{}", n % 2), "{request}");
        }
        // 100 already stored, 50 new.
        let overlapping: Vec<UsageRecord> = (50..200).map(|n| record("org-b", n, "0.000001")).collect();
        let new = ledger.record(&overlapping).await.unwrap();
        assert_eq!(new.len(), 50);
        let mut numbers: Vec<u32> = new
            .iter()
            .map(|r| r.event_id.trim_start_matches("org-b-e").parse().unwrap())
            .collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (150..200).collect::<Vec<_>>());
        assert_eq!(
            scalar(&store, "SELECT COUNT(*) FROM usage_events WHERE org_id = 'org-b'").await,
            200
        );
        assert_eq!(
            scalar(&store, "SELECT CAST(SUM(requests) AS BIGINT) FROM usage_rollups WHERE granularity = 'day' AND org_id = 'org-b'").await,
            200
        );
    })
    .await;
}

/// What guardrails did is stored with each row (the outcome, and the actions as JSON), and the
/// rollups keep requests with different outcomes apart, so that their sums stay exact.
#[tokio::test]
async fn guardrail_outcomes_are_stored_and_rolled_up_apart() {
    both(async |store: AuthStore| {
        let ledger = Ledger::new(store.pool().clone());
        let actions = vec![
            GuardrailAction {
                policy: "organization".into(),
                rule: "input.pii".into(),
                taken: Taken::Redacted,
                entities: vec![EntityKind::Email, EntityKind::Phone],
            },
            GuardrailAction {
                policy: "team".into(),
                rule: "output.deny_keywords".into(),
                taken: Taken::Flagged,
                entities: Vec::new(),
            },
        ];
        let redacted = UsageRecord {
            guardrail: Some("redacted".into()),
            guardrail_actions: actions.clone(),
            ..record("org-g", 0, "0.002")
        };
        let blocked = UsageRecord {
            status: 400,
            error: Some("guardrail_violation".into()),
            cost_pico: None,
            guardrail: Some("blocked".into()),
            guardrail_actions: vec![GuardrailAction {
                policy: "key".into(),
                rule: "input.deny_regex[0]".into(),
                taken: Taken::Blocked,
                entities: Vec::new(),
            }],
            ..record("org-g", 1, "0")
        };
        // Same team, key, end user (n % 2 = 0), model and provider as the redacted one: only
        // the outcome tells their rollup rows apart.
        let plain = record("org-g", 2, "0.001");
        ledger.record(&[redacted, blocked, plain]).await.unwrap();

        let rows = sqlx::query(
            "SELECT request_id, guardrail, guardrail_actions FROM usage_events \
             WHERE org_id = 'org-g' ORDER BY request_id",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let stored: Vec<(String, Option<String>, Option<String>)> = rows
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect();
        assert_eq!(stored[0].1.as_deref(), Some("redacted"));
        let back: Vec<GuardrailAction> =
            serde_json::from_str(stored[0].2.as_deref().unwrap()).unwrap();
        assert_eq!(back, actions);
        // Entity types by name, never values.
        assert!(
            stored[0]
                .2
                .as_deref()
                .unwrap()
                .contains(r#""entities":["email","phone"]"#)
        );
        assert_eq!(stored[1].1.as_deref(), Some("blocked"));
        assert_eq!(stored[2], ("r2".to_owned(), None, None));

        let by_outcome = sqlx::query(
            "SELECT guardrail, CAST(SUM(requests) AS BIGINT), CAST(SUM(cost_pico) AS BIGINT), \
             CAST(SUM(errors) AS BIGINT) FROM usage_rollups \
             WHERE org_id = 'org-g' AND granularity = 'day' GROUP BY guardrail ORDER BY guardrail",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let by_outcome: Vec<(String, i64, i64, i64)> = by_outcome
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
            .collect();
        assert_eq!(
            by_outcome,
            [
                ("".to_owned(), 1, 1_000_000_000, 0),
                ("blocked".to_owned(), 1, 0, 1),
                ("redacted".to_owned(), 1, 2_000_000_000, 0),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn alerts_fire_once_per_threshold_per_period_signed() {
    both(async |store: AuthStore| {
        let (org, _team) = store.create_organization("Alerts", "test").await.unwrap();
        let org_id = org.id.to_string();
        let receiver = Receiver::start(OK.into()).await;
        let url = receiver.url();
        let secret = "whsec_test_secret";
        store
            .set_alert_webhook(org.id, Some((&url, secret)), "test")
            .await
            .unwrap();
        let (budget, _) = store
            .create_budget(
                org.id,
                NewBudget {
                    scope: "organization".into(),
                    target: String::new(),
                    period: BudgetPeriod::Monthly,
                    limit_usd: Decimal::ONE,
                    thresholds: vec![50, 80, 100],
                },
                "test",
            )
            .await
            .unwrap();
        // The receiver listens on loopback, which only an allow-list entry opens.
        let receiver_address = url.trim_start_matches("http://").trim_end_matches("/hook");
        let outbound = OutboundPolicy::new(&OutboundConfig {
            allow_hosts: vec![receiver_address.parse().unwrap()],
        });
        let alerts = Arc::new(BudgetAlerts::new(store.pool().clone(), &outbound).unwrap());
        let sink = LedgerSink::new(Ledger::new(store.pool().clone()), Some(alerts.clone()));
        let thresholds = async || {
            let rows = sqlx::query(
                "SELECT threshold FROM budget_alerts WHERE budget_id = $1 ORDER BY threshold",
            )
            .bind(budget.id.clone())
            .fetch_all(store.pool())
            .await
            .unwrap();
            rows.iter()
                .map(|r| r.try_get::<i64, _>(0).unwrap())
                .collect::<Vec<_>>()
        };
        sink.ship(&[record(&org_id, 1, "0.30")]).await.unwrap();
        assert_eq!(thresholds().await, Vec::<i64>::new());
        sink.ship(&[record(&org_id, 2, "0.30")]).await.unwrap(); // 60%
        assert_eq!(thresholds().await, [50]);
        let third = [record(&org_id, 3, "0.25")]; // 85%
        sink.ship(&third).await.unwrap();
        sink.ship(&third).await.unwrap(); // shipped again: no new spend, no new alert
        sink.ship(&[record(&org_id, 4, "0.01")]).await.unwrap(); // 86%: nothing new
        assert_eq!(thresholds().await, [50, 80]);
        sink.ship(&[record(&org_id, 5, "0.20")]).await.unwrap(); // 106%
        assert_eq!(thresholds().await, [50, 80, 100]);

        assert_eq!(alerts.deliver_due().await.unwrap(), 3);
        assert_eq!(
            alerts.deliver_due().await.unwrap(),
            0,
            "delivered alerts are not sent again"
        );
        let seen = receiver.requests();
        assert_eq!(seen.len(), 3);
        let mut reached = Vec::new();
        for (head, body) in &seen {
            let header = head
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{SIGNATURE_HEADER}:")))
                .unwrap()
                .trim()
                .to_owned();
            let t: i64 = header
                .trim_start_matches("t=")
                .split(',')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(
                header,
                signature(secret, t, body),
                "signed with the organization's secret"
            );
            let event: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(event["type"], "budget.threshold_reached");
            assert_eq!(event["organization_id"], org_id);
            reached.push(event["threshold_percent"].as_i64().unwrap());
        }
        reached.sort_unstable();
        assert_eq!(reached, [50, 80, 100]);
    })
    .await;
}

/// Makes the database refuse any usage row for the model `poison`, as it would refuse text it
/// cannot hold: a trigger, since a record SQLite refuses by its own rules is hard to make.
async fn refuse_poison(store: &AuthStore, on: bool) {
    let sqlite = store.pool().connect_options().database_url.scheme() == "sqlite";
    let statements: &[&str] = match (sqlite, on) {
        (true, true) => &[
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON usage_events \
             WHEN NEW.requested_model = 'poison' BEGIN SELECT RAISE(ABORT, 'poison refused'); END",
        ],
        (true, false) => &["DROP TRIGGER refuse_poison"],
        (false, true) => &[
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN \
             IF NEW.requested_model = 'poison' THEN \
             RAISE EXCEPTION 'poison refused' USING ERRCODE = 'check_violation'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON usage_events \
             FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        ],
        (false, false) => &["DROP TRIGGER refuse_poison ON usage_events"],
    };
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(*sql))
            .execute(store.pool())
            .await
            .unwrap();
    }
}

/// One record the database refuses, in a batch as large as the shipper's, is set aside with
/// the reason; every other record of the batch is stored and rolled up, and shipping goes on.
/// A replay stores it once the cause is gone.
#[tokio::test]
async fn a_record_the_ledger_refuses_is_set_aside_and_the_rest_is_stored() {
    both(async |store: AuthStore| {
        refuse_poison(&store, true).await;
        let sink = LedgerSink::new(Ledger::new(store.pool().clone()), None);
        let mut batch: Vec<UsageRecord> = (0..2048).map(|n| record("org-d", n, "0.001")).collect();
        batch[700].requested_model = "poison".into();
        batch[2047].requested_model = "poison".into();
        sink.ship(&batch).await.unwrap();
        assert_eq!(
            scalar(&store, "SELECT COUNT(*) FROM usage_events").await,
            2046
        );
        assert_eq!(
            scalar(
                &store,
                "SELECT CAST(SUM(requests) AS BIGINT) FROM usage_rollups WHERE granularity = 'day'"
            )
            .await,
            2046
        );
        let letters = sink.dead_letters().list(false, 10).await.unwrap();
        let ids: Vec<&str> = letters.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids.len(), 2, "{ids:?}");
        assert!(ids.contains(&"org-d-e700") && ids.contains(&"org-d-e2047"));
        assert!(letters.iter().all(|l| l.reason.contains("poison refused")));
        assert_eq!(letters[0].org_id.as_deref(), Some("org-d"));

        // Shipping the same batch again (a crash before the journal position was saved)
        // changes nothing, and the next batch ships as usual.
        sink.ship(&batch).await.unwrap();
        sink.ship(&[record("org-d", 5000, "0.001")]).await.unwrap();
        assert_eq!(
            scalar(&store, "SELECT COUNT(*) FROM usage_events").await,
            2047
        );
        assert_eq!(sink.dead_letters().list(false, 10).await.unwrap().len(), 2);

        // Replayed while the cause remains: refused again, still waiting.
        let ledger = Ledger::new(store.pool().clone());
        assert_eq!(replay(&sink, &ledger, &[], false).await, (0, 2));
        refuse_poison(&store, false).await;
        assert_eq!(
            replay(&sink, &ledger, &["org-d-e700".to_owned()], false).await,
            (1, 0)
        );
        assert_eq!(replay(&sink, &ledger, &[], false).await.0, 1);
        assert_eq!(
            scalar(&store, "SELECT COUNT(*) FROM usage_events").await,
            2049
        );
        assert!(
            sink.dead_letters()
                .list(false, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(sink.dead_letters().list(true, 10).await.unwrap().len(), 2);
    })
    .await;
}

/// Text PostgreSQL cannot hold (NUL) is refused by the database itself: the record is set
/// aside, the others are stored, and a replay with repair stores it without the NUL.
#[tokio::test]
async fn text_postgres_cannot_hold_is_set_aside_then_repaired() {
    let store = scratch::postgres().await.unwrap();
    let sink = LedgerSink::new(Ledger::new(store.pool().clone()), None);
    let mut batch: Vec<UsageRecord> = (0..40).map(|n| record("org-n", n, "0.001")).collect();
    batch[3].end_user = Some("evil\u{0}user".into());
    batch[9].tags.insert("feature".into(), "x\u{0}".into());
    sink.ship(&batch).await.unwrap();
    assert_eq!(
        scalar(&store, "SELECT COUNT(*) FROM usage_events").await,
        38
    );
    let letters = sink.dead_letters().list(false, 10).await.unwrap();
    assert_eq!(letters.len(), 2);
    let ledger = Ledger::new(store.pool().clone());
    assert_eq!(replay(&sink, &ledger, &[], false).await, (0, 2));
    assert_eq!(replay(&sink, &ledger, &[], true).await, (2, 0));
    let users: i64 = scalar(
        &store,
        "SELECT COUNT(*) FROM usage_events WHERE end_user = 'eviluser'",
    )
    .await;
    assert_eq!(users, 1);
}

/// A failure that retrying can cure is not a refusal: the batch is reported failed (it stays
/// in the journal) and nothing is set aside.
#[tokio::test]
async fn an_unreachable_database_is_retried_not_set_aside() {
    let store = scratch::sqlite().await.unwrap();
    let sink = LedgerSink::new(Ledger::new(store.pool().clone()), None);
    store.pool().close().await;
    assert!(sink.ship(&[record("org-u", 1, "0.001")]).await.is_err());
}

/// An entry in the usage stream that is not a usage record is set aside, acknowledged and
/// removed; the records around it reach the ledger.
#[tokio::test]
async fn an_unreadable_stream_entry_is_set_aside_and_the_stream_goes_on() {
    let store = scratch::sqlite().await.unwrap();
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stream = format!("tollgate:test-usage:{}", uuid::Uuid::now_v7());
    let good = serde_json::to_string(&record("org-s", 1, "0.001")).unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("r")
        .arg("{not a record")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("r")
        .arg(&good)
        .query_async(&mut conn)
        .await
        .unwrap();
    let sink = Arc::new(LedgerSink::new(Ledger::new(store.pool().clone()), None));
    let consumer = tokio::spawn(tollgate_billing::usage::stream::consume(
        client,
        stream.clone(),
        "test".into(),
        sink.clone(),
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while scalar(&store, "SELECT COUNT(*) FROM usage_events").await < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the stream was not consumed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    consumer.abort();
    let letters = sink.dead_letters().list(false, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert!(letters[0].id.starts_with("stream:"));
    assert!(letters[0].record.contains("not a record"));
    let left: i64 = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let _: i64 = redis::cmd("DEL")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
}
