//! OpenAI's wire format: the language every client speaks to Tollgate and every adapter
//! translates to and from.
//!
//! - [`endpoint`] names the OpenAI endpoints a body can be sent to.
//! - [`inbound`] reads only the top-level fields routing needs and keeps the client's bytes, so an
//!   OpenAI-shaped target gets them back untouched but for `model`.
//! - [`form`] reads the `multipart/form-data` bodies of audio transcriptions the same way.
//! - [`request`] is the fully typed request, parsed only when a target needs translation.
//! - [`response`] holds the response, chunk and embeddings shapes adapters produce.

pub mod endpoint;
pub mod form;
pub mod inbound;
pub mod request;
pub mod response;

pub use endpoint::Endpoint;
pub use inbound::{InboundBody, NativeBody};
