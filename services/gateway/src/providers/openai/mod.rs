//! OpenAI and every OpenAI-compatible server (vLLM, Ollama, Groq, Mistral, Together, DeepSeek).
//!
//! The client already speaks this format, so requests go out as the client's bytes with `model`
//! swapped, and answers come back untouched: the adapter only reads the usage out of them.
//! <https://platform.openai.com/docs/api-reference/chat>

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde::Deserialize;
use tollgate_common::TokenUsage;
use tollgate_common::config::{ProviderConfig, ProviderKind};

use super::sse::{SseDecoder, SseEvent};
use super::{
    ProviderAdapter, StreamTranslator, Translated, UpstreamErrorDetails, UpstreamRequest,
    base_headers, openai_error_details, parse_url, secret_header,
};
use crate::error::GatewayError;
use crate::openai::InboundBody;
use crate::openai::response::{SSE_DONE, Usage};

pub struct OpenAi {
    chat_url: Url,
    embeddings_url: Url,
    headers: HeaderMap,
}

impl OpenAi {
    pub fn new(config: &ProviderConfig) -> Result<Self, String> {
        let mut headers = base_headers(config)?;
        if let Some(key) = &config.api_key {
            set_key(&mut headers, key.expose())?;
        }
        Ok(OpenAi {
            chat_url: parse_url(&format!("{}/chat/completions", config.api_base))?,
            embeddings_url: parse_url(&format!("{}/embeddings", config.api_base))?,
            headers,
        })
    }
}

/// How this provider takes an API key.
fn set_key(headers: &mut HeaderMap, api_key: &str) -> Result<(), String> {
    headers.insert(AUTHORIZATION, secret_header(&format!("Bearer {api_key}"))?);
    Ok(())
}

impl ProviderAdapter for OpenAi {
    fn authenticate(&self, headers: &mut HeaderMap, api_key: &str) -> Result<(), String> {
        set_key(headers, api_key)
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Openai
    }

    fn chat_request(
        &self,
        model: &str,
        body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError> {
        Ok(UpstreamRequest {
            url: self.chat_url.clone(),
            headers: self.headers.clone(),
            own_credentials: false,
            body: body.to_openai_body(model),
        })
    }

    fn chat_response(&self, _model: &str, body: &[u8]) -> Result<Translated, String> {
        passthrough_response(body)
    }

    fn chat_stream(&self, _model: &str, body: &InboundBody) -> Box<dyn StreamTranslator> {
        Box::new(OpenAiStream::new(!body.client_wants_stream_usage))
    }

    fn embeddings_request(
        &self,
        model: &str,
        body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError> {
        Ok(UpstreamRequest {
            url: self.embeddings_url.clone(),
            headers: self.headers.clone(),
            own_credentials: false,
            body: body.to_openai_body(model),
        })
    }

    fn embeddings_response(
        &self,
        _model: &str,
        _request: &InboundBody,
        body: &[u8],
    ) -> Result<Translated, String> {
        passthrough_response(body)
    }

    fn error_details(&self, status: u16, body: &[u8]) -> UpstreamErrorDetails {
        openai_error_details(status, body)
    }
}

/// Reads the usage out of an OpenAI-shaped answer and hands the bytes on unchanged.
pub(crate) fn passthrough_response(body: &[u8]) -> Result<Translated, String> {
    #[derive(Deserialize)]
    struct WithUsage {
        #[serde(default)]
        usage: Option<Usage>,
    }
    let usage = match trailing_usage(body) {
        Some(usage) => Some(usage),
        None => {
            let parsed: WithUsage = serde_json::from_slice(body).map_err(|e| {
                format!("upstream answered with a body that is not a JSON object: {e}")
            })?;
            parsed.usage
        }
    };
    Ok(Translated {
        body: Bytes::copy_from_slice(body),
        usage: usage.map(|u| u.tokens()),
    })
}

/// The top-level `usage` object of an OpenAI answer, read without parsing the rest: OpenAI
/// writes it last, so it is found from the end. Only a real object key qualifies (preceded by
/// `{` or `,`; inside a string a quote is escaped), and only a complete usage object is
/// accepted; anything else returns `None` and the caller parses the whole body.
fn trailing_usage(body: &[u8]) -> Option<Usage> {
    const KEY: &[u8] = b"\"usage\"";
    let trimmed = body.trim_ascii();
    if trimmed.first() != Some(&b'{') || trimmed.last() != Some(&b'}') {
        return None;
    }
    let at = memchr::memmem::rfind(body, KEY)?;
    let before = body[..at].trim_ascii_end().last()?;
    if !matches!(before, b',' | b'{') {
        return None;
    }
    let rest = body[at + KEY.len()..]
        .trim_ascii_start()
        .strip_prefix(b":")?;
    let mut de = serde_json::Deserializer::from_slice(rest);
    Option::<Usage>::deserialize(&mut de).ok().flatten()
}

/// Relays an OpenAI event stream event by event, unchanged but for one thing: when the gateway
/// asked for the usage chunk on the client's behalf, that chunk is read and not forwarded.
pub(crate) struct OpenAiStream {
    decoder: SseDecoder,
    strip_usage_chunk: bool,
    usage: Option<TokenUsage>,
    output: String,
}

impl OpenAiStream {
    pub(crate) fn new(strip_usage_chunk: bool) -> Self {
        OpenAiStream {
            decoder: SseDecoder::new(),
            strip_usage_chunk,
            usage: None,
            output: String::new(),
        }
    }

    fn relay(&mut self, event: SseEvent, out: &mut BytesMut) -> Result<(), String> {
        #[derive(Deserialize)]
        struct ChunkView<'a> {
            #[serde(default, borrow)]
            choices: Vec<ChoiceView<'a>>,
            #[serde(default)]
            usage: Option<Usage>,
            #[serde(default)]
            error: Option<serde_json::Value>,
        }
        #[derive(Deserialize)]
        struct ChoiceView<'a> {
            #[serde(default, borrow)]
            delta: Option<DeltaView<'a>>,
        }
        #[derive(Deserialize)]
        struct DeltaView<'a> {
            #[serde(default, borrow)]
            content: Option<Cow<'a, str>>,
        }
        if event.data == "[DONE]" {
            // Held back to `finish`: the end of the answer goes out only after the upstream
            // has ended and the request's usage is recorded.
            return Ok(());
        }
        let Ok(chunk) = serde_json::from_str::<ChunkView<'_>>(&event.data) else {
            out.extend_from_slice(&event.raw);
            return Ok(());
        };
        if let Some(error) = chunk.error {
            out.extend_from_slice(&event.raw);
            let message = error
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("upstream reported an error in the stream");
            return Err(message.to_owned());
        }
        for choice in &chunk.choices {
            if let Some(text) = choice.delta.as_ref().and_then(|d| d.content.as_deref()) {
                self.output.push_str(text);
            }
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.tokens());
            if self.strip_usage_chunk && chunk.choices.is_empty() {
                return Ok(());
            }
        }
        out.extend_from_slice(&event.raw);
        Ok(())
    }
}

