//! Connections to Redis for the crate's tests, with short timeouts so that a test against an
//! address nobody answers falls back at once instead of waiting.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A lazy connection to `url` that gives up after `timeout` and never retries.
pub(crate) fn redis_at(url: &str, timeout: Duration) -> ConnectionManager {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(0);
    let client = redis::Client::open(url).unwrap_or_else(|e| panic!("{e}"));
    ConnectionManager::new_lazy_with_config(client, config).unwrap_or_else(|e| panic!("{e}"))
}
