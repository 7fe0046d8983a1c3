//! Google Cloud's Vertex AI: Gemini and Anthropic's Claude models in one Google Cloud project.
//!
//! Vertex speaks no dialect of its own for these models: Gemini models take the Gemini API's
//! bodies and Claude models Anthropic's Messages bodies, so the requests, answers and streams
//! are those of [`super::gemini`] and [`super::anthropic`]. What differs is around them:
//! - the URL names the project, the location, the publisher and the model:
//!   `{base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent`
//!   (`:streamGenerateContent?alt=sse` when streaming), and for models named `claude*`
//!   `.../publishers/anthropic/models/{model}:rawPredict` (`:streamRawPredict`);
//! - a Claude body names no model (the URL does) and carries
//!   `"anthropic_version": "vertex-2023-10-16"` instead of the `anthropic-version` header;
//! - authentication is an OAuth access token (`Authorization: Bearer`), minted from a service
//!   account's key by [`token::TokenSource`], or given in `api_key` by whoever mints them;
//! - embeddings go through the text-embedding models' `:predict` ([`embeddings`]).
//!
//! <https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference>,
//! <https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude>

mod embeddings;
pub(crate) mod token;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Deserialize;
use tollgate_common::config::{ProviderConfig, ProviderKind};

use super::anthropic::request::Destination;
use super::{
    ProviderAdapter, StreamTranslator, Translated, UpstreamErrorDetails, UpstreamRequest, UrlCache,
    anthropic, base_headers, encode_path_segment, gemini, secret_header,
};
use crate::error::GatewayError;
use crate::openai::InboundBody;
use token::TokenSource;

/// The Messages API version Vertex AI serves Claude at.
const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Whose model a name is: Vertex serves each publisher's models in that publisher's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publisher {
    Google,
    Anthropic,
}

impl Publisher {
    /// Claude models are Anthropic's; every other model Vertex serves here speaks Gemini's
    /// format (Gemini itself, and Google's other generative models).
    fn of(model: &str) -> Publisher {
        if model.starts_with("claude") {
            Publisher::Anthropic
        } else {
            Publisher::Google
        }
    }

    fn path_name(self) -> &'static str {
        match self {
            Publisher::Google => "google",
            Publisher::Anthropic => "anthropic",
        }
    }
}

/// Where the `Authorization` header comes from.
enum Credentials {
    /// An access token from configuration, sent as is.
    Static(HeaderValue),
    /// Tokens minted from a service account's key.
    ServiceAccount(Arc<TokenSource>),
}

pub struct Vertex {
    /// `{base}/v1/projects/{project}/locations/{location}`, the parts percent-encoded.
    location_url: String,
    headers: HeaderMap,
    credentials: Credentials,
    urls: UrlCache,
}

impl Vertex {
    pub fn new(config: &ProviderConfig) -> Result<Self, String> {
        let vertex = config
            .vertex
            .as_ref()
            .ok_or("a `vertex` provider needs its project and location")?;
        let credentials = match (&vertex.service_account, &config.api_key) {
            (Some(key), _) => {
                Credentials::ServiceAccount(Arc::new(TokenSource::new(key, &vertex.token_url)?))
            }
            (None, Some(token)) => Credentials::Static(bearer(token.expose())?),
            (None, None) => {
                return Err(
                    "a `vertex` provider needs a service-account key or an access token".into(),
                );
            }
        };
        Ok(Vertex {
            location_url: format!(
                "{}/v1/projects/{}/locations/{}",
                config.api_base,
                encode_path_segment(&vertex.project),
                encode_path_segment(&vertex.location)
            ),
            headers: base_headers(config)?,
            credentials,
            urls: UrlCache::default(),
        })
    }

    /// `{location_url}/publishers/{publisher}/models/{model}:{method}`, the model percent-encoded
    /// but for the `@` before a version (`claude-sonnet-4@20250514`): RFC 3986 allows it in a
    /// path segment, and it is how Google's documentation and every Vertex client send it.
    fn url(&self, model: &str, method: &str) -> Result<Url, GatewayError> {
        self.urls.get(&format!("{method} {model}"), || {
            format!(
                "{}/publishers/{}/models/{}:{method}",
                self.location_url,
                Publisher::of(model).path_name(),
                encode_path_segment(gemini::bare_model(model)).replace("%40", "@")
            )
        })
    }

    /// The headers of one request: the configured ones and the current access token.
    fn headers(&self) -> Result<HeaderMap, GatewayError> {
        let token = match &self.credentials {
            Credentials::Static(header) => header.clone(),
            // `credentials_ready` ran just before; without a token it reported the failure.
            Credentials::ServiceAccount(source) => {
                source
                    .current()
                    .ok_or_else(|| GatewayError::AllTargetsFailed {
                        unavailable: true,
                        message: "No Vertex AI access token is available yet; retry shortly."
                            .into(),
                    })?
            }
        };
        let mut headers = self.headers.clone();
        headers.insert(AUTHORIZATION, token);
        Ok(headers)
    }
}

