//! Every way in against every way out: a client of each API the gateway serves (OpenAI chat,
//! OpenAI Responses, Anthropic Messages) reaches every kind of provider for text, streams and
//! tools, and gets its answers and errors in its own API's shape. Same API in and out is in
//! `forwarding.rs`.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use common::ingress::{Ingress, WEATHER_SCHEMA, every_kind, named_events, post, response_item};
use common::mock;
use serde_json::{Value, json};
use tollgate_mock_provider::MockConfig;

/// A model of every provider kind, both of Vertex AI's formats, and an OpenAI target serving
/// the Responses API (its clients forwarded, not translated).
const TARGETS: &[&str] = &[
    "openai/gpt-4o",
    "openai-responses/gpt-4.1",
    "azure/prod-gpt4o",
    "anthropic/claude-sonnet-4-20250514",
    "gemini/gemini-2.5-flash",
    "on-bedrock",
    "on-mistral",
    "on-cohere",
    "vertex/gemini-2.5-flash",
    "vertex/claude-sonnet-4@20250514",
];

const INGRESSES: &[Ingress] = &[
    Ingress::OpenAiChat,
    Ingress::OpenAiResponses,
    Ingress::AnthropicMessages,
];

#[actix_web::test]
async fn every_ingress_reaches_every_provider_for_text_streams_and_tools() {
    let m = mock(MockConfig::default()).await;
    let gw = every_kind(&m).await;
    for &ingress in INGRESSES {
        for &model in TARGETS {
            let case = format!("{ingress:?} → {model}");

            let res = post(
                &gw,
                ingress.path(),
                &ingress.request(model, "Hello there", false, false),
            )
            .await;
            assert_eq!(res.status(), 200, "{case}");
            let body: Value = res.json().await.unwrap();
            let (text, output) = ingress.text_of(&body);
            assert!(text.contains("Hello there"), "{case}: {body}");
            assert!(output > 0, "{case}: {body}");

            let res = post(
                &gw,
                ingress.path(),
                &ingress.request(model, "Tell me a story", true, false),
            )
            .await;
            assert_eq!(res.status(), 200, "{case}");
            assert_eq!(res.headers()["content-type"], "text/event-stream", "{case}");
            let sse = res.text().await.unwrap();
            let (text, output) = ingress.streamed_text(&sse);
            assert!(text.contains("Tell me a story"), "{case}: {sse}");
            assert!(output > 0, "{case}: {sse}");

            if model.starts_with("azure/") {
                continue; // Azure's tool calls are OpenAI's, already covered.
            }
            let res = post(
                &gw,
                ingress.path(),
                &ingress.request(model, "Weather in Paris?", false, true),
            )
            .await;
            assert_eq!(res.status(), 200, "{case}");
            let body: Value = res.json().await.unwrap();
            let (name, args) = ingress.tool_call_of(&body);
            assert_eq!(name, "get_weather", "{case}");
            assert_eq!(args["city"], "test", "{case}: {body}");
        }
    }
}

#[actix_web::test]
async fn an_anthropic_client_sends_tool_results_back_and_streams_tool_calls() {
    let m = mock(MockConfig::default()).await;
    let gw = every_kind(&m).await;
    let schema: Value = serde_json::from_str(WEATHER_SCHEMA).unwrap();
    for &model in TARGETS {
        let tools =
            json!([{"name": "get_weather", "description": "Weather", "input_schema": schema}]);
        let res = post(
            &gw,
            "/v1/messages",
            &json!({"model": model, "max_tokens": 100, "stream": true,
            "tools": tools, "messages": [{"role": "user", "content": "Weather in Paris?"}]}),
        )
        .await;
        let sse = res.text().await.unwrap();
        let events = named_events(&sse);
        let start = events
            .iter()
            .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
            .unwrap_or_else(|| panic!("{model}: no tool_use block in {sse}"));
        let id = start.1["content_block"]["id"].as_str().unwrap().to_owned();
        let json: String = events
            .iter()
            .filter(|(n, d)| n == "content_block_delta" && d["delta"]["type"] == "input_json_delta")
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
            .collect();
        let input: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(input["city"], "test", "{model}");
        let delta = events.iter().find(|(n, _)| n == "message_delta").unwrap();
        assert_eq!(delta.1["delta"]["stop_reason"], "tool_use", "{model}");

        let res = post(
            &gw,
            "/v1/messages",
            &json!({"model": model, "max_tokens": 100, "tools": tools,
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": id, "name": "get_weather", "input": input}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": id, "content": "{\"temp_c\": 21}"}]}
            ]}),
        )
        .await;
        assert_eq!(res.status(), 200, "{model}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["stop_reason"], "end_turn", "{model}: {body}");
    }
}

