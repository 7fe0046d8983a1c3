//! An OpenAI chat completion as a Mistral `POST /v1/chat/completions` body, and OpenAI
//! embeddings as Mistral's `POST /v1/embeddings`.
//!
//! Mistral's body is OpenAI's in outline; what differs is what this file is about:
//! - `seed` is `random_seed`, and `tool_choice: "required"` is `"any"`;
//! - Mistral validates strictly and answers 422 to a member it does not know, so the body is
//!   rebuilt from the typed request rather than forwarded: `stream_options`, `logprobs`,
//!   `user`, `store`, `metadata` and the like never reach it (the stream's usage arrives in its
//!   last chunk without being asked for);
//! - tool call ids must be exactly 9 characters of `[a-zA-Z0-9]`; ids another provider minted
//!   (`call_…`, `toolu_…`) are mapped to valid ones by [`ToolCallIds`];
//! - `safe_prompt`, Mistral's own switch, is taken from the client's body when it sets it.
//!
//! <https://docs.mistral.ai/api/#tag/chat>, <https://docs.mistral.ai/api/#tag/embeddings>

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::GatewayError;
use crate::openai::InboundBody;
use crate::openai::request::{
    ChatMessage, ChatRequest, ContentPart, MessageContent, ResponseFormat, Role, ToolChoice,
};

pub(super) fn translate_request(model: &str, body: &InboundBody) -> Result<Bytes, GatewayError> {
    let safe_prompt = match body.field("safe_prompt") {
        None => None,
        Some(b"true") => Some(true),
        Some(b"false") => Some(false),
        Some(_) => {
            return Err(GatewayError::invalid_field(
                "safe_prompt",
                "safe_prompt must be true or false.",
            ));
        }
    };
    let request = build(model, body.chat()?, body, safe_prompt)?;
    encode(&request)
}

pub(super) fn translate_embeddings(model: &str, body: &InboundBody) -> Result<Bytes, GatewayError> {
    let request = body.embeddings()?;
    let input = request.input.texts().ok_or_else(|| {
        GatewayError::Unsupported("Mistral embeddings take text input, not token arrays".into())
    })?;
    // Floats are always asked for: a client's `encoding_format: base64` is honoured by
    // encoding them on the way back, which works whatever the model supports.
    encode(&EmbeddingsRequest {
        model,
        input,
        output_dimension: request.dimensions,
    })
}

fn encode(value: &impl Serialize) -> Result<Bytes, GatewayError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| GatewayError::Internal(format!("cannot encode the Mistral request: {e}")))
}

#[derive(Serialize)]
struct EmbeddingsRequest<'a> {
    model: &'a str,
    input: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimension: Option<u32>,
}

