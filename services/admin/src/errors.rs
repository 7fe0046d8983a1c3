//! GraphQL errors with machine-readable codes (`extensions.code`), mapped in one place from
//! the auth service's errors: `UNAUTHENTICATED`, `FORBIDDEN`, `BAD_USER_INPUT`, `NOT_FOUND`,
//! `CONFLICT`, `TOO_MANY_REQUESTS`, `INTERNAL`.

use async_graphql::{Error, ErrorExtensions};
use tollgate_auth::AuthError;

/// The code an error carries in `extensions.code`.
pub fn code(error: &AuthError) -> &'static str {
    match error {
        AuthError::MissingToken | AuthError::Token(_) | AuthError::BadCredentials => {
            "UNAUTHENTICATED"
        }
        AuthError::BadRefreshToken => "UNAUTHENTICATED",
        AuthError::Forbidden(_) | AuthError::SignupDisabled => "FORBIDDEN",
        AuthError::MalformedJson(_)
        | AuthError::InvalidField { .. }
        | AuthError::BodyTooLarge(_) => "BAD_USER_INPUT",
        AuthError::NotFound(_) | AuthError::RouteNotFound { .. } => "NOT_FOUND",
        AuthError::MethodNotAllowed { .. } => "BAD_REQUEST",
        AuthError::Conflict(_) => "CONFLICT",
        AuthError::Throttled(_) | AuthError::Overloaded => "TOO_MANY_REQUESTS",
        AuthError::Internal(_) => "INTERNAL",
    }
}

/// An auth service error as a GraphQL error; internal details are logged, never sent.
pub fn graphql_error(error: AuthError) -> Error {
    if let AuthError::Internal(detail) = &error {
        tracing_detail(detail);
    }
    let code = code(&error);
    let field = match &error {
        AuthError::InvalidField { param, .. } => Some(param.clone()),
        _ => None,
    };
    Error::new(error.to_string()).extend_with(|_, extensions| {
        extensions.set("code", code);
        if let Some(field) = &field {
            extensions.set("field", field.as_str());
        }
    })
}

/// A client mistake the schema cannot express (an input that does not convert).
pub fn bad_input(field: &str, message: impl Into<String>) -> Error {
    let field = field.to_owned();
    Error::new(message.into()).extend_with(move |_, extensions| {
        extensions.set("code", "BAD_USER_INPUT");
        extensions.set("field", field.as_str());
    })
}

fn tracing_detail(detail: &str) {
    tracing::error!(%detail, "admin request failed");
}

/// `?` on auth service calls inside resolvers.
pub trait OrGraphql<T> {
    fn or_graphql(self) -> Result<T, Error>;
}

impl<T> OrGraphql<T> for Result<T, AuthError> {
    fn or_graphql(self) -> Result<T, Error> {
        self.map_err(graphql_error)
    }
}
