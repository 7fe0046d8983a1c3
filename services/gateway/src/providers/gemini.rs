//! Google Gemini, the Generative Language API (`v1beta`).
//!
//! Chat completions become `generateContent` (or `streamGenerateContent?alt=sse`) requests:
//! system messages move to `systemInstruction`, assistant turns are the `model` role, tool calls
//! and tool results become `functionCall` / `functionResponse` parts, and sampling options go into
//! `generationConfig`. Answers are rebuilt as OpenAI completions and chunks. Embeddings go through
//! `batchEmbedContents`. The API key travels in the `x-goog-api-key` header, never in the URL.
//! <https://ai.google.dev/api/generate-content>, <https://ai.google.dev/api/embeddings>

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tollgate_common::TokenUsage;
use tollgate_common::config::{ProviderConfig, ProviderKind};

use super::sse::{SseDecoder, SseEvent};
use super::{
    ProviderAdapter, StreamTranslator, Translated, UpstreamErrorDetails, UpstreamRequest,
    base_headers, plain_error_text, secret_header,
};
use crate::error::GatewayError;
use crate::openai::InboundBody;
use crate::openai::request::{
    ChatMessage, ChatRequest, ContentPart, FunctionCall, MessageContent, ResponseFormat, Role,
    Stop, ToolCall, ToolChoice,
};
use crate::openai::response::{
    AssistantMessage, ChatCompletion, ChatCompletionChunk, Choice, ChunkChoice, Delta, Embedding,
    EmbeddingsResponse, EmbeddingsUsage, FunctionCallDelta, SSE_DONE, ToolCallDelta, Usage,
    unix_now,
};

pub struct Gemini {
    api_base: String,
    headers: HeaderMap,
}

impl Gemini {
    pub fn new(config: &ProviderConfig) -> Result<Self, String> {
        let mut headers = base_headers(config)?;
        if let Some(key) = &config.api_key {
            headers.insert(
                HeaderName::from_static("x-goog-api-key"),
                secret_header(key.expose())?,
            );
        }
        Ok(Gemini {
            api_base: config.api_base.clone(),
            headers,
        })
    }

    /// `{api_base}/v1beta/models/{model}:{method}`, the model percent-encoded.
    fn url(&self, model: &str, method: &str) -> String {
        format!(
            "{}/v1beta/models/{}:{method}",
            self.api_base,
            encode_path_segment(bare_model(model))
        )
    }
}

/// The model id without the `models/` prefix Gemini's resource names carry.
fn bare_model(model: &str) -> &str {
    model.strip_prefix("models/").unwrap_or(model)
}

