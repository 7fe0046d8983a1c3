//! OpenAI's Responses API (`POST /v1/responses`), whole or streamed as typed events, as OpenAI
//! answers it. The mock keeps nothing, so a `previous_response_id` is never found.
//! <https://platform.openai.com/docs/api-reference/responses/create>,
//! <https://platform.openai.com/docs/api-reference/responses-streaming>

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::answer::{self, Answer};
use crate::behaviour::State;
use crate::http;
use crate::openai::{Dialect, NamesModel, admit, error, injected};
use crate::stats::Route;
use crate::stream::{BodyStream, Prepared};

#[derive(Deserialize)]
struct ResponsesRequest<'a> {
    #[serde(default, borrow)]
    model: Cow<'a, str>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    previous_response_id: Option<String>,
    /// Request fields the response object repeats back.
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl NamesModel for ResponsesRequest<'_> {
    fn model(&self) -> &str {
        &self.model
    }
}

impl ResponsesRequest<'_> {
    /// The input's items: a string input is one user message.
    fn items(&self) -> Vec<Value> {
        match &self.input {
            Some(Value::String(text)) => vec![json!({"role": "user", "content": text})],
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        }
    }

    /// The function to call, unless functions are absent, disabled, or a function's output is
    /// being answered.
    fn function_to_call(&self, items: &[Value]) -> Option<&Value> {
        let last = items.last().and_then(|item| item["type"].as_str());
        if last == Some("function_call_output") {
            return None;
        }
        let mut functions = self
            .tools
            .iter()
            .flatten()
            .filter(|tool| tool["type"] == "function");
        match &self.tool_choice {
            Some(Value::String(choice)) if choice == "none" => None,
            Some(Value::Object(choice)) => match choice.get("name").and_then(Value::as_str) {
                Some(name) => functions.find(|f| f["name"] == name),
                None => functions.next(),
            },
            _ => functions.next(),
        }
    }
}

/// The text of a message's `content`: a string, or its parts' `text`.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The characters of every item's text, for the prompt's token count.
fn input_chars(items: &[Value]) -> usize {
    items
        .iter()
        .map(|item| {
            let text = match item["type"].as_str() {
                Some("function_call") => item["arguments"].as_str().unwrap_or("").to_owned(),
                Some("function_call_output") => item["output"].as_str().unwrap_or("").to_owned(),
                _ => content_text(&item["content"]),
            };
            text.chars().count()
        })
        .sum()
}

/// What the response holds.
enum Output {
    Text(Answer),
    Call {
        call_id: String,
        name: String,
        arguments: String,
        parts: Vec<String>,
    },
}

/// `POST /v1/responses`.
pub(crate) async fn responses(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let (request, active, model) = match admit::<ResponsesRequest>(
        &state,
        &req,
        &body,
        Dialect::OpenAi,
        Route::OpenAiResponses,
    )
    .await
    {
        Ok(admitted) => admitted,
        Err(rejection) => return rejection,
    };
    if let Some(previous) = &request.previous_response_id {
        return error(
            400,
            &format!("Previous response with id '{previous}' not found."),
            "invalid_request_error",
            Some("previous_response_id"),
            Some("previous_response_not_found"),
        );
    }
    if let Some(code) = active.injected_failure(&model, &state.stats) {
        return injected(code, active.config.retry_after_secs);
    }
    let config = &active.config;
    let items = request.items();
    let user_text = items
        .iter()
        .rev()
        .find(|item| item["role"] == "user")
        .map_or_else(String::new, |item| content_text(&item["content"]));
    let instructions = request.instructions.as_deref().unwrap_or("");
    let input_tokens = answer::prompt_tokens(input_chars(&items) + instructions.chars().count());
    let output = match request.function_to_call(&items) {
        Some(function) => {
            let args = answer::arguments_for(function.get("parameters"));
            let arguments = serde_json::to_string(&args).unwrap_or_else(|_| "{}".to_owned());
            let parts = answer::fragments(&arguments, config.chunks)
                .into_iter()
                .map(str::to_owned)
                .collect();
            Output::Call {
                call_id: answer::random_id("call_", 24),
                name: function["name"].as_str().unwrap_or_default().to_owned(),
                arguments,
                parts,
            }
        }
        None => Output::Text(Answer::new("OpenAI", &user_text, config.chunks)),
    };
    let output_tokens = match (&output, config.exhaust_output) {
        (_, Some(most)) if request.stream != Some(true) => {
            request.max_output_tokens.unwrap_or(most)
        }
        (Output::Text(answer), _) => answer.deltas() as u64,
        (Output::Call { parts, .. }, _) => parts.len() as u64,
    };
    let usage = (!config.omit_usage).then(|| {
        json!({
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        })
    });
    let bare_id = answer::random_id("", 48);
    let shell = Shell {
        id: format!("resp_{bare_id}"),
        item_id: match &output {
            Output::Text(_) => format!("msg_{bare_id}"),
            Output::Call { .. } => format!("fc_{bare_id}"),
        },
        created_at: answer::unix_now(),
        model: model.clone(),
        request: &request,
    };
    if request.stream == Some(true) {
        let events = stream_events(&shell, &output, usage);
        let stream = BodyStream::new(events, config, state.stats.clone());
        return http::streamed("text/event-stream; charset=utf-8", stream);
    }
    let item = shell.item(&output, "completed");
    let response = shell.response("completed", vec![item], usage);
    http::json(StatusCode::OK, http::to_json(&response))
}

