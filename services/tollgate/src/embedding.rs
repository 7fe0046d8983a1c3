//! The semantic cache's embedder that calls a provider's embeddings model through this
//! gateway's own routing (`cache.embedder.kind: provider`): the same providers, fail-over,
//! retries and circuit breakers as client requests. These calls are the deployment's own cost,
//! not a tenant's, so they are not metered to any organization.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tollgate_cache::embedder::{EmbedError, Embedder};
use tollgate_gateway::openai::response::{EmbeddingVector, EmbeddingsResponse};
use tollgate_gateway::openai::{Endpoint, InboundBody};
use tollgate_gateway::routing::{RouteGroup, Router};
use tollgate_gateway::upstream::{self, UpstreamBody, UpstreamSuccess};

/// Embeddings from a model group of this gateway.
pub struct RoutedEmbedder {
    group: Arc<RouteGroup>,
    client: reqwest::Client,
    model: String,
    name: String,
    dimensions: usize,
}

impl RoutedEmbedder {
    /// An embedder calling `model` (a model group of `router`), expecting `dimensions`.
    pub fn new(router: &Router, model: &str, dimensions: usize) -> Result<Self, String> {
        let group = router
            .resolve(model)
            .map_err(|_| format!("cache.embedder.model: no model group named `{model}`"))?;
        let client = upstream::build_client().map_err(|e| e.to_string())?;
        Ok(RoutedEmbedder {
            group,
            client,
            model: model.to_owned(),
            // The model and the size name the vector space: a change of either starts afresh.
            name: format!("provider:{model}:{dimensions}"),
            dimensions,
        })
    }

    fn unavailable(&self, reason: impl Into<String>) -> EmbedError {
        EmbedError::Unavailable {
            embedder: self.name.clone(),
            reason: reason.into(),
        }
    }

    fn bad_output(&self, reason: impl Into<String>) -> EmbedError {
        EmbedError::BadOutput {
            embedder: self.name.clone(),
            reason: reason.into(),
        }
    }
}

/// Scales `vector` to unit length; `None` for the zero vector.
fn normalised(mut vector: Vec<f32>) -> Option<Vec<f32>> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return None;
    }
    vector.iter_mut().for_each(|x| *x /= norm);
    Some(vector)
}

#[async_trait]
impl Embedder for RoutedEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let request = serde_json::json!({ "model": self.model, "input": texts });
        let raw = serde_json::to_vec(&request).map_err(|e| self.bad_output(e.to_string()))?;
        let body = InboundBody::parse(Endpoint::Embeddings, Bytes::from(raw))
            .map_err(|e| self.unavailable(e.to_string()))?;
        let sent = upstream::send(&self.client, &self.group, false, None, |target| {
            target
                .provider
                .adapter
                .embeddings_request(&target.model, &body)
        })
        .await;
        let (target, bytes) = match sent {
            Ok(UpstreamSuccess {
                target,
                body: UpstreamBody::Complete(bytes),
                ..
            }) => (target, bytes),
            Ok(_) => return Err(self.bad_output("a stream instead of a body")),
            Err(failure) => return Err(self.unavailable(failure.error.to_string())),
        };
        let translated = target
            .provider
            .adapter
            .embeddings_response(&target.model, &body, &bytes)
            .map_err(|e| self.bad_output(e))?;
        let mut answer: EmbeddingsResponse =
            serde_json::from_slice(&translated.body).map_err(|e| self.bad_output(e.to_string()))?;
        if answer.data.len() != texts.len() {
            return Err(self.bad_output(format!(
                "{} vectors for {} texts",
                answer.data.len(),
                texts.len()
            )));
        }
        answer.data.sort_by_key(|e| e.index);
        answer
            .data
            .into_iter()
            .map(|embedding| match embedding.embedding {
                EmbeddingVector::Floats(values) if values.len() == self.dimensions => {
                    normalised(values).ok_or_else(|| self.bad_output("a zero vector"))
                }
                EmbeddingVector::Floats(values) => Err(self.bad_output(format!(
                    "{} dimensions, cache.embedder.dimensions says {}",
                    values.len(),
                    self.dimensions
                ))),
                EmbeddingVector::Base64(_) => Err(self.bad_output("base64 vectors")),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_scaled_to_unit_length() {
        let unit = normalised(vec![3.0, 4.0]).unwrap_or_default();
        assert!((unit[0] - 0.6).abs() < 1e-6 && (unit[1] - 0.8).abs() < 1e-6);
        assert_eq!(normalised(vec![0.0, 0.0]), None);
    }
}
