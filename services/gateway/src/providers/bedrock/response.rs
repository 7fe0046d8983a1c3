//! A Bedrock Converse answer, or error, in OpenAI's terms.
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html#API_runtime_Converse_ResponseSyntax>

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::openai::request::{FunctionCall, ToolCall};
use crate::openai::response::{AssistantMessage, ChatCompletion, Choice, Usage, unix_now};
use crate::providers::{Translated, UpstreamErrorDetails, plain_error_text};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseResponse {
    output: Output,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Output {
    message: OutputMessage,
}

#[derive(Deserialize)]
struct OutputMessage {
    #[serde(default)]
    content: Vec<ContentBlock>,
}

/// A content block: one member naming its kind. Kinds without an OpenAI form
/// (`reasoningContent`, `citationsContent`, ...) are read as neither.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContentBlock {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_use: Option<WireToolUse>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireToolUse {
    tool_use_id: String,
    name: String,
    #[serde(default)]
    input: Option<Box<RawValue>>,
}

/// Token counts as Bedrock reports them: `inputTokens` leaves out the prompt tokens read from
/// or written to the prompt cache, which OpenAI's `prompt_tokens` includes.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_write_input_tokens: u64,
}

impl WireUsage {
    pub(super) fn usage(&self) -> Usage {
        // Saturating: these are the upstream's numbers, and a sum that wrapped around would
        // bill a huge answer as a small one.
        Usage::new(
            self.input_tokens
                .saturating_add(self.cache_read_input_tokens)
                .saturating_add(self.cache_write_input_tokens),
            self.output_tokens,
            self.cache_read_input_tokens,
        )
    }
}

/// OpenAI's `finish_reason` for Bedrock's `stopReason`.
pub(super) fn finish_reason(stop_reason: Option<&str>, tool_calls: bool) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("guardrail_intervened" | "content_filtered") => "content_filter",
        Some("tool_use") if tool_calls => "tool_calls",
        // end_turn, stop_sequence, and reasons added after this was written.
        _ => "stop",
    }
}

/// A `chatcmpl-` id: Converse answers carry none in the body (the request id is a header).
pub(super) fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::now_v7().simple())
}

pub(super) fn translate_response(model: &str, body: &[u8]) -> Result<Translated, String> {
    let answer: ConverseResponse = serde_json::from_slice(body)
        .map_err(|e| format!("Bedrock answered with a body that is not a Converse answer: {e}"))?;
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in answer.output.message.content {
        if let Some(t) = block.text {
            text.get_or_insert_with(String::new).push_str(&t);
        }
        if let Some(call) = block.tool_use {
            tool_calls.push(ToolCall {
                id: call.tool_use_id,
                kind: "function".into(),
                function: FunctionCall {
                    name: call.name,
                    arguments: call
                        .input
                        .map_or_else(|| "{}".to_owned(), |input| input.get().to_owned()),
                },
            });
        }
    }
    let usage = answer.usage.map(|u| u.usage());
    let finish = finish_reason(answer.stop_reason.as_deref(), !tool_calls.is_empty());
    let completion = ChatCompletion {
        id: completion_id(),
        object: "chat.completion".into(),
        created: unix_now(),
        model: model.to_owned(),
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant".into(),
                content: text,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                refusal: None,
            },
            finish_reason: Some(finish.to_owned()),
            logprobs: None,
        }],
        usage,
    };
    let body = serde_json::to_vec(&completion)
        .map_err(|e| format!("cannot serialize the chat completion: {e}"))?;
    Ok(Translated {
        body: Bytes::from(body),
        usage: usage.map(|u| u.tokens()),
    })
}

/// Bedrock's error body: `{"message": "..."}`, the exception's name in the `x-amzn-ErrorType`
/// header and, from some front ends, in `__type` (`com.amazon.coral.service#ThrottlingException`).
#[derive(Deserialize)]
struct WireError {
    #[serde(default, alias = "Message")]
    message: Option<String>,
    #[serde(default, rename = "__type")]
    kind: Option<String>,
}

