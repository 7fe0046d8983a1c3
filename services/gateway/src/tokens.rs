//! Counting tokens ourselves, for the rare upstream that reports no usage: billing must not
//! depend on a provider's goodwill. Uses OpenAI's o200k tokenizer, loaded on first use only (it
//! costs ~20 MB and ~100 ms), and always off the request path.

use std::sync::OnceLock;

use serde_json::value::RawValue;
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

/// A quick estimate of [`chat_prompt`] ([`estimate`]) read straight from the request's
/// `messages` JSON, for reservations that are corrected with the real usage afterwards: it
/// needs neither the tokenizer nor the typed request. Text counts as written in the JSON
/// (escapes included, so a little over); an image as [`IMAGE_TOKENS`]; audio and files by
/// their encoded size, a token for every four bytes (more than any provider charges for
/// them, as a reservation must be). `None` when `messages` is not an array of message
/// objects.
pub fn chat_prompt_estimate(messages: &[u8]) -> Option<u64> {
    let messages: Vec<PromptMessage<'_>> = serde_json::from_slice(messages).ok()?;
    let mut total = REPLY_PRIMER;
    for message in messages {
        total += TOKENS_PER_MESSAGE;
        if let Some(content) = message.content {
            total += content_estimate(content)?;
        }
        if let Some(calls) = message.tool_calls {
            total += estimate(calls.get());
        }
    }
    Some(total)
}

/// The parts of a message [`chat_prompt_estimate`] reads, borrowed from the request.
#[derive(serde::Deserialize)]
struct PromptMessage<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<&'a RawValue>,
}

/// A content part: text carries `text`, images `image_url`, audio `input_audio` and files
/// `file`; only their presence and size matter here.
#[derive(serde::Deserialize)]
struct PromptPart<'a> {
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    image_url: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input_audio: Option<&'a RawValue>,
    #[serde(borrow, default)]
    file: Option<&'a RawValue>,
}

/// Tokens reserved for one image: the most that OpenAI (a high-detail image at its largest,
/// 768 by 2,048 pixels: 1,445) and Anthropic (about 1,600 at 1.15 megapixels) charge for one;
/// Gemini charges 258 for each 768-pixel tile.
pub const IMAGE_TOKENS: u64 = 1_600;

impl PromptPart<'_> {
    fn estimate(&self) -> u64 {
        let text = self.text.map_or(0, |text| estimate(unquoted(text.get())));
        let image = if self.image_url.is_some() {
            IMAGE_TOKENS
        } else {
            0
        };
        let encoded = [self.input_audio, self.file]
            .into_iter()
            .flatten()
            .map(|data| (data.get().len() as u64).div_ceil(4))
            .sum::<u64>();
        text + image + encoded
    }
}

/// Tokens of a message's `content`: a string, null, or an array of parts.
fn content_estimate(content: &RawValue) -> Option<u64> {
    let json = content.get();
    match json.as_bytes().first() {
        Some(b'"') => Some(estimate(unquoted(json))),
        Some(b'[') => {
            let parts: Vec<PromptPart<'_>> = serde_json::from_str(json).ok()?;
            Some(parts.iter().map(PromptPart::estimate).sum())
        }
        _ => Some(0),
    }
}

/// A JSON string's text between its quotes (anything else as it is).
fn unquoted(json: &str) -> &str {
    json.strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(json)
}

/// Tokens of a request member that providers turn into prompt text (tool and function
/// definitions, a response schema), estimated from its JSON.
pub fn json_estimate(json: &[u8]) -> u64 {
    std::str::from_utf8(json).map_or((json.len() as u64).div_ceil(4), estimate)
}

/// Tokens in `text` without the tokenizer: about four bytes a token of ASCII, and a token for
/// every other character (Chinese, Japanese, Korean and most other scripts take about one
/// token a character, where four bytes a token would count a third of that).
fn estimate(text: &str) -> u64 {
    let (ascii, others) = text.bytes().fold((0u64, 0u64), |(ascii, others), b| {
        // Non-ASCII characters counted by their first byte: 0xC0 and above.
        (
            ascii + u64::from(b.is_ascii()),
            others + u64::from(b >= 0xC0),
        )
    });
    ascii.div_ceil(4) + others
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

    #[test]
    fn estimates_text_from_the_json_and_reserves_for_images_audio_and_files() {
        let text = "x".repeat(400);
        let image = format!("data:image/png;base64,{}", "A".repeat(40_000));
        let messages = serde_json::json!([
            {"role": "system", "content": text},
            {"role": "user", "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": image}},
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            ]},
        ]);
        let raw = serde_json::to_vec(&messages).unwrap();
        let calls = serde_json::to_string(&messages[2]["tool_calls"]).unwrap();
        let expected = 3 + 3 * 3 + 100 + 100 + IMAGE_TOKENS + (calls.len() as u64).div_ceil(4);
        assert_eq!(chat_prompt_estimate(&raw), Some(expected));
        let audio = serde_json::json!({"data": "B".repeat(8_000), "format": "wav"});
        let file = serde_json::json!({"file_data": "C".repeat(4_000), "filename": "a.pdf"});
        let media = serde_json::to_vec(&serde_json::json!([{"role": "user", "content": [
            {"type": "input_audio", "input_audio": audio},
            {"type": "file", "file": file},
        ]}]))
        .unwrap();
        let encoded = (audio.to_string().len() as u64).div_ceil(4)
            + (file.to_string().len() as u64).div_ceil(4);
        assert_eq!(chat_prompt_estimate(&media), Some(3 + 3 + encoded));
        // The typed count agrees to within the tool call's JSON framing.
        let request: ChatRequest =
            serde_json::from_value(serde_json::json!({"model": "m", "messages": messages}))
                .unwrap();
        assert!(chat_prompt(&request) <= expected);
    }

    #[test]
    fn an_estimate_counts_other_scripts_a_token_a_character() {
        assert_eq!(estimate("Hello world!"), 3);
        assert_eq!(estimate("你好，世界"), 5);
        assert!(estimate("你好，世界") >= count("你好，世界"));
        let messages = serde_json::to_vec(&serde_json::json!([
            {"role": "user", "content": "こんにちは"},
        ]))
        .unwrap();
        assert_eq!(chat_prompt_estimate(&messages), Some(3 + 3 + 5));
    }

    #[test]
    fn an_estimate_needs_an_array_of_messages() {
        assert_eq!(chat_prompt_estimate(b"\"hi\""), None);
        assert_eq!(chat_prompt_estimate(b"[1]"), None);
        assert_eq!(chat_prompt_estimate(b"[{\"content\": 5}]"), Some(3 + 3));
    }
}
