//! Denied topics: a prompt (or answer) whose meaning is close to a topic's description, as
//! the semantic cache's embedder measures it, is refused.

use async_trait::async_trait;
use tokio::sync::OnceCell;

use crate::policy::{RuleName, Side};
use crate::text::Blocked;

/// Turns texts into L2-normalised vectors (the binary lends the semantic cache's embedder).
#[async_trait]
pub trait TopicEmbedder: Send + Sync {
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String>;
}

/// The most text of a prompt or answer embedded: the start carries its subject, and an
/// embedder's cost grows with its input.
const EMBEDDED_CHARS: usize = 2_000;

/// A side's topics' vectors, embedded on first use and kept with the compiled policy.
#[derive(Default)]
pub struct TopicVectors(OnceCell<Vec<Vec<f32>>>);

/// The topic of `side` that `text` is on, if any. An embedder that fails is an error for the
/// caller to decide on (the stage fails closed: the request is refused).
pub async fn check(
    side: &Side,
    embedder: &dyn TopicEmbedder,
    text: &str,
) -> Result<Result<(), Blocked>, String> {
    if side.topics.is_empty() || text.trim().is_empty() {
        return Ok(Ok(()));
    }
    let topics = side
        .topic_vectors
        .0
        .get_or_try_init(|| async {
            let descriptions: Vec<String> = side.topics.iter().map(|(t, _)| t.clone()).collect();
            embedder.embed(&descriptions).await
        })
        .await?;
    let text: String = text.chars().take(EMBEDDED_CHARS).collect();
    let vector = embedder
        .embed(&[text])
        .await?
        .pop()
        .ok_or("the embedder returned no vector")?;
    let closest = topics
        .iter()
        .zip(&side.topics)
        .map(|(topic, (_, rule))| (similarity(topic, &vector), rule))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    Ok(match closest {
        Some((score, rule)) if score >= side.topic_threshold => Err(refusal(rule)),
        _ => Ok(()),
    })
}

fn refusal(rule: &RuleName) -> Blocked {
    Blocked {
        rule: rule.clone(),
        reason: "the text is on a denied topic".into(),
    }
}

/// The dot product of two L2-normalised vectors (their cosine); 0 when their lengths differ.
fn similarity(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
