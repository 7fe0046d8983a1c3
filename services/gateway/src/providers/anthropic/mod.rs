//! Anthropic's Messages API (`POST /v1/messages`).
//!
//! Requests are rebuilt from the typed OpenAI request: system and developer messages become the
//! top-level `system`, consecutive turns of one role are merged (Anthropic wants user and
//! assistant turns to alternate), tool results become `tool_result` blocks of a user turn, and
//! `response_format` is emulated with a forced tool whose input is the JSON answer. Answers,
//! whole or streamed, are turned back into `chat.completion` and `chat.completion.chunk`.
//! <https://docs.anthropic.com/en/api/messages>

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use tollgate_common::TokenUsage;
use tollgate_common::config::{ProviderConfig, ProviderKind};

use super::sse::{SseDecoder, SseEvent};
use super::{
    ProviderAdapter, StreamTranslator, Translated, UpstreamErrorDetails, UpstreamRequest,
    base_headers, is_http_url, parse_data_url, parse_url, plain_error_text, secret_header,
};
use crate::error::GatewayError;
use crate::openai::InboundBody;
use crate::openai::request::{
    ChatRequest, ContentPart, FileContent, FunctionCall, MessageContent, ResponseFormat, Role,
    Stop, ToolCall, ToolChoice,
};
use crate::openai::response::{
    AssistantMessage, ChatCompletion, ChatCompletionChunk, Choice, ChunkChoice, Delta,
    FunctionCallDelta, SSE_DONE, ToolCallDelta, Usage, unix_now,
};

/// The `anthropic-version` header sent when the provider's `api_version` is not set.
const DEFAULT_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; used when the client set no limit (and reserved for
/// budgets as such: [`ProviderAdapter::default_max_output`]).
const DEFAULT_MAX_TOKENS: u32 = 4096;
/// Names the tool that stands in for `response_format`: its input is the answer's content.
const JSON_OUTPUT_TOOL_PREFIX: &str = "tollgate_json_output__";
/// Anthropic's limit on tool name length.
const MAX_TOOL_NAME_LEN: usize = 64;
const EMPTY_OBJECT_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;
const ANY_OBJECT_SCHEMA: &str = r#"{"type":"object"}"#;

pub struct Anthropic {
    messages_url: Url,
    headers: HeaderMap,
}

impl Anthropic {
    pub fn new(config: &ProviderConfig) -> Result<Self, String> {
        let mut headers = base_headers(config)?;
        if let Some(key) = &config.api_key {
            set_key(&mut headers, key.expose())?;
        }
        let version_header = HeaderName::from_static("anthropic-version");
        match &config.api_version {
            Some(version) => {
                let value = HeaderValue::from_str(version)
                    .map_err(|_| format!("invalid api_version `{version}`"))?;
                headers.insert(version_header, value);
            }
            None => {
                if !headers.contains_key(&version_header) {
                    headers.insert(version_header, HeaderValue::from_static(DEFAULT_VERSION));
                }
            }
        }
        Ok(Anthropic {
            messages_url: parse_url(&format!("{}/v1/messages", config.api_base))?,
            headers,
        })
    }
}

/// How this provider takes an API key.
fn set_key(headers: &mut HeaderMap, api_key: &str) -> Result<(), String> {
    headers.insert(
        HeaderName::from_static("x-api-key"),
        secret_header(api_key)?,
    );
    Ok(())
}

impl ProviderAdapter for Anthropic {
    fn authenticate(&self, headers: &mut HeaderMap, api_key: &str) -> Result<(), String> {
        set_key(headers, api_key)
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    fn default_max_output(&self) -> Option<u32> {
        Some(DEFAULT_MAX_TOKENS)
    }

    fn chat_request(
        &self,
        model: &str,
        body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError> {
        Ok(UpstreamRequest {
            url: self.messages_url.clone(),
            headers: self.headers.clone(),
            own_credentials: false,
            body: translate_request(model, body)?,
        })
    }

    fn chat_response(&self, model: &str, body: &[u8]) -> Result<Translated, String> {
        translate_response(model, body)
    }

    fn chat_stream(&self, model: &str, body: &InboundBody) -> Box<dyn StreamTranslator> {
        Box::new(AnthropicStream::new(model, body.client_wants_stream_usage))
    }

    fn embeddings_request(
        &self,
        _model: &str,
        _body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError> {
        Err(GatewayError::Unsupported(
            "Anthropic has no embeddings API; route embeddings to an OpenAI, Azure OpenAI or Gemini target"
                .into(),
        ))
    }

    fn embeddings_response(
        &self,
        _model: &str,
        _request: &InboundBody,
        _body: &[u8],
    ) -> Result<Translated, String> {
        Err("Anthropic has no embeddings API".into())
    }

    fn error_details(&self, status: u16, body: &[u8]) -> UpstreamErrorDetails {
        error_details(status, body)
    }
}

// ---------------------------------------------------------------------------------------------
// Request: OpenAI chat completion -> Anthropic message
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<WireToolChoice<'a>>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    user_id: &'a str,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Content<'a>,
}

/// Message or tool result content: a lone text block goes out as a plain string.
struct Content<'a>(Vec<Block<'a>>);

impl Serialize for Content<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [] => serializer.serialize_str(""),
            [Block::Text { text }] => serializer.serialize_str(text),
            blocks => blocks.serialize(serializer),
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: Cow<'a, str>,
    },
    Image {
        source: Source<'a>,
    },
    Document {
        source: Source<'a>,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Box<RawValue>,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: Content<'a>,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Source<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

#[derive(Serialize)]
struct WireTool<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: &'a RawValue,
}

#[derive(Serialize)]
struct WireToolChoice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TurnRole {
    User,
    Assistant,
}

/// The client's `tool_choice`, read.
enum ClientChoice<'a> {
    Auto,
    Required,
    None,
    Named(&'a str),
}

fn translate_request(model: &str, body: &InboundBody) -> Result<Bytes, GatewayError> {
    request_body(model, body.chat()?, body.stream, body.max_output_tokens)
}

fn request_body(
    model: &str,
    chat: &ChatRequest,
    stream: bool,
    max_output_tokens: Option<u32>,
) -> Result<Bytes, GatewayError> {
    if chat.n.is_some_and(|n| n > 1) {
        return Err(GatewayError::Unsupported(
            "Anthropic returns one choice per request; `n` must be 1".into(),
        ));
    }
    let empty_schema = static_raw(EMPTY_OBJECT_SCHEMA)?;
    let any_object_schema = static_raw(ANY_OBJECT_SCHEMA)?;

    let (system, messages) = translate_messages(chat)?;

    let mut tools = Vec::with_capacity(chat.tools.as_ref().map_or(0, Vec::len) + 1);
    for (i, tool) in chat.tools.iter().flatten().enumerate() {
        if tool.kind != "function" {
            return Err(GatewayError::Unsupported(format!(
                "tools[{i}]: Anthropic accepts only `function` tools, not `{}`",
                tool.kind
            )));
        }
        if tool.function.name.starts_with(JSON_OUTPUT_TOOL_PREFIX) {
            return Err(GatewayError::invalid_field(
                format!("tools[{i}].function.name"),
                format!("tool names starting with `{JSON_OUTPUT_TOOL_PREFIX}` are reserved."),
            ));
        }
        tools.push(WireTool {
            name: &tool.function.name,
            description: tool.function.description.as_deref(),
            input_schema: tool.function.parameters.as_deref().unwrap_or(empty_schema),
        });
    }
    let client_tools = tools.len();

    // `response_format` becomes a tool the model is made to call; its input is the answer.
    let json_name = match &chat.response_format {
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            Some(json_output_tool_name(&json_schema.name))
        }
        Some(ResponseFormat::JsonObject) => Some(json_output_tool_name("json_object")),
        Some(ResponseFormat::Text) | None => None,
    };
    if let Some(name) = json_name.as_deref() {
        let (description, input_schema) = match &chat.response_format {
            Some(ResponseFormat::JsonSchema { json_schema }) => (
                json_schema.description.as_deref(),
                json_schema.schema.as_deref().unwrap_or(any_object_schema),
            ),
            _ => (None, any_object_schema),
        };
        tools.push(WireTool {
            name,
            description: Some(description.unwrap_or(
                "Give your final answer by calling this tool: its input is the answer, as JSON matching the schema.",
            )),
            input_schema,
        });
    }

    let client_choice = match &chat.tool_choice {
        None => None,
        Some(ToolChoice::Mode(mode)) => Some(match mode.as_str() {
            "auto" => ClientChoice::Auto,
            "required" => ClientChoice::Required,
            "none" => ClientChoice::None,
            other => {
                return Err(GatewayError::invalid_field(
                    "tool_choice",
                    format!(
                        "Invalid value for 'tool_choice': `{other}`; expected `none`, `auto`, `required` or a named function."
                    ),
                ));
            }
        }),
        Some(ToolChoice::Named(named)) => Some(ClientChoice::Named(&named.function.name)),
    };
    let disable_parallel = chat.parallel_tool_calls == Some(false);
    let tool_choice = match json_name.as_deref() {
        // With the client's own tools, the model must call one of them or answer through the
        // output tool; with none (or `tool_choice: none`), it must answer through the output tool.
        Some(_) if client_tools > 0 && !matches!(client_choice, Some(ClientChoice::None)) => {
            Some(match client_choice {
                Some(ClientChoice::Named(name)) => {
                    wire_tool_choice("tool", Some(name), disable_parallel)
                }
                _ => wire_tool_choice("any", None, disable_parallel),
            })
        }
        Some(json) => Some(wire_tool_choice("tool", Some(json), true)),
        None if client_tools == 0 => None,
        None => match client_choice {
            Some(ClientChoice::Auto) => Some(wire_tool_choice("auto", None, disable_parallel)),
            Some(ClientChoice::Required) => Some(wire_tool_choice("any", None, disable_parallel)),
            Some(ClientChoice::None) => Some(wire_tool_choice("none", None, false)),
            Some(ClientChoice::Named(name)) => {
                Some(wire_tool_choice("tool", Some(name), disable_parallel))
            }
            None => disable_parallel.then(|| wire_tool_choice("auto", None, true)),
        },
    };

    let request = MessagesRequest {
        model,
        max_tokens: max_output_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        system,
        messages,
        temperature: chat.temperature.map(|t| t.min(1.0)),
        top_p: chat.top_p,
        stop_sequences: match &chat.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.as_str()],
            Some(Stop::Many(v)) => v.iter().map(String::as_str).collect(),
        },
        metadata: chat.user.as_deref().map(|user_id| Metadata { user_id }),
        stream,
        tools,
        tool_choice,
    };
    serde_json::to_vec(&request)
        .map(Bytes::from)
        .map_err(|e| GatewayError::Internal(format!("cannot serialize the Anthropic request: {e}")))
}

