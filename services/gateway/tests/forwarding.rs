//! Same API in and out: an Anthropic client to an Anthropic target, and a Responses client to
//! an OpenAI target serving the Responses API, is forwarded rather than translated twice (only
//! `model` and the key change), and is still checked, metered, cached and failed over like any
//! other request.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use std::sync::{Arc, Mutex};

use actix_web::http::header::HeaderMap;
use bytes::Bytes;
use common::ingress::{Ingress, WEATHER_SCHEMA, every_kind, named_events, post, response_item};
use common::{TestGateway, mock};
use serde_json::{Value, json};
use tollgate_gateway::openai::InboundBody;
use tollgate_gateway::pipeline::{CachedAnswer, RequestContext, ResponseCache};
use tollgate_gateway::{GatewayError, Stages};
use tollgate_mock_provider::MockConfig;

#[actix_web::test]
async fn an_anthropic_client_to_an_anthropic_target_is_forwarded_not_translated() {
    let m = mock(MockConfig::default()).await;
    let gw = every_kind(&m).await;
    // Fields only Anthropic knows, which the translation to OpenAI's format drops.
    let request = json!({
        "model": "smart", "max_tokens": 64, "top_k": 5,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Hello there"}],
    });
    let res = post(&gw, "/v1/messages", &request).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let sent = m.stats().last_request.unwrap();
    assert_eq!(sent["model"], "claude-sonnet-4-20250514");
    assert_eq!(sent["top_k"], 5);
    assert_eq!(sent["system"][0]["cache_control"]["type"], "ephemeral");
    assert!(body["id"].as_str().unwrap().starts_with("msg_"), "{body}");
    assert!(
        body["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Hello there")
    );
    assert!(body["usage"]["output_tokens"].as_u64().unwrap() > 0);

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let sse = post(&gw, "/v1/messages", &streamed)
        .await
        .text()
        .await
        .unwrap();
    let events = named_events(&sse);
    assert_eq!(events.last().unwrap().0, "message_stop", "{sse}");
    assert_eq!(m.stats().last_request.unwrap()["top_k"], 5);
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap_or_default())
        .collect();
    assert!(text.contains("Hello there"), "{sse}");
    // Both answers were metered from the usage Anthropic reported.
    let output_tokens =
        r#"tollgate_tokens_total{direction="output",target="anthropic/claude-sonnet-4-20250514"}"#;
    let metrics = gw.metrics_once_containing(output_tokens).await;
    assert!(metrics.contains(output_tokens), "{metrics}");

    // Another kind of target gets the translation.
    let mut to_openai = request.clone();
    to_openai["model"] = json!("openai/gpt-4o");
    post(&gw, "/v1/messages", &to_openai).await;
    let sent = m.stats().last_request.unwrap();
    assert!(sent.get("top_k").is_none(), "{sent}");
    assert_eq!(sent["messages"][0]["role"], "system");
}

#[actix_web::test]
async fn a_forwarded_stream_cut_short_ends_in_an_anthropic_error_event() {
    let m = mock(MockConfig {
        fail_mid_stream_after: Some(3),
        ..MockConfig::default()
    })
    .await;
    let gw = every_kind(&m).await;
    let request = Ingress::AnthropicMessages.request(
        "anthropic/claude-sonnet-4-20250514",
        "Tell me a story",
        true,
        false,
    );
    let sse = post(&gw, "/v1/messages", &request)
        .await
        .text()
        .await
        .unwrap();
    let events = named_events(&sse);
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error", "{sse}");
    assert_eq!(data["type"], "error");
    assert!(!events.iter().any(|(n, _)| n == "message_stop"), "{sse}");
}

/// The output tokens the gateway has metered for `target` so far.
async fn metered_output(gw: &TestGateway, target: &str) -> u64 {
    let series = format!(r#"tollgate_tokens_total{{direction="output",target="{target}"}}"#);
    let metrics = gw.metrics_once_containing(&series).await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {series} in {metrics}")) as u64
}

#[actix_web::test]
async fn a_responses_client_to_an_openai_target_serving_responses_is_forwarded_not_translated() {
    let m = mock(MockConfig::default()).await;
    let gw = every_kind(&m).await;
    // Fields the translation to chat drops, which a forwarded body keeps.
    let request = json!({
        "model": "openai-responses/gpt-4.1", "input": "Hello there", "instructions": "Be brief.",
        "store": false, "metadata": {"ticket": "T-1"}, "truncation": "auto",
    });
    let res = post(&gw, "/v1/responses", &request).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-provider"], "openai-responses");
    let body: Value = res.json().await.unwrap();
    let stats = m.stats();
    assert_eq!(stats.last_path_and_query.as_deref(), Some("/v1/responses"));
    assert_eq!(stats.by_route["openai.responses"], 1);
    assert_eq!(stats.by_route["openai.chat"], 0);
    assert_eq!(stats.last_headers["authorization"], "Bearer k");
    let mut expected = request.clone();
    expected["model"] = json!("gpt-4.1");
    assert_eq!(stats.last_request.unwrap(), expected);
    // The mock's own response object, not one the gateway rebuilt: its settings echo the
    // request's, which a translated answer knows nothing of.
    assert_eq!(body["object"], "response");
    assert_eq!(body["model"], "gpt-4.1");
    assert_eq!(body["metadata"]["ticket"], "T-1", "{body}");
    assert_eq!(body["truncation"], "auto");
    assert_eq!(body["instructions"], "Be brief.");
    let (text, output) = Ingress::OpenAiResponses.text_of(&body);
    assert!(text.contains("Hello there"), "{body}");

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let res = post(&gw, "/v1/responses", &streamed).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let sse = res.text().await.unwrap();
    assert_eq!(m.stats().last_request.unwrap()["stream"], true);
    assert_eq!(m.stats().by_route["openai.responses"], 2);
    let events = named_events(&sse);
    // Every event as the upstream numbered it, the held `response.completed` last.
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str(), "{sse}");
        assert_eq!(data["sequence_number"], i as u64, "{sse}");
    }
    let last = &events.last().unwrap().1["response"];
    assert_eq!(last["metadata"]["ticket"], "T-1", "{sse}");
    let (streamed_text, streamed_output) = Ingress::OpenAiResponses.streamed_text(&sse);
    assert!(streamed_text.contains("Hello there"), "{sse}");

    // Both answers were metered from the usage the upstream reported.
    let metered = metered_output(&gw, "openai-responses/gpt-4.1").await;
    assert_eq!(metered, output + streamed_output);
}

