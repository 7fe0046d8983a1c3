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
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// DeepSeek's count of prompt tokens its context cache served, in place of
    /// `prompt_tokens_details.cached_tokens`: read, never written.
    #[serde(default, skip_serializing)]
    pub prompt_cache_hit_tokens: Option<u64>,
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
            // Saturating: both come from an upstream, and a total that wrapped around would
            // report a huge answer as a small one.
            total_tokens: prompt.saturating_add(completion),
            prompt_tokens_details: (cached > 0).then_some(PromptTokensDetails {
                cached_tokens: cached,
            }),
            prompt_cache_hit_tokens: None,
        }
    }

    pub fn tokens(&self) -> TokenUsage {
        TokenUsage {
            input_tokens: self.prompt_tokens,
            output_tokens: self.completion_tokens,
            cached_input_tokens: self
                .prompt_tokens_details
                .map(|d| d.cached_tokens)
                .or(self.prompt_cache_hit_tokens)
                .unwrap_or(0),
        }
    }
}

impl From<TokenUsage> for Usage {
    fn from(t: TokenUsage) -> Self {
        Usage::new(t.input_tokens, t.output_tokens, t.cached_input_tokens)
    }
}

/// The text an answer generated (every choice's content, refusal and tool-call arguments, or a
/// legacy completion's `text`), for the tokenizer to count when the upstream reported no usage.
/// Empty for a body that is neither.
pub fn answer_text(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        choices: Vec<AnswerChoice>,
    }
    #[derive(Deserialize)]
    struct AnswerChoice {
        #[serde(default)]
        message: Option<AssistantMessage>,
        #[serde(default)]
        text: Option<String>,
    }
    let Ok(answer) = serde_json::from_slice::<Answer>(body) else {
        return String::new();
    };
    let mut text = String::new();
    for choice in answer.choices {
        text.extend(choice.text);
        let Some(message) = choice.message else {
            continue;
        };
        text.extend(message.content);
        text.extend(message.refusal);
        for call in message.tool_calls.into_iter().flatten() {
            text.push_str(&call.function.name);
            text.push_str(&call.function.arguments);
        }
    }
    text
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

