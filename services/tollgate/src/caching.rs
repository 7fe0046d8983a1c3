//! The gateway's cache stage backed by the cache service: turns a request into the cache's
//! terms (exact key, partition, question), applies the per-request controls, and says on the
//! answer what happened (`x-tollgate-cache: hit-exact | hit-semantic | miss | bypass`).

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{CACHE_CONTROL, HeaderMap, HeaderName, HeaderValue};
use anyhow::Context;
use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::ConnectionManager;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tollgate_cache::embedder::{Embedder, HashedEmbedder, SentenceEmbedder};
use tollgate_cache::remote::RemoteCache;
use tollgate_cache::shared::SharedExactTier;
use tollgate_cache::store::{EmbeddedStore, ServerStore, ServerStoreConfig, VectorStore};
use tollgate_cache::{
    AnswerCache, CacheHit, CacheMode, CacheRequest, CacheSettings, SemanticCache,
};
use tollgate_common::PriceCatalog;
use tollgate_gateway::routing::Router;

use crate::embedding::RoutedEmbedder;
use tollgate_common::config::CacheConfig;
use tollgate_common::{CachePolicy, CachePolicyMode, CacheShare, Config};
use tollgate_gateway::GatewayError;
use tollgate_gateway::openai::{Endpoint, InboundBody};
use tollgate_gateway::pipeline::{CachedAnswer, RequestContext, ResponseCache};

const X_TOLLGATE_CACHE: HeaderName = HeaderName::from_static("x-tollgate-cache");
const X_TOLLGATE_CACHE_TTL: &str = "x-tollgate-cache-ttl";
const X_TOLLGATE_CACHE_SIMILARITY: HeaderName =
    HeaderName::from_static("x-tollgate-cache-similarity");

/// The longest TTL a request may ask for: thirty days.
const MAX_TTL_SECS: u64 = CachePolicy::MAX_TTL_SECS;

/// Fields that do not change the answer, left out of both hashes.
const NOT_ANSWER_CHANGING: [&str; 6] = [
    "user",
    "stream",
    "stream_options",
    "metadata",
    "store",
    "service_tier",
];

/// The cache stage for `config`: in this process, or a separate cache service when
/// `cache.service_url` is set; `None` when the cache is off.
pub fn start(
    config: &Config,
    redis: Option<ConnectionManager>,
) -> anyhow::Result<Option<Arc<GatewayCache>>> {
    let settings = &config.cache;
    if CacheMode::parse(&settings.mode).unwrap_or(CacheMode::Off) == CacheMode::Off {
        return Ok(None);
    }
    let cache: Arc<dyn SemanticCache> = match (&settings.service_url, &settings.service_token) {
        (Some(url), Some(token)) => Arc::new(
            RemoteCache::new(
                url,
                token.expose(),
                Duration::from_millis(settings.lookup_budget_ms),
            )
            .context("cache.service_url")?,
        ),
        _ => answer_cache(config, redis)?,
    };
    Ok(Some(Arc::new(GatewayCache::new(cache, settings))))
}

/// The cache itself (both tiers, its embedder and vector store), with its maintenance running:
/// what `serve` runs in process and `serve --only cache` serves to gateways.
pub fn answer_cache(
    config: &Config,
    redis: Option<ConnectionManager>,
) -> anyhow::Result<Arc<AnswerCache>> {
    let settings = &config.cache;
    let embedder = embedder(config)?;
    let store: Arc<dyn VectorStore> = match &settings.qdrant.url {
        Some(url) => Arc::new(
            ServerStore::connect(ServerStoreConfig {
                url: url.clone(),
                api_key: settings
                    .qdrant
                    .api_key
                    .as_ref()
                    .map(|k| k.expose().to_owned()),
                collection: settings.qdrant.collection.clone(),
                dimensions: embedder.dimensions(),
                timeout: Duration::from_millis(settings.lookup_budget_ms.max(1000)),
            })
            .context("cache.qdrant.url")?,
        ),
        None => Arc::new(
            EmbeddedStore::open(
                &config.storage.data_dir.join("cache"),
                embedder.dimensions(),
            )
            .context("storage.data_dir (the embedded semantic cache)")?,
        ),
    };
    let mut cache = AnswerCache::new(
        embedder,
        store,
        CacheSettings {
            threshold: settings.similarity_threshold,
            lookup_budget: Duration::from_millis(settings.lookup_budget_ms),
            exact_capacity: settings.exact_capacity,
            max_entries_per_org: settings.max_entries_per_org,
        },
    );
    if let Some(redis) = redis {
        cache = cache.with_shared_exact(SharedExactTier::new(redis, "tollgate:cache:exact"));
    }
    let cache = Arc::new(cache);
    let maintained = cache.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(600));
        loop {
            every.tick().await;
            maintained.maintain().await;
        }
    });
    Ok(cache)
}

