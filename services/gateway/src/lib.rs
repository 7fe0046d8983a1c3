//! Tollgate's gateway: one OpenAI-compatible API in front of every provider.
//!
//! How a request flows is written down in [`pipeline`]; the modules follow its stages:
//! [`openai`] (the wire format the pipeline speaks), [`ingress`] (the other APIs clients call), [`routing`] (model names to ordered targets),
//! [`upstream`] (sending, retries, fail-over), [`providers`] (one adapter per wire format),
//! the SSE relay that is the respond stage of a stream, [`pipeline::metering`] (usage and
//! cost), [`server`] (routes).

pub mod error;
pub mod ingress;
pub mod metrics;
pub mod openai;
pub mod pipeline;
pub mod providers;
pub mod routing;
pub mod server;
pub mod tokens;
pub mod upstream;

pub use error::GatewayError;
pub use pipeline::{Gateway, Stages};
pub use server::{RunningServer, StartError, build_gateway, start, start_with};
