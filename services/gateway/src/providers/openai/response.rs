//! OpenAI-format answers, handed on as they are, with their usage read out; and Responses API
//! objects, forwarded to a client of that API, read for their usage or, for the response cache,
//! turned into a chat completion.
//! <https://platform.openai.com/docs/api-reference/responses/object>

use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tollgate_common::TokenUsage;

use crate::openai::Endpoint;
use crate::openai::request::{FunctionCall, ToolCall};
use crate::openai::response::{AssistantMessage, ChatCompletion, Choice, Usage};
use crate::providers::{Translated, UpstreamErrorDetails, plain_error_text, trailing_usage};

/// Reads the usage out of an OpenAI-shaped answer and hands the bytes on unchanged.
pub(super) fn translate_response(body: &[u8]) -> Result<Translated, String> {
    Ok(Translated {
        body: Bytes::copy_from_slice(body),
        usage: read_usage::<Usage>(body)?.map(|u| u.tokens()),
    })
}

/// The usage of an answer that goes to the client as it came, read without copying it.
/// Completions and moderations report chat-style usage (moderations none); image and
/// transcription answers report theirs in the Responses API's terms, when in tokens at all.
pub(super) fn passthrough_usage(
    endpoint: Endpoint,
    body: &[u8],
) -> Result<Option<TokenUsage>, String> {
    match endpoint {
        Endpoint::AudioTranscriptions if body.trim_ascii_start().first() != Some(&b'{') => {
            // `response_format` text, srt or vtt: the transcript alone, no usage.
            Ok(None)
        }
        Endpoint::ImageGenerations | Endpoint::AudioTranscriptions => {
            Ok(read_usage::<MediaUsage>(body)?.and_then(MediaUsage::tokens))
        }
        _ => Ok(read_usage::<Usage>(body)?.map(|u| u.tokens())),
    }
}

/// The `usage` of gpt-image-* answers (`input_tokens`, `output_tokens`, with text and image
/// input tokens detailed) and of gpt-4o-transcribe-style ones (`type: "tokens"`, the same
/// counts, audio and text input detailed); whisper-1's is `type: "duration"` with `seconds`,
/// which is no token usage. The details only split the input count, which is metered whole.
#[derive(Deserialize)]
struct MediaUsage {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

impl MediaUsage {
    fn tokens(self) -> Option<TokenUsage> {
        if self.kind.as_deref().is_some_and(|kind| kind != "tokens") {
            return None;
        }
        let input_tokens = self.input_tokens?;
        Some(TokenUsage {
            input_tokens,
            output_tokens: self.output_tokens.unwrap_or(0),
            cached_input_tokens: 0,
        })
    }
}

/// The top-level `usage` of a JSON answer: found from the end when it is there, else from a
/// parse of the whole answer that keeps nothing else.
fn read_usage<U: DeserializeOwned>(body: &[u8]) -> Result<Option<U>, String> {
    #[derive(Deserialize)]
    #[serde(bound = "U: DeserializeOwned")]
    struct WithUsage<U> {
        #[serde(default = "none")]
        usage: Option<U>,
    }
    fn none<U>() -> Option<U> {
        None
    }
    if let Some(usage) = trailing_usage(body) {
        return Ok(Some(usage));
    }
    let parsed: WithUsage<U> = serde_json::from_slice(body)
        .map_err(|e| format!("upstream answered with a body that is not a JSON object: {e}"))?;
    Ok(parsed.usage)
}

/// A Responses API object's `usage`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(super) struct ResponsesUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<InputTokensDetails>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct InputTokensDetails {
    #[serde(default)]
    cached_tokens: u64,
}

impl ResponsesUsage {
    pub(super) fn tokens(&self) -> TokenUsage {
        TokenUsage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cached_input_tokens: self.input_tokens_details.map_or(0, |d| d.cached_tokens),
        }
    }
}

