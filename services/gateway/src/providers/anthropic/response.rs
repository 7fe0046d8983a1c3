//! An Anthropic message, or error, in OpenAI's terms.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use tollgate_common::TokenUsage;

use super::request::JSON_OUTPUT_TOOL_PREFIX;
use crate::openai::request::{FunctionCall, ToolCall};
use crate::openai::response::{AssistantMessage, ChatCompletion, Choice, Usage, unix_now};
use crate::providers::{Translated, UpstreamErrorDetails, plain_error_text, trailing_usage};

#[derive(Deserialize)]
struct MessageResponse {
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<ResponseBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// A content block, flat: `input` is raw JSON, which serde cannot buffer inside a tagged enum.
#[derive(Deserialize)]
struct ResponseBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Box<RawValue>>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

/// Running token counts; Anthropic's prompt counts exclude the cached part, OpenAI's include it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TokenCounts {
    input: u64,
    cache_read: u64,
    cache_creation: u64,
    output: u64,
}

impl TokenCounts {
    pub(super) fn update(&mut self, usage: &WireUsage) {
        if let Some(n) = usage.input_tokens {
            self.input = n;
        }
        if let Some(n) = usage.cache_read_input_tokens {
            self.cache_read = n;
        }
        if let Some(n) = usage.cache_creation_input_tokens {
            self.cache_creation = n;
        }
        if let Some(n) = usage.output_tokens {
            self.output = n;
        }
    }

    pub(super) fn usage(&self) -> Usage {
        // Saturating: the counts are the upstream's numbers, and a sum that wrapped around
        // would bill a huge answer as a small one.
        Usage::new(
            self.input
                .saturating_add(self.cache_read)
                .saturating_add(self.cache_creation),
            self.output,
            self.cache_read,
        )
    }
}

/// OpenAI's `finish_reason` for Anthropic's `stop_reason`; a `tool_use` stop caused only by the
/// structured-output tool is a plain `stop`.
pub(super) fn finish_reason(stop_reason: Option<&str>, real_tool_calls: bool) -> &'static str {
    match stop_reason {
        Some("end_turn" | "stop_sequence" | "pause_turn") => "stop",
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("refusal") => "content_filter",
        _ if real_tool_calls => "tool_calls",
        _ => "stop",
    }
}

pub(crate) fn translate_response(model: &str, body: &[u8]) -> Result<Translated, String> {
    let message: MessageResponse = serde_json::from_slice(body)
        .map_err(|e| format!("Anthropic answered with a body that is not a message: {e}"))?;
    let mut text: Option<String> = None;
    let mut json_output: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in message.content {
        match block.kind.as_str() {
            "text" => {
                if let Some(t) = block.text {
                    text.get_or_insert_with(String::new).push_str(&t);
                }
            }
            "tool_use" => {
                let name = block.name.unwrap_or_default();
                let arguments = block
                    .input
                    .map_or_else(|| "{}".to_owned(), |input| input.get().to_owned());
                if name.starts_with(JSON_OUTPUT_TOOL_PREFIX) {
                    json_output.get_or_insert(arguments);
                } else {
                    tool_calls.push(ToolCall {
                        id: block.id.unwrap_or_default(),
                        kind: "function".into(),
                        function: FunctionCall { name, arguments },
                    });
                }
            }
            // thinking, redacted_thinking and server-side tool blocks have no OpenAI form.
            _ => {}
        }
    }
    let mut counts = TokenCounts::default();
    if let Some(usage) = &message.usage {
        counts.update(usage);
    }
    let usage = message.usage.is_some().then(|| counts.usage());
    let finish = finish_reason(message.stop_reason.as_deref(), !tool_calls.is_empty());
    let completion = ChatCompletion {
        id: format!("chatcmpl-{}", message.id),
        object: "chat.completion".into(),
        created: unix_now(),
        model: if message.model.is_empty() {
            model.to_owned()
        } else {
            message.model
        },
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant".into(),
                content: json_output.or(text),
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

/// Only the usage of a message, for an answer that goes to the client as it came: found at the
/// end of the body, where Anthropic writes it, or else by reading the whole message.
pub(super) fn message_usage(body: &[u8]) -> Result<Option<TokenUsage>, String> {
    #[derive(Deserialize)]
    struct UsageOnly {
        #[serde(default)]
        usage: Option<WireUsage>,
    }
    let usage = match trailing_usage::<WireUsage>(body) {
        Some(usage) => Some(usage),
        None => {
            let message: UsageOnly = serde_json::from_slice(body).map_err(|e| {
                format!("Anthropic answered with a body that is not a message: {e}")
            })?;
            message.usage
        }
    };
    Ok(usage.map(|usage| {
        let mut counts = TokenCounts::default();
        counts.update(&usage);
        counts.usage().tokens()
    }))
}

#[derive(Deserialize)]
pub(super) struct WireError {
    #[serde(default, rename = "type")]
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) message: Option<String>,
}

pub(crate) fn error_details(status: u16, body: &[u8]) -> UpstreamErrorDetails {
    #[derive(Deserialize)]
    struct Envelope {
        error: WireError,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope { error }) => UpstreamErrorDetails {
            // A blank message would reach the client as an error that says nothing.
            message: error
                .message
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| format!("upstream returned status {status}")),
            kind: Some(openai_error_type(error.kind.as_deref(), status).to_owned()),
            code: error.kind,
            ..UpstreamErrorDetails::default()
        },
        Err(_) => UpstreamErrorDetails {
            message: plain_error_text(status, body),
            ..UpstreamErrorDetails::default()
        },
    }
}

