//! Azure OpenAI: the OpenAI wire format behind deployment paths, `api-key` auth and a
//! mandatory `api-version` query parameter.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::behaviour::State;
use crate::openai::{self, Dialect};

/// `POST /openai/deployments/{deployment}/chat/completions`.
pub(crate) async fn chat(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let deployment = req.match_info().get("deployment").unwrap_or_default();
    openai::serve_chat(&state, &req, body, Dialect::Azure { deployment }, None).await
}

/// `POST /openai/deployments/{deployment}/embeddings`.
pub(crate) async fn embeddings(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let deployment = req.match_info().get("deployment").unwrap_or_default();
    openai::serve_embeddings(&state, &req, body, Dialect::Azure { deployment }).await
}
