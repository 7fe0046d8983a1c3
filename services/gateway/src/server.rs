//! The gateway's HTTP surface: routes, body limits, and the OpenAI-shaped answers for
//! everything that is not a model call (health, metrics, model list, unknown routes).
//!
//! A model call's key is checked before its body is read, and the body is then read under
//! `server.max_body_bytes` and `server.body_read_timeout_ms`. Every answer given before a
//! request's body was read to its end closes the connection ([`CloseUnreadBodies`]).
//!
//! Routes: `POST /v1/chat/completions`, `POST /v1/embeddings`, `POST /v1/completions`,
//! `POST /v1/moderations`, `POST /v1/images/generations`, `POST /v1/audio/transcriptions`,
//! `POST /v1/responses`,
//! `POST /v1/messages`, `POST /v1/messages/count_tokens`, `GET /v1/models`, `GET /health/live`,
//! `GET /health/ready`, `GET /metrics`.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::json;
use tollgate_common::PriceCatalog;
use tollgate_common::body::{BodyLimits, CloseUnreadBodies, read_payload};
use tollgate_common::config::Config;

use crate::error::GatewayError;
use crate::ingress::{Ingress, messages};
use crate::metrics::Metrics;
use crate::openai::Endpoint;
use crate::openai::response::unix_now;
use crate::pipeline::{Gateway, Stages, Worker};
use crate::routing::Router;
use crate::upstream;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("cannot build the upstream HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("cannot set up metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Builds the shared gateway state from a validated config. Call inside a Tokio runtime.
pub fn build_gateway(config: &Config, stages: Stages) -> Result<Arc<Gateway>, StartError> {
    let catalog = Arc::new(
        PriceCatalog::with_overrides(&config.prices)
            .map_err(|e| StartError::Config(e.to_string()))?,
    );
    let router = Router::new(config, catalog.clone()).map_err(StartError::Config)?;
    let metrics = Arc::new(Metrics::new()?.with_token(config.telemetry.metrics_token.clone()));
    // Fail at start-up, not on the first request of a worker, if the client cannot be built.
    upstream::build_client()?;
    Ok(Arc::new(Gateway::new(router, catalog, metrics, stages)))
}

/// A running gateway server.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub server: actix_web::dev::Server,
}

/// Binds and starts serving in the background; `server` resolves when it stops.
pub fn start(config: &Config, gateway: Arc<Gateway>) -> Result<RunningServer, StartError> {
    start_with(config, gateway, |_| {})
}

/// Like [`start`], with more routes served beside the gateway's (other services' in a
/// one-process deployment). Unknown paths still get the gateway's OpenAI-shaped 404.
pub fn start_with<F>(
    config: &Config,
    gateway: Arc<Gateway>,
    extra_routes: F,
) -> Result<RunningServer, StartError>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let limits = BodyLimits::model_calls(&config.server);
    let app_gateway = gateway.clone();
    let mut server = HttpServer::new(move || {
        // Runs on each worker's thread: the worker's client and recorder live there.
        let client = upstream::build_client().unwrap_or_else(|err| {
            // build_gateway built one already, so this does not happen in practice.
            tracing::error!(%err, "cannot build this worker's upstream client; using defaults");
            reqwest::Client::new()
        });
        let worker = app_gateway.worker(client);
        App::new()
            .wrap(CloseUnreadBodies)
            .app_data(web::Data::from(app_gateway.clone()))
            .app_data(web::Data::new(worker))
            .app_data(web::Data::new(limits))
            .configure(extra_routes.clone())
            .configure(routes)
    })
    .backlog(4096)
    .tcp_nodelay(true)
    .keep_alive(std::time::Duration::from_secs(75));
    if let Some(workers) = config.server.workers {
        server = server.workers(workers);
    }
    let listen = config.server.listen;
    let server = server.bind(listen).map_err(|source| StartError::Bind {
        addr: listen,
        source,
    })?;
    let addr = server.addrs().first().copied().unwrap_or(listen);
    let server = server.run();
    Ok(RunningServer {
        addr,
        handle: server.handle(),
        server,
    })
}

