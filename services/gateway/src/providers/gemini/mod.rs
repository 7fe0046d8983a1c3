//! Google Gemini, the Generative Language API (`v1beta`).
//!
//! Chat completions become `generateContent` (or `streamGenerateContent?alt=sse`) requests:
//! system messages move to `systemInstruction`, assistant turns are the `model` role, tool calls
//! and tool results become `functionCall` / `functionResponse` parts, and sampling options go into
//! `generationConfig`. Answers are rebuilt as OpenAI completions and chunks. Embeddings go through
//! `batchEmbedContents`. The API key travels in the `x-goog-api-key` header, never in the URL.
//! <https://ai.google.dev/api/generate-content>, <https://ai.google.dev/api/embeddings>
//!
//! Thinking models put a `thoughtSignature` on the `functionCall` parts they answer with, and
//! Gemini 3 refuses the next step of a tool loop unless each signature comes back on the same
//! part. OpenAI's tool calls have no field for it and the gateway keeps no state, so the
//! signature rides in the tool call id the client echoes back
//! (see [`response::tool_call_id`]).
//! <https://ai.google.dev/gemini-api/docs/thought-signatures>

// Vertex AI serves Gemini through this dialect too (`super::vertex`).
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod stream;

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName};
use tollgate_common::config::{ProviderConfig, ProviderKind};

use super::{
    ProviderAdapter, StreamTranslator, Translated, UpstreamErrorDetails, UpstreamRequest, UrlCache,
    base_headers, encode_path_segment, secret_header,
};
use crate::error::GatewayError;
use crate::openai::InboundBody;

pub struct Gemini {
    api_base: String,
    headers: HeaderMap,
    urls: UrlCache,
}

impl Gemini {
    pub fn new(config: &ProviderConfig) -> Result<Self, String> {
        let mut headers = base_headers(config)?;
        if let Some(key) = &config.api_key {
            set_key(&mut headers, key.expose())?;
        }
        Ok(Gemini {
            api_base: config.api_base.clone(),
            headers,
            urls: UrlCache::default(),
        })
    }

    /// `{api_base}/v1beta/models/{model}:{method}`, the model percent-encoded.
    fn url(&self, model: &str, method: &str) -> Result<Url, GatewayError> {
        self.urls.get(&format!("{method} {model}"), || {
            format!(
                "{}/v1beta/models/{}:{method}",
                self.api_base,
                encode_path_segment(bare_model(model))
            )
        })
    }
}

/// The model id without the `models/` prefix Gemini's resource names carry.
pub(super) fn bare_model(model: &str) -> &str {
    model.strip_prefix("models/").unwrap_or(model)
}

/// How this provider takes an API key.
fn set_key(headers: &mut HeaderMap, api_key: &str) -> Result<(), String> {
    headers.insert(
        HeaderName::from_static("x-goog-api-key"),
        secret_header(api_key)?,
    );
    Ok(())
}

impl ProviderAdapter for Gemini {
    fn authenticate(&self, headers: &mut HeaderMap, api_key: &str) -> Result<(), String> {
        set_key(headers, api_key)
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Gemini
    }

