//! Anthropic's Messages API (`POST /v1/messages`).
//!
//! Requests are rebuilt from the typed OpenAI request: system and developer messages become the
//! top-level `system`, consecutive turns of one role are merged (Anthropic wants user and
//! assistant turns to alternate), tool results become `tool_result` blocks of a user turn, and
//! `response_format` is emulated with a forced tool whose input is the JSON answer. Answers,
//! whole or streamed, are turned back into `chat.completion` and `chat.completion.chunk`.
//! <https://docs.anthropic.com/en/api/messages>

// Vertex AI serves Claude through this dialect too (`super::vertex`).
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod stream;

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tollgate_common::config::{ProviderConfig, ProviderKind};

use super::{
    ProviderAdapter, StreamTranslator, Translated, UpstreamErrorDetails, UpstreamRequest,
    base_headers, parse_url, secret_header,
};
use crate::error::GatewayError;
use crate::ingress::Ingress;
use crate::openai::{InboundBody, NativeBody};

/// The `anthropic-version` header sent when the provider's `api_version` is not set.
const DEFAULT_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    messages_url: Url,
    headers: HeaderMap,
}

impl Anthropic {
    pub fn new(config: &ProviderConfig) -> Result<Self, String> {
        let mut headers = base_headers(config)?;
        if let Some(key) = &config.api_key {
            set_key(&mut headers, key.expose())?;
        }
        let version_header = HeaderName::from_static("anthropic-version");
        match &config.api_version {
            Some(version) => {
                let value = HeaderValue::from_str(version)
                    .map_err(|_| format!("invalid api_version `{version}`"))?;
                headers.insert(version_header, value);
            }
            None => {
                if !headers.contains_key(&version_header) {
                    headers.insert(version_header, HeaderValue::from_static(DEFAULT_VERSION));
                }
            }
        }
        Ok(Anthropic {
            messages_url: parse_url(&format!("{}/v1/messages", config.api_base))?,
            headers,
        })
    }
}

/// The client's own body, when it wrote it for Anthropic's API.
fn native(body: &InboundBody) -> Option<&NativeBody> {
    body.native()
        .filter(|native| native.ingress == Ingress::AnthropicMessages)
}

/// How this provider takes an API key.
fn set_key(headers: &mut HeaderMap, api_key: &str) -> Result<(), String> {
    headers.insert(
        HeaderName::from_static("x-api-key"),
        secret_header(api_key)?,
    );
    Ok(())
}

impl ProviderAdapter for Anthropic {
    fn authenticate(&self, headers: &mut HeaderMap, api_key: &str) -> Result<(), String> {
        set_key(headers, api_key)
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    fn default_max_output(&self) -> Option<u32> {
        Some(request::DEFAULT_MAX_TOKENS)
    }

    fn forwards(&self, ingress: Ingress) -> bool {
        ingress == Ingress::AnthropicMessages
    }

    fn chat_request(
        &self,
        model: &str,
        body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError> {
        let body = match native(body) {
            Some(native) => native.with_model(model),
            None => request::translate_request(request::Destination::Anthropic { model }, body)?,
        };
        Ok(UpstreamRequest {
            url: self.messages_url.clone(),
            headers: self.headers.clone(),
            own_credentials: false,
            body,
        })
    }

    fn chat_response(&self, model: &str, body: &[u8]) -> Result<Translated, String> {
        response::translate_response(model, body)
    }

    fn forwarded_response(
        &self,
        model: &str,
        body: &[u8],
        as_chat: bool,
    ) -> Result<Translated, String> {
        if as_chat {
            return response::translate_response(model, body);
        }
        Ok(Translated {
            body: bytes::Bytes::new(),
            usage: response::message_usage(body)?,
        })
    }

    fn chat_stream(&self, model: &str, body: &InboundBody) -> Box<dyn StreamTranslator> {
        if native(body).is_some() {
            return Box::new(stream::AnthropicRelay::new());
        }
        Box::new(stream::AnthropicStream::new(
            model,
            body.client_wants_stream_usage,
        ))
    }

    fn embeddings_request(
        &self,
        _model: &str,
        _body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError> {
        Err(GatewayError::Unsupported(
            "Anthropic has no embeddings API; route embeddings to an OpenAI, Azure OpenAI or Gemini target"
                .into(),
        ))
    }

    fn embeddings_response(
        &self,
        _model: &str,
        _request: &InboundBody,
        _body: &[u8],
    ) -> Result<Translated, String> {
        Err("Anthropic has no embeddings API".into())
    }

    fn error_details(&self, status: u16, body: &[u8]) -> UpstreamErrorDetails {
        response::error_details(status, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::Endpoint;
    use bytes::Bytes;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;
    use tollgate_common::Secret;

    pub(super) fn config(api_version: Option<&str>) -> ProviderConfig {
        ProviderConfig {
            kind: ProviderKind::Anthropic,
            api_base: "https://api.anthropic.com".into(),
            api_key: Some(Secret::new("sk-ant-test")),
            api_version: api_version.map(str::to_owned),
            responses_api: false,
            headers: BTreeMap::new(),
            stream_usage: true,
            aws: None,
            vertex: None,
        }
    }

    pub(super) fn adapter() -> Anthropic {
        Anthropic::new(&config(None)).unwrap()
    }

    pub(super) fn inbound(body: &Value) -> InboundBody {
        InboundBody::parse(Endpoint::ChatCompletions, Bytes::from(body.to_string())).unwrap()
    }

    /// The Anthropic body sent for an OpenAI body (given without `model`).
    pub(super) fn sent(mut body: Value) -> Value {
        body["model"] = json!("smart");
        let request = adapter()
            .chat_request("claude-sonnet-4-5", &inbound(&body))
            .unwrap();
        serde_json::from_slice(&request.body).unwrap()
    }

    pub(super) fn refused(mut body: Value) -> GatewayError {
        body["model"] = json!("smart");
        adapter()
            .chat_request("claude-sonnet-4-5", &inbound(&body))
            .unwrap_err()
    }

    pub(super) fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    #[test]
    fn request_goes_to_v1_messages_with_key_and_version_headers() {
        let body = inbound(&json!({"model": "smart", "messages": [user("hi")]}));
        let request = adapter().chat_request("claude-sonnet-4-5", &body).unwrap();
        assert_eq!(
            request.url.as_str(),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(request.headers["x-api-key"], "sk-ant-test");
        assert!(request.headers["x-api-key"].is_sensitive());
        assert_eq!(request.headers["anthropic-version"], "2023-06-01");
        assert_eq!(request.headers["content-type"], "application/json");
        assert!(request.headers.get("authorization").is_none());

        let pinned = Anthropic::new(&config(Some("2024-01-01"))).unwrap();
        let request = pinned.chat_request("claude-sonnet-4-5", &body).unwrap();
        assert_eq!(request.headers["anthropic-version"], "2024-01-01");
        assert_eq!(pinned.kind(), ProviderKind::Anthropic);
    }

    #[test]
    fn embeddings_are_refused() {
        let body = InboundBody::parse(
            Endpoint::Embeddings,
            Bytes::from_static(br#"{"model":"e","input":"hi"}"#),
        )
        .unwrap();
        let err = adapter().embeddings_request("e", &body).unwrap_err();
        assert!(matches!(err, GatewayError::Unsupported(_)), "{err:?}");
        let request = InboundBody::parse(
            Endpoint::Embeddings,
            Bytes::from_static(br#"{"model":"e","input":"x"}"#),
        )
        .unwrap();
        assert!(adapter().embeddings_response("e", &request, b"{}").is_err());
    }
}
