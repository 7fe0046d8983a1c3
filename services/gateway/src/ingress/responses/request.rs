//! An OpenAI Responses request as the chat request the pipeline runs.
//!
//! The gateway keeps no conversation state, so this is the Responses API's stateless subset:
//! the whole conversation comes in `input` (a string, or items: messages, function calls and
//! their outputs), and `previous_response_id` or item references are refused with a 400 that
//! says so. `instructions` become the system message; function tools, `tool_choice`,
//! `text.format` and the sampling fields carry over; reasoning items from earlier turns are
//! dropped, since only the model that wrote them can read them back.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::error::GatewayError;
use crate::ingress::{FieldPath, json_value, parse_typed};

#[derive(Debug, Deserialize)]
struct ResponsesRequest {
    model: String,
    input: Input,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    previous_response_id: Option<String>,
    #[serde(default)]
    conversation: Option<Box<RawValue>>,
    #[serde(default)]
    background: Option<bool>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    max_output_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<serde_json::Number>,
    #[serde(default)]
    top_p: Option<serde_json::Number>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default)]
    tool_choice: Option<ToolChoice>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    text: Option<TextOptions>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    safety_identifier: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    Text(String),
    Items(Vec<Item>),
}

/// An input item. A message may leave out `type`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Item {
    Typed(TypedItem),
    Message(Message),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TypedItem {
    Message(Message),
    FunctionCall {
        call_id: String,
        name: String,
        arguments: String,
    },
    FunctionCallOutput {
        call_id: String,
        output: ToolOutput,
    },
    /// Reasoning from an earlier turn: only the model that wrote it can read it back.
    Reasoning {},
    /// A reference to a stored item; nothing is stored here.
    ItemReference {},
    /// Built-in tools' calls and outputs (web search, file search, computer use...), which
    /// only OpenAI's own API runs.
    #[serde(other)]
    Unsupported,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: Role,
    content: Content,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Role {
    User,
    Assistant,
    System,
    Developer,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::Developer => "developer",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part {
    InputText {
        text: String,
    },
    /// An earlier answer's text, echoed back in history.
    OutputText {
        text: String,
    },
    Refusal {
        refusal: String,
    },
    InputImage {
        #[serde(default)]
        image_url: Option<String>,
        #[serde(default)]
        detail: Option<String>,
    },
    InputFile {
        #[serde(default)]
        file_data: Option<String>,
        #[serde(default)]
        filename: Option<String>,
    },
    #[serde(other)]
    Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ToolOutput {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Tool {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Box<RawValue>>,
    #[serde(default)]
    strict: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ToolChoice {
    /// `none`, `auto` or `required`.
    Mode(String),
    Function {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        name: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
struct TextOptions {
    #[serde(default)]
    format: Option<Format>,
}

#[derive(Debug, Deserialize)]
struct Format {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    schema: Option<Box<RawValue>>,
    #[serde(default)]
    strict: Option<bool>,
}

/// The OpenAI chat body for a Responses body.
pub fn to_chat_body(raw: &[u8]) -> Result<Bytes, GatewayError> {
    let request: ResponsesRequest = parse_typed(raw, FieldPath::Indexed)?;
    if request.previous_response_id.is_some() || request.conversation.is_some() {
        let field = if request.previous_response_id.is_some() {
            "previous_response_id"
        } else {
            "conversation"
        };
        return Err(GatewayError::invalid_field(
            field,
            format!(
                "`{field}` is not supported: Tollgate does not store responses. Send the whole \
                 conversation in `input` instead (earlier outputs and function call outputs \
                 included)."
            ),
        ));
    }
    if request.background == Some(true) {
        return Err(GatewayError::invalid_field(
            "background",
            "`background` responses are not supported: Tollgate does not store responses.",
        ));
    }
    let mut messages = Vec::new();
    if let Some(instructions) = request.instructions.filter(|i| !i.is_empty()) {
        messages.push(json!({"role": "system", "content": instructions}));
    }
    match request.input {
        Input::Text(text) => messages.push(json!({"role": "user", "content": text})),
        Input::Items(items) => {
            for (i, item) in items.into_iter().enumerate() {
                let item = match item {
                    Item::Typed(item) => item,
                    Item::Message(message) => TypedItem::Message(message),
                };
                add_item(i, item, &mut messages)?;
            }
        }
    }
    if messages.is_empty() {
        return Err(GatewayError::invalid_field(
            "input",
            "`input` must contain at least one item.",
        ));
    }
    let mut chat = Map::new();
    chat.insert("model".into(), Value::String(request.model));
    chat.insert("messages".into(), Value::Array(messages));
    if let Some(max) = request.max_output_tokens {
        chat.insert("max_tokens".into(), json!(max));
    }
    if let Some(temperature) = request.temperature {
        chat.insert("temperature".into(), Value::Number(temperature));
    }
    if let Some(top_p) = request.top_p {
        chat.insert("top_p".into(), Value::Number(top_p));
    }
    if let Some(user) = request.safety_identifier.or(request.user) {
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
        if let Some(parallel) = request.parallel_tool_calls {
            chat.insert("parallel_tool_calls".into(), Value::Bool(parallel));
        }
    }
    if let Some(choice) = request.tool_choice {
        chat.insert("tool_choice".into(), tool_choice(choice)?);
    }
    if let Some(format) = request.text.and_then(|t| t.format) {
        chat.insert("response_format".into(), response_format(format)?);
    }
    if request.stream.unwrap_or(false) {
        chat.insert("stream".into(), Value::Bool(true));
        // `response.completed` carries the usage, which only the last OpenAI chunk has.
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    // Serializing a tree of plain JSON values cannot fail.
    Ok(Bytes::from(
        serde_json::to_vec(&Value::Object(chat)).unwrap_or_default(),
    ))
}

fn add_item(i: usize, item: TypedItem, messages: &mut Vec<Value>) -> Result<(), GatewayError> {
    match item {
        TypedItem::Message(message) => {
            let content = match message.content {
                Content::Text(text) => Value::String(text),
                Content::Parts(parts) if message.role == Role::Assistant => {
                    // Earlier answers are text for every provider.
                    let mut text = String::new();
                    for (j, part) in parts.into_iter().enumerate() {
                        match part {
                            Part::OutputText { text: t } | Part::InputText { text: t } => {
                                text.push_str(&t)
                            }
                            Part::Refusal { refusal } => text.push_str(&refusal),
                            _ => return Err(unsupported_part(i, j, "assistant")),
                        }
                    }
                    Value::String(text)
                }
                Content::Parts(parts) => Value::Array(
                    parts
                        .into_iter()
                        .enumerate()
                        .map(|(j, part)| content_part(i, j, part))
                        .collect::<Result<_, _>>()?,
                ),
            };
            messages.push(json!({"role": message.role.as_str(), "content": content}));
        }
        TypedItem::FunctionCall {
            call_id,
            name,
            arguments,
        } => {
            let call = json!({"id": call_id, "type": "function",
                              "function": {"name": name, "arguments": arguments}});
            // Calls made in one turn belong to one assistant message.
            match messages.last_mut() {
                Some(last) if last["role"] == "assistant" => {
                    match last.get_mut("tool_calls").and_then(Value::as_array_mut) {
                        Some(calls) => calls.push(call),
                        None => last["tool_calls"] = json!([call]),
                    }
                }
                _ => messages.push(json!({"role": "assistant", "content": null,
                                          "tool_calls": [call]})),
            }
        }
        TypedItem::FunctionCallOutput { call_id, output } => {
            let output = match output {
                ToolOutput::Text(text) => text,
                ToolOutput::Parts(parts) => {
                    let mut text = String::new();
                    for (j, part) in parts.into_iter().enumerate() {
                        match part {
                            Part::InputText { text: t } | Part::OutputText { text: t } => {
                                text.push_str(&t)
                            }
                            _ => return Err(unsupported_part(i, j, "function_call_output")),
                        }
                    }
                    text
                }
            };
            messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": output}));
        }
        TypedItem::Reasoning {} => {}
        TypedItem::ItemReference {} => {
            return Err(GatewayError::invalid_field(
                format!("input[{i}]"),
                format!(
                    "input[{i}]: item references are not supported: Tollgate does not store \
                     responses; send the item itself."
                ),
            ));
        }
        TypedItem::Unsupported => {
            return Err(GatewayError::invalid_field(
                format!("input[{i}].type"),
                format!(
                    "input[{i}].type: only message, function_call, function_call_output and \
                     reasoning items can be sent through Tollgate."
                ),
            ));
        }
    }
    Ok(())
}

fn content_part(i: usize, j: usize, part: Part) -> Result<Value, GatewayError> {
    match part {
        Part::InputText { text } | Part::OutputText { text } => {
            Ok(json!({"type": "text", "text": text}))
        }
        Part::Refusal { refusal } => Ok(json!({"type": "text", "text": refusal})),
        Part::InputImage {
            image_url: Some(url),
            detail,
        } => {
            let mut image = json!({"url": url});
            if let Some(detail) = detail {
                image["detail"] = Value::String(detail);
            }
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        Part::InputFile {
            file_data: Some(data),
            filename,
        } => Ok(json!({"type": "file", "file": {
            "file_data": data,
            "filename": filename.unwrap_or_else(|| "document.pdf".to_owned()),
        }})),
        Part::InputImage { .. } | Part::InputFile { .. } => Err(GatewayError::invalid_field(
            format!("input[{i}].content[{j}]"),
            format!(
                "input[{i}].content[{j}]: images and files must be sent inline (image_url or \
                 file_data); file ids exist only in OpenAI's own storage."
            ),
        )),
        Part::Unsupported => Err(unsupported_part(i, j, "user")),
    }
}

fn unsupported_part(i: usize, j: usize, role: &str) -> GatewayError {
    GatewayError::invalid_field(
        format!("input[{i}].content[{j}].type"),
        format!("input[{i}].content[{j}].type: this content type cannot be sent in a {role} item."),
    )
}

fn function_tool(i: usize, tool: Tool) -> Result<Value, GatewayError> {
    if tool.kind != "function" {
        return Err(GatewayError::invalid_field(
            format!("tools[{i}].type"),
            format!(
                "tools[{i}].type: `{}` is one of OpenAI's built-in tools, which only OpenAI's \
                 own API runs; declare a function tool instead.",
                tool.kind
            ),
        ));
    }
    let Some(name) = tool.name else {
        return Err(GatewayError::invalid_field(
            format!("tools[{i}].name"),
            format!("tools[{i}].name: a function tool needs a name."),
        ));
    };
    let mut function = json!({"name": name});
    if let Some(description) = tool.description {
        function["description"] = Value::String(description);
    }
    if let Some(parameters) = tool.parameters {
        function["parameters"] = json_value(&format!("tools[{i}].parameters"), &parameters)?;
    }
    if let Some(strict) = tool.strict {
        function["strict"] = Value::Bool(strict);
    }
    Ok(json!({"type": "function", "function": function}))
}

fn tool_choice(choice: ToolChoice) -> Result<Value, GatewayError> {
    match choice {
        ToolChoice::Mode(mode) if matches!(mode.as_str(), "none" | "auto" | "required") => {
            Ok(Value::String(mode))
        }
        ToolChoice::Function {
            kind,
            name: Some(name),
        } if kind == "function" => Ok(json!({"type": "function", "function": {"name": name}})),
        _ => Err(GatewayError::invalid_field(
            "tool_choice",
            "`tool_choice` must be none, auto, required or {\"type\": \"function\", \"name\": ...}.",
        )),
    }
}

fn response_format(format: Format) -> Result<Value, GatewayError> {
    match format.kind.as_str() {
        "text" => Ok(json!({"type": "text"})),
        "json_object" => Ok(json!({"type": "json_object"})),
        "json_schema" => {
            let Some(name) = format.name else {
                return Err(GatewayError::invalid_field(
                    "text.format.name",
                    "`text.format.name` is required for a json_schema format.",
                ));
            };
            let mut schema = json!({"name": name});
            if let Some(description) = format.description {
                schema["description"] = Value::String(description);
            }
            if let Some(body) = format.schema {
                schema["schema"] = json_value("text.format.schema", &body)?;
            }
            if let Some(strict) = format.strict {
                schema["strict"] = Value::Bool(strict);
            }
            Ok(json!({"type": "json_schema", "json_schema": schema}))
        }
        other => Err(GatewayError::invalid_field(
            "text.format.type",
            format!(
                "text.format.type: unknown format `{other}`; expected text, json_object or json_schema."
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> Value {
        serde_json::from_slice(&to_chat_body(body.to_string().as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn a_string_input_with_instructions() {
        let out = chat(
            json!({"model": "m", "input": "Hi", "instructions": "Be brief.",
                              "max_output_tokens": 50, "temperature": 0.2, "store": true}),
        );
        assert_eq!(
            out,
            json!({"model": "m", "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"}],
                "max_tokens": 50, "temperature": 0.2})
        );
    }

    #[test]
    fn items_with_function_calls_and_outputs_become_chat_turns() {
        let out = chat(json!({"model": "m", "stream": true,
        "tools": [{"type": "function", "name": "weather", "strict": true,
                   "parameters": {"type": "object", "properties": {}}}],
        "tool_choice": {"type": "function", "name": "weather"},
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}},
        "input": [
            {"role": "user", "content": [
                {"type": "input_text", "text": "Weather?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "low"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"},
            {"type": "function_call", "call_id": "call_2", "name": "weather", "arguments": "{\"x\":1}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "rain"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Sunny."}]},
        ]}));
        let messages = out["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 5, "{out}");
        assert_eq!(messages[0]["content"][1]["image_url"]["detail"], "low");
        assert_eq!(messages[1]["tool_calls"].as_array().unwrap().len(), 2);
        assert_eq!(
            messages[1]["tool_calls"][1]["function"]["arguments"],
            "{\"x\":1}"
        );
        assert_eq!(
            messages[2],
            json!({"role": "tool", "tool_call_id": "call_1", "content": "sunny"})
        );
        assert_eq!(messages[3]["content"], "rain");
        assert_eq!(
            messages[4],
            json!({"role": "assistant", "content": "Sunny."})
        );
        assert_eq!(out["tools"][0]["function"]["strict"], true);
        assert_eq!(out["tool_choice"]["function"]["name"], "weather");
        assert_eq!(out["response_format"]["json_schema"]["name"], "w");
        assert_eq!(out["stream_options"]["include_usage"], true);
    }

    #[test]
    fn what_needs_stored_state_or_built_in_tools_is_refused_naming_the_field() {
        let cases = [
            (
                json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}),
                "previous_response_id",
            ),
            (
                json!({"model": "m", "input": "x", "background": true}),
                "background",
            ),
            (
                json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}),
                "input[0]",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}),
                "tools[0].type",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}),
                "input[0].content[0]",
            ),
            (json!({"model": "m", "input": []}), "input"),
            (json!({"model": "m"}), "input"),
            (
                json!({"model": "m", "input": "x", "tool_choice": "sometimes"}),
                "tool_choice",
            ),
        ];
        for (body, field) in cases {
            match to_chat_body(body.to_string().as_bytes()) {
                Err(GatewayError::InvalidField { param, message }) => {
                    assert!(
                        param.starts_with(field.split('[').next().unwrap()),
                        "{body}: {param}"
                    );
                    assert!(!message.is_empty());
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
