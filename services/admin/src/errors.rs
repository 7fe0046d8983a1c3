//! GraphQL errors with machine-readable codes (`extensions.code`), mapped in one place from
//! the auth service's errors: `UNAUTHENTICATED`, `FORBIDDEN`, `BAD_USER_INPUT`, `NOT_FOUND`,
//! `CONFLICT`, `TOO_MANY_REQUESTS`, `INTERNAL`; and from async-graphql's own
//! ([`ErrorCodes`]): `GRAPHQL_PARSE_FAILED`, `GRAPHQL_VALIDATION_FAILED`, `BAD_REQUEST`.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    Error, ErrorExtensions, Response, ServerError, ServerResult, ValidationResult, Variables,
};
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
        | AuthError::BodyTooLarge(_)
        | AuthError::BodyTimeout(_) => "BAD_USER_INPUT",
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

/// Gives the errors async-graphql raises itself the `extensions.code` every error of the
/// resolvers carries, so that clients need not read messages: `GRAPHQL_PARSE_FAILED` for a
/// document that is not GraphQL, `GRAPHQL_VALIDATION_FAILED` for one the schema refuses
/// (unknown fields, arguments of the wrong type, the depth and complexity limits),
/// `BAD_REQUEST` for a request that names no operation to run, and `BAD_USER_INPUT` for a
/// field whose arguments cannot be read (a variable the request declares but does not give:
/// validation does not check that). The resolvers give each error of theirs a code (through
/// [`graphql_error`] and [`bad_input`]), so only async-graphql's are without one.
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        for error in &mut response.errors {
            // Without a path the request failed as a whole, not at one of its fields.
            let code = if error.path.is_empty() {
                "BAD_REQUEST"
            } else {
                "BAD_USER_INPUT"
            };
            with_default_code(error, code);
        }
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(|mut error| {
            with_default_code(&mut error, "GRAPHQL_PARSE_FAILED");
            error
        })
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|mut errors| {
            for error in &mut errors {
                with_default_code(error, "GRAPHQL_VALIDATION_FAILED");
            }
            errors
        })
    }
}

/// Sets `code` on `error` unless it has one.
fn with_default_code(error: &mut ServerError, code: &str) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code);
    }
}
