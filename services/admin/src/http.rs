//! The `/graphql` endpoint: POST runs a query as the bearer token's caller; GET serves
//! GraphiQL to browsers.

use std::sync::Arc;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use async_graphql::http::GraphiQLSource;
use async_graphql_actix_web::{GraphQLRequest, GraphQLResponse};
use tollgate_auth::{AuthError, AuthService};
use tollgate_billing::BudgetCounters;
use tollgate_common::PriceCatalog;

use crate::billing::BillingSetup;
use crate::schema::{AdminSchema, RequestCaller, TeamLoader, build};

/// What the endpoint serves.
#[derive(Clone)]
pub struct AdminHttp {
    schema: AdminSchema,
    service: Arc<AuthService>,
}

impl AdminHttp {
    pub fn new(
        service: Arc<AuthService>,
        catalog: Arc<PriceCatalog>,
        budgets: Arc<BudgetCounters>,
        billing: BillingSetup,
    ) -> Self {
        AdminHttp {
            schema: build(service.clone(), catalog, budgets, billing),
            service,
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

async fn execute(
    req: HttpRequest,
    state: web::Data<AdminHttp>,
    request: GraphQLRequest,
) -> GraphQLResponse {
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
    let mut request = request.into_inner();
    if let Ok(caller) = &caller {
        request = request.data(TeamLoader::new(state.service.clone(), caller.clone()));
    }
    let request = request.data(RequestCaller(caller));
    state.schema.execute(request).await.into()
}

async fn graphiql() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(GraphiQLSource::build().endpoint("/graphql").finish())
}