#[derive(Serialize)]
struct MistralRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    random_seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<WireResponseFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<WireTool<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<WireToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    safe_prompt: Option<bool>,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum WireMessage<'a> {
    System {
        content: Cow<'a, str>,
    },
    User {
        content: UserContent<'a>,
    },
    Assistant {
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<Cow<'a, str>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tool_calls: Option<Vec<WireToolCall<'a>>>,
    },
    Tool {
        content: Cow<'a, str>,
        tool_call_id: String,
        /// The called function's name, found from the call: Mistral's tool messages carry it.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
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

/// Mistral takes an `https://` URL or a base64 `data:` URL, as OpenAI does.
#[derive(Serialize)]
struct WireImageUrl<'a> {
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: String,
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
    /// Required by Mistral; a function without one takes no arguments.
    parameters: Cow<'a, RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum WireToolChoice<'a> {
    Mode(&'static str),
    Named {
        #[serde(rename = "type")]
        kind: &'static str,
        function: NamedFunction<'a>,
    },
}

#[derive(Serialize)]
struct NamedFunction<'a> {
    name: &'a str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireResponseFormat<'a> {
    Text,
    JsonObject,
    JsonSchema { json_schema: WireJsonSchema<'a> },
}

#[derive(Serialize)]
struct WireJsonSchema<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    schema: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

fn build<'a>(
    model: &'a str,
    chat: &'a ChatRequest,
    body: &InboundBody,
    safe_prompt: Option<bool>,
) -> Result<MistralRequest<'a>, GatewayError> {
    let random_seed = chat
        .seed
        .map(|seed| {
            u64::try_from(seed).map_err(|_| {
                GatewayError::invalid_field("seed", "Mistral takes a seed of 0 or more.")
            })
        })
        .transpose()?;
    Ok(MistralRequest {
        model,
        messages: messages(&chat.messages)?,
        stream: body.stream,
        max_tokens: body.max_output_tokens,
        temperature: chat.temperature,
        top_p: chat.top_p,
        stop: chat.stop.as_ref().map(|s| s.to_vec()),
        random_seed,
        presence_penalty: chat.presence_penalty,
        frequency_penalty: chat.frequency_penalty,
        n: chat.n,
        response_format: chat
            .response_format
            .as_ref()
            .map(response_format)
            .transpose()?,
        tools: chat.tools.as_deref().map(tools).transpose()?,
        tool_choice: chat.tool_choice.as_ref().map(tool_choice).transpose()?,
        parallel_tool_calls: chat.parallel_tool_calls,
        safe_prompt,
    })
}

fn messages(messages: &[ChatMessage]) -> Result<Vec<WireMessage<'_>>, GatewayError> {
    let mut ids = ToolCallIds::default();
    // Call id → function name, for the tool messages answering them.
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let wire = match message.role {
            Role::System | Role::Developer => WireMessage::System {
                content: Cow::Owned(text_of(message)),
            },
            Role::User => WireMessage::User {
                content: user_content(message.content.as_ref(), i)?,
            },
            Role::Assistant => {
                let calls = message.tool_calls.as_deref().unwrap_or_default();
                let tool_calls: Vec<WireToolCall<'_>> = calls
                    .iter()
                    .map(|call| {
                        names.insert(&call.id, &call.function.name);
                        WireToolCall {
                            id: ids.get(&call.id),
                            kind: "function",
                            function: WireFunctionCall {
                                name: &call.function.name,
                                arguments: &call.function.arguments,
                            },
                        }
                    })
                    .collect();
                let text = text_of(message);
                WireMessage::Assistant {
                    // Mistral refuses an assistant message with neither text nor calls.
                    content: (!text.is_empty() || tool_calls.is_empty())
                        .then_some(Cow::Owned(text)),
                    tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                }
            }
            Role::Tool => {
                let call_id = message.tool_call_id.as_deref().ok_or_else(|| {
                    GatewayError::invalid_field(
                        format!("messages.[{i}].tool_call_id"),
                        "A tool message needs the tool_call_id it answers.",
                    )
                })?;
                WireMessage::Tool {
                    content: Cow::Owned(text_of(message)),
                    tool_call_id: ids.get(call_id),
                    name: names.get(call_id).copied(),
                }
            }
            Role::Function => {
                return Err(GatewayError::invalid_field(
                    format!("messages.[{i}].role"),
                    "Mistral does not take the deprecated `function` role; send `tool` messages.",
                ));
            }
        };
        out.push(wire);
    }
    Ok(out)
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
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        out.push(match part {
            ContentPart::Text { text } => WirePart::Text { text },
            ContentPart::Refusal { refusal } => WirePart::Text { text: refusal },
            ContentPart::ImageUrl { image_url } => WirePart::ImageUrl {
                image_url: WireImageUrl {
                    url: &image_url.url,
                    detail: image_url.detail.as_deref(),
                },
            },
            ContentPart::InputAudio { .. } | ContentPart::File { .. } => {
                return Err(GatewayError::Unsupported(format!(
                    "messages.[{index}]: the gateway sends Mistral text and images, not audio or files"
                )));
            }
        });
    }
    Ok(UserContent::Parts(out))
}

fn tools(tools: &[crate::openai::request::Tool]) -> Result<Vec<WireTool<'_>>, GatewayError> {
    const NO_PARAMETERS: &str = r#"{"type":"object","properties":{}}"#;
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            if tool.kind != "function" {
                return Err(GatewayError::invalid_field(
                    format!("tools.[{i}].type"),
                    format!("Mistral takes function tools only, not `{}`.", tool.kind),
                ));
            }
            let function = &tool.function;
            let parameters = match function.parameters.as_deref() {
                Some(schema) => Cow::Borrowed(schema),
                None => Cow::Owned(RawValue::from_string(NO_PARAMETERS.to_owned()).map_err(
                    |e| GatewayError::Internal(format!("empty parameters schema: {e}")),
                )?),
            };
            Ok(WireTool {
                kind: "function",
                function: WireFunction {
                    name: &function.name,
                    description: function.description.as_deref(),
                    parameters,
                    strict: function.strict,
                },
            })
        })
        .collect()
}

