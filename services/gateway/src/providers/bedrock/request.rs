//! An OpenAI chat completion as a Bedrock Converse request.
//!
//! System and developer messages become `system`, consecutive turns of one role are merged
//! (Bedrock wants user and assistant turns to alternate, starting with the user), tool results
//! become `toolResult` blocks of a user turn, tool calls `toolUse` blocks, and sampling options
//! go into `inferenceConfig`. The model is named in the URL, not the body.
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>
//!
//! What Converse cannot express is refused (400) when it would change the answer: `n > 1`,
//! `response_format` other than `text`, `tool_choice: none` once tool calls are in the
//! conversation, audio and file parts, images by URL. Hints it has no field for are dropped, as
//! the other adapters drop them: `seed`, `presence_penalty`, `frequency_penalty`, `user`, and
//! `parallel_tool_calls` (the model may still answer with several calls).

use std::borrow::Cow;

use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::GatewayError;
use crate::openai::InboundBody;
use crate::openai::request::{
    ChatMessage, ChatRequest, ContentPart, MessageContent, ResponseFormat, Role, Stop, ToolCall,
    ToolChoice,
};
use crate::providers::{is_http_url, parse_data_url};

const EMPTY_OBJECT_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConverseRequest<'a> {
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<SystemBlock>,
    #[serde(skip_serializing_if = "InferenceConfig::is_empty")]
    inference_config: InferenceConfig<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'a>>,
}

#[derive(Serialize)]
struct SystemBlock {
    text: String,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

/// A content block: an object with exactly one member naming its kind.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum Block<'a> {
    Text(Cow<'a, str>),
    Image(Image<'a>),
    ToolUse(ToolUse<'a>),
    ToolResult(ToolResult<'a>),
}

#[derive(Serialize)]
struct Image<'a> {
    format: &'static str,
    source: ImageSource<'a>,
}

#[derive(Serialize)]
struct ImageSource<'a> {
    /// Base64 in JSON, as the API's `blob` type is.
    bytes: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolUse<'a> {
    tool_use_id: &'a str,
    name: &'a str,
    input: Cow<'a, RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolResult<'a> {
    tool_use_id: &'a str,
    content: Vec<ToolResultContent<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum ToolResultContent<'a> {
    Text(Cow<'a, str>),
    Json(Box<RawValue>),
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'a str>,
}

impl InferenceConfig<'_> {
    fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<WireToolChoice<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireTool<'a> {
    tool_spec: ToolSpec<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolSpec<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: InputSchema<'a>,
}

#[derive(Serialize)]
struct InputSchema<'a> {
    json: &'a RawValue,
}

/// `{"auto": {}}`, `{"any": {}}` or `{"tool": {"name": ...}}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum WireToolChoice<'a> {
    Auto(Empty),
    Any(Empty),
    Tool { name: &'a str },
}

#[derive(Serialize)]
struct Empty {}

pub(super) fn translate_request(body: &InboundBody) -> Result<Bytes, GatewayError> {
    let request = converse_request(body.chat()?, body.max_output_tokens)?;
    serde_json::to_vec(&request)
        .map(Bytes::from)
        .map_err(|e| GatewayError::Internal(format!("cannot serialize the Bedrock request: {e}")))
}

fn converse_request(
    chat: &ChatRequest,
    max_output_tokens: Option<u32>,
) -> Result<ConverseRequest<'_>, GatewayError> {
    if chat.n.is_some_and(|n| n > 1) {
        return Err(GatewayError::Unsupported(
            "Bedrock returns one choice per request; `n` must be 1".into(),
        ));
    }
    // Converse has no JSON mode; emulating one would answer differently than asked.
    if matches!(
        chat.response_format,
        Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema { .. })
    ) {
        return Err(GatewayError::Unsupported(
            "Bedrock's Converse API has no JSON output mode; `response_format` must be `text` \
             for Bedrock targets"
                .into(),
        ));
    }
    let (system, messages, has_tool_blocks) = translate_messages(chat)?;
    let tool_config = tool_config(chat, has_tool_blocks)?;
    let inference_config = InferenceConfig {
        max_tokens: max_output_tokens.or(chat.max_output_tokens()),
        temperature: chat.temperature,
        top_p: chat.top_p,
        stop_sequences: match &chat.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.as_str()],
            Some(Stop::Many(v)) => v.iter().map(String::as_str).collect(),
        },
    };
    Ok(ConverseRequest {
        messages,
        system,
        inference_config,
        tool_config,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TurnRole {
    User,
    Assistant,
}

type Translated<'a> = (Vec<SystemBlock>, Vec<WireMessage<'a>>, bool);

/// The system blocks, the alternating turns, and whether any turn holds tool blocks.
fn translate_messages(chat: &ChatRequest) -> Result<Translated<'_>, GatewayError> {
    let mut system = Vec::new();
    let mut turns: Vec<(TurnRole, Vec<Block<'_>>)> = Vec::new();
    let mut has_tool_blocks = false;
    for (i, message) in chat.messages.iter().enumerate() {
        let mut blocks = Vec::new();
        let role = match message.role {
            Role::System | Role::Developer => {
                let text = message.content.as_ref().map(MessageContent::text);
                if let Some(text) = text.filter(|t| !t.is_empty()) {
                    system.push(SystemBlock { text });
                }
                continue;
            }
            Role::User => {
                content_blocks(message, i, &mut blocks)?;
                TurnRole::User
            }
            Role::Assistant => {
                content_blocks(message, i, &mut blocks)?;
                for (j, call) in message.tool_calls.iter().flatten().enumerate() {
                    blocks.push(tool_use_block(call, i, j)?);
                }
                TurnRole::Assistant
            }
            Role::Tool | Role::Function => {
                blocks.push(tool_result_block(message, i)?);
                TurnRole::User
            }
        };
        has_tool_blocks |= blocks
            .iter()
            .any(|b| matches!(b, Block::ToolUse(_) | Block::ToolResult(_)));
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
            // The results answering the previous turn's calls come first in a user turn.
            if role == TurnRole::User {
                blocks.sort_by_key(|b| !matches!(b, Block::ToolResult(_)));
            }
            WireMessage {
                role: match role {
                    TurnRole::User => "user",
                    TurnRole::Assistant => "assistant",
                },
                content: blocks,
            }
        })
        .collect();
    Ok((system, messages, has_tool_blocks))
}

