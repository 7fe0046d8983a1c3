//! The `providers` section: the upstream accounts, each as written and once validated.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::aws::{AwsCredentials, aws_credentials, aws_env, refuse_aws_fields};
use super::vertex::{self, VertexConfig};
use super::{ConfigProblem, Env, Secret, is_http_url, problem};

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI and every OpenAI-compatible server (vLLM, Ollama, Groq, Mistral, DeepSeek, ...).
    Openai,
    Azure,
    Anthropic,
    Gemini,
    /// AWS Bedrock's Converse API, signed with SigV4.
    Bedrock,
    /// Google Cloud's Vertex AI: Gemini and Anthropic's Claude models behind one Google Cloud
    /// project, with OAuth access tokens rather than API keys.
    Vertex,
    /// Mistral's own API (La Plateforme): close to OpenAI's, translated where it differs.
    Mistral,
    /// Cohere's v2 API (`/v2/chat`, `/v2/embed`).
    Cohere,
}

/// Whether a provider kind takes an `api_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    NotTaken,
    Optional,
    /// Required in configuration; `default` applies when configured from the environment.
    Required {
        default: &'static str,
    },
}

impl ApiVersion {
    /// The version used when none is configured, where the kind has one.
    pub fn default_version(self) -> Option<&'static str> {
        match self {
            ApiVersion::Required { default } => Some(default),
            ApiVersion::Optional | ApiVersion::NotTaken => None,
        }
    }
}

/// How a provider kind's requests prove who sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// An API key (`api_key`), sent in a header.
    ApiKey,
    /// AWS credentials (`aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`)
    /// signing each request with SigV4 for a `region`; the base URL follows from the region
    /// (`regional_api_base`, `{region}` replaced) unless `api_base` is set.
    AwsSigV4 {
        /// The service name signatures are scoped to.
        signing_name: &'static str,
        /// The commercial regions' URL; regions in China (`cn-*`, under `amazonaws.com.cn`)
        /// and private endpoints need `api_base` set.
        regional_api_base: &'static str,
    },
    /// Google Cloud OAuth access tokens, minted from a service-account key
    /// (`credentials_file`, `credentials_json`) and refreshed, or one static token in
    /// `api_key`; which of them is given is checked with the kind's other settings.
    GoogleServiceAccount,
}

/// The environment variables that configure a provider without a configuration file.
#[derive(Debug)]
pub struct ProviderEnv {
    /// Holds the API key: the provider is configured when it is set and a base URL is known.
    /// For `vertex`, the path of a service-account key file (see [`vertex::from_env`]).
    pub api_key: &'static str,
    /// Hold the base URL, the first one set winning over the kind's default.
    pub api_base: &'static [&'static str],
    /// Holds the `api_version`.
    pub api_version: Option<&'static str>,
}

/// What the platform knows of a provider kind, apart from its wire format.
#[derive(Debug)]
pub struct ProviderFacts {
    pub kind: ProviderKind,
    /// Its name in configuration (`kind: azure`) and in messages, and the provider's name when
    /// it is configured from the environment.
    pub name: &'static str,
    /// OpenTelemetry's `gen_ai.system` value.
    pub otel_system: &'static str,
    /// The base URL the provider's own SDK uses, when there is one.
    pub default_api_base: Option<&'static str>,
    pub api_version: ApiVersion,
    /// The price catalog family of the models it serves.
    pub catalog_family: &'static str,
    pub credentials: Credentials,
    /// Self-hosted servers speak it too (vLLM, Ollama): behind its own base URL such a provider
    /// may need no key, and it serves its own models rather than the family's.
    pub compatible_servers: bool,
    pub env: ProviderEnv,
}

