//! An Anthropic Messages request as the OpenAI chat request the pipeline runs.
//!
//! Every field that changes the answer is carried over or refused with a 400 naming it; the
//! few that have no OpenAI counterpart and only tune sampling or caching (`top_k`,
//! `cache_control`, `thinking`, `service_tier`) are dropped, as the README's table says.
//! Tool results become `tool` messages placed right after the assistant turn that called
//! them, as OpenAI requires; images a tool returned follow in a user message of their own.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::error::GatewayError;
use crate::ingress::{FieldPath, json_value, parse_typed};

/// `POST /v1/messages`, as far as the translation reads it.
#[derive(Debug, Deserialize)]
struct MessagesRequest {
    model: String,
    /// Required on `/v1/messages`, not on `/count_tokens`.
    #[serde(default)]
    max_tokens: Option<u32>,
    messages: Vec<Message>,
    #[serde(default)]
    system: Option<System>,
    #[serde(default)]
    stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    temperature: Option<serde_json::Number>,
    #[serde(default)]
    top_p: Option<serde_json::Number>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default)]
    tool_choice: Option<ToolChoice>,
    /// Remote MCP servers and code-execution containers are run by Anthropic on the caller's
    /// behalf, out of the gateway's sight and metering: refused, whatever the target.
    #[serde(default)]
    mcp_servers: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    container: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum System {
    Text(String),
    Blocks(Vec<TextBlock>),
}

