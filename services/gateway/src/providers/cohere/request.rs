//! An OpenAI chat completion as a Cohere `POST /v2/chat` body, and OpenAI embeddings as
//! `POST /v2/embed`.
//!
//! The roles are OpenAI's (`system`, `user`, `assistant`, `tool`); what differs:
//! - sampling options have Cohere's names: `top_p` is `p`, `stop` is `stop_sequences`;
//! - `tool_choice` is `REQUIRED` or `NONE`: "auto" is Cohere's default and sends nothing, and a
//!   named function is expressed as `REQUIRED` with only that tool offered;
//! - an assistant turn's text beside its tool calls is Cohere's `tool_plan`;
//! - a `json_schema` response format is `{"type": "json_object", "json_schema": <schema>}`;
//! - Cohere has no `n`: more than one choice is refused.
//!
//! Embeddings need an `input_type`, which OpenAI's request has no field for: it is
//! `search_document` (texts stored to be searched, the common use behind an embeddings call)
//! unless the client's body sets Cohere's own `input_type` member.
//!
//! <https://docs.cohere.com/reference/chat>, <https://docs.cohere.com/reference/embed>

use std::borrow::Cow;

use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::GatewayError;
use crate::openai::InboundBody;
use crate::openai::request::{
    ChatMessage, ChatRequest, ContentPart, MessageContent, ResponseFormat, Role, Tool, ToolChoice,
};

/// The `input_type` of embeddings whose client names none.
pub(super) const DEFAULT_INPUT_TYPE: &str = "search_document";

pub(super) fn translate_request(model: &str, body: &InboundBody) -> Result<Bytes, GatewayError> {
    encode(&build(model, body.chat()?, body)?)
}

pub(super) fn translate_embeddings(model: &str, body: &InboundBody) -> Result<Bytes, GatewayError> {
    let request = body.embeddings()?;
    let texts = request.input.texts().ok_or_else(|| {
        GatewayError::Unsupported("Cohere embeddings take text input, not token arrays".into())
    })?;
    let input_type = match body.field("input_type") {
        None => Cow::Borrowed(DEFAULT_INPUT_TYPE),
        Some(raw) => Cow::Owned(serde_json::from_slice::<String>(raw).map_err(|_| {
            GatewayError::invalid_field("input_type", "input_type must be a string.")
        })?),
    };
    encode(&EmbedRequest {
        model,
        texts,
        input_type,
        // Floats always: a client's `encoding_format: base64` is honoured on the way back.
        embedding_types: ["float"],
        output_dimension: request.dimensions,
    })
}

fn encode(value: &impl Serialize) -> Result<Bytes, GatewayError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| GatewayError::Internal(format!("cannot encode the Cohere request: {e}")))
}

#[derive(Serialize)]
struct EmbedRequest<'a> {
    model: &'a str,
    texts: Vec<&'a str>,
    input_type: Cow<'a, str>,
    embedding_types: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimension: Option<u32>,
}

#[derive(Serialize)]
struct CohereRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<WireResponseFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<WireTool<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum WireMessage<'a> {
    System {
        content: String,
    },
    User {
        content: UserContent<'a>,
    },
    Assistant {
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tool_plan: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tool_calls: Option<Vec<WireToolCall<'a>>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: String,
    },
}

#[derive(Serialize)]
#[serde(untagged)]
enum UserContent<'a> {
    Text(&'a str),
    Parts(Vec<WirePart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WirePart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: WireImageUrl<'a> },
}

/// Vision models take an `https://` URL or a base64 `data:` URL, as OpenAI does.
#[derive(Serialize)]
struct WireImageUrl<'a> {
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionCall<'a>,
}

#[derive(Serialize)]
struct WireFunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'a RawValue>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireResponseFormat<'a> {
    Text,
    JsonObject {
        #[serde(skip_serializing_if = "Option::is_none")]
        json_schema: Option<&'a RawValue>,
    },
}