/// Percent-encodes everything but unreserved characters, so a model id stays one path segment.
fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl ProviderAdapter for Gemini {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Gemini
    }

    fn chat_request(&self, model: &str, body: &InboundBody) -> Result<UpstreamRequest, GatewayError> {
        let chat = body.chat()?;
        let request = build_generate_request(chat, body.max_output_tokens)?;
        let bytes = serde_json::to_vec(&request)
            .map_err(|e| GatewayError::Internal(format!("cannot encode the Gemini request: {e}")))?;
        let url = if body.stream {
            self.url(model, "streamGenerateContent?alt=sse")
        } else {
            self.url(model, "generateContent")
        };
        Ok(UpstreamRequest {
            url,
            headers: self.headers.clone(),
            body: Bytes::from(bytes),
        })
    }

    fn chat_response(&self, model: &str, body: &[u8]) -> Result<Translated, String> {
        let response: GenerateContentResponse = serde_json::from_slice(body)
            .map_err(|e| format!("Gemini answered with a body we cannot read: {e}"))?;
        let completion = completion_from(model, response)?;
        let usage = completion.usage.map(|u| u.tokens());
        let bytes = serde_json::to_vec(&completion)
            .map_err(|e| format!("cannot encode the translated completion: {e}"))?;
        Ok(Translated {
            body: Bytes::from(bytes),
            usage,
        })
    }

    fn chat_stream(&self, model: &str, body: &InboundBody) -> Box<dyn StreamTranslator> {
        Box::new(GeminiStream::new(model, body.client_wants_stream_usage))
    }

    fn embeddings_request(
        &self,
        model: &str,
        body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError> {
        let request = body.embeddings()?;
        let texts = request.input.texts().ok_or_else(|| {
            GatewayError::Unsupported("Gemini embeddings take text input, not token arrays".into())
        })?;
        let model_name = format!("models/{}", bare_model(model));
        let wire = BatchEmbedRequest {
            requests: texts
                .into_iter()
                .map(|text| EmbedRequest {
                    model: &model_name,
                    content: SystemContent {
                        parts: vec![TextPart {
                            text: Cow::Borrowed(text),
                        }],
                    },
                    output_dimensionality: request.dimensions,
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&wire).map_err(|e| {
            GatewayError::Internal(format!("cannot encode the Gemini embeddings request: {e}"))
        })?;
        Ok(UpstreamRequest {
            url: self.url(model, "batchEmbedContents"),
            headers: self.headers.clone(),
            body: Bytes::from(bytes),
        })
    }

    fn embeddings_response(&self, model: &str, body: &[u8]) -> Result<Translated, String> {
        let response: BatchEmbedResponse = serde_json::from_slice(body)
            .map_err(|e| format!("Gemini answered embeddings with a body we cannot read: {e}"))?;
        let data = response
            .embeddings
            .into_iter()
            .zip(0u32..)
            .map(|(embedding, index)| Embedding {
                object: "embedding".into(),
                index,
                embedding: embedding.values,
            })
            .collect();
        let out = EmbeddingsResponse {
            object: "list".into(),
            data,
            model: model.to_owned(),
            usage: EmbeddingsUsage::default(),
        };
        let bytes =
            serde_json::to_vec(&out).map_err(|e| format!("cannot encode the embeddings: {e}"))?;
        // Gemini reports no token counts for embeddings; the gateway counts them itself.
        Ok(Translated {
            body: Bytes::from(bytes),
            usage: None,
        })
    }

    fn error_details(&self, status: u16, body: &[u8]) -> UpstreamErrorDetails {
        gemini_error_details(status, body)
    }
}

// ---------------------------------------------------------------------------------------------
// Request: OpenAI chat -> GenerateContentRequest
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentRequest<'a> {
    contents: Vec<WireContent<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemContent<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<WireTool<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation_config: Option<GenerationConfig<'a>>,
}

/// A role-less content of text parts (`systemInstruction`, embedding inputs).
#[derive(Serialize)]
struct SystemContent<'a> {
    parts: Vec<TextPart<'a>>,
}

#[derive(Serialize)]
struct TextPart<'a> {
    text: Cow<'a, str>,
}

#[derive(Serialize)]
struct WireContent<'a> {
    role: &'static str,
    parts: Vec<WirePart<'a>>,
}

