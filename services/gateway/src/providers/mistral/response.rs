//! Mistral's answers, embeddings and error bodies in OpenAI's terms.
//!
//! A Mistral completion looks like OpenAI's, yet it is rebuilt rather than handed on: reasoning
//! models answer with an array of content chunks (`thinking` and `text`), arguments may come as
//! a JSON object rather than text, and `finish_reason` has Mistral's own values
//! (`model_length`, `error`). Error bodies are `{"object": "error", "message", "type", "param",
//! "code"}`, where a 422's `message` may itself hold the validation details.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

#[cfg(test)]
use super::request::ToolCallIds;
use super::request::hashed_id;
use crate::openai::InboundBody;
use crate::openai::request::{FunctionCall, ToolCall};
use crate::openai::response::{
    AssistantMessage, ChatCompletion, Choice, Embedding, EmbeddingVector, EmbeddingsResponse,
    EmbeddingsUsage, Usage, unix_now,
};
use crate::providers::{Translated, UpstreamErrorDetails, plain_error_text};

#[derive(Deserialize)]
struct MistralCompletion {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    created: Option<u64>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<MistralChoice>,
    #[serde(default)]
    usage: Option<MistralUsage>,
}

#[derive(Deserialize)]
struct MistralChoice {
    #[serde(default)]
    index: Option<u32>,
    message: MistralMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct MistralMessage {
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    tool_calls: Option<Vec<MistralToolCall>>,
}

/// Text, or chunks of which only the `text` ones are the answer (`thinking` chunks are the
/// model's reasoning, which OpenAI's completion has no place for).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Content {
    Text(String),
    Chunks(Vec<ContentChunk>),
}

#[derive(Deserialize)]
pub(super) struct ContentChunk {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

impl Content {
    pub(super) fn into_text(self) -> String {
        match self {
            Content::Text(text) => text,
            Content::Chunks(chunks) => chunks
                .into_iter()
                .filter(|c| c.kind.as_deref().is_none_or(|k| k == "text"))
                .filter_map(|c| c.text)
                .collect(),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct MistralToolCall {
    #[serde(default)]
    pub(super) id: Option<String>,
    pub(super) function: MistralFunction,
}

#[derive(Deserialize)]
pub(super) struct MistralFunction {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) arguments: Option<Arguments>,
}

/// Mistral documents arguments as text, and its SDKs also accept an object. (A `Value`, not a
/// `RawValue`: serde cannot hand a `RawValue` through an untagged enum, which buffers first.)
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Arguments {
    Text(String),
    Json(Value),
}

impl Arguments {
    pub(super) fn into_text(self) -> String {
        match self {
            Arguments::Text(text) => text,
            Arguments::Json(json) => json.to_string(),
        }
    }
}

#[derive(Deserialize, Clone, Copy)]
pub(super) struct MistralUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize, Clone, Copy)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: u64,
}

impl MistralUsage {
    pub(super) fn usage(self) -> Usage {
        let cached = self.prompt_tokens_details.map_or(0, |d| d.cached_tokens);
        Usage::new(self.prompt_tokens, self.completion_tokens, cached)
    }
}

/// OpenAI's finish reason for Mistral's; an `error` finish is a failed generation.
pub(super) fn finish_reason(reason: Option<&str>) -> Result<&'static str, String> {
    match reason {
        Some("length" | "model_length") => Ok("length"),
        Some("tool_calls") => Ok("tool_calls"),
        Some("error") => Err("Mistral reported an error while generating the answer".into()),
        _ => Ok("stop"),
    }
}

/// An id in Mistral's form for the `n`th call of the answer `answer_id`, for a call that came
/// without one. Derived, not random, so that the same answer always reads the same, however
/// its stream was split.
pub(super) fn minted_call_id(answer_id: &str, n: usize) -> String {
    hashed_id(&format!("{answer_id}#{n}"), 0)
}

pub(super) fn translate_response(model: &str, body: &[u8]) -> Result<Translated, String> {
    let completion: MistralCompletion = serde_json::from_slice(body)
        .map_err(|e| format!("Mistral answered with a body we cannot read: {e}"))?;
    let answer_id = completion.id.clone().unwrap_or_default();
    let mut choices = Vec::with_capacity(completion.choices.len());
    let mut minted = 0;
    for (choice, position) in completion.choices.into_iter().zip(0u32..) {
        let calls: Vec<ToolCall> = choice
            .message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(|call| ToolCall {
                id: call.id.unwrap_or_else(|| {
                    minted += 1;
                    minted_call_id(&answer_id, minted)
                }),
                kind: "function".into(),
                function: FunctionCall {
                    name: call.function.name.unwrap_or_default(),
                    arguments: call
                        .function
                        .arguments
                        .map_or_else(|| "{}".to_owned(), Arguments::into_text),
                },
            })
            .collect();
        let text = choice.message.content.map(Content::into_text);
        choices.push(Choice {
            index: choice.index.unwrap_or(position),
            finish_reason: Some(finish_reason(choice.finish_reason.as_deref())?.to_owned()),
            message: AssistantMessage {
                role: "assistant".into(),
                content: text.filter(|t| !t.is_empty() || calls.is_empty()),
                tool_calls: (!calls.is_empty()).then_some(calls),
                refusal: None,
            },
            logprobs: None,
        });
    }
    let usage = completion.usage.map(MistralUsage::usage);
    let out = ChatCompletion {
        id: completion
            .id
            .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string()),
        object: "chat.completion".into(),
        created: completion.created.unwrap_or_else(unix_now),
        model: completion.model.unwrap_or_else(|| model.to_owned()),
        choices,
        usage,
    };
    let bytes =
        serde_json::to_vec(&out).map_err(|e| format!("cannot encode the completion: {e}"))?;
    Ok(Translated {
        body: Bytes::from(bytes),
        usage: usage.map(|u| u.tokens()),
    })
}