/// The embedder `cache.embedder` names.
fn embedder(config: &Config) -> anyhow::Result<Arc<dyn Embedder>> {
    let settings = &config.cache.embedder;
    Ok(match settings.kind.as_str() {
        "sentence" => {
            let path = settings.path.clone().unwrap_or_default();
            Arc::new(SentenceEmbedder::load(&path).context("cache.embedder.path")?)
        }
        "provider" => {
            let catalog = Arc::new(
                PriceCatalog::with_overrides(&config.prices).map_err(|e| anyhow::anyhow!("{e}"))?,
            );
            let router = Router::new(config, catalog).map_err(|e| anyhow::anyhow!("{e}"))?;
            let model = settings.model.clone().unwrap_or_default();
            let dimensions = settings.dimensions.unwrap_or_default();
            Arc::new(
                RoutedEmbedder::new(&router, &model, dimensions)
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            )
        }
        _ => Arc::new(HashedEmbedder::new()),
    })
}

pub struct GatewayCache {
    cache: Arc<dyn SemanticCache>,
    mode: CacheMode,
    ttl: Duration,
}

impl GatewayCache {
    pub fn new(cache: Arc<dyn SemanticCache>, config: &CacheConfig) -> Self {
        GatewayCache {
            cache,
            mode: CacheMode::parse(&config.mode).unwrap_or(CacheMode::Off),
            ttl: Duration::from_secs(config.ttl_secs),
        }
    }
}

fn hex_sha256(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// The text of a message's content: a string, or the text parts of a list.
fn text_of(content: &Value) -> Option<String> {
    match content {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .map(|p| match (p["type"].as_str(), p["text"].as_str()) {
                    (Some("text"), Some(text)) => Some(text),
                    _ => None,
                })
                .collect::<Option<_>>()?;
            Some(texts.join("\n"))
        }
        _ => None,
    }
}

/// The narrower of two modes.
fn narrower(a: CacheMode, b: CacheMode) -> CacheMode {
    match (a, b) {
        (CacheMode::Off, _) | (_, CacheMode::Off) => CacheMode::Off,
        (CacheMode::Exact, _) | (_, CacheMode::Exact) => CacheMode::Exact,
        _ => CacheMode::Semantic,
    }
}

/// A key's defaults: its (merged) policy within the deployment's mode, which no policy lifts.
fn key_defaults(
    policy: &CachePolicy,
    deployment_mode: CacheMode,
    deployment_ttl: Duration,
) -> (CacheMode, Duration) {
    let mode = match policy.mode {
        None => deployment_mode,
        Some(CachePolicyMode::Off) => CacheMode::Off,
        Some(CachePolicyMode::Exact) => narrower(CacheMode::Exact, deployment_mode),
        Some(CachePolicyMode::Semantic) => deployment_mode,
    };
    let ttl = policy.ttl_secs.map_or(deployment_ttl, Duration::from_secs);
    (mode, ttl)
}