impl StreamTranslator for OpenAiStream {
    fn feed(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), String> {
        self.decoder.push(chunk);
        while let Some(event) = self.decoder.next_event() {
            self.relay(event, out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), String> {
        while let Some(event) = self.decoder.finish() {
            self.relay(event, out)?;
        }
        out.extend_from_slice(SSE_DONE);
        Ok(())
    }

    fn usage(&self) -> Option<TokenUsage> {
        self.usage
    }

    fn output_text(&self) -> &str {
        &self.output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::Endpoint;
    use crate::providers::tests_support::fixture;
    use std::collections::BTreeMap;
    use tollgate_common::Secret;

    fn adapter() -> OpenAi {
        OpenAi::new(&ProviderConfig {
            kind: ProviderKind::Openai,
            api_base: "http://127.0.0.1:1/v1".into(),
            api_key: Some(Secret::new("sk-test")),
            api_version: None,
            headers: BTreeMap::new(),
        })
        .unwrap()
    }

    #[test]
    fn request_goes_to_chat_completions_with_bearer_key_and_the_target_model() {
        let body = InboundBody::parse(
            Endpoint::ChatCompletions,
            Bytes::from_static(br#"{"model":"smart","messages":[{"role":"user","content":"hi"}]}"#),
        )
        .unwrap();
        let request = adapter().chat_request("gpt-4o", &body).unwrap();
        assert_eq!(
            request.url.as_str(),
            "http://127.0.0.1:1/v1/chat/completions"
        );
        assert_eq!(request.headers[AUTHORIZATION], "Bearer sk-test");
        assert!(request.headers[AUTHORIZATION].is_sensitive());
        let sent: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(sent["model"], "gpt-4o");
    }

    #[test]
    fn response_passes_through_with_usage_read() {
        let body = fixture("openai", "chat_completion.json");
        let translated = adapter().chat_response("gpt-4o", &body).unwrap();
        assert_eq!(&translated.body[..], &body[..]);
        let usage = translated.usage.unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (19, 10));
    }

    #[test]
    fn stream_is_relayed_verbatim_except_the_usage_chunk_we_asked_for() {
        let stream = fixture("openai", "chat_stream.sse");
        for strip in [true, false] {
            let mut translator = OpenAiStream::new(strip);
            let mut out = BytesMut::new();
            for piece in stream.chunks(7) {
                translator.feed(piece, &mut out).unwrap();
            }
            translator.finish(&mut out).unwrap();
            let text = String::from_utf8(out.to_vec()).unwrap();
            assert_eq!(text.contains("\"usage\":{"), !strip, "{text}");
            assert!(text.ends_with("data: [DONE]\n\n"));
            assert_eq!(translator.output_text(), "Hello there!");
            assert_eq!(translator.usage().unwrap().output_tokens, 3);
        }
    }

    #[test]
    fn usage_is_read_from_the_end_without_being_fooled_by_content() {
        let tricky = br#"{"id":"x","choices":[{"message":{"content":"say \"usage\": {\"prompt_tokens\": 99}"}}],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9},"system_fingerprint":"fp"}"#;
        let usage = adapter().chat_response("m", tricky).unwrap().usage.unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (7, 2));
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

    #[test]
    fn error_bodies_keep_the_providers_message() {
        let body = fixture("openai", "error_400.json");
        let details = adapter().error_details(400, &body);
        assert!(details.message.contains("max_tokens"), "{details:?}");
        assert_eq!(details.kind.as_deref(), Some("invalid_request_error"));
        assert_eq!(details.param.as_deref(), Some("max_tokens"));
    }
}