/// One `Part`: exactly one of its data fields, so an externally tagged enum.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum WirePart<'a> {
    Text(Cow<'a, str>),
    InlineData(Blob<'a>),
    FileData(FileData<'a>),
    FunctionCall(WireFunctionCall<'a>),
    FunctionResponse(WireFunctionResponse<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Blob<'a> {
    mime_type: Cow<'a, str>,
    data: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileData<'a> {
    mime_type: &'static str,
    file_uri: &'a str,
}

#[derive(Serialize)]
struct WireFunctionCall<'a> {
    name: &'a str,
    args: Cow<'a, RawValue>,
}

#[derive(Serialize)]
struct WireFunctionResponse<'a> {
    name: &'a str,
    response: ToolResult<'a>,
}

/// A tool result: the client's JSON object as is, or its text wrapped as `{"content": ...}`.
#[derive(Serialize)]
#[serde(untagged)]
enum ToolResult<'a> {
    Object(Box<RawValue>),
    Text { content: Cow<'a, str> },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireTool<'a> {
    function_declarations: Vec<FunctionDeclaration<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionDeclaration<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters_json_schema: Option<&'a RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    function_calling_config: FunctionCallingConfig<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfig<'a> {
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_function_names: Option<Vec<&'a str>>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidate_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_json_schema: Option<&'a RawValue>,
}

impl GenerationConfig<'_> {
    fn is_empty(&self) -> bool {
        self.max_output_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_none()
            && self.candidate_count.is_none()
            && self.seed.is_none()
            && self.presence_penalty.is_none()
            && self.frequency_penalty.is_none()
            && self.response_mime_type.is_none()
            && self.response_json_schema.is_none()
    }
}

fn build_generate_request(
    chat: &ChatRequest,
    max_output_tokens: Option<u32>,
) -> Result<GenerateContentRequest<'_>, GatewayError> {
    let mut system_texts: Vec<Cow<'_, str>> = Vec::new();
    let mut contents: Vec<WireContent<'_>> = Vec::new();
    // Function names of the tool calls seen so far, by id, to name the tool results.
    let mut call_names: HashMap<&str, &str> = HashMap::new();

    for (i, message) in chat.messages.iter().enumerate() {
        match message.role {
            Role::System | Role::Developer => {
                if let Some(content) = &message.content {
                    system_texts.push(content_text(content));
                }
            }
            Role::User => {
                let parts = user_parts(i, message)?;
                push_content(&mut contents, "user", parts);
            }
            Role::Assistant => {
                let mut parts = Vec::new();
                if let Some(content) = &message.content {
                    let text = content_text_with_refusals(content);
                    if !text.is_empty() {
                        parts.push(WirePart::Text(text));
                    }
                }
                for (j, call) in message.tool_calls.iter().flatten().enumerate() {
                    call_names.insert(call.id.as_str(), call.function.name.as_str());
                    parts.push(WirePart::FunctionCall(WireFunctionCall {
                        name: &call.function.name,
                        args: function_args(i, j, &call.function.arguments)?,
                    }));
                }
                push_content(&mut contents, "model", parts);
            }
            Role::Tool => {
                let id = message.tool_call_id.as_deref().ok_or_else(|| {
                    GatewayError::invalid_field(
                        format!("messages[{i}].tool_call_id"),
                        "A `tool` message needs the `tool_call_id` of the call it answers.",
                    )
                })?;
                let name = call_names.get(id).copied().ok_or_else(|| {
                    GatewayError::invalid_field(
                        format!("messages[{i}].tool_call_id"),
                        format!(
                            "No earlier assistant message has a tool call with id `{id}`; \
                             Gemini needs the function name of every tool result."
                        ),
                    )
                })?;
                let part = function_response(name, message.content.as_ref());
                push_content(&mut contents, "user", vec![part]);
            }
            Role::Function => {
                let name = message.name.as_deref().ok_or_else(|| {
                    GatewayError::invalid_field(
                        format!("messages[{i}].name"),
                        "A `function` message needs the `name` of the function it answers.",
                    )
                })?;
                let part = function_response(name, message.content.as_ref());
                push_content(&mut contents, "user", vec![part]);
            }
        }
    }

    let system_instruction = match system_texts.len() {
        0 => None,
        1 => system_texts.pop(),
        _ => Some(Cow::Owned(system_texts.join("\n\n"))),
    }
    .map(|text| SystemContent {
        parts: vec![TextPart { text }],
    });
    let (tools, tool_config) = tools_and_config(chat)?;
    let generation_config = generation_config(chat, max_output_tokens);
    Ok(GenerateContentRequest {
        contents,
        system_instruction,
        tools,
        tool_config,
        generation_config,
    })
}

/// Appends a turn, merged into the previous one when it has the same role: Gemini wants user
/// and model turns to alternate, and all results of parallel calls in one turn.
fn push_content<'a>(contents: &mut Vec<WireContent<'a>>, role: &'static str, parts: Vec<WirePart<'a>>) {
    if parts.is_empty() {
        return;
    }
    match contents.last_mut() {
        Some(last) if last.role == role => last.parts.extend(parts),
        _ => contents.push(WireContent { role, parts }),
    }
}

/// The text of a message, borrowed when it is one piece.
fn content_text(content: &MessageContent) -> Cow<'_, str> {
    match content {
        MessageContent::Text(text) => Cow::Borrowed(text),
        MessageContent::Parts(parts) => {
            let mut texts = parts.iter().filter_map(|part| match part {
                ContentPart::Text { text } => Some(text.as_str()),
                _ => None,
            });
            match (texts.next(), texts.next()) {
                (None, _) => Cow::Borrowed(""),
                (Some(only), None) => Cow::Borrowed(only),
                (Some(first), Some(second)) => {
                    let mut joined = String::from(first);
                    joined.push_str(second);
                    texts.for_each(|t| joined.push_str(t));
                    Cow::Owned(joined)
                }
            }
        }
    }
}

