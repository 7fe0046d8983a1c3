//! An OpenAI chat completion as an Anthropic Messages request.
//!
//! System and developer messages become the top-level `system`, consecutive turns of one role
//! are merged (Anthropic wants user and assistant turns to alternate), tool results become
//! `tool_result` blocks of a user turn, and `response_format` becomes a forced tool whose input
//! is the JSON answer.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error::GatewayError;
use crate::openai::InboundBody;
use crate::openai::request::{
    ChatRequest, ContentPart, FileContent, MessageContent, ResponseFormat, Role, Stop, ToolCall,
    ToolChoice,
};
use crate::providers::{is_http_url, parse_data_url};

/// Anthropic requires `max_tokens`; used when the client set no limit (and reserved for
/// budgets as such: [`crate::providers::ProviderAdapter::default_max_output`]).
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 4096;
/// Names the tool that stands in for `response_format`: its input is the answer's content.
pub(super) const JSON_OUTPUT_TOOL_PREFIX: &str = "tollgate_json_output__";
/// Anthropic's limit on tool name length.
const MAX_TOOL_NAME_LEN: usize = 64;
const EMPTY_OBJECT_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;
const ANY_OBJECT_SCHEMA: &str = r#"{"type":"object"}"#;

#[derive(Serialize)]
struct MessagesRequest<'a> {
    /// Absent on Vertex AI, where the URL names the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    /// Vertex AI's stand-in for the `anthropic-version` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    anthropic_version: Option<&'static str>,
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

/// Where a Messages request goes, which decides where the model and the API version travel.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Destination<'a> {
    /// Anthropic's own API: the model in the body, the version in a header.
    Anthropic { model: &'a str },
    /// Vertex AI's `rawPredict`: the model in the URL, the version in the body.
    /// <https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude>
    Vertex { anthropic_version: &'static str },
}

pub(crate) fn translate_request(
    destination: Destination<'_>,
    body: &InboundBody,
) -> Result<Bytes, GatewayError> {
    request_body(
        destination,
        body.chat()?,
        body.stream,
        body.max_output_tokens,
    )
}

fn request_body(
    destination: Destination<'_>,
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

    let (model, anthropic_version) = match destination {
        Destination::Anthropic { model } => (Some(model), None),
        Destination::Vertex { anthropic_version } => (None, Some(anthropic_version)),
    };
    let request = MessagesRequest {
        model,
        anthropic_version,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::anthropic::tests::*;
    use serde_json::{Value, json};

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
        let body: Value = serde_json::from_slice(
            &request_body(
                Destination::Anthropic {
                    model: "claude-sonnet-4-5",
                },
                &chat,
                false,
                None,
            )
            .unwrap(),
        )
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
}