/// One row per [`ProviderKind`], in the order of its variants.
pub const PROVIDERS: &[ProviderFacts] = &[
    ProviderFacts {
        kind: ProviderKind::Openai,
        name: "openai",
        otel_system: "openai",
        default_api_base: Some("https://api.openai.com/v1"),
        api_version: ApiVersion::NotTaken,
        catalog_family: "openai",
        credentials: Credentials::ApiKey,
        compatible_servers: true,
        env: ProviderEnv {
            api_key: "OPENAI_API_KEY",
            api_base: &["OPENAI_BASE_URL", "OPENAI_API_BASE"],
            api_version: None,
        },
    },
    ProviderFacts {
        kind: ProviderKind::Azure,
        name: "azure",
        otel_system: "az.ai.openai",
        default_api_base: None,
        api_version: ApiVersion::Required {
            default: "2024-10-21",
        },
        catalog_family: "openai",
        credentials: Credentials::ApiKey,
        compatible_servers: false,
        env: ProviderEnv {
            api_key: "AZURE_API_KEY",
            api_base: &["AZURE_API_BASE"],
            api_version: Some("AZURE_API_VERSION"),
        },
    },
    ProviderFacts {
        kind: ProviderKind::Anthropic,
        name: "anthropic",
        otel_system: "anthropic",
        default_api_base: Some("https://api.anthropic.com"),
        api_version: ApiVersion::Optional,
        catalog_family: "anthropic",
        credentials: Credentials::ApiKey,
        compatible_servers: false,
        env: ProviderEnv {
            api_key: "ANTHROPIC_API_KEY",
            api_base: &["ANTHROPIC_BASE_URL"],
            api_version: None,
        },
    },
    ProviderFacts {
        kind: ProviderKind::Gemini,
        name: "gemini",
        otel_system: "gcp.gemini",
        default_api_base: Some("https://generativelanguage.googleapis.com"),
        api_version: ApiVersion::NotTaken,
        catalog_family: "gemini",
        credentials: Credentials::ApiKey,
        compatible_servers: false,
        env: ProviderEnv {
            api_key: "GEMINI_API_KEY",
            api_base: &["GEMINI_API_BASE", "GOOGLE_GEMINI_BASE_URL"],
            api_version: None,
        },
    },
    ProviderFacts {
        kind: ProviderKind::Bedrock,
        name: "bedrock",
        otel_system: "aws.bedrock",
        // Per region: built from `region` through `regional_api_base`.
        default_api_base: None,
        api_version: ApiVersion::NotTaken,
        // Bedrock's model ids (`anthropic.claude-sonnet-4-5-20250929-v1:0`,
        // `us.amazon.nova-pro-v1:0`) and its regional prices are not the publishers' own, so
        // they have a family of their own, with no built-in prices: deployments price the
        // models they use under `prices:` (see `catalog::UNPRICED_FAMILIES`).
        catalog_family: "bedrock",
        credentials: Credentials::AwsSigV4 {
            signing_name: "bedrock",
            regional_api_base: "https://bedrock-runtime.{region}.amazonaws.com",
        },
        compatible_servers: false,
        env: ProviderEnv {
            // With a region (`AWS_REGION`), like the AWS CLI; the secret and session token are
            // read from their own variables (see [`aws_env`]).
            api_key: aws_env::ACCESS_KEY_ID,
            // The AWS SDKs' service-specific endpoint variable.
            api_base: &["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"],
            api_version: None,
        },
    },
    ProviderFacts {
        kind: ProviderKind::Vertex,
        name: "vertex",
        otel_system: "gcp.vertex_ai",
        // Regional: `https://{location}-aiplatform.googleapis.com`, derived from `location`.
        default_api_base: None,
        api_version: ApiVersion::NotTaken,
        // Vertex serves Gemini and Claude. The family only says which catalog models a
        // provider lists and which kind serves a bare model name first-hand (always a kind with
        // a default base URL, so never this one). Costs and budgets look prices up by the
        // target's model name, so `claude-sonnet-4@20250514` on Vertex is priced from its
        // `anthropic` entry and `gemini-2.5-flash` from its `gemini` one, whatever this says.
        catalog_family: "gemini",
        credentials: Credentials::GoogleServiceAccount,
        compatible_servers: false,
        env: ProviderEnv {
            api_key: "GOOGLE_APPLICATION_CREDENTIALS",
            api_base: &[],
            api_version: None,
        },
    },
    ProviderFacts {
        kind: ProviderKind::Mistral,
        name: "mistral",
        // OpenTelemetry's well-known value for Mistral AI.
        otel_system: "mistral_ai",
        default_api_base: Some("https://api.mistral.ai"),
        api_version: ApiVersion::NotTaken,
        catalog_family: "mistral",
        credentials: Credentials::ApiKey,
        // Servers that speak Mistral's format are OpenAI-compatible ones: kind `openai`.
        compatible_servers: false,
        env: ProviderEnv {
            api_key: "MISTRAL_API_KEY",
            api_base: &["MISTRAL_API_BASE"],
            api_version: None,
        },
    },
    ProviderFacts {
        kind: ProviderKind::Cohere,
        name: "cohere",
        otel_system: "cohere",
        default_api_base: Some("https://api.cohere.com"),
        api_version: ApiVersion::NotTaken,
        // No built-in prices yet (see `catalog::UNPRICED_FAMILIES`).
        catalog_family: "cohere",
        credentials: Credentials::ApiKey,
        compatible_servers: false,
        env: ProviderEnv {
            // The variables Cohere's own SDKs read; `COHERE_API_KEY`, which most guides and
            // frameworks use, is taken as well (see [`ProviderFacts::api_key_from`]).
            api_key: "CO_API_KEY",
            api_base: &["CO_API_URL"],
            api_version: None,
        },
    },
];

