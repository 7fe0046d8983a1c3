//! Every `/auth` route served is documented in api-schema/openapi.yaml, and nothing more.
//! (The gateway's own routes are checked in services/gateway/src/server.rs.)

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

use actix_web::http::Method;
use actix_web::{App, test};
use tollgate_common::{Config, Secret};

/// The paths `tollgate_auth::http::configure` serves, in its order.
const SERVED: [&str; 37] = [
    "/auth/signup",
    "/auth/signup/verify",
    "/auth/login",
    "/auth/refresh",
    "/auth/logout",
    "/auth/password",
    "/auth/me",
    "/auth/teams",
    "/auth/teams/{team}",
    "/auth/teams/{team}/members",
    "/auth/teams/{team}/limits",
    "/auth/teams/{team}/cache-policy",
    "/auth/teams/{team}/guardrails",
    "/auth/teams/{team}/members/{user}",
    "/auth/members",
    "/auth/members/{user}",
    "/auth/keys",
    "/auth/keys/{key}",
    "/auth/keys/{key}/rotate",
    "/auth/keys/{key}/cache-policy",
    "/auth/keys/{key}/guardrails",
    "/auth/keys/{key}/revoke",
    "/auth/limits",
    "/auth/cache-policy",
    "/auth/guardrails",
    "/auth/budgets",
    "/auth/budgets/{budget}",
    "/auth/alerts/webhook",
    "/auth/audit",
    "/auth/invitations",
    "/auth/invitations/preview",
    "/auth/invitations/accept",
    "/auth/invitations/{invitation}",
    "/auth/admin-tokens",
    "/auth/admin-tokens/{token}",
    "/auth/internal/keys/lookup",
    "/auth/internal/keys/touch",
];

/// A concrete URL for a templated path: each `{param}` becomes `x`.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                "x"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[actix_web::test]
async fn openapi_document_matches_the_auth_routes() {
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../api-schema/openapi.yaml"
    ))
    .unwrap();
    let documented: Vec<&str> = spec
        .lines()
        .filter(|l| l.starts_with("  /") && l.ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':'))
        .filter(|p| p.starts_with("/auth"))
        .collect();
    assert_eq!(documented, SERVED);

    let dir = std::env::temp_dir().join(format!("tollgate-openapi-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = Config::default();
    config.storage.database_url = Some(format!("sqlite://{}/auth.db?mode=rwc", dir.display()));
    // Without a service token the internal endpoints answer as if absent.
    config.auth.service_token = Some(Secret::new("openapi-test-service-token"));
    let runtime = tollgate_auth::startup::start(&config, true).await.unwrap();
    let app = test::init_service(
        App::new().configure(tollgate_auth::http::configure(runtime.http.unwrap())),
    )
    .await;

    // A method no route accepts: a served path answers 405, an unknown one 404.
    let unknown = test::TestRequest::default()
        .uri("/auth/no-such-route")
        .method(Method::TRACE)
        .to_request();
    assert_eq!(test::call_service(&app, unknown).await.status(), 404);
    for path in SERVED {
        let req = test::TestRequest::default()
            .uri(&concrete(path))
            .method(Method::TRACE)
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_ne!(res.status(), 404, "{path} is documented but not served");
    }
    std::fs::remove_dir_all(&dir).ok();
}