/// An assistant message's text, refusals echoed back in history included.
fn content_text_with_refusals(content: &MessageContent) -> Cow<'_, str> {
    match content {
        MessageContent::Parts(parts)
            if parts.iter().any(|p| matches!(p, ContentPart::Refusal { .. })) =>
        {
            let mut joined = String::new();
            for part in parts {
                match part {
                    ContentPart::Text { text } => joined.push_str(text),
                    ContentPart::Refusal { refusal } => joined.push_str(refusal),
                    _ => {}
                }
            }
            Cow::Owned(joined)
        }
        _ => content_text(content),
    }
}

fn user_parts(i: usize, message: &ChatMessage) -> Result<Vec<WirePart<'_>>, GatewayError> {
    let parts = match &message.content {
        None => return Ok(Vec::new()),
        Some(MessageContent::Text(text)) => {
            return Ok(if text.is_empty() {
                Vec::new()
            } else {
                vec![WirePart::Text(Cow::Borrowed(text))]
            });
        }
        Some(MessageContent::Parts(parts)) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        match part {
            ContentPart::Text { text } | ContentPart::Refusal { refusal: text } => {
                if !text.is_empty() {
                    out.push(WirePart::Text(Cow::Borrowed(text)));
                }
            }
            ContentPart::ImageUrl { image_url } => {
                let url = image_url.url.as_str();
                let param = || format!("messages[{i}].content[{j}].image_url.url");
                if url.starts_with("data:") {
                    let (mime, data) = parse_data_url(url).ok_or_else(|| {
                        GatewayError::invalid_field(
                            param(),
                            "An image data URL must look like `data:<mime>;base64,<data>`.",
                        )
                    })?;
                    out.push(WirePart::InlineData(Blob {
                        mime_type: Cow::Borrowed(if mime.is_empty() { "image/jpeg" } else { mime }),
                        data,
                    }));
                } else if is_http_url(url) {
                    out.push(WirePart::FileData(FileData {
                        mime_type: image_mime_from_url(url),
                        file_uri: url,
                    }));
                } else {
                    return Err(GatewayError::invalid_field(
                        param(),
                        "An image URL must be an http(s) URL or a base64 data URL.",
                    ));
                }
            }
            ContentPart::InputAudio { input_audio } => {
                out.push(WirePart::InlineData(Blob {
                    mime_type: Cow::Owned(format!("audio/{}", input_audio.format)),
                    data: &input_audio.data,
                }));
            }
            ContentPart::File { file } => {
                let param = format!("messages[{i}].content[{j}].file");
                match (&file.file_data, &file.file_id) {
                    (Some(file_data), _) => {
                        let (mime, data) = parse_data_url(file_data)
                            .filter(|(mime, _)| !mime.is_empty())
                            .ok_or_else(|| {
                                GatewayError::invalid_field(
                                    format!("{param}.file_data"),
                                    "`file_data` must be a data URL: `data:<mime>;base64,<data>`.",
                                )
                            })?;
                        out.push(WirePart::InlineData(Blob {
                            mime_type: Cow::Borrowed(mime),
                            data,
                        }));
                    }
                    (None, Some(_)) => {
                        return Err(GatewayError::Unsupported(
                            "Gemini cannot read OpenAI file ids; send the file inline as `file_data`."
                                .into(),
                        ));
                    }
                    (None, None) => {
                        return Err(GatewayError::invalid_field(
                            param,
                            "A file part needs `file_data`.",
                        ));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// `data:<mime>[;params];base64,<data>` into its MIME type (maybe empty) and base64 data.
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mut params = meta.split(';');
    let mime = params.next().unwrap_or_default().trim();
    if !params.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
        return None;
    }
    Some((mime, data))
}

fn is_http_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// The image type a URL's file extension names; JPEG when it names none we know.
fn image_mime_from_url(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let file = path.rsplit('/').next().unwrap_or(path);
    let extension = file.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
    match extension.as_deref() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        _ => "image/jpeg",
    }
}

/// A tool call's `arguments` text as the JSON object Gemini's `args` must be.
fn function_args(i: usize, j: usize, arguments: &str) -> Result<Cow<'_, RawValue>, GatewayError> {
    if arguments.trim().is_empty() {
        return RawValue::from_string("{}".to_owned())
            .map(Cow::Owned)
            .map_err(|e| GatewayError::Internal(e.to_string()));
    }
    let param = || format!("messages[{i}].tool_calls[{j}].function.arguments");
    let raw: &RawValue = serde_json::from_str(arguments).map_err(|e| {
        GatewayError::invalid_field(param(), format!("The arguments are not valid JSON: {e}."))
    })?;
    if !raw.get().starts_with('{') {
        return Err(GatewayError::invalid_field(
            param(),
            "The arguments must be a JSON object.",
        ));
    }
    Ok(Cow::Borrowed(raw))
}

/// A tool result part: a JSON object result goes as is, anything else as `{"content": text}`.
fn function_response<'a>(name: &'a str, content: Option<&'a MessageContent>) -> WirePart<'a> {
    let text = content.map_or(Cow::Borrowed(""), content_text);
    let object = serde_json::from_str::<&RawValue>(&text)
        .ok()
        .filter(|raw| raw.get().starts_with('{'))
        .map(ToOwned::to_owned);
    let response = match object {
        Some(raw) => ToolResult::Object(raw),
        None => ToolResult::Text { content: text },
    };
    WirePart::FunctionResponse(WireFunctionResponse { name, response })
}

type ToolsAndConfig<'a> = (Option<Vec<WireTool<'a>>>, Option<ToolConfig<'a>>);

fn tools_and_config(chat: &ChatRequest) -> Result<ToolsAndConfig<'_>, GatewayError> {
    let Some(tools) = chat.tools.as_ref().filter(|t| !t.is_empty()) else {
        return Ok((None, None));
    };
    let mut declarations = Vec::with_capacity(tools.len());
    for tool in tools {
        if tool.kind != "function" {
            return Err(GatewayError::Unsupported(format!(
                "Gemini supports function tools only, not `{}` tools.",
                tool.kind
            )));
        }
        declarations.push(FunctionDeclaration {
            name: &tool.function.name,
            description: tool.function.description.as_deref(),
            parameters_json_schema: tool.function.parameters.as_deref(),
        });
    }
    let tool_config = match &chat.tool_choice {
        None => None,
        Some(ToolChoice::Mode(mode)) => {
            let mode = match mode.as_str() {
                "auto" => "AUTO",
                "none" => "NONE",
                "required" => "ANY",
                other => {
                    return Err(GatewayError::invalid_field(
                        "tool_choice",
                        format!(
                            "Invalid value for 'tool_choice': `{other}`; expected `none`, `auto`, \
                             `required` or a named function."
                        ),
                    ));
                }
            };
            Some(ToolConfig {
                function_calling_config: FunctionCallingConfig {
                    mode,
                    allowed_function_names: None,
                },
            })
        }
        Some(ToolChoice::Named(named)) => Some(ToolConfig {
            function_calling_config: FunctionCallingConfig {
                mode: "ANY",
                allowed_function_names: Some(vec![named.function.name.as_str()]),
            },
        }),
    };
    Ok((
        Some(vec![WireTool {
            function_declarations: declarations,
        }]),
        tool_config,
    ))
}