/// The per-request controls: mode, read, write, TTL.
fn controls(
    headers: &HeaderMap,
    default_mode: CacheMode,
    default_ttl: Duration,
) -> Result<(CacheMode, bool, bool, Duration), GatewayError> {
    let mut mode = default_mode;
    if let Some(value) = headers.get(&X_TOLLGATE_CACHE) {
        let asked = value
            .to_str()
            .ok()
            .and_then(CacheMode::parse)
            .ok_or_else(|| {
                GatewayError::invalid_field(
                    "x-tollgate-cache",
                    "`x-tollgate-cache` must be off, exact or semantic.",
                )
            })?;
        // A request may narrow its key's cache, never widen it.
        mode = narrower(default_mode, asked);
    }
    let directives = headers
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let directive = |name: &str| directives.split(',').any(|d| d.trim() == name);
    let no_store = directive("no-store");
    let read = !no_store && !directive("no-cache");
    let mut ttl = default_ttl;
    if let Some(value) = headers.get(X_TOLLGATE_CACHE_TTL) {
        let secs = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|s| (1..=MAX_TTL_SECS).contains(s))
            .ok_or_else(|| {
                GatewayError::invalid_field(
                    X_TOLLGATE_CACHE_TTL,
                    format!("`{X_TOLLGATE_CACHE_TTL}` must be a number of seconds from 1 to {MAX_TTL_SECS}."),
                )
            })?;
        ttl = Duration::from_secs(secs);
    }
    Ok((mode, read, !no_store, ttl))
}

/// The value with every object's keys in sorted order. serde_json keeps insertion order when
/// any dependency enables its `preserve_order` feature (qdrant-edge does), so without this the
/// same request with its fields in another order would hash differently.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut fields: Vec<(String, Value)> = map.into_iter().collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(fields.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// A chat request's exact key (everything that changes the answer), partition (all of that
/// but the last turn) and question (the last user turn in plain text, when the request can be
/// matched by meaning at all). `scope` and `model` are hashed in with both.
fn request_hashes(
    scope: &str,
    model: &str,
    raw: &[u8],
) -> Option<(String, String, Option<String>)> {
    let mut request: Value = serde_json::from_slice(raw).ok()?;
    let object = request.as_object_mut()?;
    for field in NOT_ANSWER_CHANGING {
        object.remove(field);
    }
    let request = sorted(request);
    let canonical = serde_json::to_vec(&request).ok()?;
    let exact_key = hex_sha256(&[scope.as_bytes(), model.as_bytes(), &canonical]);
    let mut rest = request;
    let declares_tools = rest.get("tools").is_some() || rest.get("functions").is_some();
    let messages = rest.get_mut("messages")?.as_array_mut()?;
    let last = messages.pop()?;
    let tools = declares_tools
        || messages
            .iter()
            .any(|m| m.get("tool_calls").is_some() || m["role"] == "tool");
    // A question matched by meaning is the user's last turn, in plain text; anything with tools
    // is matched exactly or not at all.
    let question = match (last["role"].as_str(), tools) {
        (Some("user"), false) => text_of(&last["content"]),
        _ => None,
    };
    // Everything but the last turn: model, parameters, system prompt and earlier turns.
    let context = serde_json::to_vec(&rest).ok()?;
    let partition = hex_sha256(&[scope.as_bytes(), model.as_bytes(), &context]);
    Some((exact_key, partition, question))
}

/// The request in the cache's terms; `None` when it cannot be cached at all.
fn cache_request(ctx: &RequestContext, body: &InboundBody) -> Option<CacheRequest> {
    let org = ctx.key.org_id?;
    if body.endpoint != Endpoint::ChatCompletions {
        return None;
    }
    // Answers shared by a team only are kept apart from the rest of the organization's.
    let scope = match (ctx.key.cache.share, ctx.key.team_id) {
        (Some(CacheShare::Team), Some(team)) => format!("team:{team}"),
        _ => String::new(),
    };
    let (exact_key, partition, question) =
        request_hashes(&scope, &ctx.requested_model, body.raw())?;
    Some(CacheRequest {
        org_id: org.to_string(),
        exact_key,
        partition,
        question,
        mode: CacheMode::Off,
        read: false,
        write: false,
        ttl: Duration::ZERO,
    })
}

