//! Cohere's v2 answers, embeddings and error bodies in OpenAI's terms.
//!
//! - The text is the answer's `text` content items joined (a reasoning model's `thinking`
//!   items are left out). When the model calls tools it usually writes no text but a
//!   `tool_plan` ("I will look up the weather…"): that plan becomes the message's content, so
//!   that the client sees it and sends it back, where it becomes the `tool_plan` again.
//! - Citations are dropped: OpenAI's completion has no place for Cohere's spans and sources,
//!   and the gateway sends no `documents` that they would point into.
//! - The usage is `billed_units`, what Cohere charges for, so that costs match Cohere's bill;
//!   `tokens` (which also counts the prompt template Cohere adds) only where billed units are
//!   missing.
//! - `finish_reason`: `COMPLETE` and `STOP_SEQUENCE` are `stop`, `MAX_TOKENS` is `length`,
//!   `TOOL_CALL` is `tool_calls`; `ERROR` and `TIMEOUT` mean the generation failed, and the
//!   target with it.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use crate::openai::InboundBody;
use crate::openai::request::{FunctionCall, ToolCall};
use crate::openai::response::{
    AssistantMessage, ChatCompletion, Choice, Embedding, EmbeddingVector, EmbeddingsResponse,
    EmbeddingsUsage, Usage, unix_now,
};
use crate::providers::{Translated, UpstreamErrorDetails, plain_error_text};

#[derive(Deserialize)]
struct CohereChat {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    message: Option<CohereMessage>,
    #[serde(default)]
    usage: Option<CohereUsage>,
}

#[derive(Deserialize)]
struct CohereMessage {
    #[serde(default)]
    content: Vec<ContentItem>,
    #[serde(default)]
    tool_plan: Option<String>,
    #[serde(default)]
    tool_calls: Vec<CohereToolCall>,
}

#[derive(Deserialize)]
struct ContentItem {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct CohereToolCall {
    #[serde(default)]
    id: Option<String>,
    function: CohereFunction,
}

#[derive(Deserialize)]
struct CohereFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize, Clone, Default)]
pub(super) struct CohereUsage {
    #[serde(default)]
    billed_units: Option<Units>,
    #[serde(default)]
    tokens: Option<Units>,
    /// Prompt tokens served from Cohere's cache, where it reports them.
    #[serde(default)]
    cached_tokens: Option<Value>,
}

/// Counts as JSON values: Cohere's schema types them as numbers (floats), and a count of
/// another type is read as absent rather than failing the whole answer.
#[derive(Deserialize, Clone, Default)]
struct Units {
    #[serde(default)]
    input_tokens: Option<Value>,
    #[serde(default)]
    output_tokens: Option<Value>,
}

impl CohereUsage {
    pub(super) fn usage(self) -> Option<Usage> {
        // `as` saturates: an absurd count is the largest one, never a small one.
        let count = |n: &Option<Value>| {
            n.as_ref()
                .and_then(Value::as_f64)
                .filter(|n| n.is_finite() && *n > 0.0)
                .map(|n| n as u64)
        };
        let pick = |units: Option<Units>| {
            let units = units?;
            let (input, output) = (count(&units.input_tokens), count(&units.output_tokens));
            (input.is_some() || output.is_some()).then(|| (input.unwrap_or(0), output.unwrap_or(0)))
        };
        let (input, output) = pick(self.billed_units).or_else(|| pick(self.tokens))?;
        let cached = count(&self.cached_tokens).unwrap_or(0).min(input);
        Some(Usage::new(input, output, cached))
    }
}

/// OpenAI's finish reason for Cohere's (`None` means an answer without calls that just ended).
pub(super) fn finish_reason(reason: Option<&str>, has_calls: bool) -> Result<&'static str, String> {
    let reason = reason.map(str::to_ascii_uppercase);
    match reason.as_deref() {
        Some("MAX_TOKENS") => Ok("length"),
        Some("TOOL_CALL") => Ok("tool_calls"),
        // An older value of Cohere's schema, for output its safety filter withheld.
        Some("CONTENT_BLOCKED") => Ok("content_filter"),
        Some(failed @ ("ERROR" | "ERROR_LIMIT" | "TIMEOUT")) => Err(format!(
            "Cohere ended the answer with {failed}: the generation failed"
        )),
        _ if has_calls => Ok("tool_calls"),
        _ => Ok("stop"),
    }
}

pub(super) fn random_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// An id for the `n`th call of the answer `answer_id`, should Cohere send a call without one.
/// Derived, not random, so that the same answer always reads the same.
pub(super) fn minted_call_id(answer_id: Option<&str>, n: usize) -> String {
    match answer_id {
        Some(id) => format!("call_{id}_{n}"),
        None => format!("call_{n}"),
    }
}

