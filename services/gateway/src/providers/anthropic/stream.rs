//! An Anthropic event stream as OpenAI `chat.completion.chunk` events.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::BytesMut;
use serde::Deserialize;
use tollgate_common::TokenUsage;

use super::request::JSON_OUTPUT_TOOL_PREFIX;
use super::response::{TokenCounts, WireError, WireUsage, finish_reason};
use crate::openai::response::{
    ChatCompletionChunk, ChunkChoice, Delta, FunctionCallDelta, SSE_DONE, ToolCallDelta, unix_now,
};
use crate::providers::StreamTranslator;
use crate::providers::sse::{SseDecoder, SseEvent};

#[derive(Deserialize)]
struct StreamEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<StartedMessage>,
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    content_block: Option<StartedBlock>,
    #[serde(default)]
    delta: Option<EventDelta>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct StartedMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct StartedBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

/// A `content_block_delta`'s or a `message_delta`'s `delta`.
#[derive(Deserialize)]
struct EventDelta {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

/// What a content block of the stream turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Ignored,
    Text,
    /// A tool call, with its index among the message's tool calls.
    Tool(u32),
    /// The structured-output tool: its input is streamed as content.
    JsonOutput,
}

pub(crate) struct AnthropicStream {
    decoder: SseDecoder,
    include_usage: bool,
    id: String,
    model: String,
    created: u64,
    started: bool,
    stopped: bool,
    /// By the upstream's block `index`: a map, not a vector, so that an index far past any
    /// real answer's costs one entry rather than sizing an allocation.
    blocks: BTreeMap<usize, BlockKind>,
    tool_calls: u32,
    json_output_seen: bool,
    counts: TokenCounts,
    output: String,
}

impl AnthropicStream {
    pub(crate) fn new(model: &str, include_usage: bool) -> Self {
        AnthropicStream {
            decoder: SseDecoder::new(),
            include_usage,
            id: String::new(),
            model: model.to_owned(),
            created: 0,
            started: false,
            stopped: false,
            blocks: BTreeMap::new(),
            tool_calls: 0,
            json_output_seen: false,
            counts: TokenCounts::default(),
            output: String::new(),
        }
    }