/// Whether an answer may be kept, and whether by meaning too: complete answers only
/// (`finish_reason: length` is cut short), and tool calls by exact match only.
fn storable(answer: &[u8]) -> Option<bool> {
    let answer: Value = serde_json::from_slice(answer).ok()?;
    let choices = answer["choices"].as_array()?;
    if choices.is_empty() {
        return None;
    }
    let mut semantic = true;
    for choice in choices {
        match choice["finish_reason"].as_str() {
            Some("stop") => {}
            Some("tool_calls" | "function_call") => semantic = false,
            _ => return None,
        }
        if choice["message"]
            .get("tool_calls")
            .is_some_and(|t| !t.is_null())
        {
            semantic = false;
        }
    }
    Some(semantic)
}

fn set_header(ctx: &mut RequestContext, name: HeaderName, value: HeaderValue) {
    ctx.response_headers.push((name, value));
}

#[async_trait]
impl ResponseCache for GatewayCache {
    async fn lookup(
        &self,
        ctx: &mut RequestContext,
        headers: &HeaderMap,
        body: &InboundBody,
    ) -> Result<Option<CachedAnswer>, GatewayError> {
        let (default_mode, default_ttl) = key_defaults(&ctx.key.cache, self.mode, self.ttl);
        let (mode, read, write, ttl) = controls(headers, default_mode, default_ttl)?;
        let planned = match cache_request(ctx, body) {
            Some(request) if mode != CacheMode::Off => Some(request),
            _ => None,
        };
        let Some(mut request) = planned else {
            set_header(ctx, X_TOLLGATE_CACHE, HeaderValue::from_static("bypass"));
            return Ok(None);
        };
        request.mode = mode;
        request.read = read;
        request.write = write;
        request.ttl = ttl;
        let hit = self.cache.lookup(&request).await;
        // Kept for `store`; without it the gateway does not even collect a streamed answer.
        if request.write {
            ctx.cache_state = Some(Arc::new(request));
        }
        match hit {
            Some(CacheHit::Exact { answer }) => {
                set_header(ctx, X_TOLLGATE_CACHE, HeaderValue::from_static("hit-exact"));
                Ok(Some(CachedAnswer {
                    body: Bytes::from(answer),
                }))
            }
            Some(CacheHit::Semantic { answer, similarity }) => {
                set_header(
                    ctx,
                    X_TOLLGATE_CACHE,
                    HeaderValue::from_static("hit-semantic"),
                );
                if let Ok(value) = HeaderValue::from_str(&format!("{similarity:.4}")) {
                    set_header(ctx, X_TOLLGATE_CACHE_SIMILARITY, value);
                }
                Ok(Some(CachedAnswer {
                    body: Bytes::from(answer),
                }))
            }
            None => {
                ctx.cache = "miss";
                let label = if read { "miss" } else { "bypass" };
                set_header(ctx, X_TOLLGATE_CACHE, HeaderValue::from_static(label));
                Ok(None)
            }
        }
    }