#[actix_web::test]
async fn a_body_bound_for_a_forwarding_target_is_checked_like_any_other() {
    let m = mock(MockConfig::default()).await;
    let gw = every_kind(&m).await;
    let model = "openai-responses/gpt-4.1";
    for (body, param) in [
        (
            json!({"model": model, "input": "x", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (
            json!({"model": model, "input": "x", "tools": [{"type": "web_search"}]}),
            "tools[0]",
        ),
        (json!({"model": model, "input": 7}), "input"),
    ] {
        let res = post(&gw, "/v1/responses", &body).await;
        assert_eq!(res.status(), 400, "{body}");
        let error: Value = res.json().await.unwrap();
        let named = error["error"]["param"].as_str().unwrap_or_default();
        assert!(named.starts_with(param), "{body}: {error}");
    }
    // A second `model` key cannot pick the upstream model: the body is refused first.
    let res = gw
        .client
        .post(format!("{}/v1/responses", gw.url))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"model":"{model}","input":"x","model":"gpt-4.1-pro"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(m.stats().requests, 0, "nothing reached the provider");
}

#[actix_web::test]
async fn a_forwarded_responses_client_gets_the_upstreams_function_calls() {
    let m = mock(MockConfig::default()).await;
    let gw = every_kind(&m).await;
    let schema: Value = serde_json::from_str(WEATHER_SCHEMA).unwrap();
    let tools = json!([{"type": "function", "name": "get_weather", "parameters": schema,
                        "strict": true}]);
    let request = json!({"model": "openai-responses/gpt-4.1", "tools": tools,
                         "input": "Weather in Paris?"});
    let body: Value = post(&gw, "/v1/responses", &request)
        .await
        .json()
        .await
        .unwrap();
    let call = response_item(&body, "function_call").clone();
    assert!(call["id"].as_str().unwrap().starts_with("fc_"), "{body}");
    assert_eq!(call["arguments"], r#"{"city":"test"}"#);
    assert_eq!(m.stats().last_request.unwrap()["tools"][0]["strict"], true);

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let sse = post(&gw, "/v1/responses", &streamed)
        .await
        .text()
        .await
        .unwrap();
    let events = named_events(&sse);
    let arguments: String = events
        .iter()
        .filter(|(name, _)| name == "response.function_call_arguments.delta")
        .map(|(_, data)| data["delta"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, r#"{"city":"test"}"#, "{sse}");
    assert_eq!(events.last().unwrap().0, "response.completed");
    assert_eq!(m.stats().by_route["openai.responses"], 2);
}

#[actix_web::test]
async fn other_targets_of_a_responses_client_are_still_translated() {
    let m = mock(MockConfig::default()).await;
    let gw = every_kind(&m).await;
    // The fallback group: an OpenAI-compatible server without the Responses API, then one with.
    for model in ["openai/gpt-4o", "anthropic/claude-sonnet-4-20250514"] {
        let request =
            json!({"model": model, "input": "Hello there", "metadata": {"ticket": "T-1"}});
        let body: Value = post(&gw, "/v1/responses", &request)
            .await
            .json()
            .await
            .unwrap();
        let (text, _) = Ingress::OpenAiResponses.text_of(&body);
        assert!(text.contains("Hello there"), "{model}: {body}");
        // The gateway's own response object, which does not echo what it did not send.
        assert_eq!(body["metadata"], json!({}), "{model}: {body}");
    }
    let stats = m.stats();
    assert_eq!(stats.by_route["openai.responses"], 0);
    assert_eq!(stats.by_route["openai.chat"], 1);
    assert_eq!(stats.by_route["anthropic.messages"], 1);
}

#[actix_web::test]
async fn a_responses_client_falls_back_from_a_forwarding_target_to_a_translating_one() {
    let failing = mock(MockConfig {
        failure_rate: 1.0,
        failure_status: 503,
        ..MockConfig::default()
    })
    .await;
    let m = mock(MockConfig::default()).await;
    let yaml = r#"
providers:
  primary: { kind: openai, api_base: "{mock:f}/v1", api_key: k, responses_api: true }
  backup:  { kind: anthropic, api_base: "{mock:m}", api_key: k }
models:
  - name: smart
    targets: [ { provider: primary, model: gpt-4.1 }, { provider: backup, model: claude-sonnet-4-20250514 } ]
"#;
    let gw = TestGateway::start(yaml, &[("f", &failing), ("m", &m)]).await;
    let res = post(
        &gw,
        "/v1/responses",
        &json!({"model": "smart", "input": "Hello there"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-provider"], "backup");
    let body: Value = res.json().await.unwrap();
    let (text, _) = Ingress::OpenAiResponses.text_of(&body);
    assert!(text.contains("Hello there"), "{body}");
    assert!(failing.stats().by_route["openai.responses"] >= 1);
    assert_eq!(m.stats().by_route["anthropic.messages"], 1);
}

#[actix_web::test]
async fn a_forwarded_responses_stream_cut_short_ends_in_response_failed() {
    let m = mock(MockConfig {
        fail_mid_stream_after: Some(3),
        ..MockConfig::default()
    })
    .await;
    let gw = every_kind(&m).await;
    let request = Ingress::OpenAiResponses.request(
        "openai-responses/gpt-4.1",
        "Tell me a story",
        true,
        false,
    );
    let sse = post(&gw, "/v1/responses", &request)
        .await
        .text()
        .await
        .unwrap();
    let events = named_events(&sse);
    let created = &events[0].1["response"];
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "response.failed", "{sse}");
    assert_eq!(data["response"]["status"], "failed");
    // The same response, numbered on from the upstream's events.
    assert_eq!(data["response"]["id"], created["id"]);
    assert_eq!(data["sequence_number"], (events.len() - 1) as u64, "{sse}");
    assert!(
        !events.iter().any(|(n, _)| n == "response.completed"),
        "{sse}"
    );
}

/// A cache of one answer, whatever was asked: enough to see what a hit serves.
#[derive(Default)]
struct OneAnswerCache {
    kept: Mutex<Option<Bytes>>,
}

#[async_trait::async_trait]
impl ResponseCache for OneAnswerCache {
    async fn lookup(
        &self,
        ctx: &mut RequestContext,
        _headers: &HeaderMap,
        _body: &InboundBody,
    ) -> Result<Option<CachedAnswer>, GatewayError> {
        ctx.cache_state = Some(Arc::new(()));
        let kept = self.kept.lock().unwrap().clone();
        Ok(kept.map(|body| CachedAnswer { body }))
    }

    async fn store(&self, _ctx: &RequestContext, _body: &InboundBody, answer: &Bytes) {
        *self.kept.lock().unwrap() = Some(answer.clone());
    }
}

#[actix_web::test]
async fn a_cached_forwarded_answer_is_served_again_as_a_response() {
    let m = mock(MockConfig::default()).await;
    let cache = Arc::new(OneAnswerCache::default());
    let stages = Stages {
        cache: cache.clone(),
        ..Stages::default()
    };
    let yaml = r#"
providers:
  openai: { kind: openai, api_base: "{mock:m}/v1", api_key: k, responses_api: true }
models:
  - name: smart
    targets: [ { provider: openai, model: gpt-4.1 } ]
"#;
    let gw = TestGateway::start_with(yaml, &[("m", &m)], stages).await;
    let request = json!({"model": "smart", "input": "Hello there"});
    let first: Value = post(&gw, "/v1/responses", &request)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m.stats().by_route["openai.responses"], 1);
    // What the cache keeps is a chat completion, as every cached answer is.
    let kept: Value = serde_json::from_slice(&cache.kept.lock().unwrap().clone().unwrap()).unwrap();
    assert_eq!(kept["object"], "chat.completion", "{kept}");

    let res = post(&gw, "/v1/responses", &request).await;
    assert_eq!(res.status(), 200);
    let again: Value = res.json().await.unwrap();
    assert_eq!(
        m.stats().by_route["openai.responses"],
        1,
        "served from the cache"
    );
    assert_eq!(again["object"], "response");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["status"], "completed");
    let (text, output) = Ingress::OpenAiResponses.text_of(&again);
    assert_eq!(text, Ingress::OpenAiResponses.text_of(&first).0);
    assert_eq!(output, first["usage"]["output_tokens"].as_u64().unwrap());

    // A streamed request gets the kept answer as the Responses API's events.
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let sse = post(&gw, "/v1/responses", &streamed)
        .await
        .text()
        .await
        .unwrap();
    let (streamed_text, _) = Ingress::OpenAiResponses.streamed_text(&sse);
    assert_eq!(streamed_text, text);
    assert_eq!(m.stats().by_route["openai.responses"], 1);
}
