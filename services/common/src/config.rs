//! Tollgate's configuration: YAML with `${ENV_VAR}` interpolation, parsed into typed structs and
//! validated before anything starts.
//!
//! Loading happens in three steps so that one run reports every problem, each with its field's
//! path: the YAML is read as a document, `${...}` references are resolved in string values, then
//! every section (and every provider and model entry) is deserialized on its own with unknown
//! fields refused, and finally the cross-references are checked. Environment variables under
//! `TOLLGATE_` override the file (see [`EnvOverrides`]).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::Value;

use crate::catalog::ModelPrice;

mod accounts;
mod billing;
mod ceilings;
mod outbound;

pub use crate::network::IpNetwork;
pub use accounts::MailerConfig;
pub use billing::{BillingConfig, ByokFees, FreeTier, PayAsYouGo, SellPrice, StripeConfig};
pub use ceilings::{Ceiling, PlanCeilings};
pub use outbound::OutboundConfig;

/// A value that must never be printed: provider API keys and the like.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where it is sent to whom it belongs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this secret. Digests are compared, so that the comparison takes
    /// as long whatever was presented and says nothing of how much of it was right.
    pub fn matches(&self, presented: &[u8]) -> bool {
        use sha2::{Digest, Sha256};
        Sha256::digest(self.0.as_bytes()) == Sha256::digest(presented)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The whole platform's configuration, validated.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub server: ServerConfig,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub models: Vec<ModelGroup>,
    pub routing: RoutingDefaults,
    pub prices: Vec<ModelPrice>,
    pub telemetry: TelemetryConfig,
    pub storage: StorageConfig,
    pub redis: RedisConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub usage: UsageConfig,
    pub cache: CacheConfig,
    pub billing: BillingConfig,
    pub outbound: OutboundConfig,
    pub admin: AdminConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Largest body of a model call (`/v1/*`), in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// Largest body of the admin API (`/graphql`) and of the auth endpoints (which take at
    /// most 64 KiB whatever this says), in bytes; larger ones get 413. Smaller than
    /// `max_body_bytes` because anyone may send them, before any credential is checked.
    pub max_admin_body_bytes: usize,
    /// How long a request body may take to arrive, whole; a slower one gets 408.
    pub body_read_timeout_ms: u64,
    /// HTTP worker threads; the number of cores when absent.
    pub workers: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 16 * 1024 * 1024,
            max_admin_body_bytes: 1024 * 1024,
            body_read_timeout_ms: 30_000,
            workers: None,
        }
    }
}

impl ServerConfig {
    pub fn body_read_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.body_read_timeout_ms)
    }
}

/// The admin API at `/graphql`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve GraphiQL at `GET /graphql` and answer introspection from callers without a
    /// token. Off by default: the schema is then shown only to logged-in callers.
    pub graphiql: bool,
    /// Mutations each user (or admin token, which acts as its creator) may run per minute;
    /// a token bucket per process, so bursts up to this many are allowed.
    pub mutations_per_minute: u32,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            graphiql: false,
            mutations_per_minute: 60,
        }
    }
}

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI and every OpenAI-compatible server (vLLM, Ollama, Groq, Mistral, DeepSeek, ...).
    Openai,
    Azure,
    Anthropic,
    Gemini,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Azure => "azure",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
        }
    }

    /// OpenTelemetry's `gen_ai.system` value for this provider.
    pub fn otel_system(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Azure => "az.ai.openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gcp.gemini",
        }
    }

    /// The base URL the provider's own SDK uses, when there is one.
    pub fn default_api_base(self) -> Option<&'static str> {
        match self {
            ProviderKind::Openai => Some("https://api.openai.com/v1"),
            ProviderKind::Anthropic => Some("https://api.anthropic.com"),
            ProviderKind::Gemini => Some("https://generativelanguage.googleapis.com"),
            ProviderKind::Azure => None,
        }
    }
}

/// One upstream account, as written in `providers.<name>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    pub kind: ProviderKind,
    #[serde(default)]
    pub api_base: Option<String>,
    #[serde(default)]
    pub api_key: Option<Secret>,
    #[serde(default)]
    pub api_version: Option<String>,
    /// Extra headers sent with every upstream request (e.g. `OpenAI-Organization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A provider after validation: its base URL is known and has no trailing slash.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    pub api_base: String,
    pub api_key: Option<Secret>,
    pub api_version: Option<String>,
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Targets in the order written; the next one only when the one before failed.
    #[default]
    Fallback,
    /// A random target in proportion to its weight, the others as fallbacks.
    Weighted,
    /// The target with the lowest moving average latency first.
    LeastLatency,
    /// The target with the lowest catalog price first.
    Cheapest,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Tries per target, the first one included; 1 means no retry on the same target.
    pub attempts: u32,
    /// Upstream statuses that are retried (connection errors and timeouts always are).
    pub on_status: Vec<u16>,
    /// First backoff; doubled on each retry, with full jitter, capped by `max_backoff_ms`.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 2,
            on_status: vec![429, 500, 502, 503, 504],
            backoff_ms: 200,
            max_backoff_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerConfig {
    /// Failures within `window_ms` that open the circuit.
    pub failures: u32,
    pub window_ms: u64,
    /// How long an open circuit skips its target before one probe request is let through.
    pub cooldown_ms: u64,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            failures: 5,
            window_ms: 30_000,
            cooldown_ms: 30_000,
        }
    }
}

/// Defaults for every model group that does not set its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingDefaults {
    pub retry: RetryPolicy,
    pub timeout_ms: u64,
    pub circuit_breaker: CircuitBreakerConfig,
}

