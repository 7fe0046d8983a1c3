//! Embedders: text to vectors, behind one trait.
//!
//! The semantic tier stores one vector per cached question and answers a new question with
//! the cached response of its nearest neighbour, when the two are close enough (cosine
//! similarity over a threshold) and the near-miss guard (`crate::guard`) agrees. Every
//! embedder returns L2-normalised vectors, so cosine similarity is a plain dot product.
//!
//! The built-in [`HashedEmbedder`] needs no model files and runs in microseconds;
//! [`SentenceEmbedder`] runs a local sentence-transformers model (all-MiniLM-L6-v2) on the
//! CPU, knows synonyms and rewordings, and costs tens of milliseconds per lookup. Provider-
//! backed embedders implement the same [`Embedder`] trait.

mod hashed;
mod sentence;

pub use hashed::HashedEmbedder;
/// A local BERT-family sentence-transformers model (all-MiniLM-L6-v2) on the CPU.
pub use sentence::SentenceEmbedder;

/// Why an embedder could not turn texts into vectors.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The embedding backend (a model server, a provider) could not be reached or refused.
    #[error("embedder {embedder} is unavailable: {reason}")]
    Unavailable { embedder: String, reason: String },
    /// The embedding backend did not answer in time.
    #[error("embedder {embedder} timed out after {elapsed_ms} ms")]
    Timeout { embedder: String, elapsed_ms: u64 },
    /// The backend answered, but not with one vector of the right size per text.
    #[error("embedder {embedder} returned unusable output: {reason}")]
    BadOutput { embedder: String, reason: String },
    /// A local model's file is missing or unusable.
    #[error("cannot load embedding model file {}: {reason}", path.display())]
    Load {
        path: std::path::PathBuf,
        reason: String,
    },
    /// A local model failed while embedding (tokenising or its forward pass).
    #[error("embedder {embedder} failed: {reason}")]
    Failed { embedder: String, reason: String },
}

/// Turns texts into L2-normalised vectors; implemented by every embedder.
#[async_trait::async_trait]
pub trait Embedder: Send + Sync {
    /// A stable name, stored with every vector (vectors of different embedders never mix).
    fn name(&self) -> &str;
    /// The length of every vector this embedder returns.
    fn dimensions(&self) -> usize;
    /// One L2-normalised vector per text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Cosine similarity of two vectors; 0.0 when either is all zeros or their lengths differ.
///
/// Embedders already normalise, but vectors read back from a store or another embedder may
/// not be, so this divides by the norms rather than trusting them.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let mut dot = 0.0_f32;
    let mut norm_a = 0.0_f32;
    let mut norm_b = 0.0_f32;
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        norm_a += x * x;
        norm_b += y * y;
    }
    if norm_a == 0.0 || norm_b == 0.0 {
        return 0.0;
    }
    dot / (norm_a.sqrt() * norm_b.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_a_vector_with_itself_is_one() {
        let v = [0.6, 0.8, 0.0];
        assert!((cosine(&v, &v) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn cosine_of_orthogonal_vectors_is_zero() {
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 1.0]), 0.0);
    }

    #[test]
    fn cosine_ignores_length() {
        assert!((cosine(&[1.0, 1.0], &[3.0, 3.0]) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn cosine_of_mismatched_or_zero_vectors_is_zero() {
        assert_eq!(cosine(&[1.0, 0.0], &[1.0, 0.0, 0.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
