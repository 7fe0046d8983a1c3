//! Budget enforcement by reservation.
//!
//! Before a request is forwarded, its worst-case cost is reserved against every budget that
//! applies to it, all or none, in one atomic step: admitted only if, for each budget,
//! `spent + reserved + this request's worst case <= limit`. When the request ends the
//! reservation is replaced by the real cost (released entirely on failure).
//!
//! **The bound.** A budget's spend can exceed its limit only by what admitted requests cost
//! beyond their reservations: spend ≤ limit + Σ max(0, actual − reserved) over the requests
//! admitted against it. Every admission sees all earlier reservations (the check and the
//! charge are one atomic step, in Redis for all replicas), so reservations alone never exceed
//! the limit; a request's real cost exceeds its reservation only if the upstream reports more
//! prompt tokens than estimated or more output tokens than `max_tokens` (or the configured
//! default when a request sets none).
//!
//! Counters are whole nanodollars, rounded up (see [`tollgate_common::Picodollars`]), and live
//! in Redis (shared by every replica) or, without Redis, in this process. A counter starts from
//! the spend the ledger reported for its period when the key was loaded ([`Charge::baseline`]).

mod local;
mod redis;

use std::sync::Arc;

use ::redis::aio::ConnectionManager;

pub use self::local::LocalCounters;
pub use self::redis::RedisCounters;
use crate::fallback::{Counted, OnRedisFailure, RedisFallback};
pub use crate::script::Charge;

/// The counter of one budget period: of the budget as a whole, or of one end user for a budget
/// on each end user.
pub fn counter_name(budget_id: &str, period_start_ms: i64, end_user: Option<&str>) -> String {
    match end_user {
        Some(user) => format!("tollgate:budget:{budget_id}:{period_start_ms}:user:{user}"),
        None => format!("tollgate:budget:{budget_id}:{period_start_ms}"),
    }
}

/// The answer to a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    Admitted(Counted),
    /// The budget at `index` in the charges has no room: what it had spent and had reserved
    /// (nanodollars).
    Exhausted {
        index: usize,
        spent: i64,
        reserved: i64,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BudgetError {
    #[error("Redis: {0}")]
    Redis(String),
    #[error("budgets cannot be checked right now")]
    Unavailable,
}

/// The budget counters a gateway process holds.
pub struct BudgetCounters {
    redis: Option<RedisCounters>,
    local: LocalCounters,
    on_failure: OnRedisFailure,
    fallback: RedisFallback,
}

impl BudgetCounters {
    pub fn new(redis: Option<ConnectionManager>, on_failure: OnRedisFailure) -> Self {
        BudgetCounters {
            redis: redis.map(RedisCounters::new),
            local: LocalCounters::default(),
            on_failure,
            fallback: RedisFallback::default(),
        }
    }

    pub(crate) fn redis_usable(&self) -> bool {
        self.redis.is_some() && self.fallback.redis_usable()
    }

    pub(crate) fn mark_redis_down(&self) {
        self.fallback.mark_down();
    }

    /// Reserves `amount` nanodollars against every charge, or against none.
    pub async fn reserve(
        &self,
        charges: &[Charge],
        amount: i64,
    ) -> Result<Reservation, BudgetError> {
        if charges.is_empty() {
            return Ok(Reservation::Admitted(Counted::Local));
        }
        if let Some(redis) = &self.redis
            && self.fallback.redis_usable()
        {
            match redis.reserve(charges, amount).await {
                Ok(reservation) => return Ok(reservation),
                Err(err) => {
                    tracing::warn!(%err, "budgets: Redis unavailable, counting in this process");
                    self.fallback.mark_down();
                }
            }
        }
        if self.redis.is_some() && self.on_failure == OnRedisFailure::Reject {
            return Err(BudgetError::Unavailable);
        }
        Ok(self.local.reserve(charges, amount))
    }

    /// Replaces a reservation of `reserved` nanodollars on `counters` with `actual`.
    pub async fn settle(&self, counted: Counted, counters: &[String], reserved: i64, actual: i64) {
        match (counted, &self.redis) {
            (Counted::Redis, Some(redis)) => {
                if let Err(err) = redis.settle(counters, reserved, actual).await {
                    tracing::warn!(%err, "budgets: cannot settle a reservation in Redis");
                }
            }
            _ => self.local.settle(counters, reserved, actual),
        }
    }

    /// [`BudgetCounters::settle`] off the caller's path: inline for counters in this process,
    /// on a task for Redis.
    pub fn settle_in_background(
        self: &Arc<Self>,
        counted: Counted,
        counters: Vec<String>,
        reserved: i64,
        actual: i64,
    ) {
        if counted == Counted::Local || self.redis.is_none() {
            self.local.settle(&counters, reserved, actual);
            return;
        }
        let budgets = self.clone();
        tokio::spawn(async move { budgets.settle(counted, &counters, reserved, actual).await });
    }

    /// Spent and reserved nanodollars on a counter, if it exists (for tests and diagnostics).
    pub async fn read(&self, counter: &str) -> Option<(i64, i64)> {
        if let Some(redis) = &self.redis
            && let Ok(state) = redis.read(counter).await
        {
            return state;
        }
        self.local.read(counter)
    }
}

#[cfg(test)]
mod tests;