fn wire_tool_choice<'a>(
    kind: &'static str,
    name: Option<&'a str>,
    disable_parallel_tool_use: bool,
) -> WireToolChoice<'a> {
    WireToolChoice {
        kind,
        name,
        disable_parallel_tool_use: disable_parallel_tool_use.then_some(true),
    }
}

/// A JSON constant as a raw value.
fn static_raw(json: &'static str) -> Result<&'static RawValue, GatewayError> {
    serde_json::from_str(json)
        .map_err(|e| GatewayError::Internal(format!("bad built-in JSON schema: {e}")))
}

/// The structured-output tool's name: the reserved prefix and the schema's name, cut to
/// Anthropic's length limit and to the characters it allows.
fn json_output_tool_name(schema_name: &str) -> String {
    let mut name = String::from(JSON_OUTPUT_TOOL_PREFIX);
    name.extend(
        schema_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(MAX_TOOL_NAME_LEN - JSON_OUTPUT_TOOL_PREFIX.len()),
    );
    name
}

/// The joined system prompt and the alternating user/assistant turns.
fn translate_messages(
    chat: &ChatRequest,
) -> Result<(Option<String>, Vec<WireMessage<'_>>), GatewayError> {
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<(TurnRole, Vec<Block<'_>>)> = Vec::new();
    for (i, message) in chat.messages.iter().enumerate() {
        let mut blocks = Vec::new();
        let role = match message.role {
            Role::System | Role::Developer => {
                if let Some(content) = &message.content {
                    let text = content.text();
                    if !text.is_empty() {
                        system.push(text);
                    }
                }
                continue;
            }
            Role::User => {
                if let Some(content) = &message.content {
                    content_blocks(content, i, &mut blocks)?;
                }
                TurnRole::User
            }
            Role::Assistant => {
                if let Some(content) = &message.content {
                    content_blocks(content, i, &mut blocks)?;
                }
                for (j, call) in message.tool_calls.iter().flatten().enumerate() {
                    blocks.push(tool_use_block(call, i, j)?);
                }
                TurnRole::Assistant
            }
            Role::Tool | Role::Function => {
                let tool_use_id = message
                    .tool_call_id
                    .as_deref()
                    .or(message.name.as_deref())
                    .ok_or_else(|| {
                        GatewayError::invalid_field(
                            format!("messages[{i}].tool_call_id"),
                            "a tool message needs the `tool_call_id` of the call it answers.",
                        )
                    })?;
                let mut inner = Vec::new();
                if let Some(content) = &message.content {
                    content_blocks(content, i, &mut inner)?;
                }
                blocks.push(Block::ToolResult {
                    tool_use_id,
                    content: Content(inner),
                });
                TurnRole::User
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    if turns.is_empty() {
        return Err(GatewayError::invalid_field(
            "messages",
            "`messages` must contain at least one non-empty user or assistant message.",
        ));
    }
    let messages = turns
        .into_iter()
        .map(|(role, mut blocks)| {
            // Anthropic wants a user turn's tool results before anything else in it.
            if role == TurnRole::User {
                blocks.sort_by_key(|b| !matches!(b, Block::ToolResult { .. }));
            }
            WireMessage {
                role: match role {
                    TurnRole::User => "user",
                    TurnRole::Assistant => "assistant",
                },
                content: Content(blocks),
            }
        })
        .collect();
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    Ok((system, messages))
}

/// Appends the blocks of one message's content (empty texts are dropped: Anthropic refuses them).
fn content_blocks<'a>(
    content: &'a MessageContent,
    i: usize,
    out: &mut Vec<Block<'a>>,
) -> Result<(), GatewayError> {
    let parts = match content {
        MessageContent::Text(text) => {
            if !text.is_empty() {
                out.push(Block::Text {
                    text: Cow::Borrowed(text),
                });
            }
            return Ok(());
        }
        MessageContent::Parts(parts) => parts,
    };
    for (j, part) in parts.iter().enumerate() {
        match part {
            ContentPart::Text { text } | ContentPart::Refusal { refusal: text } => {
                if !text.is_empty() {
                    out.push(Block::Text {
                        text: Cow::Borrowed(text),
                    });
                }
            }
            ContentPart::ImageUrl { image_url } => {
                let path = format!("messages[{i}].content[{j}].image_url.url");
                out.push(Block::Image {
                    source: image_source(&image_url.url, &path)?,
                });
            }
            ContentPart::InputAudio { .. } => {
                return Err(GatewayError::Unsupported(format!(
                    "Anthropic models do not accept audio input (messages[{i}].content[{j}] is `input_audio`); send a transcript as text instead"
                )));
            }
            ContentPart::File { file } => out.push(document_block(file, i, j)?),
        }
    }
    Ok(())
}

fn image_source<'a>(url: &'a str, path: &str) -> Result<Source<'a>, GatewayError> {
    if url.starts_with("data:") {
        let (media_type, data) = media_data_url(url).ok_or_else(|| {
            GatewayError::invalid_field(
                path,
                "an image data URL must have the form `data:<mime type>;base64,<data>`.",
            )
        })?;
        return Ok(Source::Base64 { media_type, data });
    }
    if is_http_url(url) {
        return Ok(Source::Url { url });
    }
    Err(GatewayError::invalid_field(
        path,
        "an image URL must be an http(s) URL or a base64 data URL.",
    ))
}

/// A base64 data URL that names its media type, as Anthropic requires.
fn media_data_url(url: &str) -> Option<(&str, &str)> {
    parse_data_url(url).filter(|(media_type, _)| !media_type.is_empty())
}

fn document_block<'a>(
    file: &'a FileContent,
    i: usize,
    j: usize,
) -> Result<Block<'a>, GatewayError> {
    let Some(file_data) = file.file_data.as_deref() else {
        return Err(GatewayError::Unsupported(format!(
            "messages[{i}].content[{j}]: Anthropic cannot read OpenAI file ids; send the file inline as `file_data`"
        )));
    };
    let data = if file_data.starts_with("data:") {
        let (media_type, data) = media_data_url(file_data).ok_or_else(|| {
            GatewayError::invalid_field(
                format!("messages[{i}].content[{j}].file.file_data"),
                "file data must be base64, optionally as `data:application/pdf;base64,<data>`.",
            )
        })?;
        if !media_type.eq_ignore_ascii_case("application/pdf") {
            return Err(GatewayError::Unsupported(format!(
                "messages[{i}].content[{j}]: Anthropic accepts PDF files only, not `{media_type}`"
            )));
        }
        data
    } else {
        let is_pdf = file
            .filename
            .as_deref()
            .is_none_or(|name| name.to_ascii_lowercase().ends_with(".pdf"));
        if !is_pdf {
            return Err(GatewayError::Unsupported(format!(
                "messages[{i}].content[{j}]: Anthropic accepts PDF files only"
            )));
        }
        file_data
    };
    Ok(Block::Document {
        source: Source::Base64 {
            media_type: "application/pdf",
            data,
        },
    })
}