impl Default for RoutingDefaults {
    fn default() -> Self {
        RoutingDefaults {
            retry: RetryPolicy::default(),
            timeout_ms: 60_000,
            circuit_breaker: CircuitBreakerConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelGroupSpec {
    name: String,
    #[serde(default)]
    strategy: Strategy,
    #[serde(default)]
    retry: Option<RetryPolicy>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    circuit_breaker: Option<CircuitBreakerConfig>,
    targets: Vec<TargetConfig>,
}

/// A model name clients send, and the targets that serve it.
#[derive(Debug, Clone)]
pub struct ModelGroup {
    pub name: String,
    pub strategy: Strategy,
    pub retry: RetryPolicy,
    pub timeout_ms: u64,
    pub circuit_breaker: CircuitBreakerConfig,
    pub targets: Vec<TargetConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// A key of `providers`.
    pub provider: String,
    /// The model name the provider knows (for Azure, the deployment name).
    pub model: String,
    #[serde(default)]
    pub weight: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// A `tracing` filter directive, such as `info` or `tollgate_gateway=debug`.
    pub log_level: String,
    /// OTLP/HTTP endpoint (e.g. `http://127.0.0.1:4318`); traces are exported when set.
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
    /// When set, `/metrics` answers only requests bearing it (`Authorization: Bearer ...`):
    /// the metrics name every configured target and show the deployment's traffic.
    pub metrics_token: Option<Secret>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_level: "info".into(),
            otlp_endpoint: None,
            service_name: "tollgate".into(),
            metrics_token: None,
        }
    }
}

/// Where durable state lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Folder for the embedded database and other local state; created when missing.
    pub data_dir: std::path::PathBuf,
    /// `sqlite://FILE` or `postgres://...`; without it, `tollgate.db` in `data_dir`.
    pub database_url: Option<String>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: "data".into(),
            database_url: None,
        }
    }
}

impl StorageConfig {
    /// The database to open: the configured URL, or the embedded SQLite file.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("tollgate.db").display()
            ),
        }
    }
}

/// The usage pipeline: the local journal every gateway writes before an answer ends, and how
/// long the ledger keeps raw rows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageConfig {
    /// The journal's folder; `journal` in the data directory when absent. One process each.
    pub journal_dir: Option<std::path::PathBuf>,
    /// Flush the journal to the device before acknowledging (survives power loss, not just a
    /// crash of the process), at the cost of a disk flush per batch.
    pub sync: bool,
    /// The Redis stream through which gateways without the database ship usage.
    pub stream: String,
    pub retention: RetentionConfig,
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig {
            journal_dir: None,
            sync: false,
            stream: "tollgate:usage".into(),
            retention: RetentionConfig::default(),
        }
    }
}

impl UsageConfig {
    /// The journal's folder.
    pub fn effective_journal_dir(&self, storage: &StorageConfig) -> std::path::PathBuf {
        self.journal_dir
            .clone()
            .unwrap_or_else(|| storage.data_dir.join("journal"))
    }
}

/// How long the ledger keeps raw rows and hourly totals; daily totals are kept for ever.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    pub events_days: u32,
    pub hourly_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            events_days: 90,
            hourly_days: 90,
        }
    }
}

/// The response cache: off unless the deployment turns it on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// `off`, `exact` (identical requests) or `semantic` (also the same question reworded);
    /// a request may narrow it with `x-tollgate-cache`.
    pub mode: String,
    /// How long an answer is kept unless a request says otherwise (`x-tollgate-cache-ttl`).
    pub ttl_secs: u64,
    /// Cosine similarity a semantic match needs.
    pub similarity_threshold: f32,
    /// The most a semantic lookup may take before the request goes upstream.
    pub lookup_budget_ms: u64,
    /// Exact-tier entries kept in memory per process.
    pub exact_capacity: usize,
    /// Semantic entries per organization; the oldest are evicted beyond it.
    pub max_entries_per_org: u64,
    pub qdrant: QdrantConfig,
    pub embedder: EmbedderConfig,
    /// Where a separate cache service runs (`serve --only cache`); a gateway with it set asks
    /// that service instead of caching in its own process.
    pub service_url: Option<String>,
    /// Shared by the cache service and its gateways; required with `service_url` and by
    /// `serve --only cache`.
    pub service_token: Option<Secret>,
}

/// How the semantic tier turns questions into vectors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbedderConfig {
    /// `hashed` (built in, no model files), `sentence` (a local sentence-transformers model in
    /// `path`) or `provider` (an embeddings model group of this gateway's `models`).
    pub kind: String,
    /// The model's directory (`config.json`, `model.safetensors`, `tokenizer.json`), for
    /// `sentence`.
    pub path: Option<std::path::PathBuf>,
    /// The model group to call, for `provider` (e.g. `text-embedding-3-small`).
    pub model: Option<String>,
    /// The vectors' length, for `provider` (the store is created for it).
    pub dimensions: Option<usize>,
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        EmbedderConfig {
            kind: "hashed".into(),
            path: None,
            model: None,
            dimensions: None,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            mode: "off".into(),
            ttl_secs: 3600,
            similarity_threshold: 0.95,
            lookup_budget_ms: 50,
            exact_capacity: 10_000,
            max_entries_per_org: 100_000,
            qdrant: QdrantConfig::default(),
            embedder: EmbedderConfig::default(),
            service_url: None,
            service_token: None,
        }
    }
}

/// Where semantic-cache vectors live: a Qdrant server when `url` is set, else Qdrant embedded
/// in the process (in the data directory).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QdrantConfig {
    /// gRPC address, e.g. `http://127.0.0.1:6334`.
    pub url: Option<String>,
    pub api_key: Option<Secret>,
    pub collection: String,
}

impl Default for QdrantConfig {
    fn default() -> Self {
        QdrantConfig {
            url: None,
            api_key: None,
            collection: "tollgate_cache".into(),
        }
    }
}

