//! Google Cloud's Vertex AI: the OAuth token endpoint that trades a service account's signed JWT
//! for an access token, and the model routes that take only such tokens.
//!
//! `POST /token` checks the grant type and verifies the JWT (RS256) against the public half of
//! the test service account's key, the only account this mock knows, and its claims: issuer,
//! audience (this endpoint's URL), scope and lifetime. It then issues a random token that lives
//! `token_expires_in_secs`.
//!
//! `POST /v1/projects/{p}/locations/{l}/publishers/{publisher}/models/{model}:{method}` requires
//! `Authorization: Bearer` with an issued, unexpired token (or `require_key`, for callers with a
//! static token), then answers as the publisher's own API does: Gemini's `generateContent` and
//! `streamGenerateContent`, Anthropic's Messages through `rawPredict` and `streamRawPredict`
//! (model in the URL, `anthropic_version` in the body), and the text-embedding models' `predict`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::anthropic::{self, Dialect};
use crate::behaviour::State;
use crate::gemini::{self, Auth};
use crate::openai::MAX_DIMENSIONS;
use crate::stats::Route;
use crate::{answer, http};

/// The public half of the test service account's key (its key file sits beside it, for the
/// gateway's tests). Generated for the tests; it belongs to no Google Cloud account.
const TEST_PUBLIC_KEY: &str = include_str!(
    "../../../services/gateway/src/providers/vertex/fixtures/test-only-public-key.pem"
);
/// The test service account.
const TEST_CLIENT_EMAIL: &str = "tollgate-test@tollgate-test.iam.gserviceaccount.com";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google refuses assertions meant to live longer than an hour.
const MAX_ASSERTION_SECS: u64 = 3600;

/// Access tokens issued, with when each expires.
#[derive(Default)]
pub(crate) struct IssuedTokens {
    tokens: Mutex<HashMap<String, Instant>>,
}

impl IssuedTokens {
    fn issue(&self, lifetime: Duration) -> String {
        let token = answer::random_id("ya29.mock-", 32);
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        tokens.retain(|_, expires| *expires > now);
        tokens.insert(token.clone(), now + lifetime);
        token
    }

    fn valid(&self, token: &str) -> bool {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .get(token)
            .is_some_and(|expires| *expires > Instant::now())
    }
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    grant_type: Option<String>,
    #[serde(default)]
    assertion: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    scope: String,
    iat: u64,
    exp: u64,
}

/// An OAuth error as Google's token endpoint words it.
fn oauth_error(error: &str, description: &str) -> HttpResponse {
    http::json(
        StatusCode::BAD_REQUEST,
        http::to_json(&serde_json::json!({"error": error, "error_description": description})),
    )
}

/// `POST /token`: the JWT bearer grant.
pub(crate) async fn token(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    state.stats.record(Route::VertexToken, &req, &body);
    let Ok(form) = serde_urlencoded::from_bytes::<TokenForm>(&body) else {
        return oauth_error("invalid_request", "The request body is not form-encoded.");
    };
    if form.grant_type.as_deref() != Some(GRANT_TYPE) {
        return oauth_error(
            "unsupported_grant_type",
            &format!(
                "Invalid grant_type: {}",
                form.grant_type.unwrap_or_default()
            ),
        );
    }
    let Some(assertion) = form.assertion else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    let info = req.connection_info();
    let audience = format!("{}://{}{}", info.scheme(), info.host(), req.path());
    if let Err(description) = verify(&assertion, &audience) {
        return oauth_error("invalid_grant", &description);
    }
    let lifetime = state.active().config.token_expires_in_secs;
    let access_token = state.vertex_tokens.issue(Duration::from_secs(lifetime));
    http::json(
        StatusCode::OK,
        http::to_json(&serde_json::json!({
            "access_token": access_token,
            "expires_in": lifetime,
            "token_type": "Bearer",
        })),
    )
}