pub(super) fn translate_response(model: &str, body: &[u8]) -> Result<Translated, String> {
    let chat: CohereChat = serde_json::from_slice(body)
        .map_err(|e| format!("Cohere answered with a body we cannot read: {e}"))?;
    let message = chat.message.unwrap_or(CohereMessage {
        content: Vec::new(),
        tool_plan: None,
        tool_calls: Vec::new(),
    });
    let calls: Vec<ToolCall> = message
        .tool_calls
        .into_iter()
        .enumerate()
        .map(|(n, call)| ToolCall {
            id: call
                .id
                .unwrap_or_else(|| minted_call_id(chat.id.as_deref(), n)),
            kind: "function".into(),
            function: FunctionCall {
                name: call.function.name.unwrap_or_default(),
                arguments: call.function.arguments.unwrap_or_else(|| "{}".into()),
            },
        })
        .collect();
    let text: String = message
        .content
        .into_iter()
        .filter(|item| item.kind.as_deref().is_none_or(|k| k == "text"))
        .filter_map(|item| item.text)
        .collect();
    let content = match (text.is_empty(), message.tool_plan) {
        (true, Some(plan)) if !plan.is_empty() => Some(plan),
        (true, _) if !calls.is_empty() => None,
        _ => Some(text),
    };
    let finish = finish_reason(chat.finish_reason.as_deref(), !calls.is_empty())?;
    let usage = chat.usage.and_then(CohereUsage::usage);
    let out = ChatCompletion {
        id: format!("chatcmpl-{}", chat.id.unwrap_or_else(random_id)),
        object: "chat.completion".into(),
        created: unix_now(),
        // Cohere's answer does not name its model.
        model: model.to_owned(),
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant".into(),
                content,
                tool_calls: (!calls.is_empty()).then_some(calls),
                refusal: None,
            },
            finish_reason: Some(finish.to_owned()),
            logprobs: None,
        }],
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
    struct EmbedResponse {
        embeddings: ByType,
        #[serde(default)]
        meta: Option<Meta>,
    }
    #[derive(Deserialize)]
    struct ByType {
        #[serde(default)]
        float: Option<Vec<Vec<f32>>>,
    }
    #[derive(Deserialize)]
    struct Meta {
        #[serde(default)]
        billed_units: Option<Units>,
    }
    let base64 = request
        .embeddings()
        .is_ok_and(|r| r.encoding_format.as_deref() == Some("base64"));
    let response: EmbedResponse = serde_json::from_slice(body)
        .map_err(|e| format!("Cohere answered embeddings with a body we cannot read: {e}"))?;
    let vectors = response
        .embeddings
        .float
        .ok_or("Cohere answered embeddings without the float vectors asked for")?;
    let data = vectors
        .into_iter()
        .zip(0u32..)
        .map(|(vector, index)| Embedding {
            object: "embedding".into(),
            index,
            embedding: EmbeddingVector::encode(vector, base64),
        })
        .collect();
    let usage = response
        .meta
        .and_then(|m| m.billed_units)
        .and_then(|units| {
            CohereUsage {
                billed_units: Some(units),
                ..CohereUsage::default()
            }
            .usage()
        });
    let prompt_tokens = usage.map_or(0, |u| u.prompt_tokens);
    let out = EmbeddingsResponse {
        object: "list".into(),
        data,
        model: model.to_owned(),
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

/// Cohere's error bodies are `{"id": ..., "message": ...}`; the status says what kind.
pub(super) fn error_details(status: u16, body: &[u8]) -> UpstreamErrorDetails {
    #[derive(Deserialize)]
    struct CohereError {
        #[serde(default)]
        message: Option<Value>,
        /// OpenAI's envelope, as a proxy in front of Cohere may write it.
        #[serde(default)]
        error: Option<Value>,
    }
    let kind = match status {
        400 | 413 | 422 => "invalid_request_error",
        // 498: Cohere's "invalid token".
        401 | 498 => "authentication_error",
        402 | 403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        _ => "server_error",
    };
    let message = match serde_json::from_slice::<CohereError>(body) {
        Ok(error) => Some(
            match error.message {
                Some(Value::String(message)) => Some(message),
                Some(other) => Some(other.to_string()),
                None => error
                    .error
                    .as_ref()
                    .and_then(|e| e["message"].as_str())
                    .map(str::to_owned),
            }
            // A blank message would reach the client as an error that says nothing.
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| format!("upstream returned status {status}")),
        ),
        Err(_) => None,
    };
    UpstreamErrorDetails {
        message: message.unwrap_or_else(|| plain_error_text(status, body)),
        kind: Some(kind.into()),
        ..UpstreamErrorDetails::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ProviderAdapter;
    use crate::providers::cohere::tests::{adapter, embeddings};
    use crate::providers::tests_support::fixture;
    use serde_json::json;

    fn completion(body: &[u8]) -> (Value, Option<tollgate_common::TokenUsage>) {
        let translated = adapter().chat_response("command-a-03-2025", body).unwrap();
        (
            serde_json::from_slice(&translated.body).unwrap(),
            translated.usage,
        )
    }

    #[test]
    fn an_answer_becomes_a_completion_billed_as_cohere_bills_it() {
        let (body, usage) = completion(&fixture("cohere", "chat_response.json"));
        assert_eq!(body["model"], "command-a-03-2025");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        let usage = usage.unwrap();
        // billed_units, not tokens (which count Cohere's own prompt template too).
        assert_eq!((usage.input_tokens, usage.output_tokens), (5, 12));
        let tokens_only =
            br#"{"finish_reason":"COMPLETE","message":{"content":[{"type":"text","text":"x"}]},
            "usage":{"tokens":{"input_tokens":70,"output_tokens":3}}}"#;
        assert_eq!(completion(tokens_only).1.unwrap().input_tokens, 70);
    }

    #[test]
    fn the_tool_plan_is_the_content_of_an_answer_calling_tools() {
        let (body, _) = completion(&fixture("cohere", "chat_tool_calls.json"));
        let message = &body["choices"][0]["message"];
        assert_eq!(message["content"], "I will look up the weather in Paris.");
        assert_eq!(message["tool_calls"][0]["id"], "get_weather_k88p0m8504w5");
        // Thinking left out, and citations dropped.
        let thinking = br#"{"finish_reason":"COMPLETE","message":{"content":[
            {"type":"thinking","thinking":"hmm"},{"type":"text","text":"4"}],
            "citations":[{"start":0,"end":1,"text":"4","sources":[]}]}}"#;
        let (body, _) = completion(thinking);
        assert_eq!(body["choices"][0]["message"]["content"], "4");
        assert!(body["choices"][0]["message"].get("citations").is_none());
    }

    #[test]
    fn failed_generations_fail_the_target() {
        for reason in ["ERROR", "TIMEOUT"] {
            let body = json!({"finish_reason": reason, "message": {"content": []}}).to_string();
            assert!(
                adapter().chat_response("m", body.as_bytes()).is_err(),
                "{reason}"
            );
        }
        let blocked = br#"{"finish_reason":"CONTENT_BLOCKED","message":{"content":[]}}"#;
        assert_eq!(
            completion(blocked).0["choices"][0]["finish_reason"],
            "content_filter"
        );
        assert!(adapter().chat_response("m", b"<html>").is_err());
    }

    #[test]
    fn embeddings_by_type_become_an_openai_list() {
        let body = fixture("cohere", "embed_response.json");
        let out = adapter()
            .embeddings_response(
                "embed-v4.0",
                &embeddings(json!({"model": "e", "input": ["a", "b"]})),
                &body,
            )
            .unwrap();
        let value: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(value["data"].as_array().unwrap().len(), 2);
        assert_eq!(value["data"][1]["index"], 1);
        assert_eq!(value["data"][1]["embedding"], json!([0.25, -0.5, 0.125]));
        assert_eq!(out.usage.unwrap().input_tokens, 3);
        let base64 =
            embeddings(json!({"model": "e", "input": ["a", "b"], "encoding_format": "base64"}));
        let out = adapter()
            .embeddings_response("embed-v4.0", &base64, &body)
            .unwrap();
        let value: Value = serde_json::from_slice(&out.body).unwrap();
        assert!(value["data"][0]["embedding"].is_string());
        let no_floats = br#"{"embeddings":{"int8":[[1,2]]}}"#;
        assert!(
            adapter()
                .embeddings_response("e", &base64, no_floats)
                .is_err()
        );
    }

    #[test]
    fn error_bodies_keep_cohere_words_and_take_their_kind_from_the_status() {
        let details = adapter().error_details(498, br#"{"id":"x","message":"invalid api token"}"#);
        assert_eq!(details.message, "invalid api token");
        assert_eq!(details.kind.as_deref(), Some("authentication_error"));
        let details = adapter().error_details(400, br#"{"message":"  "}"#);
        assert_eq!(details.message, "upstream returned status 400");
        let details = adapter().error_details(502, b"Bad Gateway");
        assert_eq!(details.message, "Bad Gateway");
        assert_eq!(details.kind.as_deref(), Some("server_error"));
    }
}
