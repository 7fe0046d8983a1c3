//! Every way a gateway request can fail, and the one place each maps to an HTTP status and an
//! OpenAI-shaped error body (`{"error":{"message","type","param","code"}}`).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use serde::Serialize;
use tollgate_common::body::BodyError;

/// What went wrong with a request, from the client's point of view.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("We could not parse the JSON body of your request: {0}")]
    MalformedJson(String),
    /// A body that should be `multipart/form-data` (audio transcriptions) and is not, or is
    /// cut short or malformed.
    #[error("We could not parse the multipart/form-data body of your request: {0}")]
    MalformedForm(String),
    #[error("{message}")]
    InvalidField { param: String, message: String },
    #[error("The request body is larger than the limit of {limit} bytes.")]
    BodyTooLarge { limit: usize },
    /// The body had not all arrived within `server.body_read_timeout_ms`.
    #[error("The request body did not arrive within {timeout_ms} ms.")]
    BodyTimeout { timeout_ms: u128 },
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    UnknownModel(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("Unknown request URL: {method} {path}.")]
    NotFound { method: String, path: String },
    #[error("Method {method} is not allowed for {path}.")]
    MethodNotAllowed { method: String, path: String },
    /// The upstream refused the request as the client sent it (a 4xx other than 429): its own
    /// message is passed on.
    #[error("{message}")]
    UpstreamRejected {
        status: u16,
        message: String,
        kind: Option<String>,
        param: Option<String>,
        code: Option<String>,
    },
    /// No target could serve the request; `message` names the last failure.
    #[error("{message}")]
    AllTargetsFailed { unavailable: bool, message: String },
    /// No key, or one that does not open the gateway; `code` says which (`invalid_api_key`...).
    #[error("{message}")]
    Unauthenticated { message: String, code: &'static str },
    /// The key is valid but may not use this model.
    #[error("This API key is not allowed to use the model `{0}`.")]
    ModelNotAllowed(String),
    /// A guardrail policy refused the request or its answer: `rule` names it
    /// (`policy/rule`), `reason` says why without repeating what matched.
    #[error("Refused by a guardrail: {reason} (rule `{rule}`).")]
    GuardrailViolation { rule: String, reason: String },
    /// A rate limit is used up; `headers` are the rate-limit headers of the answer.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// Rate limits cannot be checked and the deployment refuses rather than guess.
    #[error("Rate limits cannot be checked right now; try again shortly.")]
    LimitsUnavailable,
    /// Keys cannot be verified right now.
    #[error("API keys cannot be verified right now; try again shortly.")]
    AuthUnavailable,
    /// A budget has no room for the request's worst-case cost; the message names the budget.
    #[error("{0}")]
    BudgetExceeded(String),
    /// The organization must pay first: its payment failed and the grace period is over, or
    /// it used its free allowance and credit and has no payment method. The message says which.
    #[error("{0}")]
    PaymentRequired(String),
    /// The organization brings its own provider keys, and has none the model's targets can
    /// use or the provider refused the one it has; the message says which.
    #[error("{message}")]
    ProviderKey { message: String, code: &'static str },
    /// Budgets cannot be checked and the deployment refuses rather than guess.
    #[error("Budgets cannot be checked right now; try again shortly.")]
    BudgetsUnavailable,
    /// The answer's usage could not be recorded, so the answer is withheld.
    #[error(
        "The usage of this request could not be recorded, so its answer was withheld; try again shortly."
    )]
    UsageUnrecorded,
    #[error("{0}")]
    Internal(String),
}

impl From<BodyError> for GatewayError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TooLarge { limit } => GatewayError::BodyTooLarge { limit },
            BodyError::TimedOut { after } => GatewayError::BodyTimeout {
                timeout_ms: after.as_millis(),
            },
            BodyError::Unreadable(reason) => {
                GatewayError::MalformedJson(format!("cannot read the body: {reason}"))
            }
        }
    }
}

/// OpenAI's `error.type` values, and ours where OpenAI has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    NotFound,
    Upstream,
    Permission,
    RateLimit,
    InsufficientQuota,
    Server,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::Upstream => "upstream_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::RateLimit => "rate_limit_exceeded",
            ErrorKind::InsufficientQuota => "insufficient_quota",
            ErrorKind::Server => "server_error",
        }
    }
}

