//! A request's rate limits and budgets decided in one step: every bucket and every budget has
//! room and all are charged, or none is. With Redis this is one script call, so admission
//! costs one round trip however many limits and budgets apply; without Redis (or while it is
//! unreachable) the process's own windows and counters decide, one after the other.
//!
//! The rules of what a request is counted against live in [`policy`]; this module is the
//! mechanism that counts.

mod policy;

use std::sync::Arc;

use crate::budgets::{BudgetCounters, BudgetError, Reservation};
use crate::fallback::Counted;
use crate::limits::{LimitError, RateLimiter};
use crate::script::{AdmissionRequest, Settlement, Verdict, run_script, run_settle};

pub use policy::{Admission, Admitted, Estimate, Held, PolicyInput, Refusal};

#[derive(Debug, Clone, thiserror::Error)]
pub enum AdmissionError {
    #[error(transparent)]
    Limits(#[from] LimitError),
    #[error(transparent)]
    Budgets(#[from] BudgetError),
}

/// Rate limits and budgets together.
pub struct AdmissionGate {
    limiter: Arc<RateLimiter>,
    budgets: Arc<BudgetCounters>,
}

impl AdmissionGate {
    pub fn new(limiter: Arc<RateLimiter>, budgets: Arc<BudgetCounters>) -> Self {
        AdmissionGate { limiter, budgets }
    }

    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.limiter
    }

    pub fn budgets(&self) -> &Arc<BudgetCounters> {
        &self.budgets
    }

    /// Corrects a finished request's reservations off the caller's path: in one Redis round
    /// trip when both were counted in Redis, else each where it was counted.
    pub fn settle_in_background(
        &self,
        settlement: Settlement,
        limits: Counted,
        budgets: Option<Counted>,
    ) {
        let all_in_redis = limits == Counted::Redis && budgets.is_none_or(|b| b == Counted::Redis);
        if let (true, Some(redis)) = (all_in_redis, self.limiter.redis_connection()) {
            let redis = redis.clone();
            tokio::spawn(async move {
                if let Err(err) = run_settle(&redis, &settlement).await {
                    tracing::warn!(%err, "cannot settle a request's reservations in Redis");
                }
            });
            return;
        }
        if let Some(counted) = budgets {
            self.budgets.settle_in_background(
                counted,
                settlement.counters,
                settlement.reserved,
                settlement.actual,
            );
        }
        self.limiter
            .adjust_in_background(settlement.id, limits, settlement.token_costs);
    }

    /// Decides on `request`, charging everything or nothing.
    pub async fn admit(&self, request: AdmissionRequest<'_>) -> Result<Verdict, AdmissionError> {
        if let Some(redis) = self.limiter.redis_connection()
            && self.limiter.redis_usable()
            && (request.charges.is_empty() || self.budgets.redis_usable())
        {
            match run_script(redis, request).await {
                Ok(verdict) => return Ok(verdict),
                Err(err) => {
                    tracing::warn!(%err, "admission: Redis unavailable, counting in this process");
                    self.limiter.mark_redis_down();
                    self.budgets.mark_redis_down();
                }
            }
        }
        // One after the other, each by its own policy (in process, or refused while Redis is
        // down); a budget's refusal gives back what the rate limits took.
        let (decision, limits) = self.limiter.acquire(request.id, request.buckets).await?;
        if !decision.allowed {
            return Ok(Verdict::Limited { decision });
        }
        if request.charges.is_empty() {
            return Ok(Verdict::Admitted {
                decision,
                limits,
                budgets: None,
            });
        }
        let release = || {
            let nothing = request.buckets.iter().map(|b| (b.key.clone(), 0)).collect();
            self.limiter
                .adjust_in_background(request.id.to_owned(), limits, nothing);
        };
        match self.budgets.reserve(request.charges, request.amount).await {
            Ok(Reservation::Admitted(counted)) => Ok(Verdict::Admitted {
                decision,
                limits,
                budgets: Some(counted),
            }),
            Ok(Reservation::Exhausted {
                index,
                spent,
                reserved,
            }) => {
                release();
                Ok(Verdict::OverBudget {
                    decision,
                    index,
                    spent,
                    reserved,
                })
            }
            Err(err) => {
                release();
                Err(err.into())
            }
        }
    }
}

#[cfg(test)]
mod tests;
