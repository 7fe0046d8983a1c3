//! OpenAI's wire format, as OpenAI itself and every OpenAI-compatible server (vLLM, Ollama,
//! Groq, Mistral, Together, DeepSeek) serve it, and as Azure OpenAI serves it behind deployment
//! URLs, an `api-version` query and an `api-key` header (the target's `model` is then the
//! deployment name).
//!
//! The client already speaks this format, so requests go out as the client's bytes with `model`
//! swapped, and answers come back untouched: the adapter only reads the usage out of them.
//! A client of OpenAI's Responses API is forwarded the same way to a provider serving that API
//! (`responses_api`, OpenAI's own by default) rather than translated to chat and back.
//! <https://platform.openai.com/docs/api-reference/chat>,
//! <https://platform.openai.com/docs/api-reference/responses>,
//! <https://learn.microsoft.com/azure/ai-services/openai/reference>

mod request;
mod response;
mod stream;

use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tollgate_common::TokenUsage;
use tollgate_common::config::{ProviderConfig, ProviderKind};

use super::{
    ProviderAdapter, StreamTranslator, Translated, UpstreamErrorDetails, UpstreamRequest, UrlCache,
    base_headers, encode_path_segment, parse_url, secret_header, set_bearer,
};
use crate::error::GatewayError;
use crate::ingress::Ingress;
use crate::openai::{Endpoint, InboundBody, NativeBody};

/// An OpenAI-format endpoint.
#[derive(Clone, Copy)]
enum Operation {
    Chat,
    Embeddings,
    Completions,
    Moderations,
    ImageGenerations,
    AudioTranscriptions,
    /// The Responses API, for its clients' forwarded bodies.
    Responses,
}

impl Operation {
    const ALL: [Operation; 7] = [
        Operation::Chat,
        Operation::Embeddings,
        Operation::Completions,
        Operation::Moderations,
        Operation::ImageGenerations,
        Operation::AudioTranscriptions,
        Operation::Responses,
    ];

    fn path(self) -> &'static str {
        match self {
            Operation::Chat => "chat/completions",
            Operation::Embeddings => "embeddings",
            Operation::Completions => "completions",
            Operation::Moderations => "moderations",
            Operation::ImageGenerations => "images/generations",
            Operation::AudioTranscriptions => "audio/transcriptions",
            Operation::Responses => "responses",
        }
    }

    fn of(endpoint: Endpoint) -> Operation {
        match endpoint {
            Endpoint::ChatCompletions => Operation::Chat,
            Endpoint::Embeddings => Operation::Embeddings,
            Endpoint::Completions => Operation::Completions,
            Endpoint::Moderations => Operation::Moderations,
            Endpoint::ImageGenerations => Operation::ImageGenerations,
            Endpoint::AudioTranscriptions => Operation::AudioTranscriptions,
        }
    }
}

/// Where the format is served, and how the key is passed: what Azure does differently.
enum Flavour {
    /// Fixed URLs under `api_base`, one per [`Operation`] in its order, and a bearer key;
    /// `responses_api` when the server serves the Responses API.
    OpenAi {
        urls: Box<[Url; Operation::ALL.len()]>,
        responses_api: bool,
    },
    /// A URL per deployment with an `api-version` query, and an `api-key` header.
    Azure {
        api_base: String,
        api_version: String,
        urls: UrlCache,
    },
}

impl Flavour {
    fn url(&self, model: &str, operation: Operation) -> Result<Url, GatewayError> {
        match self {
            Flavour::OpenAi { urls, .. } => Ok(urls[operation as usize].clone()),
            Flavour::Azure {
                api_base,
                api_version,
                urls,
            } => {
                let operation = operation.path();
                urls.get(&format!("{operation} {model}"), || {
                    format!(
                        "{api_base}/openai/deployments/{}/{operation}?api-version={api_version}",
                        encode_path_segment(model),
                    )
                })
            }
        }
    }

    /// How this flavour takes an API key.
    fn set_key(&self, headers: &mut HeaderMap, api_key: &str) -> Result<(), String> {
        match self {
            Flavour::OpenAi { .. } => {
                set_bearer(headers, api_key)?;
            }
            Flavour::Azure { .. } => {
                headers.insert(HeaderName::from_static("api-key"), secret_header(api_key)?);
            }
        }
        Ok(())
    }
}