#[derive(Debug, Deserialize)]
struct TextBlock {
    #[serde(rename = "type")]
    kind: TextType,
    text: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TextType {
    Text,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Role {
    User,
    Assistant,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: Role,
    content: Content,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    Image {
        source: Source,
    },
    Document {
        source: Source,
        #[serde(default)]
        title: Option<String>,
    },
    ToolUse {
        id: String,
        name: String,
        // A Value, not raw text: serde buffers the content of tagged enums, and raw JSON
        // cannot be read back from that buffer.
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<ToolResultContent>,
    },
    /// Reasoning from an earlier turn: only the model that wrote it can read it back.
    Thinking {},
    RedactedThinking {},
    /// Server tools, search results, container uploads: nothing another provider can take.
    #[serde(other)]
    Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ToolResultContent {
    Text(String),
    Blocks(Vec<Block>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Source {
    Base64 {
        media_type: String,
        data: String,
    },
    Url {
        url: String,
    },
    Text {
        data: String,
    },
    /// Files uploaded to Anthropic's Files API exist only there.
    #[serde(other)]
    Unsupported,
}

#[derive(Debug, Deserialize)]
struct Tool {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    input_schema: Option<Box<RawValue>>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ToolChoice {
    Auto {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Tool {
        name: String,
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    None,
}

impl ToolChoice {
    fn disables_parallel_calls(&self) -> bool {
        match self {
            ToolChoice::Auto {
                disable_parallel_tool_use,
            }
            | ToolChoice::Any {
                disable_parallel_tool_use,
            }
            | ToolChoice::Tool {
                disable_parallel_tool_use,
                ..
            } => disable_parallel_tool_use.unwrap_or(false),
            ToolChoice::None => false,
        }
    }
}

/// The OpenAI chat body for an Anthropic Messages body.
pub fn to_chat_body(raw: &[u8]) -> Result<Bytes, GatewayError> {
    translate(raw, true)
}

/// The OpenAI chat body for a `/v1/messages/count_tokens` body, which has no `max_tokens`.
pub fn to_counted_body(raw: &[u8]) -> Result<Bytes, GatewayError> {
    translate(raw, false)
}

fn translate(raw: &[u8], answered: bool) -> Result<Bytes, GatewayError> {
    let request: MessagesRequest = parse_typed(raw, FieldPath::Dotted)?;
    if answered && request.max_tokens.is_none() {
        return Err(GatewayError::invalid_field(
            "max_tokens",
            "max_tokens: Field required",
        ));
    }
    for (field, present) in [
        ("mcp_servers", request.mcp_servers.is_some()),
        ("container", request.container.is_some()),
    ] {
        if present {
            return Err(GatewayError::invalid_field(
                field,
                format!(
                    "{field}: not supported through Tollgate: Anthropic would run it out of the \
                     gateway's sight, unmetered"
                ),
            ));
        }
    }
    if request.messages.is_empty() {
        return Err(GatewayError::invalid_field(
            "messages",
            "messages: at least one message is required",
        ));
    }
    let mut chat = Map::new();
    chat.insert("model".into(), Value::String(request.model));
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    match request.system {
        Some(System::Text(text)) => messages.push(json!({"role": "system", "content": text})),
        Some(System::Blocks(blocks)) if !blocks.is_empty() => {
            let parts: Vec<Value> = blocks
                .into_iter()
                .map(|b| {
                    let TextType::Text = b.kind;
                    json!({"type": "text", "text": b.text})
                })
                .collect();
            messages.push(json!({"role": "system", "content": parts}));
        }
        Some(System::Blocks(_)) | None => {}
    }
    for (i, message) in request.messages.into_iter().enumerate() {
        match message.role {
            Role::User => user_turn(i, message.content, &mut messages)?,
            Role::Assistant => messages.push(assistant_turn(i, message.content)?),
        }
    }
    chat.insert("messages".into(), Value::Array(messages));
    if let Some(max_tokens) = request.max_tokens {
        chat.insert("max_tokens".into(), json!(max_tokens));
    }
    if let Some(stops) = request.stop_sequences.filter(|s| !s.is_empty()) {
        chat.insert("stop".into(), json!(stops));
    }
    if let Some(temperature) = request.temperature {
        chat.insert("temperature".into(), Value::Number(temperature));
    }
    if let Some(top_p) = request.top_p {
        chat.insert("top_p".into(), Value::Number(top_p));
    }
    if let Some(user) = request.metadata.and_then(|m| m.user_id) {
        chat.insert("user".into(), Value::String(user));
    }
    let tools = request.tools.unwrap_or_default();
    if !tools.is_empty() {
        let tools = tools
            .into_iter()
            .enumerate()
            .map(|(i, tool)| function_tool(i, tool))
            .collect::<Result<Vec<_>, _>>()?;
        chat.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = &request.tool_choice
            && choice.disables_parallel_calls()
        {
            chat.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
    }
    if let Some(choice) = request.tool_choice {
        let choice = match choice {
            ToolChoice::Auto { .. } => json!("auto"),
            ToolChoice::Any { .. } => json!("required"),
            ToolChoice::None => json!("none"),
            ToolChoice::Tool { name, .. } => {
                json!({"type": "function", "function": {"name": name}})
            }
        };
        chat.insert("tool_choice".into(), choice);
    }
    if request.stream.unwrap_or(false) {
        chat.insert("stream".into(), Value::Bool(true));
        // The events end with the usage, which only the last OpenAI chunk carries.
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    // Serializing a tree of plain JSON values cannot fail.
    Ok(Bytes::from(
        serde_json::to_vec(&Value::Object(chat)).unwrap_or_default(),
    ))
}

/// A user turn: its tool results first, as `tool` messages, then the rest as one user message.
fn user_turn(i: usize, content: Content, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let blocks = match content {
        Content::Text(text) => {
            out.push(json!({"role": "user", "content": text}));
            return Ok(());
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    let mut tool_images = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        let at = format!("messages.{i}.content.{j}");
        match block {
            Block::ToolResult {
                tool_use_id,
                content,
            } => {
                let mut texts = Vec::new();
                match content {
                    Some(ToolResultContent::Text(text)) => texts.push(text),
                    Some(ToolResultContent::Blocks(blocks)) => {
                        for (k, block) in blocks.into_iter().enumerate() {
                            match block {
                                Block::Text { text } => texts.push(text),
                                Block::Image { source } => tool_images
                                    .push(image_part(&format!("{at}.content.{k}"), source)?),
                                _ => {
                                    return Err(unsupported_block(
                                        &format!("{at}.content.{k}"),
                                        "tool results may hold text and images",
                                    ));
                                }
                            }
                        }
                    }
                    None => {}
                }
                out.push(json!({
                    "role": "tool",
                    "tool_call_id": tool_use_id,
                    "content": texts.concat(),
                }));
            }
            Block::Thinking {} | Block::RedactedThinking {} => {}
            other => parts.push(content_part(&at, other)?),
        }
    }
    parts.append(&mut tool_images);
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

/// An assistant turn: its text, and its tool calls as OpenAI `tool_calls`.
fn assistant_turn(i: usize, content: Content) -> Result<Value, GatewayError> {
    let blocks = match content {
        Content::Text(text) => return Ok(json!({"role": "assistant", "content": text})),
        Content::Blocks(blocks) => blocks,
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        match block {
            Block::Text { text: part } => text.push_str(&part),
            Block::ToolUse { id, name, input } => calls.push(json!({
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": input.to_string()},
            })),
            Block::Thinking {} | Block::RedactedThinking {} => {}
            _ => {
                return Err(unsupported_block(
                    &format!("messages.{i}.content.{j}"),
                    "assistant turns may hold text, tool_use and thinking blocks",
                ));
            }
        }
    }
    let mut message = json!({"role": "assistant", "content": (!text.is_empty()).then_some(text)});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    Ok(message)
}

/// A user content block as an OpenAI content part.
fn content_part(at: &str, block: Block) -> Result<Value, GatewayError> {
    match block {
        Block::Text { text } => Ok(json!({"type": "text", "text": text})),
        Block::Image { source } => image_part(at, source),
        Block::Document { source, title } => match source {
            Source::Base64 { media_type, data } => Ok(json!({
                "type": "file",
                "file": {
                    "file_data": format!("data:{media_type};base64,{data}"),
                    "filename": title.unwrap_or_else(|| "document.pdf".to_owned()),
                },
            })),
            Source::Text { data } => Ok(json!({"type": "text", "text": data})),
            Source::Url { .. } | Source::Unsupported => Err(GatewayError::invalid_field(
                format!("{at}.source"),
                format!(
                    "{at}.source: documents must be sent inline (base64 or text); \
                     URL and file references are only understood by Anthropic itself"
                ),
            )),
        },
        Block::ToolUse { .. } => Err(unsupported_block(
            at,
            "tool_use blocks belong in assistant turns",
        )),
        _ => Err(unsupported_block(
            at,
            "user turns may hold text, image, document and tool_result blocks",
        )),
    }
}

fn image_part(at: &str, source: Source) -> Result<Value, GatewayError> {
    let url = match source {
        Source::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        Source::Url { url } => url,
        Source::Text { .. } | Source::Unsupported => {
            return Err(GatewayError::invalid_field(
                format!("{at}.source"),
                format!("{at}.source: an image's source must be base64 data or a URL"),
            ));
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

fn function_tool(i: usize, tool: Tool) -> Result<Value, GatewayError> {
    if let Some(kind) = tool.kind.as_deref()
        && kind != "custom"
    {
        return Err(GatewayError::invalid_field(
            format!("tools.{i}.type"),
            format!(
                "tools.{i}.type: `{kind}` is one of Anthropic's server or client tools, which \
                 only Anthropic's own API runs; declare it as a custom tool with an input_schema"
            ),
        ));
    }
    let Some(schema) = tool.input_schema else {
        return Err(GatewayError::invalid_field(
            format!("tools.{i}.input_schema"),
            format!("tools.{i}.input_schema: Field required"),
        ));
    };
    let parameters = json_value(&format!("tools.{i}.input_schema"), &schema)?;
    let mut function = json!({"name": tool.name, "parameters": parameters});
    if let Some(description) = tool.description {
        function["description"] = Value::String(description);
    }
    Ok(json!({"type": "function", "function": function}))
}

fn unsupported_block(at: &str, allowed: &str) -> GatewayError {
    GatewayError::invalid_field(
        format!("{at}.type"),
        format!("{at}.type: this content block cannot be sent through Tollgate: {allowed}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> Value {
        let bytes = to_chat_body(body.to_string().as_bytes()).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn refused(body: Value) -> GatewayError {
        to_chat_body(body.to_string().as_bytes()).unwrap_err()
    }

    #[test]
    fn text_system_and_sampling_carry_over() {
        let out = chat(json!({
            "model": "claude-x", "max_tokens": 64,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "Hi"}],
            "stop_sequences": ["END"], "temperature": 0.5, "top_p": 0.9, "top_k": 40,
            "metadata": {"user_id": "u-1"},
        }));
        assert_eq!(
            out,
            json!({
                "model": "claude-x",
                "messages": [
                    {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                    {"role": "user", "content": "Hi"},
                ],
                "max_tokens": 64, "stop": ["END"], "temperature": 0.5, "top_p": 0.9,
                "user": "u-1",
            })
        );
    }

    #[test]
    fn tool_calls_and_results_become_openai_turns_in_order() {
        let out = chat(json!({
            "model": "m", "max_tokens": 10, "stream": true,
            "tools": [{"name": "weather", "description": "Weather now",
                       "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "...", "signature": "s"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                        {"type": "text", "text": "18C"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                    ]},
                    {"type": "text", "text": "And tomorrow?"},
                ]},
            ],
        }));
        let messages = out["messages"].as_array().unwrap();
        assert_eq!(messages[1]["tool_calls"][0]["id"], "toolu_1");
        assert_eq!(
            messages[1]["tool_calls"][0]["function"]["arguments"],
            r#"{"city":"Paris"}"#
        );
        assert_eq!(messages[1]["content"], "Checking.");
        assert_eq!(
            messages[2],
            json!({"role": "tool", "tool_call_id": "toolu_1", "content": "18C"})
        );
        assert_eq!(messages[3]["content"][0]["text"], "And tomorrow?");
        assert_eq!(
            messages[3]["content"][1]["image_url"]["url"],
            "data:image/png;base64,iVBOR"
        );
        assert_eq!(out["tools"][0]["function"]["name"], "weather");
        assert_eq!(
            out["tools"][0]["function"]["parameters"]["properties"]["city"]["type"],
            "string"
        );
        assert_eq!(out["tool_choice"], "required");
        assert_eq!(out["parallel_tool_calls"], false);
        assert_eq!(out["stream_options"]["include_usage"], true);
    }

    #[test]
    fn images_and_documents_become_parts() {
        let out = chat(json!({
            "model": "m", "max_tokens": 10,
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {"type": "document", "title": "r.pdf",
                 "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}},
            ]}],
        }));
        let parts = &out["messages"][0]["content"];
        assert_eq!(parts[0]["image_url"]["url"], "https://example.com/a.png");
        assert_eq!(
            parts[1]["file"]["file_data"],
            "data:application/pdf;base64,JVBE"
        );
        assert_eq!(parts[1]["file"]["filename"], "r.pdf");
        assert_eq!(parts[2], json!({"type": "text", "text": "plain"}));
    }

    #[test]
    fn what_cannot_be_translated_is_refused_naming_the_field() {
        let base = |extra: Value| {
            let mut body = json!({"model": "m", "max_tokens": 5,
                                  "messages": [{"role": "user", "content": "x"}]});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            body
        };
        let cases = [
            (json!({"max_tokens": null}), "max_tokens"),
            (json!({"messages": []}), "messages"),
            (
                json!({"messages": [{"role": "system", "content": "x"}]}),
                "messages.0.role",
            ),
            (
                json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
                "tools.0.type",
            ),
            (json!({"tools": [{"name": "f"}]}), "tools.0.input_schema"),
            (
                json!({"messages": [{"role": "user", "content": [
                    {"type": "image", "source": {"type": "file", "file_id": "f_1"}}]}]}),
                "messages.0.content.0.source",
            ),
            (
                json!({"messages": [{"role": "user", "content": [
                    {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]}]}),
                "messages.0.content.0.type",
            ),
            (json!({"temperature": "hot"}), "temperature"),
            (
                json!({"mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}]}),
                "mcp_servers",
            ),
            (json!({"container": "c_1"}), "container"),
        ];
        for (extra, field) in cases {
            let body = base(extra.clone());
            match to_chat_body(body.to_string().as_bytes()) {
                Err(GatewayError::InvalidField { param, .. }) => {
                    assert!(param.starts_with(field), "{extra}: {param}")
                }
                other => panic!("{extra}: {other:?}"),
            }
        }
        assert!(matches!(
            refused(json!(["not", "an", "object"])),
            GatewayError::InvalidField { .. } | GatewayError::MalformedJson(_)
        ));
    }
}
