//! `tollgate`: the whole platform in one binary.
//!
//! - `tollgate serve [--config FILE]` runs every service in one process; with no file, providers
//!   come from the usual environment variables (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`,
//!   `GEMINI_API_KEY`, `AZURE_API_KEY` with `AZURE_API_BASE`).
//! - `tollgate check-config FILE` validates a config and prints every problem with its path.
//! - `tollgate migrate`, `tollgate orgs ...`, `tollgate keys ...`: operator commands on storage.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

mod admission;
mod authentication;
mod caching;
mod embedding;
mod guardrails;
mod metering;
mod operator;
mod payments;

use std::sync::Arc;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use prometheus::Encoder;
use tollgate_billing::payments::standing::PaymentRules;
use tollgate_billing::{Admission, AdmissionGate, BudgetCounters, OnRedisFailure, RateLimiter};
use tollgate_common::body::{BodyLimits, CloseUnreadBodies};
use tollgate_common::config::{Config, ConfigError, ProcessEnv, RedisFailurePolicy};
use tollgate_gateway::Stages;

use crate::admission::BillingAdmission;
use crate::authentication::VirtualKeyAuthentication;
use crate::metering::BillingParts;

/// mimalloc instead of glibc's allocator: request handling allocates on the server workers and
/// frees on the usage threads, a pattern where glibc falls back to its locked arenas (about a
/// sixth of the gateway's CPU time under load). Transparent huge pages are off for the process
/// (`no_thp`), or each thread's heap would pin 2 MiB pages and idle memory would double.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "An AI gateway: one OpenAI-compatible API in front of every LLM provider."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the platform.
    Serve {
        /// YAML configuration; without it, providers are read from the environment.
        #[arg(long, short, env = "TOLLGATE_CONFIG")]
        config: Option<PathBuf>,
        /// Run one service only, for a split deployment (all of them by default).
        #[arg(long, value_enum)]
        only: Option<Service>,
    },
    /// Validate a configuration file and print every problem found.
    CheckConfig {
        /// The YAML file to check.
        file: PathBuf,
    },
    /// Apply the database migrations and exit.
    Migrate {
        #[arg(long, short, env = "TOLLGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Manage organizations.
    Orgs {
        #[arg(long, short, env = "TOLLGATE_CONFIG", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: OrgsCommand,
    },
    /// Manage virtual keys.
    Keys {
        #[arg(long, short, env = "TOLLGATE_CONFIG", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The usage ledger: events it refused, set aside as dead letters.
    Usage {
        #[arg(long, short, env = "TOLLGATE_CONFIG", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: UsageCommand,
    },
    /// Usage billing: reports to Stripe, reconciliation, revenue.
    Billing {
        #[arg(long, short, env = "TOLLGATE_CONFIG", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: BillingCommand,
    },
}

#[derive(Subcommand)]
enum UsageCommand {
    /// Usage events the ledger refused, oldest first, with the reason; one JSON object a line.
    DeadLetters {
        /// Also those already replayed.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Store waiting dead letters in the ledger: those named, or all of them.
    Replay {
        /// Dead letter ids (from `usage dead-letters`); all waiting ones when none is given.
        ids: Vec<String>,
        /// Remove control characters from the records' text and cut it to 256 bytes first.
        #[arg(long)]
        repair: bool,
    },
}

#[derive(Subcommand)]
enum BillingCommand {
    /// Report usage now (the server does it every minute): every ended hour with unreported
    /// usage, then send what is queued for Stripe.
    Report {
        /// Report as of this time (RFC 3339, e.g. 2026-11-26T06:00:00Z) instead of now.
        #[arg(long)]
        at: Option<String>,
    },
    /// Compare what was reported with what Stripe's meter recorded, hour by hour.
    Reconcile {
        /// The month, as YYYY-MM.
        #[arg(long)]
        period: String,
    },
    /// Put an organization on a plan: `payg` (provider cost plus markup) or `byok` (its own
    /// provider keys, a platform fee; needs `billing.bring_your_own_key.enabled`).
    Plan {
        #[arg(long)]
        org: String,
        plan: String,
    },
    /// Revenue, provider cost and margin per organization.
    Revenue {
        /// The month, as YYYY-MM.
        #[arg(long)]
        period: String,
    },
}

/// The services `serve --only` can run.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Service {
    /// The proxy; verifies keys through `auth.service_url`.
    Gateway,
    /// Sign-up, login, teams and keys under /auth.
    Auth,
    /// The usage ledger: consumes the gateways' usage stream, delivers budget alerts.
    Billing,
    /// The response cache, for gateways with `cache.service_url`.
    Cache,
}

#[derive(Subcommand)]
enum OrgsCommand {
    /// Create an organization with a default team; prints their ids.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List every organization.
    List,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a virtual key and print it (shown only this once).
    Create(operator::KeyOptions),
    /// List an organization's keys (never their secrets).
    List {
        #[arg(long)]
        org: String,
    },
    /// Revoke a key at once.
    Revoke {
        #[arg(long)]
        org: String,
        /// The key's id (from `keys list`).
        key_id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Serve { config, only } => serve(config, only),
        Command::Migrate { config } => operate(config, |c| {
            Box::pin(async move { operator::migrate(&c).await })
        }),
        Command::Orgs { config, command } => operate(config, move |c| {
            Box::pin(async move {
                match command {
                    OrgsCommand::Create { name } => operator::create_org(&c, &name).await,
                    OrgsCommand::List => operator::list_orgs(&c).await,
                }
            })
        }),
        Command::Keys { config, command } => operate(config, move |c| {
            Box::pin(async move {
                match command {
                    KeysCommand::Create(options) => operator::create_key(&c, options).await,
                    KeysCommand::List { org } => operator::list_keys(&c, &org).await,
                    KeysCommand::Revoke { org, key_id } => {
                        operator::revoke_key(&c, &org, &key_id).await
                    }
                }
            })
        }),
        Command::Usage { config, command } => operate(config, move |c| {
            Box::pin(async move {
                match command {
                    UsageCommand::DeadLetters { all, limit } => {
                        operator::list_dead_letters(&c, all, limit).await
                    }
                    UsageCommand::Replay { ids, repair } => {
                        operator::replay_dead_letters(&c, &ids, repair).await
                    }
                }
            })
        }),
        Command::Billing { config, command } => operate(config, move |c| {
            Box::pin(async move {
                match command {
                    BillingCommand::Report { at } => {
                        operator::report_usage(&c, at.as_deref()).await
                    }
                    BillingCommand::Reconcile { period } => operator::reconcile(&c, &period).await,
                    BillingCommand::Revenue { period } => operator::revenue(&c, &period).await,
                    BillingCommand::Plan { org, plan } => operator::set_plan(&c, &org, &plan).await,
                }
            })
        }),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "tollgate: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match Config::load(file, &ProcessEnv) {
        Ok(config) => {
            writeln!(
                out,
                "{}: OK ({} providers, {} models)",
                file.display(),
                config.providers.len(),
                config.models.len()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(ConfigError::Invalid(problems)) => {
            for problem in &problems {
                writeln!(out, "{}: {problem}", file.display())?;
            }
            writeln!(out, "{} problem(s) found", problems.len())?;
            Ok(ExitCode::FAILURE)
        }
        Err(err) => Err(err.into()),
    }
}

fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    match path {
        Some(path) => Config::load(path, &ProcessEnv),
        None => Config::from_env(&ProcessEnv),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))
}

type CommandFuture = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>>;

/// Runs an operator command with the configuration and a runtime.
fn operate(
    config_path: Option<PathBuf>,
    command: impl FnOnce(Config) -> CommandFuture,
) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path.as_deref())?;
    // Operator commands print their results; only warnings go to the log.
    let mut telemetry = config.telemetry.clone();
    if std::env::var_os("TOLLGATE_LOG").is_none() {
        telemetry.log_level = "warn".into();
    }
    let _telemetry = tollgate_common::telemetry::init(&telemetry)?;
    actix_web::rt::System::new().block_on(command(config))?;
    Ok(ExitCode::SUCCESS)
}