pub(super) fn translate_embeddings(
    model: &str,
    request: &InboundBody,
    body: &[u8],
) -> Result<Translated, String> {
    #[derive(Deserialize)]
    struct MistralEmbeddings {
        data: Vec<MistralEmbedding>,
        #[serde(default)]
        model: Option<String>,
        #[serde(default)]
        usage: Option<MistralUsage>,
    }
    #[derive(Deserialize)]
    struct MistralEmbedding {
        #[serde(default)]
        index: Option<u32>,
        embedding: Vec<f32>,
    }
    let base64 = request
        .embeddings()
        .is_ok_and(|r| r.encoding_format.as_deref() == Some("base64"));
    let response: MistralEmbeddings = serde_json::from_slice(body)
        .map_err(|e| format!("Mistral answered embeddings with a body we cannot read: {e}"))?;
    let data = response
        .data
        .into_iter()
        .zip(0u32..)
        .map(|(embedding, position)| Embedding {
            object: "embedding".into(),
            index: embedding.index.unwrap_or(position),
            embedding: EmbeddingVector::encode(embedding.embedding, base64),
        })
        .collect();
    let usage = response.usage.map(MistralUsage::usage);
    let prompt_tokens = usage.map_or(0, |u| u.prompt_tokens);
    let out = EmbeddingsResponse {
        object: "list".into(),
        data,
        model: response.model.unwrap_or_else(|| model.to_owned()),
        usage: EmbeddingsUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    };
    let bytes =
        serde_json::to_vec(&out).map_err(|e| format!("cannot encode the embeddings: {e}"))?;
    Ok(Translated {
        body: Bytes::from(bytes),
        usage: usage.map(|u| u.tokens()),
    })
}

/// Mistral's error bodies: `{"object":"error","message":...,"type","param","code"}`; a 422's
/// `message` (or, from some routes, a top-level `detail`) lists what failed validation, as
/// `{"detail": [{"loc": ["body", "messages", 1, ...], "msg": ..., "type": ...}]}`.
pub(super) fn error_details(status: u16, body: &[u8]) -> UpstreamErrorDetails {
    #[derive(Deserialize)]
    struct MistralError {
        #[serde(default)]
        message: Option<Value>,
        #[serde(default)]
        detail: Option<Value>,
        #[serde(default, rename = "type")]
        kind: Option<String>,
        #[serde(default)]
        param: Option<String>,
        #[serde(default)]
        code: Option<Value>,
        /// OpenAI's envelope, as a proxy in front of Mistral may write it.
        #[serde(default)]
        error: Option<Value>,
    }
    let Ok(error) = serde_json::from_slice::<MistralError>(body) else {
        return UpstreamErrorDetails {
            message: plain_error_text(status, body),
            kind: Some(kind_for_status(status).into()),
            ..UpstreamErrorDetails::default()
        };
    };
    let (message, validation_param) = match (&error.message, &error.detail) {
        (Some(Value::String(message)), _) => (Some(message.clone()), None),
        (Some(Value::Object(inner)), _) => validation(inner.get("detail")),
        (_, Some(detail)) => validation(Some(detail)),
        _ => (
            error
                .error
                .as_ref()
                .and_then(|e| e["message"].as_str())
                .map(str::to_owned),
            None,
        ),
    };
    let kind = match error.kind.as_deref() {
        Some("rate_limited") => "rate_limit_error",
        _ => kind_for_status(status),
    };
    let code = match error.code {
        Some(Value::String(code)) => Some(code),
        Some(Value::Number(code)) => Some(code.to_string()),
        // Mistral's `type` is often more precise than the status (`invalid_request_message_order`).
        _ => error.kind.filter(|k| k != kind),
    };
    UpstreamErrorDetails {
        // A blank message would reach the client as an error that says nothing.
        message: message
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| format!("upstream returned status {status}")),
        kind: Some(kind.into()),
        param: error.param.or(validation_param),
        code,
        retry_after: None,
    }
}

