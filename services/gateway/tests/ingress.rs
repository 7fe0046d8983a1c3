//! Every way in against every way out: a client of each API the gateway serves (OpenAI chat,
//! OpenAI Responses, Anthropic Messages) reaches every kind of provider for text, streams and tools, and gets
//! its answers and errors in its own API's shape.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use std::sync::{Arc, Mutex};

use actix_web::http::header::HeaderMap;
use bytes::Bytes;
use common::{AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, TestGateway, mock};
use serde_json::{Value, json};
use tollgate_gateway::openai::InboundBody;
use tollgate_gateway::pipeline::{CachedAnswer, RequestContext, ResponseCache};
use tollgate_gateway::{GatewayError, Stages};
use tollgate_mock_provider::MockConfig;
use tollgate_mock_provider::MockServer;

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

/// A gateway with every kind of provider on `m`: [`common::ALL_KINDS`], and Bedrock, Mistral,
/// Cohere (their models named through groups), Vertex AI (its token from the mock) and an
/// OpenAI provider serving the Responses API.
async fn every_kind(m: &MockServer) -> TestGateway {
    let key_file = format!(
        "{}/src/providers/vertex/fixtures/test-only-service-account.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let more = format!(
        r#"  openai-responses: {{ kind: openai, api_base: "{{mock:m}}/v1", api_key: k, responses_api: true }}
  mistral: {{ kind: mistral, api_base: "{{mock:m}}/mistral", api_key: k }}
  cohere:  {{ kind: cohere,  api_base: "{{mock:m}}", api_key: k }}
  vertex:  {{ kind: vertex, project: test-project, location: us-central1, api_base: "{{mock:m}}",
             token_url: "{{mock:m}}/token", credentials_file: "{key_file}" }}
  bedrock: {{ kind: bedrock, api_base: "{{mock:m}}", region: us-east-1,
             aws_access_key_id: {AWS_ACCESS_KEY_ID}, aws_secret_access_key: "{AWS_SECRET_ACCESS_KEY}" }}
models:
  - name: on-bedrock
    targets: [ {{ provider: bedrock, model: "anthropic.claude-3-haiku-20240307-v1:0" }} ]
  - name: on-mistral
    targets: [ {{ provider: mistral, model: mistral-large-latest }} ]
  - name: on-cohere
    targets: [ {{ provider: cohere, model: command-a-03-2025 }} ]
"#
    );
    let yaml = common::ALL_KINDS.replace("models:\n", &more);
    TestGateway::start(&yaml, &[("m", m)]).await
}

#[derive(Debug, Clone, Copy)]
enum Ingress {
    OpenAiChat,
    OpenAiResponses,
    AnthropicMessages,
}

const INGRESSES: &[Ingress] = &[
    Ingress::OpenAiChat,
    Ingress::OpenAiResponses,
    Ingress::AnthropicMessages,
];

const WEATHER_SCHEMA: &str =
    r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#;

