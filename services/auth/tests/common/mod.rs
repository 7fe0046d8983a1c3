//! The auth service's REST API in process, on a fresh SQLite file or PostgreSQL database, and
//! small helpers to drive it.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::dev::ServiceResponse;
use actix_web::http::header::AUTHORIZATION;
use actix_web::http::{Method, StatusCode};
use actix_web::{App, test};
use serde_json::{Value, json};
use sqlx::Connection;
use tollgate_auth::mailer::Mailer;
use tollgate_auth::{AuthRuntime, AuthStore, KeyRejection, KeyVerifier};
use tollgate_common::config::{Config, SigningKeyConfig};
use tollgate_common::{KeyContext, Secret};

/// The JWT signing key every test app uses, so that tests can forge tokens.
pub const SIGNING_KID: &str = "test-kid-1";
pub const SIGNING_SECRET: &str = "an-http-api-test-secret-of-more-than-32-bytes";
/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";

mod databases;

pub use databases::Db;
#[allow(
    unused_imports,
    reason = "not every test file runs scenarios on both databases"
)]
pub(crate) use databases::on_both_databases;

/// A database URL for a new, empty database.
pub async fn fresh_database(db: Db) -> String {
    match db {
        Db::Sqlite => {
            let dir = std::env::temp_dir().join(format!("tollgate-http-{}", uuid::Uuid::now_v7()));
            format!("sqlite://{}/auth.db?mode=rwc", dir.display())
        }
        Db::Postgres => {
            let admin_url = std::env::var("TOLLGATE_TEST_POSTGRES")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let name = format!("tollgate_test_{}", uuid::Uuid::now_v7().simple());
            let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .unwrap();
            admin.close().await.unwrap();
            let base = admin_url
                .rsplit_once('/')
                .map(|(b, _)| b)
                .unwrap_or(&admin_url);
            format!("{base}/{name}")
        }
    }
}

/// What a sign-up gave: one organization, its owner and their session.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub email: String,
    pub access: String,
    pub refresh: String,
    /// The first key's secret.
    pub key: String,
    pub key_id: String,
    pub org_id: String,
    pub team_id: String,
    pub user_id: String,
}

type Sender = Rc<dyn Fn(test::TestRequest) -> Pin<Box<dyn Future<Output = ServiceResponse>>>>;

/// The `/auth` routes of one auth service, and its key verifier.
pub struct TestApp {
    send: Sender,
    pub runtime: AuthRuntime,
}

impl TestApp {
    pub async fn start(db: Db) -> TestApp {
        TestApp::start_with(db, |_| {}).await
    }

    /// Starts the service with `tweak` applied to a default configuration.
    pub async fn start_with(db: Db, tweak: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::start_with_mailer(db, tweak, None).await
    }

    /// [`TestApp::start_with`], with mail sent through `mailer` when one is given.
    pub async fn start_with_mailer(
        db: Db,
        tweak: impl FnOnce(&mut Config),
        mailer: Option<Arc<dyn Mailer>>,
    ) -> TestApp {
        let mut config = Config::default();
        config.storage.database_url = Some(fresh_database(db).await);
        // Every test signs up from the same address; the limit has its own test.
        config.auth.signup_throttle.per_ip = 1_000_000;
        config.auth.signing_keys = vec![SigningKeyConfig {
            kid: SIGNING_KID.into(),
            secret: Secret::new(SIGNING_SECRET),
        }];
        tweak(&mut config);
        let runtime = match mailer {
            Some(mailer) => tollgate_auth::startup::start_with_mailer(&config, true, Some(mailer))
                .await
                .unwrap(),
            None => tollgate_auth::startup::start(&config, true).await.unwrap(),
        };
        let http = runtime.http.clone().unwrap();
        let service = Rc::new(
            test::init_service(App::new().configure(tollgate_auth::http::configure(http))).await,
        );
        let send: Sender = Rc::new(move |req: test::TestRequest| {
            let service = service.clone();
            Box::pin(async move {
                test::call_service(&*service, req.to_request())
                    .await
                    .map_into_boxed_body()
            })
        });
        TestApp { send, runtime }
    }

    pub fn store(&self) -> &AuthStore {
        self.runtime.http.as_ref().unwrap().service.store()
    }

    /// Sends a request as built, and returns the raw response.
    pub async fn send(&self, req: test::TestRequest) -> ServiceResponse {
        (self.send)(req).await
    }