    fn chat_request(
        &self,
        model: &str,
        body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError> {
        let bytes = request::translate_request(body)?;
        let url = if body.stream {
            self.url(model, "streamGenerateContent?alt=sse")?
        } else {
            self.url(model, "generateContent")?
        };
        Ok(UpstreamRequest {
            url,
            headers: self.headers.clone(),
            own_credentials: false,
            body: bytes,
        })
    }

    fn chat_response(&self, model: &str, body: &[u8]) -> Result<Translated, String> {
        response::translate_response(model, body)
    }

    fn chat_stream(&self, model: &str, body: &InboundBody) -> Box<dyn StreamTranslator> {
        Box::new(stream::GeminiStream::new(
            model,
            body.client_wants_stream_usage,
        ))
    }

    fn embeddings_request(
        &self,
        model: &str,
        body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError> {
        let bytes = request::translate_embeddings(model, body)?;
        Ok(UpstreamRequest {
            url: self.url(model, "batchEmbedContents")?,
            headers: self.headers.clone(),
            own_credentials: false,
            body: bytes,
        })
    }

    fn embeddings_response(
        &self,
        model: &str,
        request: &InboundBody,
        body: &[u8],
    ) -> Result<Translated, String> {
        response::translate_embeddings(model, request, body)
    }

    fn error_details(&self, status: u16, body: &[u8]) -> UpstreamErrorDetails {
        response::error_details(status, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::Endpoint;
    use crate::providers::tests_support::fixture;
    use bytes::Bytes;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;
    use tollgate_common::Secret;

    pub(super) fn adapter() -> Gemini {
        Gemini::new(&ProviderConfig {
            kind: ProviderKind::Gemini,
            api_base: "https://generativelanguage.googleapis.com".into(),
            api_key: Some(Secret::new("AIza-test-key")),
            api_version: None,
            responses_api: false,
            headers: BTreeMap::new(),
            stream_usage: true,
            aws: None,
            vertex: None,
        })
        .unwrap()
    }

    pub(super) fn chat(body: Value) -> InboundBody {
        InboundBody::parse(Endpoint::ChatCompletions, Bytes::from(body.to_string())).unwrap()
    }

    pub(super) fn sent(body: Value) -> Value {
        let request = adapter()
            .chat_request("gemini-2.5-flash", &chat(body))
            .unwrap();
        serde_json::from_slice(&request.body).unwrap()
    }

    pub(super) fn rejected(body: Value) -> GatewayError {
        adapter()
            .chat_request("gemini-2.5-flash", &chat(body))
            .unwrap_err()
    }

    pub(super) fn param_of(error: &GatewayError) -> Option<String> {
        error.body().error.param.map(str::to_owned)
    }

    pub(super) fn with_tool_history(extra: Value) -> Value {
        let mut body = json!({
            "model": "smart",
            "messages": [
                {"role": "user", "content": "Weather and time in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_a", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
                    {"id": "call_b", "type": "function",
                     "function": {"name": "get_time", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_a", "content": "{\"temp_c\": 21}"},
                {"role": "tool", "tool_call_id": "call_b", "content": "14:05"}
            ]
        });
        if let (Some(messages), Value::Array(more)) = (body["messages"].as_array_mut(), extra) {
            messages.extend(more);
        }
        body
    }

    #[test]
    fn urls_encode_the_model_and_the_key_goes_in_a_header_only() {
        let gemini = adapter();
        let plain = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let request = gemini
            .chat_request("gemini-2.5-flash", &chat(plain.clone()))
            .unwrap();
        assert_eq!(
            request.url.as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(request.headers["x-goog-api-key"], "AIza-test-key");
        assert!(request.headers["x-goog-api-key"].is_sensitive());
        assert_eq!(request.headers["content-type"], "application/json");
        assert!(!request.url.as_str().contains("key="));

        let mut streaming = plain;
        streaming["stream"] = json!(true);
        let request = gemini
            .chat_request("models/tuned model/v1?x", &chat(streaming))
            .unwrap();
        assert_eq!(
            request.url.as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/tuned%20model%2Fv1%3Fx:streamGenerateContent?alt=sse"
        );
        assert!(!request.url.as_str().contains("AIza"));
    }

    /// The signature of a fixture part, as Gemini wrote it.
    pub(super) fn part_signature(response: &Value, part: usize) -> String {
        response["candidates"][0]["content"]["parts"][part]["thoughtSignature"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The next request of the tool loop: the answer echoed back as is, then one result per call.
    pub(super) fn next_tool_turn(assistant: &Value) -> Value {
        let mut messages = vec![
            json!({"role": "user", "content": "Weather and time in Paris?"}),
            assistant.clone(),
        ];
        for call in assistant["tool_calls"].as_array().unwrap() {
            messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "ok"}));
        }
        json!({"model": "smart", "messages": messages})
    }

    #[test]
    fn embeddings_request_and_response() {
        let gemini = adapter();
        let body = InboundBody::parse(
            Endpoint::Embeddings,
            Bytes::from(
                json!({"model": "embed", "input": ["first", "second"], "dimensions": 256})
                    .to_string(),
            ),
        )
        .unwrap();
        let request = gemini
            .embeddings_request("models/gemini-embedding-001", &body)
            .unwrap();
        assert_eq!(
            request.url.as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:batchEmbedContents"
        );
        assert_eq!(request.headers["x-goog-api-key"], "AIza-test-key");
        let sent: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            sent,
            json!({"requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "first"}]}, "outputDimensionality": 256},
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "second"}]}, "outputDimensionality": 256}
            ]})
        );

        let one = InboundBody::parse(
            Endpoint::Embeddings,
            Bytes::from_static(br#"{"model":"embed","input":"only"}"#),
        )
        .unwrap();
        let sent: Value = serde_json::from_slice(
            &gemini
                .embeddings_request("gemini-embedding-001", &one)
                .unwrap()
                .body,
        )
        .unwrap();
        assert_eq!(
            sent,
            json!({"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "only"}]}}]})
        );

        let tokens = InboundBody::parse(
            Endpoint::Embeddings,
            Bytes::from_static(br#"{"model":"embed","input":[[1,2,3]]}"#),
        )
        .unwrap();
        let error = gemini
            .embeddings_request("gemini-embedding-001", &tokens)
            .unwrap_err();
        assert!(matches!(error, GatewayError::Unsupported(_)), "{error:?}");
        assert!(error.to_string().contains("token arrays"));

        let translated = gemini
            .embeddings_response(
                "gemini-embedding-001",
                &tokens,
                &fixture("gemini", "batch_embed_response.json"),
            )
            .unwrap();
        assert!(translated.usage.is_none());
        let body: Value = serde_json::from_slice(&translated.body).unwrap();
        assert_eq!(body["object"], "list");
        assert_eq!(body["model"], "gemini-embedding-001");
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 0, "total_tokens": 0})
        );
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data[1]["object"], "embedding");
        assert_eq!(data[1]["index"], 1);
        let values: Vec<f64> = data[0]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(values.len(), 4);
        assert!((values[1] + 0.0456).abs() < 1e-6);
        assert!(
            gemini
                .embeddings_response("m", &tokens, b"{\"oops\":1}")
                .is_err()
        );

        // Asked for base64: OpenAI's little-endian float32 bytes, which its SDKs decode.
        let base64 = InboundBody::parse(
            Endpoint::Embeddings,
            Bytes::from_static(br#"{"model":"embed","input":"x","encoding_format":"base64"}"#),
        )
        .unwrap();
        let translated = gemini
            .embeddings_response(
                "gemini-embedding-001",
                &base64,
                &fixture("gemini", "batch_embed_response.json"),
            )
            .unwrap();
        let body: Value = serde_json::from_slice(&translated.body).unwrap();
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        let decoded: Vec<f32> = bytes
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(decoded.len(), 4);
        assert!((decoded[1] + 0.0456).abs() < 1e-6);
    }

    #[test]
    fn kind_is_gemini() {
        assert_eq!(adapter().kind(), ProviderKind::Gemini);
    }
}
