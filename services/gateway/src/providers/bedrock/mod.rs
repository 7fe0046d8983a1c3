//! AWS Bedrock, the Converse API (`POST /model/{modelId}/converse` and `/converse-stream`).
//!
//! Chat completions become Converse requests: system and developer messages move to `system`,
//! tool calls and tool results become `toolUse` / `toolResult` blocks (tool results of one turn
//! merged into one user message, as Bedrock wants turns to alternate), images travel as bytes,
//! and sampling options go into `inferenceConfig`. Answers are rebuilt as OpenAI completions;
//! ConverseStream's answer is an AWS event stream ([`super::eventstream`]) turned into OpenAI
//! chunks. <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>
//!
//! Every request is signed with SigV4 (`aws-sigv4`) for the provider's region and the service
//! `bedrock`, at the moment it is built, since the signature covers the body and the time. The
//! credentials come from the provider's configuration (`aws_access_key_id`,
//! `aws_secret_access_key`, optional `aws_session_token`) or the standard AWS variables.
//!
//! Not supported: embeddings (Converse has none; Bedrock's embedding models answer through
//! `InvokeModel` with per-model bodies), and an organization's own key (`authenticate`): a key
//! pair signs the whole request, body and URL included, which the gateway's own-key step, that
//! only swaps a header, cannot do. Both are refused with a message saying so.

mod request;
mod response;
mod stream;

use std::time::SystemTime;

use aws_credential_types::Credentials as AwsKeys;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tollgate_common::config::{Credentials, ProviderConfig, ProviderKind};

use super::{
    ProviderAdapter, StreamTranslator, Translated, UpstreamErrorDetails, UpstreamRequest, UrlCache,
    base_headers, encode_path_segment,
};
use crate::error::GatewayError;
use crate::openai::InboundBody;

pub struct Bedrock {
    api_base: String,
    headers: HeaderMap,
    urls: UrlCache,
    region: String,
    signing_name: &'static str,
    /// The key pair (and session token), built once: signing borrows it.
    identity: Identity,
}

impl Bedrock {
    pub fn new(config: &ProviderConfig) -> Result<Self, String> {
        let Credentials::AwsSigV4 { signing_name, .. } = config.kind.facts().credentials else {
            return Err(format!(
                "kind `{}` does not sign with AWS credentials",
                config.kind.as_str()
            ));
        };
        let aws = config
            .aws
            .as_ref()
            .ok_or("a bedrock provider needs a region and AWS credentials")?;
        let identity = AwsKeys::new(
            aws.access_key_id.clone(),
            aws.secret_access_key.expose().to_owned(),
            aws.session_token.as_ref().map(|t| t.expose().to_owned()),
            None,
            "tollgate-config",
        )
        .into();
        let mut headers = base_headers(config)?;
        // The ConverseStream answer is binary; say that we read it.
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json, application/vnd.amazon.eventstream"),
        );
        Ok(Bedrock {
            api_base: config.api_base.clone(),
            headers,
            urls: UrlCache::default(),
            region: aws.region.clone(),
            signing_name,
            identity,
        })
    }

    /// `{api_base}/model/{modelId}/{operation}`, the model id percent-encoded as one segment
    /// (ids such as `anthropic.claude-3-5-sonnet-20240620-v1:0`, or inference profile ARNs).
    fn url(&self, model: &str, operation: &str) -> Result<Url, GatewayError> {
        self.urls.get(&format!("{operation} {model}"), || {
            format!(
                "{}/model/{}/{operation}",
                self.api_base,
                encode_path_segment(model)
            )
        })
    }

    /// Adds SigV4's `x-amz-date`, `authorization` and (with temporary credentials)
    /// `x-amz-security-token` headers for a POST of `body` to `url` at `time`.
    fn sign(
        &self,
        url: &Url,
        headers: &mut HeaderMap,
        body: &[u8],
        time: SystemTime,
    ) -> Result<(), GatewayError> {
        let failed = |e: &dyn std::fmt::Display| {
            GatewayError::Internal(format!("cannot sign the Bedrock request: {e}"))
        };
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(self.signing_name)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| failed(&e))?
            .into();
        let signed_headers = headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            signed_headers,
            SignableBody::Bytes(body),
        )
        .map_err(|e| failed(&e))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| failed(&e))?
            .into_parts();
        let (signing_headers, _query) = instructions.into_parts();
        for header in signing_headers {
            let name = HeaderName::from_bytes(header.name().as_bytes()).map_err(|e| failed(&e))?;
            let mut value = HeaderValue::from_str(header.value()).map_err(|e| failed(&e))?;
            // The signature is good for minutes and the token for hours: neither is printed.
            if header.sensitive() || name == reqwest::header::AUTHORIZATION {
                value.set_sensitive(true);
            }
            headers.insert(name, value);
        }
        Ok(())
    }

    fn chat_request_at(
        &self,
        model: &str,
        body: &InboundBody,
        time: SystemTime,
    ) -> Result<UpstreamRequest, GatewayError> {
        let bytes = request::translate_request(body)?;
        let url = if body.stream {
            self.url(model, "converse-stream")?
        } else {
            self.url(model, "converse")?
        };
        let mut headers = self.headers.clone();
        self.sign(&url, &mut headers, &bytes, time)?;
        Ok(UpstreamRequest {
            url,
            headers,
            own_credentials: false,
            body: bytes,
        })
    }
}