pub struct OpenAi {
    flavour: Flavour,
    headers: HeaderMap,
    /// Streams ask for their usage (`stream_options`), which some servers refuse.
    stream_usage: bool,
}

impl OpenAi {
    /// OpenAI or a compatible server.
    pub fn new(config: &ProviderConfig) -> Result<Self, String> {
        let url =
            |operation: Operation| parse_url(&format!("{}/{}", config.api_base, operation.path()));
        let [
            chat,
            embeddings,
            completions,
            moderations,
            images,
            transcriptions,
            responses,
        ] = Operation::ALL.map(url);
        Self::with_flavour(
            config,
            Flavour::OpenAi {
                urls: Box::new([
                    chat?,
                    embeddings?,
                    completions?,
                    moderations?,
                    images?,
                    transcriptions?,
                    responses?,
                ]),
                responses_api: config.responses_api,
            },
        )
    }

    /// Azure OpenAI.
    pub fn azure(config: &ProviderConfig) -> Result<Self, String> {
        Self::with_flavour(
            config,
            Flavour::Azure {
                api_base: config.api_base.clone(),
                // Configuration requires it; the kind's default covers adapters built otherwise.
                api_version: config
                    .api_version
                    .clone()
                    .or_else(|| {
                        let facts = ProviderKind::Azure.facts();
                        facts.api_version.default_version().map(str::to_owned)
                    })
                    .unwrap_or_default(),
                urls: UrlCache::default(),
            },
        )
    }

    fn with_flavour(config: &ProviderConfig, flavour: Flavour) -> Result<Self, String> {
        let mut headers = base_headers(config)?;
        if let Some(key) = &config.api_key {
            flavour.set_key(&mut headers, key.expose())?;
        }
        Ok(OpenAi {
            flavour,
            headers,
            stream_usage: config.stream_usage,
        })
    }

    /// The client's own body, when it wrote it for the Responses API and this provider serves
    /// that API.
    fn forwarded<'a>(&self, body: &'a InboundBody) -> Option<&'a NativeBody> {
        body.native().filter(|native| self.forwards(native.ingress))
    }

    fn upstream_request(
        &self,
        model: &str,
        operation: Operation,
        body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError> {
        let mut headers = self.headers.clone();
        if let Some(content_type) = body.upstream_content_type() {
            // A form's boundary was checked when it was read; this cannot fail in practice.
            let value = HeaderValue::from_str(&content_type).map_err(|_| {
                GatewayError::MalformedForm("the boundary cannot be sent on".into())
            })?;
            headers.insert(CONTENT_TYPE, value);
        }
        Ok(UpstreamRequest {
            url: self.flavour.url(model, operation)?,
            headers,
            own_credentials: false,
            body: request::translate_request(model, body, self.stream_usage),
        })
    }
}

impl ProviderAdapter for OpenAi {
    fn authenticate(&self, headers: &mut HeaderMap, api_key: &str) -> Result<(), String> {
        self.flavour.set_key(headers, api_key)
    }

    fn kind(&self) -> ProviderKind {
        match self.flavour {
            Flavour::OpenAi { .. } => ProviderKind::Openai,
            Flavour::Azure { .. } => ProviderKind::Azure,
        }
    }

    fn forwards(&self, ingress: Ingress) -> bool {
        ingress == Ingress::OpenAiResponses
            && matches!(
                self.flavour,
                Flavour::OpenAi {
                    responses_api: true,
                    ..
                }
            )
    }