#[actix_web::test]
async fn anthropic_clients_get_anthropic_errors() {
    let m = mock(MockConfig::default()).await;
    let gw = every_kind(&m).await;
    let cases = [
        (
            json!({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
            404,
            "not_found_error",
            "nope",
        ),
        (
            json!({"model": "smart", "messages": [{"role": "user", "content": "x"}]}),
            400,
            "invalid_request_error",
            "max_tokens",
        ),
        (
            json!({"model": "smart", "max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]}),
            400,
            "invalid_request_error",
            "messages.0.role",
        ),
        (
            json!({"model": "smart", "max_tokens": 5, "messages": []}),
            400,
            "invalid_request_error",
            "messages",
        ),
        (
            json!({"model": "smart", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "bash_20250124", "name": "bash"}]}),
            400,
            "invalid_request_error",
            "tools.0.type",
        ),
    ];
    for (body, status, kind, mention) in cases {
        let res = post(&gw, "/v1/messages", &body).await;
        assert_eq!(res.status(), status, "{body}");
        assert!(res.headers().contains_key("x-request-id"));
        let error: Value = res.json().await.unwrap();
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["error"]["type"], kind, "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains(mention),
            "{error}"
        );
    }
    let res = gw
        .client
        .post(format!("{}/v1/messages", gw.url))
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let error: Value = res.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
}

#[actix_web::test]
async fn an_interrupted_stream_ends_in_an_anthropic_error_event() {
    let m = mock(MockConfig {
        fail_mid_stream_after: Some(3),
        ..MockConfig::default()
    })
    .await;
    let gw = every_kind(&m).await;
    let res = post(
        &gw,
        "/v1/messages",
        &Ingress::AnthropicMessages.request("openai/gpt-4o", "Tell me a story", true, false),
    )
    .await;
    let sse = res.text().await.unwrap();
    let events = named_events(&sse);
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error", "{sse}");
    assert_eq!(data["error"]["type"], "api_error");
    assert!(!events.iter().any(|(n, _)| n == "message_stop"), "{sse}");
}

#[actix_web::test]
async fn count_tokens_counts_without_calling_a_model() {
    let m = mock(MockConfig::default()).await;
    let gw = every_kind(&m).await;
    let short = json!({"model": "smart", "messages": [{"role": "user", "content": "Hi"}]});
    let long = json!({"model": "smart", "system": "You are a careful assistant.",
        "messages": [{"role": "user", "content": "Hi there, how are you doing today?"}]});
    let mut counts = Vec::new();
    for body in [&short, &long] {
        let res = post(&gw, "/v1/messages/count_tokens", body).await;
        assert_eq!(res.status(), 200);
        let count: Value = res.json().await.unwrap();
        counts.push(count["input_tokens"].as_u64().unwrap());
    }
    assert!(counts[0] > 0 && counts[1] > counts[0], "{counts:?}");
    assert_eq!(m.stats().requests, 0);
    let res = post(
        &gw,
        "/v1/messages/count_tokens",
        &json!({"model": "nope", "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(res.status(), 404);
    let error: Value = res.json().await.unwrap();
    assert_eq!(error["error"]["type"], "not_found_error");
}

#[actix_web::test]
async fn a_responses_client_sends_function_outputs_back_and_cannot_lean_on_stored_state() {
    let m = mock(MockConfig::default()).await;
    let gw = every_kind(&m).await;
    let schema: Value = serde_json::from_str(WEATHER_SCHEMA).unwrap();
    let tools = json!([{"type": "function", "name": "get_weather", "parameters": schema}]);
    for &model in TARGETS {
        let first = post(
            &gw,
            "/v1/responses",
            &json!({"model": model, "tools": tools,
            "input": "Weather in Paris?"}),
        )
        .await;
        let body: Value = first.json().await.unwrap();
        let call = response_item(&body, "function_call").clone();
        let res = post(&gw, "/v1/responses", &json!({"model": model, "tools": tools,
            "input": [
                {"role": "user", "content": "Weather in Paris?"},
                call,
                {"type": "function_call_output", "call_id": call["call_id"], "output": "{\"temp_c\": 21}"}
            ]}))
        .await;
        assert_eq!(res.status(), 200, "{model}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], "completed", "{model}: {body}");
        assert!(response_item(&body, "message")["content"][0]["text"].is_string());
    }
    let res = post(
        &gw,
        "/v1/responses",
        &json!({"model": "smart", "input": "x",
        "previous_response_id": "resp_123"}),
    )
    .await;
    assert_eq!(res.status(), 400);
    let error: Value = res.json().await.unwrap();
    assert_eq!(error["error"]["param"], "previous_response_id", "{error}");
    assert_eq!(error["error"]["type"], "invalid_request_error");
}
