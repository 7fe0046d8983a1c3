//! Cohere's v2 API: `POST /v2/chat` (streamed with `"stream": true`) and `POST /v2/embed`.
//!
//! Like Cohere, the mock refuses what it does not take, with Cohere's `{"id", "message"}`
//! body: a member of OpenAI's that Cohere names differently (`top_p`, `stop`, `n`,
//! `stream_options`, `max_completion_tokens`...), a `tool_choice` other than `REQUIRED` or
//! `NONE`, a tool result answering no earlier call, and embeddings without an `input_type` or
//! `embedding_types`. A body forwarded untranslated fails here as it would at Cohere.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use crate::answer::{self, Answer};
use crate::behaviour::{State, failure_message};
use crate::http;
use crate::stats::Route;
use crate::stream::{BodyStream, Prepared};

/// The members Cohere's v2 chat request takes.
const CHAT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "stream",
    "tools",
    "strict_tools",
    "documents",
    "citation_options",
    "response_format",
    "safety_mode",
    "max_tokens",
    "stop_sequences",
    "temperature",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "k",
    "p",
    "logprobs",
    "tool_choice",
    "thinking",
];

/// The members Cohere's v2 embed request takes.
const EMBED_FIELDS: &[&str] = &[
    "model",
    "texts",
    "images",
    "inputs",
    "input_type",
    "embedding_types",
    "output_dimension",
    "max_tokens",
    "truncate",
];

/// `{"id": ..., "message": ...}`, Cohere's error body.
fn error(status: u16, message: &str) -> HttpResponse {
    http::json(http::status(status), error_body(message))
}

fn error_body(message: &str) -> Vec<u8> {
    http::to_json(&json!({"id": answer::random_id("", 32).to_lowercase(), "message": message}))
}