impl ProviderKind {
    /// This kind's row of [`PROVIDERS`].
    pub fn facts(self) -> &'static ProviderFacts {
        // The rows follow the variants' order, which a unit test holds to.
        &PROVIDERS[self as usize]
    }

    pub fn as_str(self) -> &'static str {
        self.facts().name
    }

    /// OpenTelemetry's `gen_ai.system` value for this provider.
    pub fn otel_system(self) -> &'static str {
        self.facts().otel_system
    }

    /// The base URL the provider's own SDK uses, when there is one.
    pub fn default_api_base(self) -> Option<&'static str> {
        self.facts().default_api_base
    }

    /// The kind whose own API serves a price catalog family's models.
    pub fn of_catalog_family(family: &str) -> Option<ProviderKind> {
        PROVIDERS
            .iter()
            .find(|p| p.catalog_family == family && p.serves_its_family_first_hand())
            .map(|p| p.kind)
    }
}

impl ProviderFacts {
    /// The API key from the environment: [`ProviderEnv::api_key`], else another name the
    /// provider's users commonly set instead (Cohere's SDKs read `CO_API_KEY`, most guides say
    /// `COHERE_API_KEY`).
    pub fn api_key_from(&self, env: &dyn Env) -> Option<String> {
        let also: &[&str] = match self.kind {
            ProviderKind::Cohere => &["COHERE_API_KEY"],
            _ => &[],
        };
        std::iter::once(self.env.api_key)
            .chain(also.iter().copied())
            .find_map(|name| env.var(name))
    }

    /// Whether the kind is its catalog family's own API, at a URL known without configuration
    /// (a fixed base URL, or one per region), rather than a host of another's models (Azure).
    pub fn serves_its_family_first_hand(&self) -> bool {
        self.default_api_base.is_some() || matches!(self.credentials, Credentials::AwsSigV4 { .. })
    }
}

/// The variables that configure a provider from the environment alone, as a sentence's list:
/// `OPENAI_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY`. Kinds that also need a base URL
/// (Azure) are left out.
pub fn api_key_variables() -> String {
    let vars: Vec<&str> = PROVIDERS
        .iter()
        .filter(|p| p.default_api_base.is_some())
        .map(|p| p.env.api_key)
        .collect();
    listed(&vars, "or")
}

