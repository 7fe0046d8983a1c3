//! Every way an auth request can fail, and the one place each maps to an HTTP status and an
//! OpenAI-shaped error body (`{"error":{"message","type","param","code"}}`).

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;
use tollgate_common::body::BodyError;

use crate::sessions::TokenError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("We could not parse the JSON body of your request: {0}")]
    MalformedJson(String),
    #[error("{message}")]
    InvalidField { param: String, message: String },
    #[error("The request body is larger than {0} bytes.")]
    BodyTooLarge(usize),
    /// The body had not all arrived within `server.body_read_timeout_ms`.
    #[error("The request body did not arrive within {0} ms.")]
    BodyTimeout(u128),
    /// Never says whether the email exists.
    #[error("Incorrect email or password.")]
    BadCredentials,
    #[error("Authentication required: send `Authorization: Bearer <access token>`.")]
    MissingToken,
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("The refresh token is not valid; log in again.")]
    BadRefreshToken,
    #[error("{0}")]
    Forbidden(String),
    #[error("Sign-up is disabled on this deployment; ask an administrator for an account.")]
    SignupDisabled,
    #[error("No such {0}.")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("Too many failed attempts; try again in {0} seconds.")]
    Throttled(u64),
    /// More logins and sign-ups are waiting than the server takes on.
    #[error("The server is busy; try again in a moment.")]
    Overloaded,
    #[error("Unknown request URL: {method} {path}.")]
    RouteNotFound { method: String, path: String },
    #[error("Method {method} is not allowed for {path}.")]
    MethodNotAllowed { method: String, path: String },
    /// Details are logged, never sent.
    #[error("The server had an error while processing your request.")]
    Internal(String),
}

impl AuthError {
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        AuthError::InvalidField {
            param: param.into(),
            message: message.into(),
        }
    }

    fn kind_and_code(&self) -> (&'static str, Option<&'static str>) {
        match self {
            AuthError::MalformedJson(_) => ("invalid_request_error", Some("invalid_json")),
            AuthError::InvalidField { .. } => ("invalid_request_error", Some("invalid_value")),
            AuthError::BodyTooLarge(_) => ("invalid_request_error", Some("request_too_large")),
            AuthError::BodyTimeout(_) => ("invalid_request_error", Some("request_timeout")),
            AuthError::BadCredentials => ("invalid_request_error", Some("invalid_credentials")),
            AuthError::MissingToken => ("invalid_request_error", Some("missing_token")),
            AuthError::Token(TokenError::Expired) => {
                ("invalid_request_error", Some("token_expired"))
            }
            AuthError::Token(TokenError::Invalid) => {
                ("invalid_request_error", Some("invalid_token"))
            }
            AuthError::BadRefreshToken => ("invalid_request_error", Some("invalid_refresh_token")),
            AuthError::Forbidden(_) => ("permission_error", Some("permission_denied")),
            AuthError::SignupDisabled => ("permission_error", Some("signup_disabled")),
            AuthError::NotFound(_) | AuthError::RouteNotFound { .. } => ("not_found_error", None),
            AuthError::MethodNotAllowed { .. } => ("invalid_request_error", None),
            AuthError::Conflict(_) => ("invalid_request_error", Some("conflict")),
            AuthError::Throttled(_) => ("rate_limit_exceeded", Some("too_many_attempts")),
            AuthError::Overloaded => ("server_error", Some("overloaded")),
            AuthError::Internal(_) => ("server_error", None),
        }
    }
}

impl From<BodyError> for AuthError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TooLarge { limit } => AuthError::BodyTooLarge(limit),
            BodyError::TimedOut { after } => AuthError::BodyTimeout(after.as_millis()),
            BodyError::Unreadable(reason) => {
                AuthError::MalformedJson(format!("cannot read the body: {reason}"))
            }
        }
    }
}

impl From<StoreError> for AuthError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Duplicate(what) => {
                AuthError::Conflict(format!("{} already exists.", capitalize(what)))
            }
            other => AuthError::Internal(other.to_string()),
        }
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            AuthError::MalformedJson(_) | AuthError::InvalidField { .. } => StatusCode::BAD_REQUEST,
            AuthError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AuthError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            AuthError::BadCredentials
            | AuthError::MissingToken
            | AuthError::Token(_)
            | AuthError::BadRefreshToken => StatusCode::UNAUTHORIZED,
            AuthError::Forbidden(_) | AuthError::SignupDisabled => StatusCode::FORBIDDEN,
            AuthError::NotFound(_) | AuthError::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            AuthError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            AuthError::Conflict(_) => StatusCode::CONFLICT,
            AuthError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            AuthError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let AuthError::Internal(detail) = self {
            tracing::error!(%detail, "auth request failed");
        }
        let (kind, code) = self.kind_and_code();
        let param = match self {
            AuthError::InvalidField { param, .. } => Some(param.as_str()),
            _ => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        match self {
            AuthError::Throttled(seconds) => {
                response.insert_header((RETRY_AFTER, HeaderValue::from(*seconds)));
            }
            AuthError::Overloaded => {
                response.insert_header((RETRY_AFTER, HeaderValue::from_static("1")));
            }
            _ => {}
        }
        if self.status_code() == StatusCode::UNAUTHORIZED {
            response.insert_header(("www-authenticate", HeaderValue::from_static("Bearer")));
        }
        response.json(json!({
            "error": {"message": self.to_string(), "type": kind, "param": param, "code": code}
        }))
    }
}
