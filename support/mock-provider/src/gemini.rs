//! Google Gemini API: generateContent, streamGenerateContent, embedContent, batchEmbedContents.
//! Field names accept both the camelCase and snake_case spellings, as the real API does.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::answer::{self, Answer, Text, push_json_str, push_u64};
use crate::behaviour::{State, failure_message};
use crate::http;
use crate::openai::MAX_DIMENSIONS;
use crate::stats::Route;
use crate::stream::{BodyStream, Source};

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: u16,
    message: &'a str,
    status: &'static str,
}

/// The canonical status name Google reports with an HTTP status.
fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        402..=498 => "FAILED_PRECONDITION",
        _ => "UNKNOWN",
    }
}

fn error_body(code: u16, message: &str) -> Vec<u8> {
    http::to_json(&ErrorBody {
        error: ErrorDetail {
            code,
            message,
            status: status_name(code),
        },
    })
}

/// An error in the shape `{"error":{"code","message","status"}}`.
pub(crate) fn error(code: u16, message: &str) -> HttpResponse {
    http::json(http::status(code), error_body(code, message))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Generate,
    Stream,
    Embed,
    BatchEmbed,
}

/// Who checked the caller: the Gemini API's key check here, or Vertex AI's bearer token check
/// before the request came here.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    ApiKey,
    Checked,
}

/// `POST /v1beta/models/{model}:{action}`; actix cannot split a segment at ':' itself.
pub(crate) async fn dispatch(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let tail = req.match_info().get("tail").unwrap_or_default();
    serve(&req, body, &state, tail, Auth::ApiKey).await
}

/// `{model}:{action}` answered the Gemini API's way.
pub(crate) async fn serve(
    req: &HttpRequest,
    body: web::Bytes,
    state: &State,
    tail: &str,
    auth: Auth,
) -> HttpResponse {
    let split = tail
        .rsplit_once(':')
        .or_else(|| tail.rsplit_once("%3A"))
        .or_else(|| tail.rsplit_once("%3a"));
    let Some((model, action)) = split else {
        return error(404, &format!("Method not found: {tail}"));
    };
    let action = match action {
        "generateContent" => Action::Generate,
        "streamGenerateContent" => Action::Stream,
        "embedContent" => Action::Embed,
        "batchEmbedContents" => Action::BatchEmbed,
        other => return error(404, &format!("Method not found: {other}")),
    };
    let route = match action {
        Action::Generate => Route::GeminiGenerate,
        Action::Stream => Route::GeminiStream,
        Action::Embed | Action::BatchEmbed => Route::GeminiEmbed,
    };
    state.stats.record(route, req, &body);
    let active = state.active();
    active.pause(model).await;
    let key = http::header(req, "x-goog-api-key").or_else(|| http::query_param(req, "key"));
    if auth == Auth::ApiKey && !active.key_ok(key) {
        return error(401, "API key not valid. Please pass a valid API key.");
    }
    match action {
        Action::Generate | Action::Stream => {
            let request = match serde_json::from_slice::<GenerateRequest>(&body) {
                Ok(r) => r,
                Err(err) => return error(400, &format!("Invalid JSON payload received. {err}")),
            };
            let Some(contents) = request.contents.as_deref().filter(|c| !c.is_empty()) else {
                return error(
                    400,
                    "* GenerateContentRequest.contents: contents is not specified\n",
                );
            };
            if let Some(code) = active.injected_failure(model, &state.stats) {
                return http::failure(
                    code,
                    active.config.retry_after_secs,
                    error_body(code, &failure_message(code)),
                );
            }
            generate(
                state,
                req,
                &request,
                contents,
                model,
                action,
                &active.config,
            )
        }
        Action::Embed | Action::BatchEmbed => {
            let parsed = if action == Action::Embed {
                serde_json::from_slice::<EmbedRequest>(&body).map(|r| vec![r])
            } else {
                serde_json::from_slice::<BatchEmbedRequest>(&body).map(|r| r.requests)
            };
            let requests = match parsed {
                Ok(r) => r,
                Err(err) => return error(400, &format!("Invalid JSON payload received. {err}")),
            };
            if requests
                .iter()
                .any(|r| r.dims() == 0 || r.dims() > MAX_DIMENSIONS)
            {
                return error(400, "outputDimensionality must be between 1 and 65536");
            }
            if let Some(code) = active.injected_failure(model, &state.stats) {
                return http::failure(
                    code,
                    active.config.retry_after_secs,
                    error_body(code, &failure_message(code)),
                );
            }
            let values: Vec<Values> = requests
                .iter()
                .map(|r| Values {
                    values: answer::embedding(r.content.parts.text.as_bytes(), r.dims()),
                })
                .collect();
            let body = if action == Action::Embed {
                let first = values.into_iter().next();
                http::to_json(&serde_json::json!({ "embedding": first }))
            } else {
                http::to_json(&serde_json::json!({ "embeddings": values }))
            };
            http::json(StatusCode::OK, body)
        }
    }
}