impl ProviderAdapter for Bedrock {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Bedrock
    }

    fn chat_request(
        &self,
        model: &str,
        body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError> {
        self.chat_request_at(model, body, SystemTime::now())
    }

    fn chat_response(&self, model: &str, body: &[u8]) -> Result<Translated, String> {
        response::translate_response(model, body)
    }

    fn chat_stream(&self, model: &str, body: &InboundBody) -> Box<dyn StreamTranslator> {
        Box::new(stream::BedrockStream::new(
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
            "Bedrock's Converse API has no embeddings; route embeddings to an OpenAI, Azure OpenAI or Gemini target"
                .into(),
        ))
    }

    fn embeddings_response(
        &self,
        _model: &str,
        _request: &InboundBody,
        _body: &[u8],
    ) -> Result<Translated, String> {
        Err("Bedrock's Converse API has no embeddings".into())
    }

    fn error_details(&self, status: u16, body: &[u8]) -> UpstreamErrorDetails {
        response::error_details(status, body)
    }

    fn authenticate(&self, _headers: &mut HeaderMap, _api_key: &str) -> Result<(), String> {
        Err(
            "Bedrock requests are signed with the deployment's AWS credentials (SigV4), \
             and organizations' own AWS keys are not supported"
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::Endpoint;
    use bytes::Bytes;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;
    use std::time::Duration;
    use tollgate_common::Secret;
    use tollgate_common::config::AwsCredentials;

    pub(super) fn config(session_token: Option<&str>) -> ProviderConfig {
        ProviderConfig {
            kind: ProviderKind::Bedrock,
            api_base: "https://bedrock-runtime.us-east-1.amazonaws.com".into(),
            api_key: None,
            api_version: None,
            responses_api: false,
            headers: BTreeMap::new(),
            stream_usage: true,
            aws: Some(AwsCredentials {
                region: "us-east-1".into(),
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                session_token: session_token.map(Secret::new),
            }),
            vertex: None,
        }
    }

    pub(super) fn adapter() -> Bedrock {
        Bedrock::new(&config(None)).unwrap()
    }

    pub(super) fn chat(body: &Value) -> InboundBody {
        InboundBody::parse(Endpoint::ChatCompletions, Bytes::from(body.to_string())).unwrap()
    }

    /// The Converse body sent for an OpenAI body (given without `model`).
    pub(super) fn sent(mut body: Value) -> Value {
        body["model"] = json!("smart");
        let request = adapter()
            .chat_request("anthropic.claude-3-haiku-20240307-v1:0", &chat(&body))
            .unwrap();
        serde_json::from_slice(&request.body).unwrap()
    }

    pub(super) fn refused(mut body: Value) -> GatewayError {
        body["model"] = json!("smart");
        adapter()
            .chat_request("anthropic.claude-3-haiku-20240307-v1:0", &chat(&body))
            .unwrap_err()
    }

    pub(super) fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    /// 2015-08-30T12:36:00Z, the AWS signing test suite's moment.
    fn test_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    #[test]
    fn urls_encode_the_model_id_as_one_segment() {
        let bedrock = adapter();
        let hello = json!({"model": "m", "messages": [user("hi")]});
        let request = bedrock
            .chat_request("anthropic.claude-3-haiku-20240307-v1:0", &chat(&hello))
            .unwrap();
        assert_eq!(
            request.url.as_str(),
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
        );
        let mut streaming = hello;
        streaming["stream"] = json!(true);
        let arn =
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0";
        let request = bedrock.chat_request(arn, &chat(&streaming)).unwrap();
        assert_eq!(
            request.url.path(),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.amazon.nova-pro-v1%3A0/converse-stream"
        );
        assert_eq!(bedrock.kind(), ProviderKind::Bedrock);
    }

    #[test]
    fn requests_are_signed_for_the_region_and_service() {
        let bedrock = adapter();
        let body = chat(&json!({"model": "m", "messages": [user("hi")]}));
        let request = bedrock
            .chat_request_at("amazon.nova-lite-v1:0", &body, test_time())
            .unwrap();
        let headers = &request.headers;
        assert_eq!(headers["x-amz-date"], "20150830T123600Z");
        assert_eq!(headers["content-type"], "application/json");
        let authorization = headers["authorization"].to_str().unwrap();
        let prefix = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date, Signature=";
        assert!(authorization.starts_with(prefix), "{authorization}");
        let signature = &authorization[prefix.len()..];
        assert_eq!(signature.len(), 64);
        assert!(signature.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(headers["authorization"].is_sensitive());
        assert!(headers.get("x-amz-security-token").is_none());
        assert!(headers.get("x-api-key").is_none());

        // The same request at the same moment signs the same; another body or moment does not.
        let again = bedrock
            .chat_request_at("amazon.nova-lite-v1:0", &body, test_time())
            .unwrap();
        assert_eq!(again.headers["authorization"], headers["authorization"]);
        let later = bedrock
            .chat_request_at(
                "amazon.nova-lite-v1:0",
                &body,
                test_time() + Duration::from_secs(1),
            )
            .unwrap();
        assert_ne!(later.headers["authorization"], headers["authorization"]);
        let other = chat(&json!({"model": "m", "messages": [user("ho")]}));
        let other = bedrock
            .chat_request_at("amazon.nova-lite-v1:0", &other, test_time())
            .unwrap();
        assert_ne!(other.headers["authorization"], headers["authorization"]);
    }

    #[test]
    fn a_session_token_is_sent_signed_and_never_printed() {
        let bedrock = Bedrock::new(&config(Some("FQoGZXIvYXdzEXAMPLETOKEN"))).unwrap();
        let body = chat(&json!({"model": "m", "messages": [user("hi")]}));
        let request = bedrock
            .chat_request_at("amazon.nova-lite-v1:0", &body, test_time())
            .unwrap();
        let token = &request.headers["x-amz-security-token"];
        assert_eq!(token, "FQoGZXIvYXdzEXAMPLETOKEN");
        assert!(token.is_sensitive());
        let authorization = request.headers["authorization"].to_str().unwrap();
        assert!(
            authorization.contains(
                "SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token,"
            ),
            "{authorization}"
        );
        let printed = format!("{:?}", request.headers);
        assert!(!printed.contains("EXAMPLETOKEN"), "{printed}");
        assert!(!printed.contains("Signature="), "{printed}");
    }

    #[test]
    fn own_keys_and_embeddings_are_refused_clearly() {
        let mut headers = HeaderMap::new();
        let err = adapter()
            .authenticate(&mut headers, "AKID:secret")
            .unwrap_err();
        assert!(err.contains("SigV4"), "{err}");
        assert!(headers.is_empty());

        let body = InboundBody::parse(
            Endpoint::Embeddings,
            Bytes::from_static(br#"{"model":"e","input":"hi"}"#),
        )
        .unwrap();
        let err = adapter().embeddings_request("e", &body).unwrap_err();
        assert!(matches!(err, GatewayError::Unsupported(_)), "{err:?}");
        assert!(adapter().embeddings_response("e", &body, b"{}").is_err());
    }

    #[test]
    fn a_provider_without_aws_credentials_is_refused() {
        let mut bare = config(None);
        bare.aws = None;
        assert!(Bedrock::new(&bare).is_err());
        let mut wrong_kind = config(None);
        wrong_kind.kind = ProviderKind::Anthropic;
        assert!(Bedrock::new(&wrong_kind).is_err());
    }
}