impl Ingress {
    fn path(self) -> &'static str {
        match self {
            Ingress::OpenAiChat => "/v1/chat/completions",
            Ingress::OpenAiResponses => "/v1/responses",
            Ingress::AnthropicMessages => "/v1/messages",
        }
    }

    fn request(self, model: &str, text: &str, stream: bool, tools: bool) -> Value {
        let schema: Value = serde_json::from_str(WEATHER_SCHEMA).unwrap();
        match self {
            Ingress::OpenAiChat => {
                let mut body = json!({"model": model, "stream": stream,
                    "messages": [{"role": "user", "content": text}]});
                if stream {
                    body["stream_options"] = json!({"include_usage": true});
                }
                if tools {
                    body["tools"] = json!([{"type": "function", "function":
                        {"name": "get_weather", "parameters": schema}}]);
                }
                body
            }
            Ingress::OpenAiResponses => {
                let mut body = json!({"model": model, "input": text, "stream": stream,
                                      "max_output_tokens": 200});
                if tools {
                    body["tools"] =
                        json!([{"type": "function", "name": "get_weather", "parameters": schema}]);
                }
                body
            }
            Ingress::AnthropicMessages => {
                let mut body = json!({"model": model, "max_tokens": 200, "stream": stream,
                    "messages": [{"role": "user", "content": text}]});
                if tools {
                    body["tools"] = json!([{"name": "get_weather", "input_schema": schema}]);
                }
                body
            }
        }
    }

    /// The answer's text and output tokens, from a whole answer.
    fn text_of(self, body: &Value) -> (String, u64) {
        match self {
            Ingress::OpenAiChat => (
                body["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                body["usage"]["completion_tokens"].as_u64().unwrap(),
            ),
            Ingress::OpenAiResponses => {
                assert_eq!(body["object"], "response", "{body}");
                assert_eq!(body["status"], "completed", "{body}");
                let message = response_item(body, "message");
                (
                    message["content"][0]["text"].as_str().unwrap().to_owned(),
                    body["usage"]["output_tokens"].as_u64().unwrap(),
                )
            }
            Ingress::AnthropicMessages => {
                assert_eq!(body["type"], "message", "{body}");
                (
                    body["content"][0]["text"].as_str().unwrap().to_owned(),
                    body["usage"]["output_tokens"].as_u64().unwrap(),
                )
            }
        }
    }

    /// The answer's text and output tokens, from a stream.
    fn streamed_text(self, sse: &str) -> (String, u64) {
        let mut text = String::new();
        let mut output = 0;
        match self {
            Ingress::OpenAiChat => {
                assert!(sse.ends_with("data: [DONE]\n\n"), "{sse}");
                for data in common::events(sse) {
                    let Ok(chunk) = serde_json::from_str::<Value>(&data) else {
                        continue;
                    };
                    if let Some(t) = chunk["choices"][0]["delta"]["content"].as_str() {
                        text.push_str(t);
                    }
                    if let Some(n) = chunk["usage"]["completion_tokens"].as_u64() {
                        output = n;
                    }
                }
            }
            Ingress::OpenAiResponses => {
                let events = named_events(sse);
                assert_eq!(events.first().unwrap().0, "response.created", "{sse}");
                assert_eq!(events.last().unwrap().0, "response.completed", "{sse}");
                for (name, data) in events {
                    if name == "response.output_text.delta" {
                        text.push_str(data["delta"].as_str().unwrap());
                    }
                    if name == "response.completed" {
                        output = data["response"]["usage"]["output_tokens"].as_u64().unwrap();
                    }
                }
            }
            Ingress::AnthropicMessages => {
                let events = named_events(sse);
                assert_eq!(events.first().unwrap().0, "message_start", "{sse}");
                assert_eq!(events.last().unwrap().0, "message_stop", "{sse}");
                for (name, data) in events {
                    if name == "content_block_delta" {
                        text.push_str(data["delta"]["text"].as_str().unwrap_or_default());
                    }
                    if name == "message_delta" {
                        output = data["usage"]["output_tokens"].as_u64().unwrap();
                    }
                }
            }
        }
        (text, output)
    }

    /// The first tool call's name and arguments.
    fn tool_call_of(self, body: &Value) -> (String, Value) {
        match self {
            Ingress::OpenAiChat => {
                assert_eq!(body["choices"][0]["finish_reason"], "tool_calls", "{body}");
                let call = &body["choices"][0]["message"]["tool_calls"][0]["function"];
                (
                    call["name"].as_str().unwrap().to_owned(),
                    serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap(),
                )
            }
            Ingress::OpenAiResponses => {
                let call = response_item(body, "function_call");
                assert!(!call["call_id"].as_str().unwrap().is_empty(), "{body}");
                (
                    call["name"].as_str().unwrap().to_owned(),
                    serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap(),
                )
            }
            Ingress::AnthropicMessages => {
                assert_eq!(body["stop_reason"], "tool_use", "{body}");
                let call = body["content"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|b| b["type"] == "tool_use")
                    .unwrap();
                assert!(!call["id"].as_str().unwrap().is_empty());
                (
                    call["name"].as_str().unwrap().to_owned(),
                    call["input"].clone(),
                )
            }
        }
    }
}

/// The first output item of `kind` in a Responses answer.
fn response_item<'a>(body: &'a Value, kind: &str) -> &'a Value {
    body["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} item in {body}"))
}

/// `(event name, data)` of each event of a stream of typed events (Anthropic's, Responses').
fn named_events(sse: &str) -> Vec<(String, Value)> {
    sse.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap();
                }
            }
            assert_eq!(data["type"], name.as_str(), "{e}");
            (name, data)
        })
        .collect()
}

async fn post(gw: &TestGateway, path: &str, body: &Value) -> reqwest::Response {
    gw.client
        .post(format!("{}{path}", gw.url))
        .json(body)
        .send()
        .await
        .unwrap()
}

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
