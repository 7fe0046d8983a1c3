//! Routing, retries, fail-over and circuit breaking against mock providers on real sockets.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use std::time::Duration;

use std::sync::Arc;

use common::{TestGateway, hello, mock};
use tollgate_common::KeyContext;
use tollgate_gateway::pipeline::Authenticate;
use tollgate_gateway::{GatewayError, Stages};
use tollgate_mock_provider::MockConfig;

fn config(failure_status: u16, fail_first: u32) -> MockConfig {
    MockConfig {
        failure_status,
        fail_first,
        ..MockConfig::default()
    }
}

/// Model `m` at provider `a`, then `b` (the mocks of those names), each tried once, with
/// the circuit breaker settings `circuit_breaker`.
fn a_then_b(circuit_breaker: &str) -> String {
    format!(
        r#"
providers:
  a: {{ kind: openai, api_base: "{{mock:a}}/v1", api_key: k }}
  b: {{ kind: openai, api_base: "{{mock:b}}/v1", api_key: k }}
models:
  - name: m
    retry: {{ attempts: 1 }}
    circuit_breaker: {circuit_breaker}
    targets: [ {{ provider: a, model: gpt-4o }}, {{ provider: b, model: gpt-4o }} ]
"#
    )
}

/// The provider that answered a chat request for `m` sent with bearer `token`.
async fn provider_for(gw: &TestGateway, token: &str) -> String {
    let res = gw.chat(hello("m")).bearer_auth(token).send().await.unwrap();
    res.headers()["x-tollgate-provider"]
        .to_str()
        .unwrap()
        .to_owned()
}

const FALLBACK: &str = r#"
providers:
  primary: { kind: openai, api_base: "{mock:a}/v1", api_key: ka }
  backup:  { kind: openai, api_base: "{mock:b}/v1", api_key: kb }
models:
  - name: smart
    retry: { attempts: 2, on_status: [429, 500, 502, 503, 504], backoff_ms: 1, max_backoff_ms: 20 }
    timeout_ms: 2000
    circuit_breaker: { failures: 100, window_ms: 1000, cooldown_ms: 1000 }
    targets:
      - { provider: primary, model: gpt-4o }
      - { provider: backup, model: gpt-4o-mini }
"#;

