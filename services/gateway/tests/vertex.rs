//! Vertex AI through the gateway: a service account's key traded for an access token at the
//! mock's token endpoint, once, then Gemini and Claude models answered, whole and streamed.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use common::{TestGateway, events, mock};
use serde_json::{Value, json};
use tollgate_mock_provider::{MockConfig, MockServer};

/// The test-only service account's key file (see `src/providers/vertex/fixtures/README.md`).
fn key_file() -> String {
    format!(
        "{}/src/providers/vertex/fixtures/test-only-service-account.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn config(credentials: &str) -> String {
    format!(
        r#"
providers:
  vertex:
    kind: vertex
    project: test-project
    location: us-central1
    api_base: "{{mock:m}}"
    token_url: "{{mock:m}}/token"
    {credentials}
"#
    )
}

fn token_exchanges(m: &MockServer) -> u64 {
    m.stats()
        .by_route
        .get("vertex.token")
        .copied()
        .unwrap_or_default()
}

fn request(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream,
           "messages": [{"role": "user", "content": "Name a colour"}]})
}

/// The streamed text of an OpenAI SSE answer, checking it ends in `[DONE]` and stops.
fn streamed_text(body: &str) -> String {
    let events = events(body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{body}");
    let mut text = String::new();
    let mut finish = None;
    for event in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(event).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk", "{event}");
        if let Some(choice) = chunk["choices"].get(0) {
            text.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
            if let Some(reason) = choice["finish_reason"].as_str() {
                finish = Some(reason.to_owned());
            }
        }
    }
    assert_eq!(finish.as_deref(), Some("stop"), "{body}");
    text
}

#[actix_web::test]
async fn gemini_and_claude_answer_with_one_token_exchange() {
    let m = mock(MockConfig::default()).await;
    let yaml = config(&format!("credentials_file: \"{}\"", key_file()));
    let gw = TestGateway::start(&yaml, &[("m", &m)]).await;
    let location = "/v1/projects/test-project/locations/us-central1";

    // Gemini, whole.
    let res = gw
        .chat(request("vertex/gemini-2.5-flash", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion", "{body}");
    let text = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains("Name a colour"), "{body}");
    assert!(
        body["usage"]["prompt_tokens"].as_u64().unwrap() > 0,
        "{body}"
    );
    let stats = m.stats();
    assert_eq!(
        stats.last_path_and_query.as_deref(),
        Some(
            format!("{location}/publishers/google/models/gemini-2.5-flash:generateContent")
                .as_str()
        )
    );
    assert!(
        stats.last_headers["authorization"].starts_with("Bearer ya29.mock-"),
        "{:?}",
        stats.last_headers
    );
    assert!(!stats.last_headers.contains_key("x-goog-api-key"));

    // Claude, whole: the model in the URL, the version in the body.
    let res = gw
        .chat(request("vertex/claude-sonnet-4@20250514", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let text = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains("Name a colour"), "{body}");
    let stats = m.stats();
    assert_eq!(
        stats.last_path_and_query.as_deref(),
        Some(
            format!("{location}/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict")
                .as_str()
        )
    );
    let sent = stats.last_request.unwrap();
    assert_eq!(sent["anthropic_version"], "vertex-2023-10-16");
    assert!(sent.get("model").is_none(), "{sent}");

    // Both, streamed.
    for (model, path) in [
        (
            "vertex/gemini-2.5-flash",
            "publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        ),
        (
            "vertex/claude-sonnet-4@20250514",
            "publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict",
        ),
    ] {
        let res = gw.chat(request(model, true)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{model}");
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        let text = streamed_text(&res.text().await.unwrap());
        assert!(text.contains("Name a colour"), "{model}: {text}");
        assert_eq!(
            m.stats().last_path_and_query,
            Some(format!("{location}/{path}")),
            "{model}"
        );
    }

    // Embeddings, through `predict`.
    let res = gw
        .client
        .post(format!("{}/v1/embeddings", gw.url))
        .json(&json!({"model": "vertex/text-embedding-005", "input": ["red", "green"], "dimensions": 8}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 8);
    assert!(
        body["usage"]["prompt_tokens"].as_u64().unwrap() > 0,
        "{body}"
    );

    // Six model calls, one token.
    assert_eq!(token_exchanges(&m), 1);
    gw.stop().await;
}

#[actix_web::test]
async fn a_static_token_is_sent_as_is_and_never_exchanged() {
    let m = mock(MockConfig {
        require_key: Some("ya29.minted-elsewhere".into()),
        ..MockConfig::default()
    })
    .await;
    let gw = TestGateway::start(&config("api_key: ya29.minted-elsewhere"), &[("m", &m)]).await;
    let res = gw
        .chat(request("vertex/gemini-2.5-flash", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        m.stats().last_headers["authorization"],
        "Bearer ya29.minted-elsewhere"
    );
    assert_eq!(token_exchanges(&m), 0);
    gw.stop().await;
}

#[actix_web::test]
async fn a_refused_service_account_fails_the_target_with_the_reason() {
    let m = mock(MockConfig::default()).await;
    // The test key, claiming to be an account the token endpoint does not know.
    let key = std::fs::read_to_string(key_file()).unwrap().replace(
        "tollgate-test@tollgate-test.iam.gserviceaccount.com",
        "stranger@elsewhere.iam.gserviceaccount.com",
    );
    let key: Value = serde_json::from_str(&key).unwrap();
    let yaml = config(&format!("credentials_json: '{key}'"));
    let gw = TestGateway::start(&yaml, &[("m", &m)]).await;
    let res = gw
        .chat(request("vertex/gemini-2.5-flash", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let body: Value = res.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("invalid_grant") && message.contains("vertex/gemini-2.5-flash"),
        "{message}"
    );
    assert!(!message.contains("PRIVATE KEY"), "{message}");
    // No model call went out without a token.
    assert_eq!(m.stats().by_route.get("gemini.generate"), Some(&0));
    gw.stop().await;
}
