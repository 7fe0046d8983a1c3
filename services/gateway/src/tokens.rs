//! Counting tokens ourselves, for the rare upstream that reports no usage: billing must not
//! depend on a provider's goodwill. Uses OpenAI's o200k tokenizer, loaded on first use only (it
//! costs ~20 MB and ~100 ms), and always off the request path.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

use crate::openai::request::{ChatRequest, EmbeddingInput, EmbeddingsRequest};

/// Per-message framing tokens in OpenAI's chat format.
const TOKENS_PER_MESSAGE: u64 = 3;
/// Tokens that prime every assistant reply.
const REPLY_PRIMER: u64 = 3;

fn encoder() -> Option<&'static CoreBPE> {
    static ENCODER: OnceLock<Option<CoreBPE>> = OnceLock::new();
    ENCODER
        .get_or_init(|| match tiktoken_rs::o200k_base() {
            Ok(bpe) => Some(bpe),
            Err(err) => {
                tracing::error!(%err, "cannot load the tokenizer; falling back to 4 bytes per token");
                None
            }
        })
        .as_ref()
}

/// Tokens in `text`.
pub fn count(text: &str) -> u64 {
    match encoder() {
        Some(bpe) => bpe.encode_ordinary(text).len() as u64,
        None => (text.len() as u64).div_ceil(4),
    }
}

/// Prompt tokens of a chat request, counted the way OpenAI frames messages.
pub fn chat_prompt(request: &ChatRequest) -> u64 {
    chat_prompt_with(request, count)
}

/// A quick estimate of [`chat_prompt`] (about four bytes a token) that needs no tokenizer: for
/// reservations that are corrected with the real usage afterwards.
pub fn chat_prompt_estimate(request: &ChatRequest) -> u64 {
    chat_prompt_with(request, estimate)
}

fn estimate(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

fn chat_prompt_with(request: &ChatRequest, count: impl Fn(&str) -> u64) -> u64 {
    let mut total = REPLY_PRIMER;
    for message in &request.messages {
        total += TOKENS_PER_MESSAGE;
        if let Some(content) = &message.content {
            total += count(&content.text());
        }
        for call in message.tool_calls.iter().flatten() {
            total += count(&call.function.name) + count(&call.function.arguments);
        }
    }
    total
}

/// Input tokens of an embeddings request.
pub fn embeddings_input(request: &EmbeddingsRequest) -> u64 {
    embeddings_input_with(request, count)
}

/// A quick estimate of [`embeddings_input`] that needs no tokenizer.
pub fn embeddings_input_estimate(request: &EmbeddingsRequest) -> u64 {
    embeddings_input_with(request, estimate)
}

fn embeddings_input_with(request: &EmbeddingsRequest, count: impl Fn(&str) -> u64) -> u64 {
    match &request.input {
        EmbeddingInput::One(text) => count(text),
        EmbeddingInput::Many(texts) => texts.iter().map(|t| count(t)).sum(),
        EmbeddingInput::Tokens(tokens) => tokens.len() as u64,
        EmbeddingInput::ManyTokens(lists) => lists.iter().map(|l| l.len() as u64).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_like_openais_tokenizer() {
        assert_eq!(count("Hello world"), 2);
        assert_eq!(count(""), 0);
        let request: ChatRequest = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello world"}]}"#,
        )
        .unwrap();
        // 3 primer + 2 × 3 framing + "Be brief." (4) + "Hello world" (2)
        assert_eq!(chat_prompt(&request), 3 + 6 + count("Be brief.") + 2);
    }
}