fn tool_use_block(call: &ToolCall, i: usize, j: usize) -> Result<Block<'_>, GatewayError> {
    let path = || format!("messages[{i}].tool_calls[{j}].function.arguments");
    let arguments = call.function.arguments.trim();
    let input: Box<RawValue> = if arguments.is_empty() {
        static_raw("{}")?.to_owned()
    } else {
        serde_json::from_str(arguments).map_err(|e| {
            GatewayError::invalid_field(path(), format!("the arguments are not valid JSON: {e}."))
        })?
    };
    if !input.get().starts_with('{') {
        return Err(GatewayError::invalid_field(
            path(),
            "the arguments must be a JSON object.",
        ));
    }
    Ok(Block::ToolUse {
        id: &call.id,
        name: &call.function.name,
        input,
    })
}

// ---------------------------------------------------------------------------------------------
// Response: Anthropic message -> OpenAI chat completion
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct MessageResponse {
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<ResponseBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// A content block, flat: `input` is raw JSON, which serde cannot buffer inside a tagged enum.
#[derive(Deserialize)]
struct ResponseBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Box<RawValue>>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

/// Running token counts; Anthropic's prompt counts exclude the cached part, OpenAI's include it.
#[derive(Debug, Clone, Copy, Default)]
struct TokenCounts {
    input: u64,
    cache_read: u64,
    cache_creation: u64,
    output: u64,
}

impl TokenCounts {
    fn update(&mut self, usage: &WireUsage) {
        if let Some(n) = usage.input_tokens {
            self.input = n;
        }
        if let Some(n) = usage.cache_read_input_tokens {
            self.cache_read = n;
        }
        if let Some(n) = usage.cache_creation_input_tokens {
            self.cache_creation = n;
        }
        if let Some(n) = usage.output_tokens {
            self.output = n;
        }
    }

    fn usage(&self) -> Usage {
        // Saturating: the counts are the upstream's numbers, and a sum that wrapped around
        // would bill a huge answer as a small one.
        Usage::new(
            self.input
                .saturating_add(self.cache_read)
                .saturating_add(self.cache_creation),
            self.output,
            self.cache_read,
        )
    }
}

/// OpenAI's `finish_reason` for Anthropic's `stop_reason`; a `tool_use` stop caused only by the
/// structured-output tool is a plain `stop`.
fn finish_reason(stop_reason: Option<&str>, real_tool_calls: bool) -> &'static str {
    match stop_reason {
        Some("end_turn" | "stop_sequence" | "pause_turn") => "stop",
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("refusal") => "content_filter",
        _ if real_tool_calls => "tool_calls",
        _ => "stop",
    }
}