/// What every snapshot of one response shares.
struct Shell<'r> {
    id: String,
    item_id: String,
    created_at: u64,
    model: String,
    request: &'r ResponsesRequest<'r>,
}

impl Shell<'_> {
    /// The `response` object, with the request's settings repeated as OpenAI does.
    fn response(&self, status: &str, output: Vec<Value>, usage: Option<Value>) -> Value {
        let request = self.request;
        let setting = |key: &str, default: Value| request.rest.get(key).cloned().unwrap_or(default);
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": null,
            "incomplete_details": null,
            "instructions": request.instructions,
            "max_output_tokens": request.max_output_tokens,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": setting("parallel_tool_calls", json!(true)),
            "previous_response_id": null,
            "reasoning": setting("reasoning", json!({"effort": null, "summary": null})),
            "store": setting("store", json!(true)),
            "temperature": setting("temperature", json!(1.0)),
            "text": setting("text", json!({"format": {"type": "text"}})),
            "tool_choice": request.tool_choice.clone().unwrap_or(json!("auto")),
            "tools": request.tools.clone().unwrap_or_default(),
            "top_p": setting("top_p", json!(1.0)),
            "truncation": setting("truncation", json!("disabled")),
            "usage": usage,
            "user": setting("user", Value::Null),
            "metadata": setting("metadata", json!({})),
        })
    }

    /// The output item, as it stands with `text` or `arguments` so far.
    fn item_with(&self, output: &Output, status: &str, so_far: &str) -> Value {
        match output {
            Output::Text(_) => {
                let content: Vec<Value> = if status == "in_progress" {
                    Vec::new()
                } else {
                    vec![output_text(so_far)]
                };
                json!({"id": self.item_id, "type": "message", "status": status,
                       "role": "assistant", "content": content})
            }
            Output::Call { call_id, name, .. } => {
                json!({"id": self.item_id, "type": "function_call", "status": status,
                       "arguments": so_far, "call_id": call_id, "name": name})
            }
        }
    }

    fn item(&self, output: &Output, status: &str) -> Value {
        let whole = match output {
            Output::Text(answer) => answer.text.as_str(),
            Output::Call { arguments, .. } => arguments.as_str(),
        };
        self.item_with(output, status, whole)
    }
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

/// The typed events of a streamed response, numbered in order.
struct Events {
    prepared: Prepared,
    sequence: u64,
}

impl Events {
    fn push(&mut self, content: bool, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        let event = format!("event: {kind}\ndata: {data}\n\n");
        self.prepared.push(content, event.into_bytes());
    }
}

fn stream_events(shell: &Shell<'_>, output: &Output, usage: Option<Value>) -> Prepared {
    let mut events = Events {
        prepared: Prepared::new(),
        sequence: 0,
    };
    let started = shell.response("in_progress", Vec::new(), None);
    events.push(false, "response.created", json!({"response": started}));
    events.push(false, "response.in_progress", json!({"response": started}));
    events.push(
        false,
        "response.output_item.added",
        json!({"output_index": 0, "item": shell.item_with(output, "in_progress", "")}),
    );
    let at = json!({"item_id": shell.item_id, "output_index": 0});
    let with = |mut data: Value, key: &str, value: Value| {
        data[key] = value;
        data
    };
    match output {
        Output::Text(answer) => {
            let part = with(at.clone(), "content_index", json!(0));
            events.push(
                false,
                "response.content_part.added",
                with(part.clone(), "part", output_text("")),
            );
            for i in 0..answer.deltas() {
                let delta = with(part.clone(), "delta", json!(answer.delta(i)));
                events.push(
                    true,
                    "response.output_text.delta",
                    with(delta, "logprobs", json!([])),
                );
            }
            let done = with(part.clone(), "text", json!(answer.text));
            events.push(
                false,
                "response.output_text.done",
                with(done, "logprobs", json!([])),
            );
            events.push(
                false,
                "response.content_part.done",
                with(part, "part", output_text(&answer.text)),
            );
        }
        Output::Call {
            name,
            arguments,
            parts,
            ..
        } => {
            for fragment in parts {
                events.push(
                    true,
                    "response.function_call_arguments.delta",
                    with(at.clone(), "delta", json!(fragment)),
                );
            }
            let done = with(at.clone(), "arguments", json!(arguments));
            events.push(
                false,
                "response.function_call_arguments.done",
                with(done, "name", json!(name)),
            );
        }
    }
    let item = shell.item(output, "completed");
    events.push(
        false,
        "response.output_item.done",
        json!({"output_index": 0, "item": item}),
    );
    let completed = shell.response("completed", vec![item], usage);
    events.push(false, "response.completed", json!({"response": completed}));
    events.prepared
}
