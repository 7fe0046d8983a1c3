//! The gateway's cache stage backed by the cache service: turns a request into the cache's
//! terms (exact key, partition, question), applies the per-request controls, and says on the
//! answer what happened (`x-tollgate-cache: hit-exact | hit-semantic | miss | bypass`).

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{CACHE_CONTROL, HeaderMap, HeaderName, HeaderValue};
use anyhow::Context;
use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tollgate_cache::embedder::{Embedder, HashedEmbedder};
use tollgate_cache::store::{EmbeddedStore, ServerStore, ServerStoreConfig, VectorStore};
use tollgate_cache::{AnswerCache, CacheHit, CacheMode, CacheRequest, CacheSettings};
use tollgate_common::Config;
use tollgate_common::config::CacheConfig;
use tollgate_gateway::GatewayError;
use tollgate_gateway::openai::{Endpoint, InboundBody};
use tollgate_gateway::pipeline::{CachedAnswer, RequestContext, ResponseCache};

const X_TOLLGATE_CACHE: HeaderName = HeaderName::from_static("x-tollgate-cache");
const X_TOLLGATE_CACHE_TTL: &str = "x-tollgate-cache-ttl";
const X_TOLLGATE_CACHE_SIMILARITY: HeaderName =
    HeaderName::from_static("x-tollgate-cache-similarity");

/// The longest TTL a request may ask for: thirty days.
const MAX_TTL_SECS: u64 = 30 * 86_400;

/// Fields that do not change the answer, left out of both hashes.
const NOT_ANSWER_CHANGING: [&str; 6] = [
    "user",
    "stream",
    "stream_options",
    "metadata",
    "store",
    "service_tier",
];

/// The cache stage for `config`, with its maintenance running; `None` when the cache is off.
pub fn start(config: &Config) -> anyhow::Result<Option<Arc<GatewayCache>>> {
    let settings = &config.cache;
    if CacheMode::parse(&settings.mode).unwrap_or(CacheMode::Off) == CacheMode::Off {
        return Ok(None);
    }
    let embedder = Arc::new(HashedEmbedder::new());
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
    let cache = Arc::new(AnswerCache::new(
        embedder,
        store,
        CacheSettings {
            threshold: settings.similarity_threshold,
            lookup_budget: Duration::from_millis(settings.lookup_budget_ms),
            exact_capacity: settings.exact_capacity,
            max_entries_per_org: settings.max_entries_per_org,
        },
    ));
    let maintained = cache.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(600));
        loop {
            every.tick().await;
            maintained.maintain().await;
        }
    });
    Ok(Some(Arc::new(GatewayCache::new(cache, settings))))
}

pub struct GatewayCache {
    cache: Arc<AnswerCache>,
    mode: CacheMode,
    ttl: Duration,
}

impl GatewayCache {
    pub fn new(cache: Arc<AnswerCache>, config: &CacheConfig) -> Self {
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
        // A request may narrow the deployment's cache, never widen it.
        mode = match (default_mode, asked) {
            (CacheMode::Off, _) | (_, CacheMode::Off) => CacheMode::Off,
            (CacheMode::Exact, _) | (_, CacheMode::Exact) => CacheMode::Exact,
            _ => CacheMode::Semantic,
        };
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

/// The request in the cache's terms; `None` when it cannot be cached at all.
fn cache_request(ctx: &RequestContext, body: &InboundBody) -> Option<CacheRequest> {
    let org = ctx.key.org_id?;
    if body.endpoint != Endpoint::ChatCompletions {
        return None;
    }
    let mut request: Value = serde_json::from_slice(body.raw()).ok()?;
    let object = request.as_object_mut()?;
    for field in NOT_ANSWER_CHANGING {
        object.remove(field);
    }
    // serde_json's maps are sorted, so equal requests serialize equally.
    let canonical = serde_json::to_vec(&request).ok()?;
    let exact_key = hex_sha256(&[ctx.requested_model.as_bytes(), &canonical]);
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
    let partition = hex_sha256(&[ctx.requested_model.as_bytes(), &context]);
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
        let (mode, read, write, ttl) = controls(headers, self.mode, self.ttl)?;
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
        // A streamed answer is served from the cache (replayed as a stream) but not kept yet.
        request.write = write && !body.stream;
        request.ttl = ttl;
        let hit = self.cache.lookup(&request).await;
        ctx.cache_state = Some(Arc::new(request));
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