#[actix_web::test]
async fn a_retry_on_the_same_target_clears_a_transient_503() {
    let a = mock(config(503, 1)).await;
    let b = mock(MockConfig::default()).await;
    let gw = TestGateway::start(FALLBACK, &[("a", &a), ("b", &b)]).await;
    let res = gw.chat(hello("smart")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-provider"], "primary");
    assert_eq!(res.headers()["x-tollgate-attempts"], "2");
    assert_eq!(a.stats().requests, 2);
    assert_eq!(b.stats().requests, 0);
}

#[actix_web::test]
async fn falls_over_on_429_and_5xx_after_retries() {
    for status in [429, 500, 502, 503, 504] {
        let a = mock(config(status, 1_000)).await;
        let b = mock(MockConfig::default()).await;
        let gw = TestGateway::start(FALLBACK, &[("a", &a), ("b", &b)]).await;
        let res = gw.chat(hello("smart")).send().await.unwrap();
        assert_eq!(res.status(), 200, "status {status}");
        assert_eq!(res.headers()["x-tollgate-provider"], "backup");
        assert_eq!(res.headers()["x-tollgate-model"], "gpt-4o-mini");
        assert_eq!(res.headers()["x-tollgate-attempts"], "3");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(a.stats().requests, 2, "two tries on the primary");
        assert_eq!(b.stats().last_request.unwrap()["model"], "gpt-4o-mini");
        gw.stop().await;
    }
}

#[actix_web::test]
async fn falls_over_on_timeout_and_connection_refused() {
    let a = mock(MockConfig {
        latency_ms: 1_500,
        ..MockConfig::default()
    })
    .await;
    let b = mock(MockConfig::default()).await;
    let yaml = FALLBACK.replace("timeout_ms: 2000", "timeout_ms: 200");
    let gw = TestGateway::start(&yaml, &[("a", &a), ("b", &b)]).await;
    let started = std::time::Instant::now();
    let res = gw.chat(hello("smart")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-provider"], "backup");
    assert!(
        started.elapsed() < Duration::from_millis(1_400),
        "{:?}",
        started.elapsed()
    );

    // A provider nobody listens on.
    let yaml = FALLBACK.replace("{mock:a}", "http://127.0.0.1:9");
    let gw = TestGateway::start(&yaml, &[("b", &b)]).await;
    let res = gw.chat(hello("smart")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-provider"], "backup");
}

#[actix_web::test]
async fn retry_after_is_honoured_within_the_cap() {
    let a = mock(MockConfig {
        failure_status: 429,
        fail_first: 1,
        retry_after_secs: Some(1),
        ..MockConfig::default()
    })
    .await;
    let b = mock(MockConfig::default()).await;
    let yaml = FALLBACK.replace("max_backoff_ms: 20", "max_backoff_ms: 2000");
    let gw = TestGateway::start(&yaml, &[("a", &a), ("b", &b)]).await;
    let started = std::time::Instant::now();
    let res = gw.chat(hello("smart")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-provider"], "primary");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        started.elapsed()
    );

    // Asked to wait longer than the cap allows: fail over at once instead.
    a.set_config(MockConfig {
        failure_status: 429,
        fail_first: 1,
        retry_after_secs: Some(30),
        ..MockConfig::default()
    });
    let started = std::time::Instant::now();
    let res = gw.chat(hello("smart")).send().await.unwrap();
    assert_eq!(res.headers()["x-tollgate-provider"], "backup");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[actix_web::test]
async fn client_errors_pass_through_without_fail_over() {
    let a = mock(MockConfig::default()).await;
    let b = mock(MockConfig::default()).await;
    let yaml = FALLBACK.replace("model: gpt-4o }", "model: mock-error-400 }");
    let gw = TestGateway::start(&yaml, &[("a", &a), ("b", &b)]).await;
    let res = gw.chat(hello("smart")).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().len() > 3,
        "{body}"
    );
    assert_eq!(
        b.stats().requests,
        0,
        "a 400 is the request's fault: no fail-over"
    );
}

#[actix_web::test]
async fn all_targets_failing_is_a_502_or_503_naming_the_last_failure() {
    let a = mock(config(500, 1_000)).await;
    let b = mock(config(503, 1_000)).await;
    let gw = TestGateway::start(FALLBACK, &[("a", &a), ("b", &b)]).await;
    let res = gw.chat(hello("smart")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["x-tollgate-attempts"], "4");
    let body: serde_json::Value = res.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("backup/gpt-4o-mini"), "{message}");
    assert!(message.contains("503"), "{message}");

    b.set_config(config(502, 1_000));
    let res = gw.chat(hello("smart")).send().await.unwrap();
    assert_eq!(res.status(), 502);
}

#[actix_web::test]
async fn provider_credentials_never_reach_the_client() {
    let a = mock(MockConfig {
        require_key: Some("the-right-key".into()),
        ..MockConfig::default()
    })
    .await;
    let yaml = r#"
providers:
  p: { kind: openai, api_base: "{mock:a}/v1", api_key: sk-secret-wrong-key }
models:
  - name: m
    retry: { attempts: 1 }
    targets: [ { provider: p, model: gpt-4o } ]
"#;
    let gw = TestGateway::start(yaml, &[("a", &a)]).await;
    let res = gw.chat(hello("m")).send().await.unwrap();
    assert_eq!(res.status(), 502);
    let text = res.text().await.unwrap();
    assert!(!text.contains("sk-secret"), "{text}");
    assert!(text.contains("credentials"), "{text}");
}

#[actix_web::test]
async fn weighted_split_is_within_five_percent_over_2000_requests() {
    let a = mock(MockConfig::default()).await;
    let b = mock(MockConfig::default()).await;
    let yaml = r#"
providers:
  a: { kind: openai, api_base: "{mock:a}/v1", api_key: k }
  b: { kind: openai, api_base: "{mock:b}/v1", api_key: k }
models:
  - name: split
    strategy: weighted
    targets:
      - { provider: a, model: gpt-4o, weight: 70 }
      - { provider: b, model: gpt-4o, weight: 30 }
"#;
    let gw = TestGateway::start(yaml, &[("a", &a), ("b", &b)]).await;
    use futures_util::StreamExt;
    let total = 2_000;
    let to_a = futures_util::stream::iter(0..total)
        .map(|_| {
            let request = gw.chat(hello("split"));
            async move {
                let res = request.send().await.unwrap();
                assert_eq!(res.status(), 200);
                res.headers()["x-tollgate-provider"] == "a"
            }
        })
        .buffer_unordered(32)
        .filter(|to_a| std::future::ready(*to_a))
        .count()
        .await;
    let share = to_a as f64 / total as f64;
    assert!((share - 0.70).abs() <= 0.05 * 0.70, "share to a: {share}");
    assert_eq!(a.stats().requests + b.stats().requests, total as u64);
}

#[actix_web::test]
async fn circuit_opens_skips_the_target_then_recovers_after_a_probe() {
    let a = mock(config(503, 1_000_000)).await;
    let b = mock(MockConfig::default()).await;
    let yaml = a_then_b("{ failures: 3, window_ms: 10000, cooldown_ms: 400 }");
    let gw = TestGateway::start(&yaml, &[("a", &a), ("b", &b)]).await;
    for _ in 0..3 {
        let res = gw.chat(hello("m")).send().await.unwrap();
        assert_eq!(res.headers()["x-tollgate-provider"], "b");
    }
    assert_eq!(a.stats().requests, 3);
    // Open: a is not even tried.
    for _ in 0..5 {
        let res = gw.chat(hello("m")).send().await.unwrap();
        assert_eq!(res.headers()["x-tollgate-attempts"], "1");
        assert_eq!(res.headers()["x-tollgate-provider"], "b");
    }
    assert_eq!(a.stats().requests, 3);

    // a recovers; after the cool-down one probe goes to it and closes the circuit.
    a.set_config(MockConfig::default());
    tokio::time::sleep(Duration::from_millis(450)).await;
    let res = gw.chat(hello("m")).send().await.unwrap();
    assert_eq!(res.headers()["x-tollgate-provider"], "a");
    for _ in 0..3 {
        let res = gw.chat(hello("m")).send().await.unwrap();
        assert_eq!(res.headers()["x-tollgate-provider"], "a");
    }
    assert_eq!(a.stats().requests, 7);
}

/// Each bearer token is its own organization.
struct OrgPerToken;

#[async_trait::async_trait]
impl Authenticate for OrgPerToken {
    async fn authenticate(
        &self,
        headers: &actix_web::http::header::HeaderMap,
    ) -> Result<Arc<KeyContext>, GatewayError> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let org = match token {
            "Bearer noisy" => "0190f0a0-0000-7000-8000-000000000001",
            _ => "0190f0a0-0000-7000-8000-000000000002",
        };
        Ok(Arc::new(KeyContext {
            org_id: Some(org.parse().unwrap()),
            ..KeyContext::default()
        }))
    }
}

/// One organization that the provider keeps throttling (429) opens the target for itself
/// only: another organization's requests still go to it, and the noisy one's skip it.
#[actix_web::test]
async fn one_organizations_throttling_does_not_open_the_target_for_others() {
    let a = mock(config(429, 3)).await;
    let b = mock(MockConfig::default()).await;
    let yaml = a_then_b("{ failures: 3, window_ms: 10000, cooldown_ms: 60000 }");
    let stages = Stages {
        authenticate: Arc::new(OrgPerToken),
        ..Stages::default()
    };
    let gw = TestGateway::start_with(&yaml, &[("a", &a), ("b", &b)], stages).await;
    for _ in 0..3 {
        assert_eq!(provider_for(&gw, "noisy").await, "b");
    }
    assert_eq!(a.stats().requests, 3);
    // The provider answers again; the quiet organization is sent to it at once.
    assert_eq!(provider_for(&gw, "quiet").await, "a");
    // The noisy one sits out its cool-down.
    assert_eq!(provider_for(&gw, "noisy").await, "b");
    assert_eq!(a.stats().requests, 4);
}

/// A failure of the deployment's provider account reaches the client without the provider's
/// own words, which name the operator's provider organization.
#[actix_web::test]
async fn the_providers_message_about_the_deployments_account_is_not_passed_on() {
    let a = mock(config(429, 1_000)).await;
    let yaml = r#"
providers:
  a: { kind: openai, api_base: "{mock:a}/v1", api_key: k }
models:
  - name: m
    retry: { attempts: 1 }
    targets: [ { provider: a, model: gpt-4o } ]
"#;
    let gw = TestGateway::start(yaml, &[("a", &a)]).await;
    let res = gw.chat(hello("m")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("429"), "{message}");
    assert!(!message.contains("org-mockdeployment42"), "{message}");
}

#[actix_web::test]
async fn with_every_circuit_open_the_answer_is_503_with_retry_after() {
    let a = mock(config(500, 1_000_000)).await;
    let yaml = r#"
providers:
  a: { kind: openai, api_base: "{mock:a}/v1", api_key: k }
models:
  - name: m
    retry: { attempts: 1 }
    circuit_breaker: { failures: 2, window_ms: 10000, cooldown_ms: 60000 }
    targets: [ { provider: a, model: gpt-4o } ]
"#;
    let gw = TestGateway::start(yaml, &[("a", &a)]).await;
    for _ in 0..2 {
        assert_eq!(gw.chat(hello("m")).send().await.unwrap().status(), 502);
    }
    let res = gw.chat(hello("m")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(a.stats().requests, 2);
}

#[actix_web::test]
async fn direct_provider_model_names_and_catalog_names_route() {
    let a = mock(MockConfig::default()).await;
    let yaml = r#"
providers:
  openai: { kind: openai, api_base: "{mock:a}/v1", api_key: k }
"#;
    let gw = TestGateway::start(yaml, &[("a", &a)]).await;
    let res = gw.chat(hello("openai/my-finetune")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(a.stats().last_request.unwrap()["model"], "my-finetune");
    let res = gw.chat(hello("gpt-4o-mini")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(a.stats().last_request.unwrap()["model"], "gpt-4o-mini");
}

#[actix_web::test]
async fn least_latency_settles_on_the_faster_target_and_cheapest_on_the_cheaper() {
    let slow = mock(MockConfig {
        latency_ms: 40,
        ..MockConfig::default()
    })
    .await;
    let fast = mock(MockConfig::default()).await;
    let yaml = r#"
providers:
  slow: { kind: openai, api_base: "{mock:slow}/v1", api_key: k }
  fast: { kind: openai, api_base: "{mock:fast}/v1", api_key: k }
models:
  - name: quick
    strategy: least-latency
    targets: [ { provider: slow, model: gpt-4o }, { provider: fast, model: gpt-4o } ]
  - name: thrifty
    strategy: cheapest
    targets: [ { provider: slow, model: gpt-4o }, { provider: fast, model: gpt-4o-mini } ]
"#;
    let gw = TestGateway::start(yaml, &[("slow", &slow), ("fast", &fast)]).await;
    // Each target is measured once, then the faster one takes the traffic.
    for _ in 0..12 {
        assert_eq!(gw.chat(hello("quick")).send().await.unwrap().status(), 200);
    }
    assert_eq!(slow.stats().requests, 1, "the slow target is only sampled");
    assert_eq!(fast.stats().requests, 11);

    fast.reset_stats();
    let res = gw.chat(hello("thrifty")).send().await.unwrap();
    assert_eq!(res.headers()["x-tollgate-model"], "gpt-4o-mini");
    assert_eq!(fast.stats().requests, 1);
}