fn translate_response(model: &str, body: &[u8]) -> Result<Translated, String> {
    let message: MessageResponse = serde_json::from_slice(body)
        .map_err(|e| format!("Anthropic answered with a body that is not a message: {e}"))?;
    let mut text: Option<String> = None;
    let mut json_output: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in message.content {
        match block.kind.as_str() {
            "text" => {
                if let Some(t) = block.text {
                    text.get_or_insert_with(String::new).push_str(&t);
                }
            }
            "tool_use" => {
                let name = block.name.unwrap_or_default();
                let arguments = block
                    .input
                    .map_or_else(|| "{}".to_owned(), |input| input.get().to_owned());
                if name.starts_with(JSON_OUTPUT_TOOL_PREFIX) {
                    json_output.get_or_insert(arguments);
                } else {
                    tool_calls.push(ToolCall {
                        id: block.id.unwrap_or_default(),
                        kind: "function".into(),
                        function: FunctionCall { name, arguments },
                    });
                }
            }
            // thinking, redacted_thinking and server-side tool blocks have no OpenAI form.
            _ => {}
        }
    }
    let mut counts = TokenCounts::default();
    if let Some(usage) = &message.usage {
        counts.update(usage);
    }
    let usage = message.usage.is_some().then(|| counts.usage());
    let finish = finish_reason(message.stop_reason.as_deref(), !tool_calls.is_empty());
    let completion = ChatCompletion {
        id: format!("chatcmpl-{}", message.id),
        object: "chat.completion".into(),
        created: unix_now(),
        model: if message.model.is_empty() {
            model.to_owned()
        } else {
            message.model
        },
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant".into(),
                content: json_output.or(text),
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                refusal: None,
            },
            finish_reason: Some(finish.to_owned()),
            logprobs: None,
        }],
        usage,
    };
    let body = serde_json::to_vec(&completion)
        .map_err(|e| format!("cannot serialize the chat completion: {e}"))?;
    Ok(Translated {
        body: Bytes::from(body),
        usage: usage.map(|u| u.tokens()),
    })
}

// ---------------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct StreamEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<StartedMessage>,
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    content_block: Option<StartedBlock>,
    #[serde(default)]
    delta: Option<EventDelta>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct StartedMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct StartedBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

/// A `content_block_delta`'s or a `message_delta`'s `delta`.
#[derive(Deserialize)]
struct EventDelta {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// What a content block of the stream turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Ignored,
    Text,
    /// A tool call, with its index among the message's tool calls.
    Tool(u32),
    /// The structured-output tool: its input is streamed as content.
    JsonOutput,
}

struct AnthropicStream {
    decoder: SseDecoder,
    include_usage: bool,
    id: String,
    model: String,
    created: u64,
    started: bool,
    stopped: bool,
    /// By the upstream's block `index`: a map, not a vector, so that an index far past any
    /// real answer's costs one entry rather than sizing an allocation.
    blocks: BTreeMap<usize, BlockKind>,
    tool_calls: u32,
    json_output_seen: bool,
    counts: TokenCounts,
    output: String,
}

impl AnthropicStream {
    fn new(model: &str, include_usage: bool) -> Self {
        AnthropicStream {
            decoder: SseDecoder::new(),
            include_usage,
            id: String::new(),
            model: model.to_owned(),
            created: 0,
            started: false,
            stopped: false,
            blocks: BTreeMap::new(),
            tool_calls: 0,
            json_output_seen: false,
            counts: TokenCounts::default(),
            output: String::new(),
        }
    }

    fn emit(&self, out: &mut BytesMut, delta: Delta, finish_reason: Option<&str>) {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish_reason.map(str::to_owned),
            }],
            usage: None,
        }
        .write_sse(out);
    }

    fn emit_content(&mut self, out: &mut BytesMut, text: String) {
        if text.is_empty() {
            return;
        }
        self.output.push_str(&text);
        self.emit(
            out,
            Delta {
                content: Some(text),
                ..Delta::default()
            },
            None,
        );
    }

    fn emit_tool_delta(&self, out: &mut BytesMut, call: ToolCallDelta) {
        self.emit(
            out,
            Delta {
                tool_calls: Some(vec![call]),
                ..Delta::default()
            },
            None,
        );
    }

    fn block(&self, index: Option<usize>) -> BlockKind {
        index
            .and_then(|i| self.blocks.get(&i).copied())
            .unwrap_or(BlockKind::Ignored)
    }

    fn set_block(&mut self, index: usize, kind: BlockKind) {
        self.blocks.insert(index, kind);
    }

    fn handle(&mut self, event: SseEvent, out: &mut BytesMut) -> Result<(), String> {
        if self.stopped {
            return Ok(());
        }
        let event: StreamEvent = serde_json::from_str(&event.data)
            .map_err(|e| format!("Anthropic sent an unreadable stream event: {e}"))?;
        match event.kind.as_str() {
            "ping" => {}
            "error" => {
                let error = event.error.unwrap_or(WireError {
                    kind: None,
                    message: None,
                });
                return Err(error
                    .message
                    .or(error.kind)
                    .unwrap_or_else(|| "Anthropic reported an error in the stream".to_owned()));
            }
            "message_start" => {
                let message = event
                    .message
                    .ok_or("Anthropic sent a message_start event without a message")?;
                self.started = true;
                self.id = format!("chatcmpl-{}", message.id);
                if !message.model.is_empty() {
                    self.model = message.model;
                }
                self.created = unix_now();
                if let Some(usage) = &message.usage {
                    self.counts.update(usage);
                }
                self.emit(
                    out,
                    Delta {
                        role: Some("assistant".into()),
                        content: Some(String::new()),
                        ..Delta::default()
                    },
                    None,
                );
            }
            _ if !self.started => {
                return Err(format!(
                    "Anthropic sent a `{}` event before message_start",
                    event.kind
                ));
            }
            "content_block_start" => {
                let (Some(index), Some(block)) = (event.index, event.content_block) else {
                    return Ok(());
                };
                match block.kind.as_str() {
                    "text" => {
                        self.set_block(index, BlockKind::Text);
                        self.emit_content(out, block.text.unwrap_or_default());
                    }
                    "tool_use" => {
                        let name = block.name.unwrap_or_default();
                        if name.starts_with(JSON_OUTPUT_TOOL_PREFIX) {
                            let kind = if self.json_output_seen {
                                BlockKind::Ignored
                            } else {
                                BlockKind::JsonOutput
                            };
                            self.json_output_seen = true;
                            self.set_block(index, kind);
                        } else {
                            let n = self.tool_calls;
                            self.tool_calls += 1;
                            self.set_block(index, BlockKind::Tool(n));
                            self.emit_tool_delta(
                                out,
                                ToolCallDelta {
                                    index: n,
                                    id: block.id,
                                    kind: Some("function".into()),
                                    function: FunctionCallDelta {
                                        name: Some(name),
                                        arguments: Some(String::new()),
                                    },
                                },
                            );
                        }
                    }
                    _ => self.set_block(index, BlockKind::Ignored),
                }
            }
            "content_block_delta" => {
                let Some(delta) = event.delta else {
                    return Ok(());
                };
                match (self.block(event.index), delta.kind.as_deref()) {
                    (BlockKind::Text, Some("text_delta")) => {
                        self.emit_content(out, delta.text.unwrap_or_default());
                    }
                    (BlockKind::JsonOutput, Some("input_json_delta")) => {
                        self.emit_content(out, delta.partial_json.unwrap_or_default());
                    }
                    (BlockKind::Tool(n), Some("input_json_delta")) => {
                        let fragment = delta.partial_json.unwrap_or_default();
                        if !fragment.is_empty() {
                            self.emit_tool_delta(
                                out,
                                ToolCallDelta {
                                    index: n,
                                    id: None,
                                    kind: None,
                                    function: FunctionCallDelta {
                                        name: None,
                                        arguments: Some(fragment),
                                    },
                                },
                            );
                        }
                    }
                    // thinking, signature and citation deltas have no OpenAI form.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(usage) = &event.usage {
                    self.counts.update(usage);
                }
                let stop_reason = event.delta.and_then(|d| d.stop_reason);
                let finish = finish_reason(stop_reason.as_deref(), self.tool_calls > 0);
                self.emit(out, Delta::default(), Some(finish));
            }
            "message_stop" => {
                self.stopped = true;
                if self.include_usage {
                    ChatCompletionChunk {
                        id: self.id.clone(),
                        object: "chat.completion.chunk".into(),
                        created: self.created,
                        model: self.model.clone(),
                        choices: Vec::new(),
                        usage: Some(self.counts.usage()),
                    }
                    .write_sse(out);
                }
                out.extend_from_slice(SSE_DONE);
            }
            // content_block_stop, and event types added after this was written.
            _ => {}
        }
        Ok(())
    }
}