    fn emit(&self, out: &mut BytesMut, delta: Delta, finish_reason: Option<&str>) {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish_reason.map(str::to_owned),
            }],
            usage: None,
        }
        .write_sse(out);
    }

    fn emit_content(&mut self, out: &mut BytesMut, text: String) {
        if text.is_empty() {
            return;
        }
        self.output.push_str(&text);
        self.emit(
            out,
            Delta {
                content: Some(text),
                ..Delta::default()
            },
            None,
        );
    }

    fn emit_tool_delta(&self, out: &mut BytesMut, call: ToolCallDelta) {
        self.emit(
            out,
            Delta {
                tool_calls: Some(vec![call]),
                ..Delta::default()
            },
            None,
        );
    }

    fn block(&self, index: Option<usize>) -> BlockKind {
        index
            .and_then(|i| self.blocks.get(&i).copied())
            .unwrap_or(BlockKind::Ignored)
    }

    fn set_block(&mut self, index: usize, kind: BlockKind) {
        self.blocks.insert(index, kind);
    }

    fn handle(&mut self, event: SseEvent, out: &mut BytesMut) -> Result<(), String> {
        if self.stopped {
            return Ok(());
        }
        let event: StreamEvent = serde_json::from_str(&event.data)
            .map_err(|e| format!("Anthropic sent an unreadable stream event: {e}"))?;
        match event.kind.as_str() {
            "ping" => {}
            "error" => {
                let error = event.error.unwrap_or(WireError {
                    kind: None,
                    message: None,
                });
                return Err(error
                    .message
                    .or(error.kind)
                    .unwrap_or_else(|| "Anthropic reported an error in the stream".to_owned()));
            }
            "message_start" => {
                let message = event
                    .message
                    .ok_or("Anthropic sent a message_start event without a message")?;
                self.started = true;
                self.id = format!("chatcmpl-{}", message.id);
                if !message.model.is_empty() {
                    self.model = message.model;
                }
                self.created = unix_now();
                if let Some(usage) = &message.usage {
                    self.counts.update(usage);
                }
                self.emit(
                    out,
                    Delta {
                        role: Some("assistant".into()),
                        content: Some(String::new()),
                        ..Delta::default()
                    },
                    None,
                );
            }
            _ if !self.started => {
                return Err(format!(
                    "Anthropic sent a `{}` event before message_start",
                    event.kind
                ));
            }
            "content_block_start" => {
                let (Some(index), Some(block)) = (event.index, event.content_block) else {
                    return Ok(());
                };
                match block.kind.as_str() {
                    "text" => {
                        self.set_block(index, BlockKind::Text);
                        self.emit_content(out, block.text.unwrap_or_default());
                    }
                    "tool_use" => {
                        let name = block.name.unwrap_or_default();
                        if name.starts_with(JSON_OUTPUT_TOOL_PREFIX) {
                            let kind = if self.json_output_seen {
                                BlockKind::Ignored
                            } else {
                                BlockKind::JsonOutput
                            };
                            self.json_output_seen = true;
                            self.set_block(index, kind);
                        } else {
                            let n = self.tool_calls;
                            self.tool_calls += 1;
                            self.set_block(index, BlockKind::Tool(n));
                            self.emit_tool_delta(
                                out,
                                ToolCallDelta {
                                    index: n,
                                    id: block.id,
                                    kind: Some("function".into()),
                                    function: FunctionCallDelta {
                                        name: Some(name),
                                        arguments: Some(String::new()),
                                    },
                                },
                            );
                        }
                    }
                    _ => self.set_block(index, BlockKind::Ignored),
                }
            }
            "content_block_delta" => {
                let Some(delta) = event.delta else {
                    return Ok(());
                };
                match (self.block(event.index), delta.kind.as_deref()) {
                    (BlockKind::Text, Some("text_delta")) => {
                        self.emit_content(out, delta.text.unwrap_or_default());
                    }
                    (BlockKind::JsonOutput, Some("input_json_delta")) => {
                        self.emit_content(out, delta.partial_json.unwrap_or_default());
                    }
                    (BlockKind::Tool(n), Some("input_json_delta")) => {
                        let fragment = delta.partial_json.unwrap_or_default();
                        if !fragment.is_empty() {
                            self.emit_tool_delta(
                                out,
                                ToolCallDelta {
                                    index: n,
                                    id: None,
                                    kind: None,
                                    function: FunctionCallDelta {
                                        name: None,
                                        arguments: Some(fragment),
                                    },
                                },
                            );
                        }
                    }
                    // thinking, signature and citation deltas have no OpenAI form.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(usage) = &event.usage {
                    self.counts.update(usage);
                }
                let stop_reason = event.delta.and_then(|d| d.stop_reason);
                let finish = finish_reason(stop_reason.as_deref(), self.tool_calls > 0);
                self.emit(out, Delta::default(), Some(finish));
            }
            "message_stop" => {
                self.stopped = true;
                if self.include_usage {
                    ChatCompletionChunk {
                        id: self.id.clone(),
                        object: "chat.completion.chunk".into(),
                        created: self.created,
                        model: self.model.clone(),
                        choices: Vec::new(),
                        usage: Some(self.counts.usage()),
                    }
                    .write_sse(out);
                }
                out.extend_from_slice(SSE_DONE);
            }
            // content_block_stop, and event types added after this was written.
            _ => {}
        }
        Ok(())
    }
}

