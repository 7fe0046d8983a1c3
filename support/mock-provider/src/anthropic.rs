//! Anthropic Messages API.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::answer::{self, Answer, Text, push_json_str, push_u64};
use crate::behaviour::{State, failure_message};
use crate::http;
use crate::stats::Route;
use crate::stream::{BodyStream, Source};

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

/// The error type Anthropic reports with `status`.
fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

fn error_body(status: u16, message: &str) -> Vec<u8> {
    http::to_json(&ErrorBody {
        kind: "error",
        error: ErrorDetail {
            kind: error_type(status),
            message,
        },
    })
}

/// An error in the shape `{"type":"error","error":{"type","message"}}`.
fn error(status: u16, message: &str) -> HttpResponse {
    http::json(http::status(status), error_body(status, message))
}

#[derive(Deserialize)]
struct MessagesRequest<'a> {
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default, borrow)]
    messages: Option<Vec<Message<'a>>>,
    #[serde(default, borrow)]
    system: Option<Text<'a>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    /// Vertex AI's stand-in for the `anthropic-version` header.
    #[serde(default, borrow)]
    anthropic_version: Option<Cow<'a, str>>,
}

/// The only version Vertex AI serves Claude at.
const VERTEX_VERSION: &str = "vertex-2023-10-16";

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(default, borrow)]
    content: Text<'a>,
}

#[derive(Deserialize)]
struct Tool {
    name: String,
    #[serde(default)]
    input_schema: Option<Value>,
}

impl MessagesRequest<'_> {
    fn tool_to_call(&self, messages: &[Message<'_>]) -> Option<&Tool> {
        let answering_result = messages
            .last()
            .is_some_and(|m| m.role == "user" && m.content.tool_result);
        if answering_result {
            return None;
        }
        let mut tools = self.tools.iter().flatten();
        let choice = self.tool_choice.as_ref();
        match choice.and_then(|c| c.get("type")).and_then(Value::as_str) {
            Some("none") => None,
            Some("tool") => {
                let name = choice.and_then(|c| c.get("name")).and_then(Value::as_str)?;
                tools.find(|t| t.name == name)
            }
            _ => tools.next(),
        }
    }
}

/// Where a Messages request came in, which decides where its model and version are.
#[derive(Clone, Copy)]
pub(crate) enum Dialect<'a> {
    /// Anthropic's API: the model in the body, the version and the key in headers.
    Anthropic,
    /// Vertex AI's `rawPredict`: the model in the URL, the version in the body, the caller
    /// already checked.
    Vertex { model: &'a str },
}

/// `POST /v1/messages`.
pub(crate) async fn messages(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    serve(&req, body, &state, Dialect::Anthropic).await
}

/// A Messages request answered Anthropic's way.
pub(crate) async fn serve(
    req: &HttpRequest,
    body: web::Bytes,
    state: &State,
    dialect: Dialect<'_>,
) -> HttpResponse {
    state.stats.record(Route::AnthropicMessages, req, &body);
    let active = state.active();
    let parsed = serde_json::from_slice::<MessagesRequest>(&body);
    let model: &str = match (dialect, &parsed) {
        (Dialect::Vertex { model }, _) => model,
        (Dialect::Anthropic, Ok(r)) => r.model.as_deref().unwrap_or(""),
        (Dialect::Anthropic, Err(_)) => "",
    };
    active.pause(model).await;
    if let Dialect::Anthropic = dialect {
        if !active.key_ok(http::header(req, "x-api-key")) {
            let message = match http::header(req, "x-api-key") {
                None => "x-api-key header is required",
                Some(_) => "invalid x-api-key",
            };
            return error(401, message);
        }
        if http::header(req, "anthropic-version").is_none() {
            return error(400, "anthropic-version: header is required");
        }
    }
    let request = match &parsed {
        Ok(r) => r,
        Err(err) => return error(400, &format!("invalid request body: {err}")),
    };
    let Some(messages) = request.messages.as_deref() else {
        return error(400, "messages: Field required");
    };
    match dialect {
        Dialect::Anthropic if request.model.is_none() => {
            return error(400, "model: Field required");
        }
        Dialect::Vertex { .. } if request.model.is_some() => {
            return error(400, "model: Extra inputs are not permitted");
        }
        Dialect::Vertex { .. } if request.anthropic_version.as_deref() != Some(VERTEX_VERSION) => {
            return error(
                400,
                "anthropic_version: Input should be 'vertex-2023-10-16'",
            );
        }
        _ => {}
    }
    if request.max_tokens.is_none() {
        return error(400, "max_tokens: Field required");
    }
    if let Some(code) = active.injected_failure(model, &state.stats) {
        let body = error_body(code, &failure_message(code));
        return http::failure(code, active.config.retry_after_secs, body);
    }

    let chars = messages.iter().map(|m| m.content.chars).sum::<usize>()
        + request.system.as_ref().map_or(0, |s| s.chars);
    let input_tokens = answer::prompt_tokens(chars);
    let user_text = messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map_or("", |m| m.content.text.as_ref());
    let config = &active.config;
    let reply = match request.tool_to_call(messages) {
        Some(tool) => {
            let input = answer::arguments_for(tool.input_schema.as_ref());
            let json = serde_json::to_string(&input).unwrap_or_else(|_| "{}".to_owned());
            let parts = answer::fragments(&json, config.chunks)
                .into_iter()
                .map(str::to_owned)
                .collect();
            Reply::Tool {
                id: answer::random_id("toolu_01", 22),
                name: tool.name.clone(),
                input,
                parts,
            }
        }
        None => Reply::Text(Answer::new("Anthropic", user_text, config.chunks)),
    };
    let id = answer::random_id("msg_01", 22);

    if request.stream == Some(true) {
        let source = MessageStream {
            id,
            model: model.to_owned(),
            input_tokens,
            reply,
        };
        let stream = BodyStream::new(source, config, state.stats.clone());
        return http::streamed("text/event-stream; charset=utf-8", stream);
    }

    let content = match &reply {
        Reply::Text(answer) => ContentBlock::Text { text: &answer.text },
        Reply::Tool {
            id, name, input, ..
        } => ContentBlock::ToolUse { id, name, input },
    };
    let message = MessageBody {
        id: &id,
        kind: "message",
        role: "assistant",
        model,
        content: [content],
        stop_reason: reply.stop_reason(),
        stop_sequence: (),
        usage: Usage {
            input_tokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            output_tokens: match config.exhaust_output {
                Some(_) => request.max_tokens.unwrap_or_default(),
                None => reply.output_tokens(),
            },
        },
    };
    http::json(StatusCode::OK, http::to_json(&message))
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

#[derive(Serialize)]
struct MessageBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [ContentBlock<'a>; 1],
    stop_reason: &'static str,
    stop_sequence: (),
    usage: Usage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentBlock<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a Map<String, Value>,
    },
}

