//! The gateway's authenticate stage backed by the auth service's key verifier.

use std::sync::Arc;

use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use async_trait::async_trait;
use tollgate_auth::{KeyRejection, KeyVerifier};
use tollgate_common::KeyContext;
use tollgate_gateway::GatewayError;
use tollgate_gateway::pipeline::Authenticate;

/// Verifies the virtual key each request presents.
pub struct VirtualKeyAuthentication {
    verifier: Arc<dyn KeyVerifier>,
}

impl VirtualKeyAuthentication {
    pub fn new(verifier: Arc<dyn KeyVerifier>) -> Self {
        VirtualKeyAuthentication { verifier }
    }
}

/// The key from `Authorization: Bearer <key>` (OpenAI clients) or `x-api-key` (Anthropic's).
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some((scheme, token)) = value.split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
    {
        return Some(token.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

#[async_trait]
impl Authenticate for VirtualKeyAuthentication {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<KeyContext>, GatewayError> {
        let key = presented_key(headers)
            .filter(|k| !k.is_empty())
            .ok_or(KeyRejection::Missing)
            .map_err(rejection)?;
        self.verifier.verify(key).await.map_err(rejection)
    }
}

fn rejection(rejection: KeyRejection) -> GatewayError {
    match rejection {
        KeyRejection::Unavailable(detail) => {
            tracing::error!(%detail, "cannot verify an API key");
            GatewayError::AuthUnavailable
        }
        other => GatewayError::Unauthenticated {
            message: other.to_string(),
            code: other.code(),
        },
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    #[test]
    fn keys_are_read_from_either_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_key(&headers), None);
        headers.insert(
            "x-api-key".parse().unwrap(),
            HeaderValue::from_static("tg-b"),
        );
        assert_eq!(presented_key(&headers), Some("tg-b"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer tg-a"));
        assert_eq!(presented_key(&headers), Some("tg-a"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_key(&headers), Some("tg-b"));
    }
}
