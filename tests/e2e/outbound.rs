//! Alert webhooks through the real binary: `PUT /auth/alerts/webhook` refuses addresses
//! inside the network, and the billing process delivers only where `outbound.allow_hosts`
//! opens, whatever URL the database holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::Row;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Gateway, scratch_dir, signup};

/// A receiver on loopback that answers 200 to every request and counts them.
async fn receiver() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                // The alert is a small JSON object: the request is complete at its last brace.
                while !data.ends_with(b"}") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (port, calls)
}

async fn put_webhook(base: &str, token: &str, url: &str) -> (u16, serde_json::Value) {
    let res = reqwest::Client::new()
        .put(format!("{base}/auth/alerts/webhook"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "url": url }))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// A due alert for the only organization; returns its id.
async fn add_due_alert(pool: &sqlx::AnyPool) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    let now = tollgate_common::now_ms();
    sqlx::query(
        "INSERT INTO budget_alerts (budget_id, subject, period_start, threshold, id, org_id, \
         payload, created_at, next_attempt_at) \
         SELECT $1, '', 0, 100, $2, id, '{\"type\":\"budget.threshold_reached\"}', $3, $4 \
         FROM organizations",
    )
    .bind(format!("budget-{id}"))
    .bind(id.clone())
    .bind(now)
    .bind(now)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// Polls the alert until the delivery loop has tried it: (delivered, last error).
async fn wait_attempted(pool: &sqlx::AnyPool, id: &str) -> (bool, Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = sqlx::query(
            "SELECT delivered_at, attempts, last_error FROM budget_alerts WHERE id = $1",
        )
        .bind(id.to_owned())
        .fetch_one(pool)
        .await
        .unwrap();
        let attempts: i64 = row.try_get("attempts").unwrap();
        if attempts > 0 {
            let delivered: Option<i64> = row.try_get("delivered_at").unwrap();
            return (delivered.is_some(), row.try_get("last_error").unwrap());
        }
        assert!(Instant::now() < deadline, "alert {id} was never attempted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_webhooks_reach_only_the_hosts_the_operator_opened() {
    let (open_port, open_calls) = receiver().await;
    let (closed_port, closed_calls) = receiver().await;
    let dir = scratch_dir("outbound");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = dir.join("tollgate.yaml");
    std::fs::write(
        &config,
        // A provider makes the gateway ready; it is never called.
        format!(
            "providers:\n  local: {{ kind: openai, api_base: \"http://127.0.0.1:9/v1\" }}\n\
             outbound:\n  allow_hosts: [\"127.0.0.1:{open_port}\"]\n"
        ),
    )
    .unwrap();
    let data_dir = data.to_str().unwrap().to_owned();
    let gateway = Gateway::start(&config, &[("TOLLGATE_DATA_DIR", &data_dir)]);
    let tenant = signup(&gateway.url, "hooks@example.com").await;

    // Set time: the API refuses what the allow-list does not open.
    for (url, reason) in [
        (
            format!("http://127.0.0.1:{closed_port}/hook"),
            "127.0.0.1 is a loopback address",
        ),
        (
            "http://169.254.169.254/latest/meta-data".to_owned(),
            "169.254.169.254 is a cloud metadata address",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{closed_port}/"),
            "::ffff:127.0.0.1 is a loopback address",
        ),
        (
            "http://2130706433/".to_owned(),
            "127.0.0.1 is a loopback address",
        ),
        (
            "http://localhost/".to_owned(),
            "`localhost` names this machine",
        ),
    ] {
        let (status, body) = put_webhook(&gateway.url, &tenant.access_token, &url).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["error"]["param"], "url");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{url}: {message}");
    }
    let open_url = format!("http://127.0.0.1:{open_port}/hook");
    let (status, body) = put_webhook(&gateway.url, &tenant.access_token, &open_url).await;
    assert_eq!(status, 200, "{body}");

    sqlx::any::install_default_drivers();
    let database = format!("sqlite://{}", data.join("tollgate.db").display());
    let pool = sqlx::AnyPool::connect(&database).await.unwrap();

    // Delivery to the opened receiver.
    let delivered = add_due_alert(&pool).await;
    assert_eq!(wait_attempted(&pool, &delivered).await, (true, None));
    assert_eq!(open_calls.load(Ordering::SeqCst), 1);

    // A URL inside the network already in the database (written before these checks, or a
    // name since rebound) is refused as the connection would be made, with the reason kept.
    sqlx::query("UPDATE organizations SET alert_webhook_url = $1")
        .bind(format!("http://127.0.0.1:{closed_port}/hook"))
        .execute(&pool)
        .await
        .unwrap();
    let refused = add_due_alert(&pool).await;
    let (was_delivered, error) = wait_attempted(&pool, &refused).await;
    assert!(!was_delivered);
    let error = error.unwrap_or_default();
    assert!(
        error.contains("refused") && error.contains("127.0.0.1 is a loopback address"),
        "{error}"
    );
    assert_eq!(
        closed_calls.load(Ordering::SeqCst),
        0,
        "the closed receiver was reached"
    );
    pool.close().await;
    drop(gateway);
}
