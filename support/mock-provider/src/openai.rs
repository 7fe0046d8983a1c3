//! OpenAI Chat Completions, Embeddings and Models, also spoken by the Azure routes.

use std::borrow::Cow;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::answer::{self, Answer, Text, push_json_str, push_u64};
use crate::behaviour::{Active, State, failure_message};
use crate::compatible::Quirk;
use crate::http;
use crate::stats::Route;
use crate::stream::{BodyStream, Source};

/// Fingerprint reported in answers; real ones look the same ("fp_" and hex).
const FINGERPRINT: &str = "fp_6d0c1f2e3a";

/// Which flavour of the OpenAI API a request came through.
#[derive(Clone, Copy)]
pub(crate) enum Dialect<'a> {
    OpenAi,
    /// Azure OpenAI, with the deployment named in the path.
    Azure {
        deployment: &'a str,
    },
}

impl Dialect<'_> {
    fn label(self) -> &'static str {
        match self {
            Dialect::OpenAi => "OpenAI",
            Dialect::Azure { .. } => "Azure OpenAI",
        }
    }

    pub(crate) fn key(self, req: &HttpRequest) -> Option<&str> {
        match self {
            Dialect::OpenAi => http::header(req, "authorization").and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            }),
            Dialect::Azure { .. } => http::header(req, "api-key"),
        }
    }

    /// Rejections that come before the body is looked at: the key, then Azure's api-version.
    pub(crate) fn gatekeep(self, req: &HttpRequest, key_ok: bool) -> Option<HttpResponse> {
        if !key_ok {
            let message = match self {
                Dialect::OpenAi => match self.key(req) {
                    None => {
                        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                    }
                    Some(_) => {
                        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
                    }
                },
                Dialect::Azure { .. } => {
                    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."
                }
            };
            let code = match self {
                Dialect::OpenAi => "invalid_api_key",
                Dialect::Azure { .. } => "401",
            };
            return Some(error(
                401,
                message,
                "invalid_request_error",
                None,
                Some(code),
            ));
        }
        if let Dialect::Azure { .. } = self
            && http::query_param(req, "api-version").is_none_or(str::is_empty)
        {
            return Some(error(
                400,
                "Missing required query parameter: api-version",
                "invalid_request_error",
                Some("api-version"),
                Some("missing_api_version"),
            ));
        }
        None
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// An error in the OpenAI shape `{"error":{"message","type","param","code"}}`.
pub(crate) fn error(
    code: u16,
    message: &str,
    kind: &str,
    param: Option<&str>,
    error_code: Option<&str>,
) -> HttpResponse {
    http::json(
        http::status(code),
        error_body(message, kind, param, error_code),
    )
}

fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Vec<u8> {
    http::to_json(&ErrorBody {
        error: ErrorDetail {
            message,
            kind,
            param,
            code,
        },
    })
}

/// An injected failure with the type and code OpenAI uses for that status.
pub(crate) fn injected(code: u16, retry_after: Option<u64>) -> HttpResponse {
    let (kind, error_code) = match code {
        400 => ("invalid_request_error", None),
        401 => ("invalid_request_error", Some("invalid_api_key")),
        403 => (
            "invalid_request_error",
            Some("unsupported_country_region_territory"),
        ),
        404 => ("invalid_request_error", Some("model_not_found")),
        429 => ("requests", Some("rate_limit_exceeded")),
        500..=599 => ("server_error", None),
        _ => ("invalid_request_error", None),
    };
    let body = error_body(&failure_message(code), kind, None, error_code);
    http::failure(code, retry_after, body)
}

fn invalid_body(err: &serde_json::Error) -> HttpResponse {
    let message = format!(
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON or did not match the expected shape: {err})"
    );
    error(400, &message, "invalid_request_error", None, None)
}

/// A request body that names a model (`""` when the field is absent).
pub(crate) trait NamesModel {
    fn model(&self) -> &str;
}

impl NamesModel for ChatRequest<'_> {
    fn model(&self) -> &str {
        &self.model
    }
}

impl NamesModel for EmbeddingsRequest<'_> {
    fn model(&self) -> &str {
        &self.model
    }
}

