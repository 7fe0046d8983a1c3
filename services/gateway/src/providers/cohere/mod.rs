//! Cohere's v2 API: `POST /v2/chat` (streaming with `"stream": true`) and `POST /v2/embed`.
//!
//! Cohere's chat takes OpenAI's roles and function tools, so a request maps closely
//! ([`request`]); answers are rebuilt from Cohere's content items, tool plan and typed stream
//! events ([`response`], [`stream`]), with the usage Cohere bills. Error bodies are
//! `{"message": ...}`, their kind told by the status. The key travels as a bearer token.
//! <https://docs.cohere.com/reference/chat>

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

pub struct Cohere {
    chat_url: Url,
    embed_url: Url,
    headers: HeaderMap,
}

impl Cohere {
    pub fn new(config: &ProviderConfig) -> Result<Self, String> {
        let mut headers = base_headers(config)?;
        if let Some(key) = &config.api_key {
            set_bearer(&mut headers, key.expose())?;
        }
        // `CO_API_URL` and Cohere's SDKs name the bare host; a `/v2` suffix is forgiven.
        let base = config.api_base.trim_end_matches('/');
        let base = base.strip_suffix("/v2").unwrap_or(base);
        Ok(Cohere {
            chat_url: parse_url(&format!("{base}/v2/chat"))?,
            embed_url: parse_url(&format!("{base}/v2/embed"))?,
            headers,
        })
    }
}

impl ProviderAdapter for Cohere {
    fn authenticate(&self, headers: &mut HeaderMap, api_key: &str) -> Result<(), String> {
        set_bearer(headers, api_key)
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Cohere
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
        Box::new(stream::CohereStream::new(
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
            url: self.embed_url.clone(),
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
    use serde_json::{Value, json};
    use std::collections::BTreeMap;
    use tollgate_common::Secret;

    pub(in crate::providers) fn adapter_at(api_base: &str) -> Cohere {
        Cohere::new(&ProviderConfig {
            kind: ProviderKind::Cohere,
            api_base: api_base.into(),
            api_key: Some(Secret::new("co-test-key")),
            api_version: None,
            responses_api: false,
            headers: BTreeMap::new(),
            stream_usage: true,
            aws: None,
            vertex: None,
        })
        .unwrap()
    }

    pub(in crate::providers) fn adapter() -> Cohere {
        adapter_at("https://api.cohere.com")
    }

    pub(in crate::providers) fn chat(body: Value) -> InboundBody {
        InboundBody::parse(Endpoint::ChatCompletions, Bytes::from(body.to_string())).unwrap()
    }

    pub(in crate::providers) fn embeddings(body: Value) -> InboundBody {
        InboundBody::parse(Endpoint::Embeddings, Bytes::from(body.to_string())).unwrap()
    }

    pub(in crate::providers) fn sent(body: Value) -> Value {
        let request = adapter()
            .chat_request("command-a-03-2025", &chat(body))
            .unwrap();
        serde_json::from_slice(&request.body).unwrap()
    }

    pub(in crate::providers) fn rejected(body: Value) -> GatewayError {
        adapter()
            .chat_request("command-a-03-2025", &chat(body))
            .unwrap_err()
    }

    #[test]
    fn requests_go_to_v2_with_a_sensitive_bearer_key() {
        for base in ["https://api.cohere.com", "https://api.cohere.com/v2/"] {
            let body = chat(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
            let request = adapter_at(base)
                .chat_request("command-a-03-2025", &body)
                .unwrap();
            assert_eq!(request.url.as_str(), "https://api.cohere.com/v2/chat");
            assert_eq!(request.headers["authorization"], "Bearer co-test-key");
            assert!(request.headers["authorization"].is_sensitive());
        }
        let body = embeddings(json!({"model": "m", "input": "a"}));
        let request = adapter().embeddings_request("embed-v4.0", &body).unwrap();
        assert_eq!(request.url.as_str(), "https://api.cohere.com/v2/embed");
    }
}
