//! Mistral's own API (`/v1/chat/completions`, `/v1/embeddings`), served under `/mistral` because
//! its paths are OpenAI's: configure a Mistral provider with `api_base: <mock>/mistral`.
//!
//! Mistral validates strictly, and so does this mock, the way Mistral fails: a member it does
//! not know (`stream_options`, `seed`, `user`), a tool call id that is not 9 characters of
//! `[a-zA-Z0-9]`, or an unknown `tool_choice` is a 422 with FastAPI's validation `detail`. A
//! gateway that forwarded an OpenAI body untranslated would fail here as it would at Mistral.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use crate::answer::{self, Answer};
use crate::behaviour::{State, failure_message};
use crate::http;
use crate::stats::Route;
use crate::stream::{BodyStream, Prepared};

/// The members Mistral's chat completion request takes.
const CHAT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "stream",
    "stop",
    "random_seed",
    "response_format",
    "tools",
    "tool_choice",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "prediction",
    "parallel_tool_calls",
    "prompt_mode",
    "safe_prompt",
];

/// The members Mistral's embeddings request takes.
const EMBEDDINGS_FIELDS: &[&str] = &[
    "model",
    "input",
    "output_dimension",
    "output_dtype",
    "encoding_format",
];

/// `{"object":"error","message","type","param","code"}`.
fn error(status: u16, message: Value, kind: &str, code: Option<&str>) -> HttpResponse {
    let body =
        json!({"object": "error", "message": message, "type": kind, "param": null, "code": code});
    http::json(http::status(status), http::to_json(&body))
}

/// A 422 naming what failed validation, as Mistral's API reports it.
fn invalid(loc: Vec<Value>, kind: &str, msg: &str) -> HttpResponse {
    let mut full = vec![json!("body")];
    full.extend(loc);
    let detail = json!({"detail": [{"type": kind, "loc": full, "msg": msg}]});
    error(422, detail, "invalid_request_error", None)
}

fn injected(status: u16, retry_after: Option<u64>) -> HttpResponse {
    let (kind, code) = match status {
        429 => ("rate_limited", Some("1300")),
        400..=499 => ("invalid_request_error", None),
        _ => ("internal_server_error", None),
    };
    let body = json!({"object": "error", "message": failure_message(status), "type": kind,
                      "param": null, "code": code});
    http::failure(status, retry_after, http::to_json(&body))
}

/// The key, the body as a JSON object, members Mistral does not take, and the model: what chat
/// and embeddings check first, in that order.
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
        let body = json!({"message": "Unauthorized", "request_id": answer::random_id("", 32)});
        return Err(http::json(StatusCode::UNAUTHORIZED, http::to_json(&body)));
    }
    let Some(request) = parsed else {
        return Err(invalid(Vec::new(), "json_invalid", "JSON decode error"));
    };
    if let Some(extra) = request.keys().find(|k| !fields.contains(&k.as_str())) {
        return Err(invalid(
            vec![json!(extra)],
            "extra_forbidden",
            "Extra inputs are not permitted",
        ));
    }
    if model.is_empty() {
        return Err(invalid(vec![json!("model")], "missing", "Field required"));
    }
    if let Some(status) = active.injected_failure(&model, &state.stats) {
        return Err(injected(status, active.config.retry_after_secs));
    }
    Ok((request, model))
}

fn valid_call_id(id: &str) -> bool {
    id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The checks Mistral makes of the conversation that an OpenAI body would fail: the refusal,
/// if one fails.
fn check_messages(messages: &[Value]) -> Option<HttpResponse> {
    const PATTERN: &str = "String should match pattern '^[a-zA-Z0-9]{9}$'";
    for (i, message) in messages.iter().enumerate() {
        let role = message["role"].as_str().unwrap_or_default();
        if !matches!(role, "system" | "user" | "assistant" | "tool") {
            return Some(invalid(
                vec![json!("messages"), json!(i), json!("role")],
                "literal_error",
                "Input should be 'system', 'user', 'assistant' or 'tool'",
            ));
        }
        for (j, call) in message["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if !call["id"].as_str().is_some_and(valid_call_id) {
                let loc = vec![
                    json!("messages"),
                    json!(i),
                    json!("tool_calls"),
                    json!(j),
                    json!("id"),
                ];
                return Some(invalid(loc, "string_pattern_mismatch", PATTERN));
            }
        }
        if role == "tool" && !message["tool_call_id"].as_str().is_some_and(valid_call_id) {
            let loc = vec![json!("messages"), json!(i), json!("tool_call_id")];
            return Some(invalid(loc, "string_pattern_mismatch", PATTERN));
        }
    }
    None
}

/// The text of a message's content, a string or chunks.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(chunks) => chunks
            .iter()
            .filter_map(|c| c["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The tool to call: the named one, else the first, unless tools are absent, `none`, or a tool
/// result is being answered.
fn tool_to_call<'a>(request: &'a Map<String, Value>, messages: &[Value]) -> Option<&'a Value> {
    if messages.last().is_some_and(|m| m["role"] == "tool") {
        return None;
    }
    let mut functions = request
        .get("tools")?
        .as_array()?
        .iter()
        .map(|t| &t["function"]);
    match request.get("tool_choice") {
        Some(Value::String(choice)) if choice == "none" => None,
        Some(Value::Object(choice)) => {
            let name = choice["function"]["name"].as_str();
            functions.find(|f| f["name"].as_str() == name)
        }
        _ => functions.next(),
    }
}

