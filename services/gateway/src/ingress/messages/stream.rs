//! The pipeline's OpenAI chunks as Anthropic's stream of typed events.
//!
//! Anthropic's order: `message_start`, `ping`, then per content block `content_block_start`,
//! its `content_block_delta`s and `content_block_stop`, then `message_delta` (stop reason and
//! usage) and `message_stop`. A block is opened by the first chunk of its kind (text, or a tool
//! call with a new index) and closed when another kind begins or the stream ends. OpenAI's
//! error event becomes Anthropic's `error` event, after which nothing more is sent.

use bytes::BytesMut;
use serde_json::{Value, json};

use super::response::{message_id, stop_reason, usage};
use crate::ingress::StreamEncoder;
use crate::openai::response::{ChatCompletionChunk, Usage};
use crate::providers::sse::SseDecoder;

/// The content block being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    /// A tool call, by its index among OpenAI's `tool_calls`.
    Tool(u32),
}

#[derive(Debug, Default)]
pub struct MessagesEvents {
    decoder: SseDecoder,
    started: bool,
    /// The open block and its index among the message's content blocks.
    open: Option<(Block, u32)>,
    blocks: u32,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    /// Ended by `message_stop` or an error: nothing more is written.
    ended: bool,
    /// The stream is Anthropic's own (a target of the same API): its events pass as they are,
    /// and only the gateway's OpenAI-shaped error events are rewritten.
    relaying: bool,
    id: String,
    model: String,
}

impl MessagesEvents {
    pub fn new() -> Self {
        Self::default()
    }

    /// For a stream already in Anthropic's events.
    pub fn relaying() -> Self {
        MessagesEvents {
            relaying: true,
            ..Self::default()
        }
    }

    fn chunk(&mut self, chunk: ChatCompletionChunk, out: &mut BytesMut) {
        if !self.started {
            self.id = message_id(&chunk.id);
            self.model = chunk.model.clone();
            self.start(out);
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        // Anthropic messages have one answer; `n` is never asked for on this route.
        let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) else {
            return;
        };
        let delta = choice.delta;
        for text in [delta.content, delta.refusal].into_iter().flatten() {
            if text.is_empty() {
                continue;
            }
            self.open_block(Block::Text, out, |_| json!({"type": "text", "text": ""}));
            self.delta(json!({"type": "text_delta", "text": text}), out);
        }
        for call in delta.tool_calls.unwrap_or_default() {
            let id = call.id.clone();
            let name = call.function.name.clone();
            if id.is_some() || self.open.map(|(b, _)| b) != Some(Block::Tool(call.index)) {
                self.close_block(out);
                self.open_block(Block::Tool(call.index), out, |_| {
                    json!({
                        "type": "tool_use",
                        "id": id.unwrap_or_default(),
                        "name": name.unwrap_or_default(),
                        "input": {},
                    })
                });
            }
            if let Some(arguments) = call.function.arguments.filter(|a| !a.is_empty()) {
                self.delta(
                    json!({"type": "input_json_delta", "partial_json": arguments}),
                    out,
                );
            }
        }
        if let Some(reason) = choice.finish_reason {
            self.finish_reason = Some(reason);
        }
    }