impl StreamTranslator for AnthropicStream {
    fn feed(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), String> {
        self.decoder.push(chunk);
        while let Some(event) = self.decoder.next_event() {
            self.handle(event, out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), String> {
        while let Some(event) = self.decoder.finish() {
            self.handle(event, out)?;
        }
        if self.stopped {
            Ok(())
        } else {
            Err("stream ended before message_stop".into())
        }
    }

    fn usage(&self) -> Option<TokenUsage> {
        self.started.then(|| self.counts.usage().tokens())
    }

    fn output_text(&self) -> &str {
        &self.output
    }
}

/// An Anthropic stream for a client of Anthropic's own API: every event is relayed as it came,
/// and only read for the usage and the text. `message_stop` is held back to `finish`, so that
/// the end of the answer goes out only after the upstream has ended and the usage is recorded.
pub(super) struct AnthropicRelay {
    decoder: SseDecoder,
    started: bool,
    held_stop: Option<bytes::Bytes>,
    counts: TokenCounts,
    output: String,
}

impl AnthropicRelay {
    pub(super) fn new() -> Self {
        AnthropicRelay {
            decoder: SseDecoder::new(),
            started: false,
            held_stop: None,
            counts: TokenCounts::default(),
            output: String::new(),
        }
    }

    fn relay(&mut self, event: SseEvent, out: &mut BytesMut) -> Result<(), String> {
        /// What the relay reads of an event: its type, usage and text, borrowed where the
        /// JSON allows (the event itself goes out as it came).
        #[derive(Deserialize)]
        struct RelayedEvent<'a> {
            #[serde(rename = "type", borrow)]
            kind: Cow<'a, str>,
            #[serde(default)]
            message: Option<RelayedMessage>,
            #[serde(default, borrow)]
            delta: Option<RelayedDelta<'a>>,
            #[serde(default)]
            usage: Option<WireUsage>,
            #[serde(default)]
            error: Option<WireError>,
        }
        #[derive(Deserialize)]
        struct RelayedMessage {
            #[serde(default)]
            usage: Option<WireUsage>,
        }
        #[derive(Deserialize)]
        struct RelayedDelta<'a> {
            #[serde(default, borrow)]
            text: Option<Cow<'a, str>>,
        }
        if self.held_stop.is_some() {
            return Ok(());
        }
        let parsed: RelayedEvent<'_> = serde_json::from_str(&event.data)
            .map_err(|e| format!("Anthropic sent an unreadable stream event: {e}"))?;
        match parsed.kind.as_ref() {
            "error" => {
                out.extend_from_slice(&event.raw);
                let error = parsed.error.unwrap_or(WireError {
                    kind: None,
                    message: None,
                });
                return Err(error
                    .message
                    .or(error.kind)
                    .unwrap_or_else(|| "Anthropic reported an error in the stream".to_owned()));
            }
            "message_start" => {
                self.started = true;
                if let Some(usage) = parsed.message.as_ref().and_then(|m| m.usage.as_ref()) {
                    self.counts.update(usage);
                }
            }
            "message_delta" => {
                if let Some(usage) = &parsed.usage {
                    self.counts.update(usage);
                }
            }
            "content_block_delta" => {
                if let Some(text) = parsed.delta.and_then(|d| d.text) {
                    self.output.push_str(&text);
                }
            }
            "message_stop" => {
                self.held_stop = Some(event.raw);
                return Ok(());
            }
            _ => {}
        }
        out.extend_from_slice(&event.raw);
        Ok(())
    }
}

