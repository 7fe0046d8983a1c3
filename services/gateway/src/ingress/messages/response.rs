//! The pipeline's OpenAI-shaped answers as Anthropic writes them: the whole message, the error
//! body, and the `anthropic-ratelimit-*` headers.

use std::time::{Duration, SystemTime};

use actix_web::http::header::{HeaderName, HeaderValue};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::error::GatewayError;
use crate::openai::response::{ChatCompletion, Usage};

/// An OpenAI `chat.completion` as an Anthropic `message`.
pub fn to_message(openai: &[u8]) -> Result<Bytes, GatewayError> {
    let completion: ChatCompletion = serde_json::from_slice(openai)
        .map_err(|e| GatewayError::Internal(format!("an answer is not a chat completion: {e}")))?;
    let choice = completion.choices.into_iter().next();
    let mut content = Vec::new();
    let mut finish_reason = None;
    if let Some(choice) = choice {
        finish_reason = choice.finish_reason;
        let message = choice.message;
        if let Some(text) = message.content.filter(|t| !t.is_empty()) {
            content.push(json!({"type": "text", "text": text}));
        }
        if let Some(refusal) = message.refusal.filter(|t| !t.is_empty()) {
            content.push(json!({"type": "text", "text": refusal}));
            finish_reason = Some("content_filter".to_owned());
        }
        for call in message.tool_calls.unwrap_or_default() {
            content.push(json!({
                "type": "tool_use",
                "id": call.id,
                "name": call.function.name,
                "input": tool_input(&call.function.arguments),
            }));
        }
    }
    if content.is_empty() {
        // Clients read `content[0].text`; an empty answer is one empty text block.
        content.push(json!({"type": "text", "text": ""}));
    }
    let message = json!({
        "id": message_id(&completion.id),
        "type": "message",
        "role": "assistant",
        "model": completion.model,
        "content": content,
        "stop_reason": stop_reason(finish_reason.as_deref()),
        "stop_sequence": null,
        "usage": usage(completion.usage.unwrap_or_default()),
    });
    Ok(Bytes::from(message.to_string()))
}

/// Anthropic's message ids start with `msg_` (an Anthropic target's id has it already).
pub(super) fn message_id(openai_id: &str) -> String {
    let bare = openai_id.strip_prefix("chatcmpl-").unwrap_or(openai_id);
    if bare.starts_with("msg_") {
        bare.to_owned()
    } else {
        format!("msg_{bare}")
    }
}

/// OpenAI's `finish_reason` as Anthropic's `stop_reason`.
pub(super) fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic counts cached prompt tokens apart from `input_tokens`; OpenAI counts them in.
pub(super) fn usage(usage: Usage) -> Value {
    let tokens = usage.tokens();
    json!({
        "input_tokens": tokens.input_tokens.saturating_sub(tokens.cached_input_tokens),
        "output_tokens": tokens.output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": tokens.cached_input_tokens,
    })
}

/// A tool call's arguments as the JSON object Anthropic's `input` is. Arguments that are not
/// JSON (a model can write anything) are kept as the one string member `arguments`, so the
/// client still sees what the model wrote.
pub(super) fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => value,
        _ => json!({"arguments": arguments}),
    }
}

/// Anthropic's `error.type` for an answer's status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 408 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// `{"type":"error","error":{"type","message"},"request_id"}`.
pub fn error_body(error: &GatewayError, request_id: &str) -> Value {
    json!({
        "type": "error",
        "error": {"type": error_type(error.status().as_u16()), "message": error.to_string()},
        "request_id": request_id,
    })
}

/// The `anthropic-ratelimit-*` headers for the `x-ratelimit-*` ones admission set (OpenAI's
/// names and a duration until reset, where Anthropic gives an RFC 3339 time). Every answer of a
/// limited key carries them, so the names are static and the times written by hand.
pub fn rate_limit_headers(
    headers: &[(HeaderName, HeaderValue)],
    now: SystemTime,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let Some(rest) = name.as_str().strip_prefix("x-ratelimit-") else {
            continue;
        };
        let Some(anthropic) = anthropic_name(rest) else {
            continue;
        };
        let value = if rest.starts_with("reset-") {
            let Some(reset) = value.to_str().ok().and_then(parse_duration) else {
                continue;
            };
            let Some(text) = rfc3339(now + reset) else {
                continue;
            };
            match HeaderValue::from_bytes(&text) {
                Ok(value) => value,
                Err(_) => continue,
            }
        } else {
            value.clone()
        };
        out.push((anthropic, value));
    }
    out
}