    /// Sends `req` and reads the answer as JSON (`Null` for an empty body).
    pub async fn send_json(&self, req: test::TestRequest) -> (StatusCode, Value) {
        let response = self.send(req).await;
        let status = response.status();
        let body = test::read_body(response).await;
        (status, parse_body(status, &body))
    }

    /// `method path` with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.send_json(request(method, path, token, body)).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Signs up `email` with [`PASSWORD`] and a new organization named `org`.
    pub async fn signup(&self, email: &str, org: &str) -> Tenant {
        let (status, body) = self
            .call(
                Method::POST,
                "/auth/signup",
                None,
                Some(json!({"email": email, "password": PASSWORD, "organization": org})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "signup {email}: {body}");
        Tenant {
            email: email.to_owned(),
            access: text(&body["access_token"]),
            refresh: text(&body["refresh_token"]),
            key: text(&body["api_key"]["key"]),
            key_id: text(&body["api_key"]["id"]),
            org_id: text(&body["organization"]["id"]),
            team_id: text(&body["team"]["id"]),
            user_id: text(&body["user"]["id"]),
        }
    }

    /// Logs in with [`PASSWORD`]; the answer as is.
    pub async fn login(&self, email: &str, org: Option<&str>) -> (StatusCode, Value) {
        let mut body = json!({"email": email, "password": PASSWORD});
        if let Some(org) = org {
            body["organization_id"] = json!(org);
        }
        self.call(Method::POST, "/auth/login", None, Some(body))
            .await
    }

    /// Trades a refresh token for a new pair; the answer as is.
    pub async fn refresh(&self, token: &str) -> (StatusCode, Value) {
        self.post_refresh_token("/auth/refresh", token).await
    }

    /// Ends the session of a refresh token; the answer as is.
    pub async fn logout(&self, token: &str) -> (StatusCode, Value) {
        self.post_refresh_token("/auth/logout", token).await
    }

    async fn post_refresh_token(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let body = json!({"refresh_token": token});
        self.call(Method::POST, path, None, Some(body)).await
    }

    /// The access token of a successful login.
    pub async fn access_token(&self, email: &str, org: Option<&str>) -> String {
        let (status, body) = self.login(email, org).await;
        assert_eq!(status, StatusCode::OK, "login {email}: {body}");
        text(&body["access_token"])
    }

    /// What the gateway's key verifier says of `key` right now.
    pub async fn verify(&self, key: &str) -> Result<Arc<KeyContext>, KeyRejection> {
        self.runtime.keys.verify(key).await
    }

    pub async fn verifies(&self, key: &str) -> bool {
        self.verify(key).await.is_ok()
    }
}

/// A request with an optional bearer token and JSON body.
pub fn request(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> test::TestRequest {
    let mut req = test::TestRequest::default().method(method).uri(path);
    if let Some(token) = token {
        req = req.insert_header((AUTHORIZATION, format!("Bearer {token}")));
    }
    if let Some(body) = body {
        req = req.set_json(body);
    }
    req
}

pub fn peer(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 40000)
}

fn parse_body(status: StatusCode, body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "{status}: the body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    })
}

/// A JSON string's text.
pub fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
        .to_owned()
}

/// The ids in a `{"data": [...]}` list, read from `field`, sorted (rows created in the same
/// millisecond come in either order).
pub fn ids(body: &Value, field: &str) -> Vec<String> {
    let mut ids: Vec<String> = body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("expected a list, got {body}"))
        .iter()
        .map(|item| text(&item[field]))
        .collect();
    ids.sort();
    ids
}

/// `ids`, sorted like [`ids`] sorts them.
pub fn sorted<const N: usize>(ids: [&String; N]) -> Vec<String> {
    let mut ids: Vec<String> = ids.into_iter().cloned().collect();
    ids.sort();
    ids
}

/// Checks an OpenAI-shaped error: the status, `error.type`, and all four fields present.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value), status: StatusCode, kind: &str) {
    let (got_status, body) = got;
    assert_eq!(*got_status, status, "{body}");
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("no `error` object in {body}"));
    for field in ["message", "type", "param", "code"] {
        assert!(error.contains_key(field), "`{field}` missing in {body}");
    }
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(error["type"], kind, "{body}");
    assert!(
        error["param"].is_null() || error["param"].is_string(),
        "{body}"
    );
    assert!(
        error["code"].is_null() || error["code"].is_string(),
        "{body}"
    );
}