/// `POST /mistral/v1/chat/completions`.
pub(crate) async fn chat(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let (request, model) = match admit(&state, &req, &body, Route::MistralChat, CHAT_FIELDS).await {
        Ok(admitted) => admitted,
        Err(rejection) => return rejection,
    };
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return invalid(vec![json!("messages")], "missing", "Field required");
    };
    if let Some(rejection) = check_messages(messages) {
        return rejection;
    }
    match request.get("tool_choice") {
        None | Some(Value::Object(_)) => {}
        Some(Value::String(choice))
            if matches!(choice.as_str(), "auto" | "none" | "any" | "required") => {}
        Some(_) => {
            return invalid(
                vec![json!("tool_choice")],
                "enum",
                "Input should be 'auto', 'none', 'any' or 'required'",
            );
        }
    }
    let active = state.active();
    let config = &active.config;
    let chars: usize = messages
        .iter()
        .map(|m| content_text(&m["content"]).chars().count())
        .sum();
    let prompt_tokens = answer::prompt_tokens(chars);
    let user_text = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| content_text(&m["content"]))
        .unwrap_or_default();
    let call = tool_to_call(&request, messages).map(|function| {
        let args = answer::arguments_for(function.get("parameters"));
        let arguments = serde_json::to_string(&args).unwrap_or_else(|_| "{}".to_owned());
        json!({"id": answer::random_id("", 9), "type": "function", "index": 0,
               "function": {"name": function["name"], "arguments": arguments}})
    });
    let text = Answer::new("Mistral", &user_text, config.chunks);
    let completion_tokens = match &call {
        Some(_) => 1,
        None => text.deltas() as u64,
    };
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                       "total_tokens": prompt_tokens + completion_tokens});
    let id = answer::random_id("", 32).to_lowercase();
    let created = answer::unix_now();
    let finish = if call.is_some() { "tool_calls" } else { "stop" };

    if request.get("stream") == Some(&Value::Bool(true)) {
        let chunk = |delta: Value, finish: Option<&str>, usage: Option<&Value>| {
            let mut chunk = json!({"id": id, "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
            if let Some(usage) = usage {
                chunk["usage"] = usage.clone();
            }
            format!("data: {chunk}\n\n").into_bytes()
        };
        let mut events = Prepared::new();
        events.push(
            false,
            chunk(json!({"role": "assistant", "content": ""}), None, None),
        );
        match &call {
            // Mistral sends a call whole, in the chunk that finishes the answer.
            Some(call) => events.push(
                true,
                chunk(json!({"tool_calls": [call]}), Some(finish), Some(&usage)),
            ),
            None => {
                let last = text.deltas().saturating_sub(1);
                for i in 0..text.deltas() {
                    let (finish, usage) = if i == last {
                        (Some(finish), Some(&usage))
                    } else {
                        (None, None)
                    };
                    events.push(
                        true,
                        chunk(json!({"content": text.delta(i)}), finish, usage),
                    );
                }
            }
        }
        events.push(false, b"data: [DONE]\n\n".to_vec());
        let stream = BodyStream::new(events, config, state.stats.clone());
        return http::streamed("text/event-stream; charset=utf-8", stream);
    }

    let message = match &call {
        Some(call) => {
            json!({"role": "assistant", "content": "", "tool_calls": [call], "prefix": false})
        }
        None => {
            json!({"role": "assistant", "content": text.text, "tool_calls": null, "prefix": false})
        }
    };
    let completion = json!({"id": id, "object": "chat.completion", "model": model, "created": created,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage});
    http::json(StatusCode::OK, http::to_json(&completion))
}

/// `POST /mistral/v1/embeddings`.
pub(crate) async fn embeddings(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let (request, model) = match admit(
        &state,
        &req,
        &body,
        Route::MistralEmbeddings,
        EMBEDDINGS_FIELDS,
    )
    .await
    {
        Ok(admitted) => admitted,
        Err(rejection) => return rejection,
    };
    let inputs: Vec<&str> = match request.get("input") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) if many.iter().all(Value::is_string) => {
            many.iter().filter_map(Value::as_str).collect()
        }
        _ => {
            return invalid(
                vec![json!("input")],
                "string_type",
                "Input should be a valid string",
            );
        }
    };
    let dims = request
        .get("output_dimension")
        .and_then(Value::as_u64)
        .map_or(16, |d| d.clamp(1, 4096) as usize);
    let mut prompt_tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            prompt_tokens += answer::prompt_tokens(text.chars().count());
            json!({"object": "embedding", "index": index,
                   "embedding": answer::embedding(text.as_bytes(), dims)})
        })
        .collect();
    let list = json!({"id": answer::random_id("", 32).to_lowercase(), "object": "list",
        "data": data, "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens, "completion_tokens": 0}});
    http::json(StatusCode::OK, http::to_json(&list))
}