impl GatewayError {
    pub fn invalid_field(param: impl Into<String>, message: impl Into<String>) -> Self {
        GatewayError::InvalidField {
            param: param.into(),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::MalformedJson(_)
            | GatewayError::MalformedForm(_)
            | GatewayError::InvalidField { .. }
            | GatewayError::GuardrailViolation { .. }
            | GatewayError::Unsupported(_) => StatusCode::BAD_REQUEST,
            GatewayError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            GatewayError::UnknownModel(_) | GatewayError::NotFound { .. } => StatusCode::NOT_FOUND,
            GatewayError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::UpstreamRejected { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            GatewayError::AllTargetsFailed { unavailable, .. } => {
                if *unavailable {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::BAD_GATEWAY
                }
            }
            GatewayError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            GatewayError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::ModelNotAllowed(_) | GatewayError::ProviderKey { .. } => {
                StatusCode::FORBIDDEN
            }
            GatewayError::AuthUnavailable
            | GatewayError::LimitsUnavailable
            | GatewayError::BudgetsUnavailable
            | GatewayError::UsageUnrecorded => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::BudgetExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::PaymentRequired(_) => StatusCode::PAYMENT_REQUIRED,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short, bounded label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            GatewayError::MalformedJson(_) => "malformed_json",
            GatewayError::MalformedForm(_) => "malformed_form",
            GatewayError::InvalidField { .. } => "invalid_field",
            GatewayError::BodyTooLarge { .. } => "body_too_large",
            GatewayError::BodyTimeout { .. } => "body_timeout",
            GatewayError::UnknownModel(_) => "unknown_model",
            GatewayError::Unsupported(_) => "unsupported",
            GatewayError::NotFound { .. } => "not_found",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::UpstreamRejected { .. } => "upstream_rejected",
            GatewayError::AllTargetsFailed { .. } => "all_targets_failed",
            GatewayError::Unauthenticated { .. } => "unauthenticated",
            GatewayError::RateLimited { .. } => "rate_limited",
            GatewayError::ModelNotAllowed(_) => "model_not_allowed",
            GatewayError::GuardrailViolation { .. } => "guardrail_violation",
            GatewayError::AuthUnavailable => "auth_unavailable",
            GatewayError::LimitsUnavailable => "limits_unavailable",
            GatewayError::BudgetExceeded(_) => "budget_exceeded",
            GatewayError::PaymentRequired(_) => "payment_required",
            GatewayError::ProviderKey { .. } => "provider_key",
            GatewayError::BudgetsUnavailable => "budgets_unavailable",
            GatewayError::UsageUnrecorded => "usage_unrecorded",
            GatewayError::Internal(_) => "internal",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            GatewayError::MalformedJson(_)
            | GatewayError::MalformedForm(_)
            | GatewayError::InvalidField { .. }
            | GatewayError::BodyTooLarge { .. }
            | GatewayError::BodyTimeout { .. }
            | GatewayError::Unsupported(_)
            | GatewayError::MethodNotAllowed { .. }
            | GatewayError::GuardrailViolation { .. }
            | GatewayError::UnknownModel(_) => ErrorKind::InvalidRequest,
            GatewayError::NotFound { .. } => ErrorKind::NotFound,
            GatewayError::UpstreamRejected { .. } => ErrorKind::InvalidRequest,
            GatewayError::AllTargetsFailed { .. } => ErrorKind::Upstream,
            GatewayError::Unauthenticated { .. } => ErrorKind::InvalidRequest,
            GatewayError::RateLimited { .. } => ErrorKind::RateLimit,
            GatewayError::ModelNotAllowed(_) | GatewayError::ProviderKey { .. } => {
                ErrorKind::Permission
            }
            GatewayError::BudgetExceeded(_) | GatewayError::PaymentRequired(_) => {
                ErrorKind::InsufficientQuota
            }
            GatewayError::AuthUnavailable
            | GatewayError::LimitsUnavailable
            | GatewayError::BudgetsUnavailable
            | GatewayError::UsageUnrecorded
            | GatewayError::Internal(_) => ErrorKind::Server,
        }
    }

    /// The body OpenAI clients expect.
    pub fn body(&self) -> ErrorBody<'_> {
        let (kind, param, code): (&str, Option<&str>, Option<&str>) = match self {
            GatewayError::MalformedJson(_) => (self.kind().as_str(), None, Some("invalid_json")),
            GatewayError::MalformedForm(_) => {
                (self.kind().as_str(), None, Some("invalid_multipart"))
            }
            GatewayError::InvalidField { param, .. } => {
                (self.kind().as_str(), Some(param), Some("invalid_value"))
            }
            GatewayError::BodyTooLarge { .. } => {
                (self.kind().as_str(), None, Some("request_too_large"))
            }
            GatewayError::BodyTimeout { .. } => {
                (self.kind().as_str(), None, Some("request_timeout"))
            }
            GatewayError::UnknownModel(_) => {
                (self.kind().as_str(), Some("model"), Some("model_not_found"))
            }
            GatewayError::UpstreamRejected {
                kind, param, code, ..
            } => (
                kind.as_deref()
                    .unwrap_or(ErrorKind::InvalidRequest.as_str()),
                param.as_deref(),
                code.as_deref(),
            ),
            GatewayError::AllTargetsFailed { .. } => {
                (self.kind().as_str(), None, Some("upstream_unavailable"))
            }
            GatewayError::Unauthenticated { code, .. } => (self.kind().as_str(), None, Some(*code)),
            GatewayError::ModelNotAllowed(_) => (
                self.kind().as_str(),
                Some("model"),
                Some("model_not_allowed"),
            ),
            GatewayError::GuardrailViolation { rule, .. } => {
                ("guardrail_violation", None, Some(rule.as_str()))
            }
            GatewayError::AuthUnavailable => (self.kind().as_str(), None, Some("auth_unavailable")),
            GatewayError::RateLimited { .. } => {
                (self.kind().as_str(), None, Some("rate_limit_exceeded"))
            }
            GatewayError::BudgetExceeded(_) => {
                (self.kind().as_str(), None, Some("insufficient_quota"))
            }
            GatewayError::PaymentRequired(_) => {
                (self.kind().as_str(), None, Some("payment_required"))
            }
            GatewayError::ProviderKey { code, .. } => (self.kind().as_str(), None, Some(*code)),
            GatewayError::BudgetsUnavailable => {
                (self.kind().as_str(), None, Some("budgets_unavailable"))
            }
            GatewayError::UsageUnrecorded => {
                (self.kind().as_str(), None, Some("metering_unavailable"))
            }
            _ => (self.kind().as_str(), None, None),
        };
        ErrorBody {
            error: ErrorDetail {
                message: self.to_string(),
                kind,
                param,
                code,
            },
        }
    }