/// What chat and embeddings share before their own checks, in the real APIs' order: the
/// configured pause, the key and Azure's api-version, a readable body, then a model. Returns
/// the parsed body, the behaviour in force, and the model (for Azure, the deployment).
pub(crate) async fn admit<'b, T: Deserialize<'b> + NamesModel>(
    state: &State,
    req: &HttpRequest,
    body: &'b Bytes,
    dialect: Dialect<'b>,
    route: Route,
) -> Result<(T, Arc<Active>, String), HttpResponse> {
    state.stats.record(route, req, body);
    let active = state.active();
    let parsed = serde_json::from_slice::<T>(body);
    let model = match (dialect, &parsed) {
        (Dialect::Azure { deployment }, _) => deployment,
        (Dialect::OpenAi, Ok(r)) => r.model(),
        (Dialect::OpenAi, Err(_)) => "",
    }
    .to_owned();
    active.pause(&model).await;
    if let Some(rejection) = dialect.gatekeep(req, active.key_ok(dialect.key(req))) {
        return Err(rejection);
    }
    let request = parsed.map_err(|err| invalid_body(&err))?;
    if model.is_empty() {
        return Err(error(
            400,
            "you must provide a model parameter",
            "invalid_request_error",
            Some("model"),
            None,
        ));
    }
    Ok((request, active, model))
}

#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(default, borrow)]
    model: Cow<'a, str>,
    #[serde(default, borrow)]
    messages: Option<Vec<Message<'a>>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    n: Option<u64>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(default, borrow)]
    content: Text<'a>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct Tool {
    #[serde(default)]
    function: Option<FunctionDef>,
}

#[derive(Deserialize)]
struct FunctionDef {
    name: String,
    #[serde(default)]
    parameters: Option<Value>,
}

impl ChatRequest<'_> {
    /// The tool to call, unless tools are absent, disabled, or a tool result is being answered.
    fn tool_to_call(&self) -> Option<&FunctionDef> {
        let last_role = self
            .messages
            .as_deref()
            .and_then(<[Message]>::last)
            .map(|m| m.role.as_ref());
        if matches!(last_role, Some("tool" | "function")) {
            return None;
        }
        let mut functions = self
            .tools
            .iter()
            .flatten()
            .filter_map(|t| t.function.as_ref());
        match &self.tool_choice {
            Some(Value::String(choice)) if choice == "none" => None,
            Some(Value::Object(choice)) => {
                let named = choice
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str);
                match named {
                    Some(name) => functions.find(|f| f.name == name),
                    None => functions.next(),
                }
            }
            _ => functions.next(),
        }
    }
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    serve_chat(&state, &req, body, Dialect::OpenAi, None).await
}

/// `POST /v1/embeddings`.
pub(crate) async fn embeddings(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    serve_embeddings(&state, &req, body, Dialect::OpenAi).await
}

/// `GET /v1/models`: a fixed list, exempt from latency and failure injection because clients
/// use it for discovery and health checks.
pub(crate) async fn models(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    state.stats.record(Route::OpenAiModels, &req, &Bytes::new());
    let active = state.active();
    if let Some(rejection) =
        Dialect::OpenAi.gatekeep(&req, active.key_ok(Dialect::OpenAi.key(&req)))
    {
        return rejection;
    }
    let created = 1_700_000_000;
    let data: Vec<Value> = [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "text-embedding-3-small",
        "text-embedding-3-large",
    ]
    .iter()
    .map(|id| serde_json::json!({"id": id, "object": "model", "created": created, "owned_by": "system"}))
    .collect();
    http::json(
        StatusCode::OK,
        http::to_json(&serde_json::json!({"object": "list", "data": data})),
    )
}

