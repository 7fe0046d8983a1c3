//! OpenAI's Responses API as a way in: `POST /v1/responses`, stateless.
//!
//! A Responses body is translated once into the chat body the pipeline runs ([`request`]), so
//! every stage treats it as the chat route does, and any configured model can answer it; the
//! answer is written back as a `response` object ([`response`]) or its typed events
//! ([`stream`]). Errors keep OpenAI's shape, which both of its APIs share.

pub mod request;
pub mod response;
pub mod stream;