fn serve(config_path: Option<PathBuf>, only: Option<Service>) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path.as_deref())?;
    let _telemetry = tollgate_common::telemetry::init(&config.telemetry)?;

    actix_web::rt::System::new().block_on(async move {
        if only == Some(Service::Auth) {
            return serve_auth_only(&config).await;
        }
        if only == Some(Service::Billing) {
            return serve_billing_only(&config).await;
        }
        if only == Some(Service::Cache) {
            return serve_cache_only(&config).await;
        }
        if only == Some(Service::Gateway) {
            anyhow::ensure!(
                config.auth.service_url.is_some(),
                "auth.service_url: required with --only gateway (where the auth service runs)"
            );
        }
        let auth = tollgate_auth::startup::start(&config, only.is_none()).await?;
        let redis = auth.redis.clone();
        let on_failure = match config.limits.on_redis_failure {
            RedisFailurePolicy::Local => OnRedisFailure::Local,
            RedisFailurePolicy::Reject => OnRedisFailure::Reject,
        };
        let limiter = Arc::new(RateLimiter::new(redis.clone(), on_failure));
        let budgets = Arc::new(BudgetCounters::new(redis.clone(), on_failure));
        let parts = BillingParts {
            pool: auth.store.as_ref().map(|s| s.pool().clone()),
            redis,
            redis_client: auth.redis_client.clone(),
        };
        let usage = metering::start_usage(&config, &parts).await?;
        metering::start_billing(&config, &parts)?;
        let mut stages = Stages {
            authenticate: Arc::new(VirtualKeyAuthentication::new(auth.keys.clone())),
            admit: Arc::new(BillingAdmission::new(
                Admission::new(
                    AdmissionGate::new(limiter, budgets.clone()),
                    config.limits.clone(),
                    PaymentRules::new(&config.billing),
                ),
                config.limits.default_max_tokens,
            )),
            meter: usage.meter,
            guardrails: Arc::new(guardrails::PolicyGuardrails::new(&config)?),
            ..Stages::default()
        };
        if let Some(cache) = caching::start(&config, auth.redis.clone())? {
            stages.cache = cache;
        }
        let gateway = tollgate_gateway::build_gateway(&config, stages)?;
        let running = match auth.http {
            Some(http) => {
                let payments = match &auth.store {
                    Some(store) => tollgate_billing::payments::start(
                        &config.billing,
                        store.pool().clone(),
                        Arc::new(payments::ReloadThroughAuth(http.service.clone())),
                    )
                    .context("billing.stripe")?,
                    None => None,
                };
                let billing = tollgate_admin::billing::BillingSetup {
                    config: config.billing.clone(),
                    stripe: payments.as_ref().map(|p| p.api.clone()),
                };
                let webhooks = payments.map(|p| {
                    tollgate_billing::payments::http::configure(
                        p.webhooks,
                        BodyLimits::admin(&config.server),
                    )
                });
                let admin = tollgate_admin::http::configure(tollgate_admin::http::AdminHttp::new(
                    http.service.clone(),
                    admin_catalog(&config)?,
                    budgets,
                    billing,
                    &tollgate_admin::http::AdminSettings::from_config(&config),
                ));
                let auth = tollgate_auth::http::configure(http);
                tollgate_gateway::start_with(&config, gateway, move |cfg| {
                    auth(cfg);
                    admin(cfg);
                    tollgate_admin::dashboard::configure(cfg);
                    if let Some(webhooks) = &webhooks {
                        webhooks(cfg);
                    }
                })?
            }
            None => tollgate_gateway::start(&config, gateway)?,
        };
        if config.providers.is_empty() {
            tracing::warn!(
                "no provider configured: set {}, or pass --config",
                tollgate_common::config::api_key_variables()
            );
        }
        tracing::info!(
            addr = %running.addr,
            providers = config.providers.len(),
            models = config.models.len(),
            "tollgate listening on http://{}",
            running.addr
        );
        running
            .server
            .await
            .context("server stopped with an error")?;
        tracing::info!("tollgate stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// The price catalog the admin API shows: the built-in one with `prices` overrides.
fn admin_catalog(config: &Config) -> anyhow::Result<Arc<tollgate_common::PriceCatalog>> {
    let catalog =
        tollgate_common::PriceCatalog::with_overrides(&config.prices).context("prices")?;
    Ok(Arc::new(catalog))
}

/// `serve --only auth`: the auth service's endpoints, the admin API and health checks.
async fn serve_auth_only(config: &Config) -> anyhow::Result<ExitCode> {
    let auth = tollgate_auth::startup::start(config, true).await?;
    let http = auth.http.context("the auth service did not start")?;
    let store = web::Data::new(http.service.store().clone());
    // Reservations of requests in flight, for budget figures: in Redis, where the gateways
    // keep them.
    let on_failure = match config.limits.on_redis_failure {
        RedisFailurePolicy::Local => OnRedisFailure::Local,
        RedisFailurePolicy::Reject => OnRedisFailure::Reject,
    };
    let budgets = Arc::new(BudgetCounters::new(auth.redis.clone(), on_failure));
    let billing = tollgate_admin::billing::BillingSetup {
        config: config.billing.clone(),
        stripe: config
            .billing
            .stripe
            .as_ref()
            .map(tollgate_billing::payments::stripe::StripeApi::new)
            .transpose()
            .context("billing.stripe")?
            .map(Arc::new),
    };
    let admin = tollgate_admin::http::configure(tollgate_admin::http::AdminHttp::new(
        http.service.clone(),
        admin_catalog(config)?,
        budgets,
        billing,
        &tollgate_admin::http::AdminSettings::from_config(config),
    ));
    let routes = tollgate_auth::http::configure(http);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(CloseUnreadBodies)
            .app_data(store.clone())
            .configure(routes.clone())
            .configure(admin.clone())
            .configure(tollgate_admin::dashboard::configure)
            .configure(health_routes)
    })
    .tcp_nodelay(true)
    .workers(workers(config))
    .bind(config.server.listen)
    .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    run_until_stopped(server.run(), config, "auth").await
}

/// `serve --only billing`: the ledger's side of a split deployment (the usage stream consumer,
/// alert delivery, retention) with a liveness check.
async fn serve_billing_only(config: &Config) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        config.redis.url.is_some(),
        "redis.url: required with --only billing (the gateways' usage stream is in Redis)"
    );
    let store = tollgate_auth::startup::open_store(config).await?;
    let client =
        redis::Client::open(config.redis.url.clone().unwrap_or_default()).context("redis.url")?;
    let parts = BillingParts {
        pool: Some(store.pool().clone()),
        redis: None,
        redis_client: Some(client),
    };
    metering::start_billing(config, &parts)?;
    let feed = match tollgate_auth::startup::redis_manager(config).context("redis.url")? {
        Some((_, manager)) => tollgate_auth::KeyChangeFeed::with_redis(None, manager),
        None => tollgate_auth::KeyChangeFeed::local(None),
    };
    let listener = Arc::new(payments::ReloadThroughFeed {
        store: store.clone(),
        feed,
    });
    let webhooks =
        tollgate_billing::payments::start(&config.billing, store.pool().clone(), listener)
            .context("billing.stripe")?
            .map(|p| {
                tollgate_billing::payments::http::configure(
                    p.webhooks,
                    BodyLimits::admin(&config.server),
                )
            });
    let store = web::Data::new(store);
    let metrics_token = web::Data::new(MetricsToken(config.telemetry.metrics_token.clone()));
    let server = HttpServer::new(move || {
        let app = App::new()
            .wrap(CloseUnreadBodies)
            .app_data(store.clone())
            .app_data(metrics_token.clone())
            .configure(health_routes)
            .route("/metrics", web::get().to(billing_metrics));
        match &webhooks {
            Some(webhooks) => app.configure(webhooks.clone()),
            None => app,
        }
    })
    .workers(1)
    .tcp_nodelay(true)
    .bind(config.server.listen)
    .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    run_until_stopped(server.run(), config, "billing").await
}