#[derive(Serialize)]
struct Usage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

/// Server-sent events: message_start, content_block_start, ping, deltas, content_block_stop,
/// message_delta, message_stop.
struct MessageStream {
    id: String,
    model: String,
    input_tokens: u64,
    reply: Reply,
}

impl MessageStream {
    fn deltas(&self) -> usize {
        self.reply.output_tokens() as usize
    }
}

fn event(out: &mut BytesMut, name: &str, data: impl FnOnce(&mut BytesMut)) {
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\ndata: ");
    data(out);
    out.put_slice(b"\n\n");
}

impl Source for MessageStream {
    fn steps(&self) -> usize {
        self.deltas() + 6
    }

    fn is_content(&self, step: usize) -> bool {
        (3..3 + self.deltas()).contains(&step)
    }

    fn render(&mut self, step: usize, out: &mut BytesMut) {
        let deltas = self.deltas();
        match step {
            0 => event(out, "message_start", |o| {
                o.put_slice(b"{\"type\":\"message_start\",\"message\":{\"id\":");
                push_json_str(o, &self.id);
                o.put_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
                push_json_str(o, &self.model);
                o.put_slice(b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":");
                push_u64(o, self.input_tokens);
                // Like the real API, message_start reports a token already generated.
                o.put_slice(b",\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}");
            }),
            1 => event(out, "content_block_start", |o| {
                match &self.reply {
                Reply::Text(_) => o.put_slice(
                    b"{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
                ),
                Reply::Tool { id, name, .. } => {
                    o.put_slice(b"{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":");
                    push_json_str(o, id);
                    o.put_slice(b",\"name\":");
                    push_json_str(o, name);
                    o.put_slice(b",\"input\":{}}}");
                }
            }
            }),
            2 => event(out, "ping", |o| o.put_slice(b"{\"type\": \"ping\"}")),
            s if s < 3 + deltas => event(out, "content_block_delta", |o| {
                o.put_slice(b"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":");
                match &self.reply {
                    Reply::Text(answer) => {
                        o.put_slice(b"{\"type\":\"text_delta\",\"text\":");
                        push_json_str(o, answer.delta(s - 3));
                    }
                    Reply::Tool { parts, .. } => {
                        o.put_slice(b"{\"type\":\"input_json_delta\",\"partial_json\":");
                        push_json_str(o, parts.get(s - 3).map_or("", String::as_str));
                    }
                }
                o.put_slice(b"}}");
            }),
            s if s == 3 + deltas => event(out, "content_block_stop", |o| {
                o.put_slice(b"{\"type\":\"content_block_stop\",\"index\":0}");
            }),
            s if s == 4 + deltas => event(out, "message_delta", |o| {
                o.put_slice(b"{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":");
                push_json_str(o, self.reply.stop_reason());
                o.put_slice(b",\"stop_sequence\":null},\"usage\":{\"output_tokens\":");
                push_u64(o, self.reply.output_tokens());
                o.put_slice(b"}}");
            }),
            _ => event(out, "message_stop", |o| {
                o.put_slice(b"{\"type\":\"message_stop\"}");
            }),
        }
    }
}