/// Appends the blocks of a user or assistant message's content; empty texts are dropped, as
/// Bedrock refuses blank text blocks.
fn content_blocks<'a>(
    message: &'a ChatMessage,
    i: usize,
    out: &mut Vec<Block<'a>>,
) -> Result<(), GatewayError> {
    let parts = match &message.content {
        None => return Ok(()),
        Some(MessageContent::Text(text)) => {
            if !text.is_empty() {
                out.push(Block::Text(Cow::Borrowed(text)));
            }
            return Ok(());
        }
        Some(MessageContent::Parts(parts)) => parts,
    };
    for (j, part) in parts.iter().enumerate() {
        match part {
            ContentPart::Text { text } | ContentPart::Refusal { refusal: text } => {
                if !text.is_empty() {
                    out.push(Block::Text(Cow::Borrowed(text)));
                }
            }
            ContentPart::ImageUrl { image_url } => {
                let param = format!("messages[{i}].content[{j}].image_url.url");
                out.push(Block::Image(image(&image_url.url, param)?));
            }
            ContentPart::InputAudio { .. } => {
                return Err(GatewayError::Unsupported(format!(
                    "Bedrock's Converse API takes no audio input (messages[{i}].content[{j}] is \
                     `input_audio`); send a transcript as text instead"
                )));
            }
            ContentPart::File { .. } => {
                return Err(GatewayError::Unsupported(format!(
                    "files are not sent to Bedrock targets (messages[{i}].content[{j}] is a \
                     `file`); send the text, or images as data URLs"
                )));
            }
        }
    }
    Ok(())
}

/// An image from a base64 data URL: Bedrock takes the bytes themselves (or an S3 location,
/// which an OpenAI client has no way to name), never a web URL.
fn image(url: &str, param: String) -> Result<Image<'_>, GatewayError> {
    if is_http_url(url) {
        return Err(GatewayError::invalid_field(
            param,
            "Bedrock takes images as bytes, not URLs: send the image as a base64 data URL \
             (`data:image/png;base64,...`).",
        ));
    }
    let (mime, data) = parse_data_url(url).ok_or_else(|| {
        GatewayError::invalid_field(
            param.clone(),
            "An image must be a base64 data URL: `data:<mime>;base64,<data>`.",
        )
    })?;
    let format = match mime.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => {
            return Err(GatewayError::invalid_field(
                param,
                format!("Bedrock accepts PNG, JPEG, GIF and WebP images, not `{mime}`."),
            ));
        }
    };
    Ok(Image {
        format,
        source: ImageSource { bytes: data },
    })
}

