//! When to try Redis again after it failed: both the rate limiter and the budget counters stop
//! calling an unreachable Redis for a second at a time, so that an outage costs each request a
//! local decision, not a connection timeout.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// What to do with requests while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnRedisFailure {
    /// Count in this process (limits become per-instance until Redis is back).
    #[default]
    Local,
    /// Refuse requests with 503.
    Reject,
}

/// Where a request was counted, so that its correction goes to the same place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Redis,
    Local,
}

const REDIS_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Redis's health as this process last saw it.
#[derive(Debug)]
pub struct RedisFallback {
    started: Instant,
    /// Milliseconds since `started` before which Redis is not tried.
    down_until: AtomicI64,
}

impl Default for RedisFallback {
    fn default() -> Self {
        RedisFallback {
            started: Instant::now(),
            down_until: AtomicI64::new(0),
        }
    }
}

impl RedisFallback {
    /// Milliseconds since this process's counters started: a monotonic clock.
    pub fn elapsed_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Whether Redis is worth trying now.
    pub fn redis_usable(&self) -> bool {
        self.elapsed_ms() >= self.down_until.load(Ordering::Relaxed)
    }

    /// Redis just failed: skip it for a while.
    pub fn mark_down(&self) {
        let retry_at = self.elapsed_ms() + REDIS_RETRY_INTERVAL.as_millis() as i64;
        self.down_until.store(retry_at, Ordering::Relaxed);
    }
}
