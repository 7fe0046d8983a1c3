//! A Bedrock ConverseStream answer (an AWS event stream) as OpenAI `chat.completion.chunk`
//! events.
//!
//! Each event stream message names its event in the `:event-type` header and carries it as
//! JSON: `messageStart`, `contentBlockStart` (a tool call's id and name), `contentBlockDelta`
//! (text, or a piece of a tool call's input), `contentBlockStop`, `messageStop` (the stop
//! reason) and `metadata` (the usage), in that order. A message whose `:message-type` is
//! `exception` (or `error`) reports a failure mid-stream.
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html>

use std::collections::HashMap;

use bytes::BytesMut;
use serde::Deserialize;
use tollgate_common::TokenUsage;

use super::response::{WireUsage, completion_id, finish_reason};
use crate::openai::response::{
    ChatCompletionChunk, ChunkChoice, Delta, FunctionCallDelta, SSE_DONE, ToolCallDelta, unix_now,
};
use crate::providers::StreamTranslator;
use crate::providers::eventstream::{EventStreamDecoder, Message};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart {
    #[serde(default)]
    content_block_index: u32,
    #[serde(default)]
    start: Option<StartKind>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartKind {
    #[serde(default)]
    tool_use: Option<ToolUseStart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseStart {
    tool_use_id: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta {
    #[serde(default)]
    content_block_index: u32,
    #[serde(default)]
    delta: Option<DeltaKind>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeltaKind {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_use: Option<ToolUseDelta>,
}

#[derive(Deserialize)]
struct ToolUseDelta {
    #[serde(default)]
    input: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct ExceptionBody {
    #[serde(default, alias = "Message")]
    message: Option<String>,
}

pub(super) struct BedrockStream {
    decoder: EventStreamDecoder,
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    /// OpenAI's tool call index of each content block that is a tool call, by block index.
    tool_blocks: HashMap<u32, u32>,
    tool_calls: u32,
    usage: Option<WireUsage>,
    output: String,
    /// `messageStop` arrived (the finish reason went out).
    stopped: bool,
    /// `[DONE]` went out.
    done: bool,
}

impl BedrockStream {
    pub(super) fn new(model: &str, include_usage: bool) -> Self {
        BedrockStream {
            decoder: EventStreamDecoder::default(),
            id: completion_id(),
            model: model.to_owned(),
            created: unix_now(),
            include_usage,
            tool_blocks: HashMap::new(),
            tool_calls: 0,
            usage: None,
            output: String::new(),
            stopped: false,
            done: false,
        }
    }

    fn emit(&self, out: &mut BytesMut, delta: Delta, finish: Option<&str>) {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish.map(str::to_owned),
            }],
            usage: None,
        }
        .write_sse(out);
    }

    fn emit_tool_delta(&self, out: &mut BytesMut, call: ToolCallDelta) {
        let delta = Delta {
            tool_calls: Some(vec![call]),
            ..Delta::default()
        };
        self.emit(out, delta, None);
    }

    /// The usage chunk when the client asked for one, then `[DONE]`.
    fn close(&mut self, out: &mut BytesMut) {
        if self.include_usage
            && let Some(usage) = &self.usage
        {
            ChatCompletionChunk {
                id: self.id.clone(),
                object: "chat.completion.chunk".into(),
                created: self.created,
                model: self.model.clone(),
                choices: Vec::new(),
                usage: Some(usage.usage()),
            }
            .write_sse(out);
        }
        out.extend_from_slice(SSE_DONE);
        self.done = true;
    }

    fn handle(&mut self, message: &Message, out: &mut BytesMut) -> Result<(), String> {
        match message.header_str(":message-type") {
            Some("event") | None => {}
            Some("exception") => {
                let kind = message.header_str(":exception-type").unwrap_or("exception");
                let body: Option<ExceptionBody> = serde_json::from_slice(&message.payload).ok();
                let text = body.and_then(|b| b.message).unwrap_or_default();
                return Err(format!("Bedrock stream {kind}: {text}"));
            }
            Some(other) => {
                let code = message.header_str(":error-code").unwrap_or(other);
                let text = message.header_str(":error-message").unwrap_or_default();
                return Err(format!("Bedrock stream {code}: {text}"));
            }
        }
        if self.done {
            return Ok(());
        }
        let event = message.header_str(":event-type").unwrap_or_default();
        let read_error = |e: serde_json::Error| format!("unreadable Bedrock `{event}` event: {e}");
        match event {
            "messageStart" => {
                let delta = Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    ..Delta::default()
                };
                self.emit(out, delta, None);
            }
            "contentBlockStart" => {
                let start: BlockStart =
                    serde_json::from_slice(&message.payload).map_err(read_error)?;
                if let Some(tool) = start.start.and_then(|s| s.tool_use) {
                    let index = self.tool_calls;
                    self.tool_calls += 1;
                    self.tool_blocks.insert(start.content_block_index, index);
                    self.emit_tool_delta(
                        out,
                        ToolCallDelta {
                            index,
                            id: Some(tool.tool_use_id),
                            kind: Some("function".into()),
                            function: FunctionCallDelta {
                                name: Some(tool.name),
                                arguments: Some(String::new()),
                            },
                        },
                    );
                }
            }
            "contentBlockDelta" => {
                let block: BlockDelta =
                    serde_json::from_slice(&message.payload).map_err(read_error)?;
                let Some(delta) = block.delta else {
                    return Ok(());
                };
                if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                    self.output.push_str(&text);
                    let delta = Delta {
                        content: Some(text),
                        ..Delta::default()
                    };
                    self.emit(out, delta, None);
                }
                if let Some(tool) = delta.tool_use.filter(|t| !t.input.is_empty())
                    && let Some(&index) = self.tool_blocks.get(&block.content_block_index)
                {
                    self.emit_tool_delta(
                        out,
                        ToolCallDelta {
                            index,
                            id: None,
                            kind: None,
                            function: FunctionCallDelta {
                                name: None,
                                arguments: Some(tool.input),
                            },
                        },
                    );
                }
                // reasoningContent and citation deltas have no OpenAI form.
            }
            "messageStop" => {
                let stop: MessageStop =
                    serde_json::from_slice(&message.payload).map_err(read_error)?;
                let finish = finish_reason(stop.stop_reason.as_deref(), self.tool_calls > 0);
                self.emit(out, Delta::default(), Some(finish));
                self.stopped = true;
            }
            "metadata" => {
                let metadata: Metadata =
                    serde_json::from_slice(&message.payload).map_err(read_error)?;
                if metadata.usage.is_some() {
                    self.usage = metadata.usage;
                }
                // The last event: the usage follows the stop.
                if self.stopped {
                    self.close(out);
                }
            }
            // contentBlockStop, and events added after this was written.
            _ => {}
        }
        Ok(())
    }
}