/// Chat completions for OpenAI, Azure and the OpenAI-compatible services with a `quirk`.
pub(crate) async fn serve_chat(
    state: &State,
    req: &HttpRequest,
    body: Bytes,
    dialect: Dialect<'_>,
    quirk: Option<Quirk>,
) -> HttpResponse {
    let route = match dialect {
        Dialect::OpenAi => Route::OpenAiChat,
        Dialect::Azure { .. } => Route::AzureChat,
    };
    let (request, active, model) =
        match admit::<ChatRequest>(state, req, &body, dialect, route).await {
            Ok(admitted) => admitted,
            Err(rejection) => return rejection,
        };
    let model = model.as_str();
    let Some(messages) = request.messages.as_deref() else {
        return error(
            400,
            "Missing required parameter: 'messages'.",
            "invalid_request_error",
            Some("messages"),
            Some("missing_required_parameter"),
        );
    };
    if quirk == Some(Quirk::NoStreamOptions) && request.stream_options.is_some() {
        return error(
            400,
            "Unrecognized request argument supplied: stream_options",
            "invalid_request_error",
            None,
            None,
        );
    }
    if let Some(code) = active.injected_failure(model, &state.stats) {
        return injected(code, active.config.retry_after_secs);
    }

    let chars: usize = messages.iter().map(|m| m.content.chars).sum();
    let prompt_tokens = answer::prompt_tokens(chars);
    let user_text = messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .or(messages.last())
        .map_or("", |m| m.content.text.as_ref());
    let config = &active.config;
    let tool = request.tool_to_call();
    let reply = match tool {
        Some(function) => {
            let args = answer::arguments_for(function.parameters.as_ref());
            let arguments = serde_json::to_string(&args).unwrap_or_else(|_| "{}".to_owned());
            let parts = answer::fragments(&arguments, config.chunks)
                .into_iter()
                .map(str::to_owned)
                .collect();
            Reply::Tool {
                id: answer::random_id("call_", 24),
                name: function.name.clone(),
                arguments,
                parts,
            }
        }
        None => Reply::Text(Answer::new(dialect.label(), user_text, config.chunks)),
    };
    let completion_tokens = match config.exhaust_output {
        Some(most) if request.stream != Some(true) => {
            request.n.unwrap_or(1)
                * request
                    .max_completion_tokens
                    .or(request.max_tokens)
                    .unwrap_or(most)
        }
        _ => reply.completion_tokens(),
    };
    let usage = (!config.omit_usage).then(|| Usage::new(prompt_tokens, completion_tokens));
    let id = answer::random_id("chatcmpl-", 29);
    let created = answer::unix_now();

    if request.stream == Some(true) {
        let include_usage = request
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let with_finish = quirk.is_some_and(Quirk::usage_with_finish);
        let mut source = ChatStream::new(
            &id,
            created,
            model,
            reply,
            usage.filter(|_| include_usage && !with_finish),
            include_usage && !with_finish,
        );
        source.quirk = quirk;
        if let Some(quirk) = quirk {
            quirk.finish_members(usage.as_ref(), &mut source.finish_members);
        }
        let stream = BodyStream::new(source, config, state.stats.clone());
        return http::streamed("text/event-stream; charset=utf-8", stream);
    }

    let message = match &reply {
        Reply::Text(answer) => AssistantMessage {
            role: "assistant",
            content: Some(&answer.text),
            tool_calls: None,
            refusal: (),
            annotations: &[],
        },
        Reply::Tool {
            id,
            name,
            arguments,
            ..
        } => AssistantMessage {
            role: "assistant",
            content: None,
            tool_calls: Some([ToolCall {
                id,
                kind: "function",
                function: FunctionCall { name, arguments },
            }]),
            refusal: (),
            annotations: &[],
        },
    };
    let completion = Completion {
        id: &id,
        object: "chat.completion",
        created,
        model,
        choices: [Choice {
            index: 0,
            message,
            logprobs: (),
            finish_reason: reply.finish_reason(),
        }],
        usage: usage.map(|usage| match quirk {
            Some(quirk) => UsageBody::Service(
                serde_json::value::RawValue::from_string(
                    String::from_utf8(quirk.usage_json(&usage)).unwrap_or_default(),
                )
                .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned()),
            ),
            None => UsageBody::OpenAi(usage),
        }),
        service_tier: "default",
        system_fingerprint: FINGERPRINT,
    };
    http::json(StatusCode::OK, http::to_json(&completion))
}

enum Reply {
    Text(Answer),
    Tool {
        id: String,
        name: String,
        arguments: String,
        parts: Vec<String>,
    },
}

impl Reply {
    fn completion_tokens(&self) -> u64 {
        match self {
            Reply::Text(answer) => answer.deltas() as u64,
            Reply::Tool { parts, .. } => parts.len() as u64,
        }
    }

    fn finish_reason(&self) -> &'static str {
        match self {
            Reply::Text(_) => "stop",
            Reply::Tool { .. } => "tool_calls",
        }
    }
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageBody>,
    service_tier: &'static str,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: (),
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCall<'a>; 1]>,
    refusal: (),
    annotations: &'static [()],
}

#[derive(Serialize)]
struct ToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall<'a>,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// An answer's usage: OpenAI's, or as a compatible service writes it.
#[derive(Serialize)]
#[serde(untagged)]
enum UsageBody {
    OpenAi(Usage),
    Service(Box<serde_json::value::RawValue>),
}

