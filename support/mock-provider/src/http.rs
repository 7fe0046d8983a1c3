//! Small request/response helpers shared by the wire formats.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use serde::Serialize;

use crate::stream::{BodyStream, Source};

/// A status from a number, falling back to 500 for values HTTP cannot carry.
pub(crate) fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Serializes a response body; our types cannot fail to serialize, so an empty body is only
/// a theoretical fallback.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// A JSON response.
pub(crate) fn json(code: StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(code)
        .content_type("application/json")
        .body(body)
}

/// A JSON error response for an injected failure, with Retry-After when configured.
pub(crate) fn failure(code: u16, retry_after: Option<u64>, body: Vec<u8>) -> HttpResponse {
    let mut builder = HttpResponse::build(status(code));
    builder.content_type("application/json");
    if let Some(secs) = retry_after {
        builder.insert_header((RETRY_AFTER, secs));
    }
    builder.body(body)
}

/// A streamed response of `content_type` produced by `stream`.
pub(crate) fn streamed<S: Source>(
    content_type: &'static str,
    stream: BodyStream<S>,
) -> HttpResponse {
    let mut builder: HttpResponseBuilder = HttpResponse::Ok();
    builder
        .insert_header((CONTENT_TYPE, content_type))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .streaming(stream)
}

/// A header value as text, if present and valid.
pub(crate) fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A query parameter's raw (undecoded) value.
pub(crate) fn query_param<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.query_string().split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}
