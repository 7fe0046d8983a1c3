//! Tollgate's configuration: YAML with `${ENV_VAR}` interpolation, parsed into typed structs and
//! validated before anything starts.
//!
//! Loading happens in three steps so that one run reports every problem, each with its field's
//! path: the YAML is read as a document, `${...}` references are resolved in string values, then
//! every section (and every provider and model entry) is deserialized on its own with unknown
//! fields refused, and finally the cross-references are checked. Environment variables under
//! `TOLLGATE_` override the file (see [`EnvOverrides`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::Value;

use crate::catalog::ModelPrice;

mod admin;
mod auth;
mod aws;
mod billing;
mod cache;
mod ceilings;
mod guardrails;
mod limits;
mod outbound;
mod providers;
mod redis;
mod routing;
mod server;
mod storage;
mod telemetry;
mod usage;
mod vertex;

pub use crate::network::IpNetwork;
pub use admin::AdminConfig;
pub use auth::{
    AuthConfig, LoginThrottleConfig, MailerConfig, SigningKeyConfig, SignupConfig,
    SignupThrottleConfig,
};
pub use aws::{AwsCredentials, aws_env};
pub use billing::{BillingConfig, ByokFees, FreeTier, PayAsYouGo, SellPrice, StripeConfig};
pub use cache::{CacheConfig, EmbedderConfig, QdrantConfig};
pub use ceilings::{Ceiling, PlanCeilings};
pub use guardrails::{ConfiguredPolicy, GuardrailsConfig};
pub use limits::{LimitsConfig, RateLimitPair, RedisFailurePolicy};
pub use outbound::OutboundConfig;
pub use providers::{
    ApiVersion, Credentials, PROVIDERS, ProviderConfig, ProviderEnv, ProviderFacts, ProviderKind,
    ProviderSpec, api_key_variables,
};
pub use redis::RedisConfig;
pub use routing::{
    CircuitBreakerConfig, ModelGroup, RetryPolicy, RoutingDefaults, Strategy, TargetConfig,
};
pub use server::ServerConfig;
pub use storage::StorageConfig;
pub use telemetry::TelemetryConfig;
pub use usage::{RetentionConfig, UsageConfig};
pub use vertex::{DEFAULT_TOKEN_URL, ServiceAccountKey, VertexConfig, parse_service_account_key};

