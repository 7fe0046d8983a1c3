//! Tollgate's billing service: rate limits ([`limits`]) and budgets ([`budgets`]), shared
//! through Redis between gateway replicas or kept in process, decided together in one step
//! by the rules of [`admission`]; the usage journal, ledger and
//! rollups ([`usage`]); budget alerts ([`alerts`]); what organizations owe and how they pay it
//! through Stripe ([`payments`]).

pub mod admission;
pub mod alerts;
pub mod budgets;
mod fallback;
pub mod limits;
pub mod payments;
mod script;
#[cfg(test)]
mod test_redis;
pub mod usage;

pub use admission::{
    Admission, AdmissionError, AdmissionGate, Admitted, Estimate, Held, PolicyInput, Refusal,
};
pub use alerts::BudgetAlerts;
pub use budgets::{BudgetCounters, BudgetError, Charge};
pub use fallback::{Counted, OnRedisFailure};
pub use limits::{Bucket, BucketState, Decision, LimitError, RateLimiter};
pub use script::{AdmissionRequest, Settlement, Verdict};
