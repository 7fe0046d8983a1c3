//! The gateway's cache stage backed by the cache service, whose rules ([`tollgate_cache::request`])
//! turn a request into the cache's terms and read its controls; this file starts the cache and
//! says on the answer what happened (`x-tollgate-cache: hit-exact | hit-semantic | miss |
//! bypass`).

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use anyhow::Context;
use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::ConnectionManager;
use tollgate_cache::embedder::{Embedder, HashedEmbedder, SentenceEmbedder};
use tollgate_cache::remote::RemoteCache;
use tollgate_cache::request;
use tollgate_cache::shared::SharedExactTier;
use tollgate_cache::store::{EmbeddedStore, ServerStore, ServerStoreConfig, VectorStore};
use tollgate_cache::{
    AnswerCache, CacheHit, CacheMode, CacheRequest, CacheSettings, SemanticCache,
};
use tollgate_common::config::CacheConfig;
use tollgate_common::{Config, PriceCatalog};
use tollgate_gateway::GatewayError;
use tollgate_gateway::openai::{Endpoint, InboundBody};
use tollgate_gateway::pipeline::{CachedAnswer, RequestContext, ResponseCache};
use tollgate_gateway::routing::Router;

use crate::embedding::RoutedEmbedder;

const X_TOLLGATE_CACHE: HeaderName = HeaderName::from_static(request::X_TOLLGATE_CACHE);
const X_TOLLGATE_CACHE_SIMILARITY: HeaderName =
    HeaderName::from_static("x-tollgate-cache-similarity");

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
pub fn embedder(config: &Config) -> anyhow::Result<Arc<dyn Embedder>> {
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
        let (default_mode, default_ttl) =
            request::key_defaults(&ctx.key.cache, self.mode, self.ttl);
        let controls = request::controls(headers, default_mode, default_ttl)
            .map_err(|err| GatewayError::invalid_field(err.header, err.message))?;
        let planned = match body.endpoint {
            Endpoint::ChatCompletions if controls.mode != CacheMode::Off => {
                request::chat_request(&ctx.key, &ctx.requested_model, body.raw())
            }
            _ => None,
        };
        let Some(mut request) = planned else {
            set_header(ctx, X_TOLLGATE_CACHE, HeaderValue::from_static("bypass"));
            return Ok(None);
        };
        request.mode = controls.mode;
        request.read = controls.read;
        request.write = controls.write;
        request.ttl = controls.ttl;
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
                let label = if controls.read { "miss" } else { "bypass" };
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
        let Some(semantic) = request::storable(answer) else {
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
