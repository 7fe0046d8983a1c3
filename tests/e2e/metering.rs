//! Budgets and the usage ledger, end to end: concurrent requests over two replicas against a
//! small budget, and a gateway killed with SIGKILL in the middle of a load run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Row;
use tollgate_mock_provider::{MockConfig, MockServer};

use crate::{
    Gateway, PROVIDER_KEY, REDIS_URL, config_for, delete_redis_key, fresh_postgres_database,
    replica_env, scratch_dir, serve_only, set_monthly_budget, signup, wait_for_usage_rows,
    write_config,
};

/// The issue's bound: 200 concurrent requests at two replicas sharing PostgreSQL and Redis,
/// against a budget that only some of them fit. Spend never exceeds the budget by more than
/// what admitted requests cost beyond their reservations; every request has exactly one
/// ledger row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_on_two_replicas_stay_within_the_budget() {
    let mock = MockServer::start(MockConfig {
        latency_ms: 30,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let config = write_config(
        &scratch_dir("budget"),
        &mock,
        "limits:\n  default: { rpm: 100000, tpm: 100000000 }\n",
    );
    let database = fresh_postgres_database();
    let shared = replica_env(&database);
    let replicas = [
        Gateway::start(&config, &shared),
        Gateway::start(&config, &shared),
    ];
    let tenant = signup(&replicas[0].url, "budget@example.com").await;
    let client = reqwest::Client::new();
    set_monthly_budget(&replicas[1].url, &tenant.access_token, "0.005").await;

    let mut calls = Vec::new();
    for i in 0..200 {
        let (client, url, key) = (
            client.clone(),
            replicas[i % 2].url.clone(),
            tenant.key.clone(),
        );
        calls.push(tokio::spawn(async move {
            let res = client
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(key)
                .header("x-request-id", format!("budget-{i}"))
                .json(&serde_json::json!({"model": "smart", "max_tokens": 20, "messages": [{"role": "user", "content": "What is the capital of France?"}]}))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap();
            (i, status, body)
        }));
    }
    let (mut answered, mut refused) = (BTreeSet::new(), 0);
    for call in calls {
        let (i, status, body) = call.await.unwrap();
        match status {
            200 => {
                answered.insert(format!("budget-{i}"));
            }
            429 => {
                refused += 1;
                assert_eq!(body["error"]["type"], "insufficient_quota", "{body}");
                assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
                let message = body["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains("the organization's monthly budget of $0.005"),
                    "{message}"
                );
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(
        !answered.is_empty() && refused > 0,
        "{} answered, {refused} refused",
        answered.len()
    );

    // Every request, answered or refused, has exactly one ledger row.
    let rows = wait_for_usage_rows(&database, "budget-", 200).await;
    let mut per_request: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, _, _) in &rows {
        *per_request.entry(id.as_str()).or_default() += 1;
    }
    assert_eq!(per_request.len(), 200);
    assert!(per_request.values().all(|n| *n == 1), "duplicated rows");
    let limit_pico = 5_000_000_000_i64;
    let spent: i64 = rows.iter().map(|(_, cost, _)| cost).sum();
    let beyond_reservations: i64 = rows
        .iter()
        .map(|(_, cost, reserved)| (cost - reserved).max(0))
        .sum();
    let paid: BTreeSet<String> = rows
        .iter()
        .filter(|(_, cost, _)| *cost > 0)
        .map(|(id, _, _)| id.clone())
        .collect();
    assert_eq!(
        paid, answered,
        "exactly the answered requests cost something"
    );
    assert!(
        spent <= limit_pico + beyond_reservations,
        "spent {spent} > limit {limit_pico} + {beyond_reservations}"
    );
    eprintln!(
        "budget $0.005: {} answered, {refused} refused, spent ${}, beyond reservations ${}",
        answered.len(),
        spent as f64 / 1e12,
        beyond_reservations as f64 / 1e12
    );
    drop(replicas);
    mock.stop().await;
}

/// One request: the id, and whether the client received the whole answer.
async fn request_once(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    id: &str,
    stream: bool,
) -> bool {
    let sent = client
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .header("x-request-id", id)
        .json(&serde_json::json!({"model": "smart", "stream": stream, "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await;
    let Ok(res) = sent else { return false };
    if res.status() != 200 {
        return false;
    }
    match res.text().await {
        Ok(text) if stream => text.trim_end().ends_with("data: [DONE]"),
        Ok(text) => serde_json::from_str::<serde_json::Value>(&text)
            .is_ok_and(|v| v["choices"][0]["message"]["content"].is_string()),
        Err(_) => false,
    }
}

/// Load on a gateway killed with SIGKILL half-way: after a restart, every request whose answer
/// a client received complete has exactly one ledger row, and no row is duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_load_loses_and_duplicates_no_usage() {
    let mock = MockServer::start(MockConfig {
        latency_ms: 5,
        chunk_delay_ms: 2,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let dir = scratch_dir("crash");
    let data = dir.join("data");
    let config = write_config(
        &dir,
        &mock,
        "limits:\n  default: { rpm: 1000000, tpm: 1000000000 }\n",
    );
    let env = [PROVIDER_KEY, ("TOLLGATE_DATA_DIR", data.to_str().unwrap())];
    let gateway = Gateway::start(&config, &env);
    let tenant = signup(&gateway.url, "crash@example.com").await;
    let complete = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..8 {
        let (url, key, complete) = (gateway.url.clone(), tenant.key.clone(), complete.clone());
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = 0;
            while started.elapsed() < Duration::from_secs(3) {
                let id = format!("crash-{w}-{n}");
                if request_once(&client, &url, &key, &id, n % 2 == 0).await {
                    complete.lock().unwrap().push(id);
                }
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut gateway = gateway;
    gateway.kill();
    for worker in workers {
        worker.await.unwrap();
    }
    let before_kill = complete.lock().unwrap().clone();
    assert!(
        before_kill.len() > 20,
        "only {} complete answers",
        before_kill.len()
    );

    // Restarted on the same data directory, it ships what the journal holds.
    let restarted = Gateway::start(&config, &env);
    let database = format!("sqlite://{}", data.join("tollgate.db").display());
    let rows = wait_for_usage_rows(&database, "crash-", before_kill.len()).await;
    let mut per_request: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, _, _) in &rows {
        *per_request.entry(id.as_str()).or_default() += 1;
    }
    let missing: Vec<&String> = before_kill
        .iter()
        .filter(|id| !per_request.contains_key(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "complete answers without a ledger row: {missing:?}"
    );
    let duplicated: Vec<_> = per_request.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "duplicated rows: {duplicated:?}");
    eprintln!(
        "killed mid-load: {} complete answers, {} ledger rows (the rest were cut off)",
        before_kill.len(),
        rows.len()
    );
    drop(restarted);
    let _ = std::fs::remove_dir_all(Path::new(&dir));
    mock.stop().await;
}

/// A split deployment: the gateway has no database and ships usage into a Redis stream; the
/// billing service consumes it into the ledger. A billing process killed and restarted loses
/// and duplicates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_gateways_ship_usage_through_redis_to_the_billing_service() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = scratch_dir("split-usage");
    let data = dir.join("data");
    let data = data.to_str().unwrap();
    let stream = format!("tollgate:test:usage:{}", std::process::id());
    let shared =
        format!("auth:\n  service_token: split-usage-token\nusage:\n  stream: \"{stream}\"\n");
    let services_config = dir.join("services.yaml");
    std::fs::write(&services_config, &shared).unwrap();
    let env = [
        ("TOLLGATE_DATA_DIR", data),
        ("TOLLGATE_REDIS_URL", REDIS_URL),
    ];
    let only = serve_only;
    let auth = Gateway::spawn(only("auth", &services_config), &env);
    let billing = Gateway::spawn(only("billing", &services_config), &env);
    let gateway_config = dir.join("gateway.yaml");
    std::fs::write(
        &gateway_config,
        format!(
            "{}auth:\n  service_url: \"{}\"\n  service_token: split-usage-token\nusage:\n  stream: \"{stream}\"\n",
            config_for(&mock),
            auth.url
        ),
    )
    .unwrap();
    let gateway = Gateway::spawn(
        only("gateway", &gateway_config),
        &[PROVIDER_KEY, ("TOLLGATE_REDIS_URL", REDIS_URL)],
    );
    let tenant = signup(&auth.url, "split-usage@example.com").await;
    let client = reqwest::Client::new();
    let send = async |from: usize, to: usize| {
        for i in from..to {
            let res = client
                .post(format!("{}/v1/chat/completions", gateway.url))
                .bearer_auth(&tenant.key)
                .header("x-request-id", format!("split-usage-{i}"))
                .header("x-tollgate-tags", "feature=search, env=e2e")
                .json(&serde_json::json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }
    };
    send(0, 20).await;
    let database = format!("sqlite://{data}/tollgate.db");
    let rows = wait_for_usage_rows(&database, "split-usage-", 20).await;
    assert_eq!(rows.len(), 20);

    // the billing service dies; the gateway keeps serving, the stream keeps the usage
    let mut billing = billing;
    billing.kill();
    send(20, 30).await;
    let _billing = Gateway::spawn(only("billing", &services_config), &env);
    let rows = wait_for_usage_rows(&database, "split-usage-", 30).await;
    let ids: BTreeSet<&str> = rows.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!((rows.len(), ids.len()), (30, 30), "every request once");
    assert!(
        rows.iter().all(|(_, cost, _)| *cost > 0),
        "every answer has its cost"
    );

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&database).await.unwrap();
    let tags: String =
        sqlx::query("SELECT tags FROM usage_events WHERE request_id = 'split-usage-3'")
            .fetch_one(&pool)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
    assert_eq!(tags, r#"{"env":"e2e","feature":"search"}"#);
    let by_tag: i64 = sqlx::query(
        "SELECT CAST(SUM(requests) AS BIGINT) FROM usage_tag_rollups \
         WHERE granularity = 'day' AND tag_key = 'feature' AND tag_value = 'search'",
    )
    .fetch_one(&pool)
    .await
    .unwrap()
    .try_get(0)
    .unwrap();
    assert_eq!(by_tag, 30);
    pool.close().await;
    drop((gateway, auth));
    delete_redis_key(&stream).await;
    mock.stop().await;
}
