//! An OpenAI chat completion as a Gemini `generateContent` request, and OpenAI embeddings as
//! `batchEmbedContents`.
//!
//! System messages move to `systemInstruction`, assistant turns are the `model` role, tool calls
//! and tool results become `functionCall` / `functionResponse` parts, and sampling options go into
//! `generationConfig`.

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;

use super::bare_model;
use super::response::SIGNATURE_MARKER;
use crate::error::GatewayError;
use crate::openai::InboundBody;
use crate::openai::request::{
    ChatMessage, ChatRequest, ContentPart, MessageContent, ResponseFormat, Role, Stop, ToolChoice,
};
use crate::providers::{is_http_url, parse_data_url};

pub(crate) fn translate_request(body: &InboundBody) -> Result<Bytes, GatewayError> {
    let request = build_generate_request(body.chat()?, body.max_output_tokens)?;
    let bytes = serde_json::to_vec(&request)
        .map_err(|e| GatewayError::Internal(format!("cannot encode the Gemini request: {e}")))?;
    Ok(Bytes::from(bytes))
}

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

/// One `Part`: exactly one of its data fields, so an externally tagged enum; a function call part
/// also carries its thought signature, a field of the part beside `functionCall`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum WirePart<'a> {
    Text(Cow<'a, str>),
    InlineData(Blob<'a>),
    FileData(FileData<'a>),
    FunctionResponse(WireFunctionResponse<'a>),
    #[serde(untagged)]
    FunctionCall(FunctionCallPart<'a>),
}

/// `{"functionCall": {...}, "thoughtSignature": "..."}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallPart<'a> {
    function_call: WireFunctionCall<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought_signature: Option<String>,
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
                    // A call whose id carries no signature goes without one, as before: older
                    // models need none, and the docs' stand-in signatures are for histories
                    // Gemini did not write, which the gateway cannot tell apart.
                    parts.push(WirePart::FunctionCall(FunctionCallPart {
                        function_call: WireFunctionCall {
                            name: &call.function.name,
                            args: function_args(i, j, &call.function.arguments)?,
                        },
                        thought_signature: thought_signature_of(&call.id),
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
fn push_content<'a>(
    contents: &mut Vec<WireContent<'a>>,
    role: &'static str,
    parts: Vec<WirePart<'a>>,
) {
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
            if parts
                .iter()
                .any(|p| matches!(p, ContentPart::Refusal { .. })) =>
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

/// The image type a URL's file extension names; JPEG when it names none we know.
fn image_mime_from_url(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let file = path.rsplit('/').next().unwrap_or(path);
    let extension = file
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
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

fn generation_config(
    chat: &ChatRequest,
    max_output_tokens: Option<u32>,
) -> Option<GenerationConfig<'_>> {
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

/// The `batchEmbedContents` body: one request per input text.
pub(super) fn translate_embeddings(model: &str, body: &InboundBody) -> Result<Bytes, GatewayError> {
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
    Ok(Bytes::from(bytes))
}

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

/// The thought signature a tool call id from [`super::response::tool_call_id`] carries, as
/// standard padded base64; `None` for every other id (older answers, other providers, ids the
/// client made up).
pub(super) fn thought_signature_of(id: &str) -> Option<String> {
    let (call, encoded) = id.split_once(SIGNATURE_MARKER)?;
    let number = call.strip_prefix("call_")?;
    if number.is_empty()
        || !number.bytes().all(|b| b.is_ascii_digit())
        || encoded.is_empty()
        || encoded.len() % 4 == 1
    {
        return None;
    }
    let mut signature = String::with_capacity(encoded.len() + 2);
    for c in encoded.chars() {
        signature.push(match c {
            '-' => '+',
            '_' => '/',
            c if c.is_ascii_alphanumeric() => c,
            _ => return None,
        });
    }
    while !signature.len().is_multiple_of(4) {
        signature.push('=');
    }
    Some(signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::gemini::tests::*;
    use serde_json::{Value, json};

    #[test]
    fn system_messages_become_the_system_instruction_and_roles_alternate() {
        let body = sent(json!({
            "model": "smart",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                {"role": "user", "content": "Hello"},
                {"role": "user", "content": [{"type": "text", "text": "Who are you?"}]},
                {"role": "assistant", "content": "Je suis un assistant."},
                {"role": "assistant", "content": [{"type": "text", "text": "Bonjour."}]},
                {"role": "user", "content": "Merci"}
            ]
        }));
        assert_eq!(
            body["systemInstruction"],
            json!({"parts": [{"text": "Be brief.\n\nAnswer in French."}]})
        );
        assert_eq!(
            body["contents"],
            json!([
                {"role": "user", "parts": [{"text": "Hello"}, {"text": "Who are you?"}]},
                {"role": "model", "parts": [{"text": "Je suis un assistant."}, {"text": "Bonjour."}]},
                {"role": "user", "parts": [{"text": "Merci"}]}
            ])
        );
        assert!(body.get("generationConfig").is_none());
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn images_audio_and_files_become_inline_or_file_data() {
        let body = sent(json!({
            "model": "smart",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Compare"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.WEBP?size=large", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/image"}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}
            ]}]
        }));
        assert_eq!(
            body["contents"][0]["parts"],
            json!([
                {"text": "Compare"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.WEBP?size=large"}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/image"}},
                {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}
            ])
        );
    }

    #[test]
    fn unusable_images_and_files_are_refused_with_their_path() {
        let error = rejected(json!({
            "model": "smart",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "x"},
                {"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}
            ]}]
        }));
        assert_eq!(
            param_of(&error).as_deref(),
            Some("messages[0].content[1].image_url.url")
        );

        let error = rejected(json!({
            "model": "smart",
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}
            ]}]
        }));
        assert_eq!(
            param_of(&error).as_deref(),
            Some("messages[0].content[0].image_url.url")
        );

        let error = rejected(json!({
            "model": "smart",
            "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"file_id": "file-abc"}}
            ]}]
        }));
        assert!(matches!(error, GatewayError::Unsupported(_)), "{error:?}");
    }

    #[test]
    fn tool_calls_and_results_become_function_parts_named_by_call_id() {
        let body = sent(with_tool_history(json!([])));
        assert_eq!(
            body["contents"],
            json!([
                {"role": "user", "parts": [{"text": "Weather and time in Paris?"}]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}},
                    {"functionCall": {"name": "get_time", "args": {}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
                    {"functionResponse": {"name": "get_time", "response": {"content": "14:05"}}}
                ]}
            ])
        );
    }

    #[test]
    fn invalid_arguments_and_unknown_tool_call_ids_are_refused_with_their_path() {
        let mut body = with_tool_history(json!([]));
        body["messages"][1]["tool_calls"][1]["function"]["arguments"] = json!("{not json");
        let error = rejected(body);
        assert_eq!(
            param_of(&error).as_deref(),
            Some("messages[1].tool_calls[1].function.arguments")
        );
        assert_eq!(error.status().as_u16(), 400);

        let mut body = with_tool_history(json!([]));
        body["messages"][1]["tool_calls"][0]["function"]["arguments"] = json!("[1,2]");
        let error = rejected(body);
        assert_eq!(
            param_of(&error).as_deref(),
            Some("messages[1].tool_calls[0].function.arguments")
        );

        let body = with_tool_history(json!([
            {"role": "tool", "tool_call_id": "call_zzz", "content": "late"}
        ]));
        let error = rejected(body);
        assert_eq!(
            param_of(&error).as_deref(),
            Some("messages[4].tool_call_id")
        );
        assert!(error.to_string().contains("call_zzz"), "{error}");
    }

    #[test]
    fn generation_config_carries_every_sampling_option() {
        let body = sent(json!({
            "model": "smart",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 100,
            "max_completion_tokens": 256,
            "temperature": 0.5,
            "top_p": 0.25,
            "stop": ["END", "STOP"],
            "n": 2,
            "seed": 42,
            "presence_penalty": 0.5,
            "frequency_penalty": -0.5,
            "response_format": {"type": "json_object"},
            "parallel_tool_calls": false,
            "user": "u-1"
        }));
        assert_eq!(
            body["generationConfig"],
            json!({
                "maxOutputTokens": 256,
                "temperature": 0.5,
                "topP": 0.25,
                "stopSequences": ["END", "STOP"],
                "candidateCount": 2,
                "seed": 42,
                "presencePenalty": 0.5,
                "frequencyPenalty": -0.5,
                "responseMimeType": "application/json"
            })
        );

        let body = sent(json!({
            "model": "smart",
            "messages": [{"role": "user", "content": "hi"}],
            "stop": "END"
        }));
        assert_eq!(body["generationConfig"], json!({"stopSequences": ["END"]}));
    }

    #[test]
    fn json_schema_response_format_sends_the_schema_verbatim() {
        // Built directly: `ResponseFormat` is an internally tagged enum, which serde buffers, and a
        // `RawValue` inside cannot be read from that buffer, so `InboundBody::chat` refuses
        // `json_schema` bodies today (see the report); the translation itself is tested here.
        let schema =
            r#"{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}"#;
        let mut request: ChatRequest = serde_json::from_value(json!({
            "model": "smart",
            "messages": [{"role": "user", "content": "hi"}]
        }))
        .unwrap();
        request.response_format = Some(ResponseFormat::JsonSchema {
            json_schema: crate::openai::request::JsonSchemaFormat {
                name: "city".into(),
                description: None,
                schema: Some(RawValue::from_string(schema.to_owned()).unwrap()),
                strict: Some(true),
            },
        });
        let wire = build_generate_request(&request, None).unwrap();
        let text = serde_json::to_string(&wire).unwrap();
        assert!(
            text.contains(&format!(r#""responseJsonSchema":{schema}"#)),
            "{text}"
        );
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            body["generationConfig"],
            json!({"responseMimeType": "application/json", "responseJsonSchema": serde_json::from_str::<Value>(schema).unwrap()})
        );
    }

    #[test]
    fn tools_and_each_tool_choice() {
        let tools = json!([
            {"type": "function", "function": {
                "name": "get_weather",
                "description": "Weather for a place",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}
            }},
            {"type": "function", "function": {"name": "get_time"}}
        ]);
        let request = |choice: Option<Value>| {
            let mut body = json!({
                "model": "smart",
                "messages": [{"role": "user", "content": "hi"}],
                "tools": tools.clone()
            });
            if let Some(choice) = choice {
                body["tool_choice"] = choice;
            }
            sent(body)
        };
        let body = request(None);
        assert_eq!(
            body["tools"],
            json!([{"functionDeclarations": [
                {"name": "get_weather", "description": "Weather for a place",
                 "parametersJsonSchema": {"type": "object", "properties": {"location": {"type": "string"}}}},
                {"name": "get_time"}
            ]}])
        );
        assert!(body.get("toolConfig").is_none());

        for (choice, mode) in [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")] {
            let body = request(Some(json!(choice)));
            assert_eq!(
                body["toolConfig"],
                json!({"functionCallingConfig": {"mode": mode}}),
                "{choice}"
            );
        }
        let body = request(Some(
            json!({"type": "function", "function": {"name": "get_time"}}),
        ));
        assert_eq!(
            body["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}})
        );

        let mut body = json!({
            "model": "smart",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": tools.clone(),
            "tool_choice": "sometimes"
        });
        assert_eq!(
            param_of(&rejected(body.clone())).as_deref(),
            Some("tool_choice")
        );
        body["tool_choice"] = json!("auto");
        body["tools"][0]["type"] = json!("custom");
        assert!(matches!(rejected(body), GatewayError::Unsupported(_)));
    }

    #[test]
    fn tool_call_ids_without_a_signature_send_no_signature() {
        let body = sent(json!({
            "model": "smart",
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_0", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
                    {"id": "call_x_ts_QUJD", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"location\":\"Rome\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_x_ts_QUJD", "content": "rainy"}
            ]
        }));
        assert_eq!(
            body["contents"][1],
            json!({"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}},
                {"functionCall": {"name": "get_weather", "args": {"location": "Rome"}}}
            ]})
        );
        assert_eq!(body["contents"][2]["parts"].as_array().unwrap().len(), 2);
    }
}