/// `a, b <conjunction> c`.
pub(super) fn listed<T: AsRef<str>>(items: &[T], conjunction: &str) -> String {
    match items.split_last() {
        Some((last, [])) => last.as_ref().to_owned(),
        Some((last, rest)) => {
            let rest: Vec<&str> = rest.iter().map(AsRef::as_ref).collect();
            format!("{} {conjunction} {}", rest.join(", "), last.as_ref())
        }
        None => String::new(),
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
    /// `openai` only: whether the server serves OpenAI's Responses API (`/v1/responses`), so
    /// that a client of that API is forwarded to it rather than translated to chat and back.
    /// Left out, true for OpenAI's own base URL only: most compatible servers lack the API.
    #[serde(default)]
    pub responses_api: Option<bool>,
    /// Extra headers sent with every upstream request (e.g. `OpenAI-Organization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// OpenAI-format kinds only: whether a stream is sent with
    /// `stream_options.include_usage` so that it reports its usage (default true). False for
    /// servers that refuse the argument; their streams are then counted by the tokenizer.
    #[serde(default)]
    pub stream_usage: Option<bool>,
    /// SigV4 kinds (Bedrock) only: the AWS region, and the credentials signing requests. Left
    /// out, they come from the standard AWS environment variables ([`aws_env`]); the key id,
    /// secret and session token come as one set, all from here or all from the environment.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub aws_access_key_id: Option<String>,
    #[serde(default)]
    pub aws_secret_access_key: Option<Secret>,
    #[serde(default)]
    pub aws_session_token: Option<Secret>,
    /// Vertex AI: the Google Cloud project.
    #[serde(default)]
    pub project: Option<String>,
    /// Vertex AI: the region (`us-central1`, ...) or `global`.
    #[serde(default)]
    pub location: Option<String>,
    /// Vertex AI: the path of a service-account key file (JSON).
    #[serde(default)]
    pub credentials_file: Option<String>,
    /// Vertex AI: a service-account key's JSON text.
    #[serde(default)]
    pub credentials_json: Option<Secret>,
    /// Vertex AI: where access tokens are requested, instead of the key's `token_uri`.
    #[serde(default)]
    pub token_url: Option<String>,
}

impl ProviderSpec {
    /// A provider of `kind` with nothing else set.
    pub fn of_kind(kind: ProviderKind) -> ProviderSpec {
        ProviderSpec {
            kind,
            api_base: None,
            api_key: None,
            api_version: None,
            responses_api: None,
            headers: BTreeMap::new(),
            stream_usage: None,
            region: None,
            aws_access_key_id: None,
            aws_secret_access_key: None,
            aws_session_token: None,
            project: None,
            location: None,
            credentials_file: None,
            credentials_json: None,
            token_url: None,
        }
    }
}

/// A provider after validation: its base URL is known and has no trailing slash.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    pub api_base: String,
    pub api_key: Option<Secret>,
    pub api_version: Option<String>,
    /// Whether a Responses API client is forwarded to this provider's `/responses` (kind
    /// `openai` only; see [`ProviderSpec::responses_api`]).
    pub responses_api: bool,
    pub headers: BTreeMap<String, String>,
    /// Whether streams ask for their usage (`stream_options.include_usage`); OpenAI-format
    /// kinds only, true for the others.
    pub stream_usage: bool,
    /// The region and credentials of a SigV4 kind; `None` for the others.
    pub aws: Option<AwsCredentials>,
    /// Set for kind `vertex` only.
    pub vertex: Option<VertexConfig>,
}