#[derive(Deserialize)]
struct GenerateRequest<'a> {
    #[serde(default, borrow)]
    contents: Option<Vec<Content<'a>>>,
    #[serde(
        default,
        borrow,
        rename = "systemInstruction",
        alias = "system_instruction"
    )]
    system_instruction: Option<Content<'a>>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default, rename = "toolConfig", alias = "tool_config")]
    tool_config: Option<ToolConfig>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(default, borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    parts: Text<'a>,
}

#[derive(Deserialize)]
struct Tool {
    #[serde(
        default,
        rename = "functionDeclarations",
        alias = "function_declarations"
    )]
    function_declarations: Option<Vec<FunctionDeclaration>>,
}

#[derive(Deserialize)]
struct FunctionDeclaration {
    name: String,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(
        default,
        rename = "parametersJsonSchema",
        alias = "parameters_json_schema"
    )]
    parameters_json_schema: Option<Value>,
}

#[derive(Deserialize)]
struct ToolConfig {
    #[serde(
        default,
        rename = "functionCallingConfig",
        alias = "function_calling_config"
    )]
    function_calling_config: Option<FunctionCallingConfig>,
}

#[derive(Deserialize)]
struct FunctionCallingConfig {
    #[serde(default)]
    mode: Option<String>,
    #[serde(
        default,
        rename = "allowedFunctionNames",
        alias = "allowed_function_names"
    )]
    allowed_function_names: Option<Vec<String>>,
}

impl GenerateRequest<'_> {
    fn function_to_call(&self, contents: &[Content<'_>]) -> Option<&FunctionDeclaration> {
        if contents.last().is_some_and(|c| c.parts.function_response) {
            return None;
        }
        let calling = self
            .tool_config
            .as_ref()
            .and_then(|t| t.function_calling_config.as_ref());
        if calling
            .and_then(|c| c.mode.as_deref())
            .is_some_and(|m| m.eq_ignore_ascii_case("none"))
        {
            return None;
        }
        let mut declarations = self
            .tools
            .iter()
            .flatten()
            .filter_map(|t| t.function_declarations.as_ref())
            .flatten();
        let allowed = calling
            .and_then(|c| c.allowed_function_names.as_ref())
            .and_then(|names| names.first());
        match allowed {
            Some(name) => declarations.find(|d| &d.name == name),
            None => declarations.next(),
        }
    }
}

fn generate(
    state: &State,
    req: &HttpRequest,
    request: &GenerateRequest<'_>,
    contents: &[Content<'_>],
    model: &str,
    action: Action,
    config: &crate::MockConfig,
) -> HttpResponse {
    let chars = contents.iter().map(|c| c.parts.chars).sum::<usize>()
        + request
            .system_instruction
            .as_ref()
            .map_or(0, |s| s.parts.chars);
    let prompt_tokens = answer::prompt_tokens(chars);
    let user_text = contents
        .iter()
        .rev()
        .find(|c| c.role.as_deref().is_none_or(|r| r == "user"))
        .map_or("", |c| c.parts.text.as_ref());
    let reply = match request.function_to_call(contents) {
        Some(f) => Reply::Call {
            name: f.name.clone(),
            args: answer::arguments_for(
                f.parameters.as_ref().or(f.parameters_json_schema.as_ref()),
            ),
        },
        None => Reply::Text(Answer::new("Gemini", user_text, config.chunks)),
    };
    let response_id = answer::random_id("", 22);
    let model = model.strip_prefix("models/").unwrap_or(model);

    if action == Action::Stream {
        let sse = http::query_param(req, "alt") == Some("sse");
        let source = GenerateStream {
            model: model.to_owned(),
            response_id,
            prompt_tokens,
            reply,
            sse,
        };
        let stream = BodyStream::new(source, config, state.stats.clone());
        let content_type = if sse {
            "text/event-stream"
        } else {
            "application/json; charset=UTF-8"
        };
        return http::streamed(content_type, stream);
    }

    let part = match &reply {
        Reply::Text(answer) => serde_json::json!({ "text": answer.text }),
        Reply::Call { name, args } => {
            serde_json::json!({ "functionCall": { "name": name, "args": args } })
        }
    };
    let candidates_tokens = reply.candidates_tokens();
    let body = serde_json::json!({
        "candidates": [{
            "content": { "parts": [part], "role": "model" },
            "finishReason": "STOP",
            "index": 0
        }],
        "usageMetadata": usage_metadata(prompt_tokens, candidates_tokens),
        "modelVersion": model,
        "responseId": response_id
    });
    http::json(StatusCode::OK, http::to_json(&body))
}

fn usage_metadata(prompt: u64, candidates: u64) -> Value {
    serde_json::json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates,
        "promptTokensDetails": [{ "modality": "TEXT", "tokenCount": prompt }]
    })
}