/// The gateway's routes, for `App::configure`. A known path with the wrong method gets 405,
/// an unknown path 404, both in OpenAI's error shape.
fn routes(cfg: &mut web::ServiceConfig) {
    fn resource(path: &str, route: actix_web::Route) -> actix_web::Resource {
        web::resource(path)
            .route(route)
            .default_service(web::to(method_not_allowed))
    }
    /// A model call's route: the body is read as `ingress`'s.
    fn model_route(ingress: Ingress) -> actix_web::Route {
        web::post().to(
            move |req: HttpRequest,
                  payload: web::Payload,
                  gateway: web::Data<Gateway>,
                  worker: web::Data<Worker>,
                  limits: web::Data<BodyLimits>| {
                model_call(ingress, req, payload, gateway, worker, limits)
            },
        )
    }
    let openai = |endpoint| model_route(Ingress::OpenAi(endpoint));
    cfg.service(resource(
        "/v1/chat/completions",
        openai(Endpoint::ChatCompletions),
    ))
    .service(resource("/v1/embeddings", openai(Endpoint::Embeddings)))
    .service(resource("/v1/completions", openai(Endpoint::Completions)))
    .service(resource("/v1/moderations", openai(Endpoint::Moderations)))
    .service(resource(
        "/v1/images/generations",
        openai(Endpoint::ImageGenerations),
    ))
    .service(resource(
        "/v1/audio/transcriptions",
        openai(Endpoint::AudioTranscriptions),
    ))
    .service(resource(
        "/v1/responses",
        model_route(Ingress::OpenAiResponses),
    ))
    .service(resource(
        "/v1/messages",
        model_route(Ingress::AnthropicMessages),
    ))
    .service(resource(
        "/v1/messages/count_tokens",
        web::post().to(count_tokens),
    ))
    .service(resource("/v1/models", web::get().to(models)))
    .service(resource("/health/live", web::get().to(live)))
    .service(resource("/health/ready", web::get().to(ready)))
    .service(resource("/metrics", web::get().to(metrics)))
    .default_service(web::to(not_found));
}

/// Anthropic's token count of a Messages body, as the gateway's own tokenizer counts it: no
/// model is called and nothing is metered, but the key must open the model, and each call
/// counts against the key's request limits.
async fn count_tokens(
    req: HttpRequest,
    payload: web::Payload,
    gateway: web::Data<Gateway>,
    limits: web::Data<BodyLimits>,
) -> HttpResponse {
    let ingress = Ingress::AnthropicMessages;
    let request_id = request_id(&req);
    let counted = async {
        let key = gateway.authenticate(req.headers()).await?;
        let raw = read_payload(&req, payload, **limits).await?;
        let chat = messages::request::to_counted_body(&raw)?;
        gateway.count_tokens(key, chat, request_id.clone()).await
    }
    .await;
    match counted {
        Ok((input_tokens, headers)) => {
            let mut response = HttpResponse::Ok();
            for header in headers {
                response.insert_header(header);
            }
            response.json(json!({ "input_tokens": input_tokens }))
        }
        Err(err) => ingress.error_response(&err, &request_id),
    }
}

async fn model_call(
    ingress: Ingress,
    req: HttpRequest,
    payload: web::Payload,
    gateway: web::Data<Gateway>,
    worker: web::Data<Worker>,
    limits: web::Data<BodyLimits>,
) -> HttpResponse {
    let request_id = request_id(&req);
    // The key first: a caller without one gets its 401 before a byte of its body is read.
    let key = match gateway.authenticate(req.headers()).await {
        Ok(key) => key,
        Err(err) => return gateway.refuse(&worker, ingress, request_id, None, err),
    };
    let body = match read_payload(&req, payload, **limits).await {
        Ok(body) => body,
        Err(err) => return gateway.refuse(&worker, ingress, request_id, Some(key), err.into()),
    };
    let gateway = gateway.into_inner();
    gateway
        .handle(&worker, ingress, req.headers(), key, body, request_id)
        .await
}

