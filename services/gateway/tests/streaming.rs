//! Streaming through the gateway: pass-through, translation, fail-over before the first byte,
//! interruption, and cancellation when the client goes away.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use std::time::Duration;

use common::{TestGateway, events, mock};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tollgate_mock_provider::MockConfig;

fn stream_request(model: &str) -> Value {
    json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "Tell me a story"}]})
}

#[actix_web::test]
async fn every_provider_streams_openai_chunks_ending_in_done() {
    let m = mock(MockConfig {
        chunks: 12,
        ..MockConfig::default()
    })
    .await;
    let gw = TestGateway::with_every_kind(&m).await;
    for model in [
        "openai/gpt-4o",
        "azure/my-deployment",
        "anthropic/claude-sonnet-4-20250514",
        "gemini/gemini-2.5-flash",
    ] {
        let res = gw.chat(stream_request(model)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{model}");
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        let body = res.text().await.unwrap();
        let events = events(&body);
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "{model}: {body}"
        );
        let mut text = String::new();
        let mut finish = None;
        for event in &events[..events.len() - 1] {
            let chunk: Value = serde_json::from_str(event).unwrap();
            assert_eq!(chunk["object"], "chat.completion.chunk", "{model}: {event}");
            assert!(
                chunk.get("usage").is_none_or(Value::is_null),
                "{model}: usage not asked for"
            );
            if let Some(choice) = chunk["choices"].get(0) {
                text.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
                if let Some(reason) = choice["finish_reason"].as_str() {
                    finish = Some(reason.to_owned());
                }
            }
        }
        assert!(text.contains("Tell me a story"), "{model}: {text}");
        assert_eq!(finish.as_deref(), Some("stop"), "{model}");
    }
}

#[actix_web::test]
async fn usage_chunk_reaches_the_client_only_when_asked_for() {
    let m = mock(MockConfig::default()).await;
    let gw = TestGateway::with_every_kind(&m).await;
    for model in [
        "openai/gpt-4o",
        "anthropic/claude-sonnet-4-20250514",
        "gemini/gemini-2.5-flash",
    ] {
        let mut request = stream_request(model);
        request["stream_options"] = json!({"include_usage": true});
        let body = gw.chat_text(request).await;
        let events = events(&body);
        let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
        assert_eq!(usage["choices"], json!([]), "{model}: {usage}");
        assert!(
            usage["usage"]["completion_tokens"].as_u64().unwrap() > 0,
            "{model}"
        );
        assert!(
            usage["usage"]["prompt_tokens"].as_u64().unwrap() > 0,
            "{model}"
        );
    }
    // The gateway asked OpenAI for usage on the client's behalf either way.
    gw.chat_text(stream_request("openai/gpt-4o")).await;
    assert_eq!(
        m.stats().last_request.unwrap()["stream_options"]["include_usage"],
        true
    );
}

#[actix_web::test]
async fn a_stream_falls_over_before_its_first_byte() {
    let a = mock(MockConfig {
        failure_status: 503,
        fail_first: 100,
        ..MockConfig::default()
    })
    .await;
    let b = mock(MockConfig::default()).await;
    let yaml = r#"
providers:
  a: { kind: openai, api_base: "{mock:a}/v1", api_key: k }
  b: { kind: anthropic, api_base: "{mock:b}", api_key: k }
models:
  - name: m
    retry: { attempts: 1 }
    targets: [ { provider: a, model: gpt-4o }, { provider: b, model: claude-sonnet-4-20250514 } ]
"#;
    let gw = TestGateway::start(yaml, &[("a", &a), ("b", &b)]).await;
    let res = gw.chat(stream_request("m")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-provider"], "b");
    let body = res.text().await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
}

#[actix_web::test]
async fn an_interrupted_stream_ends_with_an_error_event_not_a_clean_finish() {
    let m = mock(MockConfig {
        chunks: 20,
        fail_mid_stream_after: Some(3),
        ..MockConfig::default()
    })
    .await;
    let gw = TestGateway::with_every_kind(&m).await;
    for model in [
        "openai/gpt-4o",
        "anthropic/claude-sonnet-4-20250514",
        "gemini/gemini-2.5-flash",
    ] {
        let res = gw.chat(stream_request(model)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let body = res.text().await.unwrap_or_default();
        let events = events(&body);
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert_eq!(
            last["error"]["code"], "stream_interrupted",
            "{model}: {body}"
        );
        assert!(!body.contains("[DONE]"), "{model}");
    }
}

#[actix_web::test]
async fn a_client_that_disconnects_cancels_the_upstream_stream() {
    let m = mock(MockConfig {
        chunks: 200,
        chunk_delay_ms: 20,
        ..MockConfig::default()
    })
    .await;
    let gw = TestGateway::with_every_kind(&m).await;
    for model in ["openai/gpt-4o", "anthropic/claude-sonnet-4-20250514"] {
        m.reset_stats();
        let res = gw.chat(stream_request(model)).send().await.unwrap();
        let mut body = res.bytes_stream();
        let first = body.next().await.unwrap().unwrap();
        assert!(!first.is_empty());
        drop(body);
        // The mock's stream is dropped once the gateway closes the upstream connection.
        let mut cancelled = false;
        for _ in 0..100 {
            if m.stats().streams_cancelled == 1 {
                cancelled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let stats = m.stats();
        assert!(cancelled, "{model}: {stats:?}");
        assert_eq!(stats.streams_completed, 0, "{model}");
    }
}

#[actix_web::test]
async fn a_slow_client_gets_back_pressure_not_a_buffered_answer() {
    let m = mock(MockConfig {
        chunks: 30,
        chunk_delay_ms: 5,
        ..MockConfig::default()
    })
    .await;
    let gw = TestGateway::with_every_kind(&m).await;
    let res = gw
        .chat(stream_request("openai/gpt-4o"))
        .send()
        .await
        .unwrap();
    let mut body = res.bytes_stream();
    let mut pieces = 0;
    while let Some(piece) = body.next().await {
        piece.unwrap();
        pieces += 1;
    }
    // Chunks arrive as the upstream produces them: many pieces, not one buffered blob.
    assert!(pieces >= 10, "only {pieces} pieces");
}

#[actix_web::test]
async fn a_stream_that_goes_quiet_past_the_timeout_is_cut_with_an_error() {
    let m = mock(MockConfig {
        chunks: 5,
        chunk_delay_ms: 1_000,
        ..MockConfig::default()
    })
    .await;
    let yaml = r#"
providers:
  openai: { kind: openai, api_base: "{mock:m}/v1", api_key: k }
models:
  - name: m
    timeout_ms: 300
    targets: [ { provider: openai, model: gpt-4o } ]
"#;
    let gw = TestGateway::start(yaml, &[("m", &m)]).await;
    let started = std::time::Instant::now();
    let body = gw.chat_text(stream_request("m")).await;
    let events = events(&body);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted", "{body}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no data"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}