pub(super) fn error_details(status: u16, body: &[u8]) -> UpstreamErrorDetails {
    let Ok(error) = serde_json::from_slice::<WireError>(body) else {
        return UpstreamErrorDetails {
            message: plain_error_text(status, body),
            ..UpstreamErrorDetails::default()
        };
    };
    let exception = error.kind.as_deref().map(exception_name);
    UpstreamErrorDetails {
        // A blank message would reach the client as an error that says nothing.
        message: error
            .message
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| format!("upstream returned status {status}")),
        kind: Some(openai_error_type(exception, status).to_owned()),
        code: exception.map(str::to_owned),
        ..UpstreamErrorDetails::default()
    }
}

/// `ThrottlingException` out of `com.amazon.coral.service#ThrottlingException:http://...`.
fn exception_name(kind: &str) -> &str {
    let name = kind.rsplit_once('#').map_or(kind, |(_, name)| name);
    name.split_once(':').map_or(name, |(name, _)| name)
}

/// OpenAI's `error.type` for one of Bedrock's exceptions, or for its status where the body
/// does not name one.
/// <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html#API_runtime_Converse_Errors>
fn openai_error_type(exception: Option<&str>, status: u16) -> &'static str {
    match exception {
        Some("ValidationException") => "invalid_request_error",
        Some(
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignatureException"
            | "ExpiredTokenException",
        ) => "authentication_error",
        Some("AccessDeniedException") => "permission_error",
        Some("ResourceNotFoundException") => "not_found_error",
        Some("ThrottlingException" | "ServiceQuotaExceededException") => "rate_limit_error",
        Some(
            "InternalServerException"
            | "ServiceUnavailableException"
            | "ModelTimeoutException"
            | "ModelNotReadyException"
            | "ModelErrorException"
            | "ModelStreamErrorException",
        ) => "server_error",
        _ => match status {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            408 | 424 | 500..=599 => "server_error",
            _ => "invalid_request_error",
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::providers::ProviderAdapter;
    use crate::providers::bedrock::tests::*;
    use crate::providers::tests_support::fixture;
    use serde_json::{Value, json};
    use tollgate_common::TokenUsage;

    fn translate(body: &[u8]) -> (Value, Option<TokenUsage>) {
        let translated = adapter()
            .chat_response("anthropic.claude-3-haiku-20240307-v1:0", body)
            .unwrap();
        (
            serde_json::from_slice(&translated.body).unwrap(),
            translated.usage,
        )
    }

    #[test]
    fn text_answer_with_cached_usage() {
        let (body, usage) = translate(&fixture("bedrock", "converse_response.json"));
        assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "anthropic.claude-3-haiku-20240307-v1:0");
        assert!(body["created"].as_u64().unwrap() > 0);
        let choice = &body["choices"][0];
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(
            choice["message"]["content"],
            "The capital of France is Paris."
        );
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "stop");
        // 12 uncached, 1024 read from the cache, 100 written to it.
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 1136, "completion_tokens": 8, "total_tokens": 1144,
                   "prompt_tokens_details": {"cached_tokens": 1024}})
        );
        assert_eq!(
            usage,
            Some(TokenUsage {
                input_tokens: 1136,
                output_tokens: 8,
                cached_input_tokens: 1024
            })
        );
        // Each answer gets its own id.
        let (again, _) = translate(&fixture("bedrock", "converse_response.json"));
        assert_ne!(again["id"], body["id"]);
    }

    #[test]
    fn tool_use_answer_becomes_tool_calls() {
        let (body, usage) = translate(&fixture("bedrock", "converse_tool_use.json"));
        let message = &body["choices"][0]["message"];
        assert_eq!(message["content"], "I'll look up the weather in Paris.");
        let call = &message["tool_calls"][0];
        assert_eq!(call["id"], "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        let arguments: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(
            arguments,
            json!({"location": "Paris, France", "unit": "celsius"})
        );
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(usage.unwrap().input_tokens, 412);
        assert!(body["usage"].get("prompt_tokens_details").is_none());
    }

    #[test]
    fn stop_reasons_map_to_finish_reasons() {
        let cases = [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("guardrail_intervened", "content_filter"),
            ("content_filtered", "content_filter"),
            // A tool_use stop without a call to show is a plain stop.
            ("tool_use", "stop"),
            ("some_future_reason", "stop"),
        ];
        for (stop_reason, expected) in cases {
            let upstream = json!({
                "output": {"message": {"role": "assistant", "content": []}},
                "stopReason": stop_reason,
                "usage": {"inputTokens": 1, "outputTokens": 0, "totalTokens": 1}
            });
            let (body, _) = translate(upstream.to_string().as_bytes());
            assert_eq!(
                body["choices"][0]["finish_reason"], expected,
                "{stop_reason}"
            );
            assert_eq!(body["choices"][0]["message"]["content"], Value::Null);
        }
        for bad in [
            &b"<html>bad gateway</html>"[..],
            &br#"{"stopReason":"end_turn"}"#[..],
        ] {
            assert!(adapter().chat_response("m", bad).is_err());
        }
        // Blocks with no OpenAI form are skipped.
        let upstream = json!({
            "output": {"message": {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "s"}}},
                {"text": "Yes."}
            ]}},
            "stopReason": "end_turn"
        });
        let translated = adapter()
            .chat_response("m", upstream.to_string().as_bytes())
            .unwrap();
        let body: Value = serde_json::from_slice(&translated.body).unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "Yes.");
        assert!(translated.usage.is_none());
    }

    #[test]
    fn error_bodies_map_by_exception_then_by_status() {
        let details = adapter().error_details(400, &fixture("bedrock", "error_validation.json"));
        assert!(details.message.contains("maxTokens"), "{details:?}");
        assert_eq!(details.kind.as_deref(), Some("invalid_request_error"));
        assert_eq!(details.code, None);

        let details = adapter().error_details(429, &fixture("bedrock", "error_throttling.json"));
        assert_eq!(
            details.message,
            "Too many requests, please wait before trying again."
        );
        assert_eq!(details.kind.as_deref(), Some("rate_limit_error"));
        // The exception's name travels in the `x-amzn-ErrorType` header, not in this body.
        assert_eq!(details.code, None);
        assert_eq!(details.retry_after, None);

        let statuses = [
            (400, "invalid_request_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (408, "server_error"),
            (424, "server_error"),
            (429, "rate_limit_error"),
            (500, "server_error"),
            (503, "server_error"),
        ];
        for (status, expected) in statuses {
            let details = adapter().error_details(status, br#"{"message":"m"}"#);
            assert_eq!(details.kind.as_deref(), Some(expected), "{status}");
        }
        let named = [
            (
                "com.amazon.coral.service#InvalidSignatureException",
                "authentication_error",
            ),
            ("AccessDeniedException", "permission_error"),
            (
                "ServiceQuotaExceededException:http://internal.amazon.com/coral/com.amazon.bedrock/",
                "rate_limit_error",
            ),
            ("ModelNotReadyException", "server_error"),
        ];
        for (kind, expected) in named {
            let body = json!({"__type": kind, "Message": "m"});
            let details = adapter().error_details(400, body.to_string().as_bytes());
            assert_eq!(details.kind.as_deref(), Some(expected), "{kind}");
            assert_eq!(details.message, "m");
            assert!(!details.code.as_deref().unwrap().contains([':', '#']));
        }

        let details = adapter().error_details(502, b"<html>Bad Gateway</html>");
        assert_eq!(details.message, "<html>Bad Gateway</html>");
        assert_eq!(details.kind, None);
        assert_eq!(
            adapter()
                .error_details(503, b"{\"message\": \" \"}")
                .message,
            "upstream returned status 503"
        );
    }
}