/// OpenAI's `error.type` for one of Anthropic's error types.
fn openai_error_type(kind: Option<&str>, status: u16) -> &'static str {
    match kind {
        Some("invalid_request_error" | "request_too_large") => "invalid_request_error",
        Some("authentication_error") => "authentication_error",
        Some("permission_error") => "permission_error",
        Some("not_found_error") => "not_found_error",
        Some("rate_limit_error") => "rate_limit_error",
        Some("billing_error") => "insufficient_quota",
        Some("api_error" | "overloaded_error" | "timeout_error") => "server_error",
        _ if status >= 500 => "server_error",
        _ => "invalid_request_error",
    }
}

#[cfg(test)]
mod tests {
    use super::{message_usage, translate_response};
    use crate::providers::ProviderAdapter;
    use crate::providers::anthropic::tests::*;
    use crate::providers::tests_support::fixture;
    use serde_json::{Value, json};
    use tollgate_common::TokenUsage;

    #[test]
    fn a_forwarded_messages_usage_is_read_from_its_end_and_never_from_a_tools_input() {
        let message = fixture("anthropic", "messages_response.json");
        let whole = translate_response("m", &message).unwrap().usage.unwrap();
        assert_eq!(message_usage(&message).unwrap(), Some(whole));
        // A model-written tool input that holds a `usage` member, last in a message whose
        // own usage is missing: not the message's usage.
        let nested = br#"{"id":"msg_1","type":"message","content":[{"type":"tool_use","id":"t","name":"f","input":{"usage":{"input_tokens":0,"output_tokens":0}}}]}"#;
        assert_eq!(message_usage(nested).unwrap(), None);
        // Usage written before other members is found by reading the whole message.
        let early = br#"{"usage":{"input_tokens":4,"output_tokens":2},"id":"msg_1","content":[]}"#;
        let usage = message_usage(early).unwrap().unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (4, 2));
        assert!(message_usage(b"<html>").is_err());
    }

    #[test]
    fn text_response_with_cached_usage() {
        let translated = adapter()
            .chat_response(
                "claude-sonnet-4-5",
                &fixture("anthropic", "messages_response.json"),
            )
            .unwrap();
        let body: Value = serde_json::from_slice(&translated.body).unwrap();
        assert_eq!(body["id"], "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL");
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "claude-sonnet-4-5-20250929");
        assert!(body["created"].as_u64().unwrap() > 0);
        let choice = &body["choices"][0];
        assert_eq!(body["choices"].as_array().unwrap().len(), 1);
        assert_eq!(choice["index"], 0);
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(
            choice["message"]["content"],
            "Hello! How can I help you today?"
        );
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 1621, "completion_tokens": 12, "total_tokens": 1633,
                   "prompt_tokens_details": {"cached_tokens": 1500}})
        );
        assert_eq!(
            translated.usage.unwrap(),
            TokenUsage {
                input_tokens: 1621,
                output_tokens: 12,
                cached_input_tokens: 1500
            }
        );
    }

    #[test]
    fn tool_use_response_becomes_tool_calls() {
        let translated = adapter()
            .chat_response(
                "claude-sonnet-4-5",
                &fixture("anthropic", "messages_tool_use.json"),
            )
            .unwrap();
        let body: Value = serde_json::from_slice(&translated.body).unwrap();
        let message = &body["choices"][0]["message"];
        assert_eq!(
            message["content"],
            "I'll check the current weather in San Francisco."
        );
        let call = &message["tool_calls"][0];
        assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        let arguments: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(
            arguments,
            json!({"location": "San Francisco, CA", "unit": "celsius"})
        );
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(body["usage"]["prompt_tokens"], 472);
        assert!(body["usage"].get("prompt_tokens_details").is_none());
    }

    #[test]
    fn output_tool_response_becomes_json_content() {
        let upstream = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
            "content": [{"type": "tool_use", "id": "toolu_x", "name": "tollgate_json_output__answer",
                         "input": {"answer": "42"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 5}
        });
        let translated = adapter()
            .chat_response("claude-haiku-4-5", upstream.to_string().as_bytes())
            .unwrap();
        let body: Value = serde_json::from_slice(&translated.body).unwrap();
        let choice = &body["choices"][0];
        let content: Value =
            serde_json::from_str(choice["message"]["content"].as_str().unwrap()).unwrap();
        assert_eq!(content, json!({"answer": "42"}));
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "stop");
    }

    #[test]
    fn stop_reasons_map_to_finish_reasons() {
        let cases = [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("pause_turn", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "stop"),
            ("refusal", "content_filter"),
        ];
        for (stop_reason, expected) in cases {
            let upstream = json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                "content": [], "stop_reason": stop_reason, "usage": {"input_tokens": 1, "output_tokens": 0}
            });
            let translated = adapter()
                .chat_response("m", upstream.to_string().as_bytes())
                .unwrap();
            let body: Value = serde_json::from_slice(&translated.body).unwrap();
            assert_eq!(
                body["choices"][0]["finish_reason"], expected,
                "{stop_reason}"
            );
            assert_eq!(body["choices"][0]["message"]["content"], Value::Null);
        }
        assert!(
            adapter()
                .chat_response("m", b"<html>bad gateway</html>")
                .is_err()
        );
        assert!(
            adapter()
                .chat_response("m", br#"{"type":"message"}"#)
                .is_err()
        );
    }

    #[test]
    fn error_bodies_map_to_openai_types() {
        let details = adapter().error_details(529, &fixture("anthropic", "error_overloaded.json"));
        assert_eq!(details.message, "Overloaded");
        assert_eq!(details.kind.as_deref(), Some("server_error"));
        assert_eq!(details.code.as_deref(), Some("overloaded_error"));

        let details =
            adapter().error_details(400, &fixture("anthropic", "error_invalid_request.json"));
        assert!(details.message.contains("tool_use_id"), "{details:?}");
        assert_eq!(details.kind.as_deref(), Some("invalid_request_error"));
        assert_eq!(details.code.as_deref(), Some("invalid_request_error"));

        let cases = [
            ("authentication_error", 401, "authentication_error"),
            ("permission_error", 403, "permission_error"),
            ("not_found_error", 404, "not_found_error"),
            ("request_too_large", 413, "invalid_request_error"),
            ("rate_limit_error", 429, "rate_limit_error"),
            ("api_error", 500, "server_error"),
            ("overloaded_error", 529, "server_error"),
        ];
        for (kind, status, expected) in cases {
            let body = json!({"type": "error", "error": {"type": kind, "message": "m"}});
            let details = adapter().error_details(status, body.to_string().as_bytes());
            assert_eq!(details.kind.as_deref(), Some(expected), "{kind}");
            assert_eq!(details.code.as_deref(), Some(kind));
        }

        let details = adapter().error_details(502, b"<html>Bad Gateway</html>");
        assert_eq!(details.message, "<html>Bad Gateway</html>");
        assert_eq!(details.kind, None);
        assert_eq!(
            adapter().error_details(503, b"").message,
            "upstream returned status 503"
        );
    }
}
