//! Guardrail policies on the real binary: set on the organization, a team and a key over REST,
//! refused naming the field (a webhook inside the network included), kept to their
//! organization, tried on a sample prompt over GraphQL; and carried to a gateway in another
//! process in each key's context, a change reaching it through Redis as for any key change.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tollgate_auth::client::HttpKeySource;
use tollgate_auth::{KeyCache, KeyVerifier};
use tollgate_common::Secret;
use tollgate_mock_provider::{MockConfig, MockServer};

use crate::{Gateway, PROVIDER_KEY, REDIS_URL, scratch_dir, write_config};

const SERVICE_TOKEN: &str = "guardrails-e2e-token";

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let res = request.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    async fn put(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, token, Some(body))
            .await
    }

    async fn graphql(&self, token: &str, query: &str, variables: Value) -> Value {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/graphql",
                token,
                Some(json!({"query": query, "variables": variables})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Signs up; (access token, team id, key id, key secret).
    async fn signup(&self, email: &str) -> (String, String, String, String) {
        let res = self
            .client
            .post(format!("{}/auth/signup", self.base))
            .json(&json!({"email": email, "password": "a long enough passphrase", "organization": email}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        let text = |v: &Value| v.as_str().unwrap().to_owned();
        (
            text(&body["access_token"]),
            text(&body["team"]["id"]),
            text(&body["api_key"]["id"]),
            text(&body["api_key"]["key"]),
        )
    }
}

/// The names of the levels `key`'s context carries, as `cache` verifies it now.
async fn level_names(cache: &KeyCache, key: &str) -> Vec<String> {
    let context = cache.verify(key).await.unwrap();
    context
        .guardrails
        .levels
        .iter()
        .map(|level| level.name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardrail_policies_are_managed_and_reach_a_gateway_in_another_process() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = scratch_dir("guardrails");
    let config = write_config(
        &dir,
        &mock,
        &format!("auth:\n  service_token: {SERVICE_TOKEN}\n"),
    );
    let tollgate = Gateway::start(&config, &[PROVIDER_KEY, ("TOLLGATE_REDIS_URL", REDIS_URL)]);
    let api = Api {
        client: reqwest::Client::new(),
        base: tollgate.url.clone(),
    };
    let (owner, team, key_id, key) = api.signup("guardrails-e2e@example.com").await;
    let (stranger, ..) = api.signup("guardrails-e2e-other@example.com").await;

    // a gateway elsewhere: keys verified over HTTP with the service token, kept for five
    // minutes, changes pushed through Redis
    let remote = Arc::new(KeyCache::new(
        Arc::new(HttpKeySource::new(&tollgate.url, Secret::new(SERVICE_TOKEN)).unwrap()),
        Duration::from_secs(300),
    ));
    tollgate_auth::feed::spawn_listener(redis::Client::open(REDIS_URL).unwrap(), remote.clone());
    assert!(level_names(&remote, &key).await.is_empty());

    // each level's policy, set and read back
    let levels = [
        (
            "/auth/guardrails".to_owned(),
            json!({"input": {"pii": {"email": "redact", "credit_card": "block"}}}),
        ),
        (
            format!("/auth/teams/{team}/guardrails"),
            json!({"input": {"deny_keywords": ["project falcon"]}}),
        ),
        (
            format!("/auth/keys/{key_id}/guardrails"),
            json!({"output": {"max_chars": 4000}, "restore_in_answer": true}),
        ),
    ];
    for (path, policy) in &levels {
        let (status, body) = api.put(path, &owner, policy.clone()).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(&api.get(path, &owner).await.1, policy);
    }

    // the remote gateway's cached context learns of the change without waiting out its TTL
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let names = level_names(&remote, &key).await;
        if names == ["organization", "team", "key"] {
            break;
        }
        assert!(Instant::now() < deadline, "still {names:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let context = remote.verify(&key).await.unwrap();
    assert_eq!(
        context.guardrails.levels[2].policy.restore_in_answer,
        Some(true)
    );

    // the key still works through this gateway with its policies set
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    let lookup = api
        .client
        .post(format!("{}/auth/internal/keys/lookup", tollgate.url))
        .header("x-tollgate-service-token", SERVICE_TOKEN)
        .json(&json!({"key_hash": hash}))
        .send()
        .await
        .unwrap();
    assert_eq!(lookup.status(), 200);
    let lookup: Value = lookup.json().await.unwrap();
    assert_eq!(lookup["key"]["guardrails"][0]["policy"], levels[0].1);
    let res = api
        .client
        .post(format!("{}/v1/chat/completions", tollgate.url))
        .bearer_auth(&key)
        .json(&json!({"model": "smart", "messages": [{"role": "user", "content": "Hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // refused, naming the field
    for (body, param) in [
        (
            json!({"input": {"deny_regex": ["(unclosed"]}}),
            "input.deny_regex[0]",
        ),
        (
            json!({"webhook": {"url": "http://169.254.169.254/latest/meta-data"}}),
            "webhook.url",
        ),
        (
            json!({"input": {"deny_keywords": vec!["z".repeat(400); 100]}}),
            "policy",
        ),
    ] {
        let (status, got) = api.put("/auth/guardrails", &owner, body).await;
        assert_eq!(status, 400, "{got}");
        assert_eq!(got["error"]["param"], param, "{got}");
    }
    let (status, got) = api
        .put(
            "/auth/guardrails",
            &owner,
            json!({"input": {"pii": {"passport": "redact"}}}),
        )
        .await;
    assert_eq!(status, 400, "{got}");

    // another organization reaches neither my team's nor my key's policy
    for (path, _) in &levels[1..] {
        assert_eq!(api.get(path, &stranger).await.0, 404, "{path}");
        assert_eq!(api.put(path, &stranger, json!({})).await.0, 404, "{path}");
    }
    assert_eq!(api.get("/auth/guardrails", &stranger).await.1, json!({}));

    // the preview answers with the text the provider would get and what the rules did
    let answer = api
        .graphql(
            &owner,
            "query($p: JSON!, $s: String!) { guardrailPreview(policy: $p, prompt: $s) { text blockedBy actions } }",
            json!({"p": levels[0].1, "s": "Mail me at jane@example.com"}),
        )
        .await;
    let preview = &answer["data"]["guardrailPreview"];
    assert!(preview["text"].is_string(), "{answer}");
    assert!(preview["actions"].is_array(), "{answer}");
    let answer = api
        .graphql(
            &owner,
            "query($l: PolicyLevelInput!) { guardrailPolicy(level: $l) }",
            json!({"l": {"teamId": team}}),
        )
        .await;
    assert_eq!(answer["data"]["guardrailPolicy"], levels[1].1);

    drop(tollgate);
    mock.stop().await;
}
