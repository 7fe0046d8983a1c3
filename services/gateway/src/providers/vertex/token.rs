//! Access tokens for Vertex AI from a service account's key: the OAuth 2.0 JWT bearer grant.
//!
//! The key signs a short JWT (RS256) naming the service account, the scope wanted and the token
//! endpoint; the endpoint answers with an access token good for about an hour.
//! <https://developers.google.com/identity/protocols/oauth2/service-account#httprest>
//!
//! Requests build their headers synchronously ([`super::super::ProviderAdapter::chat_request`]),
//! so the token is fetched before that, in [`TokenSource::prepare`], which
//! `upstream::send` awaits only when it returns a future:
//! - a cached token with more than [`REFRESH_BEFORE`] left: nothing to do, a read lock only;
//! - one with less, but still usable: a refresh starts in the background and the request goes
//!   on with the cached token, so no request waits for a refresh while a good token exists;
//! - none usable (first request, or after a failure): the request waits for the exchange.
//!
//! One exchange runs at a time (a `tokio::sync::Mutex`): requests arriving meanwhile wait for
//! it and then use its token rather than starting their own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde::{Deserialize, Serialize};
use tollgate_common::config::ServiceAccountKey;

use crate::providers::{parse_url, plain_error_text, secret_header};

/// What the token may be used for: every Google Cloud API the account's roles allow.
pub(crate) const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// RFC 7523's grant type.
pub(crate) const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The longest lifetime Google accepts for the assertion.
const ASSERTION_LIFETIME_SECS: u64 = 3600;
/// A token with less than this left is replaced in the background.
pub(crate) const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);
/// A token with less than this left is not sent: a slow request could outlive it.
const USABLE_FOR_AT_LEAST: Duration = Duration::from_secs(60);
/// The token endpoint's time to answer; an exchange holds up the requests waiting for it.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed background refresh, the wait before the next one may start.
const BACKGROUND_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("the service account's private_key is not an RSA key in PEM: {0}")]
    Key(String),
    #[error("cannot sign the token request: {0}")]
    Sign(String),
    #[error("the token endpoint {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the token endpoint refused the service account (status {status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the token endpoint answered something unreadable: {0}")]
    Unreadable(String),
}

/// The JWT's claims (<https://developers.google.com/identity/protocols/oauth2/service-account#authorizingrequests>).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Claims {
    pub(crate) iss: String,
    pub(crate) scope: String,
    pub(crate) aud: String,
    pub(crate) iat: u64,
    pub(crate) exp: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
    #[serde(default)]
    token_type: Option<String>,
}

/// The `Authorization` header value and when its token stops being good.
#[derive(Clone)]
struct CachedToken {
    header: HeaderValue,
    expires_at: Instant,
}

/// Mints, caches and refreshes one service account's access tokens.
pub(crate) struct TokenSource {
    client_email: String,
    key_id: Option<String>,
    signing_key: EncodingKey,
    token_url: Url,
    http: reqwest::Client,
    cached: RwLock<Option<CachedToken>>,
    /// Held for the whole of an exchange: one at a time.
    exchange: tokio::sync::Mutex<()>,
    /// A background refresh is scheduled or running.
    refreshing: AtomicBool,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("client_email", &self.client_email)
            .field("token_url", &self.token_url.as_str())
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// Reads the key (an error here stops start-up) and prepares the HTTP client.
    pub(crate) fn new(key: &ServiceAccountKey, token_url: &str) -> Result<Self, String> {
        let signing_key = EncodingKey::from_rsa_pem(key.private_key.expose().as_bytes())
            .map_err(|e| TokenError::Key(e.to_string()).to_string())?;
        // Exchanges are hourly and may run on any server worker's runtime: no pooled
        // connection is kept to be driven by a runtime other than the one that opened it.
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(0)
            .timeout(EXCHANGE_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the token endpoint's HTTP client: {e}"))?;
        Ok(TokenSource {
            client_email: key.client_email.clone(),
            key_id: key.private_key_id.clone(),
            signing_key,
            token_url: parse_url(token_url)?,
            http,
            cached: RwLock::new(None),
            exchange: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
        })
    }

    /// The `Authorization` value of the cached token, if it is good for at least a minute.
    pub(crate) fn current(&self) -> Option<HeaderValue> {
        let cached = self.cached.read().unwrap_or_else(|e| e.into_inner());
        cached
            .as_ref()
            .filter(|t| left(t) >= USABLE_FOR_AT_LEAST)
            .map(|t| t.header.clone())
    }

    /// What must happen before a request can take [`TokenSource::current`]: nothing (`None`)
    /// while a usable token is cached, a refresh started in the background when it runs low,
    /// or, without a usable one, a future that gets one.
    pub(crate) fn prepare(self: &Arc<Self>) -> Option<BoxFuture<'static, Result<(), String>>> {
        let remaining = {
            let cached = self.cached.read().unwrap_or_else(|e| e.into_inner());
            cached.as_ref().map(left)
        };
        match remaining {
            Some(left) if left >= REFRESH_BEFORE => None,
            Some(left) if left >= USABLE_FOR_AT_LEAST => {
                self.refresh_in_background();
                None
            }
            _ => {
                let source = self.clone();
                Some(Box::pin(async move {
                    source
                        .refresh(USABLE_FOR_AT_LEAST)
                        .await
                        .map_err(|e| e.to_string())
                }))
            }
        }
    }