impl StreamTranslator for AnthropicRelay {
    fn feed(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), String> {
        self.decoder.push(chunk);
        while let Some(event) = self.decoder.next_event() {
            self.relay(event, out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), String> {
        while let Some(event) = self.decoder.finish() {
            self.relay(event, out)?;
        }
        match self.held_stop.take() {
            Some(stop) => {
                out.extend_from_slice(&stop);
                Ok(())
            }
            None => Err("stream ended before message_stop".into()),
        }
    }

    fn usage(&self) -> Option<TokenUsage> {
        self.started.then(|| self.counts.usage().tokens())
    }

    fn output_text(&self) -> &str {
        &self.output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ProviderAdapter;
    use crate::providers::anthropic::tests::*;
    use crate::providers::tests_support::fixture;
    use rand::{Rng, SeedableRng};
    use serde_json::{Value, json};

    /// Feeds `stream` in pieces of the sizes `split` gives and returns the output as text.
    fn run_stream(
        translator: &mut dyn StreamTranslator,
        stream: &[u8],
        mut split: impl FnMut() -> usize,
    ) -> Result<String, String> {
        let mut out = BytesMut::new();
        let mut rest = stream;
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(split().min(rest.len()));
            translator.feed(piece, &mut out)?;
            rest = tail;
        }
        translator.finish(&mut out)?;
        Ok(String::from_utf8(out.to_vec()).unwrap())
    }

    /// The OpenAI events of a stream output, `created` removed; `[DONE]` as a string.
    fn events(output: &str) -> Vec<Value> {
        assert!(output.ends_with("\n\n"), "{output:?}");
        output
            .split_terminator("\n\n")
            .map(|event| {
                let data = event.strip_prefix("data: ").unwrap();
                assert!(!data.contains('\n'), "{event:?}");
                if data == "[DONE]" {
                    return json!("[DONE]");
                }
                let mut value: Value = serde_json::from_str(data).unwrap();
                assert_eq!(value["object"], "chat.completion.chunk");
                assert!(value["created"].as_u64().unwrap() > 0);
                value.as_object_mut().unwrap().remove("created");
                value
            })
            .collect()
    }

    fn stream_translator(wants_usage: bool) -> Box<dyn StreamTranslator> {
        let mut body = json!({"model": "smart", "messages": [user("hi")], "stream": true});
        if wants_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        adapter().chat_stream("claude-sonnet-4-5", &inbound(&body))
    }

    #[test]
    fn stream_translates_the_same_whatever_the_splits() {
        let stream = fixture("anthropic", "messages_stream.sse");
        let mut whole = stream_translator(true);
        let whole_out = run_stream(whole.as_mut(), &stream, || usize::MAX).unwrap();
        let expected = events(&whole_out);
        for seed in 0..20 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut translator = stream_translator(true);
            let out = run_stream(translator.as_mut(), &stream, || rng.random_range(1..13)).unwrap();
            assert_eq!(events(&out), expected, "seed {seed}");
            assert_eq!(translator.output_text(), "Hello, wörld! é\nHow can I help?");
        }

        let id = "chatcmpl-msg_01RtMhCQkYvJRQ4dQ3Hn5zW8";
        let model = "claude-sonnet-4-5-20250929";
        let chunk = |delta: Value, finish: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        assert_eq!(
            expected,
            vec![
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(json!({"content": "Hello"}), Value::Null),
                chunk(json!({"content": ", wörld! é\n"}), Value::Null),
                chunk(json!({"content": "How can I help?"}), Value::Null),
                chunk(json!({}), json!("stop")),
                json!({"id": id, "object": "chat.completion.chunk", "model": model, "choices": [],
                       "usage": {"prompt_tokens": 1049, "completion_tokens": 15, "total_tokens": 1064,
                                 "prompt_tokens_details": {"cached_tokens": 1024}}}),
                json!("[DONE]"),
            ]
        );
        assert!(whole_out.ends_with("data: [DONE]\n\n"));
        assert_eq!(
            whole.usage().unwrap(),
            TokenUsage {
                input_tokens: 1049,
                output_tokens: 15,
                cached_input_tokens: 1024
            }
        );
    }

    #[test]
    fn usage_chunk_only_when_the_client_asked() {
        let stream = fixture("anthropic", "messages_stream.sse");
        let mut translator = stream_translator(false);
        let out = run_stream(translator.as_mut(), &stream, || 5).unwrap();
        let events = events(&out);
        assert!(events.iter().all(|e| e.get("usage").is_none()), "{out}");
        assert!(
            events
                .iter()
                .all(|e| e == "[DONE]" || !e["choices"].as_array().unwrap().is_empty())
        );
        assert_eq!(events.last().unwrap(), "[DONE]");
        // The usage is still read, for billing.
        assert_eq!(translator.usage().unwrap().output_tokens, 15);
    }

    #[test]
    fn tool_calls_stream_as_openai_tool_call_deltas() {
        let stream = fixture("anthropic", "messages_stream_tool_use.sse");
        let mut rng = rand::rngs::StdRng::seed_from_u64(99);
        let mut translator = stream_translator(false);
        let out = run_stream(translator.as_mut(), &stream, || rng.random_range(1..13)).unwrap();
        let events = events(&out);
        let deltas: Vec<&Value> = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["tool_calls"].get(0))
            .collect();
        assert_eq!(
            deltas,
            vec![
                &json!({"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}),
                &json!({"index": 0, "function": {"arguments": "{\"location\":"}}),
                &json!({"index": 0, "function": {"arguments": " \"San Francisco, CA\"}"}}),
                &json!({"index": 1, "id": "toolu_01Hq7zT1d6a7uWhkPZd8Ksx2", "type": "function",
                        "function": {"name": "get_time", "arguments": ""}}),
                &json!({"index": 1, "function": {"arguments": "{\"timezone\": \"America/Los_Angeles\"}"}}),
            ]
        );
        let finish: Vec<&Value> = events
            .iter()
            .map(|e| &e["choices"][0]["finish_reason"])
            .filter(|f| !f.is_null())
            .collect();
        assert_eq!(finish, vec!["tool_calls"]);
        assert_eq!(translator.output_text(), "Let me check the weather.");
        let usage = translator.usage().unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (472, 89));
    }

    #[test]
    fn output_tool_streams_as_content_and_stops() {
        let stream = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_j\",\"model\":\"claude-haiku-4-5\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\n",
            "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_j\",\"name\":\"tollgate_json_output__answer\",\"input\":{}}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"answer\\\": \"}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"42\\\"}\"}}\n\n",
            "event: content_block_stop\n",
            "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":7}}\n\n",
            "event: message_stop\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        let mut translator = stream_translator(false);
        let out = run_stream(translator.as_mut(), stream.as_bytes(), || 3).unwrap();
        let events = events(&out);
        assert!(
            events
                .iter()
                .all(|e| e["choices"][0]["delta"].get("tool_calls").is_none())
        );
        let content: Value = serde_json::from_str(translator.output_text()).unwrap();
        assert_eq!(content, json!({"answer": "42"}));
        assert_eq!(
            events[events.len() - 2]["choices"][0]["finish_reason"],
            "stop"
        );
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let stream = fixture("anthropic", "messages_stream.sse");
        let text = String::from_utf8(stream).unwrap();
        let cut = text.find("event: message_delta").unwrap();
        let mut translator = stream_translator(true);
        let err = run_stream(translator.as_mut(), &text.as_bytes()[..cut], || 7).unwrap_err();
        assert_eq!(err, "stream ended before message_stop");
        // Input tokens were read before the stream broke off.
        assert_eq!(translator.usage().unwrap().input_tokens, 1049);

