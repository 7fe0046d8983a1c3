//! OpenAI's legacy text completions (`POST /v1/completions`, whole or streamed) and
//! moderations (`POST /v1/moderations`), as OpenAI answers them.
//! <https://platform.openai.com/docs/api-reference/completions>,
//! <https://platform.openai.com/docs/api-reference/moderations>

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::answer::{self, Answer};
use crate::behaviour::State;
use crate::http;
use crate::openai::{Dialect, NamesModel, admit, error, injected};
use crate::stats::Route;
use crate::stream::{BodyStream, Source};

#[derive(Deserialize)]
struct CompletionRequest<'a> {
    #[serde(default, borrow)]
    model: Cow<'a, str>,
    #[serde(default)]
    prompt: Option<Value>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<Value>,
}

impl NamesModel for CompletionRequest<'_> {
    fn model(&self) -> &str {
        &self.model
    }
}

#[derive(Deserialize)]
struct ModerationRequest<'a> {
    #[serde(default, borrow)]
    model: Cow<'a, str>,
    #[serde(default)]
    input: Option<Value>,
}

impl NamesModel for ModerationRequest<'_> {
    fn model(&self) -> &str {
        &self.model
    }
}

/// The text of a `prompt` or `input`: a string, or strings joined; token arrays read as none.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// `POST /v1/completions`.
pub(crate) async fn completions(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let (request, active, model) = match admit::<CompletionRequest>(
        &state,
        &req,
        &body,
        Dialect::OpenAi,
        Route::OpenAiCompletions,
    )
    .await
    {
        Ok(admitted) => admitted,
        Err(rejection) => return rejection,
    };
    let Some(prompt) = request.prompt.as_ref() else {
        return error(
            400,
            "Missing required parameter: 'prompt'.",
            "invalid_request_error",
            Some("prompt"),
            Some("missing_required_parameter"),
        );
    };
    if let Some(code) = active.injected_failure(&model, &state.stats) {
        return injected(code, active.config.retry_after_secs);
    }
    let prompt = text_of(prompt);
    let config = &active.config;
    let reply = Answer::new("OpenAI", &prompt, config.chunks);
    let usage = (!config.omit_usage).then(|| {
        let prompt_tokens = answer::prompt_tokens(prompt.chars().count());
        let completion_tokens = reply.deltas() as u64;
        json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
               "total_tokens": prompt_tokens + completion_tokens})
    });
    let id = answer::random_id("cmpl-", 29);
    let created = answer::unix_now();
    if request.stream == Some(true) {
        let include_usage = request
            .stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let source = CompletionStream {
            head: json!({"id": id, "object": "text_completion", "created": created, "model": model}),
            reply,
            usage: usage.filter(|_| include_usage),
        };
        let stream = BodyStream::new(source, config, state.stats.clone());
        return http::streamed("text/event-stream; charset=utf-8", stream);
    }
    let completion = json!({
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{"text": reply.text, "index": 0, "logprobs": null, "finish_reason": "stop"}],
        "usage": usage,
    });
    http::json(StatusCode::OK, http::to_json(&completion))
}

/// A streamed completion: its text in pieces, the finish, the usage when asked, `[DONE]`.
struct CompletionStream {
    head: Value,
    reply: Answer,
    usage: Option<Value>,
}

impl CompletionStream {
    fn chunk(&self, choices: Value, usage: Option<&Value>) -> Bytes {
        let mut chunk = self.head.clone();
        chunk["choices"] = choices;
        if let Some(usage) = usage {
            chunk["usage"] = usage.clone();
        }
        Bytes::from(format!("data: {chunk}\n\n"))
    }
}

impl Source for CompletionStream {
    fn steps(&self) -> usize {
        self.reply.deltas() + 2 + usize::from(self.usage.is_some())
    }

    fn is_content(&self, step: usize) -> bool {
        step < self.reply.deltas()
    }

    fn render(&mut self, step: usize, out: &mut BytesMut) {
        let deltas = self.reply.deltas();
        let choice = |text: &str, finish: Option<&str>| json!([{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}]);
        let bytes = if step < deltas {
            self.chunk(choice(self.reply.delta(step), None), None)
        } else if step == deltas {
            self.chunk(choice("", Some("stop")), None)
        } else if step == deltas + 1 && self.usage.is_some() {
            self.chunk(json!([]), self.usage.as_ref())
        } else {
            Bytes::from_static(b"data: [DONE]\n\n")
        };
        out.extend_from_slice(&bytes);
    }
}

/// The categories OpenAI's moderation models score.
const CATEGORIES: [&str; 5] = ["harassment", "hate", "self-harm", "sexual", "violence"];

/// `POST /v1/moderations`: an input is flagged for a category when it names it.
pub(crate) async fn moderations(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let (request, active, model) = match admit::<ModerationRequest>(
        &state,
        &req,
        &body,
        Dialect::OpenAi,
        Route::OpenAiModerations,
    )
    .await
    {
        Ok(admitted) => admitted,
        Err(rejection) => return rejection,
    };
    let Some(input) = request.input.as_ref() else {
        return error(
            400,
            "Missing required parameter: 'input'.",
            "invalid_request_error",
            Some("input"),
            Some("missing_required_parameter"),
        );
    };
    if let Some(code) = active.injected_failure(&model, &state.stats) {
        return injected(code, active.config.retry_after_secs);
    }
    let inputs: Vec<String> = match input {
        Value::Array(items) => items.iter().map(text_of).collect(),
        other => vec![text_of(other)],
    };
    let results: Vec<Value> = inputs
        .iter()
        .map(|text| {
            let lower = text.to_lowercase();
            let mut categories = serde_json::Map::new();
            let mut scores = serde_json::Map::new();
            for category in CATEGORIES {
                let named = lower.contains(category);
                categories.insert(category.to_owned(), Value::Bool(named));
                scores.insert(category.to_owned(), json!(if named { 0.97 } else { 0.001 }));
            }
            json!({
                "flagged": categories.values().any(|v| v == &Value::Bool(true)),
                "categories": categories,
                "category_scores": scores,
            })
        })
        .collect();
    let answer = json!({"id": answer::random_id("modr-", 29), "model": model, "results": results});
    http::json(StatusCode::OK, http::to_json(&answer))
}