fn build<'a>(
    model: &'a str,
    chat: &'a ChatRequest,
    body: &InboundBody,
) -> Result<CohereRequest<'a>, GatewayError> {
    if chat.n.is_some_and(|n| n > 1) {
        return Err(GatewayError::invalid_field(
            "n",
            "Cohere answers with one choice; n must be 1.",
        ));
    }
    let (tools, tool_choice) = tools_and_choice(chat.tools.as_deref(), chat.tool_choice.as_ref())?;
    Ok(CohereRequest {
        model,
        messages: messages(&chat.messages)?,
        stream: body.stream,
        max_tokens: body.max_output_tokens,
        temperature: chat.temperature,
        p: chat.top_p,
        seed: chat.seed,
        stop_sequences: chat.stop.as_ref().map(|s| s.to_vec()),
        frequency_penalty: chat.frequency_penalty,
        presence_penalty: chat.presence_penalty,
        response_format: chat.response_format.as_ref().map(|format| match format {
            ResponseFormat::Text => WireResponseFormat::Text,
            ResponseFormat::JsonObject => WireResponseFormat::JsonObject { json_schema: None },
            ResponseFormat::JsonSchema { json_schema } => WireResponseFormat::JsonObject {
                json_schema: json_schema.schema.as_deref(),
            },
        }),
        tools,
        tool_choice,
    })
}

/// The tools offered and Cohere's `tool_choice`.
fn tools_and_choice<'a>(
    tools: Option<&'a [Tool]>,
    choice: Option<&'a ToolChoice>,
) -> Result<(Option<Vec<WireTool<'a>>>, Option<&'static str>), GatewayError> {
    let mut offered: Vec<&Tool> = tools.unwrap_or_default().iter().collect();
    if let Some((i, tool)) = offered
        .iter()
        .enumerate()
        .find(|(_, t)| t.kind != "function")
    {
        return Err(GatewayError::invalid_field(
            format!("tools.[{i}].type"),
            format!("Cohere takes function tools only, not `{}`.", tool.kind),
        ));
    }
    let choice = match choice {
        None => None,
        Some(ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => None,
            "none" => Some("NONE"),
            "required" => Some("REQUIRED"),
            other => {
                return Err(GatewayError::invalid_field(
                    "tool_choice",
                    format!("unknown tool_choice `{other}`; expected auto, none or required"),
                ));
            }
        },
        // Cohere cannot name the function to call: offering only that one, required, can.
        Some(ToolChoice::Named(named)) => {
            offered.retain(|t| t.function.name == named.function.name);
            if offered.is_empty() {
                return Err(GatewayError::invalid_field(
                    "tool_choice",
                    format!(
                        "tool_choice names `{}`, which is not among the tools",
                        named.function.name
                    ),
                ));
            }
            Some("REQUIRED")
        }
    };
    let tools = (!offered.is_empty()).then(|| {
        offered
            .into_iter()
            .map(|tool| WireTool {
                kind: "function",
                function: WireFunction {
                    name: &tool.function.name,
                    description: tool.function.description.as_deref(),
                    parameters: tool.function.parameters.as_deref(),
                },
            })
            .collect()
    });
    Ok((tools, choice))
}