        let mut translator = stream_translator(false);
        assert!(run_stream(translator.as_mut(), b"", || 1).is_err());
        assert!(translator.usage().is_none());
    }

    #[test]
    fn error_event_is_an_error() {
        let stream = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_e\",\"model\":\"m\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
            "event: ping\n",
            "data: {\"type\": \"ping\"}\n\n",
            "event: error\n",
            "data: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
        );
        let mut translator = stream_translator(false);
        let err = run_stream(translator.as_mut(), stream.as_bytes(), || 11).unwrap_err();
        assert_eq!(err, "Overloaded");
    }

    #[test]
    fn a_relayed_stream_is_passed_on_byte_for_byte_with_its_usage_read() {
        let upstream = fixture("anthropic", "messages_stream.sse");
        for split in [1, 7, 64, upstream.len()] {
            let mut relay = AnthropicRelay::new();
            let mut out = BytesMut::new();
            for piece in upstream.chunks(split) {
                relay.feed(piece, &mut out).unwrap();
            }
            let before_finish = out.len();
            relay.finish(&mut out).unwrap();
            assert_eq!(&out[..], &upstream[..], "split {split}");
            // Only the closing `message_stop` waits for the end.
            assert!(String::from_utf8_lossy(&out[before_finish..]).contains("message_stop"));
            let usage = relay.usage().unwrap();
            assert!(
                usage.input_tokens > 0 && usage.output_tokens > 0,
                "{usage:?}"
            );
            assert!(!relay.output_text().is_empty());
        }
        let mut relay = AnthropicRelay::new();
        let mut out = BytesMut::new();
        relay
            .feed(&upstream[..upstream.len() / 2], &mut out)
            .unwrap();
        assert!(relay.finish(&mut out).is_err(), "a cut stream is an error");
    }
}