    /// The complete HTTP answer, tagged with the request id.
    pub fn to_response(&self, request_id: &str) -> HttpResponse {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = HttpResponse::build(self.status());
        response.insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        if let Ok(id) = HeaderValue::from_str(request_id) {
            response.insert_header(("x-request-id", id));
        }
        if matches!(
            self,
            GatewayError::AllTargetsFailed {
                unavailable: true,
                ..
            } | GatewayError::AuthUnavailable
                | GatewayError::LimitsUnavailable
                | GatewayError::BudgetsUnavailable
                | GatewayError::UsageUnrecorded
        ) {
            response.insert_header((RETRY_AFTER, HeaderValue::from_static("1")));
        }
        if let GatewayError::RateLimited {
            retry_after_secs,
            headers,
            ..
        } = self
        {
            response.insert_header((RETRY_AFTER, HeaderValue::from(*retry_after_secs)));
            for (name, value) in headers {
                response.insert_header((name.clone(), value.clone()));
            }
        }
        response.body(body)
    }
}

#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_mistake_is_a_4xx_with_the_openai_shape() {
        let cases = [
            GatewayError::MalformedJson("expected value at line 1".into()),
            GatewayError::invalid_field("stream", "must be a boolean"),
            GatewayError::BodyTooLarge { limit: 5 },
            GatewayError::BodyTimeout { timeout_ms: 30_000 },
            GatewayError::UnknownModel("nope".into()),
            GatewayError::Unsupported("embeddings are not offered by anthropic".into()),
            GatewayError::Unauthenticated {
                message: "Incorrect API key provided.".into(),
                code: "invalid_api_key",
            },
            GatewayError::ModelNotAllowed("gpt-4o".into()),
            GatewayError::GuardrailViolation {
                rule: "default-pii/input.pii".into(),
                reason: "the text contains an e-mail address".into(),
            },
        ];
        for error in cases {
            assert!(error.status().is_client_error(), "{error:?}");
            let json = serde_json::to_value(error.body()).unwrap();
            let detail = &json["error"];
            for field in ["message", "type", "param", "code"] {
                assert!(detail.get(field).is_some(), "{field} missing in {json}");
            }
        }
    }

    #[test]
    fn upstream_rejection_keeps_status_and_message() {
        let error = GatewayError::UpstreamRejected {
            status: 422,
            message: "messages: at least one message is required".into(),
            kind: Some("invalid_request_error".into()),
            param: None,
            code: None,
        };
        assert_eq!(error.status().as_u16(), 422);
        assert_eq!(
            error.body().error.message,
            "messages: at least one message is required"
        );
    }
}