enum Reply {
    Text(Answer),
    Call {
        name: String,
        args: Map<String, Value>,
    },
}

impl Reply {
    fn candidates_tokens(&self) -> u64 {
        match self {
            Reply::Text(answer) => answer.deltas() as u64,
            Reply::Call { .. } => 1,
        }
    }
}

/// One GenerateContentResponse per delta, either as SSE (`alt=sse`) or as the elements of a
/// JSON array written incrementally (the API's default for streamGenerateContent).
struct GenerateStream {
    model: String,
    response_id: String,
    prompt_tokens: u64,
    reply: Reply,
    sse: bool,
}

impl Source for GenerateStream {
    fn steps(&self) -> usize {
        match &self.reply {
            Reply::Text(answer) => answer.deltas(),
            // Gemini delivers a function call whole, in one chunk.
            Reply::Call { .. } => 1,
        }
    }

    fn is_content(&self, _step: usize) -> bool {
        true
    }

    fn render(&mut self, step: usize, out: &mut BytesMut) {
        let last = step + 1 == self.steps();
        if self.sse {
            out.put_slice(b"data: ");
        } else if step == 0 {
            out.put_u8(b'[');
        } else {
            out.put_slice(b",\r\n");
        }
        out.put_slice(b"{\"candidates\":[{\"content\":{\"parts\":[");
        match &self.reply {
            Reply::Text(answer) => {
                out.put_slice(b"{\"text\":");
                push_json_str(out, answer.delta(step));
                out.put_u8(b'}');
            }
            Reply::Call { name, args } => {
                out.put_slice(b"{\"functionCall\":{\"name\":");
                push_json_str(out, name);
                out.put_slice(b",\"args\":");
                out.put_slice(&http::to_json(args));
                out.put_slice(b"}}");
            }
        }
        out.put_slice(b"],\"role\":\"model\"}");
        if last {
            out.put_slice(b",\"finishReason\":\"STOP\"");
        }
        out.put_slice(b",\"index\":0}]");
        if last {
            let candidates = self.reply.candidates_tokens();
            out.put_slice(b",\"usageMetadata\":{\"promptTokenCount\":");
            push_u64(out, self.prompt_tokens);
            out.put_slice(b",\"candidatesTokenCount\":");
            push_u64(out, candidates);
            out.put_slice(b",\"totalTokenCount\":");
            push_u64(out, self.prompt_tokens + candidates);
            out.put_slice(b",\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":");
            push_u64(out, self.prompt_tokens);
            out.put_slice(b"}]}");
        }
        out.put_slice(b",\"modelVersion\":");
        push_json_str(out, &self.model);
        out.put_slice(b",\"responseId\":");
        push_json_str(out, &self.response_id);
        out.put_u8(b'}');
        if self.sse {
            out.put_slice(b"\r\n\r\n");
        } else if last {
            out.put_u8(b']');
        }
    }
}

#[derive(Deserialize)]
struct EmbedRequest<'a> {
    #[serde(borrow)]
    content: Content<'a>,
    #[serde(
        default,
        rename = "outputDimensionality",
        alias = "output_dimensionality"
    )]
    output_dimensionality: Option<usize>,
}

impl EmbedRequest<'_> {
    fn dims(&self) -> usize {
        self.output_dimensionality.unwrap_or(16)
    }
}

#[derive(Deserialize)]
struct BatchEmbedRequest<'a> {
    #[serde(borrow)]
    requests: Vec<EmbedRequest<'a>>,
}

#[derive(Serialize)]
struct Values {
    values: Vec<f32>,
}
