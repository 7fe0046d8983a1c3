//! One tenant sends the worst text the API lets through, on SQLite and on PostgreSQL: what is
//! unstorable is refused at the edge with a 400 naming the field, what is accepted is stored as
//! sent, and another tenant's usage still reaches the ledger, its rollups and its request log
//! within seconds.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Row;
use tollgate_mock_provider::{MockConfig, MockServer};

use crate::{
    Gateway, PROVIDER_KEY, fresh_postgres_database, graphql, scratch_dir, signup, write_config,
};

async fn post(url: &str, key: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn chat(model: &str, user: Option<&str>) -> Value {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    if let Some(user) = user {
        body["user"] = json!(user);
    }
    body
}

async fn count(database: &str, sql: &str, org_marker: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database).await.unwrap();
    let n: i64 = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(org_marker.to_owned())
        .fetch_one(&pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    pool.close().await;
    n
}

async fn hostile_tenant_cannot_stop_anyone_elses_usage(database: &str, config: &Path) {
    let gateway = Gateway::start(config, &[PROVIDER_KEY, ("TOLLGATE_DATABASE_URL", database)]);
    let hostile = signup(&gateway.url, "hostile@example.com").await;
    let victim = signup(&gateway.url, "victim@example.com").await;

    // Unstorable or over-long: refused at the edge, naming the field.
    let long = "m".repeat(257);
    let refused = [
        (chat("gpt-4o\u{0}", None), "model"),
        (chat(&long, None), "model"),
        (chat("openai/gpt-4o\u{1b}[2J", None), "model"),
        (chat("gpt-4o", Some("\u{0}")), "user"),
        (chat("gpt-4o", Some(&"u".repeat(10_000))), "user"),
        (chat("gpt-4o", Some("line\nbreak")), "user"),
    ];
    for (body, field) in &refused {
        let (status, answer) = post(&gateway.url, &hostile.key, body, &[]).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["param"], *field, "{answer}");
    }
    // Key tags the ledger could not hold are refused when the key is made.
    let res = reqwest::Client::new()
        .post(format!("{}/auth/keys", gateway.url))
        .bearer_auth(&hostile.access_token)
        .json(&json!({"name": "evil", "tags": {"feature": "x\u{0}"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // The worst that is accepted: every script, emoji, bidi overrides, at the length limits.
    let worst_user = format!("\u{202e}{}", "🦀é中".repeat(28));
    assert!(worst_user.len() <= 256);
    let worst_model = format!("openai/{}", "ü".repeat(124));
    let tags = (0..16)
        .map(|i| format!("t{i}={}", "v".repeat(128)))
        .collect::<Vec<_>>()
        .join(",");
    let accepted = [
        (
            chat("gpt-4o", Some(&worst_user)),
            vec![("x-tollgate-tags", tags.as_str())],
        ),
        (
            chat(&worst_model, Some("é")),
            vec![("x-request-id", "a:b.c-d_e")],
        ),
    ];
    for (body, headers) in &accepted {
        let (status, answer) = post(&gateway.url, &hostile.key, body, headers).await;
        // Answered by the provider, or refused by it; either way metered, never a 500.
        assert!(status < 500, "{body}: {status} {answer}");
    }
    for _ in 0..20 {
        let (status, _) = post(
            &gateway.url,
            &hostile.key,
            &chat("gpt-4o", Some(&worst_user)),
            &[],
        )
        .await;
        assert_eq!(status, 200);
    }

    // The other tenant's usage arrives in the ledger, the rollups and the request log.
    let (status, _) = post(
        &gateway.url,
        &victim.key,
        &chat("gpt-4o", Some("alice")),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let key = victim.key_id.clone();
    loop {
        let events = count(
            database,
            "SELECT COUNT(*) FROM usage_events WHERE key_id = $1 AND end_user = 'alice'",
            &key,
        )
        .await;
        let rolled = count(
            database,
            "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) FROM usage_rollups \
             WHERE key_id = $1 AND granularity = 'hour' AND end_user = 'alice'",
            &key,
        )
        .await;
        if events == 1 && rolled == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the other tenant's usage did not reach the ledger ({events} rows, {rolled} rolled up)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = graphql(
        &gateway.url,
        Some(&victim.access_token),
        "{ requests { items { endUser requestedModel status } } }",
    )
    .await;
    let items = log["data"]["requests"]["items"].as_array().unwrap();
    assert!(items.iter().any(|i| i["endUser"] == "alice"), "{log}");
    // Nothing of the hostile tenant shows in the victim's log.
    assert!(items.iter().all(|i| i["endUser"] != json!(worst_user)));

    // The accepted text is stored as it was sent, and nothing was set aside.
    let hostile_rows = count(
        database,
        "SELECT COUNT(*) FROM usage_events WHERE key_id = $1",
        &hostile.key_id,
    )
    .await;
    assert!(hostile_rows >= 21, "{hostile_rows}");
    let stored = count(
        database,
        "SELECT COUNT(*) FROM usage_events WHERE end_user = $1",
        &worst_user,
    )
    .await;
    assert!(stored >= 21, "{stored}");
    assert_eq!(
        count(
            database,
            "SELECT COUNT(*) FROM usage_dead_letters WHERE id <> $1",
            ""
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_tenants_strings_never_stop_another_tenants_usage() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = scratch_dir("hostile-strings");
    let config = write_config(&dir, &mock, "");

    let sqlite = format!("sqlite://{}?mode=rwc", dir.join("ledger.db").display());
    hostile_tenant_cannot_stop_anyone_elses_usage(&sqlite, &config).await;
    let postgres = fresh_postgres_database();
    hostile_tenant_cannot_stop_anyone_elses_usage(&postgres, &config).await;
    mock.stop().await;
}
