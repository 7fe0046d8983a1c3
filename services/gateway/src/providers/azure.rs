//! Azure OpenAI: OpenAI's wire format behind deployment URLs, an `api-version` query and an
//! `api-key` header. The target's `model` is the deployment name.
//! <https://learn.microsoft.com/azure/ai-services/openai/reference>

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName};
use tollgate_common::config::{ProviderConfig, ProviderKind};

use super::openai::{OpenAiStream, passthrough_response};
use super::{
    ProviderAdapter, StreamTranslator, Translated, UpstreamErrorDetails, UpstreamRequest, UrlCache,
    base_headers, encode_path_segment, openai_error_details, secret_header,
};
use crate::error::GatewayError;
use crate::openai::InboundBody;

pub struct Azure {
    api_base: String,
    api_version: String,
    headers: HeaderMap,
    urls: UrlCache,
}

impl Azure {
    pub fn new(config: &ProviderConfig) -> Result<Self, String> {
        let mut headers = base_headers(config)?;
        if let Some(key) = &config.api_key {
            set_key(&mut headers, key.expose())?;
        }
        Ok(Azure {
            api_base: config.api_base.clone(),
            api_version: config
                .api_version
                .clone()
                .unwrap_or_else(|| "2024-10-21".into()),
            headers,
            urls: UrlCache::default(),
        })
    }

    fn url(&self, deployment: &str, operation: &str) -> Result<Url, GatewayError> {
        self.urls.get(&format!("{operation} {deployment}"), || {
            format!(
                "{}/openai/deployments/{}/{operation}?api-version={}",
                self.api_base,
                encode_path_segment(deployment),
                self.api_version
            )
        })
    }
}

/// How this provider takes an API key.
fn set_key(headers: &mut HeaderMap, api_key: &str) -> Result<(), String> {
    headers.insert(HeaderName::from_static("api-key"), secret_header(api_key)?);
    Ok(())
}

impl ProviderAdapter for Azure {
    fn authenticate(&self, headers: &mut HeaderMap, api_key: &str) -> Result<(), String> {
        set_key(headers, api_key)
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Azure
    }

    fn chat_request(
        &self,
        model: &str,
        body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError> {
        Ok(UpstreamRequest {
            url: self.url(model, "chat/completions")?,
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
            url: self.url(model, "embeddings")?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::Endpoint;
    use bytes::Bytes;
    use std::collections::BTreeMap;
    use tollgate_common::Secret;

    #[test]
    fn deployment_url_api_version_and_api_key_header() {
        let azure = Azure::new(&ProviderConfig {
            kind: ProviderKind::Azure,
            api_base: "https://x.openai.azure.com".into(),
            api_key: Some(Secret::new("az-key")),
            api_version: Some("2024-10-21".into()),
            headers: BTreeMap::new(),
        })
        .unwrap();
        let body = InboundBody::parse(
            Endpoint::ChatCompletions,
            Bytes::from_static(br#"{"model":"smart","messages":[{"role":"user","content":"hi"}]}"#),
        )
        .unwrap();
        let request = azure.chat_request("gpt4o prod", &body).unwrap();
        assert_eq!(
            request.url.as_str(),
            "https://x.openai.azure.com/openai/deployments/gpt4o%20prod/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(request.headers["api-key"], "az-key");
        assert!(request.headers.get("authorization").is_none());
    }
}
