//! The admin API in process, mounted beside the auth service's REST API as the platform
//! mounts it, for the tests that drive `/graphql` over HTTP.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, test as web_test};
use serde_json::Value;
use tollgate_admin::billing::BillingSetup;
use tollgate_admin::http::{AdminHttp, AdminSettings, configure};
use tollgate_auth::{AuthRuntime, Role};
use tollgate_billing::{BudgetCounters, OnRedisFailure};
use tollgate_common::config::SigningKeyConfig;
use tollgate_common::{Config, OrgId, PriceCatalog, Secret, UserId};

/// Sends one request to the app.
pub type Call = Rc<dyn Fn(web_test::TestRequest) -> Pin<Box<dyn Future<Output = ServiceResponse>>>>;

/// A running app: how to call it, the auth runtime behind it, and its in-process budgets.
pub struct AdminApp {
    pub call: Call,
    pub runtime: AuthRuntime,
    pub budgets: Arc<BudgetCounters>,
}

/// Starts auth and admin on the database at `database_url`, with one OpenAI provider, a known
/// signing key and budgets counted in process.
pub async fn start_admin_app(
    database_url: String,
    billing: BillingSetup,
    settings: &AdminSettings,
) -> AdminApp {
    let mut config = Config::parse(
        "providers: { openai: { kind: openai, api_key: sk-deployment } }",
        &BTreeMap::<String, String>::new(),
    )
    .unwrap();
    config.storage.database_url = Some(database_url);
    config.billing = billing.config.clone();
    config.auth.signing_keys = vec![SigningKeyConfig {
        kid: "test".into(),
        secret: Secret::new("a test signing secret of enough length"),
    }];
    let runtime = tollgate_auth::startup::start(&config, true).await.unwrap();
    let http = runtime.http.clone().unwrap();
    let catalog = Arc::new(PriceCatalog::built_in().unwrap());
    let budgets = Arc::new(BudgetCounters::new(None, OnRedisFailure::Local));
    let admin = configure(AdminHttp::new(
        http.service.clone(),
        catalog,
        budgets.clone(),
        billing,
        settings,
    ));
    let app = Rc::new(
        web_test::init_service(
            App::new()
                .configure(tollgate_auth::http::configure(http))
                .configure(admin),
        )
        .await,
    );
    let call: Call = Rc::new(move |req: web_test::TestRequest| {
        let app = app.clone();
        Box::pin(async move {
            app.call(req.to_request())
                .await
                .unwrap()
                .map_into_boxed_body()
        })
    });
    AdminApp {
        call,
        runtime,
        budgets,
    }
}

/// The answer to `req` as JSON, or null when it is not JSON.
pub async fn call_json(call: &Call, req: web_test::TestRequest) -> Value {
    let response = call(req).await;
    let body = web_test::read_body(response).await;
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

/// Makes `user` a member of `org` with `role`, straight in the store: the API only invites.
pub async fn add_member(runtime: &AuthRuntime, org: &str, user: &str, role: Role) {
    runtime
        .http
        .as_ref()
        .unwrap()
        .service
        .store()
        .add_member(
            org.parse::<OrgId>().unwrap(),
            user.parse::<UserId>().unwrap(),
            role,
            "test",
        )
        .await
        .unwrap();
}

/// Sends `body` to `/graphql` as it is, with `request`'s method, as `token`'s caller: the
/// status, and the answer as JSON or, when it is not JSON, as text.
pub async fn send_graphql(
    call: &Call,
    request: web_test::TestRequest,
    body: Vec<u8>,
    token: Option<&str>,
) -> (u16, Result<Value, String>) {
    let mut req = request
        .uri("/graphql")
        .insert_header(("content-type", "application/json"))
        .set_payload(body);
    if let Some(token) = token {
        req = req.insert_header(("authorization", format!("Bearer {token}")));
    }
    let response = call(req).await;
    let status = response.status().as_u16();
    let body = web_test::read_body(response).await;
    let answer =
        serde_json::from_slice(&body).map_err(|_| String::from_utf8_lossy(&body).into_owned());
    (status, answer)
}
