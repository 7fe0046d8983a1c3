//! Anthropic's Messages API as a way in: `POST /v1/messages` and `/v1/messages/count_tokens`.
//!
//! A Messages body is translated once into the OpenAI chat body the pipeline runs
//! ([`request`]), so keys, limits, budgets, the cache and metering treat it exactly as the
//! OpenAI route does; the answer is written back in Anthropic's shape ([`response`], and
//! [`stream`] for its typed events), and so are errors and the rate-limit headers.

pub mod request;
pub mod response;
pub mod stream;
