//! Rate limits: requests and tokens per minute over a sliding window.
//!
//! Each request is charged against a set of [`Bucket`]s (per key, per team, ...), all or
//! none: a request denied by one bucket takes nothing from the others. The window is a log of
//! the admissions of the last 60 seconds, so no 60-second span ever admits more than the
//! limit: there is no burst at window edges, unlike fixed windows. Token buckets are charged
//! an estimate at admission and corrected with the real usage afterwards ([`RateLimiter::adjust`]).
//!
//! With Redis the windows are shared by every replica (one script call per request); without
//! it, or while Redis is unreachable, each process keeps its own.

mod redis;
mod window;

use std::sync::Arc;

use ::redis::aio::ConnectionManager;

pub use self::redis::RedisWindows;
pub use self::window::LocalWindows;
use crate::fallback::RedisFallback;
pub use crate::fallback::{Counted, OnRedisFailure};
pub use crate::script::{Bucket, BucketState, Decision, WINDOW_MS};

#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitError {
    #[error("Redis: {0}")]
    Redis(String),
    /// Redis is unreachable and the policy is to refuse rather than count per process.
    #[error("rate limits cannot be checked right now")]
    Unavailable,
}

/// The rate limiter a gateway process holds.
pub struct RateLimiter {
    redis: Option<RedisWindows>,
    local: LocalWindows,
    on_failure: OnRedisFailure,
    fallback: RedisFallback,
}

impl RateLimiter {
    pub fn new(redis: Option<ConnectionManager>, on_failure: OnRedisFailure) -> Self {
        RateLimiter {
            redis: redis.map(RedisWindows::new),
            local: LocalWindows::default(),
            on_failure,
            fallback: RedisFallback::default(),
        }
    }

    /// The Redis connection the windows live on, if any.
    pub(crate) fn redis_connection(&self) -> Option<&ConnectionManager> {
        self.redis.as_ref().map(RedisWindows::connection)
    }

    pub(crate) fn redis_usable(&self) -> bool {
        self.fallback.redis_usable()
    }

    pub(crate) fn mark_redis_down(&self) {
        self.fallback.mark_down();
    }

    /// Checks and charges `buckets` for the reservation `id`.
    pub async fn acquire(
        &self,
        id: &str,
        buckets: &[Bucket],
    ) -> Result<(Decision, Counted), LimitError> {
        if let Some(redis) = &self.redis
            && self.fallback.redis_usable()
        {
            match redis.acquire(id, buckets).await {
                Ok(decision) => return Ok((decision, Counted::Redis)),
                Err(err) => {
                    tracing::warn!(%err, "rate limits: Redis unavailable, counting in this process");
                    self.fallback.mark_down();
                }
            }
        }
        if self.redis.is_some() && self.on_failure == OnRedisFailure::Reject {
            return Err(LimitError::Unavailable);
        }
        Ok((
            self.local.acquire(id, buckets, self.fallback.elapsed_ms()),
            Counted::Local,
        ))
    }

    /// Replaces the costs charged to reservation `id` (a token estimate by the real usage).
    pub async fn adjust(&self, id: &str, counted: Counted, costs: &[(String, u64)]) {
        match (counted, &self.redis) {
            (Counted::Redis, Some(redis)) => {
                if let Err(err) = redis.adjust(id, costs).await {
                    tracing::warn!(%err, "rate limits: cannot correct a token reservation");
                }
            }
            _ => self.local.adjust(id, costs),
        }
    }

    /// [`RateLimiter::adjust`] without waiting: done at once for local windows, in a task for
    /// Redis, so that the caller (the usage recorder) never waits on the network.
    pub fn adjust_in_background(
        self: &Arc<Self>,
        id: String,
        counted: Counted,
        costs: Vec<(String, u64)>,
    ) {
        if counted == Counted::Local || self.redis.is_none() {
            self.local.adjust(&id, &costs);
            return;
        }
        let limiter = self.clone();
        tokio::spawn(async move { limiter.adjust(&id, counted, &costs).await });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn redis_limiter(on_failure: OnRedisFailure, url: &str) -> RateLimiter {
        let client = ::redis::Client::open(url).unwrap();
        let manager = ConnectionManager::new_lazy_with_config(
            client,
            ::redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_millis(300)))
                .set_response_timeout(Some(Duration::from_millis(300)))
                .set_number_of_retries(0),
        )
        .unwrap();
        RateLimiter::new(Some(manager), on_failure)
    }

    fn unique(name: &str) -> String {
        format!("tollgate:test:{name}:{}", uuid::Uuid::now_v7())
    }

    #[tokio::test]
    async fn replicas_sharing_redis_share_the_window() {
        let (a, b) = (
            redis_limiter(OnRedisFailure::Local, "redis://127.0.0.1:6379"),
            redis_limiter(OnRedisFailure::Local, "redis://127.0.0.1:6379"),
        );
        let key = unique("rpm");
        let bucket = [Bucket {
            key,
            limit: 5,
            cost: 1,
        }];
        let mut admitted = 0;
        for i in 0..10 {
            let limiter = if i % 2 == 0 { &a } else { &b };
            let (decision, counted) = limiter.acquire(&format!("r{i}"), &bucket).await.unwrap();
            assert_eq!(counted, Counted::Redis);
            if decision.allowed {
                admitted += 1;
            } else {
                assert!(decision.retry_after_ms > 59_000, "{decision:?}");
                assert_eq!(decision.states[0].remaining, 0);
            }
        }
        assert_eq!(admitted, 5);
    }

    #[tokio::test]
    async fn redis_token_reservations_are_corrected() {
        let limiter = redis_limiter(OnRedisFailure::Local, "redis://127.0.0.1:6379");
        let key = unique("tpm");
        let tokens = |cost| {
            [Bucket {
                key: key.clone(),
                limit: 1000,
                cost,
            }]
        };
        let (first, counted) = limiter.acquire("a", &tokens(900)).await.unwrap();
        assert!(first.allowed);
        assert_eq!(first.states[0].remaining, 100);
        assert!(!limiter.acquire("b", &tokens(200)).await.unwrap().0.allowed);
        limiter.adjust("a", counted, &[(key.clone(), 120)]).await;
        let (after, _) = limiter.acquire("c", &tokens(200)).await.unwrap();
        assert!(after.allowed);
        assert_eq!(after.states[0].remaining, 680);
    }

    #[tokio::test]
    async fn an_unreachable_redis_falls_back_to_local_windows_or_refuses() {
        // nothing listens on port 1
        let local = redis_limiter(OnRedisFailure::Local, "redis://127.0.0.1:1");
        let bucket = [Bucket {
            key: unique("down"),
            limit: 2,
            cost: 1,
        }];
        let results: Vec<bool> = {
            let mut results = Vec::new();
            for i in 0..3 {
                let (decision, counted) = local.acquire(&format!("r{i}"), &bucket).await.unwrap();
                assert_eq!(counted, Counted::Local);
                results.push(decision.allowed);
            }
            results
        };
        assert_eq!(
            results,
            [true, true, false],
            "per-process limits still hold"
        );

        let strict = redis_limiter(OnRedisFailure::Reject, "redis://127.0.0.1:1");
        assert!(matches!(
            strict.acquire("r", &bucket).await,
            Err(LimitError::Unavailable)
        ));
    }
}
