//! A Gemini answer, embeddings or error in OpenAI's terms.
//!
//! Tool call ids are minted here, carrying the thought signature of the part they come from.

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::bare_model;
use crate::openai::InboundBody;
use crate::openai::request::{FunctionCall, ToolCall};
use crate::openai::response::{
    AssistantMessage, ChatCompletion, Choice, Embedding, EmbeddingVector, EmbeddingsResponse,
    EmbeddingsUsage, Usage, unix_now,
};
use crate::providers::{Translated, UpstreamErrorDetails, plain_error_text};

pub(crate) fn translate_response(model: &str, body: &[u8]) -> Result<Translated, String> {
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateContentResponse {
    #[serde(default)]
    pub(super) candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    pub(super) usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    pub(super) model_version: Option<String>,
    #[serde(default)]
    pub(super) response_id: Option<String>,
    /// Set instead of the rest when the API reports an error inside a stream.
    #[serde(default)]
    pub(super) error: Option<GoogleError>,
}

impl GenerateContentResponse {
    /// Whether the prompt was refused: a block reason and no candidate.
    pub(super) fn blocked(&self) -> bool {
        self.candidates.is_empty()
            && self
                .prompt_feedback
                .as_ref()
                .is_some_and(|f| f.block_reason.is_some())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate {
    #[serde(default)]
    content: Option<CandidateContent>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
    #[serde(default)]
    pub(super) index: Option<u32>,
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
    /// Base64 bytes to send back on this very part; we keep only those of function calls.
    #[serde(default)]
    thought_signature: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ResponseFunctionCall {
    pub(super) name: String,
    #[serde(default)]
    args: Option<Box<RawValue>>,
}

impl ResponseFunctionCall {
    /// The arguments as OpenAI's compact JSON text.
    pub(super) fn arguments(&self) -> String {
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
pub(super) struct UsageMetadata {
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
    pub(super) fn usage(self) -> Usage {
        // Saturating: the counts are the upstream's numbers, and a sum that wrapped around
        // would bill a huge answer as a small one.
        Usage::new(
            self.prompt_token_count,
            self.candidates_token_count
                .saturating_add(self.thoughts_token_count),
            self.cached_content_token_count,
        )
    }
}

/// The text and the function calls of one candidate, thoughts left out.
pub(super) struct CandidateOutput {
    pub(super) text: Option<String>,
    pub(super) calls: Vec<OutputCall>,
}

/// A function call and the thought signature of its part.
pub(super) struct OutputCall {
    pub(super) call: ResponseFunctionCall,
    pub(super) signature: Option<String>,
}

pub(super) fn candidate_output(candidate: &mut Candidate) -> CandidateOutput {
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    let parts = candidate
        .content
        .take()
        .map(|c| c.parts)
        .unwrap_or_default();
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
            calls.push(OutputCall {
                call,
                signature: part.thought_signature,
            });
        }
    }
    CandidateOutput { text, calls }
}

/// OpenAI's `finish_reason` for Gemini's.
pub(super) fn finish_reason(reason: Option<&str>, has_tool_calls: bool) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some(
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
        ) => "content_filter",
        _ if has_tool_calls => "tool_calls",
        _ => "stop",
    }
}

pub(super) fn random_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

fn completion_from(
    model: &str,
    mut response: GenerateContentResponse,
) -> Result<ChatCompletion, String> {
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
            .map(|OutputCall { call, signature }| {
                let id = tool_call_id(next_call, signature.as_deref());
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
        model: response
            .model_version
            .take()
            .unwrap_or_else(|| bare_model(model).to_owned()),
        choices,
        usage: response.usage_metadata.map(UsageMetadata::usage),
    })
}

/// Separates the call number from the thought signature in `call_<n>_ts_<signature>`.
pub(super) const SIGNATURE_MARKER: &str = "_ts_";

/// The OpenAI id of the `n`th tool call of an answer: `call_<n>`, or `call_<n>_ts_<signature>`
/// when Gemini signed the call's part.
///
/// The signature is base64 (a `bytes` field; Gemini writes standard base64 with padding). In the
/// id it is the same text in the URL-safe alphabet without padding: `+` becomes `-`, `/` becomes
/// `_`, and the trailing `=` are dropped, so the id holds only `[A-Za-z0-9_-]`, which needs no
/// escaping in JSON, headers or URLs. [`super::request::thought_signature_of`] maps `-` and `_`
/// back and pads to a multiple of four, which gives back Gemini's text character for character
/// (and the same bytes for any valid base64, URL-safe or unpadded included). The number keeps ids unique; the
/// `call_<digits>` prefix cannot hold the marker, so the first marker ends it. Signatures run to
/// kilobytes, and so do such ids; OpenAI sets no limit on their length. A signature that is not
/// base64 (never seen: the field is bytes) cannot be carried and is left out.
pub(super) fn tool_call_id(n: u32, signature: Option<&str>) -> String {
    let mut id = format!("call_{n}");
    if let Some(encoded) = signature.and_then(url_safe_signature) {
        id.push_str(SIGNATURE_MARKER);
        id.push_str(&encoded);
    }
    id
}

/// A base64 text in the URL-safe alphabet without padding; `None` when it is not base64.
fn url_safe_signature(signature: &str) -> Option<String> {
    let data = signature.trim_end_matches('=');
    let padded = data.len() != signature.len();
    if data.is_empty()
        || data.len() % 4 == 1
        || (padded && (!signature.len().is_multiple_of(4) || signature.len() - data.len() > 2))
    {
        return None;
    }
    data.chars()
        .map(|c| match c {
            '+' | '-' => Some('-'),
            '/' | '_' => Some('_'),
            c if c.is_ascii_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
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

pub(super) fn translate_embeddings(
    model: &str,
    request: &InboundBody,
    body: &[u8],
) -> Result<Translated, String> {
    let base64 = request
        .embeddings()
        .is_ok_and(|r| r.encoding_format.as_deref() == Some("base64"));
    let response: BatchEmbedResponse = serde_json::from_slice(body)
        .map_err(|e| format!("Gemini answered embeddings with a body we cannot read: {e}"))?;
    let data = response
        .embeddings
        .into_iter()
        .zip(0u32..)
        .map(|(embedding, index)| Embedding {
            object: "embedding".into(),
            index,
            embedding: EmbeddingVector::encode(embedding.values, base64),
        })
        .collect();
    let out = EmbeddingsResponse {
        object: "list".into(),
        data,
        model: bare_model(model).to_owned(),
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
pub(super) struct GoogleError {
    #[serde(default)]
    pub(super) message: Option<String>,
    #[serde(default)]
    status: Option<String>,
    /// Typed detail objects (`@type`), among them `RetryInfo` on a 429.
    #[serde(default)]
    details: Vec<serde_json::Value>,
}

impl GoogleError {
    /// `RetryInfo.retryDelay`, a protobuf duration in JSON: decimal seconds ending in `s`.
    fn retry_delay(&self) -> Option<Duration> {
        self.details
            .iter()
            .filter(|d| {
                d["@type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
            })
            .find_map(|d| d["retryDelay"].as_str()?.strip_suffix('s')?.parse().ok())
            .filter(|seconds: &f64| seconds.is_finite() && *seconds >= 0.0)
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
    }
}

#[derive(Deserialize)]
struct GoogleErrorEnvelope {
    error: GoogleError,
}

/// Some Google endpoints wrap the error in an array. (`Many` first: serde would also read an
/// array into the `One` struct, field by position.)
#[derive(Deserialize)]
#[serde(untagged)]
enum GoogleErrorBody {
    Many(Vec<GoogleErrorEnvelope>),
    One(GoogleErrorEnvelope),
}

pub(crate) fn error_details(status: u16, body: &[u8]) -> UpstreamErrorDetails {
    let error = match serde_json::from_slice::<GoogleErrorBody>(body) {
        Ok(GoogleErrorBody::Many(list)) => list.into_iter().next().map(|e| e.error),
        Ok(GoogleErrorBody::One(envelope)) => Some(envelope.error),
        Err(_) => None,
    };
    let Some(error) = error else {
        return UpstreamErrorDetails {
            message: plain_error_text(status, body),
            ..UpstreamErrorDetails::default()
        };
    };
    let kind = match error.status.as_deref() {
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE") => {
            "invalid_request_error"
        }
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
    let retry_after = error.retry_delay();
    UpstreamErrorDetails {
        message: error
            .message
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| format!("upstream returned status {status}")),
        kind: Some(kind.to_owned()),
        param: None,
        code: error.status,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::super::request::thought_signature_of;
    use super::*;
    use crate::providers::ProviderAdapter;
    use crate::providers::gemini::tests::*;
    use crate::providers::tests_support::fixture;
    use reqwest::header::HeaderValue;
    use serde_json::{Value, json};

    #[test]
    fn response_becomes_a_completion_with_usage_and_without_thoughts() {
        let translated = adapter()
            .chat_response(
                "gemini-2.5-flash",
                &fixture("gemini", "generate_response.json"),
            )
            .unwrap();
        let usage = translated.usage.unwrap();
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cached_input_tokens
            ),
            (1312, 49, 1024)
        );
        let body: Value = serde_json::from_slice(&translated.body).unwrap();
        assert_eq!(body["id"], "chatcmpl-8JtQaPz3L4DJz7IP4ZKd-QQ");
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "gemini-2.5-flash");
        assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
        assert_eq!(body["choices"].as_array().unwrap().len(), 1);
        let choice = &body["choices"][0];
        assert_eq!(choice["index"], 0);
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(
            choice["message"]["content"],
            "The capital of France is Paris."
        );
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 1312, "completion_tokens": 49, "total_tokens": 1361,
                   "prompt_tokens_details": {"cached_tokens": 1024}})
        );
    }

    #[test]
    fn function_call_response_becomes_tool_calls() {
        let translated = adapter()
            .chat_response(
                "gemini-2.5-flash",
                &fixture("gemini", "generate_function_call.json"),
            )
            .unwrap();
        let body: Value = serde_json::from_slice(&translated.body).unwrap();
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        let calls = choice["message"]["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        // Parallel calls: Gemini signs the first part only, so only the first id carries it.
        assert_eq!(
            calls[0]["id"],
            "call_0_ts_CiwBVKhc7nVYAQ1dJv3Nm4dp5Vt3o0k0cQ9pF1C2nB6nYk3Yy5i3iM8D8R0"
        );
        assert_eq!(calls[1]["id"], "call_1");
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        // Compact JSON text, keys in Gemini's order.
        assert_eq!(
            calls[0]["function"]["arguments"],
            r#"{"location":"Paris, France","unit":"celsius"}"#
        );
        assert_eq!(
            calls[1]["function"]["arguments"],
            r#"{"timezone":"Europe/Paris"}"#
        );
        assert_eq!(translated.usage.unwrap().output_tokens, 31);
    }

    #[test]
    fn candidates_map_to_choices_with_their_finish_reasons() {
        let body = br#"{"candidates":[
            {"content":{"parts":[{"text":"a"}]},"finishReason":"MAX_TOKENS","index":0},
            {"content":{"parts":[{"text":"b"}]},"finishReason":"RECITATION","index":1},
            {"content":{"parts":[]},"finishReason":"OTHER","index":2}]}"#;
        let translated = adapter().chat_response("gemini-x", body).unwrap();
        assert!(translated.usage.is_none());
        let body: Value = serde_json::from_slice(&translated.body).unwrap();
        assert_eq!(body["model"], "gemini-x");
        assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
        let reasons: Vec<&str> = body["choices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["finish_reason"].as_str().unwrap())
            .collect();
        assert_eq!(reasons, ["length", "content_filter", "stop"]);
        assert_eq!(body["choices"][1]["index"], 1);
        assert_eq!(body["choices"][2]["message"]["content"], Value::Null);
    }

    #[test]
    fn blocked_prompt_is_a_filtered_completion_not_an_error() {
        let translated = adapter()
            .chat_response(
                "gemini-2.0-flash",
                &fixture("gemini", "generate_blocked.json"),
            )
            .unwrap();
        let body: Value = serde_json::from_slice(&translated.body).unwrap();
        assert_eq!(body["choices"].as_array().unwrap().len(), 1);
        assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(body["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(translated.usage.unwrap().input_tokens, 11);
    }

    #[test]
    fn unreadable_responses_are_errors() {
        let gemini = adapter();
        assert!(gemini.chat_response("m", b"<html>oops</html>").is_err());
        assert!(gemini.chat_response("m", b"{}").is_err());
        assert!(
            gemini
                .chat_response("m", br#"{"candidates":"no"}"#)
                .is_err()
        );
    }

    #[test]
    fn thought_signatures_ride_in_url_safe_reversible_tool_call_ids() {
        for signature in [
            "CnSlTcoYJTC7HW0TLN7WI3su2R4/ch/LGXEXRJTWSTydXDRgvjEgHmn+2qDu6LmZf1x8KZn9r+WTJTzWVK9N+tcUJ6Cus/7pIy+K8iEfnuSRxbEL7LVWO/web5NCfsvI/ilV5c2ORtyO1LfCdk0qWk12dwb4XQ==",
            "CloMiHlIGDvkN7wnZWbzg1sF8RJbc4uxUclyLNLGQuboZAPAr+2naDI/bXzHLJ6khgiyKhPhr9eM+Q5vINsRWKtH8Ezh/Cxx4JRUg5/DaptIi/5m0joCwQ4WzT4=",
            "+/+/",
            "Pz8=",
            "Pz8/Pw==",
        ] {
            let id = tool_call_id(7, Some(signature));
            let encoded = id.strip_prefix("call_7_ts_").unwrap();
            assert!(!encoded.is_empty(), "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{id}"
            );
            assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{id}\""));
            assert!(HeaderValue::from_str(&id).is_ok());
            assert_eq!(encoded.len(), signature.trim_end_matches('=').len());
            assert_eq!(
                thought_signature_of(&id).as_deref(),
                Some(signature),
                "{id}"
            );
        }
        // URL-safe or unpadded base64 comes back standard and padded: the same bytes.
        assert_eq!(tool_call_id(0, Some("-_8")), "call_0_ts_-_8");
        assert_eq!(
            thought_signature_of("call_0_ts_-_8").as_deref(),
            Some("+/8=")
        );
        assert_eq!(
            thought_signature_of("call_12_ts_QUJD").as_deref(),
            Some("QUJD")
        );
        // No signature, or one that is not base64: the id is as it always was.
        for signature in [
            None,
            Some(""),
            Some("A"),
            Some("AB="),
            Some("ABCDE==="),
            Some("a b!"),
        ] {
            assert_eq!(tool_call_id(3, signature), "call_3", "{signature:?}");
        }
        // Ids that carry no signature, however close they come.
        for id in [
            "call_0",
            "call_12",
            "call_a",
            "toolu_01A09q90qw90lq917835lq9",
            "call_abc_ts_QUJD",
            "call__ts_QUJD",
            "xcall_1_ts_QUJD",
            "call_1_ts_",
            "call_1_ts_Q",
            "call_1_ts_QU+D",
            "call_1_ts_QUJD=",
            "call_1_ts_QU JD",
        ] {
            assert_eq!(thought_signature_of(id), None, "{id}");
        }
    }

    #[test]
    fn signed_function_calls_round_trip_through_the_tool_call_ids() {
        let response_bytes = fixture("gemini", "generate_function_call_signed.json");
        let response: Value = serde_json::from_slice(&response_bytes).unwrap();
        let signature = part_signature(&response, 1);
        let translated = adapter()
            .chat_response("gemini-3-pro-preview", &response_bytes)
            .unwrap();
        let body: Value = serde_json::from_slice(&translated.body).unwrap();
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        let message = &choice["message"];
        assert_eq!(message["content"], Value::Null);
        let calls = message["tool_calls"].as_array().unwrap();
        let url_safe = signature
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_");
        assert_eq!(calls[0]["id"], format!("call_0_ts_{url_safe}"));
        assert_eq!(calls[1]["id"], "call_1");

        let next = sent(next_tool_turn(message));
        assert_eq!(
            next["contents"],
            json!([
                {"role": "user", "parts": [{"text": "Weather and time in Paris?"}]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"location": "Paris, France"}},
                     "thoughtSignature": signature},
                    {"functionCall": {"name": "get_time", "args": {"timezone": "Europe/Paris"}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"content": "ok"}}},
                    {"functionResponse": {"name": "get_time", "response": {"content": "ok"}}}
                ]}
            ])
        );
    }

    #[test]
    fn a_retry_delay_is_read_only_from_retry_info_and_only_when_sane() {
        let delay = |details: Value| {
            let body = json!({"error": {"code": 429, "message": "m",
                "status": "RESOURCE_EXHAUSTED", "details": details}});
            error_details(429, body.to_string().as_bytes()).retry_after
        };
        let info = "type.googleapis.com/google.rpc.RetryInfo";
        assert_eq!(
            delay(json!([{"@type": info, "retryDelay": "1.5s"}])),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            delay(json!([{"@type": "type.googleapis.com/google.rpc.Help", "retryDelay": "9s"}])),
            None
        );
        for bad in ["-1s", "1e400s", "NaNs", "soon", "10"] {
            assert_eq!(
                delay(json!([{"@type": info, "retryDelay": bad}])),
                None,
                "{bad}"
            );
        }
        assert_eq!(delay(json!("not a list")), None);
    }

    #[test]
    fn error_bodies_map_to_openai_kinds() {
        let gemini = adapter();
        let details = gemini.error_details(400, &fixture("gemini", "error_400.json"));
        assert!(details.message.contains("max_output_tokens"), "{details:?}");
        assert_eq!(details.kind.as_deref(), Some("invalid_request_error"));
        assert_eq!(details.code.as_deref(), Some("INVALID_ARGUMENT"));
        assert_eq!(details.param, None);

        let details = gemini.error_details(429, &fixture("gemini", "error_429.json"));
        assert!(
            details
                .message
                .starts_with("You exceeded your current quota")
        );
        assert_eq!(details.kind.as_deref(), Some("rate_limit_error"));
        assert_eq!(details.code.as_deref(), Some("RESOURCE_EXHAUSTED"));
        assert_eq!(details.retry_after, Some(Duration::from_secs(27)));

        for (status, kind) in [
            ("FAILED_PRECONDITION", "invalid_request_error"),
            ("OUT_OF_RANGE", "invalid_request_error"),
            ("UNAUTHENTICATED", "authentication_error"),
            ("PERMISSION_DENIED", "permission_error"),
            ("NOT_FOUND", "not_found_error"),
            ("INTERNAL", "server_error"),
            ("UNAVAILABLE", "server_error"),
        ] {
            let body =
                json!({"error": {"code": 500, "message": "m", "status": status}}).to_string();
            let details = gemini.error_details(500, body.as_bytes());
            assert_eq!(details.kind.as_deref(), Some(kind), "{status}");
            assert_eq!(details.code.as_deref(), Some(status));
        }

        let wrapped =
            br#"[{"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}}]"#;
        let details = gemini.error_details(403, wrapped);
        assert_eq!(details.message, "denied");
        assert_eq!(details.kind.as_deref(), Some("permission_error"));

        let details = gemini.error_details(502, b"<html>Bad Gateway</html>");
        assert_eq!(details.message, "<html>Bad Gateway</html>");
        assert_eq!(details.kind, None);
        assert_eq!(details.code, None);
    }
}
