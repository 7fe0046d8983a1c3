//! Guardrails on the real binary: what the mock provider received (personal data redacted),
//! what the client got back (its own values restored, the answer's checked, whole, streamed
//! and from the cache), refusals in each API's error shape, and their usage records.

use std::time::Duration;

use serde_json::{Value, json};
use tollgate_mock_provider::{MockConfig, MockServer};

use super::{Gateway, PROVIDER_KEY, scratch_dir, signup, write_config};

/// Applies to every organization: e-mails redacted and put back in answers, phones only logged
/// on the way in but redacted on the way out, cards and secrets refused, and one expression.
const POLICIES: &str = r#"
cache:
  mode: exact
guardrails:
  policies:
    - name: default-pii
      applies_to: all
      input:
        pii: { email: redact, phone: log, credit_card: block, secret: block }
        deny_regex: ["(?i)internal use only"]
      output:
        pii: { phone: redact }
      restore_in_answer: true
"#;

struct Setup {
    mock: MockServer,
    gateway: Gateway,
    key: String,
    database: String,
}

async fn setup(name: &str) -> Setup {
    let mock = MockServer::start(MockConfig {
        chunks: 12,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let dir = scratch_dir(name);
    let config = write_config(&dir, &mock, POLICIES);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let data_dir = data.display().to_string();
    let gateway = Gateway::start(&config, &[PROVIDER_KEY, ("TOLLGATE_DATA_DIR", &data_dir)]);
    let tenant = signup(&gateway.url, &format!("{name}@example.com")).await;
    Setup {
        mock,
        gateway,
        key: tenant.key,
        database: format!("sqlite://{data_dir}/tollgate.db"),
    }
}

async fn chat(setup: &Setup, request_id: &str, prompt: &str) -> (u16, Value, String) {
    let res = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", setup.gateway.url))
        .bearer_auth(&setup.key)
        .header("x-request-id", request_id)
        .json(&json!({"model": "openai/gpt-4o", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": prompt}
        ]}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let cache = res
        .headers()
        .get("x-tollgate-cache")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, res.json().await.unwrap(), cache)
}

fn last_sent(mock: &MockServer) -> String {
    mock.stats().last_request.unwrap().to_string()
}

/// The ledger's status, error, cost and guardrail outcome of one request, once shipped.
async fn usage_row(database: &str, request_id: &str) -> (i64, Option<String>, i64, Option<String>) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database).await.unwrap();
    for _ in 0..200 {
        let row = sqlx::query(
            "SELECT status, error, COALESCE(cost_pico, 0) AS cost, guardrail FROM usage_events \
             WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_optional(&pool)
        .await
        .unwrap();
        if let Some(row) = row {
            use sqlx::Row;
            return (
                row.try_get("status").unwrap(),
                row.try_get("error").unwrap(),
                row.try_get("cost").unwrap(),
                row.try_get("guardrail").unwrap(),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no usage row for {request_id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_is_redacted_before_the_provider_and_restored_for_the_client() {
    let setup = setup("guardrails-redact").await;

    let (status, answer, cache) =
        chat(&setup, "redact-1", "Please mail ada@example.com the report").await;
    assert_eq!((status, cache.as_str()), (200, "miss"), "{answer}");
    let sent = last_sent(&setup.mock);
    assert!(sent.contains("<EMAIL_1>"), "{sent}");
    assert!(!sent.contains("ada@example.com"), "{sent}");
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains("ada@example.com"), "{text}");
    assert!(!text.contains("<EMAIL_1>"), "{text}");
    let (status, _, cost, guardrail) = usage_row(&setup.database, "redact-1").await;
    assert_eq!((status, guardrail.as_deref()), (200, Some("redacted")));
    assert!(cost > 0, "an answered request is charged");

    // Another user's prompt redacts to the same body: a cache hit, whose answer is restored
    // with this request's own value, never the first user's.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = setup.mock.stats().requests;
    let (status, answer, cache) =
        chat(&setup, "redact-2", "Please mail bob@example.org the report").await;
    assert_eq!((status, cache.as_str()), (200, "hit-exact"), "{answer}");
    assert_eq!(setup.mock.stats().requests, before);
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains("bob@example.org"), "{text}");
    assert!(!text.contains("ada@example.com"), "{text}");

    // The Anthropic Messages API: the same policy, the same restoration.
    let res = reqwest::Client::new()
        .post(format!("{}/v1/messages", setup.gateway.url))
        .header("x-api-key", &setup.key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "smart", "max_tokens": 64, "messages": [
            {"role": "user", "content": "Forward it to carol@example.net soon"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    let sent = last_sent(&setup.mock);
    assert!(
        sent.contains("<EMAIL_1>") && !sent.contains("carol@"),
        "{sent}"
    );
    let text = answer["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("carol@example.net"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_gets_400_in_its_api_shape_and_costs_nothing() {
    let setup = setup("guardrails-block").await;
    let before = setup.mock.stats().requests;

    let (status, body, _) = chat(&setup, "block-card", "My card is 4111 1111 1111 1111").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "guardrail_violation");
    assert_eq!(body["error"]["code"], "default-pii/input.pii");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("payment card"), "{message}");
    assert!(
        !message.contains("4111"),
        "the refusal must not repeat the value"
    );

    let (status, body, _) = chat(&setup, "block-regex", "INTERNAL USE ONLY: roadmap").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "default-pii/input.deny_regex[0]");

    let res = reqwest::Client::new()
        .post(format!("{}/v1/messages", setup.gateway.url))
        .header("x-api-key", &setup.key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "smart", "max_tokens": 64, "messages": [
            {"role": "user", "content": "key: sk-proj-abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("default-pii/input.pii"),
        "{body}"
    );

    assert_eq!(
        setup.mock.stats().requests,
        before,
        "nothing reached the provider"
    );
    let (status, error, cost, guardrail) = usage_row(&setup.database, "block-card").await;
    assert_eq!(
        (status, error.as_deref(), cost, guardrail.as_deref()),
        (400, Some("guardrail_violation"), 0, Some("blocked"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_checked_whole_and_streamed_across_chunks() {
    let setup = setup("guardrails-answers").await;
    // The prompt's phone is only logged, so the provider echoes it back, one word per chunk;
    // the output rule redacts it from the answer however it was split.
    let prompt = "Call +44 20 7946 0958 tomorrow";

    let (status, answer, _) = chat(&setup, "answer-whole", prompt).await;
    assert_eq!(status, 200, "{answer}");
    assert!(last_sent(&setup.mock).contains("7946 0958"));
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        text.contains("<PHONE_1>") && !text.contains("7946"),
        "{text}"
    );

    let res = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", setup.gateway.url))
        .bearer_auth(&setup.key)
        .json(
            &json!({"model": "openai/gpt-4o", "stream": true, "messages": [
                {"role": "user", "content": format!("{prompt} please")}
            ]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let mut text = String::new();
    let mut pieces = 0;
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        if let Some(delta) = chunk["choices"][0]["delta"]["content"].as_str() {
            pieces += usize::from(!delta.is_empty());
            text.push_str(delta);
        }
    }
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    assert!(pieces > 1, "the answer still streams: {body}");
    assert!(
        text.contains("<PHONE_1>") && !text.contains("7946"),
        "{text}"
    );
    assert!(text.contains("tomorrow please"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_and_anthropic_sdks_see_guardrails_in_their_own_terms() {
    let setup = setup("guardrails-sdk").await;
    let output = super::run_python(
        "guardrails_sdk.py",
        vec![
            setup.gateway.url.clone(),
            "--api-key".into(),
            setup.key.clone(),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("ok openai") && stdout.contains("ok anthropic"),
        "{stdout}"
    );
}

/// An organization's guardrail endpoint on this machine: refuses prompts that mention
/// `forbidden`, rewrites those that mention `rewrite`, answers late to `slow`, allows the rest.
async fn guard_endpoint() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buffer = [0u8; 16 * 1024];
                let body = loop {
                    let n = socket.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&seen).into_owned();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = head
                        .lines()
                        .find_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        break body.to_owned();
                    }
                };
                let answer = if body.contains("forbidden") {
                    json!({"action": "block", "reason": "that subject is closed"})
                } else if body.contains("rewrite") {
                    json!({"action": "modify", "body": {"messages": [
                        {"role": "user", "content": "a rewritten question"}
                    ]}})
                } else if body.contains("slow") {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    json!({"action": "allow"})
                } else {
                    json!({"action": "allow"})
                };
                let answer = answer.to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organizations_webhook_allows_refuses_and_rewrites_within_its_deadline() {
    let port = guard_endpoint().await;
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = scratch_dir("guardrails-webhook");
    let extra = format!(
        r#"
outbound:
  allow_hosts: ["127.0.0.1:{port}"]
guardrails:
  policies:
    - name: house-rules
      webhook: {{ url: "http://127.0.0.1:{port}/check", timeout_ms: 300, on_failure: closed }}
"#
    );
    let config = write_config(&dir, &mock, &extra);
    let gateway = Gateway::start(&config, &[PROVIDER_KEY]);
    let tenant = signup(&gateway.url, "guardrails-webhook@example.com").await;
    let setup = Setup {
        mock,
        gateway,
        key: tenant.key,
        database: String::new(),
    };

    let (status, _, _) = chat(&setup, "hook-allow", "an ordinary question").await;
    assert_eq!(status, 200);
    let (status, body, _) = chat(&setup, "hook-block", "a forbidden question").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "house-rules/webhook");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("that subject is closed")
    );
    let (status, answer, _) = chat(&setup, "hook-modify", "please rewrite this").await;
    assert_eq!(status, 200, "{answer}");
    let sent = last_sent(&setup.mock);
    assert!(
        sent.contains("a rewritten question") && !sent.contains("please rewrite"),
        "{sent}"
    );
    let started = std::time::Instant::now();
    let (status, body, _) = chat(&setup, "hook-slow", "a slow question").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the deadline holds"
    );
}

/// Sets the guardrail policy at `path` (`/auth/guardrails`, `/auth/teams/{id}/guardrails`,
/// `/auth/keys/{id}/guardrails`) as the holder of `token`.
async fn set_policy(gateway: &str, token: &str, path: &str, policy: Value) {
    let res = reqwest::Client::new()
        .put(format!("{gateway}{path}"))
        .bearer_auth(token)
        .json(&policy)
        .send()
        .await
        .unwrap();
    let status = res.status();
    assert_eq!(status, 200, "{path}: {}", res.text().await.unwrap());
}

/// What the provider received for one prompt of `key`, or the refusal's rule.
async fn sent_for(setup: &Setup, key: &str, prompt: &str) -> Result<String, String> {
    let res = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", setup.gateway.url))
        .bearer_auth(key)
        .json(&json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": prompt}]}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    match status {
        200 => Ok(last_sent(&setup.mock)),
        _ => Err(body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_combine_across_levels_and_stay_within_their_organization() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = scratch_dir("guardrails-levels");
    let extra = r#"
guardrails:
  policies:
    - name: deployment
      input: { deny_keywords: ["project nightingale"] }
"#;
    let config = write_config(&dir, &mock, extra);
    let gateway = Gateway::start(&config, &[PROVIDER_KEY]);
    let mine = signup(&gateway.url, "levels-a@example.com").await;
    let theirs = signup(&gateway.url, "levels-b@example.com").await;
    let setup = Setup {
        mock,
        gateway,
        key: mine.key.clone(),
        database: String::new(),
    };
    let url = setup.gateway.url.clone();
    let email = "Reach dana@example.com today";

    // The deployment's list applies to everyone; nothing else is set yet.
    assert_eq!(
        sent_for(&setup, &theirs.key, "about project nightingale").await,
        Err("deployment/input.deny_keywords[0]".into())
    );
    assert!(
        sent_for(&setup, &mine.key, email)
            .await
            .unwrap()
            .contains("dana@")
    );

    // My organization redacts e-mails and denies a word of its own: only my requests change.
    set_policy(
        &url,
        &mine.access_token,
        "/auth/guardrails",
        json!({"input": {"pii": {"email": "redact"}, "deny_keywords": ["alpha"]}}),
    )
    .await;
    let sent = sent_for(&setup, &mine.key, email).await.unwrap();
    assert!(
        sent.contains("<EMAIL_1>") && !sent.contains("dana@"),
        "{sent}"
    );
    assert_eq!(
        sent_for(&setup, &mine.key, "the alpha plan").await,
        Err("organization/input.deny_keywords[0]".into())
    );
    assert!(
        sent_for(&setup, &theirs.key, email)
            .await
            .unwrap()
            .contains("dana@")
    );
    assert!(
        sent_for(&setup, &theirs.key, "the alpha plan")
            .await
            .is_ok()
    );
    // ... and the deployment's list still applies to mine: lists add up.
    assert_eq!(
        sent_for(&setup, &mine.key, "project nightingale").await,
        Err("deployment/input.deny_keywords[0]".into())
    );

    // My key allows e-mails: the narrowest level decides that type.
    set_policy(
        &url,
        &mine.access_token,
        &format!("/auth/keys/{}/guardrails", mine.key_id),
        json!({"input": {"pii": {"email": "allow"}}}),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let sent = sent_for(&setup, &mine.key, email).await.unwrap();
        if sent.contains("dana@") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the key's policy never applied: {sent}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        sent_for(&setup, &mine.key, "the alpha plan").await,
        Err("organization/input.deny_keywords[0]".into()),
        "the organization's list still applies under the key's policy"
    );

    // Another organization cannot set my key's policy.
    let res = reqwest::Client::new()
        .put(format!("{url}/auth/keys/{}/guardrails", mine.key_id))
        .bearer_auth(&theirs.access_token)
        .json(&json!({"input": {"pii": {"email": "redact"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}