/// An assistant's tool call as a `toolUse` block; its arguments must be a JSON object.
fn tool_use_block(call: &ToolCall, i: usize, j: usize) -> Result<Block<'_>, GatewayError> {
    let param = || format!("messages[{i}].tool_calls[{j}].function.arguments");
    let arguments = call.function.arguments.trim();
    let input = if arguments.is_empty() {
        Cow::Owned(
            RawValue::from_string("{}".to_owned())
                .map_err(|e| GatewayError::Internal(e.to_string()))?,
        )
    } else {
        let raw: &RawValue = serde_json::from_str(arguments).map_err(|e| {
            GatewayError::invalid_field(param(), format!("The arguments are not valid JSON: {e}."))
        })?;
        if !raw.get().starts_with('{') {
            return Err(GatewayError::invalid_field(
                param(),
                "The arguments must be a JSON object.",
            ));
        }
        Cow::Borrowed(raw)
    };
    Ok(Block::ToolUse(ToolUse {
        tool_use_id: &call.id,
        name: &call.function.name,
        input,
    }))
}

/// A `tool` (or legacy `function`) message as a `toolResult` block: a JSON object result goes
/// as `json`, anything else as `text`.
fn tool_result_block(message: &ChatMessage, i: usize) -> Result<Block<'_>, GatewayError> {
    let tool_use_id = message
        .tool_call_id
        .as_deref()
        .or(message.name.as_deref())
        .ok_or_else(|| {
            GatewayError::invalid_field(
                format!("messages[{i}].tool_call_id"),
                "A `tool` message needs the `tool_call_id` of the call it answers.",
            )
        })?;
    let text = match &message.content {
        None => Cow::Borrowed(""),
        Some(MessageContent::Text(text)) => Cow::Borrowed(text.as_str()),
        Some(content) => Cow::Owned(content.text()),
    };
    let object = serde_json::from_str::<&RawValue>(&text)
        .ok()
        .filter(|raw| raw.get().starts_with('{'))
        .map(ToOwned::to_owned);
    let content = match object {
        Some(raw) => ToolResultContent::Json(raw),
        None => ToolResultContent::Text(text),
    };
    Ok(Block::ToolResult(ToolResult {
        tool_use_id,
        content: vec![content],
    }))
}

fn tool_config(
    chat: &ChatRequest,
    has_tool_blocks: bool,
) -> Result<Option<ToolConfig<'_>>, GatewayError> {
    let Some(tools) = chat.tools.as_ref().filter(|t| !t.is_empty()) else {
        if has_tool_blocks {
            // Bedrock refuses tool blocks without a `toolConfig`, which it cannot have without
            // tools; better said here than as an upstream validation error.
            return Err(GatewayError::invalid_field(
                "tools",
                "Bedrock needs the `tools` definitions whenever the conversation holds tool \
                 calls or tool results.",
            ));
        }
        return Ok(None);
    };
    let empty_schema: &RawValue = serde_json::from_str(EMPTY_OBJECT_SCHEMA)
        .map_err(|e| GatewayError::Internal(format!("bad built-in JSON schema: {e}")))?;
    let mut specs = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        if tool.kind != "function" {
            return Err(GatewayError::Unsupported(format!(
                "tools[{i}]: Bedrock accepts only `function` tools, not `{}`",
                tool.kind
            )));
        }
        specs.push(WireTool {
            tool_spec: ToolSpec {
                name: &tool.function.name,
                description: tool.function.description.as_deref(),
                input_schema: InputSchema {
                    json: tool.function.parameters.as_deref().unwrap_or(empty_schema),
                },
            },
        });
    }
    let tool_choice = match &chat.tool_choice {
        None => None,
        Some(ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => Some(WireToolChoice::Auto(Empty {})),
            "required" => Some(WireToolChoice::Any(Empty {})),
            // Converse has no way to forbid calls but to offer no tools, which it allows only
            // while the conversation holds no tool blocks.
            "none" if !has_tool_blocks => return Ok(None),
            "none" => {
                return Err(GatewayError::Unsupported(
                    "Bedrock cannot forbid tool calls (`tool_choice: none`) in a conversation \
                     that already holds tool calls; use `auto`"
                        .into(),
                ));
            }
            other => {
                return Err(GatewayError::invalid_field(
                    "tool_choice",
                    format!(
                        "Invalid value for 'tool_choice': `{other}`; expected `none`, `auto`, \
                         `required` or a named function."
                    ),
                ));
            }
        },
        Some(ToolChoice::Named(named)) => Some(WireToolChoice::Tool {
            name: &named.function.name,
        }),
    };
    Ok(Some(ToolConfig {
        tools: specs,
        tool_choice,
    }))
}