    /// Starts one refresh on the runtime unless one is already under way.
    fn refresh_in_background(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let source = self.clone();
        tokio::spawn(async move {
            if let Err(error) = source.refresh(REFRESH_BEFORE).await {
                // The cached token still serves; requests wait for a new one only once it
                // runs out. The error names the endpoint and the status, never the token.
                tracing::warn!(%error, "refreshing the Vertex AI access token failed");
                tokio::time::sleep(BACKGROUND_RETRY_PAUSE).await;
            }
            source.refreshing.store(false, Ordering::Release);
        });
    }

    /// Exchanges a new token unless, once this caller's turn comes, the cached one has at
    /// least `wanted` left (someone else's exchange got it meanwhile).
    async fn refresh(&self, wanted: Duration) -> Result<(), TokenError> {
        let _turn = self.exchange.lock().await;
        let fresh_enough = {
            let cached = self.cached.read().unwrap_or_else(|e| e.into_inner());
            cached.as_ref().is_some_and(|t| left(t) >= wanted)
        };
        if fresh_enough {
            return Ok(());
        }
        let token = self.exchange_token().await?;
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = Some(token);
        Ok(())
    }

    /// The signed JWT asserting the service account's identity, issued at `now` (Unix seconds).
    pub(crate) fn assertion(&self, now: u64) -> Result<String, TokenError> {
        let claims = Claims {
            iss: self.client_email.clone(),
            scope: SCOPE.to_owned(),
            aud: self.token_url.as_str().to_owned(),
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.signing_key)
            .map_err(|e| TokenError::Sign(e.to_string()))
    }

    /// One round trip to the token endpoint.
    async fn exchange_token(&self) -> Result<CachedToken, TokenError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let assertion = self.assertion(now)?;
        let form = serde_urlencoded::to_string([
            ("grant_type", GRANT_TYPE),
            ("assertion", assertion.as_str()),
        ])
        .map_err(|e| TokenError::Sign(e.to_string()))?;
        // The lifetime counts from before the request: the token never outlives its entry.
        let sent_at = Instant::now();
        let unreachable = |e: reqwest::Error| TokenError::Unreachable {
            url: self.token_url.to_string(),
            reason: e.without_url().to_string(),
        };
        let response = self
            .http
            .post(self.token_url.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(TokenError::Refused {
                status: status.as_u16(),
                message: refusal_message(status.as_u16(), &body),
            });
        }
        let answer: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| TokenError::Unreadable(e.to_string()))?;
        if let Some(kind) = answer
            .token_type
            .as_deref()
            .filter(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(TokenError::Unreadable(format!(
                "a `{kind}` token, not a bearer token"
            )));
        }
        let header = secret_header(&format!("Bearer {}", answer.access_token))
            .map_err(TokenError::Unreadable)?;
        Ok(CachedToken {
            header,
            expires_at: sent_at + Duration::from_secs(answer.expires_in),
        })
    }
}

fn left(token: &CachedToken) -> Duration {
    token.expires_at.saturating_duration_since(Instant::now())
}