fn validate_cache(cache: &CacheConfig, problems: &mut Vec<ConfigProblem>) {
    if !["off", "exact", "semantic"].contains(&cache.mode.as_str()) {
        problems.push(problem("cache.mode", "must be off, exact or semantic"));
    }
    if !(cache.similarity_threshold > 0.0 && cache.similarity_threshold <= 1.0) {
        problems.push(problem("cache.similarity_threshold", "must be in (0, 1]"));
    }
    for (field, value) in [
        ("cache.ttl_secs", cache.ttl_secs),
        ("cache.lookup_budget_ms", cache.lookup_budget_ms),
        ("cache.max_entries_per_org", cache.max_entries_per_org),
        ("cache.exact_capacity", cache.exact_capacity as u64),
    ] {
        if value == 0 {
            problems.push(problem(field, "must be greater than 0"));
        }
    }
    if cache.qdrant.collection.is_empty() {
        problems.push(problem("cache.qdrant.collection", "must not be empty"));
    }
    let embedder = &cache.embedder;
    match embedder.kind.as_str() {
        "hashed" => {}
        "sentence" => {
            if embedder.path.is_none() {
                problems.push(problem(
                    "cache.embedder.path",
                    "is required with kind: sentence (the model's directory)",
                ));
            }
        }
        "provider" => {
            if embedder.model.as_deref().is_none_or(str::is_empty) {
                problems.push(problem(
                    "cache.embedder.model",
                    "is required with kind: provider (an embeddings model group)",
                ));
            }
            if !embedder
                .dimensions
                .is_some_and(|d| (1..=16_384).contains(&d))
            {
                problems.push(problem(
                    "cache.embedder.dimensions",
                    "is required with kind: provider, from 1 to 16384",
                ));
            }
        }
        _ => problems.push(problem(
            "cache.embedder.kind",
            "must be hashed, sentence or provider",
        )),
    }
    if let Some(url) = &cache.service_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            problems.push(problem(
                "cache.service_url",
                "must be an http:// or https:// URL",
            ));
        }
        if cache.service_token.is_none() {
            problems.push(problem(
                "cache.service_token",
                "is required when cache.service_url is set",
            ));
        }
    }
}

/// Shared state between gateway replicas; everything stays in-process without it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port[/db]` or `rediss://...`.
    pub url: Option<String>,
}

/// Rate limits applied to every virtual key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Limits of keys that set none of their own.
    pub default: RateLimitPair,
    /// What to do while Redis is unreachable: `local` (count per process) or `reject` (503).
    pub on_redis_failure: RedisFailurePolicy,
    /// Output tokens that token-per-minute limits count for a request that sets no
    /// `max_tokens`; budgets reserve the model's maximum output instead, and this only for a
    /// model whose maximum the price catalog does not know.
    pub default_max_tokens: u64,
    /// The most requests per minute any organization, team or key may set.
    pub max_rpm: Option<u64>,
    /// The most tokens per minute any organization, team or key may set.
    pub max_tpm: Option<u64>,
    /// Tighter ceilings per plan, applied where billing is on.
    pub plans: PlanCeilings,
}

impl LimitsConfig {
    /// The ceiling for an organization with `facts`: the deployment's, lowered by its plan's
    /// where `billing_on`.
    pub fn ceiling(&self, facts: Option<&crate::BillingFacts>, billing_on: bool) -> Ceiling {
        let deployment = Ceiling {
            max_rpm: self.max_rpm,
            max_tpm: self.max_tpm,
        };
        match facts {
            Some(facts) if billing_on => deployment.and(self.plans.for_plan(facts)),
            _ => deployment,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            default: RateLimitPair {
                rpm: 600,
                tpm: 1_000_000,
            },
            on_redis_failure: RedisFailurePolicy::Local,
            default_max_tokens: 1024,
            max_rpm: None,
            max_tpm: None,
            plans: PlanCeilings::default(),
        }
    }
}

/// Requests and tokens per minute.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitPair {
    pub rpm: u64,
    pub tpm: u64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RedisFailurePolicy {
    #[default]
    Local,
    Reject,
}

/// Sign-up, sessions and virtual-key verification.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether `POST /auth/signup` is open to anyone.
    pub signup_enabled: bool,
    /// Lifetime of a JWT access token.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token (each use replaces it with a new one).
    pub refresh_token_ttl_secs: u64,
    /// How long a session lasts from its login, however often its refresh token is rotated;
    /// then the user logs in again.
    pub session_max_lifetime_secs: u64,
    /// The `iss` and `aud` of access tokens.
    pub issuer: String,
    /// HMAC keys for access tokens; the first signs, all verify, so that a key can be rotated
    /// by adding the new one first and removing the old one a token lifetime later. Without
    /// any, a key is generated once and kept in the database, shared by every replica.
    pub signing_keys: Vec<SigningKeyConfig>,
    /// How long a verified key is trusted from memory without asking storage again. With
    /// Redis, changes reach every replica at once and this is only a safety net.
    pub key_cache_ttl_secs: u64,
    /// How long a rotated key keeps working unless the rotation says otherwise.
    pub rotation_grace_secs: u64,
    pub login_throttle: LoginThrottleConfig,
    /// Sign-ups one client may make per window, successful ones included.
    pub signup_throttle: SignupThrottleConfig,
    /// Proxies (CIDRs) whose `X-Forwarded-For` names the client; from any other peer the
    /// header is ignored, since a client could write anything in it.
    pub trusted_proxies: Vec<IpNetwork>,
    /// The AES-256 key (32 bytes, base64) that the generated JWT signing key is encrypted
    /// with in the database. Without it that key is stored as is.
    pub encryption_key: Option<Secret>,
    /// How a sign-up proves its address.
    pub signup: SignupConfig,
    /// How mail is sent; without it, none is.
    pub mailer: Option<MailerConfig>,
    /// The dashboard's address, which links in mail point to (`https://tollgate.example.com`).
    pub public_url: Option<String>,
    /// A split deployment's auth service (`http://auth:8080`): keys are verified there over
    /// HTTP instead of in this process.
    pub service_url: Option<String>,
    /// Shared secret that the gateway presents to the auth service's internal endpoints.
    pub service_token: Option<Secret>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            signup_enabled: true,
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            session_max_lifetime_secs: 30 * 24 * 3600,
            issuer: "tollgate".into(),
            signing_keys: Vec::new(),
            key_cache_ttl_secs: 10,
            rotation_grace_secs: 24 * 3600,
            login_throttle: LoginThrottleConfig::default(),
            signup_throttle: SignupThrottleConfig::default(),
            trusted_proxies: Vec::new(),
            encryption_key: None,
            signup: SignupConfig::default(),
            mailer: None,
            public_url: None,
            service_url: None,
            service_token: None,
        }
    }
}

