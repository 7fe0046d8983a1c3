//! The gateway's side of a separate cache service: the same [`SemanticCache`] calls over HTTP.
//! A service that is down, slow or refusing is a miss, never an error.

use std::time::Duration;

use crate::answers::{CacheHit, CacheRequest, SemanticCache};
use crate::http::{LookupAnswer, SERVICE_TOKEN_HEADER, StoreCall};

/// While the service is unreachable, at most one warning per this interval.
const WARN_EVERY_MS: i64 = 10_000;

/// A cache service reached over HTTP.
pub struct RemoteCache {
    /// When the last warning was logged (Unix ms): an outage is reported, not once per request.
    last_warning_ms: std::sync::atomic::AtomicI64,
    client: reqwest::Client,
    lookup_url: String,
    store_url: String,
    token: String,
    /// The most a lookup may take, network included.
    lookup_budget: Duration,
}

impl RemoteCache {
    /// `base` is the cache service's root URL (`http://cache:8080`).
    pub fn new(base: &str, token: &str, lookup_budget: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .build()?;
        let base = base.trim_end_matches('/');
        Ok(RemoteCache {
            last_warning_ms: std::sync::atomic::AtomicI64::new(0),
            client,
            lookup_url: format!("{base}/cache/internal/lookup"),
            store_url: format!("{base}/cache/internal/store"),
            token: token.to_owned(),
            lookup_budget,
        })
    }

    /// Whether to log a failure now (the first in `WARN_EVERY_MS`).
    fn should_warn(&self) -> bool {
        use std::sync::atomic::Ordering;
        let now = tollgate_common::now_ms();
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        now - last >= WARN_EVERY_MS
            && self
                .last_warning_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    async fn call_lookup(&self, request: &CacheRequest) -> Result<Option<CacheHit>, String> {
        let response = self
            .client
            .post(&self.lookup_url)
            .header(SERVICE_TOKEN_HEADER, &self.token)
            .timeout(self.lookup_budget)
            .json(request)
            .send()
            .await
            .map_err(|e| format!("cache service unreachable: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("cache service answered {}", response.status()));
        }
        let answer: LookupAnswer = response
            .json()
            .await
            .map_err(|e| format!("cache service answer unreadable: {}", e.without_url()))?;
        Ok(answer.hit)
    }
}

#[async_trait::async_trait]
impl SemanticCache for RemoteCache {
    async fn lookup(&self, request: &CacheRequest) -> Option<CacheHit> {
        match self.call_lookup(request).await {
            Ok(hit) => hit,
            Err(reason) => {
                if self.should_warn() {
                    tracing::warn!(%reason, "cache service lookup failed; going upstream");
                }
                None
            }
        }
    }

    async fn store(&self, request: &CacheRequest, answer: &str, semantic: bool) {
        let call = StoreCall {
            request: request.clone(),
            answer: answer.to_owned(),
            semantic,
        };
        let sent = self
            .client
            .post(&self.store_url)
            .header(SERVICE_TOKEN_HEADER, &self.token)
            .json(&call)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {}
            Ok(response) if self.should_warn() => {
                tracing::warn!(status = %response.status(), "cache service refused an answer")
            }
            Err(err) if self.should_warn() => {
                tracing::warn!(err = %err.without_url(), "cache service unreachable; answer not kept")
            }
            _ => {}
        }
    }
}
