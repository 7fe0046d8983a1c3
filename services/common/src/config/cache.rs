//! The `cache` section: the response cache's tiers, its vector store and its embedder.

use serde::Deserialize;

use super::{ConfigProblem, Secret, problem};

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

pub(super) fn validate_cache(cache: &CacheConfig, problems: &mut Vec<ConfigProblem>) {
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

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::config::tests::env;

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
}