fn tool_choice(choice: &ToolChoice) -> Result<WireToolChoice<'_>, GatewayError> {
    match choice {
        ToolChoice::Mode(mode) => match mode.as_str() {
            "auto" => Ok(WireToolChoice::Mode("auto")),
            "none" => Ok(WireToolChoice::Mode("none")),
            // Mistral's word for "call some tool".
            "required" => Ok(WireToolChoice::Mode("any")),
            other => Err(GatewayError::invalid_field(
                "tool_choice",
                format!("unknown tool_choice `{other}`; expected auto, none or required"),
            )),
        },
        ToolChoice::Named(named) => Ok(WireToolChoice::Named {
            kind: "function",
            function: NamedFunction {
                name: &named.function.name,
            },
        }),
    }
}

fn response_format(format: &ResponseFormat) -> Result<WireResponseFormat<'_>, GatewayError> {
    Ok(match format {
        ResponseFormat::Text => WireResponseFormat::Text,
        ResponseFormat::JsonObject => WireResponseFormat::JsonObject,
        ResponseFormat::JsonSchema { json_schema } => WireResponseFormat::JsonSchema {
            json_schema: WireJsonSchema {
                name: &json_schema.name,
                description: json_schema.description.as_deref(),
                schema: json_schema.schema.as_deref().ok_or_else(|| {
                    GatewayError::invalid_field(
                        "response_format.json_schema.schema",
                        "Mistral needs the schema of a json_schema response format.",
                    )
                })?,
                strict: json_schema.strict,
            },
        },
    })
}

/// Tool call ids as Mistral accepts them: 9 characters of `[a-zA-Z0-9]`.
///
/// An id already in that form (every id Mistral minted) is kept. Any other id, say one from an
/// Anthropic or Cohere history, is replaced by a hash of itself in that alphabet: the same id
/// becomes the same replacement in the call and in the result answering it, and in every later
/// request of the conversation, with no state kept. Two ids whose hashes collide within one
/// request (about one chance in 10^16) get distinct replacements all the same.
#[derive(Default)]
pub(super) struct ToolCallIds {
    mapped: HashMap<String, String>,
    taken: HashSet<String>,
}

impl ToolCallIds {
    pub(super) const LEN: usize = 9;