impl AuthConfig {
    /// Whether sign-ups wait for a mailed link: as configured, else whenever mail can be sent.
    pub fn verifies_signups(&self) -> bool {
        self.signup.verify_email.unwrap_or(self.mailer.is_some())
    }
}

/// Sign-up's address check.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignupConfig {
    /// Whether a sign-up waits for its address to be confirmed through a mailed link before
    /// the account exists (needs `auth.mailer`); sign-up then answers alike whether or not the
    /// address has an account. Unset, it is on when a mailer is configured: without mail an
    /// account can only be given at once, which means refusing a taken address.
    pub verify_email: Option<bool>,
}

/// One JWT signing key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyConfig {
    /// Key id, written in each token's header.
    pub kid: String,
    /// At least 32 bytes.
    pub secret: Secret,
}

/// Sign-ups allowed from one client (an IPv4 address or an IPv6 /64) per window, counting
/// those that made an account: every new organization gets the free allowance, so a client
/// making organizations by the hundred is the abuse, not one guessing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignupThrottleConfig {
    pub per_ip: u32,
    pub window_secs: u64,
}

impl Default for SignupThrottleConfig {
    fn default() -> Self {
        SignupThrottleConfig {
            per_ip: 10,
            window_secs: 3600,
        }
    }
}

/// Failed logins allowed per window before further attempts are refused. A client is an
/// IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginThrottleConfig {
    /// Failures on one account from one client.
    pub per_email_per_client: u32,
    /// Failures from one client, whatever the accounts.
    pub per_ip: u32,
    /// Failures on one account from all clients together: a ceiling on guessing from many
    /// addresses at once. Reaching it locks the account for everyone until the window ends,
    /// so it is kept far above `per_email_per_client`.
    pub per_email: u32,
    pub window_secs: u64,
}

impl Default for LoginThrottleConfig {
    fn default() -> Self {
        LoginThrottleConfig {
            per_email_per_client: 10,
            per_ip: 100,
            per_email: 1000,
            window_secs: 900,
        }
    }
}

/// One thing wrong with a configuration, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted path of the field, e.g. `models[0].targets[1].provider`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigProblem>),
}

impl ConfigError {
    /// The individual problems (empty for a read error).
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            ConfigError::Invalid(problems) => problems,
            ConfigError::Read { .. } => &[],
        }
    }
}

/// Where environment variables come from: the process, or a map in tests.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// `TOLLGATE_*` variables that override any config, file or default.
pub struct EnvOverrides;

impl EnvOverrides {
    fn apply(config: &mut Config, env: &dyn Env, problems: &mut Vec<ConfigProblem>) {
        if let Some(listen) = env.var("TOLLGATE_LISTEN") {
            match listen.parse() {
                Ok(addr) => config.server.listen = addr,
                Err(_) => problems.push(problem(
                    "TOLLGATE_LISTEN",
                    format!("`{listen}` is not an address such as 127.0.0.1:8080"),
                )),
            }
        }
        if let Some(level) = env.var("TOLLGATE_LOG") {
            config.telemetry.log_level = level;
        }
        if let Some(endpoint) = env.var("TOLLGATE_OTLP_ENDPOINT") {
            config.telemetry.otlp_endpoint = Some(endpoint);
        }
        if let Some(dir) = env.var("TOLLGATE_DATA_DIR") {
            config.storage.data_dir = dir.into();
        }
        if let Some(url) = env.var("TOLLGATE_DATABASE_URL") {
            config.storage.database_url = Some(url);
        }
        if let Some(url) = env.var("TOLLGATE_REDIS_URL") {
            config.redis.url = Some(url);
        }
        if let Some(limit) = env.var("TOLLGATE_SIGNUPS_PER_IP") {
            match limit.parse() {
                Ok(limit) => config.auth.signup_throttle.per_ip = limit,
                Err(_) => problems.push(problem(
                    "TOLLGATE_SIGNUPS_PER_IP",
                    format!("`{limit}` is not a whole number"),
                )),
            }
        }
        if let Some(token) = env.var("TOLLGATE_METRICS_TOKEN").filter(|t| !t.is_empty()) {
            config.telemetry.metrics_token = Some(Secret::new(token));
        }
    }
}

fn validate_storage(
    storage: &StorageConfig,
    redis: &RedisConfig,
    problems: &mut Vec<ConfigProblem>,
) {
    if let Some(url) = &storage.database_url
        && !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
    {
        problems.push(problem(
            "storage.database_url",
            "must start with sqlite:, postgres:// or postgresql://",
        ));
    }
    if storage.data_dir.as_os_str().is_empty() {
        problems.push(problem("storage.data_dir", "must not be empty"));
    }
    if let Some(url) = &redis.url
        && !url.starts_with("redis://")
        && !url.starts_with("rediss://")
    {
        problems.push(problem(
            "redis.url",
            "must start with redis:// or rediss://",
        ));
    }
}

fn validate_auth(auth: &AuthConfig, problems: &mut Vec<ConfigProblem>) {
    for (field, value) in [
        ("access_token_ttl_secs", auth.access_token_ttl_secs),
        ("refresh_token_ttl_secs", auth.refresh_token_ttl_secs),
        ("key_cache_ttl_secs", auth.key_cache_ttl_secs),
        (
            "login_throttle.window_secs",
            auth.login_throttle.window_secs,
        ),
        (
            "signup_throttle.window_secs",
            auth.signup_throttle.window_secs,
        ),
        (
            "signup_throttle.per_ip",
            u64::from(auth.signup_throttle.per_ip),
        ),
    ] {
        if value == 0 {
            problems.push(problem(format!("auth.{field}"), "must be greater than 0"));
        }
    }
    if auth.issuer.is_empty() {
        problems.push(problem("auth.issuer", "must not be empty"));
    }
    let mut kids = HashSet::new();
    for (i, key) in auth.signing_keys.iter().enumerate() {
        if key.kid.is_empty() || key.kid.len() > 64 {
            problems.push(problem(
                format!("auth.signing_keys[{i}].kid"),
                "must be 1 to 64 characters",
            ));
        } else if !kids.insert(key.kid.as_str()) {
            problems.push(problem(
                format!("auth.signing_keys[{i}].kid"),
                format!("`{}` is used twice", key.kid),
            ));
        }
        if key.secret.expose().len() < 32 {
            problems.push(problem(
                format!("auth.signing_keys[{i}].secret"),
                "must be at least 32 bytes",
            ));
        }
    }
    if let Some(url) = &auth.service_url
        && !is_http_url(url)
    {
        problems.push(problem(
            "auth.service_url",
            format!("`{url}` is not an http:// or https:// URL"),
        ));
    }
    if auth.service_url.is_some() && auth.service_token.is_none() {
        problems.push(problem(
            "auth.service_token",
            "is required when auth.service_url is set",
        ));
    }
    accounts::validate_accounts(auth, problems);
}