#[derive(Serialize, Clone, Copy)]
pub(crate) struct Usage {
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    pub(crate) total_tokens: u64,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
}

#[derive(Serialize, Clone, Copy, Default)]
struct PromptDetails {
    cached_tokens: u64,
    audio_tokens: u64,
}

#[derive(Serialize, Clone, Copy, Default)]
struct CompletionDetails {
    reasoning_tokens: u64,
    audio_tokens: u64,
    accepted_prediction_tokens: u64,
    rejected_prediction_tokens: u64,
}

impl Usage {
    fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            prompt_tokens_details: PromptDetails::default(),
            completion_tokens_details: CompletionDetails::default(),
        }
    }
}

/// `chat.completion.chunk` events: role, content or argument deltas, finish, optional usage, `[DONE]`.
struct ChatStream {
    /// Everything up to and including `"choices":[`, identical in every chunk.
    prefix: Vec<u8>,
    reply: Reply,
    usage: Option<Usage>,
    /// With `include_usage` OpenAI adds `"usage":null` to every chunk but the last.
    usage_null: bool,
    /// A compatible service's departures from OpenAI's stream.
    quirk: Option<Quirk>,
    /// Members the finish chunk carries besides OpenAI's (a service's usage).
    finish_members: BytesMut,
}

impl ChatStream {
    fn new(
        id: &str,
        created: u64,
        model: &str,
        reply: Reply,
        usage: Option<Usage>,
        usage_null: bool,
    ) -> ChatStream {
        let mut prefix = Vec::with_capacity(160 + model.len());
        prefix.extend_from_slice(b"data: {\"id\":");
        push_json_str(&mut prefix, id);
        prefix.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        push_u64(&mut prefix, created);
        prefix.extend_from_slice(b",\"model\":");
        push_json_str(&mut prefix, model);
        prefix.extend_from_slice(b",\"service_tier\":\"default\",\"system_fingerprint\":");
        push_json_str(&mut prefix, FINGERPRINT);
        prefix.extend_from_slice(b",\"choices\":[");
        ChatStream {
            prefix,
            reply,
            usage,
            usage_null,
            quirk: None,
            finish_members: BytesMut::new(),
        }
    }

    fn deltas(&self) -> usize {
        match &self.reply {
            Reply::Text(answer) => answer.deltas(),
            Reply::Tool { parts, .. } => parts.len(),
        }
    }

    fn choice(&self, out: &mut BytesMut, delta: impl FnOnce(&mut BytesMut), finish: Option<&str>) {
        out.put_slice(&self.prefix);
        out.put_slice(b"{\"index\":0,\"delta\":");
        delta(out);
        out.put_slice(b",\"logprobs\":null,\"finish_reason\":");
        match finish {
            Some(reason) => push_json_str(out, reason),
            None => out.put_slice(b"null"),
        }
        out.put_slice(b"}]");
        if finish.is_some() {
            out.put_slice(&self.finish_members);
        }
        if self.usage_null {
            out.put_slice(b",\"usage\":null");
        }
        out.put_slice(b"}\n\n");
    }
}

impl Source for ChatStream {
    fn steps(&self) -> usize {
        // role + deltas + finish + optional usage + [DONE]
        self.deltas() + 3 + usize::from(self.usage.is_some())
    }

    fn is_content(&self, step: usize) -> bool {
        (1..=self.deltas()).contains(&step)
    }

