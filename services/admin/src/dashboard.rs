//! The web dashboard: the files under `web/`, compiled into the binary and served at `/` and
//! `/ui/*`, so that running Tollgate needs no Node.js and no build step.
//!
//! `TOLLGATE_WEB_DIR` serves the same files from a folder instead, read on every request, for
//! working on the dashboard without rebuilding.

use std::path::PathBuf;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

/// One file of the dashboard.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../../../web/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("charts.js", "text/javascript; charset=utf-8"),
    asset!("ui.js", "text/javascript; charset=utf-8"),
    asset!("page-overview.js", "text/javascript; charset=utf-8"),
    asset!("page-keys.js", "text/javascript; charset=utf-8"),
    asset!("page-teams.js", "text/javascript; charset=utf-8"),
    asset!("page-members.js", "text/javascript; charset=utf-8"),
    asset!("page-invitations.js", "text/javascript; charset=utf-8"),
    asset!("page-budgets.js", "text/javascript; charset=utf-8"),
    asset!("page-analytics.js", "text/javascript; charset=utf-8"),
    asset!("page-requests.js", "text/javascript; charset=utf-8"),
    asset!("page-billing.js", "text/javascript; charset=utf-8"),
    asset!("page-provider-keys.js", "text/javascript; charset=utf-8"),
    asset!("page-settings.js", "text/javascript; charset=utf-8"),
    asset!("page-limits.js", "text/javascript; charset=utf-8"),
    asset!("page-cache-policy.js", "text/javascript; charset=utf-8"),
    asset!("page-guardrails.js", "text/javascript; charset=utf-8"),
    asset!("page-admin-tokens.js", "text/javascript; charset=utf-8"),
];

/// Scripts, styles, images and API calls from this origin only: API data shown by the
/// dashboard can never run as code, and no other site can frame it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

/// Registers `/` and `/ui/{file}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let dev_dir = std::env::var_os("TOLLGATE_WEB_DIR").map(PathBuf::from);
    cfg.app_data(web::Data::new(WebDir(dev_dir)))
        .route("/", web::get().to(index))
        .route("/ui/{file}", web::get().to(file));
}

/// Where `TOLLGATE_WEB_DIR` points, if set.
struct WebDir(Option<PathBuf>);

async fn index(req: HttpRequest, dir: web::Data<WebDir>) -> HttpResponse {
    serve(&req, &dir, "index.html")
}

async fn file(req: HttpRequest, dir: web::Data<WebDir>, name: web::Path<String>) -> HttpResponse {
    if name.as_str() == "index.html" {
        return not_found();
    }
    serve(&req, &dir, &name)
}

/// Each embedded file's ETag, computed once.
static ETAGS: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| ASSETS.iter().map(|a| content_tag(a.body)).collect());

fn serve(req: &HttpRequest, dir: &WebDir, name: &str) -> HttpResponse {
    let Some(index) = ASSETS.iter().position(|a| a.name == name) else {
        return not_found();
    };
    let asset = &ASSETS[index];
    let (body, etag): (actix_web::body::BoxBody, String) = match &dir.0 {
        Some(dir) => match std::fs::read(dir.join(asset.name)) {
            Ok(body) => {
                let etag = content_tag(&body);
                (actix_web::body::BoxBody::new(body), etag)
            }
            Err(err) => {
                tracing::warn!(file = asset.name, %err, "TOLLGATE_WEB_DIR: cannot read");
                return not_found();
            }
        },
        None => (
            actix_web::body::BoxBody::new(asset.body),
            ETAGS.get(index).cloned().unwrap_or_default(),
        ),
    };
    // The content's hash as its ETag: a reload revalidates and gets 304 until a new build.
    if req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return with_headers(HttpResponse::NotModified(), &etag).finish();
    }
    with_headers(HttpResponse::Ok(), &etag)
        .content_type(asset.content_type)
        .body(body)
}

fn with_headers(
    mut builder: actix_web::HttpResponseBuilder,
    etag: &str,
) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::ETAG, etag.to_owned()))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    builder
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("Not found")
}

/// A short content hash, quoted, for the ETag.
fn content_tag(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("\"{}\"", hex::encode(&Sha256::digest(body)[..12]))
}

#[cfg(test)]
mod tests {
    use actix_web::test as web_test;
    use actix_web::{App, http::StatusCode};

    use super::*;

    #[actix_web::test]
    async fn serves_the_dashboard_with_its_security_headers_and_etags() {
        let app = web_test::init_service(App::new().configure(configure)).await;
        let res =
            web_test::call_service(&app, web_test::TestRequest::get().uri("/").to_request()).await;
        assert_eq!(res.status(), StatusCode::OK);
        let csp = res.headers().get(header::CONTENT_SECURITY_POLICY).unwrap();
        assert!(csp.to_str().unwrap().contains("script-src 'self'"));
        let etag = res.headers().get(header::ETAG).unwrap().clone();
        let body = web_test::read_body(res).await;
        assert!(String::from_utf8_lossy(&body).contains("/ui/app.js"));

        let res = web_test::call_service(
            &app,
            web_test::TestRequest::get()
                .uri("/")
                .insert_header((header::IF_NONE_MATCH, etag))
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);

        for (uri, status) in [
            ("/ui/app.js", StatusCode::OK),
            ("/ui/api.js", StatusCode::OK),
            ("/ui/charts.js", StatusCode::OK),
            ("/ui/ui.js", StatusCode::OK),
            ("/ui/page-overview.js", StatusCode::OK),
            ("/ui/page-keys.js", StatusCode::OK),
            ("/ui/page-teams.js", StatusCode::OK),
            ("/ui/page-members.js", StatusCode::OK),
            ("/ui/page-invitations.js", StatusCode::OK),
            ("/ui/page-budgets.js", StatusCode::OK),
            ("/ui/page-analytics.js", StatusCode::OK),
            ("/ui/page-requests.js", StatusCode::OK),
            ("/ui/page-billing.js", StatusCode::OK),
            ("/ui/page-provider-keys.js", StatusCode::OK),
            ("/ui/page-settings.js", StatusCode::OK),
            ("/ui/page-limits.js", StatusCode::OK),
            ("/ui/page-cache-policy.js", StatusCode::OK),
            ("/ui/page-guardrails.js", StatusCode::OK),
            ("/ui/page-admin-tokens.js", StatusCode::OK),
            ("/ui/app.css", StatusCode::OK),
            ("/ui/index.html", StatusCode::NOT_FOUND),
            ("/ui/..%2FCargo.toml", StatusCode::NOT_FOUND),
            ("/ui/secret.txt", StatusCode::NOT_FOUND),
        ] {
            let res =
                web_test::call_service(&app, web_test::TestRequest::get().uri(uri).to_request())
                    .await;
            assert_eq!(res.status(), status, "{uri}");
        }
        let res = web_test::call_service(
            &app,
            web_test::TestRequest::get().uri("/ui/app.js").to_request(),
        )
        .await;
        assert_eq!(
            res.headers().get(header::CONTENT_TYPE).unwrap(),
            "text/javascript; charset=utf-8"
        );
    }

    /// A module missing from `ASSETS` would be a 404 for the browser, and the dashboard would
    /// not start: every file of `web/` but its README is embedded.
    #[test]
    fn embeds_every_file_of_the_web_folder() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
        let mut missing = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name != "README.md"
                && !name.starts_with('.')
                && !ASSETS.iter().any(|a| a.name == name)
            {
                missing.push(name);
            }
        }
        assert!(missing.is_empty(), "not in ASSETS: {missing:?}");
    }
}
