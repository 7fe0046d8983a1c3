//! The ledger, rollups and budget alerts on both databases.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rust_decimal::Decimal;
use sqlx::Row;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_auth::store::{AuthStore, NewBudget, scratch};
use tollgate_billing::alerts::{BudgetAlerts, SIGNATURE_HEADER, signature};
use tollgate_billing::usage::{Ledger, LedgerSink, UsageRecord, UsageSink};
use tollgate_common::BudgetPeriod;
use tollgate_common::config::OutboundConfig;
use tollgate_common::outbound::OutboundPolicy;

fn record(org: &str, n: u32, cost_usd: &str) -> UsageRecord {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    UsageRecord {
        event_id: format!("{org}-e{n}"),
        request_id: format!("r{n}"),
        time_ms: now,
        org_id: org.to_owned(),
        team_id: Some("team-1".into()),
        key_id: Some("key-1".into()),
        user_id: None,
        end_user: Some(format!("user-{}", n % 2)),
        tags: [("feature".to_owned(), format!("f{}", n % 2))].into(),
        endpoint: "chat.completions".into(),
        requested_model: "gpt-4o".into(),
        provider: Some("openai".into()),
        provider_model: Some("gpt-4o".into()),
        input_tokens: 100,
        output_tokens: 10,
        cached_tokens: 0,
        usage_estimated: false,
        cost_pico: Some(
            (Decimal::from_str(cost_usd).unwrap() * Decimal::from(1_000_000_000_000_i64))
                .try_into()
                .unwrap(),
        ),
        reserved_pico: 0,
        saved_pico: None,
        latency_ms: 20,
        ttft_ms: None,
        status: 200,
        error: None,
        cache: "miss".into(),
        attempts: 1,
        stream: false,
    }
}

async fn both(check: impl AsyncFn(AuthStore)) {
    check(scratch::sqlite().await.unwrap()).await;
    check(scratch::postgres().await.unwrap()).await;
}

async fn scalar(store: &AuthStore, sql: &'static str) -> i64 {
    sqlx::query(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
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

/// A webhook receiver: answers 200 and keeps each request's headers and body.
async fn receiver() -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            kept.lock()
                                .unwrap()
                                .push((head.to_ascii_lowercase(), body.to_owned()));
                            let _ = socket
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                .await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn alerts_fire_once_per_threshold_per_period_signed() {
    both(async |store: AuthStore| {
        let (org, _team) = store.create_organization("Alerts", "test").await.unwrap();
        let org_id = org.id.to_string();
        let (url, seen) = receiver().await;
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
        let seen = seen.lock().unwrap().clone();
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