impl StreamTranslator for BedrockStream {
    fn feed(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), String> {
        self.decoder.push(chunk);
        while let Some(message) = self.decoder.next_message().map_err(|e| e.to_string())? {
            self.handle(&message, out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        if self.decoder.has_pending() {
            return Err("stream ended inside an event stream message".into());
        }
        if !self.stopped {
            return Err("stream ended before messageStop".into());
        }
        // Stopped without the closing metadata: the answer is whole, only its usage is missing.
        self.close(out);
        Ok(())
    }

    fn usage(&self) -> Option<TokenUsage> {
        self.usage.map(|u| u.usage().tokens())
    }

    fn output_text(&self) -> &str {
        &self.output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ProviderAdapter;
    use crate::providers::bedrock::tests::*;
    use crate::providers::eventstream::encode;
    use crate::providers::tests_support::fixture;
    use serde_json::{Value, json};

    /// The event stream a fixture's JSON description stands for: `[[event type, payload], ...]`,
    /// each an event message as Bedrock frames it.
    fn encode_events(description: &[u8]) -> Vec<u8> {
        let events: Vec<(String, Value)> = serde_json::from_slice(description).unwrap();
        events
            .iter()
            .flat_map(|(kind, payload)| event(kind, payload))
            .collect()
    }

    fn event(kind: &str, payload: &Value) -> Vec<u8> {
        encode(
            &[
                (":event-type", kind),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            canonical(payload).as_bytes(),
        )
    }

    /// `value` as JSON with every object's keys sorted, whatever order serde_json's maps keep
    /// (another crate in the same build may switch on its `preserve_order`), so that a payload
    /// encodes to the same bytes in every build.
    fn canonical(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let sorted: std::collections::BTreeMap<&String, String> =
                    map.iter().map(|(k, v)| (k, canonical(v))).collect();
                let members: Vec<String> = sorted
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", Value::String((*k).clone())))
                    .collect();
                format!("{{{}}}", members.join(","))
            }
            Value::Array(items) => {
                let items: Vec<String> = items.iter().map(canonical).collect();
                format!("[{}]", items.join(","))
            }
            other => other.to_string(),
        }
    }

    /// The binary stream fixtures are their JSON descriptions, encoded; with
    /// `TOLLGATE_WRITE_FIXTURES=1` this writes them instead.
    #[test]
    fn binary_fixtures_match_their_descriptions() {
        for name in ["converse_stream", "converse_stream_tool_use"] {
            let encoded = encode_events(&fixture("bedrock", &format!("{name}.json")));
            if std::env::var_os("TOLLGATE_WRITE_FIXTURES").is_some() {
                let path = format!(
                    "{}/src/providers/bedrock/fixtures/{name}.bin",
                    env!("CARGO_MANIFEST_DIR")
                );
                std::fs::write(path, &encoded).unwrap();
            }
            assert!(
                fixture("bedrock", &format!("{name}.bin")) == encoded,
                "{name}.bin is stale: run with TOLLGATE_WRITE_FIXTURES=1"
            );
        }
    }

    fn translator(wants_usage: bool) -> Box<dyn StreamTranslator> {
        let mut body = json!({"model": "smart", "messages": [user("hi")], "stream": true});
        if wants_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        adapter().chat_stream("amazon.nova-lite-v1:0", &chat(&body))
    }

    /// Feeds `stream` split at `cut`, then finishes.
    fn run(
        translator: &mut dyn StreamTranslator,
        stream: &[u8],
        cut: usize,
    ) -> Result<String, String> {
        let mut out = BytesMut::new();
        let (a, b) = stream.split_at(cut.min(stream.len()));
        translator.feed(a, &mut out)?;
        translator.feed(b, &mut out)?;
        translator.finish(&mut out)?;
        Ok(String::from_utf8(out.to_vec()).unwrap())
    }

    /// The OpenAI events, `created` and `id` checked and removed; `[DONE]` as a string.
    fn events(output: &str) -> Vec<Value> {
        let mut ids = std::collections::HashSet::new();
        let events = output
            .split_terminator("\n\n")
            .map(|event| {
                let data = event.strip_prefix("data: ").unwrap();
                if data == "[DONE]" {
                    return json!("[DONE]");
                }
                let mut value: Value = serde_json::from_str(data).unwrap();
                assert_eq!(value["object"], "chat.completion.chunk");
                assert!(value["created"].as_u64().unwrap() > 0);
                ids.insert(value["id"].as_str().unwrap().to_owned());
                let object = value.as_object_mut().unwrap();
                object.remove("created");
                object.remove("id");
                value
            })
            .collect();
        assert_eq!(ids.len(), 1, "one id per stream: {ids:?}");
        events
    }

    #[test]
    fn text_stream_translates_the_same_at_every_split() {
        let stream = fixture("bedrock", "converse_stream.bin");
        let expected = events(&run(translator(true).as_mut(), &stream, 0).unwrap());
        for cut in 1..stream.len() {
            let mut t = translator(true);
            assert_eq!(
                events(&run(t.as_mut(), &stream, cut).unwrap()),
                expected,
                "cut {cut}"
            );
        }
        let model = "amazon.nova-lite-v1:0";
        let chunk = |delta: Value, finish: Value| {
            json!({"object": "chat.completion.chunk", "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        assert_eq!(
            expected,
            vec![
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(json!({"content": "Bonjour"}), Value::Null),
                chunk(json!({"content": " ! Comment ça"}), Value::Null),
                chunk(json!({"content": " va ?"}), Value::Null),
                chunk(json!({}), json!("stop")),
                json!({"object": "chat.completion.chunk", "model": model, "choices": [],
                       "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16}}),
                json!("[DONE]"),
            ]
        );
        let mut t = translator(false);
        let out = run(t.as_mut(), &stream, 33).unwrap();
        assert!(out.ends_with("data: [DONE]\n\n"));
        assert!(!out.contains("\"usage\""), "{out}");
        assert_eq!(t.output_text(), "Bonjour ! Comment ça va ?");
        assert_eq!(
            t.usage(),
            Some(TokenUsage {
                input_tokens: 9,
                output_tokens: 7,
                cached_input_tokens: 0
            })
        );
    }

    #[test]
    fn tool_use_streams_as_tool_call_deltas() {
        let stream = fixture("bedrock", "converse_stream_tool_use.bin");
        let mut t = translator(false);
        let events = events(&run(t.as_mut(), &stream, 101).unwrap());
        let deltas: Vec<&Value> = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["tool_calls"].get(0))
            .collect();
        assert_eq!(
            deltas,
            vec![
                &json!({"index": 0, "id": "tooluse_Qp7tKxTqRL2vZ9J3cNdMbw", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}),
                &json!({"index": 0, "function": {"arguments": "{\"location\":"}}),
                &json!({"index": 0, "function": {"arguments": " \"Paris, France\"}"}}),
                &json!({"index": 1, "id": "tooluse_8f2cKs1LQm2xWbA0eJ5vYg", "type": "function",
                        "function": {"name": "get_time", "arguments": ""}}),
                &json!({"index": 1, "function": {"arguments": "{\"timezone\": \"Europe/Paris\"}"}}),
            ]
        );
        let finishes: Vec<&Value> = events
            .iter()
            .map(|e| &e["choices"][0]["finish_reason"])
            .filter(|f| !f.is_null())
            .collect();
        assert_eq!(finishes, vec!["tool_calls"]);
        assert_eq!(t.output_text(), "Let me check.");
        let usage = t.usage().unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (412 + 300, 61));
        assert_eq!(usage.cached_input_tokens, 300);
    }

    #[test]
    fn an_exception_message_is_a_stream_error() {
        let mut stream = event("messageStart", &json!({"role": "assistant"}));
        stream.extend(event(
            "contentBlockDelta",
            &json!({"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
        ));
        stream.extend(encode(
            &[
                (":exception-type", "throttlingException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            br#"{"message":"Too many tokens, please wait before trying again."}"#,
        ));
        let mut t = translator(false);
        let err = run(t.as_mut(), &stream, 5).unwrap_err();
        assert_eq!(
            err,
            "Bedrock stream throttlingException: Too many tokens, please wait before trying again."
        );
        assert_eq!(t.output_text(), "Hel");

        let error = encode(
            &[
                (":message-type", "error"),
                (":error-code", "InternalFailure"),
                (":error-message", "boom"),
            ],
            b"",
        );
        let err = run(translator(false).as_mut(), &error, 0).unwrap_err();
        assert_eq!(err, "Bedrock stream InternalFailure: boom");
    }

    #[test]
    fn broken_and_truncated_streams_are_errors() {
        let stream = fixture("bedrock", "converse_stream.bin");
        // Cut inside a message, and at a message boundary before messageStop.
        let err = run(translator(false).as_mut(), &stream[..stream.len() - 3], 0).unwrap_err();
        assert_eq!(err, "stream ended inside an event stream message");
        let start = event("messageStart", &json!({"role": "assistant"}));
        let err = run(translator(false).as_mut(), &start, 0).unwrap_err();
        assert_eq!(err, "stream ended before messageStop");
        assert!(run(translator(false).as_mut(), b"", 0).is_err());

        let mut corrupted = stream.clone();
        corrupted[20] ^= 0xff;
        let err = run(translator(false).as_mut(), &corrupted, 0).unwrap_err();
        assert!(err.contains("checksum"), "{err}");

        // A stop without the closing metadata still ends the answer properly.
        let mut no_metadata = start;
        no_metadata.extend(event("messageStop", &json!({"stopReason": "max_tokens"})));
        let mut t = translator(true);
        let out = run(t.as_mut(), &no_metadata, 0).unwrap();
        assert!(out.contains("\"finish_reason\":\"length\""), "{out}");
        assert!(out.ends_with("data: [DONE]\n\n"));
        assert!(t.usage().is_none());
    }
}