    async fn store(&self, ctx: &RequestContext, _body: &InboundBody, answer: &Bytes) {
        let Some(request) = ctx
            .cache_state
            .clone()
            .and_then(|state| state.downcast::<CacheRequest>().ok())
        else {
            return;
        };
        let Some(semantic) = storable(answer) else {
            return;
        };
        let Ok(text) = std::str::from_utf8(answer) else {
            return;
        };
        let (cache, text) = (self.cache.clone(), text.to_owned());
        // Embedding and writing happen after the answer has gone.
        tokio::spawn(async move { cache.store(&request, &text, semantic).await });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_answers_are_kept_and_tool_calls_only_exactly() {
        let answer = |finish: &str| {
            format!(r#"{{"choices":[{{"message":{{"content":"x"}},"finish_reason":"{finish}"}}]}}"#)
        };
        assert_eq!(storable(answer("stop").as_bytes()), Some(true));
        assert_eq!(storable(answer("length").as_bytes()), None);
        assert_eq!(storable(answer("content_filter").as_bytes()), None);
        assert_eq!(storable(answer("tool_calls").as_bytes()), Some(false));
        assert_eq!(storable(b"{\"error\":{}}"), None);
    }

    #[test]
    fn field_order_and_non_answer_fields_do_not_change_the_hashes() {
        let one = br#"{"model":"m","stream":false,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi?"}],"temperature":0,"response_format":{"type":"text","x":1}}"#;
        let other = br#"{"temperature":0,"response_format":{"x":1,"type":"text"},"messages":[{"content":"Be brief.","role":"system"},{"content":"Hi?","role":"user"}],"user":"u-1","model":"m"}"#;
        let (a, b) = (
            request_hashes("", "m", one).unwrap_or_else(|| panic!("hashes")),
            request_hashes("", "m", other).unwrap_or_else(|| panic!("hashes")),
        );
        assert_eq!(a, b);
        assert_eq!(a.2.as_deref(), Some("Hi?"));
        // what changes the answer changes the hashes; the scope keeps teams apart
        let warmer = br#"{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi?"}],"temperature":1,"response_format":{"type":"text","x":1}}"#;
        let warm = request_hashes("", "m", warmer).unwrap_or_else(|| panic!("hashes"));
        assert_ne!((&warm.0, &warm.1), (&a.0, &a.1));
        let team = request_hashes("team:t1", "m", one).unwrap_or_else(|| panic!("hashes"));
        assert_ne!((&team.0, &team.1), (&a.0, &a.1));
        // a different question in the same context shares the partition only
        let reworded = br#"{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello?"}],"temperature":0,"response_format":{"type":"text","x":1}}"#;
        let reworded = request_hashes("", "m", reworded).unwrap_or_else(|| panic!("hashes"));
        assert_ne!(reworded.0, a.0);
        assert_eq!(reworded.1, a.1);
    }

    #[test]
    fn key_policies_choose_within_the_deployment_mode() {
        let hour = Duration::from_secs(3600);
        let policy = |mode, ttl_secs| CachePolicy {
            mode,
            ttl_secs,
            share: None,
        };
        assert_eq!(
            key_defaults(&CachePolicy::default(), CacheMode::Semantic, hour),
            (CacheMode::Semantic, hour)
        );
        assert_eq!(
            key_defaults(
                &policy(Some(CachePolicyMode::Exact), Some(60)),
                CacheMode::Semantic,
                hour
            ),
            (CacheMode::Exact, Duration::from_secs(60))
        );
        assert_eq!(
            key_defaults(
                &policy(Some(CachePolicyMode::Off), None),
                CacheMode::Semantic,
                hour
            )
            .0,
            CacheMode::Off
        );
        assert_eq!(
            key_defaults(
                &policy(Some(CachePolicyMode::Semantic), None),
                CacheMode::Exact,
                hour
            )
            .0,
            CacheMode::Exact,
            "a policy never lifts the deployment's mode"
        );
    }

    #[test]
    fn requests_narrow_the_deployment_cache_and_bad_headers_are_client_errors() {
        let mut headers = HeaderMap::new();
        headers.insert(X_TOLLGATE_CACHE, HeaderValue::from_static("exact"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        let (mode, read, write, _) =
            controls(&headers, CacheMode::Semantic, Duration::from_secs(1))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((mode, read, write), (CacheMode::Exact, false, true));
        let (mode, ..) = controls(&headers, CacheMode::Off, Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode, CacheMode::Off, "never widened");
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let (_, read, write, _) = controls(&headers, CacheMode::Semantic, Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((read, write), (false, false));
        for (name, value) in [
            ("x-tollgate-cache", "sometimes"),
            ("x-tollgate-cache-ttl", "0"),
            ("x-tollgate-cache-ttl", "soon"),
        ] {
            let mut bad = HeaderMap::new();
            bad.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
            assert!(
                matches!(
                    controls(&bad, CacheMode::Semantic, Duration::from_secs(1)),
                    Err(GatewayError::InvalidField { .. })
                ),
                "{name}: {value}"
            );
        }
    }
}