/// `Bearer {token}`, marked sensitive.
fn bearer(token: &str) -> Result<HeaderValue, String> {
    secret_header(&format!("Bearer {token}"))
}

impl ProviderAdapter for Vertex {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Vertex
    }

    // No `default_max_output`: Claude bodies carry Anthropic's default limit, but Gemini ones
    // none, and this hook does not know the model. Budgets then reserve the model's maximum,
    // which for Claude is more than the default sent: never less than an answer can use.

    fn credentials_ready(&self) -> Option<BoxFuture<'static, Result<(), String>>> {
        match &self.credentials {
            Credentials::Static(_) => None,
            Credentials::ServiceAccount(source) => source.prepare(),
        }
    }

    fn chat_request(
        &self,
        model: &str,
        body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError> {
        let (method, bytes) = match (Publisher::of(model), body.stream) {
            (Publisher::Google, false) => {
                ("generateContent", gemini::request::translate_request(body)?)
            }
            (Publisher::Google, true) => (
                "streamGenerateContent?alt=sse",
                gemini::request::translate_request(body)?,
            ),
            (Publisher::Anthropic, stream) => (
                if stream {
                    "streamRawPredict"
                } else {
                    "rawPredict"
                },
                anthropic::request::translate_request(
                    Destination::Vertex {
                        anthropic_version: ANTHROPIC_VERSION,
                    },
                    body,
                )?,
            ),
        };
        Ok(UpstreamRequest {
            url: self.url(model, method)?,
            headers: self.headers()?,
            own_credentials: false,
            body: bytes,
        })
    }

    fn chat_response(&self, model: &str, body: &[u8]) -> Result<Translated, String> {
        match Publisher::of(model) {
            Publisher::Google => gemini::response::translate_response(model, body),
            Publisher::Anthropic => anthropic::response::translate_response(model, body),
        }
    }

    fn chat_stream(&self, model: &str, body: &InboundBody) -> Box<dyn StreamTranslator> {
        let usage = body.client_wants_stream_usage;
        match Publisher::of(model) {
            Publisher::Google => Box::new(gemini::stream::GeminiStream::new(model, usage)),
            Publisher::Anthropic => Box::new(anthropic::stream::AnthropicStream::new(model, usage)),
        }
    }

    fn embeddings_request(
        &self,
        model: &str,
        body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError> {
        if Publisher::of(model) == Publisher::Anthropic {
            return Err(GatewayError::Unsupported(
                "Claude models have no embeddings; use a Vertex AI embedding model such as text-embedding-005"
                    .into(),
            ));
        }
        Ok(UpstreamRequest {
            url: self.url(model, "predict")?,
            headers: self.headers()?,
            own_credentials: false,
            body: embeddings::translate_request(body)?,
        })
    }

    fn embeddings_response(
        &self,
        model: &str,
        request: &InboundBody,
        body: &[u8],
    ) -> Result<Translated, String> {
        embeddings::translate_response(model, request, body)
    }

    /// Google's front end answers in Google's shape (bad token, quota, unknown model); a Claude
    /// model's own refusals come in Anthropic's, which says so with `"type": "error"`.
    fn error_details(&self, status: u16, body: &[u8]) -> UpstreamErrorDetails {
        #[derive(Deserialize)]
        struct Shape<'a> {
            #[serde(default, rename = "type", borrow)]
            kind: Option<&'a str>,
        }
        let anthropic_shaped =
            serde_json::from_slice::<Shape>(body).is_ok_and(|shape| shape.kind == Some("error"));
        if anthropic_shaped {
            anthropic::response::error_details(status, body)
        } else {
            gemini::response::error_details(status, body)
        }
    }

    /// An organization's own credential for Vertex is an access token it mints itself.
    fn authenticate(&self, headers: &mut HeaderMap, api_key: &str) -> Result<(), String> {
        headers.insert(AUTHORIZATION, bearer(api_key)?);
        Ok(())
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
    use tollgate_common::config::VertexConfig;

    fn config(project: &str, location: &str, api_base: &str) -> ProviderConfig {
        ProviderConfig {
            kind: ProviderKind::Vertex,
            api_base: api_base.into(),
            api_key: Some(Secret::new("ya29.static-token")),
            api_version: None,
            responses_api: false,
            headers: BTreeMap::new(),
            stream_usage: true,
            aws: None,
            vertex: Some(VertexConfig {
                project: project.into(),
                location: location.into(),
                service_account: None,
                token_url: tollgate_common::config::DEFAULT_TOKEN_URL.into(),
            }),
        }
    }

    fn adapter() -> Vertex {
        Vertex::new(&config(
            "my-project",
            "us-central1",
            "https://us-central1-aiplatform.googleapis.com",
        ))
        .unwrap()
    }

    fn chat(stream: bool) -> InboundBody {
        let body = json!({"model": "smart", "stream": stream, "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ]});
        InboundBody::parse(Endpoint::ChatCompletions, Bytes::from(body.to_string())).unwrap()
    }

    fn sent(request: &UpstreamRequest) -> Value {
        serde_json::from_slice(&request.body).unwrap()
    }

    #[test]
    fn gemini_models_go_to_the_google_publisher_with_the_gemini_body() {
        let vertex = adapter();
        let request = vertex
            .chat_request("gemini-2.5-flash", &chat(false))
            .unwrap();
        assert_eq!(
            request.url.as_str(),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/my-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
        );
        let body = sent(&request);
        assert_eq!(body["contents"][0]["parts"][0]["text"], "hi");
        assert_eq!(body["systemInstruction"]["parts"][0]["text"], "Be brief.");
        assert_eq!(request.headers["authorization"], "Bearer ya29.static-token");
        assert!(request.headers["authorization"].is_sensitive());
        assert!(request.headers.get("x-goog-api-key").is_none());
        assert_eq!(request.headers["content-type"], "application/json");

        let request = vertex
            .chat_request("models/gemini-2.5-flash", &chat(true))
            .unwrap();
        assert_eq!(
            request.url.as_str(),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/my-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn claude_models_go_to_raw_predict_without_model_and_with_the_vertex_version() {
        let vertex = adapter();
        let request = vertex
            .chat_request("claude-sonnet-4@20250514", &chat(false))
            .unwrap();
        assert_eq!(
            request.url.as_str(),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/my-project/locations/us-central1/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict"
        );
        let body = sent(&request);
        assert!(body.get("model").is_none(), "{body}");
        assert_eq!(body["anthropic_version"], "vertex-2023-10-16");
        assert_eq!(body["system"], "Be brief.");
        assert_eq!(body["messages"][0]["content"], "hi");
        assert_eq!(body["max_tokens"], 4096);
        assert!(body.get("stream").is_none());
        assert!(request.headers.get("anthropic-version").is_none());
        assert!(request.headers.get("x-api-key").is_none());

        let request = vertex
            .chat_request("claude-sonnet-4@20250514", &chat(true))
            .unwrap();
        assert!(
            request.url.as_str().ends_with(":streamRawPredict"),
            "{}",
            request.url
        );
        assert_eq!(sent(&request)["stream"], true);
    }

    #[test]
    fn project_location_and_model_stay_one_path_segment_each() {
        let vertex = Vertex::new(&config(
            "my proj/x",
            "global",
            "https://aiplatform.googleapis.com",
        ))
        .unwrap();
        let request = vertex
            .chat_request("tuned model/v1?x#y@2", &chat(false))
            .unwrap();
        assert_eq!(
            request.url.as_str(),
            "https://aiplatform.googleapis.com/v1/projects/my%20proj%2Fx/locations/global/publishers/google/models/tuned%20model%2Fv1%3Fx%23y@2:generateContent"
        );
        assert_eq!(request.url.query(), None);
    }

    #[test]
    fn errors_are_read_in_the_shape_they_come_in() {
        let vertex = adapter();
        let google = br#"{"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}}"#;
        let details = vertex.error_details(401, google);
        assert_eq!(
            details.message,
            "Request had invalid authentication credentials."
        );
        assert_eq!(details.kind.as_deref(), Some("authentication_error"));
        let anthropic =
            br#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#;
        let details = vertex.error_details(529, anthropic);
        assert_eq!(details.message, "Overloaded");
        assert_eq!(details.code.as_deref(), Some("overloaded_error"));
    }

    #[test]
    fn an_organization_token_replaces_the_deployment_one() {
        let vertex = adapter();
        let mut request = vertex
            .chat_request("gemini-2.5-flash", &chat(false))
            .unwrap();
        vertex
            .authenticate(&mut request.headers, "ya29.org-token")
            .unwrap();
        assert_eq!(request.headers["authorization"], "Bearer ya29.org-token");
        assert!(request.headers["authorization"].is_sensitive());
        assert!(vertex.credentials_ready().is_none());
    }

    #[test]
    fn a_service_account_without_a_token_yet_cannot_build_a_request() {
        let key = tollgate_common::config::parse_service_account_key(
            std::str::from_utf8(&crate::providers::tests_support::fixture(
                "vertex",
                "test-only-service-account.json",
            ))
            .unwrap(),
        )
        .unwrap();
        let mut config = config("p", "us-central1", "http://127.0.0.1:1");
        config.api_key = None;
        if let Some(vertex) = config.vertex.as_mut() {
            vertex.service_account = Some(key);
        }
        let vertex = Vertex::new(&config).unwrap();
        let err = vertex
            .chat_request("gemini-2.5-flash", &chat(false))
            .unwrap_err();
        assert!(
            matches!(err, GatewayError::AllTargetsFailed { .. }),
            "{err:?}"
        );
    }
}