fn generation_config(chat: &ChatRequest, max_output_tokens: Option<u32>) -> Option<GenerationConfig<'_>> {
    let mut config = GenerationConfig {
        max_output_tokens: max_output_tokens.or(chat.max_output_tokens()),
        temperature: chat.temperature,
        top_p: chat.top_p,
        stop_sequences: chat.stop.as_ref().and_then(|stop| {
            let stops: Vec<&str> = match stop {
                Stop::One(s) => vec![s.as_str()],
                Stop::Many(v) => v.iter().map(String::as_str).collect(),
            };
            (!stops.is_empty()).then_some(stops)
        }),
        candidate_count: chat.n,
        seed: chat.seed,
        presence_penalty: chat.presence_penalty,
        frequency_penalty: chat.frequency_penalty,
        ..GenerationConfig::default()
    };
    match &chat.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => config.response_mime_type = Some("application/json"),
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            config.response_mime_type = Some("application/json");
            config.response_json_schema = json_schema.schema.as_deref();
        }
    }
    (!config.is_empty()).then_some(config)
}

// ---------------------------------------------------------------------------------------------
// Response: GenerateContentResponse -> chat.completion
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    response_id: Option<String>,
    /// Set instead of the rest when the API reports an error inside a stream.
    #[serde(default)]
    error: Option<GoogleError>,
}