    fn start(&mut self, out: &mut BytesMut) {
        self.started = true;
        let message = json!({
            "type": "message_start",
            "message": {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                // The counts come with `message_delta`: OpenAI's last chunk carries them.
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        });
        write_event(out, "message_start", &message);
        write_event(out, "ping", &json!({"type": "ping"}));
    }

    /// Opens a block of `kind` unless one is already open.
    fn open_block(&mut self, kind: Block, out: &mut BytesMut, start: impl FnOnce(u32) -> Value) {
        if self.open.map(|(b, _)| b) == Some(kind) {
            return;
        }
        self.close_block(out);
        let index = self.blocks;
        self.blocks += 1;
        self.open = Some((kind, index));
        let event = json!({
            "type": "content_block_start",
            "index": index,
            "content_block": start(index),
        });
        write_event(out, "content_block_start", &event);
    }

    fn close_block(&mut self, out: &mut BytesMut) {
        if let Some((_, index)) = self.open.take() {
            write_event(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    fn delta(&mut self, delta: Value, out: &mut BytesMut) {
        let Some((_, index)) = self.open else { return };
        write_event(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        );
    }

    fn done(&mut self, out: &mut BytesMut) {
        if !self.started {
            self.start(out);
        }
        self.close_block(out);
        let mut usage = usage(self.usage.unwrap_or_default());
        if let Some(usage) = usage.as_object_mut() {
            usage.remove("cache_creation_input_tokens");
        }
        write_event(
            out,
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {
                    "stop_reason": stop_reason(self.finish_reason.as_deref()),
                    "stop_sequence": null,
                },
                "usage": usage,
            }),
        );
        write_event(out, "message_stop", &json!({"type": "message_stop"}));
        self.ended = true;
    }

    fn error(&mut self, error: &Value, out: &mut BytesMut) {
        let message = error["message"].as_str().unwrap_or("The stream failed.");
        let kind = match error["code"].as_str() {
            Some("metering_unavailable") => "overloaded_error",
            _ => "api_error",
        };
        write_event(
            out,
            "error",
            &json!({"type": "error", "error": {"type": kind, "message": message}}),
        );
        self.ended = true;
    }
}

impl StreamEncoder for MessagesEvents {
    fn encode(&mut self, openai: &[u8], out: &mut BytesMut) {
        self.decoder.push(openai);
        while let Some(event) = self.decoder.next_event() {
            if self.ended {
                continue;
            }
            // Anthropic's own events are named; the gateway's error events are not.
            if self.relaying && event.event.is_some() {
                out.extend_from_slice(&event.raw);
                continue;
            }
            if event.data == "[DONE]" {
                self.done(out);
                continue;
            }
            let Ok(value) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            if let Some(error) = value.get("error") {
                self.error(error, out);
                continue;
            }
            if let Ok(chunk) = serde_json::from_value::<ChatCompletionChunk>(value) {
                self.chunk(chunk, out);
            }
        }
    }
}

fn write_event(out: &mut BytesMut, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(openai: &str) -> Vec<(String, Value)> {
        let mut encoder = MessagesEvents::new();
        let mut out = BytesMut::new();
        // Fed in two uneven halves: the encoder must not care where the bytes split.
        let (a, b) = openai.split_at(openai.len() / 3);
        encoder.encode(a.as_bytes(), &mut out);
        encoder.encode(b.as_bytes(), &mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (name, data) = e.split_once('\n').unwrap();
                let name = name.strip_prefix("event: ").unwrap().to_owned();
                let data = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                (name, data)
            })
            .collect()
    }

    fn sse(chunks: &[Value]) -> String {
        let mut out: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        out.push_str("data: [DONE]\n\n");
        out
    }

    fn chunk(delta: Value, finish: Option<&str>) -> Value {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    #[test]
    fn text_then_tool_call_in_anthropics_order() {
        let usage = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                           "model": "m", "choices": [],
                           "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}});
        let stream = sse(&[
            chunk(json!({"role": "assistant", "content": ""}), None),
            chunk(json!({"content": "Hel"}), None),
            chunk(json!({"content": "lo"}), None),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                       "function": {"name": "f", "arguments": ""}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
            usage,
        ]);
        let events = events(&stream);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        assert_eq!(events[0].1["message"]["id"], "msg_1");
        assert_eq!(events[3].1["delta"]["text"], "Hel");
        assert_eq!(
            events[6].1["content_block"],
            json!({"type": "tool_use", "id": "call_1", "name": "f", "input": {}})
        );
        assert_eq!(events[6].1["index"], 1);
        assert_eq!(events[8].1["delta"]["partial_json"], "1}");
        assert_eq!(events[10].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(events[10].1["usage"]["output_tokens"], 5);
        assert_eq!(events[10].1["usage"]["input_tokens"], 12);
    }

    #[test]
    fn an_error_event_ends_the_stream() {
        let stream = format!(
            "data: {}\n\ndata: {}\n\n",
            chunk(json!({"content": "par"}), None),
            json!({"error": {"message": "The upstream stream was interrupted: boom",
                             "type": "upstream_error", "code": "stream_interrupted"}})
        );
        let events = events(&stream);
        let last = events.last().unwrap();
        assert_eq!(last.0, "error");
        assert_eq!(last.1["error"]["type"], "api_error");
        assert!(!events.iter().any(|(n, _)| n == "message_stop"));
    }

    #[test]
    fn an_empty_stream_is_still_a_whole_message() {
        let names: Vec<String> = events("data: [DONE]\n\n")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            ["message_start", "ping", "message_delta", "message_stop"]
        );
    }
}