fn messages(messages: &[ChatMessage]) -> Result<Vec<WireMessage<'_>>, GatewayError> {
    messages
        .iter()
        .enumerate()
        .map(|(i, message)| {
            Ok(match message.role {
                Role::System | Role::Developer => WireMessage::System {
                    content: text_of(message),
                },
                Role::User => WireMessage::User {
                    content: user_content(message.content.as_ref(), i)?,
                },
                Role::Assistant => {
                    let calls: Vec<WireToolCall<'_>> = message
                        .tool_calls
                        .iter()
                        .flatten()
                        .map(|call| WireToolCall {
                            id: &call.id,
                            kind: "function",
                            function: WireFunctionCall {
                                name: &call.function.name,
                                arguments: &call.function.arguments,
                            },
                        })
                        .collect();
                    let text = text_of(message);
                    if calls.is_empty() {
                        WireMessage::Assistant {
                            content: Some(text),
                            tool_plan: None,
                            tool_calls: None,
                        }
                    } else {
                        // Text said before calling tools is what Cohere calls the tool plan.
                        WireMessage::Assistant {
                            content: None,
                            tool_plan: (!text.is_empty()).then_some(text),
                            tool_calls: Some(calls),
                        }
                    }
                }
                Role::Tool => WireMessage::Tool {
                    tool_call_id: message.tool_call_id.as_deref().ok_or_else(|| {
                        GatewayError::invalid_field(
                            format!("messages.[{i}].tool_call_id"),
                            "A tool message needs the tool_call_id it answers.",
                        )
                    })?,
                    content: text_of(message),
                },
                Role::Function => {
                    return Err(GatewayError::invalid_field(
                        format!("messages.[{i}].role"),
                        "Cohere does not take the deprecated `function` role; send `tool` messages.",
                    ));
                }
            })
        })
        .collect()
}

fn text_of(message: &ChatMessage) -> String {
    match &message.content {
        None => String::new(),
        Some(MessageContent::Text(text)) => text.clone(),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .filter_map(|part| match part {
                ContentPart::Text { text } => Some(text.as_str()),
                ContentPart::Refusal { refusal } => Some(refusal.as_str()),
                _ => None,
            })
            .collect(),
    }
}