#[cfg(test)]
mod tests {
    use crate::providers::bedrock::tests::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn plain_request_has_messages_of_text_blocks_and_no_model() {
        let body = sent(json!({"messages": [user("Hello")]}));
        assert_eq!(
            body,
            json!({"messages": [{"role": "user", "content": [{"text": "Hello"}]}]})
        );
    }

    #[test]
    fn system_messages_become_system_blocks_and_roles_alternate() {
        let body = sent(json!({"messages": [
            {"role": "system", "content": "You are terse."},
            user("Hi"),
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": [{"type": "text", "text": "Please."}, {"type": "text", "text": ""}]},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "Non."}]},
        ]}));
        assert_eq!(
            body["system"],
            json!([{"text": "You are terse."}, {"text": "Answer in French."}])
        );
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": [{"text": "Hi"}, {"text": "Please."}]},
                {"role": "assistant", "content": [{"text": "Bonjour"}, {"text": "Non."}]}
            ])
        );
        let err = refused(json!({"messages": [{"role": "system", "content": "s"}]}));
        assert_eq!(err.body().error.param, Some("messages"));
    }

    #[test]
    fn tool_calls_and_results_become_tool_use_and_merged_tool_result_blocks() {
        let body = sent(json!({
            "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                      {"type": "function", "function": {"name": "now"}}],
            "messages": [
                user("Weather in Paris and Rome, and the time?"),
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "tooluse_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "tooluse_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}},
                    {"id": "tooluse_3", "type": "function", "function": {"name": "now", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "tooluse_1", "content": "18°C"},
                {"role": "tool", "tool_call_id": "tooluse_2", "content": "{\"celsius\": 24}"},
                user("(be quick)"),
                {"role": "function", "name": "tooluse_3", "content": [{"type": "text", "text": "12:00"}]},
            ]
        }));
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": [{"text": "Weather in Paris and Rome, and the time?"}]},
                {"role": "assistant", "content": [
                    {"text": "Checking."},
                    {"toolUse": {"toolUseId": "tooluse_1", "name": "weather", "input": {"city": "Paris"}}},
                    {"toolUse": {"toolUseId": "tooluse_2", "name": "weather", "input": {"city": "Rome"}}},
                    {"toolUse": {"toolUseId": "tooluse_3", "name": "now", "input": {}}}
                ]},
                {"role": "user", "content": [
                    {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18°C"}]}},
                    {"toolResult": {"toolUseId": "tooluse_2", "content": [{"json": {"celsius": 24}}]}},
                    {"toolResult": {"toolUseId": "tooluse_3", "content": [{"text": "12:00"}]}},
                    {"text": "(be quick)"}
                ]}
            ])
        );
        assert_eq!(
            body["toolConfig"],
            json!({"tools": [
                {"toolSpec": {"name": "weather", "description": "Weather for a city",
                    "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}},
                {"toolSpec": {"name": "now", "inputSchema": {"json": {"type": "object", "properties": {}}}}}
            ]})
        );
    }

    #[test]
    fn every_tool_choice() {
        let tools = json!([{"type": "function", "function": {"name": "now"}}]);
        let cases = [
            (json!("auto"), Some(json!({"auto": {}}))),
            (json!("required"), Some(json!({"any": {}}))),
            (
                json!({"type": "function", "function": {"name": "now"}}),
                Some(json!({"tool": {"name": "now"}})),
            ),
        ];
        for (choice, expected) in cases {
            let body =
                sent(json!({"messages": [user("x")], "tools": tools, "tool_choice": choice}));
            assert_eq!(
                body["toolConfig"].get("toolChoice"),
                expected.as_ref(),
                "{choice}"
            );
        }
        // `none` offers no tools at all while that is allowed, and is refused after tool calls.
        let body = sent(json!({"messages": [user("x")], "tools": tools, "tool_choice": "none"}));
        assert!(body.get("toolConfig").is_none(), "{body}");
        let history = json!([
            user("x"),
            {"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "now", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t", "content": "12:00"}
        ]);
        let err = refused(json!({"messages": history, "tools": tools, "tool_choice": "none"}));
        assert!(matches!(err, GatewayError::Unsupported(_)), "{err:?}");
        let err = refused(json!({"messages": history}));
        assert_eq!(err.body().error.param, Some("tools"));
        let err =
            refused(json!({"messages": [user("x")], "tools": tools, "tool_choice": "sometimes"}));
        assert_eq!(err.body().error.param, Some("tool_choice"));
        let err = refused(
            json!({"messages": [user("x")], "tools": [{"type": "code_interpreter", "function": {"name": "c"}}]}),
        );
        assert!(matches!(err, GatewayError::Unsupported(_)), "{err:?}");
    }

    #[test]
    fn images_go_as_bytes_and_urls_are_refused() {
        let body = sent(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "Compare"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
        ]}]}));
        assert_eq!(
            body["messages"][0]["content"],
            json!([
                {"text": "Compare"},
                {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
                {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}}
            ])
        );
        for (url, needle) in [
            ("https://example.com/cat.png", "not URLs"),
            ("data:image/png,rawbytes", "base64 data URL"),
            ("data:image/tiff;base64,AAAA", "not `image/tiff`"),
        ] {
            let err = refused(json!({"messages": [{"role": "user", "content": [
                {"type": "text", "text": "x"},
                {"type": "image_url", "image_url": {"url": url}}
            ]}]}));
            assert_eq!(err.status().as_u16(), 400, "{url}");
            assert_eq!(
                err.body().error.param,
                Some("messages[0].content[1].image_url.url"),
                "{url}"
            );
            assert!(err.to_string().contains(needle), "{url}: {err}");
        }
        let audio = refused(json!({"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
        ]}]}));
        assert!(matches!(audio, GatewayError::Unsupported(_)), "{audio:?}");
    }

    #[test]
    fn sampling_options_go_into_inference_config() {
        let body = sent(json!({
            "messages": [user("x")],
            "temperature": 0.5,
            "top_p": 0.25,
            "stop": ["END", "STOP"],
            "max_completion_tokens": 300,
            "max_tokens": 100,
            "seed": 3,
            "presence_penalty": 0.5,
            "user": "u-1",
            "stream": true,
        }));
        assert_eq!(
            body["inferenceConfig"],
            json!({"maxTokens": 300, "temperature": 0.5, "topP": 0.25, "stopSequences": ["END", "STOP"]})
        );
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
        let body = sent(json!({"messages": [user("x")], "stop": "\n\nHuman:", "max_tokens": 50}));
        assert_eq!(
            body["inferenceConfig"],
            json!({"maxTokens": 50, "stopSequences": ["\n\nHuman:"]})
        );
    }

    #[test]
    fn requests_bedrock_cannot_answer_as_asked_are_refused() {
        let err = refused(json!({"messages": [user("x")], "n": 2}));
        assert!(matches!(err, GatewayError::Unsupported(_)), "{err:?}");
        assert!(err.to_string().contains("`n` must be 1"), "{err}");
        let err =
            refused(json!({"messages": [user("x")], "response_format": {"type": "json_object"}}));
        assert!(matches!(err, GatewayError::Unsupported(_)), "{err:?}");
        let ok =
            sent(json!({"messages": [user("x")], "n": 1, "response_format": {"type": "text"}}));
        assert_eq!(ok["messages"][0]["content"][0]["text"], "x");

        for arguments in ["{\"city\": ", "[1, 2]"] {
            let err = refused(json!({
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "messages": [
                    user("x"),
                    {"role": "assistant", "tool_calls": [
                        {"id": "a", "type": "function", "function": {"name": "f", "arguments": arguments}}
                    ]}
                ]
            }));
            assert_eq!(
                err.body().error.param,
                Some("messages[1].tool_calls[0].function.arguments"),
                "{arguments}"
            );
        }
        let err = refused(json!({"messages": [user("x"), {"role": "tool", "content": "y"}]}));
        assert_eq!(err.body().error.param, Some("messages[1].tool_call_id"));
    }
}
