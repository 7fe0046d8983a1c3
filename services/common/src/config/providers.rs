//! The `providers` section: the upstream accounts, each as written and once validated.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ConfigProblem, Secret, is_http_url, problem};

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

/// Turns a provider as written into a validated one.
pub(super) fn validate_provider(
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