impl GenerateContentResponse {
    /// Why the prompt was refused, when it was and no candidate came back.
    fn blocked(&self) -> bool {
        self.candidates.is_empty()
            && self
                .prompt_feedback
                .as_ref()
                .is_some_and(|f| f.block_reason.is_some())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<CandidateContent>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    index: Option<u32>,
}

#[derive(Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<ResponsePart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponsePart {
    #[serde(default)]
    text: Option<String>,
    /// A thought summary, not part of the answer.
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default)]
    function_call: Option<ResponseFunctionCall>,
}

#[derive(Deserialize)]
struct ResponseFunctionCall {
    name: String,
    #[serde(default)]
    args: Option<Box<RawValue>>,
}

impl ResponseFunctionCall {
    /// The arguments as OpenAI's compact JSON text.
    fn arguments(&self) -> String {
        self.args
            .as_deref()
            .map_or_else(|| "{}".to_owned(), |raw| compact_json(raw.get()))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    cached_content_token_count: u64,
}

impl UsageMetadata {
    fn usage(self) -> Usage {
        Usage::new(
            self.prompt_token_count,
            self.candidates_token_count + self.thoughts_token_count,
            self.cached_content_token_count,
        )
    }
}

/// The text and the function calls of one candidate, thoughts left out.
struct CandidateOutput {
    text: Option<String>,
    calls: Vec<ResponseFunctionCall>,
}

fn candidate_output(candidate: &mut Candidate) -> CandidateOutput {
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    let parts = candidate.content.take().map(|c| c.parts).unwrap_or_default();
    for part in parts {
        if part.thought == Some(true) {
            continue;
        }
        if let Some(t) = part.text {
            match &mut text {
                Some(all) => all.push_str(&t),
                None => text = Some(t),
            }
        }
        if let Some(call) = part.function_call {
            calls.push(call);
        }
    }
    CandidateOutput { text, calls }
}

/// OpenAI's `finish_reason` for Gemini's.
fn finish_reason(reason: Option<&str>, has_tool_calls: bool) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some(
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
        ) => "content_filter",
        _ if has_tool_calls => "tool_calls",
        _ => "stop",
    }
}

fn random_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

fn completion_from(model: &str, mut response: GenerateContentResponse) -> Result<ChatCompletion, String> {
    if let Some(error) = &response.error {
        return Err(format!(
            "Gemini reported an error: {}",
            error.message.as_deref().unwrap_or("no message")
        ));
    }
    let mut choices = Vec::with_capacity(response.candidates.len().max(1));
    if response.blocked() {
        choices.push(Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant".into(),
                content: None,
                tool_calls: None,
                refusal: None,
            },
            finish_reason: Some("content_filter".into()),
            logprobs: None,
        });
    } else if response.candidates.is_empty() {
        return Err("Gemini answered with no candidates and no block reason".into());
    }
    let mut next_call = 0u32;
    for (candidate, position) in response.candidates.iter_mut().zip(0u32..) {
        let output = candidate_output(candidate);
        let tool_calls: Vec<ToolCall> = output
            .calls
            .iter()
            .map(|call| {
                let id = format!("call_{next_call}");
                next_call += 1;
                ToolCall {
                    id,
                    kind: "function".into(),
                    function: FunctionCall {
                        name: call.name.clone(),
                        arguments: call.arguments(),
                    },
                }
            })
            .collect();
        choices.push(Choice {
            index: candidate.index.unwrap_or(position),
            message: AssistantMessage {
                role: "assistant".into(),
                content: output.text,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                refusal: None,
            },
            finish_reason: Some(
                finish_reason(candidate.finish_reason.as_deref(), !output.calls.is_empty()).into(),
            ),
            logprobs: None,
        });
    }
    Ok(ChatCompletion {
        id: format!(
            "chatcmpl-{}",
            response.response_id.take().unwrap_or_else(random_id)
        ),
        object: "chat.completion".into(),
        created: unix_now(),
        model: response.model_version.take().unwrap_or_else(|| model.to_owned()),
        choices,
        usage: response.usage_metadata.map(UsageMetadata::usage),
    })
}