impl StreamTranslator for AnthropicStream {
    fn feed(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), String> {
        self.decoder.push(chunk);
        while let Some(event) = self.decoder.next_event() {
            self.handle(event, out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), String> {
        while let Some(event) = self.decoder.finish() {
            self.handle(event, out)?;
        }
        if self.stopped {
            Ok(())
        } else {
            Err("stream ended before message_stop".into())
        }
    }

    fn usage(&self) -> Option<TokenUsage> {
        self.started.then(|| self.counts.usage().tokens())
    }

    fn output_text(&self) -> &str {
        &self.output
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

fn error_details(status: u16, body: &[u8]) -> UpstreamErrorDetails {
    #[derive(Deserialize)]
    struct Envelope {
        error: WireError,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope { error }) => UpstreamErrorDetails {
            // A blank message would reach the client as an error that says nothing.
            message: error
                .message
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| format!("upstream returned status {status}")),
            kind: Some(openai_error_type(error.kind.as_deref(), status).to_owned()),
            param: None,
            code: error.kind,
        },
        Err(_) => UpstreamErrorDetails {
            message: plain_error_text(status, body),
            ..UpstreamErrorDetails::default()
        },
    }
}

/// OpenAI's `error.type` for one of Anthropic's error types.
fn openai_error_type(kind: Option<&str>, status: u16) -> &'static str {
    match kind {
        Some("invalid_request_error" | "request_too_large") => "invalid_request_error",
        Some("authentication_error") => "authentication_error",
        Some("permission_error") => "permission_error",
        Some("not_found_error") => "not_found_error",
        Some("rate_limit_error") => "rate_limit_error",
        Some("billing_error") => "insufficient_quota",
        Some("api_error" | "overloaded_error" | "timeout_error") => "server_error",
        _ if status >= 500 => "server_error",
        _ => "invalid_request_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::Endpoint;
    use crate::providers::tests_support::fixture;
    use rand::{Rng, SeedableRng};
    use serde_json::{Value, json};
    use std::collections::BTreeMap;
    use tollgate_common::Secret;

    fn config(api_version: Option<&str>) -> ProviderConfig {
        ProviderConfig {
            kind: ProviderKind::Anthropic,
            api_base: "https://api.anthropic.com".into(),
            api_key: Some(Secret::new("sk-ant-test")),
            api_version: api_version.map(str::to_owned),
            headers: BTreeMap::new(),
        }
    }

    fn adapter() -> Anthropic {
        Anthropic::new(&config(None)).unwrap()
    }

    fn inbound(body: &Value) -> InboundBody {
        InboundBody::parse(Endpoint::ChatCompletions, Bytes::from(body.to_string())).unwrap()
    }

    /// The Anthropic body sent for an OpenAI body (given without `model`).
    fn sent(mut body: Value) -> Value {
        body["model"] = json!("smart");
        let request = adapter()
            .chat_request("claude-sonnet-4-5", &inbound(&body))
            .unwrap();
        serde_json::from_slice(&request.body).unwrap()
    }

    fn refused(mut body: Value) -> GatewayError {
        body["model"] = json!("smart");
        adapter()
            .chat_request("claude-sonnet-4-5", &inbound(&body))
            .unwrap_err()
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    /// Feeds `stream` in pieces of the sizes `split` gives and returns the output as text.
    fn run_stream(
        translator: &mut dyn StreamTranslator,
        stream: &[u8],
        mut split: impl FnMut() -> usize,
    ) -> Result<String, String> {
        let mut out = BytesMut::new();
        let mut rest = stream;
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(split().min(rest.len()));
            translator.feed(piece, &mut out)?;
            rest = tail;
        }
        translator.finish(&mut out)?;
        Ok(String::from_utf8(out.to_vec()).unwrap())
    }

    /// The OpenAI events of a stream output, `created` removed; `[DONE]` as a string.
    fn events(output: &str) -> Vec<Value> {
        assert!(output.ends_with("\n\n"), "{output:?}");
        output
            .split_terminator("\n\n")
            .map(|event| {
                let data = event.strip_prefix("data: ").unwrap();
                assert!(!data.contains('\n'), "{event:?}");
                if data == "[DONE]" {
                    return json!("[DONE]");
                }
                let mut value: Value = serde_json::from_str(data).unwrap();
                assert_eq!(value["object"], "chat.completion.chunk");
                assert!(value["created"].as_u64().unwrap() > 0);
                value.as_object_mut().unwrap().remove("created");
                value
            })
            .collect()
    }

    fn stream_translator(wants_usage: bool) -> Box<dyn StreamTranslator> {
        let mut body = json!({"model": "smart", "messages": [user("hi")], "stream": true});
        if wants_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        adapter().chat_stream("claude-sonnet-4-5", &inbound(&body))
    }

    #[test]
    fn request_goes_to_v1_messages_with_key_and_version_headers() {
        let body = inbound(&json!({"model": "smart", "messages": [user("hi")]}));
        let request = adapter().chat_request("claude-sonnet-4-5", &body).unwrap();
        assert_eq!(
            request.url.as_str(),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(request.headers["x-api-key"], "sk-ant-test");
        assert!(request.headers["x-api-key"].is_sensitive());
        assert_eq!(request.headers["anthropic-version"], "2023-06-01");
        assert_eq!(request.headers["content-type"], "application/json");
        assert!(request.headers.get("authorization").is_none());

        let pinned = Anthropic::new(&config(Some("2024-01-01"))).unwrap();
        let request = pinned.chat_request("claude-sonnet-4-5", &body).unwrap();
        assert_eq!(request.headers["anthropic-version"], "2024-01-01");
        assert_eq!(pinned.kind(), ProviderKind::Anthropic);
    }

    #[test]
    fn plain_request_has_model_max_tokens_and_string_content() {
        let body = sent(json!({"messages": [user("Hello")]}));
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 4096,
                "messages": [{"role": "user", "content": "Hello"}]
            })
        );
    }

