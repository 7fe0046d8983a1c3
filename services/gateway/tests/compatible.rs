//! OpenAI-compatible services whose answers depart from OpenAI's, on the mock's routes for each
//! (`/{service}/v1`): the usage they report in their own places is what gets metered, and a
//! server that refuses `stream_options` is served once the provider says so.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestGateway, chunks, mock};
use serde_json::{Value, json};
use tollgate_gateway::Stages;
use tollgate_gateway::pipeline::Meter;
use tollgate_gateway::pipeline::usage::{UsageEvent, Written};
use tollgate_mock_provider::{MockConfig, MockServer};

/// Keeps every usage event the gateway records.
#[derive(Default)]
struct Recorded(Mutex<Vec<UsageEvent>>);

impl Meter for Recorded {
    fn record(&self, events: Vec<UsageEvent>, written: Option<Written>) {
        self.0.lock().unwrap().extend(events);
        if let Some(written) = written {
            let _ = written.send(true);
        }
    }
}

impl Recorded {
    /// The usage event of request `n` (counting from 0), waiting for it: streams are metered
    /// as they end.
    async fn event(&self, n: usize) -> UsageEvent {
        for _ in 0..200 {
            if let Some(event) = self.0.lock().unwrap().get(n) {
                return event.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no usage event {n}");
    }
}

/// A gateway whose model `m` is `gpt-4o-mini` at the mock's `service` route (OpenAI's own for
/// `""`), with `options`
/// added to the provider, recording usage into the returned meter.
async fn gateway(mock: &MockServer, service: &str, options: &str) -> (TestGateway, Arc<Recorded>) {
    let recorded = Arc::new(Recorded::default());
    let stages = Stages {
        meter: recorded.clone(),
        ..Stages::default()
    };
    let base = if service.is_empty() {
        "{mock:m}/v1".to_owned()
    } else {
        format!("{{mock:m}}/{service}/v1")
    };
    let yaml = format!(
        r#"
providers:
  compatible: {{ kind: openai, api_base: "{base}", api_key: k{options} }}
models:
  - name: m
    retry: {{ attempts: 1 }}
    targets: [ {{ provider: compatible, model: gpt-4o-mini }} ]
"#
    );
    let gateway = TestGateway::start_with(&yaml, &[("m", mock)], stages).await;
    (gateway, recorded)
}

/// A prompt long enough for DeepSeek's cache, which works in 64-token units, to count hits.
fn long_prompt() -> String {
    "Tell me about the tides and the moon. ".repeat(40)
}

fn chat(stream: bool, wants_usage: bool) -> Value {
    let mut body = json!({
        "model": "m",
        "messages": [{"role": "user", "content": long_prompt()}],
    });
    if stream {
        body["stream"] = json!(true);
    }
    if wants_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

async fn mock_server() -> MockServer {
    mock(MockConfig {
        chunks: 4,
        ..MockConfig::default()
    })
    .await
}

#[actix_web::test]
async fn groq_streams_meter_the_usage_in_x_groq() {
    let m = mock_server().await;
    let (gw, recorded) = gateway(&m, "groq", "").await;
    let res = gw.chat(chat(true, false)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let chunks = chunks(&res.text().await.unwrap());
    let finish = chunks.last().unwrap();
    let reported = &finish["x_groq"]["usage"];
    assert!(reported["prompt_tokens"].as_u64().unwrap() > 0, "{finish}");
    let event = recorded.event(0).await;
    assert!(!event.usage_estimated, "the reported usage is used");
    assert_eq!(
        event.usage.input_tokens,
        reported["prompt_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        event.usage.output_tokens,
        reported["completion_tokens"].as_u64().unwrap()
    );
    gw.stop().await;
    m.stop().await;
}

#[actix_web::test]
async fn deepseek_cache_hits_are_metered_as_cached_input() {
    let m = mock_server().await;
    let (gw, recorded) = gateway(&m, "deepseek", "").await;
    let answer: Value = gw
        .chat(chat(false, false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hits = answer["usage"]["prompt_cache_hit_tokens"].as_u64().unwrap();
    assert!(hits >= 64, "{answer}");
    let event = recorded.event(0).await;
    assert_eq!(event.usage.cached_input_tokens, hits);
    assert_eq!(
        event.usage.input_tokens,
        answer["usage"]["prompt_tokens"].as_u64().unwrap()
    );

    // Streamed, the usage chunk the client asked for says the same, and so does the meter.
    let res = gw.chat(chat(true, true)).send().await.unwrap();
    let chunks = chunks(&res.text().await.unwrap());
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["prompt_cache_hit_tokens"].as_u64(), Some(hits));
    let event = recorded.event(1).await;
    assert_eq!(event.usage.cached_input_tokens, hits);
    assert!(!event.usage_estimated);
    gw.stop().await;
    m.stop().await;
}

#[actix_web::test]
async fn usage_in_the_finish_chunk_is_metered_and_left_to_the_client() {
    let m = mock_server().await;
    let (gw, recorded) = gateway(&m, "together", "").await;
    let res = gw.chat(chat(true, false)).send().await.unwrap();
    let chunks = chunks(&res.text().await.unwrap());
    let finish = chunks.last().unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop", "{finish}");
    let event = recorded.event(0).await;
    assert!(!event.usage_estimated);
    assert_eq!(
        event.usage.output_tokens,
        finish["usage"]["completion_tokens"].as_u64().unwrap()
    );
    gw.stop().await;
    m.stop().await;
}

/// A server that reports no usage at all: the tokenizer counts the prompt and the answer, whole
/// or streamed, so that no answer goes out unmetered.
#[actix_web::test]
async fn answers_without_usage_are_counted_by_the_tokenizer() {
    let m = mock(MockConfig {
        omit_usage: true,
        ..MockConfig::default()
    })
    .await;
    let (gw, recorded) = gateway(&m, "", "").await;
    for (n, stream) in [false, true].into_iter().enumerate() {
        let res = gw.chat(chat(stream, false)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap();
        let event = recorded.event(n).await;
        assert!(event.usage_estimated, "stream {stream}");
        assert!(
            event.usage.input_tokens > 300,
            "stream {stream}: {:?}",
            event.usage
        );
        assert!(
            event.usage.output_tokens > 0,
            "stream {stream}: {:?}",
            event.usage
        );
    }
    // A tool call's arguments are output too.
    let body = json!({
        "model": "m",
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
    });
    let answer: Value = gw.chat(body).send().await.unwrap().json().await.unwrap();
    assert!(
        answer["choices"][0]["message"]["tool_calls"].is_array(),
        "{answer}"
    );
    let event = recorded.event(2).await;
    assert!(event.usage.output_tokens > 0, "{:?}", event.usage);
    gw.stop().await;
    m.stop().await;
}

/// A server that refuses `stream_options`: by default the gateway's request for the usage
/// chunk is refused; with `stream_usage: false` the stream is served and counted by the
/// tokenizer.
#[actix_web::test]
async fn servers_that_refuse_stream_options_are_served_with_stream_usage_off() {
    let m = mock_server().await;
    let (gw, _) = gateway(&m, "no-stream-options", "").await;
    let res = gw.chat(chat(true, false)).send().await.unwrap();
    assert_eq!(res.status(), 400, "the server refuses the argument");
    let error: Value = res.json().await.unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("stream_options"), "{message}");
    gw.stop().await;

    let (gw, recorded) = gateway(&m, "no-stream-options", ", stream_usage: false").await;
    let res = gw.chat(chat(true, false)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let chunks = chunks(&res.text().await.unwrap());
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "{chunks:?}"
    );
    let event = recorded.event(0).await;
    assert!(event.usage_estimated);
    assert!(event.usage.output_tokens > 0, "{:?}", event.usage);
    // Non-streaming requests never carried the argument.
    let res = gw.chat(chat(false, false)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let event = recorded.event(1).await;
    assert!(!event.usage_estimated);
    gw.stop().await;
    m.stop().await;
}
