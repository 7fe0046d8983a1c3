//! Tollgate's response cache: an exact tier (a hash of the canonical request) and a semantic
//! tier (an embedding of the question, searched in Qdrant), looked up in that order.

pub mod answers;
pub mod embedder;
pub mod guard;
pub mod quality;
pub mod store;

pub use answers::{AnswerCache, CacheHit, CacheMode, CacheRequest, CacheSettings};
