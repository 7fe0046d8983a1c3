//! Provider adapters: one folder per wire format, all behind [`ProviderAdapter`].
//!
//! An adapter only translates: it builds the upstream request (URL, headers, body) from the
//! client's OpenAI-shaped body, and turns the upstream's answer, whole or streamed, back into
//! OpenAI's shape with the usage it reported. Sending, retrying and timing are the
//! [`crate::upstream`] module's job.
//!
//! Every dialect's folder has the same files, so that one reads like another:
//! - `mod.rs`: the adapter, the type implementing [`ProviderAdapter`]: URLs, authentication
//!   headers, defaults;
//! - `request.rs`: the client's request as the provider's body;
//! - `response.rs`: the provider's whole answer and its error bodies in OpenAI's terms, with the
//!   usage it reported;
//! - `stream.rs`: the provider's stream as OpenAI chunks (a [`StreamTranslator`]);
//! - `fixtures/`: answers written from the provider's API reference, read by the tests.
//!
//! Streams arrive as server-sent events ([`sse`]), or, from Bedrock, as AWS event stream
//! messages ([`eventstream`]); both decoders take whatever byte splits the network delivers.
//! Bedrock is also the one provider whose requests are signed (SigV4) rather than carrying a
//! key, so its adapter signs each request as it builds it (see [`bedrock`]).
//! Vertex AI (`vertex/`) has no dialect of its own: it serves Gemini models in Gemini's format
//! and Claude models in Anthropic's, so its folder holds the adapter, its OAuth token source
//! (`token.rs`) and its embeddings, and calls into `gemini/` and `anthropic/` for the rest.
//!
//! A new provider is a variant of [`ProviderKind`] with its row in
//! [`tollgate_common::config::PROVIDERS`], a folder here, its arm in [`adapter_for`], and its row
//! in `tests/conformance.rs`: there every adapter passes the same checks (text, streaming, tools,
//! images, stop reasons, usage, error bodies) on its own fixtures.

pub mod anthropic;
pub mod bedrock;
pub mod cohere;
pub mod eventstream;
pub mod gemini;
pub mod mistral;
pub mod openai;
pub mod sse;
pub mod vertex;

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use reqwest::Url;
use reqwest::header::HeaderMap;
use tollgate_common::TokenUsage;
use tollgate_common::config::{ProviderConfig, ProviderKind};

use crate::error::GatewayError;
use crate::ingress::Ingress;
use crate::openai::{Endpoint, InboundBody};

/// A request ready to send upstream.
#[derive(Debug)]
pub struct UpstreamRequest {
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Sent with the organization's own provider key rather than the deployment's: the
    /// provider refusing or throttling it is that organization's matter, not the target's.
    pub own_credentials: bool,
}

/// An upstream answer in OpenAI's shape.
#[derive(Debug)]
pub struct Translated {
    /// The OpenAI-shaped JSON body for the client.
    pub body: Bytes,
    /// Token counts the upstream reported, if it did.
    pub usage: Option<TokenUsage>,
}

/// What an upstream error body said, in OpenAI's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamErrorDetails {
    pub message: String,
    /// OpenAI's `error.type` (e.g. `invalid_request_error`), mapped where the provider has its own.
    pub kind: Option<String>,
    pub param: Option<String>,
    pub code: Option<String>,
    /// How long the provider asked to wait before a retry, where it says so in the body rather
    /// than in a `Retry-After` header (Google's `RetryInfo`).
    pub retry_after: Option<Duration>,
}

