//! Tollgate's billing service. For now: rate limits ([`limits`]), shared through Redis between
//! gateway replicas or kept in process.

pub mod limits;

pub use limits::{Bucket, BucketState, Decision, LimitError, OnRedisFailure, RateLimiter};