fn problem(path: impl Into<String>, message: impl Into<String>) -> ConfigProblem {
    ConfigProblem {
        path: path.into(),
        message: message.into(),
    }
}

impl Config {
    /// Reads, interpolates and validates the YAML file at `path`.
    pub fn load(path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, env)
    }

    /// The configuration used when no file is given: providers found in the usual environment
    /// variables, every one of them reachable as `provider/model`.
    pub fn from_env(env: &dyn Env) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut provider_specs = BTreeMap::new();
        let mut add = |name: &str, kind: ProviderKind, key_var: &str, base_var: &[&str]| {
            if let Some(key) = env.var(key_var) {
                let api_base = base_var
                    .iter()
                    .find_map(|v| env.var(v))
                    .or_else(|| kind.default_api_base().map(str::to_owned));
                provider_specs.insert(
                    name.to_owned(),
                    ProviderSpec {
                        kind,
                        api_base,
                        api_key: Some(Secret(key)),
                        api_version: env.var("AZURE_API_VERSION"),
                        headers: BTreeMap::new(),
                    },
                );
            }
        };
        add(
            "openai",
            ProviderKind::Openai,
            "OPENAI_API_KEY",
            &["OPENAI_BASE_URL", "OPENAI_API_BASE"],
        );
        add(
            "anthropic",
            ProviderKind::Anthropic,
            "ANTHROPIC_API_KEY",
            &["ANTHROPIC_BASE_URL"],
        );
        add(
            "gemini",
            ProviderKind::Gemini,
            "GEMINI_API_KEY",
            &["GEMINI_API_BASE", "GOOGLE_GEMINI_BASE_URL"],
        );
        if env.var("AZURE_API_BASE").is_some() {
            add(
                "azure",
                ProviderKind::Azure,
                "AZURE_API_KEY",
                &["AZURE_API_BASE"],
            );
        }
        // The Azure default version only applies to Azure.
        for (name, spec) in provider_specs.iter_mut() {
            if name != "azure" {
                spec.api_version = None;
            } else if spec.api_version.is_none() {
                spec.api_version = Some("2024-10-21".into());
            }
        }
        let mut problems = Vec::new();
        EnvOverrides::apply(&mut config, env, &mut problems);
        config.finish(provider_specs, Vec::new(), problems)
    }

    /// Parses and validates YAML text.
    pub fn parse(text: &str, env: &dyn Env) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut document: Value = match serde_yaml::from_str(text) {
            Ok(value) => value,
            Err(err) => return Err(ConfigError::Invalid(vec![problem("", err.to_string())])),
        };
        interpolate(&mut document, String::new(), env, &mut problems);

        let mut config = Config::default();
        let mut provider_specs = BTreeMap::new();
        let mut model_specs = Vec::new();
        let sections = match document {
            Value::Mapping(map) => map,
            Value::Null => serde_yaml::Mapping::new(),
            _ => {
                return Err(ConfigError::Invalid(vec![problem(
                    "",
                    "the configuration must be a mapping of sections",
                )]));
            }
        };
        for (key, value) in sections {
            let Some(section) = key.as_str() else {
                problems.push(problem("", "section names must be strings"));
                continue;
            };
            match section {
                "server" => read_into(value, section, &mut config.server, &mut problems),
                "routing" => read_into(value, section, &mut config.routing, &mut problems),
                "telemetry" => read_into(value, section, &mut config.telemetry, &mut problems),
                "prices" => read_into(value, section, &mut config.prices, &mut problems),
                "storage" => read_into(value, section, &mut config.storage, &mut problems),
                "redis" => read_into(value, section, &mut config.redis, &mut problems),
                "auth" => read_into(value, section, &mut config.auth, &mut problems),
                "limits" => read_into(value, section, &mut config.limits, &mut problems),
                "usage" => read_into(value, section, &mut config.usage, &mut problems),
                "cache" => read_into(value, section, &mut config.cache, &mut problems),
                "billing" => read_into(value, section, &mut config.billing, &mut problems),
                "admin" => read_into(value, section, &mut config.admin, &mut problems),
                "outbound" => read_into(value, section, &mut config.outbound, &mut problems),
                "providers" => match value {
                    Value::Mapping(entries) => {
                        for (name, entry) in entries {
                            let name = name.as_str().unwrap_or_default().to_owned();
                            let path = format!("providers.{name}");
                            if let Some(spec) = read::<ProviderSpec>(entry, &path, &mut problems) {
                                provider_specs.insert(name, spec);
                            }
                        }
                    }
                    Value::Null => {}
                    _ => problems.push(problem("providers", "expected a mapping of providers")),
                },
                "models" => match value {
                    Value::Sequence(entries) => {
                        for (i, entry) in entries.into_iter().enumerate() {
                            let path = format!("models[{i}]");
                            if let Some(spec) = read::<ModelGroupSpec>(entry, &path, &mut problems)
                            {
                                model_specs.push((i, spec));
                            }
                        }
                    }
                    Value::Null => {}
                    _ => problems.push(problem("models", "expected a list of model groups")),
                },
                other => problems.push(problem(
                    other,
                    "unknown section; expected one of server, providers, models, routing, prices, telemetry, storage, redis, auth, limits, usage, cache, billing, outbound, admin",
                )),
            }
        }
        EnvOverrides::apply(&mut config, env, &mut problems);
        config.finish(provider_specs, model_specs, problems)
    }

    /// Validates cross-references and fills each model group's defaults.
    fn finish(
        mut self,
        provider_specs: BTreeMap<String, ProviderSpec>,
        model_specs: Vec<(usize, ModelGroupSpec)>,
        mut problems: Vec<ConfigProblem>,
    ) -> Result<Config, ConfigError> {
        for (field, value) in [
            ("server.max_body_bytes", self.server.max_body_bytes as u64),
            (
                "server.max_admin_body_bytes",
                self.server.max_admin_body_bytes as u64,
            ),
            (
                "server.body_read_timeout_ms",
                self.server.body_read_timeout_ms,
            ),
            (
                "admin.mutations_per_minute",
                u64::from(self.admin.mutations_per_minute),
            ),
        ] {
            if value == 0 {
                problems.push(problem(field, "must be greater than 0"));
            }
        }
        if self.server.workers == Some(0) {
            problems.push(problem("server.workers", "must be at least 1"));
        }
        billing::validate_billing(&self.billing, &mut problems);
        validate_retry(&self.routing.retry, "routing.retry", &mut problems);
        validate_breaker(
            &self.routing.circuit_breaker,
            "routing.circuit_breaker",
            &mut problems,
        );
        if self.routing.timeout_ms == 0 {
            problems.push(problem("routing.timeout_ms", "must be greater than 0"));
        }
        if self
            .telemetry
            .metrics_token
            .as_ref()
            .is_some_and(|token| token.expose().len() < 16)
        {
            problems.push(problem(
                "telemetry.metrics_token",
                "must be at least 16 characters",
            ));
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && !is_http_url(endpoint)
        {
            problems.push(problem(
                "telemetry.otlp_endpoint",
                format!("`{endpoint}` is not an http:// or https:// URL"),
            ));
        }
        validate_storage(&self.storage, &self.redis, &mut problems);
        validate_auth(&self.auth, &mut problems);
        ceilings::validate_ceilings(
            self.limits.ceiling(None, false),
            &self.limits.plans,
            (self.limits.default.rpm, self.limits.default.tpm),
            &mut problems,
        );
        for (field, value) in [
            ("limits.default.rpm", self.limits.default.rpm),
            ("limits.default.tpm", self.limits.default.tpm),
            ("limits.default_max_tokens", self.limits.default_max_tokens),
            (
                "usage.retention.events_days",
                u64::from(self.usage.retention.events_days),
            ),
            (
                "usage.retention.hourly_days",
                u64::from(self.usage.retention.hourly_days),
            ),
        ] {
            if value == 0 {
                problems.push(problem(field, "must be greater than 0"));
            }
        }
        if self.usage.stream.is_empty() {
            problems.push(problem("usage.stream", "must not be empty"));
        }
        validate_cache(&self.cache, &mut problems);
        let provider_names: Vec<String> = provider_specs.keys().cloned().collect();
        for (name, spec) in provider_specs {
            if let Some(provider) = validate_provider(&name, spec, &mut problems) {
                self.providers.insert(name, provider);
            }
        }
        let mut seen_names = HashSet::new();
        for (i, spec) in model_specs {
            let path = format!("models[{i}]");
            if spec.name.is_empty() {
                problems.push(problem(format!("{path}.name"), "must not be empty"));
            } else if spec.name.contains('/') {
                problems.push(problem(
                    format!("{path}.name"),
                    "must not contain `/`: `provider/model` names are reserved for direct access",
                ));
            } else if !seen_names.insert(spec.name.clone()) {
                problems.push(problem(
                    format!("{path}.name"),
                    format!("`{}` is defined twice", spec.name),
                ));
            }
            if spec.targets.is_empty() {
                problems.push(problem(
                    format!("{path}.targets"),
                    "needs at least one target",
                ));
            }
            for (t, target) in spec.targets.iter().enumerate() {
                let tpath = format!("{path}.targets[{t}]");
                if !provider_names.contains(&target.provider) {
                    problems.push(problem(
                        format!("{tpath}.provider"),
                        format!(
                            "no provider named `{}` (configured: {})",
                            target.provider,
                            provider_names.join(", ")
                        ),
                    ));
                }
                if target.model.is_empty() {
                    problems.push(problem(format!("{tpath}.model"), "must not be empty"));
                }
                if target.weight == Some(0) {
                    problems.push(problem(format!("{tpath}.weight"), "must be at least 1"));
                }
            }
            if let Some(retry) = &spec.retry {
                validate_retry(retry, &format!("{path}.retry"), &mut problems);
            }
            if let Some(breaker) = &spec.circuit_breaker {
                validate_breaker(breaker, &format!("{path}.circuit_breaker"), &mut problems);
            }
            if spec.timeout_ms == Some(0) {
                problems.push(problem(
                    format!("{path}.timeout_ms"),
                    "must be greater than 0",
                ));
            }
            self.models.push(ModelGroup {
                name: spec.name,
                strategy: spec.strategy,
                retry: spec.retry.unwrap_or_else(|| self.routing.retry.clone()),
                timeout_ms: spec.timeout_ms.unwrap_or(self.routing.timeout_ms),
                circuit_breaker: spec
                    .circuit_breaker
                    .unwrap_or_else(|| self.routing.circuit_breaker.clone()),
                targets: spec.targets,
            });
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

/// Turns a provider as written into a validated one.
fn validate_provider(
    name: &str,
    spec: ProviderSpec,
    problems: &mut Vec<ConfigProblem>,
) -> Option<ProviderConfig> {
    let path = format!("providers.{name}");
    let before = problems.len();
    if name.is_empty() || name.contains('/') {
        problems.push(problem(
            &path,
            "provider names must be non-empty and must not contain `/`",
        ));
    }
    let api_base = spec
        .api_base
        .clone()
        .or_else(|| spec.kind.default_api_base().map(str::to_owned));
    match &api_base {
        None => problems.push(problem(
            format!("{path}.api_base"),
            format!(
                "required for kind `{}` (the resource URL, e.g. https://NAME.openai.azure.com)",
                spec.kind.as_str()
            ),
        )),
        Some(base) if !is_http_url(base) => problems.push(problem(
            format!("{path}.api_base"),
            format!("`{base}` is not an http:// or https:// URL"),
        )),
        Some(_) => {}
    }
    let is_custom_base = spec.api_base.is_some();
    if spec.api_key.as_ref().is_none_or(|k| k.0.is_empty()) {
        // OpenAI-compatible local servers (vLLM, Ollama) need no key; hosted ones do.
        if !(spec.kind == ProviderKind::Openai && is_custom_base) {
            problems.push(problem(
                format!("{path}.api_key"),
                format!("required for kind `{}`", spec.kind.as_str()),
            ));
        }
    }
    match (spec.kind, &spec.api_version) {
        (ProviderKind::Azure, None) => problems.push(problem(
            format!("{path}.api_version"),
            "required for kind `azure` (e.g. 2024-10-21)",
        )),
        (ProviderKind::Azure, Some(_)) | (_, None) => {}
        (ProviderKind::Anthropic, Some(_)) => {}
        (_, Some(_)) => problems.push(problem(
            format!("{path}.api_version"),
            format!(
                "only `azure` and `anthropic` providers take an api_version, not `{}`",
                spec.kind.as_str()
            ),
        )),
    }
    for header in spec.headers.keys() {
        if header.is_empty()
            || !header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            problems.push(problem(
                format!("{path}.headers"),
                format!("`{header}` is not a valid header name"),
            ));
        }
    }
    if problems.len() > before {
        return None;
    }
    Some(ProviderConfig {
        kind: spec.kind,
        api_base: api_base
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned(),
        api_key: spec.api_key,
        api_version: spec.api_version,
        headers: spec.headers,
    })
}

fn validate_retry(retry: &RetryPolicy, path: &str, problems: &mut Vec<ConfigProblem>) {
    if retry.attempts == 0 {
        problems.push(problem(
            format!("{path}.attempts"),
            "must be at least 1 (the first try counts)",
        ));
    }
    for status in &retry.on_status {
        if !(100..=599).contains(status) {
            problems.push(problem(
                format!("{path}.on_status"),
                format!("{status} is not an HTTP status"),
            ));
        }
    }
    if retry.max_backoff_ms < retry.backoff_ms {
        problems.push(problem(
            format!("{path}.max_backoff_ms"),
            "must not be smaller than backoff_ms",
        ));
    }
}

fn validate_breaker(breaker: &CircuitBreakerConfig, path: &str, problems: &mut Vec<ConfigProblem>) {
    if breaker.failures == 0 {
        problems.push(problem(format!("{path}.failures"), "must be at least 1"));
    }
    if breaker.window_ms == 0 {
        problems.push(problem(
            format!("{path}.window_ms"),
            "must be greater than 0",
        ));
    }
}

fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
}

/// Deserializes one section, reporting its problem with the full path.
fn read<T: DeserializeOwned>(
    value: Value,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(err) => {
            let inner = err.path().to_string();
            let full = if inner == "." {
                path.to_owned()
            } else if inner.starts_with('[') {
                format!("{path}{inner}")
            } else {
                format!("{path}.{inner}")
            };
            problems.push(problem(full, err.into_inner().to_string()));
            None
        }
    }
}