/// Translates between OpenAI's wire format and one provider's.
pub trait ProviderAdapter: Send + Sync + 'static {
    fn kind(&self) -> ProviderKind;

    /// The output limit this dialect sends when the client set none, where the provider
    /// requires one (Anthropic); `None` where the provider then allows the model's maximum.
    /// Budgets reserve exactly this, so a request can never be answered at more length than
    /// was reserved for it.
    fn default_max_output(&self) -> Option<u32> {
        None
    }

    /// Whether a body a client wrote for `ingress` is sent to this provider as it is (`model`
    /// aside), with the answer handed back as it came: the provider speaks that API itself,
    /// and a client of it is not translated twice. [`ProviderAdapter::chat_request`] and
    /// [`ProviderAdapter::chat_stream`] then work on the client's own bytes.
    fn forwards(&self, ingress: Ingress) -> bool {
        let _ = ingress;
        false
    }

    /// Reads an answer to a forwarded request (see [`ProviderAdapter::forwards`]), which goes to
    /// the client as it came: the usage it reported and, when `as_chat`, the same answer as an
    /// OpenAI chat completion, for the response cache to keep. Without `as_chat` only the usage
    /// is read, and the body returned is empty: nothing else needs the translation.
    fn forwarded_response(
        &self,
        model: &str,
        body: &[u8],
        as_chat: bool,
    ) -> Result<Translated, String> {
        let _ = as_chat;
        self.chat_response(model, body)
    }

    /// What must happen before this adapter can build a request, where that takes I/O: Vertex
    /// AI fetching an OAuth access token. `None` (the default, and Vertex's while its cached
    /// token is good) means nothing; [`crate::upstream::send`] awaits a future before building
    /// the target's request, and an error there is the target's failure. Request building stays
    /// synchronous and every other adapter pays nothing for this.
    fn credentials_ready(&self) -> Option<BoxFuture<'static, Result<(), String>>> {
        None
    }

    /// The upstream request for a chat completion on `model` (streaming when `body.stream`).
    /// An error here is the client's: its request cannot be expressed for this provider.
    fn chat_request(
        &self,
        model: &str,
        body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError>;

    /// Turns a successful non-streaming upstream body into an OpenAI `chat.completion`.
    /// An error means the upstream answered something we cannot read: the target failed.
    fn chat_response(&self, model: &str, body: &[u8]) -> Result<Translated, String>;

    /// A translator for the upstream's event stream of one request.
    fn chat_stream(&self, model: &str, body: &InboundBody) -> Box<dyn StreamTranslator>;

    /// The upstream request for embeddings; providers without embeddings answer
    /// [`GatewayError::Unsupported`].
    fn embeddings_request(
        &self,
        model: &str,
        body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError>;

    /// Turns a successful upstream embeddings body into OpenAI's `list` of embeddings, in the
    /// `encoding_format` the client's `request` asked for.
    fn embeddings_response(
        &self,
        model: &str,
        request: &InboundBody,
        body: &[u8],
    ) -> Result<Translated, String>;

    /// The upstream request for an OpenAI endpoint that only OpenAI-format providers serve
    /// (the legacy `/v1/completions`, `/v1/moderations`, `/v1/images/generations`,
    /// `/v1/audio/transcriptions`): the client's body, `model` swapped. Others answer
    /// [`GatewayError::Unsupported`].
    fn passthrough_request(
        &self,
        endpoint: Endpoint,
        _model: &str,
        _body: &InboundBody,
    ) -> Result<UpstreamRequest, GatewayError> {
        Err(GatewayError::Unsupported(format!(
            "`/v1/{}` is served only by OpenAI-format providers (OpenAI, Azure OpenAI and \
             compatible servers), not by {}; route the model to one of those",
            endpoint.path(),
            self.kind().as_str()
        )))
    }

    /// Reads the usage out of an answer to [`ProviderAdapter::passthrough_request`] for
    /// `endpoint`, which goes to the client as it came: `None` where the answer reports none
    /// in tokens.
    fn passthrough_usage(
        &self,
        _endpoint: Endpoint,
        _body: &[u8],
    ) -> Result<Option<TokenUsage>, String> {
        Err(format!(
            "{} does not serve OpenAI's other endpoints",
            self.kind().as_str()
        ))
    }

    /// Reads the upstream's error body (any status) into OpenAI's terms.
    fn error_details(&self, status: u16, body: &[u8]) -> UpstreamErrorDetails;

    /// Puts `api_key` in `headers` the way this provider expects it, replacing the
    /// deployment's key (an organization bringing its own).
    fn authenticate(&self, headers: &mut HeaderMap, api_key: &str) -> Result<(), String>;
}

/// Turns one upstream stream into OpenAI SSE events, as the bytes arrive.
pub trait StreamTranslator: Send {
    /// Consumes the next upstream bytes (any split), appending whole OpenAI SSE events to `out`.
    /// An error means the upstream broke off or reported an error in the stream.
    fn feed(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), String>;

    /// The upstream ended: append what is still pending and the closing `data: [DONE]`.
    fn finish(&mut self, out: &mut BytesMut) -> Result<(), String>;

    /// Token counts the upstream reported so far.
    fn usage(&self) -> Option<TokenUsage>;

    /// The text generated so far, to count tokens when the upstream reports no usage.
    fn output_text(&self) -> &str;
}

/// Builds the adapter for a configured provider.
pub fn adapter_for(config: &ProviderConfig) -> Result<Box<dyn ProviderAdapter>, String> {
    Ok(match config.kind {
        ProviderKind::Openai => Box::new(openai::OpenAi::new(config)?),
        ProviderKind::Azure => Box::new(openai::OpenAi::azure(config)?),
        ProviderKind::Anthropic => Box::new(anthropic::Anthropic::new(config)?),
        ProviderKind::Gemini => Box::new(gemini::Gemini::new(config)?),
        ProviderKind::Bedrock => Box::new(bedrock::Bedrock::new(config)?),
        ProviderKind::Vertex => Box::new(vertex::Vertex::new(config)?),
        ProviderKind::Mistral => Box::new(mistral::Mistral::new(config)?),
        ProviderKind::Cohere => Box::new(cohere::Cohere::new(config)?),
    })
}

/// Upstream URLs, parsed once each: parsing a URL costs more than building the rest of a
/// request. Keyed by whatever the URL depends on (model, operation); bounded, so that clients
/// naming endless models cannot grow it without limit.
#[derive(Debug, Default)]
pub(crate) struct UrlCache {
    urls: RwLock<HashMap<String, Url>>,
}

impl UrlCache {
    const MAX_ENTRIES: usize = 4_096;

    /// The URL for `key`, built by `build` the first time.
    pub(crate) fn get(
        &self,
        key: &str,
        build: impl FnOnce() -> String,
    ) -> Result<Url, GatewayError> {
        if let Some(url) = self.read().get(key) {
            return Ok(url.clone());
        }
        let url = parse_url(&build()).map_err(|e| GatewayError::invalid_field("model", e))?;
        let mut urls = self.urls.write().unwrap_or_else(|e| e.into_inner());
        if urls.len() < Self::MAX_ENTRIES {
            urls.insert(key.to_owned(), url.clone());
        }
        Ok(url)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Url>> {
        self.urls.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Parses an upstream URL, naming it in the error.
pub(crate) fn parse_url(url: &str) -> Result<Url, String> {
    Url::parse(url).map_err(|e| format!("`{url}` is not a valid URL: {e}"))
}

/// Header map with the provider's configured extra headers, built once at start-up.
pub(crate) fn base_headers(config: &ProviderConfig) -> Result<HeaderMap, String> {
    use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in &config.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name `{name}`"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value for header `{name}`"))?;
        headers.insert(name, value);
    }
    Ok(headers)
}

/// A header value holding a secret: marked sensitive so that it is never printed.
pub(crate) fn secret_header(value: &str) -> Result<reqwest::header::HeaderValue, String> {
    let mut value = reqwest::header::HeaderValue::from_str(value)
        .map_err(|_| "the API key contains characters not allowed in a header".to_owned())?;
    value.set_sensitive(true);
    Ok(value)
}

/// Puts `token` in `headers` as `Authorization: Bearer`, marked sensitive: how OpenAI, Mistral,
/// Cohere and Google's access tokens are sent.
pub(crate) fn set_bearer(headers: &mut HeaderMap, token: &str) -> Result<(), String> {
    headers.insert(
        reqwest::header::AUTHORIZATION,
        secret_header(&format!("Bearer {token}"))?,
    );
    Ok(())
}

/// `data:<mime>[;params];base64,<data>` split into its MIME type (maybe empty) and base64 data;
/// `None` for anything else, including data URLs that are not base64.
pub(crate) fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mut params = meta.split(';');
    let mime = params.next().unwrap_or_default().trim();
    if !params.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
        return None;
    }
    Some((mime, data))
}