/// A validation `detail` list as one message, and the first failing field as the param.
fn validation(detail: Option<&Value>) -> (Option<String>, Option<String>) {
    let Some(items) = detail.and_then(Value::as_array) else {
        return (detail.and_then(Value::as_str).map(str::to_owned), None);
    };
    let mut first_param = None;
    let problems: Vec<String> = items
        .iter()
        .map(|item| {
            let path: Vec<String> = item["loc"]
                .as_array()
                .map(|loc| {
                    loc.iter()
                        .filter(|part| part.as_str() != Some("body"))
                        .map(|part| match part {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let path = path.join(".");
            let msg = item["msg"].as_str().unwrap_or("invalid");
            if first_param.is_none() && !path.is_empty() {
                first_param = Some(path.clone());
            }
            if path.is_empty() {
                msg.to_owned()
            } else {
                format!("{path}: {msg}")
            }
        })
        .collect();
    (
        (!problems.is_empty()).then(|| format!("Invalid request: {}", problems.join("; "))),
        first_param,
    )
}

fn kind_for_status(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        _ => "server_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ProviderAdapter;
    use crate::providers::mistral::tests::{adapter, embeddings};
    use crate::providers::tests_support::fixture;
    use serde_json::json;

    fn completion(name: &str) -> (Value, Option<tollgate_common::TokenUsage>) {
        let translated = adapter()
            .chat_response("mistral-large-latest", &fixture("mistral", name))
            .unwrap();
        (
            serde_json::from_slice(&translated.body).unwrap(),
            translated.usage,
        )
    }

    #[test]
    fn a_completion_is_rebuilt_with_its_usage() {
        let (body, usage) = completion("chat_completion.json");
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["id"], "cmpl-e5cc70bb28c444948073e77776eb30ef");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        let usage = usage.unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (16, 34));
    }

    #[test]
    fn reasoning_chunks_are_left_out_and_object_arguments_become_text() {
        let (body, _) = completion("chat_completion_thinking.json");
        assert_eq!(body["choices"][0]["message"]["content"], "The answer is 4.");
        let body = br#"{"choices":[{"message":{"tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},"finish_reason":"tool_calls"}]}"#;
        let out: Value =
            serde_json::from_slice(&adapter().chat_response("m", body).unwrap().body).unwrap();
        let call = &out["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["arguments"], r#"{"a":1}"#);
        assert!(
            ToolCallIds::is_valid(call["id"].as_str().unwrap()),
            "{call}"
        );
        assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
    }

    #[test]
    fn an_error_finish_fails_the_target_and_model_length_is_length() {
        let errored = br#"{"choices":[{"message":{"content":"par"},"finish_reason":"error"}]}"#;
        assert!(adapter().chat_response("m", errored).is_err());
        let cut = br#"{"choices":[{"message":{"content":"par"},"finish_reason":"model_length"}]}"#;
        let out: Value =
            serde_json::from_slice(&adapter().chat_response("m", cut).unwrap().body).unwrap();
        assert_eq!(out["choices"][0]["finish_reason"], "length");
        assert!(adapter().chat_response("m", b"<html>").is_err());
    }

    #[test]
    fn embeddings_come_back_in_the_encoding_asked_for() {
        let body = fixture("mistral", "embeddings.json");
        let request = embeddings(json!({"model": "e", "input": ["a", "b"]}));
        let out = adapter()
            .embeddings_response("mistral-embed", &request, &body)
            .unwrap();
        let value: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(value["data"][1]["index"], 1);
        let first = value["data"][0]["embedding"][0].as_f64().unwrap();
        assert!((first + 0.016_586_3).abs() < 1e-6, "{value}");
        assert_eq!(out.usage.unwrap().input_tokens, 8);
        let base64 =
            embeddings(json!({"model": "e", "input": ["a", "b"], "encoding_format": "base64"}));
        let out = adapter()
            .embeddings_response("mistral-embed", &base64, &body)
            .unwrap();
        let value: Value = serde_json::from_slice(&out.body).unwrap();
        assert!(value["data"][0]["embedding"].is_string(), "{value}");
    }

    #[test]
    fn validation_errors_name_the_field_that_failed() {
        let details = adapter().error_details(422, &fixture("mistral", "error_422.json"));
        assert_eq!(details.kind.as_deref(), Some("invalid_request_error"));
        assert_eq!(details.param.as_deref(), Some("messages.1.tool_calls.0.id"));
        assert!(
            details.message.contains("String should match pattern"),
            "{details:?}"
        );
        // FastAPI's own shape, a top-level `detail`.
        let bare = br#"{"detail":[{"loc":["body","stream_options"],"msg":"Extra inputs are not permitted","type":"extra_forbidden"}]}"#;
        let details = adapter().error_details(422, bare);
        assert_eq!(details.param.as_deref(), Some("stream_options"));
        assert!(details.message.contains("Extra inputs"), "{details:?}");
        let details =
            adapter().error_details(401, br#"{"message":"Unauthorized","request_id":"x"}"#);
        assert_eq!(details.message, "Unauthorized");
        assert_eq!(details.kind.as_deref(), Some("authentication_error"));
        let details = adapter().error_details(503, b"upstream connect error");
        assert_eq!(details.message, "upstream connect error");
        assert_eq!(details.kind.as_deref(), Some("server_error"));
        let blank = br#"{"object":"error","message":" ","type":"invalid_request_error"}"#;
        let details = adapter().error_details(400, blank);
        assert_eq!(details.message, "upstream returned status 400");
    }
}