/// The usage a Responses API object reports.
pub(super) fn responses_usage(body: &[u8]) -> Result<Option<TokenUsage>, String> {
    #[derive(Deserialize)]
    struct UsageOnly {
        #[serde(default)]
        usage: Option<ResponsesUsage>,
    }
    let response: UsageOnly = serde_json::from_slice(body)
        .map_err(|e| format!("upstream answered with a body that is not a response object: {e}"))?;
    Ok(response.usage.map(|usage| usage.tokens()))
}

/// A Responses API object as the chat completion the response cache keeps, with its usage.
pub(super) fn responses_as_chat(body: &[u8]) -> Result<Translated, String> {
    #[derive(Deserialize)]
    struct Response {
        #[serde(default)]
        id: String,
        #[serde(default)]
        created_at: u64,
        #[serde(default)]
        model: String,
        #[serde(default)]
        status: Option<String>,
        #[serde(default)]
        incomplete_details: Option<IncompleteDetails>,
        #[serde(default)]
        output: Vec<OutputItem>,
        #[serde(default)]
        usage: Option<ResponsesUsage>,
    }
    #[derive(Deserialize)]
    struct IncompleteDetails {
        #[serde(default)]
        reason: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(tag = "type")]
    enum OutputItem {
        #[serde(rename = "message")]
        Message {
            #[serde(default)]
            content: Vec<ContentPart>,
        },
        #[serde(rename = "function_call")]
        FunctionCall {
            call_id: String,
            name: String,
            #[serde(default)]
            arguments: String,
        },
        /// Reasoning, web searches and the other items a chat completion has no place for.
        #[serde(other)]
        Other,
    }
    #[derive(Deserialize)]
    #[serde(tag = "type")]
    enum ContentPart {
        #[serde(rename = "output_text")]
        Text { text: String },
        #[serde(rename = "refusal")]
        Refusal { refusal: String },
        #[serde(other)]
        Other,
    }
    let response: Response = serde_json::from_slice(body)
        .map_err(|e| format!("upstream answered with a body that is not a response object: {e}"))?;
    let mut text: Option<String> = None;
    let mut refusal: Option<String> = None;
    let mut tool_calls = Vec::new();
    for item in response.output {
        match item {
            OutputItem::Message { content } => {
                for part in content {
                    let (into, piece) = match part {
                        ContentPart::Text { text: piece } => (&mut text, piece),
                        ContentPart::Refusal { refusal: piece } => (&mut refusal, piece),
                        ContentPart::Other => continue,
                    };
                    into.get_or_insert_with(String::new).push_str(&piece);
                }
            }
            OutputItem::FunctionCall {
                call_id,
                name,
                arguments,
            } => tool_calls.push(ToolCall {
                id: call_id,
                kind: "function".to_owned(),
                function: FunctionCall { name, arguments },
            }),
            OutputItem::Other => {}
        }
    }
    let incomplete_reason = response
        .incomplete_details
        .and_then(|details| details.reason)
        .filter(|_| response.status.as_deref() == Some("incomplete"));
    let finish_reason = match incomplete_reason.as_deref() {
        Some("max_output_tokens") => "length",
        Some("content_filter") => "content_filter",
        _ if !tool_calls.is_empty() => "tool_calls",
        _ => "stop",
    };
    let usage = response.usage.map(|usage| usage.tokens());
    let completion = ChatCompletion {
        id: format!(
            "chatcmpl-{}",
            response.id.strip_prefix("resp_").unwrap_or(&response.id)
        ),
        object: "chat.completion".to_owned(),
        created: response.created_at,
        model: response.model,
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant".to_owned(),
                content: text,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                refusal,
            },
            finish_reason: Some(finish_reason.to_owned()),
            logprobs: None,
        }],
        usage: usage.map(Usage::from),
    };
    let body = serde_json::to_vec(&completion)
        .map_err(|e| format!("a response could not be written as a chat completion: {e}"))?;
    Ok(Translated {
        body: Bytes::from(body),
        usage,
    })
}

