//! The OpenAI response shapes adapters produce: completions, stream chunks, embeddings, usage.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tollgate_common::TokenUsage;

use super::request::ToolCall;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatCompletion {
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub logprobs: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: String,
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    #[serde(default)]
    pub cached_tokens: u64,
}

impl Usage {
    pub fn new(prompt: u64, completion: u64, cached: u64) -> Self {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: (cached > 0).then_some(PromptTokensDetails {
                cached_tokens: cached,
            }),
        }
    }

    pub fn tokens(&self) -> TokenUsage {
        TokenUsage {
            input_tokens: self.prompt_tokens,
            output_tokens: self.completion_tokens,
            cached_input_tokens: self.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
        }
    }
}

impl From<TokenUsage> for Usage {
    fn from(t: TokenUsage) -> Self {
        Usage::new(t.input_tokens, t.output_tokens, t.cached_input_tokens)
    }
}

/// One `data:` event of a streamed chat completion.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolCallDelta {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub function: FunctionCallDelta,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

impl ChatCompletionChunk {
    /// Appends this chunk as one SSE event (`data: {...}\n\n`) to `out`.
    pub fn write_sse(&self, out: &mut bytes::BytesMut) {
        out.extend_from_slice(b"data: ");
        // Serializing plain structs of strings and numbers cannot fail.
        if let Ok(json) = serde_json::to_vec(self) {
            out.extend_from_slice(&json);
        }
        out.extend_from_slice(b"\n\n");
    }
}

/// The event that ends every OpenAI stream.
pub const SSE_DONE: &[u8] = b"data: [DONE]\n\n";

/// A whole chat completion replayed as the stream OpenAI would have sent: per choice, a chunk
/// with the role and the content (and tool calls), then one with the finish reason; the usage
/// chunk when the client asked for it; `[DONE]`. `None` when `body` is not a chat completion.
pub fn completion_as_stream(body: &[u8], include_usage: bool) -> Option<Bytes> {
    use serde_json::{Value, json};
    let answer: Value = serde_json::from_slice(body).ok()?;
    let choices = answer.get("choices")?.as_array()?;
    let chunk = |choices: Value, usage: Option<&Value>| {
        let mut chunk = json!({
            "id": answer["id"],
            "object": "chat.completion.chunk",
            "created": answer["created"],
            "model": answer["model"],
            "choices": choices,
        });
        if let Some(fingerprint) = answer.get("system_fingerprint") {
            chunk["system_fingerprint"] = fingerprint.clone();
        }
        if let Some(usage) = usage {
            chunk["usage"] = usage.clone();
        } else if include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    };
    let mut out = BytesMut::new();
    let mut push = |event: Value| {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(event.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    };
    for (index, choice) in choices.iter().enumerate() {
        let message = &choice["message"];
        let mut delta = json!({ "role": "assistant", "content": message["content"] });
        if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
            let indexed: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, call)| {
                    let mut call = call.clone();
                    call["index"] = json!(i);
                    call
                })
                .collect();
            delta["tool_calls"] = Value::Array(indexed);
        }
        let index = choice.get("index").cloned().unwrap_or(json!(index));
        push(chunk(
            json!([{ "index": index, "delta": delta, "logprobs": null, "finish_reason": null }]),
            None,
        ));
        push(chunk(
            json!([{ "index": index, "delta": {}, "logprobs": null, "finish_reason": choice["finish_reason"] }]),
            None,
        ));
    }
    if include_usage && let Some(usage) = answer.get("usage") {
        push(chunk(json!([]), Some(usage)));
    }
    out.extend_from_slice(SSE_DONE);
    Some(out.freeze())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingsResponse {
    /// Always `list`.
    pub object: String,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: EmbeddingsUsage,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Embedding {
    /// Always `embedding`.
    pub object: String,
    pub index: u32,
    pub embedding: EmbeddingVector,
}

/// A vector as the client asked for it: a list of floats, or with `encoding_format: base64`
/// the little-endian float32 bytes in standard base64 (OpenAI's encoding, which its SDKs decode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingVector {
    Floats(Vec<f32>),
    Base64(String),
}

impl EmbeddingVector {
    pub fn encode(values: Vec<f32>, base64: bool) -> Self {
        if !base64 {
            return EmbeddingVector::Floats(values);
        }
        use base64::Engine as _;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct EmbeddingsUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

/// Seconds since the Unix epoch, for `created` fields.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