    fn render(&mut self, step: usize, out: &mut BytesMut) {
        let deltas = self.deltas();
        if step == 0 {
            match &self.reply {
                Reply::Text(_) => self.choice(
                    out,
                    |o| o.put_slice(b"{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}"),
                    None,
                ),
                Reply::Tool { id, name, .. } => self.choice(
                    out,
                    |o| {
                        o.put_slice(b"{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":");
                        push_json_str(o, id);
                        o.put_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                        push_json_str(o, name);
                        o.put_slice(b",\"arguments\":\"\"}}],\"refusal\":null}");
                    },
                    None,
                ),
            }
        } else if step <= deltas {
            match &self.reply {
                Reply::Text(answer) => self.choice(
                    out,
                    |o| {
                        o.put_slice(b"{\"content\":");
                        push_json_str(o, answer.delta(step - 1));
                        o.put_u8(b'}');
                    },
                    None,
                ),
                Reply::Tool { parts, .. } => self.choice(
                    out,
                    |o| {
                        o.put_slice(b"{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":");
                        push_json_str(o, parts.get(step - 1).map_or("", String::as_str));
                        o.put_slice(b"}}]}");
                    },
                    None,
                ),
            }
        } else if step == deltas + 1 {
            self.choice(
                out,
                |o| o.put_slice(b"{}"),
                Some(self.reply.finish_reason()),
            );
        } else if let (true, Some(usage)) = (step == deltas + 2, &self.usage) {
            out.put_slice(&self.prefix);
            out.put_slice(b"],\"usage\":");
            match self.quirk {
                Some(quirk) => out.put_slice(&quirk.usage_json(usage)),
                None => out.put_slice(&http::to_json(usage)),
            }
            out.put_slice(b"}\n\n");
        } else {
            out.put_slice(b"data: [DONE]\n\n");
        }
    }
}

#[derive(Deserialize)]
struct EmbeddingsRequest<'a> {
    #[serde(borrow)]
    input: EmbeddingInput<'a>,
    #[serde(default, borrow)]
    model: Cow<'a, str>,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default, borrow)]
    encoding_format: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EmbeddingInput<'a> {
    One(#[serde(borrow)] Cow<'a, str>),
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
    Tokens(Vec<i64>),
    TokenLists(Vec<Vec<i64>>),
}

impl EmbeddingInput<'_> {
    /// Each input as bytes to hash, with the tokens it is billed as.
    fn items(&self) -> Vec<(Cow<'_, [u8]>, u64)> {
        fn text(s: &str) -> (Cow<'_, [u8]>, u64) {
            (
                Cow::Borrowed(s.as_bytes()),
                answer::prompt_tokens(s.chars().count()),
            )
        }
        fn tokens(t: &[i64]) -> (Cow<'_, [u8]>, u64) {
            let bytes = t.iter().flat_map(|v| v.to_le_bytes()).collect();
            (Cow::Owned(bytes), t.len() as u64)
        }
        match self {
            EmbeddingInput::One(s) => vec![text(s)],
            EmbeddingInput::Many(all) => all.iter().map(|s| text(s)).collect(),
            EmbeddingInput::Tokens(t) => vec![tokens(t)],
            EmbeddingInput::TokenLists(all) => all.iter().map(|t| tokens(t)).collect(),
        }
    }
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: usize,
    embedding: EmbeddingValue,
}

#[derive(Serialize)]
#[serde(untagged)]
enum EmbeddingValue {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// Largest vector handed out, so a typo cannot make the mock allocate gigabytes.
pub(crate) const MAX_DIMENSIONS: usize = 65_536;

/// Embeddings for OpenAI and Azure.
pub(crate) async fn serve_embeddings(
    state: &State,
    req: &HttpRequest,
    body: Bytes,
    dialect: Dialect<'_>,
) -> HttpResponse {
    let route = match dialect {
        Dialect::OpenAi => Route::OpenAiEmbeddings,
        Dialect::Azure { .. } => Route::AzureEmbeddings,
    };
    let (request, active, model) =
        match admit::<EmbeddingsRequest>(state, req, &body, dialect, route).await {
            Ok(admitted) => admitted,
            Err(rejection) => return rejection,
        };
    let model = model.as_str();
    let dims = request.dimensions.unwrap_or(16);
    if dims == 0 || dims > MAX_DIMENSIONS {
        return error(
            400,
            "Invalid value for 'dimensions': must be between 1 and 65536.",
            "invalid_request_error",
            Some("dimensions"),
            None,
        );
    }
    let items = request.input.items();
    if items.is_empty() {
        return error(
            400,
            "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
            "invalid_request_error",
            None,
            None,
        );
    }
    if let Some(code) = active.injected_failure(model, &state.stats) {
        return injected(code, active.config.retry_after_secs);
    }
    let base64 = request.encoding_format.as_deref() == Some("base64");
    let mut prompt_tokens = 0;
    let data = items
        .iter()
        .enumerate()
        .map(|(index, (bytes, tokens))| {
            prompt_tokens += tokens;
            let vector = answer::embedding(bytes, dims);
            let embedding = if base64 {
                let raw: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                EmbeddingValue::Base64(answer::base64(&raw))
            } else {
                EmbeddingValue::Floats(vector)
            };
            EmbeddingItem {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    let list = EmbeddingList {
        object: "list",
        data,
        model,
        usage: EmbeddingUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    };
    http::json(StatusCode::OK, http::to_json(&list))
}