fn read_into<T: DeserializeOwned>(
    value: Value,
    path: &str,
    slot: &mut T,
    problems: &mut Vec<ConfigProblem>,
) {
    if value.is_null() {
        return;
    }
    if let Some(v) = read(value, path, problems) {
        *slot = v;
    }
}

/// Replaces `${VAR}` and `${VAR:-default}` in every string value; `$$` stands for `$`.
fn interpolate(value: &mut Value, path: String, env: &dyn Env, problems: &mut Vec<ConfigProblem>) {
    match value {
        Value::String(s) if s.contains('$') => match substitute(s, env) {
            Ok(out) => *s = out,
            Err(message) => problems.push(problem(path, message)),
        },
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = k.as_str().unwrap_or("?");
                let child = if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                };
                interpolate(v, child, env, problems);
            }
        }
        Value::Sequence(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                interpolate(v, format!("{path}[{i}]"), env, problems);
            }
        }
        _ => {}
    }
}

fn substitute(input: &str, env: &dyn Env) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(body) = rest.strip_prefix("${") {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in `{input}`"))?;
            let reference = &body[..end];
            let (name, default) = match reference.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (reference, None),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!(
                    "`${{{reference}}}` is not a valid variable reference"
                ));
            }
            match (env.var(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!("environment variable {name} is not set"));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const EXAMPLE: &str = r#"
server: { listen: "127.0.0.1:8080" }
providers:
  openai:    { kind: openai,    api_key: "${OPENAI_API_KEY}" }
  azure:     { kind: azure,     api_base: "https://x.openai.azure.com", api_key: "${AZURE_API_KEY}", api_version: "2024-10-21" }
  anthropic: { kind: anthropic, api_key: "${ANTHROPIC_API_KEY}" }
  gemini:    { kind: gemini,    api_key: "${GEMINI_API_KEY}" }
  local:     { kind: openai,    api_base: "http://127.0.0.1:8000/v1" }
models:
  - name: smart
    strategy: fallback
    retry: { attempts: 2, on_status: [429, 500, 502, 503, 504], backoff_ms: 200 }
    timeout_ms: 60000
    targets:
      - { provider: anthropic, model: claude-sonnet-4-20250514 }
      - { provider: openai, model: gpt-4o, weight: 30 }
"#;

    fn all_keys() -> BTreeMap<String, String> {
        env(&[
            ("OPENAI_API_KEY", "sk-o"),
            ("AZURE_API_KEY", "az"),
            ("ANTHROPIC_API_KEY", "sk-a"),
            ("GEMINI_API_KEY", "g"),
        ])
    }

    #[test]
    fn the_documented_example_parses() {
        let config = Config::parse(EXAMPLE, &all_keys()).unwrap();
        assert_eq!(config.providers.len(), 5);
        assert_eq!(
            config.providers["openai"].api_base,
            "https://api.openai.com/v1"
        );
        assert_eq!(
            config.providers["openai"]
                .api_key
                .as_ref()
                .unwrap()
                .expose(),
            "sk-o"
        );
        assert_eq!(
            config.providers["anthropic"].api_base,
            "https://api.anthropic.com"
        );
        assert!(config.providers["local"].api_key.is_none());
        let smart = &config.models[0];
        assert_eq!(smart.retry.attempts, 2);
        assert_eq!(
            smart.retry.max_backoff_ms, 5_000,
            "unset fields take defaults"
        );
        assert_eq!(smart.targets[1].weight, Some(30));
        assert_eq!(smart.circuit_breaker, CircuitBreakerConfig::default());
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let yaml = r#"
server: { listen: "127.0.0.1:8080", max_body_bytez: 10 }
providers:
  openai: { kind: openai, api_key: "${MISSING_KEY}" }
  azure:  { kind: azure, api_key: k }
  weird:  { kind: cohere }
models:
  - name: smart
    strategy: random
    targets: [ { provider: openai, model: gpt-4o } ]
  - name: other
    targets:
      - { provider: nobody, model: x }
      - { provider: openai, model: y, weight: 0 }
  - name: other
    targets: []
extra: true
"#;
        let err = Config::parse(yaml, &env(&[])).unwrap_err();
        let paths: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
        for expected in [
            "server.max_body_bytez",
            "providers.openai.api_key",
            "providers.azure.api_base",
            "providers.azure.api_version",
            "providers.weird.kind",
            "models[0].strategy",
            "models[1].targets[0].provider",
            "models[1].targets[1].weight",
            "models[2].name",
            "models[2].targets",
            "extra",
        ] {
            assert!(paths.contains(&expected), "{expected} not in {paths:?}");
        }
        let text = err.to_string();
        assert!(text.contains("MISSING_KEY is not set"), "{text}");
        assert!(text.contains("no provider named `nobody`"), "{text}");
    }

    #[test]
    fn interpolation_supports_defaults_and_escapes() {
        let e = env(&[("A", "1")]);
        assert_eq!(substitute("x${A}y", &e).unwrap(), "x1y");
        assert_eq!(substitute("${B:-fallback}", &e).unwrap(), "fallback");
        assert_eq!(substitute("$$5 and $x", &e).unwrap(), "$5 and $x");
        assert!(substitute("${B}", &e).unwrap_err().contains("B is not set"));
        assert!(substitute("${A", &e).is_err());
        assert!(substitute("${A-B}", &e).is_err());
    }

    #[test]
    fn environment_alone_gives_a_working_config() {
        let config = Config::from_env(&env(&[
            ("OPENAI_API_KEY", "sk-o"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9000/v1/"),
            ("GEMINI_API_KEY", "g"),
            ("TOLLGATE_LISTEN", "127.0.0.1:9999"),
        ]))
        .unwrap();
        assert_eq!(config.server.listen.port(), 9999);
        assert_eq!(
            config.providers["openai"].api_base,
            "http://127.0.0.1:9000/v1"
        );
        assert!(config.providers.contains_key("gemini"));
        assert!(!config.providers.contains_key("anthropic"));
        assert!(config.providers["openai"].api_version.is_none());
        assert!(config.models.is_empty());
    }

    #[test]
    fn secrets_never_print() {
        let config = Config::parse(EXAMPLE, &all_keys()).unwrap();
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("sk-o") && !debug.contains("sk-a"),
            "{debug}"
        );
    }

    #[test]
    fn cache_embedders_and_services_are_checked_field_by_field() {
        let paths = |yaml: &str| -> Vec<String> {
            match Config::parse(yaml, &env(&[])) {
                Ok(_) => Vec::new(),
                Err(err) => err.problems().iter().map(|p| p.path.clone()).collect(),
            }
        };
        assert_eq!(
            paths("cache: { embedder: { kind: provider }, service_url: ftp://x }"),
            [
                "cache.embedder.model",
                "cache.embedder.dimensions",
                "cache.service_url",
                "cache.service_token"
            ]
        );
        assert_eq!(
            paths("cache: { embedder: { kind: sentence } }"),
            ["cache.embedder.path"]
        );
        assert_eq!(
            paths("cache: { embedder: { kind: word2vec } }"),
            ["cache.embedder.kind"]
        );
        assert!(
            paths(
                "cache: { mode: semantic, embedder: { kind: provider, model: embed, dimensions: 1536 }, service_url: \"http://cache:8080\", service_token: t }"
            )
            .is_empty()
        );
    }

    #[test]
    fn body_limits_and_admin_settings_are_checked() {
        let config = Config::parse("", &env(&[])).unwrap();
        assert_eq!(config.server.max_admin_body_bytes, 1024 * 1024);
        assert_eq!(config.server.body_read_timeout_ms, 30_000);
        assert!(!config.admin.graphiql);
        assert_eq!(config.admin.mutations_per_minute, 60);
        let config = Config::parse(
            "server: { max_admin_body_bytes: 4096, body_read_timeout_ms: 500 }\nadmin: { graphiql: true, mutations_per_minute: 5 }",
            &env(&[]),
        )
        .unwrap();
        assert_eq!(
            crate::body::BodyLimits::admin(&config.server),
            crate::body::BodyLimits {
                max_bytes: 4096,
                read_timeout: std::time::Duration::from_millis(500)
            }
        );
        assert!(config.admin.graphiql);
        let err = Config::parse(
            "server: { max_body_bytes: 0, max_admin_body_bytes: 0, body_read_timeout_ms: 0 }\nadmin: { mutations_per_minute: 0, graphiql: yes_please }",
            &env(&[]),
        )
        .unwrap_err();
        let paths: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "admin.graphiql",
                "server.max_body_bytes",
                "server.max_admin_body_bytes",
                "server.body_read_timeout_ms",
            ]
        );
    }

    #[test]
    fn an_empty_file_is_a_valid_config() {
        let config = Config::parse("", &env(&[])).unwrap();
        assert_eq!(config.server.listen.port(), 8080);
    }
}
