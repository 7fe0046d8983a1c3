//! What the tests of the ways in share: a gateway with every kind of provider, the APIs a
//! client may call with a request and a reading of each one's answers, and typed-event streams.

use serde_json::{Value, json};
use tollgate_mock_provider::MockServer;

use super::{AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, TestGateway};

/// A gateway with every kind of provider on `m`: [`super::ALL_KINDS`], and Bedrock, Mistral,
/// Cohere (their models named through groups), Vertex AI (its token from the mock) and an
/// OpenAI provider serving the Responses API.
pub async fn every_kind(m: &MockServer) -> TestGateway {
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
    let yaml = super::ALL_KINDS.replace("models:\n", &more);
    TestGateway::start(&yaml, &[("m", m)]).await
}

#[derive(Debug, Clone, Copy)]
pub enum Ingress {
    OpenAiChat,
    OpenAiResponses,
    AnthropicMessages,
}

pub const WEATHER_SCHEMA: &str =
    r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#;

impl Ingress {
    pub fn path(self) -> &'static str {
        match self {
            Ingress::OpenAiChat => "/v1/chat/completions",
            Ingress::OpenAiResponses => "/v1/responses",
            Ingress::AnthropicMessages => "/v1/messages",
        }
    }

    pub fn request(self, model: &str, text: &str, stream: bool, tools: bool) -> Value {
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
    pub fn text_of(self, body: &Value) -> (String, u64) {
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
    pub fn streamed_text(self, sse: &str) -> (String, u64) {
        let mut text = String::new();
        let mut output = 0;
        match self {
            Ingress::OpenAiChat => {
                assert!(sse.ends_with("data: [DONE]\n\n"), "{sse}");
                for data in super::events(sse) {
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
    pub fn tool_call_of(self, body: &Value) -> (String, Value) {
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
pub fn response_item<'a>(body: &'a Value, kind: &str) -> &'a Value {
    body["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} item in {body}"))
}

/// `(event name, data)` of each event of a stream of typed events (Anthropic's, Responses').
pub fn named_events(sse: &str) -> Vec<(String, Value)> {
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

pub async fn post(gw: &TestGateway, path: &str, body: &Value) -> reqwest::Response {
    gw.client
        .post(format!("{}{path}", gw.url))
        .json(body)
        .send()
        .await
        .unwrap()
}