/// Checks the assertion's signature and claims; the error is Google's description.
fn verify(assertion: &str, audience: &str) -> Result<(), String> {
    let key = DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY.as_bytes())
        .map_err(|e| format!("the mock's test key is unreadable: {e}"))?;
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| {
        "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.".to_owned()
    })?;
    if header.alg != Algorithm::RS256 {
        return Err(format!(
            "Invalid JWT: unsupported algorithm {:?}",
            header.alg
        ));
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    // The issuer is checked below, after the signature, to say which one is wrong.
    let claims = jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                "Invalid JWT Signature.".to_owned()
            }
            jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                format!("Invalid JWT: the audience must be {audience}")
            }
            other => format!("Invalid JWT: {other:?}"),
        })?
        .claims;
    if claims["iss"] != TEST_CLIENT_EMAIL {
        return Err("Invalid grant: account not found".to_owned());
    }
    let claims: Claims =
        serde_json::from_value(claims).map_err(|e| format!("Invalid JWT: missing claims ({e})"))?;
    if !claims.scope.split(' ').any(|s| s == SCOPE) {
        return Err("Invalid OAuth scope or ID token audience provided.".to_owned());
    }
    if claims.exp <= claims.iat || claims.exp - claims.iat > MAX_ASSERTION_SECS {
        return Err(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
                .to_owned(),
        );
    }
    Ok(())
}

/// Whether the request carries an issued token, or the configured static one.
fn authorised(req: &HttpRequest, state: &State) -> bool {
    let Some(token) = http::header(req, "authorization").and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let active = state.active();
    state.vertex_tokens.valid(token)
        || active
            .config
            .require_key
            .as_deref()
            .is_some_and(|k| k == token)
}

/// `POST .../publishers/{publisher}/models/{model}:{method}`.
pub(crate) async fn dispatch(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    if !authorised(&req, &state) {
        return gemini::error(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        );
    }
    let publisher = req.match_info().get("publisher").unwrap_or_default();
    let tail = req.match_info().get("tail").unwrap_or_default();
    let split = tail
        .rsplit_once(':')
        .or_else(|| tail.rsplit_once("%3A"))
        .or_else(|| tail.rsplit_once("%3a"));
    let Some((model, method)) = split else {
        return gemini::error(404, &format!("Method not found: {tail}"));
    };
    match (publisher, method) {
        ("google", "generateContent" | "streamGenerateContent") => {
            gemini::serve(&req, body, &state, tail, Auth::Checked).await
        }
        ("google", "predict") => predict(&req, &body, &state),
        ("anthropic", "rawPredict" | "streamRawPredict") => {
            anthropic::serve(&req, body, &state, Dialect::Vertex { model }).await
        }
        _ => gemini::error(
            404,
            &format!("Publisher model `{publisher}/{model}` has no method `{method}`"),
        ),
    }
}

#[derive(Deserialize)]
struct PredictRequest {
    instances: Vec<Instance>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Instance {
    content: String,
}

#[derive(Deserialize)]
struct Parameters {
    #[serde(default, rename = "outputDimensionality")]
    output_dimensionality: Option<usize>,
}

/// The text-embedding models' `predict`: one prediction per instance, with its token count.
fn predict(req: &HttpRequest, body: &web::Bytes, state: &State) -> HttpResponse {
    state.stats.record(Route::VertexEmbed, req, body);
    let request = match serde_json::from_slice::<PredictRequest>(body) {
        Ok(r) => r,
        Err(err) => return gemini::error(400, &format!("Invalid JSON payload received. {err}")),
    };
    let dims = request
        .parameters
        .and_then(|p| p.output_dimensionality)
        .unwrap_or(16);
    if dims == 0 || dims > MAX_DIMENSIONS {
        return gemini::error(400, "outputDimensionality must be between 1 and 65536");
    }
    let predictions: Vec<serde_json::Value> = request
        .instances
        .iter()
        .map(|i| {
            serde_json::json!({"embeddings": {
                "values": answer::embedding(i.content.as_bytes(), dims),
                "statistics": {"truncated": false, "token_count": answer::prompt_tokens(i.content.chars().count())},
            }})
        })
        .collect();
    http::json(
        StatusCode::OK,
        http::to_json(&serde_json::json!({ "predictions": predictions })),
    )
}