fn user_content(
    content: Option<&MessageContent>,
    index: usize,
) -> Result<UserContent<'_>, GatewayError> {
    let parts = match content {
        None => return Ok(UserContent::Text("")),
        Some(MessageContent::Text(text)) => return Ok(UserContent::Text(text)),
        Some(MessageContent::Parts(parts)) => parts,
    };
    parts
        .iter()
        .map(|part| match part {
            ContentPart::Text { text } => Ok(WirePart::Text { text }),
            ContentPart::Refusal { refusal } => Ok(WirePart::Text { text: refusal }),
            ContentPart::ImageUrl { image_url } => Ok(WirePart::ImageUrl {
                image_url: WireImageUrl {
                    url: &image_url.url,
                    detail: image_url.detail.as_deref(),
                },
            }),
            ContentPart::InputAudio { .. } | ContentPart::File { .. } => {
                Err(GatewayError::Unsupported(format!(
                    "messages.[{index}]: Cohere's chat takes text and images, not audio or files"
                )))
            }
        })
        .collect::<Result<_, _>>()
        .map(UserContent::Parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::cohere::tests::{embeddings, rejected, sent};
    use serde_json::json;

    #[test]
    fn openai_options_take_cohere_names_and_others_are_left_out() {
        let body = sent(json!({
            "model": "smart", "stream": true, "stream_options": {"include_usage": true},
            "max_completion_tokens": 100, "temperature": 0.3, "top_p": 0.9, "seed": 42,
            "stop": ["END", "STOP"], "user": "u-1", "logprobs": true, "parallel_tool_calls": true,
            "frequency_penalty": 0.5, "presence_penalty": 0.1,
            "response_format": {"type": "json_object"},
            "messages": [{"role": "developer", "content": "Be brief."},
                         {"role": "user", "content": "hi"}]
        }));
        assert_eq!(
            body,
            json!({
                "model": "command-a-03-2025", "stream": true, "max_tokens": 100,
                "temperature": 0.3, "p": 0.9, "seed": 42, "stop_sequences": ["END", "STOP"],
                "frequency_penalty": 0.5, "presence_penalty": 0.1,
                "response_format": {"type": "json_object"},
                "messages": [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "hi"}]
            })
        );
    }

    fn weather_and_time_tools(choice: serde_json::Value) -> serde_json::Value {
        json!({"model": "smart", "tool_choice": choice,
            "tools": [
                {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                 "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "get_time"}}],
            "messages": [{"role": "user", "content": "hi"}]})
    }

    #[test]
    fn tool_choice_is_required_or_none_and_a_named_function_is_offered_alone() {
        let body = sent(weather_and_time_tools(json!("required")));
        assert_eq!(body["tool_choice"], "REQUIRED");
        assert_eq!(body["tools"].as_array().unwrap().len(), 2);
        assert_eq!(
            body["tools"][0],
            json!({"type": "function", "function": {"name": "get_weather", "description": "Weather",
                   "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}})
        );
        assert_eq!(
            sent(weather_and_time_tools(json!("none")))["tool_choice"],
            "NONE"
        );
        assert!(
            sent(weather_and_time_tools(json!("auto")))
                .get("tool_choice")
                .is_none()
        );
        let named = sent(weather_and_time_tools(
            json!({"type": "function", "function": {"name": "get_time"}}),
        ));
        assert_eq!(named["tool_choice"], "REQUIRED");
        assert_eq!(
            named["tools"],
            json!([{"type": "function", "function": {"name": "get_time"}}])
        );
        let missing = rejected(weather_and_time_tools(
            json!({"type": "function", "function": {"name": "nope"}}),
        ));
        assert_eq!(missing.body().error.param, Some("tool_choice"));
    }

    #[test]
    fn assistant_text_beside_tool_calls_is_the_tool_plan() {
        let body = sent(json!({"model": "smart", "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "I will look it up.", "tool_calls": [
                {"id": "toolu_01A", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "toolu_01A", "content": [{"type": "text", "text": "21C"}]},
            {"role": "assistant", "content": "It is 21C."}
        ]}));
        assert_eq!(
            body["messages"][1],
            json!({"role": "assistant", "tool_plan": "I will look it up.", "tool_calls": [
                {"id": "toolu_01A", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{}"}}]})
        );
        assert_eq!(
            body["messages"][2],
            json!({"role": "tool", "tool_call_id": "toolu_01A", "content": "21C"})
        );
        assert_eq!(
            body["messages"][3],
            json!({"role": "assistant", "content": "It is 21C."})
        );
    }

    #[test]
    fn a_json_schema_is_cohere_json_object_with_its_schema() {
        let body = sent(json!({"model": "smart",
            "response_format": {"type": "json_schema", "json_schema": {"name": "p",
                "schema": {"type": "object", "required": ["age"]}}},
            "messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(
            body["response_format"],
            json!({"type": "json_object", "json_schema": {"type": "object", "required": ["age"]}})
        );
    }

    #[test]
    fn what_cohere_cannot_take_is_refused_as_the_clients_error() {
        let error = rejected(json!({"model": "smart", "n": 2,
            "messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(error.body().error.param, Some("n"));
        let error = rejected(
            json!({"model": "smart", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]}),
        );
        assert!(matches!(error, GatewayError::Unsupported(_)), "{error:?}");
        let error = rejected(json!({"model": "smart",
            "messages": [{"role": "tool", "content": "x"}]}));
        assert_eq!(error.body().error.param, Some("messages.[0].tool_call_id"));
    }

    #[test]
    fn embeddings_default_to_search_documents_and_ask_for_floats() {
        let request = |body| -> serde_json::Value {
            serde_json::from_slice(&translate_embeddings("embed-v4.0", &embeddings(body)).unwrap())
                .unwrap()
        };
        assert_eq!(
            request(json!({"model": "e", "input": "a", "encoding_format": "base64"})),
            json!({"model": "embed-v4.0", "texts": ["a"], "input_type": "search_document",
                   "embedding_types": ["float"]})
        );
        let query = request(json!({"model": "e", "input": ["a", "b"], "dimensions": 256,
                                   "input_type": "search_query"}));
        assert_eq!(query["input_type"], "search_query");
        assert_eq!(query["output_dimension"], 256);
        assert!(
            translate_embeddings("e", &embeddings(json!({"model": "e", "input": [1, 2]}))).is_err()
        );
        let bad = translate_embeddings(
            "e",
            &embeddings(json!({"model": "e", "input": "a", "input_type": 3})),
        );
        assert!(bad.is_err());
    }
}
