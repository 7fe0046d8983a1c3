//! The response cache through the real binary: exact and semantic hits, near misses, tenant
//! isolation, per-request controls, and the usage of a hit.

use std::time::Duration;

use sqlx::Row;
use tollgate_mock_provider::{MockConfig, MockServer};

use crate::{Gateway, config_for, scratch_dir, signup};

async fn ask(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    question: &str,
    extra: &[(&str, &str)],
) -> (u16, String, Option<String>, serde_json::Value) {
    let mut request = client
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(
            &serde_json::json!({"model": "smart", "temperature": 0, "messages": [
                {"role": "system", "content": "You answer geography questions."},
                {"role": "user", "content": question}
            ]}),
        );
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let cache = header("x-tollgate-cache").unwrap_or_default();
    let similarity = header("x-tollgate-cache-similarity");
    (status, cache, similarity, res.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_reused_by_meaning_within_an_organization_only() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = scratch_dir("cache");
    let data = dir.join("data");
    let config = dir.join("tollgate.yaml");
    std::fs::write(
        &config,
        format!(
            "{}cache:\n  mode: semantic\n  similarity_threshold: 0.9\n  lookup_budget_ms: 500\n",
            config_for(&mock)
        ),
    )
    .unwrap();
    let gateway = Gateway::start(
        &config,
        &[
            ("E2E_OPENAI_KEY", "sk-openai-e2e"),
            ("TOLLGATE_DATA_DIR", data.to_str().unwrap()),
        ],
    );
    let (mine, theirs) = (
        signup(&gateway.url, "cache-a@example.com").await,
        signup(&gateway.url, "cache-b@example.com").await,
    );
    let client = reqwest::Client::new();
    let url = gateway.url.as_str();

    let (status, cache, _, first) = ask(
        &client,
        url,
        &mine.key,
        "What is the capital of France?",
        &[],
    )
    .await;
    assert_eq!((status, cache.as_str()), (200, "miss"));
    // The answer is stored after it has been sent.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (_, cache, _, again) = ask(
        &client,
        url,
        &mine.key,
        "What is the capital of France?",
        &[],
    )
    .await;
    assert_eq!(cache, "hit-exact");
    assert_eq!(again, first, "the same answer, byte for byte");

    let (_, cache, similarity, reworded) =
        ask(&client, url, &mine.key, "what's the capital of france", &[]).await;
    assert_eq!(cache, "hit-semantic");
    assert!(similarity.unwrap().parse::<f32>().unwrap() >= 0.9);
    assert_eq!(reworded, first);

    // a streaming request gets the cached answer as a proper stream
    let res = client
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(&mine.key)
        .json(
            &serde_json::json!({"model": "smart", "temperature": 0, "stream": true,
                "stream_options": {"include_usage": true}, "messages": [
                {"role": "system", "content": "You answer geography questions."},
                {"role": "user", "content": "What is the capital of France?"}
            ]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-tollgate-cache"], "hit-exact");
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let text = res.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let events: Vec<serde_json::Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let streamed: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        streamed,
        first["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["choices"][0]["finish_reason"] == "stop")
            .count(),
        1
    );
    assert_eq!(events.last().unwrap()["usage"], first["usage"]);

    // a near miss is never served, another organization never sees the answer
    let (_, cache, _, _) = ask(
        &client,
        url,
        &mine.key,
        "What is the capital of Germany?",
        &[],
    )
    .await;
    assert_eq!(cache, "miss");
    let (_, cache, _, _) = ask(
        &client,
        url,
        &theirs.key,
        "What is the capital of France?",
        &[],
    )
    .await;
    assert_eq!(cache, "miss");

    // per-request controls
    let (_, cache, _, _) = ask(
        &client,
        url,
        &mine.key,
        "What is the capital of France?",
        &[("cache-control", "no-cache")],
    )
    .await;
    assert_eq!(cache, "bypass");
    let (_, cache, _, _) = ask(
        &client,
        url,
        &mine.key,
        "what's the capital of france",
        &[("x-tollgate-cache", "exact")],
    )
    .await;
    assert_eq!(cache, "miss", "exact only: a rewording does not match");
    let (status, _, _, body) = ask(
        &client,
        url,
        &mine.key,
        "What is the capital of France?",
        &[("x-tollgate-cache-ttl", "forever")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "x-tollgate-cache-ttl");

    // a hit is metered: a usage row with the cache result and no provider cost
    let database = format!("sqlite://{}", data.join("tollgate.db").display());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&database).await.unwrap();
    let mut hits = 0;
    for _ in 0..50 {
        hits = sqlx::query("SELECT COUNT(*) FROM usage_events WHERE cache = 'hit' AND COALESCE(cost_pico, 0) = 0 AND provider IS NULL AND saved_pico > 0")
            .fetch_one(&pool)
            .await
            .unwrap()
            .try_get::<i64, _>(0)
            .unwrap();
        if hits >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(hits, 3);
    pool.close().await;
    drop(gateway);
    mock.stop().await;
}
