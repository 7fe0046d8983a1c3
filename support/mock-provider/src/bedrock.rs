//! AWS Bedrock's Converse API: `POST /model/{modelId}/converse` and `/converse-stream`.
//!
//! Every request must be signed with SigV4 for the service `bedrock` by the key pair in
//! [`MockConfig`](crate::MockConfig) ([`crate::sigv4`]), as Bedrock requires; the streamed answer
//! is framed in the AWS event stream encoding, checksums included.
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{BufMut, BytesMut};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::answer::{self, Answer, push_json_str, push_u64};
use crate::behaviour::{State, failure_message};
use crate::http;
use crate::sigv4::{self, Keys, SignedRequest};
use crate::stats::Route;
use crate::stream::{BodyStream, Source};

/// The exception Bedrock names for `status`.
fn exception(status: u16) -> &'static str {
    match status {
        400 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    }
}

/// An error as Bedrock sends one: `{"message": ...}`, the exception in `x-amzn-ErrorType`.
fn error_response(mut response: HttpResponse, exception: &str, message: &str) -> HttpResponse {
    let body = http::to_json(&json!({ "message": message }));
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{exception}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    )) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-amzn-errortype"), value);
    }
    response.set_body(body).map_into_boxed_body()
}

fn error(status: u16, exception: &str, message: &str) -> HttpResponse {
    let response = http::json(http::status(status), Vec::new());
    error_response(response, exception, message)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseRequest {
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    system: Vec<TextBlock>,
    #[serde(default)]
    inference_config: Option<InferenceConfig>,
    #[serde(default)]
    tool_config: Option<ToolConfig>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: Vec<Block>,
}

#[derive(Deserialize)]
struct TextBlock {
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Block {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_use: Option<Value>,
    #[serde(default)]
    tool_result: Option<ToolResultBlock>,
}

#[derive(Deserialize)]
struct ToolResultBlock {
    #[serde(default)]
    content: Vec<TextBlock>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig {
    #[serde(default)]
    max_tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig {
    tools: Vec<Tool>,
    #[serde(default)]
    tool_choice: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tool {
    tool_spec: ToolSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolSpec {
    name: String,
    #[serde(default)]
    input_schema: Option<Value>,
}

impl ConverseRequest {
    /// What Bedrock's validation refuses before a model sees the request.
    fn problem(&self) -> Option<&'static str> {
        let messages = self.messages.as_deref()?;
        if messages.first().is_none_or(|m| m.role != "user") {
            return Some(
                "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
            );
        }
        if messages.windows(2).any(|pair| pair[0].role == pair[1].role) {
            return Some(
                "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.",
            );
        }
        if messages
            .iter()
            .any(|m| !matches!(m.role.as_str(), "user" | "assistant"))
        {
            return Some("The role of a message must be user or assistant.");
        }
        let blank = messages
            .iter()
            .flat_map(|m| &m.content)
            .any(|b| b.text.as_deref().is_some_and(|t| t.trim().is_empty()));
        if blank {
            return Some(
                "The text field in the ContentBlock object is blank. Add text to the text field, and try again.",
            );
        }
        let tool_blocks = messages
            .iter()
            .flat_map(|m| &m.content)
            .any(|b| b.tool_use.is_some() || b.tool_result.is_some());
        if tool_blocks && self.tool_config.is_none() {
            return Some(
                "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
            );
        }
        None
    }

    /// The tool the answer calls: none when answering a tool result, else the named one or
    /// the first.
    fn tool_to_call(&self, messages: &[Message]) -> Option<&ToolSpec> {
        let answering_result = messages
            .last()
            .is_some_and(|m| m.content.iter().any(|b| b.tool_result.is_some()));
        if answering_result {
            return None;
        }
        let config = self.tool_config.as_ref()?;
        let mut tools = config.tools.iter().map(|t| &t.tool_spec);
        match config
            .tool_choice
            .as_ref()
            .and_then(|c| c.get("tool"))
            .and_then(|t| t.get("name"))
            .and_then(Value::as_str)
        {
            Some(name) => tools.find(|t| t.name == name),
            None => tools.next(),
        }
    }
}

/// The model id of `/model/{modelId}/...`, percent-decoded.
fn model_id(req: &HttpRequest) -> String {
    let path = req.uri().path();
    let raw = path
        .strip_prefix("/model/")
        .and_then(|rest| rest.rsplit_once('/'))
        .map_or("", |(model, _)| model);
    sigv4::percent_decode(raw)
}

fn unix_now() -> i64 {
    i64::try_from(answer::unix_now()).unwrap_or(i64::MAX)
}

/// `POST /model/{modelId}/converse`.
pub(crate) async fn converse(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    state.stats.record(Route::BedrockConverse, &req, &body);
    handle(&req, &body, &state, false).await
}

/// `POST /model/{modelId}/converse-stream`.
pub(crate) async fn converse_stream(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    state
        .stats
        .record(Route::BedrockConverseStream, &req, &body);
    handle(&req, &body, &state, true).await
}

async fn handle(req: &HttpRequest, body: &[u8], state: &State, stream: bool) -> HttpResponse {
    let active = state.active();
    let model = model_id(req);
    active.pause(&model).await;
    let config = &active.config;
    let keys = Keys {
        access_key_id: &config.aws_access_key_id,
        secret_access_key: &config.aws_secret_access_key,
        session_token: config.aws_session_token.as_deref(),
        service: "bedrock",
    };
    if let Err(refusal) = sigv4::verify(&SignedRequest::from_actix(req, body), &keys, unix_now()) {
        return error(403, refusal.exception, &refusal.message);
    }
    let request = match serde_json::from_slice::<ConverseRequest>(body) {
        Ok(request) => request,
        Err(err) => {
            return error(
                400,
                "ValidationException",
                &format!(
                    "Malformed input request: {err}, please reformat your input and try again."
                ),
            );
        }
    };
    let Some(messages) = request.messages.as_deref() else {
        return error(
            400,
            "ValidationException",
            "1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must not be null",
        );
    };
    if let Some(problem) = request.problem() {
        return error(400, "ValidationException", problem);
    }
    if let Some(code) = active.injected_failure(&model, &state.stats) {
        let response = http::failure(code, config.retry_after_secs, Vec::new());
        return error_response(response, exception(code), &failure_message(code));
    }

    let mut chars = request
        .system
        .iter()
        .map(|s| s.text.chars().count())
        .sum::<usize>();
    for block in messages.iter().flat_map(|m| &m.content) {
        chars += block.text.as_deref().map_or(0, |t| t.chars().count());
        if let Some(result) = &block.tool_result {
            chars += result
                .content
                .iter()
                .map(|c| c.text.chars().count())
                .sum::<usize>();
        }
    }
    let input_tokens = answer::prompt_tokens(chars);
    let user_text = messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .and_then(|m| m.content.iter().find_map(|b| b.text.as_deref()))
        .unwrap_or("");
    let reply = match request.tool_to_call(messages) {
        Some(tool) => {
            let input =
                answer::arguments_for(tool.input_schema.as_ref().and_then(|s| s.get("json")));
            let json = serde_json::to_string(&input).unwrap_or_else(|_| "{}".to_owned());
            let parts = answer::fragments(&json, config.chunks)
                .into_iter()
                .map(str::to_owned)
                .collect();
            Reply::Tool {
                id: answer::random_id("tooluse_", 22),
                name: tool.name.clone(),
                input,
                parts,
            }
        }
        None => Reply::Text(Answer::new("Bedrock", user_text, config.chunks)),
    };
    let max_tokens = request.inference_config.as_ref().and_then(|c| c.max_tokens);

    if stream {
        let source = ConverseStream {
            input_tokens,
            reply,
        };
        let stream = BodyStream::new(source, config, state.stats.clone());
        return http::streamed("application/vnd.amazon.eventstream", stream);
    }

    let output_tokens = match config.exhaust_output {
        Some(limit) => max_tokens.unwrap_or(limit),
        None => reply.output_tokens(),
    };
    let content = match &reply {
        Reply::Text(answer) => json!([{ "text": answer.text }]),
        Reply::Tool {
            id, name, input, ..
        } => {
            json!([{ "toolUse": { "toolUseId": id, "name": name, "input": input } }])
        }
    };
    let answer = json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": reply.stop_reason(),
        "usage": {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens.saturating_add(output_tokens),
        },
        "metrics": {"latencyMs": config.latency_ms},
    });
    http::json(StatusCode::OK, http::to_json(&answer))
}

enum Reply {
    Text(Answer),
    Tool {
        id: String,
        name: String,
        input: Map<String, Value>,
        parts: Vec<String>,
    },
}

impl Reply {
    fn output_tokens(&self) -> u64 {
        match self {
            Reply::Text(answer) => answer.deltas() as u64,
            Reply::Tool { parts, .. } => parts.len() as u64,
        }
    }

    fn stop_reason(&self) -> &'static str {
        match self {
            Reply::Text(_) => "end_turn",
            Reply::Tool { .. } => "tool_use",
        }
    }
}

/// Appends one event stream message: the event's name, `event` as its message type, JSON.
fn event_message(out: &mut BytesMut, event_type: &str, payload: &[u8]) {
    let headers: [(&str, &str); 3] = [
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ];
    let mut encoded = BytesMut::new();
    for (name, value) in headers {
        // Names and values here are short constants: their lengths fit the u8 and u16 fields.
        encoded.put_u8(name.len() as u8);
        encoded.put_slice(name.as_bytes());
        encoded.put_u8(7);
        encoded.put_u16(value.len() as u16);
        encoded.put_slice(value.as_bytes());
    }
    let total = 16 + encoded.len() + payload.len();
    let start = out.len();
    out.put_u32(total as u32);
    out.put_u32(encoded.len() as u32);
    let prelude_crc = crc32fast::hash(&out[start..]);
    out.put_u32(prelude_crc);
    out.put_slice(&encoded);
    out.put_slice(payload);
    let message_crc = crc32fast::hash(&out[start..]);
    out.put_u32(message_crc);
}

/// messageStart, a tool call's contentBlockStart, the deltas, contentBlockStop, messageStop,
/// metadata.
struct ConverseStream {
    input_tokens: u64,
    reply: Reply,
}

impl ConverseStream {
    fn deltas(&self) -> usize {
        self.reply.output_tokens() as usize
    }

    /// The step of the first delta: after messageStart, and a tool call's contentBlockStart.
    fn first_delta(&self) -> usize {
        match self.reply {
            Reply::Text(_) => 1,
            Reply::Tool { .. } => 2,
        }
    }
}

impl Source for ConverseStream {
    fn steps(&self) -> usize {
        self.first_delta() + self.deltas() + 3
    }

    fn is_content(&self, step: usize) -> bool {
        (self.first_delta()..self.first_delta() + self.deltas()).contains(&step)
    }

    fn render(&mut self, step: usize, out: &mut BytesMut) {
        let first = self.first_delta();
        let deltas = self.deltas();
        let mut payload = BytesMut::with_capacity(128);
        let event = match step {
            0 => {
                payload.put_slice(b"{\"role\":\"assistant\"}");
                "messageStart"
            }
            1 if first == 2 => {
                if let Reply::Tool { id, name, .. } = &self.reply {
                    payload.put_slice(
                        b"{\"contentBlockIndex\":0,\"start\":{\"toolUse\":{\"toolUseId\":",
                    );
                    push_json_str(&mut payload, id);
                    payload.put_slice(b",\"name\":");
                    push_json_str(&mut payload, name);
                    payload.put_slice(b"}}}");
                }
                "contentBlockStart"
            }
            s if s < first + deltas => {
                payload.put_slice(b"{\"contentBlockIndex\":0,\"delta\":");
                match &self.reply {
                    Reply::Text(answer) => {
                        payload.put_slice(b"{\"text\":");
                        push_json_str(&mut payload, answer.delta(s - first));
                    }
                    Reply::Tool { parts, .. } => {
                        payload.put_slice(b"{\"toolUse\":{\"input\":");
                        push_json_str(
                            &mut payload,
                            parts.get(s - first).map_or("", String::as_str),
                        );
                        payload.put_u8(b'}');
                    }
                }
                payload.put_slice(b"}}");
                "contentBlockDelta"
            }
            s if s == first + deltas => {
                payload.put_slice(b"{\"contentBlockIndex\":0}");
                "contentBlockStop"
            }
            s if s == first + deltas + 1 => {
                payload.put_slice(b"{\"stopReason\":");
                push_json_str(&mut payload, self.reply.stop_reason());
                payload.put_u8(b'}');
                "messageStop"
            }
            _ => {
                let output = self.reply.output_tokens();
                payload.put_slice(b"{\"usage\":{\"inputTokens\":");
                push_u64(&mut payload, self.input_tokens);
                payload.put_slice(b",\"outputTokens\":");
                push_u64(&mut payload, output);
                payload.put_slice(b",\"totalTokens\":");
                push_u64(&mut payload, self.input_tokens.saturating_add(output));
                payload.put_slice(b"},\"metrics\":{\"latencyMs\":0}}");
                "metadata"
            }
        };
        event_message(out, event, &payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages of an event stream, read back with their checksums checked.
    fn read_messages(mut bytes: &[u8]) -> Vec<(String, Value)> {
        let mut messages = Vec::new();
        while !bytes.is_empty() {
            let total = u32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize;
            let headers_len = u32::from_be_bytes(bytes[4..8].try_into().unwrap()) as usize;
            let prelude_crc = u32::from_be_bytes(bytes[8..12].try_into().unwrap());
            assert_eq!(prelude_crc, crc32fast::hash(&bytes[0..8]));
            let message_crc = u32::from_be_bytes(bytes[total - 4..total].try_into().unwrap());
            assert_eq!(message_crc, crc32fast::hash(&bytes[..total - 4]));
            let headers = &bytes[12..12 + headers_len];
            // The first header is `:event-type`.
            let name_len = usize::from(headers[0]);
            assert_eq!(&headers[1..1 + name_len], b":event-type");
            let value_len = usize::from(u16::from_be_bytes([
                headers[2 + name_len],
                headers[3 + name_len],
            ]));
            let value_start = 4 + name_len;
            let event =
                String::from_utf8(headers[value_start..value_start + value_len].to_vec()).unwrap();
            let payload: Value =
                serde_json::from_slice(&bytes[12 + headers_len..total - 4]).unwrap();
            messages.push((event, payload));
            bytes = &bytes[total..];
        }
        messages
    }

    fn render_all(source: &mut ConverseStream) -> Vec<(String, Value)> {
        let mut out = BytesMut::new();
        for step in 0..source.steps() {
            source.render(step, &mut out);
        }
        read_messages(&out)
    }

    #[test]
    fn a_text_answer_streams_as_framed_events() {
        let mut source = ConverseStream {
            input_tokens: 4,
            reply: Reply::Text(Answer::new("Bedrock", "hello there", 3)),
        };
        let events = render_all(&mut source);
        let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(
            names,
            [
                "messageStart",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata"
            ]
        );
        let text: String = events[1..4]
            .iter()
            .map(|(_, p)| p["delta"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(text, "Mock Bedrock answer to: hello there");
        assert_eq!(events[5].1, json!({"stopReason": "end_turn"}));
        assert_eq!(
            events[6].1["usage"],
            json!({"inputTokens": 4, "outputTokens": 3, "totalTokens": 7})
        );
        assert!(source.is_content(1) && source.is_content(3) && !source.is_content(4));
    }

    #[test]
    fn a_tool_call_streams_its_start_then_input_pieces() {
        let mut input = Map::new();
        input.insert("city".into(), json!("test"));
        let mut source = ConverseStream {
            input_tokens: 4,
            reply: Reply::Tool {
                id: "tooluse_1".into(),
                name: "weather".into(),
                input,
                parts: vec!["{\"city\":".into(), "\"test\"}".into()],
            },
        };
        let events = render_all(&mut source);
        assert_eq!(events[1].0, "contentBlockStart");
        assert_eq!(
            events[1].1["start"]["toolUse"],
            json!({"toolUseId": "tooluse_1", "name": "weather"})
        );
        let input: String = events[2..4]
            .iter()
            .map(|(_, p)| p["delta"]["toolUse"]["input"].as_str().unwrap())
            .collect();
        assert_eq!(input, "{\"city\":\"test\"}");
        assert_eq!(events[5].1, json!({"stopReason": "tool_use"}));
        assert_eq!(events.len(), 7);
    }

    #[test]
    fn validation_follows_bedrock() {
        let parse = |value: Value| serde_json::from_value::<ConverseRequest>(value).unwrap();
        let ok = parse(json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}));
        assert_eq!(ok.problem(), None);
        let assistant_first =
            parse(json!({"messages": [{"role": "assistant", "content": [{"text": "hi"}]}]}));
        assert!(
            assistant_first
                .problem()
                .unwrap()
                .contains("start with a user")
        );
        let twice = parse(json!({"messages": [
            {"role": "user", "content": [{"text": "a"}]},
            {"role": "user", "content": [{"text": "b"}]}
        ]}));
        assert!(twice.problem().unwrap().contains("alternate"));
        let tools_without_config = parse(json!({"messages": [
            {"role": "user", "content": [{"text": "a"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": [{"text": "r"}]}}]}
        ]}));
        assert!(
            tools_without_config
                .problem()
                .unwrap()
                .contains("toolConfig")
        );
        let blank = parse(json!({"messages": [{"role": "user", "content": [{"text": " "}]}]}));
        assert!(blank.problem().unwrap().contains("blank"));
    }
}