/// `telemetry.metrics_token`, for a process without the gateway's own `/metrics`.
struct MetricsToken(Option<tollgate_common::config::Secret>);

/// What the billing service counts (such as usage dead letters), in Prometheus' text format;
/// with a metrics token, only for requests bearing it.
async fn billing_metrics(req: HttpRequest, token: web::Data<MetricsToken>) -> HttpResponse {
    if !tollgate_gateway::metrics::scraper_authorized(token.0.as_ref(), req.headers()) {
        return HttpResponse::Unauthorized().finish();
    }
    let mut out = Vec::new();
    if let Err(err) = prometheus::TextEncoder::new().encode(&prometheus::gather(), &mut out) {
        tracing::warn!(%err, "cannot encode metrics");
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}

/// `serve --only cache`: the response cache's endpoints for gateways with `cache.service_url`,
/// and health checks.
async fn serve_cache_only(config: &Config) -> anyhow::Result<ExitCode> {
    let token = config
        .cache
        .service_token
        .as_ref()
        .context("cache.service_token: required with --only cache (gateways present it)")?;
    anyhow::ensure!(
        config.cache.mode != "off",
        "cache.mode: must be exact or semantic with --only cache"
    );
    let redis = tollgate_auth::startup::redis_manager(config)
        .context("redis.url")?
        .map(|(_, manager)| manager);
    let cache = caching::answer_cache(config, redis)?;
    let routes = tollgate_cache::http::configure(
        tollgate_cache::http::CacheHttp::new(cache, token.expose())
            .with_body_limits(BodyLimits::model_calls(&config.server)),
    );
    // The cache fails open (a broken store is a miss), so serving is being ready.
    let server = HttpServer::new(move || {
        App::new()
            .wrap(CloseUnreadBodies)
            .configure(routes.clone())
            .route(
                "/health/live",
                web::get().to(|| async {
                    HttpResponse::Ok().json(serde_json::json!({"status": "live"}))
                }),
            )
            .route(
                "/health/ready",
                web::get().to(|| async {
                    HttpResponse::Ok().json(serde_json::json!({"status": "ready"}))
                }),
            )
    })
    .tcp_nodelay(true)
    .workers(workers(config))
    .bind(config.server.listen)
    .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    run_until_stopped(server.run(), config, "cache").await
}

/// The worker threads of a single-service process: `server.workers`, else one per core (as
/// actix-web would choose).
fn workers(config: &Config) -> usize {
    config.server.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    })
}

/// Serves a single-service process until it is stopped.
async fn run_until_stopped(
    server: actix_web::dev::Server,
    config: &Config,
    service: &str,
) -> anyhow::Result<ExitCode> {
    tracing::info!(addr = %config.server.listen, "tollgate {service} service listening");
    server.await.context("server stopped with an error")?;
    Ok(ExitCode::SUCCESS)
}

/// `/health/live`, and `/health/ready` (the database answers), for a process without the gateway
/// (whose own health routes also check the providers).
fn health_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/health/live",
        web::get().to(|| async { HttpResponse::Ok().json(serde_json::json!({"status": "live"})) }),
    )
    .route("/health/ready", web::get().to(auth_ready));
}

/// Ready when the database answers.
async fn auth_ready(store: web::Data<tollgate_auth::AuthStore>) -> HttpResponse {
    match store.ping().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Err(err) => {
            tracing::warn!(%err, "database unreachable");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "not_ready", "reason": "database unreachable"}))
        }
    }
}