/// Reads an OpenAI-shaped error body (`{"error":{"message",...}}`), as OpenAI, Azure and many
/// compatible servers write it; falls back to the raw text.
pub(super) fn error_details(status: u16, body: &[u8]) -> UpstreamErrorDetails {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: ErrorObject,
    }
    #[derive(serde::Deserialize)]
    struct ErrorObject {
        #[serde(default)]
        message: Option<String>,
        #[serde(default, rename = "type")]
        kind: Option<String>,
        #[serde(default)]
        param: Option<String>,
        #[serde(default)]
        code: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) => UpstreamErrorDetails {
            // A blank message would reach the client as an error that says nothing.
            message: envelope
                .error
                .message
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| format!("upstream returned status {status}")),
            kind: envelope.error.kind,
            param: envelope.error.param,
            code: envelope.error.code.and_then(|c| match c {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }),
            retry_after: None,
        },
        Err(_) => UpstreamErrorDetails {
            message: plain_error_text(status, body),
            ..UpstreamErrorDetails::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::Endpoint;
    use crate::providers::ProviderAdapter;
    use crate::providers::openai::tests::adapter;
    use crate::providers::tests_support::fixture;
    use serde_json::{Value, json};

    #[test]
    fn response_passes_through_with_usage_read() {
        let body = fixture("openai", "chat_completion.json");
        let translated = adapter().chat_response("gpt-4o", &body).unwrap();
        assert_eq!(&translated.body[..], &body[..]);
        let usage = translated.usage.unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (19, 10));
    }

    #[test]
    fn usage_is_read_from_the_end_without_being_fooled_by_content() {
        let tricky = br#"{"id":"x","choices":[{"message":{"content":"say \"usage\": {\"prompt_tokens\": 99}"}}],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9},"system_fingerprint":"fp"}"#;
        let usage = adapter().chat_response("m", tricky).unwrap().usage.unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (7, 2));
        // A `usage` nested in the last member is not the answer's.
        let nested = br#"{"choices":[],"extra":{"usage":{"prompt_tokens":1,"completion_tokens":0,"total_tokens":1}}}"#;
        assert!(
            adapter()
                .chat_response("m", nested)
                .unwrap()
                .usage
                .is_none()
        );
        // Only in content: no usage at all.
        let none = br#"{"choices":[{"message":{"content":"\"usage\":{\"prompt_tokens\":5,\"total_tokens\":5}"}}]}"#;
        assert!(adapter().chat_response("m", none).unwrap().usage.is_none());
        // Null usage, and a body that is not JSON.
        assert!(
            adapter()
                .chat_response("m", br#"{"usage":null}"#)
                .unwrap()
                .usage
                .is_none()
        );
        assert!(adapter().chat_response("m", b"<html>").is_err());
    }

    fn chat_of(fixture_name: &str) -> (Value, Option<TokenUsage>) {
        let translated = responses_as_chat(&fixture("openai", fixture_name)).unwrap();
        (
            serde_json::from_slice(&translated.body).unwrap(),
            translated.usage,
        )
    }

    #[test]
    fn a_responses_object_is_read_for_its_usage_and_as_a_chat_completion() {
        let body = fixture("openai", "responses.json");
        let usage = responses_usage(&body).unwrap().unwrap();
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cached_input_tokens
            ),
            (1290, 52, 1024)
        );
        let (chat, chat_usage) = chat_of("responses.json");
        assert_eq!(chat_usage, Some(usage));
        assert_eq!(chat["object"], "chat.completion");
        assert_eq!(
            chat["id"],
            "chatcmpl-67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b"
        );
        assert_eq!(chat["created"], 1741476542);
        assert_eq!(chat["model"], "gpt-4.1-2025-04-14");
        let choice = &chat["choices"][0];
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(choice["message"]["role"], "assistant");
        assert!(
            choice["message"]["content"]
                .as_str()
                .unwrap()
                .starts_with("In a peaceful grove"),
            "{chat}"
        );
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(chat["usage"]["prompt_tokens"], 1290);
        assert_eq!(chat["usage"]["completion_tokens"], 52);
        assert_eq!(
            chat["usage"]["prompt_tokens_details"]["cached_tokens"],
            1024
        );
        // What the cache keeps reads back as a chat completion.
        serde_json::from_value::<ChatCompletion>(chat).unwrap();
    }

    #[test]
    fn function_calls_become_tool_calls_with_the_call_id() {
        let (chat, usage) = chat_of("responses_function_call.json");
        let choice = &chat["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["id"], "call_12345xyz");
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        assert_eq!(
            call["function"]["arguments"],
            "{\"location\":\"Paris, France\"}"
        );
        assert_eq!(usage.unwrap().output_tokens, 18);
    }

    #[test]
    fn an_incomplete_response_says_why_it_stopped() {
        let (chat, _) = chat_of("responses_incomplete.json");
        assert_eq!(chat["choices"][0]["finish_reason"], "length");
        assert_eq!(chat["choices"][0]["message"]["content"], "The story begins");

        let refused = json!({"id": "resp_1", "object": "response", "created_at": 1,
            "status": "incomplete", "model": "m",
            "incomplete_details": {"reason": "content_filter"},
            "output": [{"type": "message", "id": "msg_1", "status": "incomplete", "role": "assistant",
                        "content": [{"type": "refusal", "refusal": "I can't help with that."}]}]});
        let translated = responses_as_chat(refused.to_string().as_bytes()).unwrap();
        let chat: Value = serde_json::from_slice(&translated.body).unwrap();
        assert_eq!(chat["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(
            chat["choices"][0]["message"]["refusal"],
            "I can't help with that."
        );
        assert!(translated.usage.is_none());
    }

    #[test]
    fn a_body_that_is_not_a_response_is_the_targets_failure() {
        assert!(responses_usage(b"<html>").is_err());
        assert!(responses_as_chat(b"[1]").is_err());
        assert!(responses_usage(br#"{"usage":null}"#).unwrap().is_none());
    }

    #[test]
    fn image_and_transcription_usage_is_read_when_in_tokens() {
        let usage = |endpoint, body: &[u8]| adapter().passthrough_usage(endpoint, body);
        let image = br#"{"created":1,"data":[{"b64_json":"iVBORw0KGgo="}],"usage":{"input_tokens":50,"input_tokens_details":{"image_tokens":40,"text_tokens":10},"output_tokens":4160,"total_tokens":4210}}"#;
        let tokens = usage(Endpoint::ImageGenerations, image).unwrap().unwrap();
        assert_eq!((tokens.input_tokens, tokens.output_tokens), (50, 4160));
        // dall-e: no usage at all.
        let dall_e = br#"{"created":1,"data":[{"url":"https://x/y.png","revised_prompt":"say \"usage\": {}"}]}"#;
        assert_eq!(usage(Endpoint::ImageGenerations, dall_e).unwrap(), None);
        assert!(usage(Endpoint::ImageGenerations, b"<html>").is_err());

        let transcribe = br#"{"text":"hi","usage":{"type":"tokens","input_tokens":14,"input_token_details":{"text_tokens":0,"audio_tokens":14},"output_tokens":45,"total_tokens":59}}"#;
        let tokens = usage(Endpoint::AudioTranscriptions, transcribe)
            .unwrap()
            .unwrap();
        assert_eq!((tokens.input_tokens, tokens.output_tokens), (14, 45));
        for unmetered in [
            &br#"{"text":"hi","usage":{"type":"duration","seconds":3}}"#[..],
            br#"{"task":"transcribe","duration":3.2,"text":"hi","segments":[],"usage":{"type":"duration","seconds":4}}"#,
            b"hello there\n",
            b"1\n00:00:00,000 --> 00:00:01,000\nhello\n\n",
            b"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nhello\n",
            b"",
        ] {
            assert_eq!(
                usage(Endpoint::AudioTranscriptions, unmetered).unwrap(),
                None,
                "{}",
                String::from_utf8_lossy(unmetered)
            );
        }
    }

    #[test]
    fn error_bodies_keep_the_providers_message() {
        let body = fixture("openai", "error_400.json");
        let details = adapter().error_details(400, &body);
        assert!(details.message.contains("max_tokens"), "{details:?}");
        assert_eq!(details.kind.as_deref(), Some("invalid_request_error"));
        assert_eq!(details.param.as_deref(), Some("max_tokens"));
    }
}