/// Drops the whitespace between JSON tokens (Gemini pretty-prints whole responses).
fn compact_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\n' | '\r' | '\t') {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Streaming: alt=sse events, each a GenerateContentResponse -> chat.completion.chunk events
// ---------------------------------------------------------------------------------------------

/// What every chunk of one stream repeats.
struct ChunkHeader {
    id: String,
    created: u64,
    model: String,
}

impl ChunkHeader {
    fn write(&self, out: &mut BytesMut, choices: Vec<ChunkChoice>, usage: Option<Usage>) {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
        }
        .write_sse(out);
    }

    fn write_delta(&self, out: &mut BytesMut, index: u32, delta: Delta, finish: Option<&str>) {
        self.write(
            out,
            vec![ChunkChoice {
                index,
                delta,
                finish_reason: finish.map(str::to_owned),
            }],
            None,
        );
    }
}

struct GeminiStream {
    decoder: SseDecoder,
    requested_model: String,
    include_usage: bool,
    /// Fixed by the first event.
    header: Option<ChunkHeader>,
    /// Choice indexes whose opening `role` delta went out.
    started: Vec<u32>,
    /// Tool calls sent so far, per choice index.
    calls_per_choice: HashMap<u32, u32>,
    /// Tool calls sent so far in the whole stream, for unique ids.
    calls_total: u32,
    finished: bool,
    usage: Option<Usage>,
    output: String,
}

impl GeminiStream {
    fn new(model: &str, include_usage: bool) -> Self {
        GeminiStream {
            decoder: SseDecoder::new(),
            requested_model: model.to_owned(),
            include_usage,
            header: None,
            started: Vec::new(),
            calls_per_choice: HashMap::new(),
            calls_total: 0,
            finished: false,
            usage: None,
            output: String::new(),
        }
    }

    fn handle(&mut self, event: SseEvent, out: &mut BytesMut) -> Result<(), String> {
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let mut response: GenerateContentResponse = serde_json::from_str(data)
            .map_err(|e| format!("Gemini sent a stream event we cannot read: {e}"))?;
        if let Some(error) = &response.error {
            return Err(format!(
                "Gemini reported an error in the stream: {}",
                error.message.as_deref().unwrap_or("no message")
            ));
        }
        let requested_model = &self.requested_model;
        let header = self.header.get_or_insert_with(|| ChunkHeader {
            id: format!(
                "chatcmpl-{}",
                response.response_id.take().unwrap_or_else(random_id)
            ),
            created: unix_now(),
            model: response
                .model_version
                .take()
                .unwrap_or_else(|| requested_model.clone()),
        });
        if let Some(usage) = response.usage_metadata {
            self.usage = Some(usage.usage());
        }
        if response.blocked() {
            start_choice(header, &mut self.started, 0, out);
            header.write_delta(out, 0, Delta::default(), Some("content_filter"));
            self.finished = true;
            return Ok(());
        }
        for (candidate, position) in response.candidates.iter_mut().zip(0u32..) {
            let index = candidate.index.unwrap_or(position);
            let output = candidate_output(candidate);
            let has_output = output.text.as_deref().is_some_and(|t| !t.is_empty())
                || !output.calls.is_empty();
            if has_output || candidate.finish_reason.is_some() {
                start_choice(header, &mut self.started, index, out);
            }
            if let Some(text) = output.text.filter(|t| !t.is_empty()) {
                self.output.push_str(&text);
                let delta = Delta {
                    content: Some(text),
                    ..Delta::default()
                };
                header.write_delta(out, index, delta, None);
            }
            if !output.calls.is_empty() {
                let sent = self.calls_per_choice.entry(index).or_insert(0);
                let mut deltas = Vec::with_capacity(output.calls.len());
                for call in &output.calls {
                    deltas.push(ToolCallDelta {
                        index: *sent,
                        id: Some(format!("call_{}", self.calls_total)),
                        kind: Some("function".into()),
                        function: FunctionCallDelta {
                            name: Some(call.name.clone()),
                            arguments: Some(call.arguments()),
                        },
                    });
                    *sent += 1;
                    self.calls_total += 1;
                }
                let delta = Delta {
                    tool_calls: Some(deltas),
                    ..Delta::default()
                };
                header.write_delta(out, index, delta, None);
            }
            if let Some(reason) = candidate.finish_reason.as_deref() {
                let has_calls = self.calls_per_choice.get(&index).is_some_and(|n| *n > 0);
                let reason = finish_reason(Some(reason), has_calls);
                header.write_delta(out, index, Delta::default(), Some(reason));
                self.finished = true;
            }
        }
        Ok(())
    }
}

