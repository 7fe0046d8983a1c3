//! Mistral's own API (La Plateforme): `POST /v1/chat/completions` and `POST /v1/embeddings`.
//!
//! Mistral's format is close to OpenAI's, and that is the trap: forwarded as it is, an OpenAI
//! body is refused for members Mistral does not know (`stream_options`, `logprobs`, `user`),
//! for tool call ids another provider minted, or for `tool_choice: "required"`. So the adapter
//! rebuilds the body from the typed request ([`request`]), and rebuilds answers too, reading
//! the usage Mistral puts on a stream's finishing chunk ([`stream`]) and its 422 validation
//! errors ([`response::error_details`]). The key travels as a bearer token.
//! <https://docs.mistral.ai/api/>
//!
//! The base URL is `https://api.mistral.ai`; one ending in `/v1`, as OpenAI-style clients write
//! it, is taken as well.

mod request;
mod response;
mod stream;

use reqwest::Url;
use reqwest::header::HeaderMap;
use tollgate_common::config::{ProviderConfig, ProviderKind};

use super::{
    ProviderAdapter, StreamTranslator, Translated, UpstreamErrorDetails, UpstreamRequest,
    base_headers, parse_url, set_bearer,
};
use crate::error::GatewayError;
use crate::openai::InboundBody;

pub struct Mistral {
    chat_url: Url,
    embeddings_url: Url,
    headers: HeaderMap,
}

impl Mistral {
    pub fn new(config: &ProviderConfig) -> Result<Self, String> {
        let mut headers = base_headers(config)?;
        if let Some(key) = &config.api_key {
            set_bearer(&mut headers, key.expose())?;
        }
        let base = config.api_base.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        Ok(Mistral {
            chat_url: parse_url(&format!("{base}/v1/chat/completions"))?,
            embeddings_url: parse_url(&format!("{base}/v1/embeddings"))?,
            headers,
        })
    }
}

impl ProviderAdapter for Mistral {
    fn authenticate(&self, headers: &mut HeaderMap, api_key: &str) -> Result<(), String> {
        set_bearer(headers, api_key)
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Mistral
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
            body: request::translate_request(model, body)?,
        })
    }

    fn chat_response(&self, model: &str, body: &[u8]) -> Result<Translated, String> {
        response::translate_response(model, body)
    }

    fn chat_stream(&self, model: &str, body: &InboundBody) -> Box<dyn StreamTranslator> {
        Box::new(stream::MistralStream::new(
            model,
            body.client_wants_stream_usage,
        ))
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
            body: request::translate_embeddings(model, body)?,
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
pub(super) mod tests {
    use super::*;
    use crate::openai::Endpoint;
    use bytes::Bytes;
    use serde_json::Value;
    use std::collections::BTreeMap;
    use tollgate_common::Secret;

    pub(in crate::providers) fn adapter_at(api_base: &str) -> Mistral {
        Mistral::new(&ProviderConfig {
            kind: ProviderKind::Mistral,
            api_base: api_base.into(),
            api_key: Some(Secret::new("mistral-test-key")),
            api_version: None,
            responses_api: false,
            headers: BTreeMap::new(),
            stream_usage: true,
            aws: None,
            vertex: None,
        })
        .unwrap()
    }

    pub(in crate::providers) fn adapter() -> Mistral {
        adapter_at("https://api.mistral.ai")
    }

    pub(in crate::providers) fn chat(body: Value) -> InboundBody {
        InboundBody::parse(Endpoint::ChatCompletions, Bytes::from(body.to_string())).unwrap()
    }

    pub(in crate::providers) fn embeddings(body: Value) -> InboundBody {
        InboundBody::parse(Endpoint::Embeddings, Bytes::from(body.to_string())).unwrap()
    }

    pub(in crate::providers) fn sent(body: Value) -> Value {
        let request = adapter()
            .chat_request("mistral-small-latest", &chat(body))
            .unwrap();
        serde_json::from_slice(&request.body).unwrap()
    }

    pub(in crate::providers) fn rejected(body: Value) -> GatewayError {
        adapter()
            .chat_request("mistral-small-latest", &chat(body))
            .unwrap_err()
    }

    #[test]
    fn requests_go_to_v1_with_a_sensitive_bearer_key_whatever_the_base_says() {
        for base in ["https://api.mistral.ai", "https://api.mistral.ai/v1/"] {
            let body = chat(serde_json::json!({"model": "m",
                "messages": [{"role": "user", "content": "hi"}]}));
            let request = adapter_at(base)
                .chat_request("mistral-small-latest", &body)
                .unwrap();
            assert_eq!(
                request.url.as_str(),
                "https://api.mistral.ai/v1/chat/completions"
            );
            assert_eq!(request.headers["authorization"], "Bearer mistral-test-key");
            assert!(request.headers["authorization"].is_sensitive());
        }
        let body = embeddings(serde_json::json!({"model": "m", "input": "a"}));
        let request = adapter()
            .embeddings_request("mistral-embed", &body)
            .unwrap();
        assert_eq!(request.url.as_str(), "https://api.mistral.ai/v1/embeddings");
    }
}
