//! The `/graphql` endpoint: POST runs an operation, or a batch of at most [`MAX_BATCH`], as
//! the bearer token's caller; GET serves GraphiQL when `admin.graphiql` is on.
//!
//! The body is read here under `server.max_admin_body_bytes` and
//! `server.body_read_timeout_ms` (anyone may send one, token or not), then parsed with
//! async-graphql's own request types. Callers without a valid token may not introspect the
//! schema unless `admin.graphiql` is on.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, Responder, web};
use async_graphql::http::GraphiQLSource;
use async_graphql::{BatchRequest, BatchResponse, Request};
use async_graphql_actix_web::GraphQLResponse;
use serde_json::json;
use tollgate_auth::{AuthError, AuthService, Caller};
use tollgate_billing::BudgetCounters;
use tollgate_common::body::{BodyError, BodyLimits, read_payload};
use tollgate_common::{Config, PriceCatalog};

use crate::billing::BillingSetup;
use crate::operation_limits::{IntrospectionClosed, MutationLimiter};
use crate::schema::{AdminSchema, RequestCaller, build, clone_auth_error};
use crate::teams::TeamLoader;

/// Operations one batched request may hold; each is run in turn, like as many requests.
pub const MAX_BATCH: usize = 10;

/// The endpoint's settings, from `server` and `admin` in the configuration.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub body_limits: BodyLimits,
    pub graphiql: bool,
    pub mutations_per_minute: u32,
}

impl AdminSettings {
    pub fn from_config(config: &Config) -> Self {
        AdminSettings {
            body_limits: BodyLimits::admin(&config.server),
            graphiql: config.admin.graphiql,
            mutations_per_minute: config.admin.mutations_per_minute,
        }
    }
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings::from_config(&Config::default())
    }
}

/// What the endpoint serves.
#[derive(Clone)]
pub struct AdminHttp {
    schema: AdminSchema,
    service: Arc<AuthService>,
    body_limits: BodyLimits,
    graphiql: bool,
}

impl AdminHttp {
    pub fn new(
        service: Arc<AuthService>,
        catalog: Arc<PriceCatalog>,
        budgets: Arc<BudgetCounters>,
        billing: BillingSetup,
        settings: &AdminSettings,
    ) -> Self {
        let mutations = Arc::new(MutationLimiter::new(settings.mutations_per_minute));
        AdminHttp {
            schema: build(service.clone(), catalog, budgets, billing, mutations),
            service,
            body_limits: settings.body_limits,
            graphiql: settings.graphiql,
        }
    }
}

/// Registers `/graphql`.
pub fn configure(state: AdminHttp) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut web::ServiceConfig| {
        cfg.service(
            web::resource("/graphql")
                .app_data(web::Data::new(state.clone()))
                .route(web::post().to(execute))
                .route(web::get().to(graphiql)),
        );
    }
}

/// Why a request to `/graphql` was not run at all. Errors of an operation that was run are
/// in its response, with the codes of [`crate::errors`].
#[derive(Debug, thiserror::Error)]
pub enum GraphqlRequestError {
    #[error("{0}")]
    Body(#[from] BodyError),
    #[error("The body is not a GraphQL request: {0}")]
    NotGraphql(String),
    #[error("A batch may hold from 1 to {MAX_BATCH} operations; this one holds {0}.")]
    BatchSize(usize),
    #[error("GraphiQL is not served on this deployment (admin.graphiql).")]
    GraphiqlOff,
}

impl GraphqlRequestError {
    pub fn status(&self) -> StatusCode {
        match self {
            GraphqlRequestError::Body(BodyError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            GraphqlRequestError::Body(BodyError::TimedOut { .. }) => StatusCode::REQUEST_TIMEOUT,
            GraphqlRequestError::Body(BodyError::Unreadable(_))
            | GraphqlRequestError::NotGraphql(_)
            | GraphqlRequestError::BatchSize(_) => StatusCode::BAD_REQUEST,
            GraphqlRequestError::GraphiqlOff => StatusCode::NOT_FOUND,
        }
    }

    /// `extensions.code`, in the vocabulary of [`crate::errors`].
    pub fn code(&self) -> &'static str {
        match self {
            GraphqlRequestError::Body(BodyError::TooLarge { .. }) => "PAYLOAD_TOO_LARGE",
            GraphqlRequestError::Body(BodyError::TimedOut { .. }) => "REQUEST_TIMEOUT",
            GraphqlRequestError::Body(BodyError::Unreadable(_))
            | GraphqlRequestError::NotGraphql(_) => "BAD_REQUEST",
            GraphqlRequestError::BatchSize(_) => "BAD_USER_INPUT",
            GraphqlRequestError::GraphiqlOff => "NOT_FOUND",
        }
    }

    /// A GraphQL response with this one error and no data.
    pub fn to_response(&self) -> HttpResponse {
        HttpResponse::build(self.status()).json(json!({
            "errors": [{"message": self.to_string(), "extensions": {"code": self.code()}}]
        }))
    }
}

async fn execute(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AdminHttp>,
) -> HttpResponse {
    let batch = match read_batch(&req, payload, &state).await {
        Ok(batch) => batch,
        Err(err) => return err.to_response(),
    };
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let caller = match token {
        Some(token) => state.service.caller(token).await,
        None => Err(AuthError::MissingToken),
    };
    let answer = match batch {
        BatchRequest::Single(request) => BatchResponse::Single(run(&state, &caller, request).await),
        BatchRequest::Batch(requests) => {
            let mut responses = Vec::with_capacity(requests.len());
            for request in requests {
                responses.push(run(&state, &caller, request).await);
            }
            BatchResponse::Batch(responses)
        }
    };
    GraphQLResponse::from(answer)
        .respond_to(&req)
        .map_into_boxed_body()
}

/// The body, read under the limits and parsed as one operation or a batch of them.
async fn read_batch(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AdminHttp,
) -> Result<BatchRequest, GraphqlRequestError> {
    let body = read_payload(req, payload, state.body_limits).await?;
    let not_graphql = |e: serde_json::Error| GraphqlRequestError::NotGraphql(e.to_string());
    // Told apart by their first byte rather than by `BatchRequest`'s untagged form, which
    // would take `[]` for an empty operation and copy the whole body to find out.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
        return Ok(BatchRequest::Single(
            serde_json::from_slice(&body).map_err(not_graphql)?,
        ));
    }
    let requests: Vec<Request> = serde_json::from_slice(&body).map_err(not_graphql)?;
    if !(1..=MAX_BATCH).contains(&requests.len()) {
        return Err(GraphqlRequestError::BatchSize(requests.len()));
    }
    Ok(BatchRequest::Batch(requests))
}

/// Runs one operation as `caller`.
async fn run(
    state: &AdminHttp,
    caller: &Result<Caller, AuthError>,
    mut request: Request,
) -> async_graphql::Response {
    let caller = match caller {
        Ok(caller) => {
            request = request.data(TeamLoader::new(state.service.clone(), caller.clone()));
            Ok(caller.clone())
        }
        Err(err) => {
            if !state.graphiql {
                // The schema is no secret, but neither is it for whoever asks.
                request = request.disable_introspection().data(IntrospectionClosed);
            }
            Err(clone_auth_error(err))
        }
    };
    state
        .schema
        .execute(request.data(RequestCaller(caller)))
        .await
}

async fn graphiql(state: web::Data<AdminHttp>) -> HttpResponse {
    if !state.graphiql {
        return GraphqlRequestError::GraphiqlOff.to_response();
    }
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(GraphiQLSource::build().endpoint("/graphql").finish())
}