/// Google's OAuth error body, `{"error": "invalid_grant", "error_description": "..."}`, as
/// one line; anything else shortened.
fn refusal_message(status: u16, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    match serde_json::from_slice::<OAuthError>(body) {
        Ok(OAuthError {
            error,
            error_description: Some(description),
        }) => format!("{error}: {description}"),
        Ok(OAuthError { error, .. }) => error,
        Err(_) => plain_error_text(status, body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use tollgate_common::config::parse_service_account_key;
    use tollgate_mock_provider::{MockConfig, MockServer};

    fn test_key() -> ServiceAccountKey {
        let json =
            crate::providers::tests_support::fixture("vertex", "test-only-service-account.json");
        parse_service_account_key(std::str::from_utf8(&json).unwrap()).unwrap()
    }

    fn public_key() -> DecodingKey {
        let pem = crate::providers::tests_support::fixture("vertex", "test-only-public-key.pem");
        DecodingKey::from_rsa_pem(&pem).unwrap()
    }

    fn token_count(mock: &MockServer) -> u64 {
        mock.stats()
            .by_route
            .get("vertex.token")
            .copied()
            .unwrap_or_default()
    }

    async fn mock_issuing_for(expires_in: u64) -> (MockServer, Arc<TokenSource>) {
        let mock = MockServer::start(MockConfig {
            token_expires_in_secs: expires_in,
            ..MockConfig::default()
        })
        .await
        .unwrap();
        let source = TokenSource::new(&test_key(), &format!("{}/token", mock.url())).unwrap();
        (mock, Arc::new(source))
    }

    #[test]
    fn the_assertion_is_signed_by_the_key_and_claims_what_google_asks() {
        let url = "https://oauth2.googleapis.com/token";
        let source = TokenSource::new(&test_key(), url).unwrap();
        let jwt = source.assertion(1_800_000_000).unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(
            header.kid.as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[url]);
        validation.set_issuer(&["tollgate-test@tollgate-test.iam.gserviceaccount.com"]);
        // Issued at a fixed time in the future: check the claims, not the clock.
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Claims>(&jwt, &public_key(), &validation)
            .unwrap()
            .claims;
        assert_eq!(
            claims,
            Claims {
                iss: "tollgate-test@tollgate-test.iam.gserviceaccount.com".into(),
                scope: SCOPE.into(),
                aud: url.into(),
                iat: 1_800_000_000,
                exp: 1_800_003_600,
            }
        );
        // A flipped signature byte fails verification: the check above is a real one.
        let mut forged = jwt.into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert!(jsonwebtoken::decode::<Claims>(&forged, &public_key(), &validation).is_err());
    }

    #[test]
    fn a_key_that_is_not_rsa_pem_is_refused() {
        let mut key = test_key();
        key.private_key = tollgate_common::Secret::new(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        let err = TokenSource::new(&key, "https://oauth2.googleapis.com/token").unwrap_err();
        assert!(err.contains("not an RSA key in PEM"), "{err}");
        assert!(!err.contains("AAAA"), "{err}");
    }

    #[tokio::test]
    async fn the_token_is_fetched_once_then_served_from_the_cache() {
        let (mock, source) = mock_issuing_for(3600).await;
        assert!(source.current().is_none());
        // Concurrent first requests share one exchange.
        let waits: Vec<_> = (0..8).map(|_| source.prepare().unwrap()).collect();
        for result in futures_util::future::join_all(waits).await {
            result.unwrap();
        }
        let header = source.current().unwrap();
        assert!(header.is_sensitive());
        assert!(header.to_str().unwrap().starts_with("Bearer "));
        assert!(source.prepare().is_none());
        assert_eq!(source.current(), Some(header));
        assert_eq!(token_count(&mock), 1);
    }

    #[tokio::test]
    async fn a_token_running_low_is_replaced_in_the_background() {
        // Two minutes: usable, but inside the five-minute refresh window from the start.
        let (mock, source) = mock_issuing_for(120).await;
        source.prepare().unwrap().await.unwrap();
        let first = source.current().unwrap();
        assert_eq!(token_count(&mock), 1);
        // The request goes on at once with the cached token...
        assert!(source.prepare().is_none());
        assert_eq!(source.current().as_ref(), Some(&first));
        // ...while a new one is fetched.
        for _ in 0..200 {
            if source.current().as_ref() != Some(&first) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_ne!(source.current().as_ref(), Some(&first));
        assert_eq!(token_count(&mock), 2);
    }

    #[tokio::test]
    async fn a_refusal_is_reported_with_google_words() {
        let (mock, _) = mock_issuing_for(3600).await;
        let mut key = test_key();
        key.client_email = "someone-else@example.iam.gserviceaccount.com".into();
        let source = Arc::new(TokenSource::new(&key, &format!("{}/token", mock.url())).unwrap());
        let err = source.prepare().unwrap().await.unwrap_err();
        assert!(
            err.contains("status 400") && err.contains("invalid_grant"),
            "{err}"
        );
        assert!(source.current().is_none());
    }
}