/// Whether `url` is an http:// or https:// URL (scheme in any case).
pub(crate) fn is_http_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// Percent-encodes everything but unreserved characters (RFC 3986), so that a model or
/// deployment name stays one URL path segment.
pub(crate) fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The top-level `usage` object of an answer, read without parsing the rest: OpenAI and
/// Anthropic write it last, so it is found from the end. Only a real member of the top-level
/// object qualifies: its key preceded by `{` or `,` (inside a string a quote is escaped) and its
/// value followed by nothing but the body's closing `}`, so that a `usage` nested in
/// model-written JSON (a tool's input) never passes for the answer's. Anything else returns
/// `None`, and the caller parses the whole body.
pub(crate) fn trailing_usage<U: serde::de::DeserializeOwned>(body: &[u8]) -> Option<U> {
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
    let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<Option<U>>();
    let usage = values.next()?.ok()?;
    if rest[values.byte_offset()..].trim_ascii() != b"}" {
        return None;
    }
    usage
}

/// An error body we cannot parse, shortened to something fit for a message.
pub(crate) fn plain_error_text(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        format!("upstream returned status {status}")
    } else {
        text.chars().take(500).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// A provider response fixture: `src/providers/<provider>/fixtures/<name>` in this crate.
    pub(crate) fn fixture(provider: &str, name: &str) -> Vec<u8> {
        let path = format!(
            "{}/src/providers/{provider}/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read fixture {path}: {e}"))
    }
}
