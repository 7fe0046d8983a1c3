//! A local stand-in for LLM providers (OpenAI, Azure OpenAI, Anthropic, Gemini, AWS Bedrock,
//! Vertex AI, Mistral, Cohere) that speaks their real wire formats, for tests and latency benchmarks.

mod answer;
mod anthropic;
mod azure;
mod bedrock;
mod behaviour;
mod cohere;
mod compatible;
mod completions;
mod gemini;
mod http;
mod media;
mod mistral;
mod openai;
mod responses;
mod sigv4;
mod stats;
mod stream;
mod vertex;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use tokio::sync::oneshot;

use behaviour::State;
pub use behaviour::{EXAMPLE_AWS_ACCESS_KEY_ID, EXAMPLE_AWS_SECRET_ACCESS_KEY, MockConfig};
pub use stats::StatsSnapshot;

/// Request bodies up to this size are accepted; benchmarks send long prompts.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// A running mock provider, serving on its own thread until stopped or dropped.
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<State>,
    handle: Option<ServerHandle>,
    finished: Option<oneshot::Receiver<()>>,
}

impl MockServer {
    /// Binds 127.0.0.1 on a free port with one worker and serves in the background.
    pub async fn start(config: MockConfig) -> anyhow::Result<MockServer> {
        MockServer::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config, 1).await
    }

    /// Binds `addr` and serves with `workers` worker threads in the background.
    pub async fn start_on(
        addr: SocketAddr,
        config: MockConfig,
        workers: usize,
    ) -> anyhow::Result<MockServer> {
        let state = Arc::new(State::new(config));
        let (ready_tx, ready_rx) = oneshot::channel();
        let (finished_tx, finished_rx) = oneshot::channel();
        let server_state = state.clone();
        // The server runs in its own actix System on a dedicated thread so it works the same
        // under #[actix_web::test], a multi-threaded tokio runtime, or outlives the caller's runtime.
        std::thread::Builder::new()
            .name(format!("mock-provider-{}", addr.port()))
            .spawn(move || {
                let system = actix_web::rt::System::new();
                system.block_on(async move {
                    let server = match build_server(addr, server_state, workers) {
                        Ok(built) => built,
                        Err(err) => {
                            let _ = ready_tx.send(Err(err));
                            return;
                        }
                    };
                    let (bound, server) = server;
                    let _ = ready_tx.send(Ok((bound, server.handle())));
                    let _ = server.await;
                });
                let _ = finished_tx.send(());
            })
            .context("spawning the mock provider thread")?;
        let (bound, handle) = ready_rx
            .await
            .context("mock provider thread ended before it started serving")??;
        Ok(MockServer {
            addr: bound,
            state,
            handle: Some(handle),
            finished: Some(finished_rx),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. "http://127.0.0.1:PORT".
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Current counters and the last provider request.
    pub fn stats(&self) -> StatsSnapshot {
        self.state.stats.snapshot()
    }

    /// Replaces the configuration for subsequent requests and resets the fail_first counter.
    pub fn set_config(&self, config: MockConfig) {
        self.state.set_config(config);
    }

    /// The configuration currently in effect.
    pub fn config(&self) -> MockConfig {
        self.state.active().config.clone()
    }

    /// Zeroes the counters and forgets the last request.
    pub fn reset_stats(&self) {
        self.state.stats.reset();
    }

    /// Stops serving, dropping open connections, and waits until the port is released.
    pub async fn stop(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.stop(false).await;
        }
        if let Some(finished) = self.finished.take() {
            let _ = finished.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        // The stop command is sent eagerly, so a forgotten server still shuts down.
        if let Some(handle) = self.handle.take() {
            drop(handle.stop(false));
        }
    }
}

fn build_server(
    addr: SocketAddr,
    state: Arc<State>,
    workers: usize,
) -> anyhow::Result<(SocketAddr, actix_web::dev::Server)> {
    let data = web::Data::from(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .route("/v1/chat/completions", web::post().to(openai::chat))
            .route("/v1/embeddings", web::post().to(openai::embeddings))
            .route("/v1/completions", web::post().to(completions::completions))
            .route("/v1/moderations", web::post().to(completions::moderations))
            .route("/v1/responses", web::post().to(responses::responses))
            .route("/v1/images/generations", web::post().to(media::images))
            .route(
                "/v1/audio/transcriptions",
                web::post().to(media::transcriptions),
            )
            .route(
                "/openai/deployments/{deployment}/images/generations",
                web::post().to(media::azure_images),
            )
            .route(
                "/openai/deployments/{deployment}/audio/transcriptions",
                web::post().to(media::azure_transcriptions),
            )
            .route("/v1/models", web::get().to(openai::models))
            .route(
                "/openai/deployments/{deployment}/chat/completions",
                web::post().to(azure::chat),
            )
            .route(
                "/openai/deployments/{deployment}/embeddings",
                web::post().to(azure::embeddings),
            )
            .route("/v1/messages", web::post().to(anthropic::messages))
            .route("/v1beta/models/{tail}", web::post().to(gemini::dispatch))
            .route("/v1/models/{tail}", web::post().to(gemini::dispatch))
            .route("/model/{model}/converse", web::post().to(bedrock::converse))
            .route(
                "/model/{model}/converse-stream",
                web::post().to(bedrock::converse_stream),
            )
            .route("/token", web::post().to(vertex::token))
            .route(
                "/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{tail}",
                web::post().to(vertex::dispatch),
            )
            .route(
                "/mistral/v1/chat/completions",
                web::post().to(mistral::chat),
            )
            .route(
                "/mistral/v1/embeddings",
                web::post().to(mistral::embeddings),
            )
            .route("/v2/chat", web::post().to(cohere::chat))
            .route("/v2/embed", web::post().to(cohere::embed))
            // After every fixed route: `/mistral/v1/...` is Mistral's own API.
            .route(
                "/{service}/v1/chat/completions",
                web::post().to(compatible::chat),
            )
            .route("/_mock/stats", web::get().to(control_stats))
            .route("/_mock/config", web::get().to(control_get_config))
            .route("/_mock/config", web::post().to(control_set_config))
            .route("/_mock/reset", web::post().to(control_reset))
            .default_service(web::to(not_found))
    })
    .workers(workers.max(1))
    .tcp_nodelay(true)
    // Load generators keep connections open between bursts; don't make them reconnect.
    .keep_alive(Duration::from_secs(75))
    .backlog(4096)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(addr)
    .with_context(|| format!("binding {addr}"))?;
    let bound = server
        .addrs()
        .first()
        .copied()
        .context("the server bound no address")?;
    Ok((bound, server.run()))
}

async fn control_stats(state: web::Data<State>) -> HttpResponse {
    http::json(StatusCode::OK, http::to_json(&state.stats.snapshot()))
}

async fn control_get_config(state: web::Data<State>) -> HttpResponse {
    http::json(StatusCode::OK, http::to_json(&state.active().config))
}

async fn control_set_config(state: web::Data<State>, body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<MockConfig>(&body) {
        Ok(config) => {
            let reply = http::to_json(&config);
            state.set_config(config);
            http::json(StatusCode::OK, reply)
        }
        Err(err) => HttpResponse::BadRequest()
            .insert_header(ContentType::json())
            .body(http::to_json(
                &serde_json::json!({"error": {"message": format!("invalid mock config: {err}")}}),
            )),
    }
}

async fn control_reset(state: web::Data<State>) -> HttpResponse {
    state.stats.reset();
    http::json(StatusCode::OK, b"{}".to_vec())
}

/// Unknown paths and methods, in the OpenAI error shape since most clients speak it.
async fn not_found(req: HttpRequest) -> HttpResponse {
    let message = format!("Invalid URL ({} {})", req.method(), req.path());
    openai::error(404, &message, "invalid_request_error", None, None)
}