/// Anthropic's name for OpenAI's `x-ratelimit-{what}-{unit}` (given without its prefix). The
/// names are constants, checked once at compile time rather than on every answer.
fn anthropic_name(openai: &str) -> Option<HeaderName> {
    const REQUESTS_LIMIT: HeaderName =
        HeaderName::from_static("anthropic-ratelimit-requests-limit");
    const REQUESTS_REMAINING: HeaderName =
        HeaderName::from_static("anthropic-ratelimit-requests-remaining");
    const REQUESTS_RESET: HeaderName =
        HeaderName::from_static("anthropic-ratelimit-requests-reset");
    const TOKENS_LIMIT: HeaderName = HeaderName::from_static("anthropic-ratelimit-tokens-limit");
    const TOKENS_REMAINING: HeaderName =
        HeaderName::from_static("anthropic-ratelimit-tokens-remaining");
    const TOKENS_RESET: HeaderName = HeaderName::from_static("anthropic-ratelimit-tokens-reset");
    Some(match openai {
        "limit-requests" => REQUESTS_LIMIT,
        "remaining-requests" => REQUESTS_REMAINING,
        "reset-requests" => REQUESTS_RESET,
        "limit-tokens" => TOKENS_LIMIT,
        "remaining-tokens" => TOKENS_REMAINING,
        "reset-tokens" => TOKENS_RESET,
        _ => return None,
    })
}

/// `250ms`, `7s` or `6m0s`, as admission writes the time until a limit resets.
fn parse_duration(text: &str) -> Option<Duration> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    let text = text.strip_suffix('s')?;
    let (minutes, seconds) = match text.split_once('m') {
        Some((m, s)) => (m.parse::<u64>().ok()?, s.parse::<u64>().ok()?),
        None => (0, text.parse::<u64>().ok()?),
    };
    Some(Duration::from_secs(minutes * 60 + seconds))
}

/// `at` as `2023-11-14T22:13:20Z`, in whole seconds (UTC), as Anthropic writes its resets.
fn rfc3339(at: SystemTime) -> Option<[u8; 20]> {
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    let at = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()?;
    let year = u16::try_from(at.year()).ok().filter(|y| *y <= 9999)?;
    let mut text = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, digits: usize, mut n: u16| {
        for i in (at..at + digits).rev() {
            text[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, u16::from(u8::from(at.month())));
    put(8, 2, u16::from(at.day()));
    put(11, 2, u16::from(at.hour()));
    put(14, 2, u16::from(at.minute()));
    put(17, 2, u16::from(at.second()));
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_becomes_a_message_with_text_tools_and_usage() {
        let openai = json!({
            "id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Let me look.",
                "tool_calls": [{"id": "call_1", "type": "function",
                                "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37,
                      "prompt_tokens_details": {"cached_tokens": 10}},
        });
        let message: Value =
            serde_json::from_slice(&to_message(openai.to_string().as_bytes()).unwrap()).unwrap();
        assert_eq!(
            message,
            json!({
                "id": "msg_abc", "type": "message", "role": "assistant", "model": "gpt-4o",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 20, "output_tokens": 7,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 10},
            })
        );
    }

    #[test]
    fn stop_reasons_and_odd_arguments() {
        assert_eq!(stop_reason(Some("length")), "max_tokens");
        assert_eq!(stop_reason(Some("stop")), "end_turn");
        assert_eq!(stop_reason(Some("content_filter")), "refusal");
        assert_eq!(stop_reason(None), "end_turn");
        assert_eq!(tool_input(""), json!({}));
        assert_eq!(tool_input("{oops"), json!({"arguments": "{oops"}));
    }

    #[test]
    fn errors_take_anthropics_types() {
        let body = error_body(&GatewayError::UnknownModel("m".into()), "req-1");
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "not_found_error");
        assert_eq!(body["request_id"], "req-1");
        assert_eq!(error_type(429), "rate_limit_error");
        assert_eq!(error_type(401), "authentication_error");
        assert_eq!(error_type(502), "api_error");
    }

    #[test]
    fn rate_limit_headers_are_renamed_and_resets_become_times() {
        let headers = vec![
            (
                HeaderName::from_static("x-ratelimit-limit-requests"),
                HeaderValue::from_static("60"),
            ),
            (
                HeaderName::from_static("x-ratelimit-remaining-tokens"),
                HeaderValue::from_static("900"),
            ),
            (
                HeaderName::from_static("x-ratelimit-reset-requests"),
                HeaderValue::from_static("1m30s"),
            ),
            (
                HeaderName::from_static("x-ratelimit-reset-tokens"),
                HeaderValue::from_static("250ms"),
            ),
        ];
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let out = rate_limit_headers(&headers, now);
        let get = |name: &str| {
            out.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            get("anthropic-ratelimit-requests-limit").as_deref(),
            Some("60")
        );
        assert_eq!(
            get("anthropic-ratelimit-tokens-remaining").as_deref(),
            Some("900")
        );
        assert_eq!(
            get("anthropic-ratelimit-requests-reset").as_deref(),
            Some("2023-11-14T22:14:50Z")
        );
        // Single-digit fields are padded.
        let early = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let out = rate_limit_headers(&headers[2..3], early);
        assert_eq!(out[0].1, "2001-09-09T01:48:10Z");
        assert_eq!(
            get("anthropic-ratelimit-tokens-reset").as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
    }
}
