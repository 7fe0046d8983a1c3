//! The APIs clients call, and how each one's body is read and its answers written.
//!
//! The pipeline speaks OpenAI's chat format ([`crate::openai`]) throughout, so every stage
//! (keys, limits, budgets, cache, metering) behaves the same whichever API a client used. A
//! way in other than OpenAI's own is one folder here with the same files: `request.rs` (its
//! body as an OpenAI chat body), `response.rs` (a whole OpenAI answer and errors in its
//! shape) and `stream.rs` (OpenAI chunks as its stream events, a [`StreamEncoder`]).

pub mod messages;
pub mod responses;

use std::time::SystemTime;

use actix_web::HttpResponse;
use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use bytes::{Bytes, BytesMut};

use crate::error::GatewayError;
use crate::openai::{Endpoint, InboundBody, NativeBody};

/// The API a client called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// One of OpenAI's endpoints (`POST /v1/chat/completions`, `/v1/embeddings`, ...), in
    /// OpenAI's own format: the pipeline's.
    OpenAi(Endpoint),
    /// `POST /v1/messages`, Anthropic's Messages API.
    AnthropicMessages,
    /// `POST /v1/responses`, OpenAI's Responses API.
    OpenAiResponses,
}

/// Turns the pipeline's OpenAI SSE events into another API's stream, as they are sent.
pub trait StreamEncoder: Send {
    /// Consumes OpenAI SSE bytes (whole events, or any split of them) and appends the
    /// client's events to `out`.
    fn encode(&mut self, openai: &[u8], out: &mut BytesMut);
}

impl Ingress {
    /// The pipeline's operation for this API.
    pub fn endpoint(self) -> Endpoint {
        match self {
            Ingress::OpenAi(endpoint) => endpoint,
            Ingress::AnthropicMessages | Ingress::OpenAiResponses => Endpoint::ChatCompletions,
        }
    }

    /// Reads a body sent to this API, with the request header `content_type`, into the
    /// pipeline's request.
    pub fn parse(
        self,
        content_type: Option<&str>,
        raw: Bytes,
    ) -> Result<InboundBody, GatewayError> {
        match self {
            Ingress::OpenAi(endpoint @ Endpoint::AudioTranscriptions) => {
                InboundBody::parse_form(endpoint, content_type, raw)
            }
            Ingress::OpenAi(endpoint) => InboundBody::parse(endpoint, raw),
            // The API's own parser checks the whole body first, so that one forwarded as the
            // client wrote it has passed the same checks as one translated.
            Ingress::AnthropicMessages => {
                let chat = messages::request::to_chat_body(&raw)?;
                let native = NativeBody::parse(self, raw)?;
                Ok(InboundBody::parse(Endpoint::ChatCompletions, chat)?.with_native(native))
            }
            Ingress::OpenAiResponses => {
                let chat = responses::request::to_chat_body(&raw)?;
                let native = NativeBody::parse(self, raw)?;
                Ok(InboundBody::parse(Endpoint::ChatCompletions, chat)?.with_native(native))
            }
        }
    }

    /// A whole OpenAI answer in this API's shape.
    pub fn answer(self, openai: Bytes) -> Result<Bytes, GatewayError> {
        match self {
            Ingress::OpenAi(_) => Ok(openai),
            Ingress::AnthropicMessages => messages::response::to_message(&openai),
            Ingress::OpenAiResponses => responses::response::to_response(&openai),
        }
    }

    /// What turns the OpenAI stream into this API's, when it is not OpenAI's own. With
    /// `native`, the stream is already in this API's format (a target of the same API) and
    /// only the gateway's own error events are rewritten.
    pub fn stream_encoder(self, native: bool) -> Option<Box<dyn StreamEncoder>> {
        match self {
            Ingress::OpenAi(_) => None,
            Ingress::AnthropicMessages if native => {
                Some(Box::new(messages::stream::MessagesEvents::relaying()))
            }
            Ingress::AnthropicMessages => Some(Box::new(messages::stream::MessagesEvents::new())),
            Ingress::OpenAiResponses if native => {
                Some(Box::new(responses::stream::ResponsesEvents::relaying()))
            }
            Ingress::OpenAiResponses => Some(Box::new(responses::stream::ResponsesEvents::new())),
        }
    }

    /// The error answer in this API's shape, with the same status and headers.
    pub fn error_response(self, error: &GatewayError, request_id: &str) -> HttpResponse {
        let mut response = error.to_response(request_id);
        match self {
            Ingress::OpenAi(_) | Ingress::OpenAiResponses => response,
            Ingress::AnthropicMessages => {
                let body = messages::response::error_body(error, request_id);
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                if let GatewayError::RateLimited { headers, .. } = error {
                    for (name, value) in self.response_headers(headers) {
                        response.headers_mut().insert(name, value);
                    }
                }
                response.set_body(body.to_string()).map_into_boxed_body()
            }
        }
    }

    /// The headers admission set (OpenAI's rate-limit headers), with this API's own added.
    pub fn response_headers(
        self,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Vec<(HeaderName, HeaderValue)> {
        match self {
            Ingress::OpenAi(_) | Ingress::OpenAiResponses => headers.to_vec(),
            Ingress::AnthropicMessages => {
                let mut all = headers.to_vec();
                all.extend(messages::response::rate_limit_headers(
                    headers,
                    SystemTime::now(),
                ));
                all
            }
        }
    }
}

/// A JSON value kept as the client wrote it (a schema), as a tree to build a body with. Text
/// that is well-formed but cannot be a string (a lone surrogate escape) is the client's error.
pub(crate) fn json_value(
    field: &str,
    raw: &serde_json::value::RawValue,
) -> Result<serde_json::Value, GatewayError> {
    serde_json::from_str(raw.get())
        .map_err(|e| GatewayError::invalid_field(field, format!("{field}: {e}")))
}

/// How an API names a field deep in a body.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldPath {
    /// Anthropic's `messages.0.content`.
    Dotted,
    /// OpenAI's `input[0].content`.
    Indexed,
}

/// Reads a body into `T`; a problem is a 400 naming its field the way the API does.
pub(crate) fn parse_typed<T: serde::de::DeserializeOwned>(
    raw: &[u8],
    style: FieldPath,
) -> Result<T, GatewayError> {
    // Tracking the path costs on every field; only a body that fails needs it, so it is read
    // again for its error.
    if let Ok(parsed) = serde_json::from_slice(raw) {
        return Ok(parsed);
    }
    let mut de = serde_json::Deserializer::from_slice(raw);
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let mut path = err.path().to_string();
        if let FieldPath::Dotted = style {
            path = path.replace('[', ".").replace(']', "");
        }
        let inner = err.into_inner();
        let mut message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return GatewayError::MalformedJson(message);
        }
        // Where a value of the wrong shape sits is said by the path, not the position.
        if let Some(at) = message.find(" at line ") {
            message.truncate(at);
        }
        // serde names a missing field in its message, at the path of the object around it.
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            path = if path.is_empty() || path == "." {
                field.to_owned()
            } else {
                format!("{path}.{field}")
            };
            message = "Field required".to_owned();
        }
        if path.is_empty() || path == "." {
            return GatewayError::MalformedJson("the body must be a JSON object".into());
        }
        GatewayError::invalid_field(path.clone(), format!("{path}: {message}"))
    })
}
