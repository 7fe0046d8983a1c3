//! Key changes reaching every gateway process: a revocation, rotation or update evicts the key
//! from this process's cache at once and is published on Redis, where every other process
//! listens. Without Redis, other processes see the change when their cache entry expires.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use crate::verify::KeyCache;

/// The Redis channel key changes are published on; each message is a key's SHA-256 hex.
pub const KEY_CHANGES_CHANNEL: &str = "tollgate:keys:changed";

/// Publishes key changes and applies them to the local cache.
#[derive(Clone)]
pub struct KeyChangeFeed {
    local: Option<Arc<KeyCache>>,
    redis: Option<ConnectionManager>,
}

impl KeyChangeFeed {
    /// A feed that only evicts from `local` (one process, no Redis).
    pub fn local(local: Option<Arc<KeyCache>>) -> Self {
        KeyChangeFeed { local, redis: None }
    }

    /// A feed that also publishes on Redis.
    pub fn with_redis(local: Option<Arc<KeyCache>>, redis: ConnectionManager) -> Self {
        KeyChangeFeed {
            local,
            redis: Some(redis),
        }
    }

    /// Announces that the key with this hash changed.
    pub async fn key_changed(&self, key_hash: &str) {
        if let Some(cache) = &self.local {
            cache.evict(key_hash);
        }
        if let Some(redis) = &self.redis {
            let mut conn = redis.clone();
            let published: Result<i64, _> = conn.publish(KEY_CHANGES_CHANNEL, key_hash).await;
            if let Err(err) = published {
                // Other processes fall back to their cache TTL for this change.
                tracing::warn!(%err, "cannot publish a key change on Redis");
            }
        }
    }
}

/// Listens for key changes on Redis and evicts them from `cache`, reconnecting forever. After
/// any gap in the subscription the whole cache is dropped, since messages may have been missed.
pub fn spawn_listener(client: redis::Client, cache: Arc<KeyCache>) {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(KEY_CHANGES_CHANNEL).await {
                    Ok(()) => {
                        backoff = Duration::from_millis(100);
                        cache.clear();
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            match message.get_payload::<String>() {
                                Ok(hash) => cache.evict(&hash),
                                Err(_) => cache.clear(),
                            }
                        }
                        tracing::warn!("key change subscription ended; reconnecting");
                    }
                    Err(err) => tracing::warn!(%err, "cannot subscribe to key changes"),
                },
                Err(err) => tracing::warn!(%err, "cannot connect to Redis for key changes"),
            }
            cache.clear();
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
}