    fn chat_request(
        &self,
        model: &str,
        body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError> {
        match self.forwarded(body) {
            Some(native) => Ok(UpstreamRequest {
                url: self.flavour.url(model, Operation::Responses)?,
                headers: self.headers.clone(),
                own_credentials: false,
                body: native.with_model(model),
            }),
            None => self.upstream_request(model, Operation::Chat, body),
        }
    }

    fn chat_response(&self, _model: &str, body: &[u8]) -> Result<Translated, String> {
        response::translate_response(body)
    }

    fn forwarded_response(
        &self,
        _model: &str,
        body: &[u8],
        as_chat: bool,
    ) -> Result<Translated, String> {
        if as_chat {
            return response::responses_as_chat(body);
        }
        Ok(Translated {
            body: bytes::Bytes::new(),
            usage: response::responses_usage(body)?,
        })
    }

    fn chat_stream(&self, _model: &str, body: &InboundBody) -> Box<dyn StreamTranslator> {
        if self.forwarded(body).is_some() {
            return Box::new(stream::ResponsesRelay::new());
        }
        Box::new(stream::OpenAiStream::new(!body.client_wants_stream_usage))
    }

    fn embeddings_request(
        &self,
        model: &str,
        body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError> {
        self.upstream_request(model, Operation::Embeddings, body)
    }

    fn embeddings_response(
        &self,
        _model: &str,
        _request: &InboundBody,
        body: &[u8],
    ) -> Result<Translated, String> {
        response::translate_response(body)
    }

    fn passthrough_request(
        &self,
        endpoint: Endpoint,
        model: &str,
        body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError> {
        self.upstream_request(model, Operation::of(endpoint), body)
    }

    fn passthrough_usage(
        &self,
        endpoint: Endpoint,
        body: &[u8],
    ) -> Result<Option<TokenUsage>, String> {
        response::passthrough_usage(endpoint, body)
    }

    fn error_details(&self, status: u16, body: &[u8]) -> UpstreamErrorDetails {
        response::error_details(status, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::collections::BTreeMap;
    use tollgate_common::Secret;

    fn test_config(responses_api: bool) -> ProviderConfig {
        ProviderConfig {
            kind: ProviderKind::Openai,
            api_base: "http://127.0.0.1:1/v1".into(),
            api_key: Some(Secret::new("sk-test")),
            api_version: None,
            responses_api,
            headers: BTreeMap::new(),
            stream_usage: true,
            aws: None,
            vertex: None,
        }
    }

    pub(super) fn adapter() -> OpenAi {
        adapter_serving_responses(false)
    }

    fn adapter_serving_responses(responses_api: bool) -> OpenAi {
        OpenAi::new(&test_config(responses_api)).unwrap()
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
        assert_eq!(request.headers["authorization"], "Bearer sk-test");
        assert!(request.headers["authorization"].is_sensitive());
        let sent: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(sent["model"], "gpt-4o");
    }

    #[test]
    fn deployment_url_api_version_and_api_key_header() {
        let azure = OpenAi::azure(&ProviderConfig {
            kind: ProviderKind::Azure,
            api_base: "https://x.openai.azure.com".into(),
            api_key: Some(Secret::new("az-key")),
            api_version: Some("2024-10-21".into()),
            responses_api: false,
            headers: BTreeMap::new(),
            stream_usage: true,
            aws: None,
            vertex: None,
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

        let image = InboundBody::parse(
            Endpoint::ImageGenerations,
            Bytes::from_static(br#"{"model":"draw","prompt":"a fox"}"#),
        )
        .unwrap();
        let request = azure
            .passthrough_request(Endpoint::ImageGenerations, "img", &image)
            .unwrap();
        assert_eq!(
            request.url.as_str(),
            "https://x.openai.azure.com/openai/deployments/img/images/generations?api-version=2024-10-21"
        );
        let form = InboundBody::parse_form(
            Endpoint::AudioTranscriptions,
            Some("multipart/form-data; boundary=B"),
            Bytes::from_static(
                b"--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n\
                  --B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF\r\n--B--\r\n",
            ),
        )
        .unwrap();
        let request = azure
            .passthrough_request(Endpoint::AudioTranscriptions, "stt", &form)
            .unwrap();
        assert_eq!(
            request.url.as_str(),
            "https://x.openai.azure.com/openai/deployments/stt/audio/transcriptions?api-version=2024-10-21"
        );
        assert_eq!(
            request.headers["content-type"],
            "multipart/form-data; boundary=B"
        );
    }

    #[test]
    fn images_and_transcriptions_have_their_own_urls() {
        let image = InboundBody::parse(
            Endpoint::ImageGenerations,
            Bytes::from_static(br#"{"model":"draw","prompt":"a fox"}"#),
        )
        .unwrap();
        let request = adapter()
            .passthrough_request(Endpoint::ImageGenerations, "gpt-image-1", &image)
            .unwrap();
        assert_eq!(
            request.url.as_str(),
            "http://127.0.0.1:1/v1/images/generations"
        );
        assert_eq!(request.headers["content-type"], "application/json");
        let url = |endpoint| {
            let operation = Operation::of(endpoint);
            format!(
                "{}",
                OpenAi::new(&test_config(false))
                    .unwrap()
                    .flavour
                    .url("m", operation)
                    .unwrap()
            )
        };
        assert_eq!(
            url(Endpoint::AudioTranscriptions),
            "http://127.0.0.1:1/v1/audio/transcriptions"
        );
    }

    fn responses_body(raw: &'static str) -> InboundBody {
        crate::ingress::Ingress::OpenAiResponses
            .parse(None, Bytes::from_static(raw.as_bytes()))
            .unwrap()
    }

    #[test]
    fn a_responses_client_is_forwarded_to_responses_where_the_server_serves_it() {
        let raw = r#"{"model":"smart","input":"hi","store":false,"reasoning":{"effort":"low"}}"#;
        let body = responses_body(raw);
        let serving = adapter_serving_responses(true);
        assert!(serving.forwards(Ingress::OpenAiResponses));
        assert!(!serving.forwards(Ingress::AnthropicMessages));
        assert!(!serving.forwards(Ingress::OpenAi(Endpoint::ChatCompletions)));
        let request = serving.chat_request("gpt-4.1", &body).unwrap();
        assert_eq!(request.url.as_str(), "http://127.0.0.1:1/v1/responses");
        assert_eq!(request.headers["authorization"], "Bearer sk-test");
        assert_eq!(
            &request.body[..],
            br#"{"model":"gpt-4.1","input":"hi","store":false,"reasoning":{"effort":"low"}}"#
        );

        // A server without the API gets the chat translation.
        let plain = adapter();
        assert!(!plain.forwards(Ingress::OpenAiResponses));
        let request = plain.chat_request("gpt-4.1", &body).unwrap();
        assert_eq!(
            request.url.as_str(),
            "http://127.0.0.1:1/v1/chat/completions"
        );
        let sent: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(sent["model"], "gpt-4.1");
        assert_eq!(sent["messages"][0]["content"], "hi");
    }

    #[test]
    fn a_body_with_a_second_model_is_refused_before_it_could_be_forwarded() {
        for raw in [
            r#"{"model":"smart","input":"hi","model":"gpt-4.1-pro"}"#,
            r#"{"model":"smart","input":"hi","m\u006fdel":"gpt-4.1-pro"}"#,
        ] {
            let refused = Ingress::OpenAiResponses.parse(None, Bytes::from_static(raw.as_bytes()));
            assert!(refused.is_err(), "{raw}");
        }
    }

    #[test]
    fn azure_never_forwards_a_responses_client() {
        let azure = OpenAi::azure(&ProviderConfig {
            kind: ProviderKind::Azure,
            api_base: "https://x.openai.azure.com".into(),
            api_key: Some(Secret::new("az-key")),
            api_version: Some("2024-10-21".into()),
            responses_api: true,
            headers: BTreeMap::new(),
            stream_usage: true,
            aws: None,
            vertex: None,
        })
        .unwrap();
        assert!(!azure.forwards(Ingress::OpenAiResponses));
        let request = azure
            .chat_request("prod", &responses_body(r#"{"model":"smart","input":"hi"}"#))
            .unwrap();
        assert!(request.url.path().ends_with("/chat/completions"));
    }

    #[test]
    fn a_forwarded_answer_kept_for_the_cache_is_served_again_as_a_response() {
        let upstream =
            crate::providers::tests_support::fixture("openai", "responses_function_call.json");
        let serving = adapter_serving_responses(true);
        let usage_only = serving
            .forwarded_response("gpt-4.1", &upstream, false)
            .unwrap();
        assert!(usage_only.body.is_empty());
        assert_eq!(usage_only.usage.unwrap().input_tokens, 291);

        let kept = serving
            .forwarded_response("gpt-4.1", &upstream, true)
            .unwrap();
        assert_eq!(kept.usage, usage_only.usage);
        let served = Ingress::OpenAiResponses.answer(kept.body).unwrap();
        let served: serde_json::Value = serde_json::from_slice(&served).unwrap();
        assert_eq!(served["object"], "response");
        assert_eq!(served["status"], "completed");
        assert_eq!(
            served["id"],
            "resp_67ca09c5efe0819096d0511c92b8c890096610f474011cc0"
        );
        let call = &served["output"][0];
        assert_eq!(call["type"], "function_call");
        assert_eq!(call["call_id"], "call_12345xyz");
        assert_eq!(call["name"], "get_weather");
        assert_eq!(call["arguments"], "{\"location\":\"Paris, France\"}");
        assert_eq!(served["usage"]["input_tokens"], 291);
        assert_eq!(served["usage"]["output_tokens"], 18);
    }
}