use routing::ModelGroupSpec;

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
    pub guardrails: GuardrailsConfig,
    pub billing: BillingConfig,
    pub outbound: OutboundConfig,
    pub admin: AdminConfig,
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
        for facts in PROVIDERS {
            // Vertex takes a key file, a project and a location rather than an API key.
            if facts.kind == ProviderKind::Vertex {
                if let Some(spec) = vertex::from_env(env) {
                    provider_specs.insert(facts.name.to_owned(), spec);
                }
                continue;
            }
            let Some(key) = facts.api_key_from(env) else {
                continue;
            };
            let api_base = facts.env.api_base.iter().find_map(|v| env.var(v));
            let spec = match facts.credentials {
                Credentials::ApiKey => {
                    // A kind without a default base URL (Azure) is configured only where one
                    // is set.
                    let Some(api_base) =
                        api_base.or_else(|| facts.default_api_base.map(str::to_owned))
                    else {
                        continue;
                    };
                    let api_version = facts
                        .env
                        .api_version
                        .and_then(|v| env.var(v))
                        .or_else(|| facts.api_version.default_version().map(str::to_owned));
                    ProviderSpec {
                        api_base: Some(api_base),
                        api_key: Some(Secret(key)),
                        api_version,
                        ..ProviderSpec::of_kind(facts.kind)
                    }
                }
                // AWS credentials are often in the environment for other tools; they configure
                // Bedrock only together with a region, the way the AWS CLI needs one. The
                // secret and session token are read from their variables by validation.
                // Read by `vertex::from_env` above.
                Credentials::GoogleServiceAccount => continue,
                Credentials::AwsSigV4 { .. } => {
                    if !aws_env::REGION.iter().any(|v| env.var(v).is_some()) {
                        continue;
                    }
                    ProviderSpec {
                        api_base,
                        ..ProviderSpec::of_kind(facts.kind)
                    }
                }
            };
            provider_specs.insert(facts.name.to_owned(), spec);
        }
        let mut problems = Vec::new();
        EnvOverrides::apply(&mut config, env, &mut problems);
        config.finish(provider_specs, Vec::new(), env, problems)
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
                "guardrails" => {
                    read_into(value, section, &mut config.guardrails, &mut problems)
                }
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
                    "unknown section; expected one of server, providers, models, routing, prices, telemetry, storage, redis, auth, limits, usage, cache, guardrails, billing, outbound, admin",
                )),
            }
        }
        EnvOverrides::apply(&mut config, env, &mut problems);
        config.finish(provider_specs, model_specs, env, problems)
    }

    /// Validates each section and the cross-references, and fills each model group's
    /// defaults.
    fn finish(
        mut self,
        provider_specs: BTreeMap<String, ProviderSpec>,
        model_specs: Vec<(usize, ModelGroupSpec)>,
        env: &dyn Env,
        mut problems: Vec<ConfigProblem>,
    ) -> Result<Config, ConfigError> {
        server::validate_server(&self.server, &mut problems);
        admin::validate_admin(&self.admin, &mut problems);
        billing::validate_billing(&self.billing, &mut problems);
        routing::validate_routing(&self.routing, &mut problems);
        telemetry::validate_telemetry(&self.telemetry, &mut problems);
        storage::validate_storage(&self.storage, &mut problems);
        redis::validate_redis(&self.redis, &mut problems);
        auth::validate_auth(&self.auth, &mut problems);
        limits::validate_limits(&self.limits, &mut problems);
        usage::validate_usage(&self.usage, &mut problems);
        cache::validate_cache(&self.cache, &mut problems);
        guardrails::validate_guardrails(&self.guardrails, &mut problems);
        let provider_names: Vec<String> = provider_specs.keys().cloned().collect();
        for (name, spec) in provider_specs {
            if let Some(provider) = providers::validate_provider(&name, spec, env, &mut problems) {
                self.providers.insert(name, provider);
            }
        }
        let groups =
            routing::model_groups(model_specs, &provider_names, &self.routing, &mut problems);
        self.models.extend(groups);
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError::Invalid(problems))
        }
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

    pub(super) fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
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
  weird:  { kind: watsonx }
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
    fn aws_variables_configure_bedrock_only_with_a_region() {
        let aws = [
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            ),
        ];
        let config = Config::from_env(&env(&aws)).unwrap();
        assert!(config.providers.is_empty(), "no region, no Bedrock");

        let mut with_region = aws.to_vec();
        with_region.push(("AWS_REGION", "us-west-2"));
        let config = Config::from_env(&env(&with_region)).unwrap();
        let bedrock = &config.providers["bedrock"];
        assert_eq!(bedrock.kind, ProviderKind::Bedrock);
        assert_eq!(
            bedrock.api_base,
            "https://bedrock-runtime.us-west-2.amazonaws.com"
        );
        assert_eq!(bedrock.aws.as_ref().unwrap().access_key_id, "AKIDEXAMPLE");

        with_region.push(("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "http://127.0.0.1:4566"));
        let config = Config::from_env(&env(&with_region)).unwrap();
        assert_eq!(
            config.providers["bedrock"].api_base,
            "http://127.0.0.1:4566"
        );

        // A key id without its secret is a mistake, and said so.
        let err = Config::from_env(&env(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_REGION", "us-west-2"),
        ]))
        .unwrap_err();
        assert_eq!(
            err.problems()[0].path,
            "providers.bedrock.aws_secret_access_key"
        );
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
