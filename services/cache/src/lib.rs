//! Tollgate's response cache: an exact tier (a hash of the canonical request, in memory and in
//! Redis when configured) and a semantic tier (an embedding of the question, searched in
//! Qdrant), looked up in that order. What a request's keys are, and which answers may be kept, is
//! [`request`]'s to say. The gateway reaches it through [`SemanticCache`]: in its own
//! process, or over HTTP in a separate cache service ([`http`], [`remote`]).

pub mod answers;
pub mod embedder;
pub mod guard;
pub mod http;
pub mod quality;
pub mod remote;
pub mod request;
pub mod shared;
pub mod store;

pub use answers::{AnswerCache, CacheHit, CacheMode, CacheRequest, CacheSettings, SemanticCache};
