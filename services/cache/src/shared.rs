//! The exact tier shared by every replica: answers in Redis under the organization and the
//! hash of the canonical request, expiring with their TTL. Each process keeps its own
//! in-memory tier in front of it; this one makes an answer paid for by one replica free on all.

use std::time::Duration;

use redis::aio::ConnectionManager;

/// Exact answers in Redis.
#[derive(Clone)]
pub struct SharedExactTier {
    redis: ConnectionManager,
    prefix: String,
}

impl SharedExactTier {
    /// Keys are `{prefix}:{organization}:{exact key}`.
    pub fn new(redis: ConnectionManager, prefix: impl Into<String>) -> Self {
        SharedExactTier {
            redis,
            prefix: prefix.into(),
        }
    }

    fn key(&self, org_id: &str, exact_key: &str) -> String {
        format!("{}:{org_id}:{exact_key}", self.prefix)
    }

    /// The answer and how many milliseconds it has left, if Redis has it.
    pub async fn get(
        &self,
        org_id: &str,
        exact_key: &str,
    ) -> Result<Option<(String, i64)>, redis::RedisError> {
        let key = self.key(org_id, exact_key);
        let mut redis = self.redis.clone();
        // One round trip for both: the value and its remaining lifetime.
        let (answer, ttl_ms): (Option<String>, i64) = redis::pipe()
            .get(&key)
            .pttl(&key)
            .query_async(&mut redis)
            .await?;
        Ok(answer.filter(|_| ttl_ms > 0).map(|answer| (answer, ttl_ms)))
    }

    /// Keeps `answer` for `ttl`.
    pub async fn put(
        &self,
        org_id: &str,
        exact_key: &str,
        answer: &str,
        ttl: Duration,
    ) -> Result<(), redis::RedisError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut redis = self.redis.clone();
        redis::cmd("SET")
            .arg(self.key(org_id, exact_key))
            .arg(answer)
            .arg("PX")
            .arg(ttl_ms)
            .query_async::<()>(&mut redis)
            .await
    }
}