    #[test]
    fn system_and_developer_messages_are_hoisted_and_joined() {
        let body = sent(json!({"messages": [
            {"role": "system", "content": "You are terse."},
            user("Hi"),
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "assistant", "content": "Bonjour"},
        ]}));
        assert_eq!(body["system"], "You are terse.\n\nAnswer in French.");
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Bonjour"}
            ])
        );
    }

    #[test]
    fn consecutive_roles_merge_and_tool_results_join_the_user_turn_first() {
        let body = sent(json!({"messages": [
            user("What is the weather in Paris and Rome?"),
            {"role": "user", "content": [{"type": "text", "text": "Use celsius."}]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18°C"},
            user("(be quick)"),
            {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "24°C"}]},
            {"role": "assistant", "content": null},
            {"role": "assistant", "content": "Paris 18°C, Rome 24°C."},
        ]}));
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 4, "{body:#}");
        assert_eq!(
            messages[0],
            json!({"role": "user", "content": [
                {"type": "text", "text": "What is the weather in Paris and Rome?"},
                {"type": "text", "text": "Use celsius."}
            ]})
        );
        assert_eq!(
            messages[1],
            json!({"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}}
            ]})
        );
        assert_eq!(
            messages[2],
            json!({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "24°C"},
                {"type": "text", "text": "(be quick)"}
            ]})
        );
        assert_eq!(
            messages[3],
            json!({"role": "assistant", "content": "Paris 18°C, Rome 24°C."})
        );
    }

    #[test]
    fn empty_tool_arguments_are_an_empty_object_and_function_role_is_a_tool_result() {
        let body = sent(json!({"messages": [
            user("Now?"),
            {"role": "assistant", "tool_calls": [
                {"id": "toolu_9", "type": "function", "function": {"name": "now", "arguments": ""}}
            ]},
            {"role": "function", "name": "toolu_9", "content": "12:00"},
        ]}));
        assert_eq!(body["messages"][1]["content"][0]["input"], json!({}));
        assert_eq!(
            body["messages"][2]["content"],
            json!([{"type": "tool_result", "tool_use_id": "toolu_9", "content": "12:00"}])
        );
        let err = refused(json!({"messages": [user("x"), {"role": "tool", "content": "y"}]}));
        assert_eq!(err.body().error.param, Some("messages[1].tool_call_id"));
    }

    #[test]
    fn images_base64_and_url_and_pdf_documents() {
        let body = sent(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "Compare"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
        ]}]}));
        assert_eq!(
            body["messages"][0]["content"],
            json!([
                {"type": "text", "text": "Compare"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}}
            ])
        );
    }

    #[test]
    fn audio_file_ids_and_bad_image_urls_are_refused() {
        let audio = refused(json!({"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
        ]}]}));
        assert!(matches!(audio, GatewayError::Unsupported(_)), "{audio:?}");
        assert!(audio.to_string().contains("audio"), "{audio}");

        let file_id = refused(json!({"messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_id": "file-abc"}}
        ]}]}));
        assert!(
            matches!(file_id, GatewayError::Unsupported(_)),
            "{file_id:?}"
        );

        let not_pdf = refused(json!({"messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_data": "data:text/csv;base64,YSxi"}}
        ]}]}));
        assert!(
            matches!(not_pdf, GatewayError::Unsupported(_)),
            "{not_pdf:?}"
        );

        let bad_url = refused(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "x"},
            {"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}
        ]}]}));
        assert_eq!(
            bad_url.body().error.param,
            Some("messages[0].content[1].image_url.url")
        );
    }

    #[test]
    fn tool_definitions_and_every_tool_choice() {
        let tools = json!([
            {"type": "function", "function": {"name": "weather", "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
            {"type": "function", "function": {"name": "now"}}
        ]);
        let body = sent(json!({"messages": [user("x")], "tools": tools}));
        assert_eq!(
            body["tools"],
            json!([
                {"name": "weather", "description": "Weather for a city",
                 "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
                {"name": "now", "input_schema": {"type": "object", "properties": {}}}
            ])
        );
        assert!(body.get("tool_choice").is_none());

        let cases = [
            (json!("auto"), None, json!({"type": "auto"})),
            (json!("required"), None, json!({"type": "any"})),
            (json!("none"), None, json!({"type": "none"})),
            (
                json!({"type": "function", "function": {"name": "now"}}),
                None,
                json!({"type": "tool", "name": "now"}),
            ),
            (
                json!("auto"),
                Some(false),
                json!({"type": "auto", "disable_parallel_tool_use": true}),
            ),
            (
                json!({"type": "function", "function": {"name": "now"}}),
                Some(false),
                json!({"type": "tool", "name": "now", "disable_parallel_tool_use": true}),
            ),
            (json!("none"), Some(false), json!({"type": "none"})),
            (json!("auto"), Some(true), json!({"type": "auto"})),
        ];
        for (choice, parallel, expected) in cases {
            let mut request =
                json!({"messages": [user("x")], "tools": tools, "tool_choice": choice});
            if let Some(parallel) = parallel {
                request["parallel_tool_calls"] = json!(parallel);
            }
            assert_eq!(
                sent(request)["tool_choice"],
                expected,
                "{choice} {parallel:?}"
            );
        }
        let body =
            sent(json!({"messages": [user("x")], "tools": tools, "parallel_tool_calls": false}));
        assert_eq!(
            body["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );

        let err =
            refused(json!({"messages": [user("x")], "tools": tools, "tool_choice": "sometimes"}));
        assert_eq!(err.body().error.param, Some("tool_choice"));
    }

    #[test]
    fn sampling_parameters_stop_user_and_stream() {
        let body = sent(json!({
            "messages": [user("x")],
            "temperature": 1.7,
            "top_p": 0.5,
            "stop": ["END", "STOP"],
            "user": "user-42",
            "max_completion_tokens": 300,
            "max_tokens": 100,
            "stream": true,
            "seed": 3,
            "presence_penalty": 0.5
        }));
        assert_eq!(body["temperature"], 1.0);
        assert_eq!(body["top_p"], 0.5);
        assert_eq!(body["stop_sequences"], json!(["END", "STOP"]));
        assert_eq!(body["metadata"], json!({"user_id": "user-42"}));
        assert_eq!(body["max_tokens"], 300);
        assert_eq!(body["stream"], true);
        assert!(body.get("seed").is_none() && body.get("presence_penalty").is_none());

        let body = sent(
            json!({"messages": [user("x")], "stop": "\n\nHuman:", "temperature": 0.2, "max_tokens": 50}),
        );
        assert_eq!(body["stop_sequences"], json!(["\n\nHuman:"]));
        assert!((body["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
        assert_eq!(body["max_tokens"], 50);
        assert!(body.get("stream").is_none());
    }

    #[test]
    fn more_than_one_choice_is_refused() {
        let err = refused(json!({"messages": [user("x")], "n": 2}));
        assert!(matches!(err, GatewayError::Unsupported(_)), "{err:?}");
        assert!(err.to_string().contains("`n` must be 1"), "{err}");
        assert_eq!(
            sent(json!({"messages": [user("x")], "n": 1}))["messages"][0]["content"],
            "x"
        );
    }

    #[test]
    fn invalid_tool_arguments_are_refused_with_their_path() {
        for arguments in ["{\"city\": ", "[1, 2]"] {
            let err = refused(json!({"messages": [
                {"role": "system", "content": "s"},
                user("x"),
                {"role": "assistant", "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "b", "type": "function", "function": {"name": "f", "arguments": arguments}}
                ]}
            ]}));
            assert_eq!(
                err.body().error.param,
                Some("messages[2].tool_calls[1].function.arguments"),
                "{arguments}: {err}"
            );
            assert_eq!(err.status().as_u16(), 400);
        }
    }

    #[test]
    fn only_system_messages_are_refused() {
        let err = refused(json!({"messages": [{"role": "system", "content": "s"}]}));
        assert_eq!(err.body().error.param, Some("messages"));
    }

    #[test]
    fn response_format_becomes_a_forced_output_tool() {
        let schema = json!({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]});
        // Built by hand: `ResponseFormat` is an internally tagged enum, which serde cannot
        // deserialize a raw `schema` inside.
        let mut chat: ChatRequest =
            serde_json::from_value(json!({"model": "smart", "messages": [user("x")]})).unwrap();
        chat.response_format = Some(ResponseFormat::JsonSchema {
            json_schema: crate::openai::request::JsonSchemaFormat {
                name: "answer".into(),
                description: None,
                schema: Some(RawValue::from_string(schema.to_string()).unwrap()),
                strict: Some(true),
            },
        });
        let body: Value =
            serde_json::from_slice(&request_body("claude-sonnet-4-5", &chat, false, None).unwrap())
                .unwrap();
        let tools = body["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0]["name"], "tollgate_json_output__answer");
        assert_eq!(tools[0]["input_schema"], schema);
        assert_eq!(
            body["tool_choice"],
            json!({"type": "tool", "name": "tollgate_json_output__answer", "disable_parallel_tool_use": true})
        );

        let body =
            sent(json!({"messages": [user("x")], "response_format": {"type": "json_object"}}));
        assert_eq!(body["tools"][0]["input_schema"], json!({"type": "object"}));
        assert_eq!(body["tool_choice"]["name"], body["tools"][0]["name"]);

        // With the client's own tools, the model must call one of them or the output tool.
        let body = sent(json!({
            "messages": [user("x")],
            "tools": [{"type": "function", "function": {"name": "lookup"}}],
            "response_format": {"type": "json_object"}
        }));
        assert_eq!(body["tools"].as_array().unwrap().len(), 2);
        assert_eq!(body["tool_choice"], json!({"type": "any"}));

        let long = "n".repeat(64);
        let body = sent(json!({"messages": [user("x")],
            "response_format": {"type": "json_schema", "json_schema": {"name": long}}}));
        assert_eq!(
            body["tools"][0]["name"].as_str().unwrap().len(),
            MAX_TOOL_NAME_LEN
        );

        let body = sent(json!({"messages": [user("x")], "response_format": {"type": "text"}}));
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn text_response_with_cached_usage() {
        let translated = adapter()
            .chat_response(
                "claude-sonnet-4-5",
                &fixture("anthropic", "messages_response.json"),
            )
            .unwrap();
        let body: Value = serde_json::from_slice(&translated.body).unwrap();
        assert_eq!(body["id"], "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL");
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "claude-sonnet-4-5-20250929");
        assert!(body["created"].as_u64().unwrap() > 0);
        let choice = &body["choices"][0];
        assert_eq!(body["choices"].as_array().unwrap().len(), 1);
        assert_eq!(choice["index"], 0);
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(
            choice["message"]["content"],
            "Hello! How can I help you today?"
        );
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 1621, "completion_tokens": 12, "total_tokens": 1633,
                   "prompt_tokens_details": {"cached_tokens": 1500}})
        );
        assert_eq!(
            translated.usage.unwrap(),
            TokenUsage {
                input_tokens: 1621,
                output_tokens: 12,
                cached_input_tokens: 1500
            }
        );
    }

    #[test]
    fn tool_use_response_becomes_tool_calls() {
        let translated = adapter()
            .chat_response(
                "claude-sonnet-4-5",
                &fixture("anthropic", "messages_tool_use.json"),
            )
            .unwrap();
        let body: Value = serde_json::from_slice(&translated.body).unwrap();
        let message = &body["choices"][0]["message"];
        assert_eq!(
            message["content"],
            "I'll check the current weather in San Francisco."
        );
        let call = &message["tool_calls"][0];
        assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        let arguments: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(
            arguments,
            json!({"location": "San Francisco, CA", "unit": "celsius"})
        );
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(body["usage"]["prompt_tokens"], 472);
        assert!(body["usage"].get("prompt_tokens_details").is_none());
    }

    #[test]
    fn output_tool_response_becomes_json_content() {
        let upstream = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
            "content": [{"type": "tool_use", "id": "toolu_x", "name": "tollgate_json_output__answer",
                         "input": {"answer": "42"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 5}
        });
        let translated = adapter()
            .chat_response("claude-haiku-4-5", upstream.to_string().as_bytes())
            .unwrap();
        let body: Value = serde_json::from_slice(&translated.body).unwrap();
        let choice = &body["choices"][0];
        let content: Value =
            serde_json::from_str(choice["message"]["content"].as_str().unwrap()).unwrap();
        assert_eq!(content, json!({"answer": "42"}));
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "stop");
    }

    #[test]
    fn stop_reasons_map_to_finish_reasons() {
        let cases = [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("pause_turn", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "stop"),
            ("refusal", "content_filter"),
        ];
        for (stop_reason, expected) in cases {
            let upstream = json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                "content": [], "stop_reason": stop_reason, "usage": {"input_tokens": 1, "output_tokens": 0}
            });
            let translated = adapter()
                .chat_response("m", upstream.to_string().as_bytes())
                .unwrap();
            let body: Value = serde_json::from_slice(&translated.body).unwrap();
            assert_eq!(
                body["choices"][0]["finish_reason"], expected,
                "{stop_reason}"
            );
            assert_eq!(body["choices"][0]["message"]["content"], Value::Null);
        }
        assert!(
            adapter()
                .chat_response("m", b"<html>bad gateway</html>")
                .is_err()
        );
        assert!(
            adapter()
                .chat_response("m", br#"{"type":"message"}"#)
                .is_err()
        );
    }

    #[test]
    fn stream_translates_the_same_whatever_the_splits() {
        let stream = fixture("anthropic", "messages_stream.sse");
        let mut whole = stream_translator(true);
        let whole_out = run_stream(whole.as_mut(), &stream, || usize::MAX).unwrap();
        let expected = events(&whole_out);
        for seed in 0..20 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut translator = stream_translator(true);
            let out = run_stream(translator.as_mut(), &stream, || rng.random_range(1..13)).unwrap();
            assert_eq!(events(&out), expected, "seed {seed}");
            assert_eq!(translator.output_text(), "Hello, wörld! é\nHow can I help?");
        }

        let id = "chatcmpl-msg_01RtMhCQkYvJRQ4dQ3Hn5zW8";
        let model = "claude-sonnet-4-5-20250929";
        let chunk = |delta: Value, finish: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        assert_eq!(
            expected,
            vec![
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(json!({"content": "Hello"}), Value::Null),
                chunk(json!({"content": ", wörld! é\n"}), Value::Null),
                chunk(json!({"content": "How can I help?"}), Value::Null),
                chunk(json!({}), json!("stop")),
                json!({"id": id, "object": "chat.completion.chunk", "model": model, "choices": [],
                       "usage": {"prompt_tokens": 1049, "completion_tokens": 15, "total_tokens": 1064,
                                 "prompt_tokens_details": {"cached_tokens": 1024}}}),
                json!("[DONE]"),
            ]
        );
        assert!(whole_out.ends_with("data: [DONE]\n\n"));
        assert_eq!(
            whole.usage().unwrap(),
            TokenUsage {
                input_tokens: 1049,
                output_tokens: 15,
                cached_input_tokens: 1024
            }
        );
    }

    #[test]
    fn usage_chunk_only_when_the_client_asked() {
        let stream = fixture("anthropic", "messages_stream.sse");
        let mut translator = stream_translator(false);
        let out = run_stream(translator.as_mut(), &stream, || 5).unwrap();
        let events = events(&out);
        assert!(events.iter().all(|e| e.get("usage").is_none()), "{out}");
        assert!(
            events
                .iter()
                .all(|e| e == "[DONE]" || !e["choices"].as_array().unwrap().is_empty())
        );
        assert_eq!(events.last().unwrap(), "[DONE]");
        // The usage is still read, for billing.
        assert_eq!(translator.usage().unwrap().output_tokens, 15);
    }

    #[test]
    fn tool_calls_stream_as_openai_tool_call_deltas() {
        let stream = fixture("anthropic", "messages_stream_tool_use.sse");
        let mut rng = rand::rngs::StdRng::seed_from_u64(99);
        let mut translator = stream_translator(false);
        let out = run_stream(translator.as_mut(), &stream, || rng.random_range(1..13)).unwrap();
        let events = events(&out);
        let deltas: Vec<&Value> = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["tool_calls"].get(0))
            .collect();
        assert_eq!(
            deltas,
            vec![
                &json!({"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}),
                &json!({"index": 0, "function": {"arguments": "{\"location\":"}}),
                &json!({"index": 0, "function": {"arguments": " \"San Francisco, CA\"}"}}),
                &json!({"index": 1, "id": "toolu_01Hq7zT1d6a7uWhkPZd8Ksx2", "type": "function",
                        "function": {"name": "get_time", "arguments": ""}}),
                &json!({"index": 1, "function": {"arguments": "{\"timezone\": \"America/Los_Angeles\"}"}}),
            ]
        );
        let finish: Vec<&Value> = events
            .iter()
            .map(|e| &e["choices"][0]["finish_reason"])
            .filter(|f| !f.is_null())
            .collect();
        assert_eq!(finish, vec!["tool_calls"]);
        assert_eq!(translator.output_text(), "Let me check the weather.");
        let usage = translator.usage().unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (472, 89));
    }

    #[test]
    fn output_tool_streams_as_content_and_stops() {
        let stream = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_j\",\"model\":\"claude-haiku-4-5\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\n",
            "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_j\",\"name\":\"tollgate_json_output__answer\",\"input\":{}}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"answer\\\": \"}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"42\\\"}\"}}\n\n",
            "event: content_block_stop\n",
            "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":7}}\n\n",
            "event: message_stop\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        let mut translator = stream_translator(false);
        let out = run_stream(translator.as_mut(), stream.as_bytes(), || 3).unwrap();
        let events = events(&out);
        assert!(
            events
                .iter()
                .all(|e| e["choices"][0]["delta"].get("tool_calls").is_none())
        );
        let content: Value = serde_json::from_str(translator.output_text()).unwrap();
        assert_eq!(content, json!({"answer": "42"}));
        assert_eq!(
            events[events.len() - 2]["choices"][0]["finish_reason"],
            "stop"
        );
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let stream = fixture("anthropic", "messages_stream.sse");
        let text = String::from_utf8(stream).unwrap();
        let cut = text.find("event: message_delta").unwrap();
        let mut translator = stream_translator(true);
        let err = run_stream(translator.as_mut(), &text.as_bytes()[..cut], || 7).unwrap_err();
        assert_eq!(err, "stream ended before message_stop");
        // Input tokens were read before the stream broke off.
        assert_eq!(translator.usage().unwrap().input_tokens, 1049);

        let mut translator = stream_translator(false);
        assert!(run_stream(translator.as_mut(), b"", || 1).is_err());
        assert!(translator.usage().is_none());
    }

    #[test]
    fn error_event_is_an_error() {
        let stream = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_e\",\"model\":\"m\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
            "event: ping\n",
            "data: {\"type\": \"ping\"}\n\n",
            "event: error\n",
            "data: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
        );
        let mut translator = stream_translator(false);
        let err = run_stream(translator.as_mut(), stream.as_bytes(), || 11).unwrap_err();
        assert_eq!(err, "Overloaded");
    }

    #[test]
    fn error_bodies_map_to_openai_types() {
        let details = adapter().error_details(529, &fixture("anthropic", "error_overloaded.json"));
        assert_eq!(details.message, "Overloaded");
        assert_eq!(details.kind.as_deref(), Some("server_error"));
        assert_eq!(details.code.as_deref(), Some("overloaded_error"));

        let details =
            adapter().error_details(400, &fixture("anthropic", "error_invalid_request.json"));
        assert!(details.message.contains("tool_use_id"), "{details:?}");
        assert_eq!(details.kind.as_deref(), Some("invalid_request_error"));
        assert_eq!(details.code.as_deref(), Some("invalid_request_error"));

        let cases = [
            ("authentication_error", 401, "authentication_error"),
            ("permission_error", 403, "permission_error"),
            ("not_found_error", 404, "not_found_error"),
            ("request_too_large", 413, "invalid_request_error"),
            ("rate_limit_error", 429, "rate_limit_error"),
            ("api_error", 500, "server_error"),
            ("overloaded_error", 529, "server_error"),
        ];
        for (kind, status, expected) in cases {
            let body = json!({"type": "error", "error": {"type": kind, "message": "m"}});
            let details = adapter().error_details(status, body.to_string().as_bytes());
            assert_eq!(details.kind.as_deref(), Some(expected), "{kind}");
            assert_eq!(details.code.as_deref(), Some(kind));
        }

        let details = adapter().error_details(502, b"<html>Bad Gateway</html>");
        assert_eq!(details.message, "<html>Bad Gateway</html>");
        assert_eq!(details.kind, None);
        assert_eq!(
            adapter().error_details(503, b"").message,
            "upstream returned status 503"
        );
    }

    #[test]
    fn embeddings_are_refused() {
        let body = InboundBody::parse(
            Endpoint::Embeddings,
            Bytes::from_static(br#"{"model":"e","input":"hi"}"#),
        )
        .unwrap();
        let err = adapter().embeddings_request("e", &body).unwrap_err();
        assert!(matches!(err, GatewayError::Unsupported(_)), "{err:?}");
        let request = InboundBody::parse(
            Endpoint::Embeddings,
            Bytes::from_static(br#"{"model":"e","input":"x"}"#),
        )
        .unwrap();
        assert!(adapter().embeddings_response("e", &request, b"{}").is_err());
    }
}