/// The key, a JSON object body, only Cohere's members, a model, then injected failures.
async fn admit(
    state: &State,
    req: &HttpRequest,
    body: &web::Bytes,
    route: Route,
    fields: &[&str],
) -> Result<(Map<String, Value>, String), HttpResponse> {
    state.stats.record(route, req, body);
    let active = state.active();
    let parsed: Option<Map<String, Value>> = serde_json::from_slice(body).ok();
    let model = parsed
        .as_ref()
        .and_then(|b| b.get("model"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    active.pause(&model).await;
    let key = http::header(req, "authorization").and_then(|v| v.strip_prefix("Bearer "));
    if !active.key_ok(key) {
        return Err(error(401, "invalid api token"));
    }
    let Some(request) = parsed else {
        return Err(error(400, "invalid request: could not parse the JSON body"));
    };
    if let Some(extra) = request.keys().find(|k| !fields.contains(&k.as_str())) {
        return Err(error(
            400,
            &format!("invalid request: unknown field: parameter {extra} is not a valid field"),
        ));
    }
    if model.is_empty() {
        return Err(error(400, "invalid request: model must be specified"));
    }
    if let Some(status) = active.injected_failure(&model, &state.stats) {
        let body = error_body(&failure_message(status));
        return Err(http::failure(status, active.config.retry_after_secs, body));
    }
    Ok((request, model))
}

/// The text of a message's content: a string or content items.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(|c| c["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Cohere's checks of the conversation: known roles, and tool results answering earlier calls.
fn check_messages(messages: &[Value]) -> Option<HttpResponse> {
    let mut calls: Vec<&str> = Vec::new();
    for message in messages {
        match message["role"].as_str().unwrap_or_default() {
            "system" | "user" => {}
            "assistant" => calls.extend(
                message["tool_calls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["id"].as_str()),
            ),
            "tool" => {
                let id = message["tool_call_id"].as_str().unwrap_or_default();
                if !calls.contains(&id) {
                    return Some(error(
                        400,
                        &format!("invalid request: tool call id {id} does not match any tool call"),
                    ));
                }
            }
            other => {
                return Some(error(
                    400,
                    &format!(
                        "invalid request: role {other} is not one of system, user, assistant, tool"
                    ),
                ));
            }
        }
    }
    None
}

/// The function to call: the first tool's, unless there are none, `NONE`, or a tool result is
/// being answered.
fn tool_to_call<'a>(request: &'a Map<String, Value>, messages: &[Value]) -> Option<&'a Value> {
    if messages.last().is_some_and(|m| m["role"] == "tool")
        || request.get("tool_choice") == Some(&json!("NONE"))
    {
        return None;
    }
    request
        .get("tools")?
        .as_array()?
        .first()
        .map(|t| &t["function"])
}

fn sse(kind: &str, data: &Value) -> Vec<u8> {
    format!("event: {kind}\ndata: {data}\n\n").into_bytes()
}

/// `POST /v2/chat`.
pub(crate) async fn chat(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let (request, _model) = match admit(&state, &req, &body, Route::CohereChat, CHAT_FIELDS).await {
        Ok(admitted) => admitted,
        Err(rejection) => return rejection,
    };
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return error(400, "invalid request: messages must be specified");
    };
    if let Some(rejection) = check_messages(messages) {
        return rejection;
    }
    match request.get("tool_choice") {
        None => {}
        Some(Value::String(choice)) if matches!(choice.as_str(), "REQUIRED" | "NONE") => {}
        Some(other) => {
            return error(
                400,
                &format!("invalid request: tool_choice must be one of REQUIRED, NONE, got {other}"),
            );
        }
    }
    let active = state.active();
    let config = &active.config;
    let chars: usize = messages
        .iter()
        .map(|m| content_text(&m["content"]).chars().count())
        .sum();
    let input_tokens = answer::prompt_tokens(chars);
    let user_text = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| content_text(&m["content"]))
        .unwrap_or_default();
    let call = tool_to_call(&request, messages).map(|function| {
        let args = answer::arguments_for(function.get("parameters"));
        let arguments = serde_json::to_string(&args).unwrap_or_else(|_| "{}".to_owned());
        let name = function["name"].as_str().unwrap_or_default().to_owned();
        let id = format!("{name}_{}", answer::random_id("", 12).to_lowercase());
        (id, name, arguments)
    });
    let text = Answer::new("Cohere", &user_text, config.chunks);
    let output_tokens = match &call {
        Some(_) => 1,
        None => text.deltas() as u64,
    };
    // Cohere adds its own prompt template: `tokens` counts it, `billed_units` does not.
    let usage = json!({
        "billed_units": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        "tokens": {"input_tokens": input_tokens + 64, "output_tokens": output_tokens + 2},
    });
    let id = format!(
        "{}-{}-{}-{}-{}",
        answer::random_id("", 8),
        answer::random_id("", 4),
        answer::random_id("", 4),
        answer::random_id("", 4),
        answer::random_id("", 12)
    )
    .to_lowercase();
    let finish = if call.is_some() {
        "TOOL_CALL"
    } else {
        "COMPLETE"
    };

    if request.get("stream") == Some(&Value::Bool(true)) {
        let mut events = Prepared::new();
        events.push(false, sse("message-start", &json!({"id": id, "type": "message-start",
            "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}})));
        match &call {
            Some((call_id, name, arguments)) => {
                let plan = format!("I will call {name}.");
                events.push(
                    true,
                    sse(
                        "tool-plan-delta",
                        &json!({"type": "tool-plan-delta",
                    "delta": {"message": {"tool_plan": plan}}}),
                    ),
                );
                events.push(
                    false,
                    sse(
                        "tool-call-start",
                        &json!({"type": "tool-call-start", "index": 0,
                    "delta": {"message": {"tool_calls": {"id": call_id, "type": "function",
                        "function": {"name": name, "arguments": ""}}}}}),
                    ),
                );
                for part in answer::fragments(arguments, config.chunks) {
                    events.push(
                        true,
                        sse(
                            "tool-call-delta",
                            &json!({"type": "tool-call-delta", "index": 0,
                        "delta": {"message": {"tool_calls": {"function": {"arguments": part}}}}}),
                        ),
                    );
                }
                events.push(
                    false,
                    sse(
                        "tool-call-end",
                        &json!({"type": "tool-call-end", "index": 0}),
                    ),
                );
            }
            None => {
                events.push(
                    false,
                    sse(
                        "content-start",
                        &json!({"type": "content-start", "index": 0,
                    "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
                    ),
                );
                for i in 0..text.deltas() {
                    events.push(
                        true,
                        sse(
                            "content-delta",
                            &json!({"type": "content-delta", "index": 0,
                        "delta": {"message": {"content": {"text": text.delta(i)}}}}),
                        ),
                    );
                }
                events.push(
                    false,
                    sse("content-end", &json!({"type": "content-end", "index": 0})),
                );
            }
        }
        events.push(
            false,
            sse(
                "message-end",
                &json!({"type": "message-end",
            "delta": {"finish_reason": finish, "usage": usage}}),
            ),
        );
        let stream = BodyStream::new(events, config, state.stats.clone());
        return http::streamed("text/event-stream", stream);
    }

    let message = match &call {
        Some((call_id, name, arguments)) => json!({"role": "assistant",
            "tool_plan": format!("I will call {name}."),
            "tool_calls": [{"id": call_id, "type": "function",
                            "function": {"name": name, "arguments": arguments}}]}),
        None => json!({"role": "assistant", "content": [{"type": "text", "text": text.text}]}),
    };
    let chat = json!({"id": id, "finish_reason": finish, "message": message, "usage": usage});
    http::json(StatusCode::OK, http::to_json(&chat))
}

/// `POST /v2/embed`.
pub(crate) async fn embed(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let (request, _model) = match admit(&state, &req, &body, Route::CohereEmbed, EMBED_FIELDS).await
    {
        Ok(admitted) => admitted,
        Err(rejection) => return rejection,
    };
    let Some(texts) = request
        .get("texts")
        .and_then(Value::as_array)
        .filter(|t| t.iter().all(Value::is_string))
    else {
        return error(400, "invalid request: texts must be a list of strings");
    };
    if !request.get("input_type").is_some_and(Value::is_string) {
        return error(
            400,
            "invalid request: valid input_type must be provided with the provided model",
        );
    }
    let Some(types) = request.get("embedding_types").and_then(Value::as_array) else {
        return error(400, "invalid request: embedding_types must be specified");
    };
    let dims = request
        .get("output_dimension")
        .and_then(Value::as_u64)
        .map_or(16, |d| d.clamp(1, 4096) as usize);
    let texts: Vec<&str> = texts.iter().filter_map(Value::as_str).collect();
    let input_tokens: u64 = texts
        .iter()
        .map(|t| answer::prompt_tokens(t.chars().count()))
        .sum();
    let mut by_type = Map::new();
    for kind in types.iter().filter_map(Value::as_str) {
        let vectors: Vec<Value> = texts
            .iter()
            .map(|t| {
                let floats = answer::embedding(t.as_bytes(), dims);
                match kind {
                    "float" => json!(floats),
                    // The other types quantize; the mock answers each as whole numbers.
                    _ => json!(
                        floats
                            .iter()
                            .map(|f| (f * 127.0).round() as i64)
                            .collect::<Vec<_>>()
                    ),
                }
            })
            .collect();
        by_type.insert(kind.to_owned(), Value::Array(vectors));
    }
    let response = json!({"id": answer::random_id("", 32).to_lowercase(), "embeddings": by_type,
        "texts": texts, "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": input_tokens}},
        "response_type": "embeddings_by_type"});
    http::json(StatusCode::OK, http::to_json(&response))
}
