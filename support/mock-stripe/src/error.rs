//! Stripe's error object and the one place it becomes an HTTP status.
//!
//! Every failure answers `{"error": {"type", "message", "code"?, "param"?, "doc_url"?}}`, the
//! shape of Stripe's API errors (<https://docs.stripe.com/api/errors>): `type` is one of
//! `invalid_request_error`, `idempotency_error`, `api_error` (and `card_error`, which the mock
//! never produces).

use serde_json::{Map, Value, json};

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
    pub code: Option<&'static str>,
    pub param: Option<String>,
    /// Sent as `Stripe-Should-Retry`, which Stripe's client libraries honour.
    pub should_retry: Option<bool>,
}

impl ApiError {
    fn new(status: u16, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            code: None,
            param: None,
            should_retry: None,
        }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "invalid_request_error", message)
    }

    /// 400 `parameter_missing`.
    pub fn missing_param(param: &str) -> ApiError {
        ApiError::invalid(format!("Missing required param: {param}."))
            .code("parameter_missing")
            .param(param)
    }

    /// A referenced object that does not exist: 404 when it is the object the URL names, 400
    /// when a parameter names it.
    pub fn no_such(what: &str, id: &str, param: Option<&str>) -> ApiError {
        let error = ApiError::invalid(format!("No such {what}: '{id}'")).code("resource_missing");
        match param {
            Some(param) => error.param(param),
            None => ApiError {
                status: 404,
                ..error.param("id")
            },
        }
    }

    /// 404 for a URL the API does not have.
    pub fn unrecognized_url(method: &str, path: &str) -> ApiError {
        ApiError {
            status: 404,
            ..ApiError::invalid(format!("Unrecognized request URL ({method}: {path})."))
        }
    }

    /// 401; Stripe types authentication failures as `invalid_request_error`.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(401, "invalid_request_error", message)
    }

    /// 400 `idempotency_error`.
    pub fn idempotency(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "idempotency_error", message)
    }

    /// 500 `api_error`, as an injected failure.
    pub fn injected() -> ApiError {
        ApiError {
            should_retry: Some(true),
            ..ApiError::new(
                500,
                "api_error",
                "An unexpected error occurred (injected by tollgate-mock-stripe).",
            )
        }
    }

    pub fn code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    pub fn param(mut self, param: &str) -> ApiError {
        self.param = Some(param.to_owned());
        self
    }

    pub fn should_retry(mut self, retry: bool) -> ApiError {
        self.should_retry = Some(retry);
        self
    }

    /// The response body.
    pub fn body(&self, request_id: &str) -> Value {
        let mut error = Map::new();
        if let Some(code) = self.code {
            error.insert("code".into(), json!(code));
            error.insert(
                "doc_url".into(),
                json!(format!(
                    "https://stripe.com/docs/error-codes/{}",
                    code.replace('_', "-")
                )),
            );
        }
        error.insert("message".into(), json!(self.message));
        if let Some(param) = &self.param {
            error.insert("param".into(), json!(param));
        }
        error.insert(
            "request_log_url".into(),
            json!(format!(
                "https://dashboard.stripe.com/test/logs/{request_id}"
            )),
        );
        error.insert("type".into(), json!(self.kind));
        json!({ "error": error })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.kind, self.message)
    }
}

impl std::error::Error for ApiError {}

/// A test control that could not be carried out (unknown object, wrong state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlError {
    /// The HTTP status the `/_mock` endpoint answers with.
    pub status: u16,
    pub message: String,
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl std::error::Error for ControlError {}

impl From<ApiError> for ControlError {
    fn from(error: ApiError) -> ControlError {
        ControlError {
            status: error.status,
            message: error.message,
        }
    }
}