    pub(super) fn is_valid(id: &str) -> bool {
        id.len() == Self::LEN && id.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    pub(super) fn get(&mut self, id: &str) -> String {
        if let Some(mapped) = self.mapped.get(id) {
            return mapped.clone();
        }
        let mut mapped = if Self::is_valid(id) {
            id.to_owned()
        } else {
            hashed_id(id, 0)
        };
        let mut salt = 1;
        while self.taken.contains(&mapped) {
            mapped = hashed_id(id, salt);
            salt += 1;
        }
        self.taken.insert(mapped.clone());
        self.mapped.insert(id.to_owned(), mapped.clone());
        mapped
    }
}

/// FNV-1a (64 bits) of `salt` and `id`, written as 9 base-62 digits. Not a secret, only a
/// stable spread: the same id must give the same answer in every gateway process and version.
pub(super) fn hashed_id(id: &str, salt: u32) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in salt.to_le_bytes().iter().chain(id.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (0..ToolCallIds::LEN)
        .map(|_| {
            let digit = ALPHABET[(hash % 62) as usize];
            hash /= 62;
            char::from(digit)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::mistral::tests::{embeddings, rejected, sent};
    use serde_json::json;

    #[test]
    fn openai_options_are_renamed_and_unknown_members_left_out() {
        let body = sent(json!({
            "model": "smart", "stream": true, "stream_options": {"include_usage": true},
            "seed": 42, "logprobs": true, "top_logprobs": 2, "user": "u-1", "store": true,
            "max_completion_tokens": 100, "temperature": 0.3, "top_p": 0.9, "stop": "END", "n": 2,
            "tool_choice": "required", "parallel_tool_calls": false,
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "response_format": {"type": "json_object"}, "safe_prompt": true,
            "messages": [{"role": "developer", "content": "Be brief."},
                         {"role": "user", "content": "hi"}]
        }));
        assert_eq!(
            body,
            json!({
                "model": "mistral-small-latest", "stream": true, "max_tokens": 100,
                "temperature": 0.3, "top_p": 0.9, "stop": ["END"], "random_seed": 42, "n": 2,
                "response_format": {"type": "json_object"},
                "tools": [{"type": "function", "function": {"name": "f",
                           "parameters": {"type": "object", "properties": {}}}}],
                "tool_choice": "any", "parallel_tool_calls": false, "safe_prompt": true,
                "messages": [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "hi"}]
            })
        );
    }

    #[test]
    fn named_tool_choice_json_schema_and_images() {
        let body = sent(json!({
            "model": "smart",
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "p", "strict": true,
                                "schema": {"type": "object"}}},
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is it?"},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}}]}]
        }));
        assert_eq!(
            body["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert_eq!(
            body["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object"}, "strict": true}})
        );
        assert_eq!(
            body["messages"][0]["content"][1],
            json!({"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}})
        );
    }

    #[test]
    fn foreign_tool_call_ids_become_stable_valid_ids_and_mistral_ids_stay() {
        let history = json!({"model": "smart", "messages": [
            {"role": "user", "content": "Weather and time?"},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [
                {"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{}"}},
                {"id": "D681PevKs", "type": "function",
                 "function": {"name": "get_time", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "D681PevKs", "content": "14:05"},
            {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "21C"}
        ]});
        let body = sent(history.clone());
        let calls = &body["messages"][1]["tool_calls"];
        let mapped = calls[0]["id"].as_str().unwrap();
        assert!(ToolCallIds::is_valid(mapped), "{mapped}");
        assert_eq!(calls[1]["id"], "D681PevKs");
        assert_eq!(body["messages"][1]["content"], "Let me look.");
        // Each result names the call it answers, and its function.
        assert_eq!(
            body["messages"][2],
            json!({"role": "tool", "content": "14:05", "tool_call_id": "D681PevKs", "name": "get_time"})
        );
        assert_eq!(body["messages"][3]["tool_call_id"], mapped);
        assert_eq!(body["messages"][3]["name"], "get_weather");
        // The same history maps the same way in the next request.
        assert_eq!(sent(history)["messages"][1]["tool_calls"][0]["id"], mapped);
    }

    #[test]
    fn colliding_ids_get_distinct_replacements() {
        let mut ids = ToolCallIds::default();
        let first = ids.get("call_1");
        // A client id equal to the replacement of another is taken first by that other.
        let same_as_first = ids.get(&first);
        assert_ne!(first, same_as_first);
        assert!(ToolCallIds::is_valid(&same_as_first));
        assert_eq!(ids.get("call_1"), first);
        assert_ne!(ids.get("call_2"), first);
    }

    #[test]
    fn what_mistral_cannot_take_is_refused_as_the_clients_error() {
        let error = rejected(json!({"model": "smart", "seed": -1,
            "messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(error.body().error.param, Some("seed"));
        let error = rejected(
            json!({"model": "smart", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]}),
        );
        assert!(matches!(error, GatewayError::Unsupported(_)), "{error:?}");
        let error = rejected(json!({"model": "smart", "safe_prompt": "yes",
            "messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(error.body().error.param, Some("safe_prompt"));
        let error = rejected(json!({"model": "smart", "tool_choice": "sometimes",
            "messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(error.body().error.param, Some("tool_choice"));
    }

    #[test]
    fn embeddings_ask_for_floats_and_refuse_tokens() {
        let body = embeddings(json!({
            "model": "e", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 256
        }));
        let sent: serde_json::Value =
            serde_json::from_slice(&translate_embeddings("mistral-embed", &body).unwrap()).unwrap();
        assert_eq!(
            sent,
            json!({"model": "mistral-embed", "input": ["a", "b"], "output_dimension": 256})
        );
        let tokens = embeddings(json!({"model": "e", "input": [1, 2]}));
        assert!(translate_embeddings("mistral-embed", &tokens).is_err());
    }
}