/// Sends the opening `{"role":"assistant","content":""}` delta of a choice, once.
fn start_choice(header: &ChunkHeader, started: &mut Vec<u32>, index: u32, out: &mut BytesMut) {
    if started.contains(&index) {
        return;
    }
    started.push(index);
    let delta = Delta {
        role: Some("assistant".into()),
        content: Some(String::new()),
        ..Delta::default()
    };
    header.write_delta(out, index, delta, None);
}

impl StreamTranslator for GeminiStream {
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
        if !self.finished {
            return Err("stream ended before a finish reason".into());
        }
        if self.include_usage
            && let (Some(header), Some(usage)) = (&self.header, self.usage)
        {
            header.write(out, Vec::new(), Some(usage));
        }
        out.extend_from_slice(SSE_DONE);
        Ok(())
    }

    fn usage(&self) -> Option<TokenUsage> {
        self.usage.map(|u| u.tokens())
    }

    fn output_text(&self) -> &str {
        &self.output
    }
}

// ---------------------------------------------------------------------------------------------
// Embeddings and errors
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct BatchEmbedRequest<'a> {
    requests: Vec<EmbedRequest<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EmbedRequest<'a> {
    model: &'a str,
    content: SystemContent<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimensionality: Option<u32>,
}

#[derive(Deserialize)]
struct BatchEmbedResponse {
    embeddings: Vec<ContentEmbedding>,
}

#[derive(Deserialize)]
struct ContentEmbedding {
    #[serde(default)]
    values: Vec<f32>,
}

/// Google's error object: `{"error":{"code":400,"message":"...","status":"INVALID_ARGUMENT"}}`.
#[derive(Deserialize)]
struct GoogleError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
struct GoogleErrorEnvelope {
    error: GoogleError,
}

/// Some Google endpoints wrap the error in an array.
#[derive(Deserialize)]
#[serde(untagged)]
enum GoogleErrorBody {
    One(GoogleErrorEnvelope),
    Many(Vec<GoogleErrorEnvelope>),
}

fn gemini_error_details(status: u16, body: &[u8]) -> UpstreamErrorDetails {
    let error = match serde_json::from_slice::<GoogleErrorBody>(body) {
        Ok(GoogleErrorBody::One(envelope)) => Some(envelope.error),
        Ok(GoogleErrorBody::Many(list)) => list.into_iter().next().map(|e| e.error),
        Err(_) => None,
    };
    let Some(error) = error else {
        return UpstreamErrorDetails {
            message: plain_error_text(status, body),
            ..UpstreamErrorDetails::default()
        };
    };
    let kind = match error.status.as_deref() {
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE") => "invalid_request_error",
        Some("UNAUTHENTICATED") => "authentication_error",
        Some("PERMISSION_DENIED") => "permission_error",
        Some("NOT_FOUND") => "not_found_error",
        Some("RESOURCE_EXHAUSTED") => "rate_limit_error",
        Some(_) => "server_error",
        None => match status {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            _ => "server_error",
        },
    };
    UpstreamErrorDetails {
        message: error
            .message
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| format!("upstream returned status {status}")),
        kind: Some(kind.to_owned()),
        param: None,
        code: error.status,
    }
}