/// The inverse of [`completion_as_stream`]: the chat completion a whole OpenAI stream amounts
/// to, so that a streamed answer can be kept and later served to either kind of request.
/// `usage` stands in when the stream carried none (the client did not ask for it). `None` when
/// the stream is not a complete chat completion: no chunks, an error event, no `[DONE]`, or a
/// choice without a finish reason.
pub fn stream_as_completion(sse: &[u8], usage: Option<TokenUsage>) -> Option<Bytes> {
    use serde_json::{Map, Value, json};

    #[derive(Default)]
    struct Assembled {
        content: Option<String>,
        refusal: Option<String>,
        /// By the tool call's index: id, type, name, arguments so far.
        tool_calls: std::collections::BTreeMap<u64, (Value, Value, String, String)>,
        finish_reason: Option<String>,
    }

    let mut head: Option<Value> = None;
    let mut choices: std::collections::BTreeMap<u64, Assembled> = Default::default();
    let mut stream_usage: Option<Value> = None;
    let mut done = false;
    for event in sse.split(|&b| b == b'\n') {
        let Some(data) = event.strip_prefix(b"data:") else {
            continue;
        };
        let data = data.trim_ascii();
        if data == b"[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value = serde_json::from_slice(data).ok()?;
        if chunk.get("error").is_some() {
            return None;
        }
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            stream_usage = Some(usage.clone());
        }
        if head.is_none() {
            head = Some(chunk.clone());
        }
        for choice in chunk.get("choices")?.as_array()? {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let assembled = choices.entry(index).or_default();
            let delta = &choice["delta"];
            if let Some(text) = delta.get("content").and_then(Value::as_str) {
                assembled.content.get_or_insert_default().push_str(text);
            }
            if let Some(text) = delta.get("refusal").and_then(Value::as_str) {
                assembled.refusal.get_or_insert_default().push_str(text);
            }
            for call in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let slot = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                let entry = assembled.tool_calls.entry(slot).or_insert_with(|| {
                    (Value::Null, json!("function"), String::new(), String::new())
                });
                if let Some(id) = call.get("id").filter(|v| !v.is_null()) {
                    entry.0 = id.clone();
                }
                if let Some(kind) = call.get("type").filter(|v| !v.is_null()) {
                    entry.1 = kind.clone();
                }
                let function = &call["function"];
                if let Some(name) = function.get("name").and_then(Value::as_str) {
                    entry.2.push_str(name);
                }
                if let Some(arguments) = function.get("arguments").and_then(Value::as_str) {
                    entry.3.push_str(arguments);
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                assembled.finish_reason = Some(reason.to_owned());
            }
        }
    }
    let head = head?;
    if !done || choices.is_empty() || choices.values().any(|c| c.finish_reason.is_none()) {
        return None;
    }
    let choices: Vec<Value> = choices
        .into_iter()
        .map(|(index, choice)| {
            let mut message = Map::new();
            message.insert("role".into(), json!("assistant"));
            message.insert("content".into(), json!(choice.content));
            if let Some(refusal) = choice.refusal {
                message.insert("refusal".into(), json!(refusal));
            }
            if !choice.tool_calls.is_empty() {
                let calls: Vec<Value> = choice
                    .tool_calls
                    .into_values()
                    .map(|(id, kind, name, arguments)| {
                        json!({ "id": id, "type": kind, "function": { "name": name, "arguments": arguments } })
                    })
                    .collect();
                message.insert("tool_calls".into(), Value::Array(calls));
            }
            json!({
                "index": index,
                "message": message,
                "logprobs": null,
                "finish_reason": choice.finish_reason,
            })
        })
        .collect();
    let usage =
        stream_usage.or_else(|| usage.and_then(|u| serde_json::to_value(Usage::from(u)).ok()));
    let mut completion = json!({
        "id": head["id"],
        "object": "chat.completion",
        "created": head["created"],
        "model": head["model"],
        "choices": choices,
    });
    if let Some(fingerprint) = head.get("system_fingerprint").filter(|v| !v.is_null()) {
        completion["system_fingerprint"] = fingerprint.clone();
    }
    if let Some(usage) = usage {
        completion["usage"] = usage;
    }
    serde_json::to_vec(&completion).ok().map(Bytes::from)
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_replayed_completion_assembles_back_to_itself() {
        let original = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-4o",
            "choices": [
                { "index": 0, "message": { "role": "assistant", "content": "Paris." }, "logprobs": null, "finish_reason": "stop" },
                { "index": 1, "message": { "role": "assistant", "content": null, "tool_calls": [
                    { "id": "call_1", "type": "function", "function": { "name": "lookup", "arguments": "{\"city\":\"Paris\"}" } }
                ] }, "logprobs": null, "finish_reason": "tool_calls" }
            ],
            "usage": { "prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15 }
        });
        let body = serde_json::to_vec(&original).unwrap_or_else(|e| panic!("{e}"));
        for include_usage in [true, false] {
            let stream =
                completion_as_stream(&body, include_usage).unwrap_or_else(|| panic!("replay"));
            let usage = TokenUsage {
                input_tokens: 12,
                output_tokens: 3,
                cached_input_tokens: 0,
            };
            let assembled =
                stream_as_completion(&stream, Some(usage)).unwrap_or_else(|| panic!("assemble"));
            assert_eq!(
                parse(&assembled),
                original,
                "include_usage: {include_usage}"
            );
        }
    }

    #[test]
    fn deltas_are_concatenated_per_choice_and_tool_call() {
        let sse = concat!(
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_9\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let assembled = parse(
            &stream_as_completion(sse.as_bytes(), None).unwrap_or_else(|| panic!("assemble")),
        );
        let message = &assembled["choices"][0]["message"];
        assert_eq!(message["content"], "Hello");
        assert_eq!(message["tool_calls"][0]["id"], "call_9");
        assert_eq!(
            message["tool_calls"][0]["function"]["arguments"],
            "{\"a\":1}"
        );
        assert!(assembled.get("usage").is_none());
    }

    #[test]
    fn an_unfinished_or_failed_stream_is_no_completion() {
        let chunk = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n";
        let finish = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
        let error = "data: {\"error\":{\"message\":\"cut\",\"type\":\"upstream_error\",\"param\":null,\"code\":\"stream_interrupted\"}}\n\n";
        let done = "data: [DONE]\n\n";
        assert!(
            stream_as_completion(format!("{chunk}{done}").as_bytes(), None).is_none(),
            "no finish reason"
        );
        assert!(
            stream_as_completion(format!("{chunk}{finish}").as_bytes(), None).is_none(),
            "no [DONE]"
        );
        assert!(
            stream_as_completion(format!("{chunk}{error}").as_bytes(), None).is_none(),
            "an error event"
        );
        assert!(
            stream_as_completion(done.as_bytes(), None).is_none(),
            "no chunks"
        );
        assert!(stream_as_completion(format!("{chunk}{finish}{done}").as_bytes(), None).is_some());
    }
}