/// The client's `x-request-id` when it is a sane token, else a fresh UUIDv7.
fn request_id(req: &HttpRequest) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// The models the caller's key may use.
async fn models(req: HttpRequest, gateway: web::Data<Gateway>) -> HttpResponse {
    let key = match gateway
        .stages
        .authenticate
        .authenticate(req.headers())
        .await
    {
        Ok(key) => key,
        Err(err) => return err.to_response(&request_id(&req)),
    };
    let created = unix_now();
    let data: Vec<_> = gateway
        .router
        .listings()
        .into_iter()
        .filter(|m| key.allows_model(&m.id))
        .map(|m| json!({"id": m.id, "object": "model", "created": created, "owned_by": m.owned_by}))
        .collect();
    HttpResponse::Ok().json(json!({"object": "list", "data": data}))
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "live"}))
}

async fn ready(gateway: web::Data<Gateway>) -> HttpResponse {
    let providers = gateway.router.providers().count();
    if providers == 0 {
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "not_ready",
            "reason": format!(
                "no provider is configured: set {}, or pass --config",
                tollgate_common::config::api_key_variables()
            ),
        }));
    }
    HttpResponse::Ok().json(json!({"status": "ready", "providers": providers}))
}

async fn metrics(req: HttpRequest, gateway: web::Data<Gateway>) -> HttpResponse {
    if !gateway.metrics.authorized(req.headers()) {
        return GatewayError::Unauthenticated {
            message: "Reading the metrics needs the deployment's metrics token \
                      (Authorization: Bearer ...)."
                .into(),
            code: "invalid_metrics_token",
        }
        .to_response(&request_id(&req));
    }
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        ))
        .body(gateway.metrics.render())
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    GatewayError::NotFound {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    }
    .to_response(&request_id(&req))
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    GatewayError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    }
    .to_response(&request_id(&req))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::dev::Service;
    use actix_web::test;
    use std::cell::Cell;
    use std::rc::Rc;

    use crate::pipeline::{Authenticate, KeyContext};

    /// Refuses every caller, as the virtual-key stage refuses one without a valid key.
    struct NoKeyIsValid;

    #[async_trait::async_trait]
    impl Authenticate for NoKeyIsValid {
        async fn authenticate(
            &self,
            _headers: &actix_web::http::header::HeaderMap,
        ) -> Result<Arc<KeyContext>, GatewayError> {
            Err(GatewayError::Unauthenticated {
                message: "Incorrect API key provided.".into(),
                code: "invalid_api_key",
            })
        }
    }

    /// Calls `/v1/chat/completions` with a body that never ends and counts what was read of it.
    async fn call_with_endless_body(
        stages: Stages,
        limits: BodyLimits,
        endless: fn() -> futures_util::stream::BoxStream<
            'static,
            Result<bytes::Bytes, actix_web::error::PayloadError>,
        >,
    ) -> (u16, serde_json::Value, usize) {
        let config = Config::default();
        let gateway = build_gateway(&config, stages).unwrap();
        let worker = gateway.worker(reqwest::Client::new());
        let app = test::init_service(
            App::new()
                .app_data(web::Data::from(gateway))
                .app_data(web::Data::new(worker))
                .app_data(web::Data::new(limits))
                .configure(routes),
        )
        .await;
        let pulled = Rc::new(Cell::new(0_usize));
        let counter = pulled.clone();
        let body = futures_util::StreamExt::inspect(endless(), move |chunk| {
            if let Ok(chunk) = chunk {
                counter.set(counter.get() + chunk.len());
            }
        });
        let mut req = test::TestRequest::post()
            .uri("/v1/chat/completions")
            .insert_header(("authorization", "Bearer tg-not-a-key"))
            .insert_header(("content-type", "application/json"))
            .to_request();
        *req.payload() = actix_web::dev::Payload::Stream {
            payload: Box::pin(body),
        };
        let res = app.call(req).await.unwrap();
        let status = res.status().as_u16();
        let body: serde_json::Value = test::read_body_json(res).await;
        (status, body, pulled.get())
    }

    fn megabytes_forever() -> futures_util::stream::BoxStream<
        'static,
        Result<bytes::Bytes, actix_web::error::PayloadError>,
    > {
        Box::pin(futures_util::stream::repeat_with(|| {
            Ok(bytes::Bytes::from_static(&[b' '; 1024 * 1024]))
        }))
    }

    fn nothing_ever() -> futures_util::stream::BoxStream<
        'static,
        Result<bytes::Bytes, actix_web::error::PayloadError>,
    > {
        Box::pin(futures_util::stream::pending())
    }

    #[actix_web::test]
    async fn a_caller_without_a_valid_key_is_refused_before_its_body_is_read() {
        let stages = Stages {
            authenticate: Arc::new(NoKeyIsValid),
            ..Stages::default()
        };
        let limits = BodyLimits::model_calls(&Config::default().server);
        let (status, body, pulled) =
            call_with_endless_body(stages, limits, megabytes_forever).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(pulled, 0, "the body was read before the key was checked");
    }

    #[actix_web::test]
    async fn a_body_is_read_no_further_than_the_limit() {
        let limits = BodyLimits {
            max_bytes: 4 * 1024 * 1024,
            read_timeout: std::time::Duration::from_secs(30),
        };
        let (status, body, pulled) =
            call_with_endless_body(Stages::default(), limits, megabytes_forever).await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["error"]["code"], "request_too_large");
        assert!(pulled <= 5 * 1024 * 1024, "{pulled} bytes read");
    }

    #[actix_web::test]
    async fn a_body_that_does_not_arrive_in_time_is_a_408() {
        let limits = BodyLimits {
            max_bytes: 1024,
            read_timeout: std::time::Duration::from_millis(100),
        };
        let (status, body, _) =
            call_with_endless_body(Stages::default(), limits, nothing_ever).await;
        assert_eq!(status, 408, "{body}");
        assert_eq!(body["error"]["code"], "request_timeout");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }

    /// Every route served is documented in api-schema/openapi.yaml, and nothing more.
    #[actix_web::test]
    async fn openapi_document_matches_the_routes() {
        let spec = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../api-schema/openapi.yaml"
        ))
        .unwrap();
        let documented: Vec<&str> = spec
            .lines()
            .filter(|l| l.starts_with("  /") && l.ends_with(':'))
            .map(|l| l.trim().trim_end_matches(':'))
            // The auth service's routes are checked by services/auth/tests/openapi.rs, the
            // billing service's Stripe webhook end to end (tests/e2e/payments.rs).
            .filter(|p| !p.starts_with("/auth") && !p.starts_with("/billing"))
            .collect();
        let served = [
            "/v1/chat/completions",
            "/v1/embeddings",
            "/v1/completions",
            "/v1/moderations",
            "/v1/images/generations",
            "/v1/audio/transcriptions",
            "/v1/responses",
            "/v1/messages",
            "/v1/messages/count_tokens",
            "/v1/models",
            "/health/live",
            "/health/ready",
            "/metrics",
        ];
        assert_eq!(documented, served);
        let app = test::init_service(App::new().configure(routes)).await;
        for path in served {
            let req = test::TestRequest::default()
                .uri(path)
                .method(actix_web::http::Method::PATCH)
                .to_request();
            let res = test::call_service(&app, req).await;
            assert_ne!(res.status(), 404, "{path} is documented but not served");
        }
    }
}