/// Turns a provider as written into a validated one; `env` supplies what a SigV4 kind leaves
/// to the standard AWS variables.
pub(super) fn validate_provider(
    name: &str,
    spec: ProviderSpec,
    env: &dyn Env,
    problems: &mut Vec<ConfigProblem>,
) -> Option<ProviderConfig> {
    let path = format!("providers.{name}");
    let facts = spec.kind.facts();
    let before = problems.len();
    if name.is_empty() || name.contains('/') {
        problems.push(problem(
            &path,
            "provider names must be non-empty and must not contain `/`",
        ));
    }
    let aws = match facts.credentials {
        Credentials::ApiKey | Credentials::GoogleServiceAccount => {
            refuse_aws_fields(&path, &spec, facts.name, problems);
            None
        }
        Credentials::AwsSigV4 { .. } => aws_credentials(&path, &spec, env, problems),
    };
    let vertex = vertex::validate(&path, &spec, problems);
    let api_base = spec
        .api_base
        .clone()
        .or_else(|| spec.kind.default_api_base().map(str::to_owned))
        .or_else(|| match (facts.credentials, &aws) {
            (
                Credentials::AwsSigV4 {
                    regional_api_base, ..
                },
                Some(aws),
            ) => Some(regional_api_base.replace("{region}", &aws.region)),
            _ => None,
        })
        .or_else(|| vertex.as_ref().map(VertexConfig::default_api_base));
    match &api_base {
        // A SigV4 kind without a region has had that reported: its base URL follows from it.
        None if matches!(facts.credentials, Credentials::AwsSigV4 { .. }) => {}
        // Vertex derives its base URL from `location`, whose problem is reported already.
        None if spec.kind == ProviderKind::Vertex => {}
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
    match facts.credentials {
        // OpenAI-compatible local servers (vLLM, Ollama) need no key; hosted ones do.
        Credentials::ApiKey
            if spec.api_key.as_ref().is_none_or(|k| k.0.is_empty())
                && !(facts.compatible_servers && is_custom_base) =>
        {
            problems.push(problem(
                format!("{path}.api_key"),
                format!("required for kind `{}`", spec.kind.as_str()),
            ));
        }
        Credentials::AwsSigV4 { .. } if spec.api_key.is_some() => problems.push(problem(
            format!("{path}.api_key"),
            format!(
                "kind `{}` signs requests with AWS credentials: set aws_access_key_id and \
                 aws_secret_access_key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) instead",
                facts.name
            ),
        )),
        _ => {}
    }
    match (facts.api_version, &spec.api_version) {
        (ApiVersion::Required { default }, None) => problems.push(problem(
            format!("{path}.api_version"),
            format!("required for kind `{}` (e.g. {default})", facts.name),
        )),
        (ApiVersion::NotTaken, Some(_)) => {
            let versioned: Vec<String> = PROVIDERS
                .iter()
                .filter(|p| p.api_version != ApiVersion::NotTaken)
                .map(|p| format!("`{}`", p.name))
                .collect();
            problems.push(problem(
                format!("{path}.api_version"),
                format!(
                    "only {} providers take an api_version, not `{}`",
                    listed(&versioned, "and"),
                    facts.name
                ),
            ));
        }
        _ => {}
    }
    if spec.responses_api.is_some() && spec.kind != ProviderKind::Openai {
        problems.push(problem(
            format!("{path}.responses_api"),
            format!(
                "only `openai` providers take responses_api, not `{}`",
                facts.name
            ),
        ));
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
    if spec.stream_usage.is_some()
        && !matches!(spec.kind, ProviderKind::Openai | ProviderKind::Azure)
    {
        problems.push(problem(
            format!("{path}.stream_usage"),
            format!(
                "only `openai` and `azure` providers take stream_usage (OpenAI's \
                 `stream_options`), not `{}`",
                facts.name
            ),
        ));
    }
    if problems.len() > before {
        return None;
    }
    let api_base = api_base
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    // OpenAI serves the Responses API; the compatible servers behind other base URLs mostly
    // do not, and a request forwarded there would fail rather than be translated.
    let responses_api = spec.kind == ProviderKind::Openai
        && spec
            .responses_api
            .unwrap_or_else(|| Some(api_base.as_str()) == spec.kind.default_api_base());
    Some(ProviderConfig {
        kind: spec.kind,
        api_base,
        api_key: spec.api_key,
        api_version: spec.api_version,
        responses_api,
        headers: spec.headers,
        stream_usage: spec.stream_usage.unwrap_or(true),
        aws,
        vertex,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The variant after `kind`, in declaration order. A match, so that a new variant does not
    /// compile until it is listed here too.
    fn next(kind: ProviderKind) -> Option<ProviderKind> {
        match kind {
            ProviderKind::Openai => Some(ProviderKind::Azure),
            ProviderKind::Azure => Some(ProviderKind::Anthropic),
            ProviderKind::Anthropic => Some(ProviderKind::Gemini),
            ProviderKind::Gemini => Some(ProviderKind::Bedrock),
            ProviderKind::Bedrock => Some(ProviderKind::Vertex),
            ProviderKind::Vertex => Some(ProviderKind::Mistral),
            ProviderKind::Mistral => Some(ProviderKind::Cohere),
            ProviderKind::Cohere => None,
        }
    }

    #[test]
    fn the_table_has_one_row_per_kind_in_order_with_unique_names() {
        let variants: Vec<ProviderKind> =
            std::iter::successors(Some(ProviderKind::Openai), |k| next(*k)).collect();
        let rows: Vec<ProviderKind> = PROVIDERS.iter().map(|p| p.kind).collect();
        assert_eq!(rows, variants);
        for kind in variants {
            assert_eq!(kind.facts().kind, kind);
        }
        let names: HashSet<&str> = PROVIDERS.iter().map(|p| p.name).collect();
        assert_eq!(names.len(), PROVIDERS.len());
        let env_keys: HashSet<&str> = PROVIDERS.iter().map(|p| p.env.api_key).collect();
        assert_eq!(env_keys.len(), PROVIDERS.len());
    }

    #[test]
    fn each_name_is_the_kind_configuration_spells() {
        for facts in PROVIDERS {
            let parsed: ProviderKind = serde_yaml::from_str(facts.name).unwrap();
            assert_eq!(parsed, facts.kind, "{}", facts.name);
        }
    }

    #[test]
    fn each_catalog_family_has_one_kind_serving_it_first_hand() {
        for facts in PROVIDERS {
            let kind = ProviderKind::of_catalog_family(facts.catalog_family);
            assert!(kind.is_some(), "{}", facts.catalog_family);
            let first_hand = PROVIDERS
                .iter()
                .filter(|p| p.catalog_family == facts.catalog_family)
                .filter(|p| p.serves_its_family_first_hand())
                .count();
            assert_eq!(first_hand, 1, "{}", facts.catalog_family);
        }
        assert_eq!(ProviderKind::of_catalog_family("deepseek"), None);
        assert_eq!(
            ProviderKind::of_catalog_family("mistral"),
            Some(ProviderKind::Mistral)
        );
        // Azure hosts OpenAI's models; Bedrock is the only API of its own family.
        assert_eq!(
            ProviderKind::of_catalog_family("openai"),
            Some(ProviderKind::Openai)
        );
        assert_eq!(
            ProviderKind::of_catalog_family("bedrock"),
            Some(ProviderKind::Bedrock)
        );
    }

    #[test]
    fn api_version_problems_name_the_kinds_that_take_one() {
        let spec = |kind, api_version: Option<&str>| ProviderSpec {
            api_base: Some("https://x.example".into()),
            api_key: Some(Secret("k".into())),
            api_version: api_version.map(str::to_owned),
            ..ProviderSpec::of_kind(kind)
        };
        let mut problems = Vec::new();
        let env = BTreeMap::<String, String>::new();
        validate_provider(
            "g",
            spec(ProviderKind::Gemini, Some("v1")),
            &env,
            &mut problems,
        );
        validate_provider("z", spec(ProviderKind::Azure, None), &env, &mut problems);
        validate_provider(
            "a",
            spec(ProviderKind::Anthropic, Some("2023-06-01")),
            &env,
            &mut problems,
        );
        let messages: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.path.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(
            messages,
            [
                (
                    "providers.g.api_version",
                    "only `azure` and `anthropic` providers take an api_version, not `gemini`"
                ),
                (
                    "providers.z.api_version",
                    "required for kind `azure` (e.g. 2024-10-21)"
                ),
            ]
        );
    }

    #[test]
    fn stream_usage_is_an_openai_format_option_on_by_default() {
        let spec = |kind, stream_usage| ProviderSpec {
            api_base: Some("https://x.example".into()),
            api_key: Some(Secret("k".into())),
            api_version: (kind == ProviderKind::Azure).then(|| "2024-10-21".into()),
            stream_usage,
            ..ProviderSpec::of_kind(kind)
        };
        let env = BTreeMap::<String, String>::new();
        let mut problems = Vec::new();
        let on = validate_provider("o", spec(ProviderKind::Openai, None), &env, &mut problems);
        assert!(on.unwrap().stream_usage);
        let off = validate_provider(
            "z",
            spec(ProviderKind::Azure, Some(false)),
            &env,
            &mut problems,
        );
        assert!(!off.unwrap().stream_usage);
        assert!(problems.is_empty());
        let refused = validate_provider(
            "a",
            spec(ProviderKind::Anthropic, Some(false)),
            &env,
            &mut problems,
        );
        assert!(refused.is_none());
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "providers.a.stream_usage");
        assert!(
            problems[0].message.contains("not `anthropic`"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn responses_api_defaults_to_openais_own_base_and_is_taken_by_openai_only() {
        let env = BTreeMap::<String, String>::new();
        let validated = |spec: ProviderSpec, problems: &mut Vec<ConfigProblem>| {
            validate_provider("p", spec, &env, problems).map(|p| p.responses_api)
        };
        let openai = |api_base: Option<&str>, responses_api| ProviderSpec {
            api_base: api_base.map(str::to_owned),
            api_key: Some(Secret("k".into())),
            responses_api,
            ..ProviderSpec::of_kind(ProviderKind::Openai)
        };
        let mut problems = Vec::new();
        assert_eq!(validated(openai(None, None), &mut problems), Some(true));
        assert_eq!(
            validated(
                openai(Some("https://api.openai.com/v1/"), None),
                &mut problems
            ),
            Some(true)
        );
        assert_eq!(
            validated(openai(Some("http://vllm:8000/v1"), None), &mut problems),
            Some(false)
        );
        assert_eq!(
            validated(
                openai(Some("http://vllm:8000/v1"), Some(true)),
                &mut problems
            ),
            Some(true)
        );
        assert_eq!(
            validated(openai(None, Some(false)), &mut problems),
            Some(false)
        );
        assert!(problems.is_empty(), "{problems:?}");

        let anthropic = ProviderSpec {
            api_key: Some(Secret("k".into())),
            responses_api: Some(false),
            ..ProviderSpec::of_kind(ProviderKind::Anthropic)
        };
        assert_eq!(validated(anthropic, &mut problems), None);
        let messages: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.path.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(
            messages,
            [(
                "providers.p.responses_api",
                "only `openai` providers take responses_api, not `anthropic`"
            )]
        );
    }

    #[test]
    fn cohere_takes_its_key_from_either_variable_its_sdks_first() {
        let facts = ProviderKind::Cohere.facts();
        let mut env = BTreeMap::<String, String>::new();
        assert_eq!(facts.api_key_from(&env), None);
        env.insert("COHERE_API_KEY".into(), "b".into());
        assert_eq!(facts.api_key_from(&env).as_deref(), Some("b"));
        env.insert("CO_API_KEY".into(), "a".into());
        assert_eq!(facts.api_key_from(&env).as_deref(), Some("a"));
        // Only Cohere reads a second name.
        assert_eq!(ProviderKind::Mistral.facts().api_key_from(&env), None);
    }

    #[test]
    fn the_key_variables_read_as_a_sentence() {
        assert_eq!(
            api_key_variables(),
            "OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, MISTRAL_API_KEY or CO_API_KEY"
        );
        assert_eq!(listed(&["a"], "and"), "a");
        assert_eq!(listed(&["a", "b"], "and"), "a and b");
        let none: [&str; 0] = [];
        assert_eq!(listed(&none, "or"), "");
    }
}
