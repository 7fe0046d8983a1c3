//! Cohere's v2 chat stream as OpenAI `chat.completion.chunk` events.
//!
//! Cohere's events are typed (`message-start`, `content-delta`, `tool-plan-delta`,
//! `tool-call-start`, `tool-call-delta`, `message-end`, ...), each a JSON object whose `delta`
//! holds the new piece. Text and tool plan deltas become content deltas (the tool plan is the
//! text of an answer calling tools, as in [`super::response`]); a tool call's start brings its
//! id and name, its deltas pieces of the arguments; `message-end` brings the finish reason and
//! the usage. Citation, `*-end` and debug events carry nothing OpenAI's chunks have a place for.
//! The stream has no `[DONE]` of its own: it ends after `message-end`.

use bytes::BytesMut;
use serde::Deserialize;
use serde_json::Value;
use tollgate_common::TokenUsage;

use super::response::{CohereUsage, finish_reason, minted_call_id, random_id};
use crate::openai::response::{
    ChatCompletionChunk, ChunkChoice, Delta, FunctionCallDelta, SSE_DONE, ToolCallDelta, Usage,
    unix_now,
};
use crate::providers::StreamTranslator;
use crate::providers::sse::{SseDecoder, SseEvent};

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    delta: Option<EventDelta>,
    /// An error event's words.
    #[serde(default)]
    message: Option<Value>,
}

#[derive(Deserialize)]
struct EventDelta {
    /// Its shape differs by event (`content` is an array in `message-start`, an object in
    /// `content-delta`), so it is read by path rather than typed.
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    usage: Option<CohereUsage>,
}

pub(super) struct CohereStream {
    decoder: SseDecoder,
    model: String,
    include_usage: bool,
    id: Option<String>,
    /// Cohere's own id of the answer, from `message-start`.
    upstream_id: Option<String>,
    created: u64,
    started: bool,
    /// Tool calls begun so far.
    calls: u32,
    finished: bool,
    usage: Option<Usage>,
    output: String,
}

impl CohereStream {
    pub(super) fn new(model: &str, include_usage: bool) -> Self {
        CohereStream {
            decoder: SseDecoder::new(),
            model: model.to_owned(),
            include_usage,
            id: None,
            upstream_id: None,
            created: unix_now(),
            started: false,
            calls: 0,
            finished: false,
            usage: None,
            output: String::new(),
        }
    }

    fn write(&mut self, out: &mut BytesMut, delta: Delta, finish: Option<&str>) {
        let choices = vec![ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish.map(str::to_owned),
        }];
        self.write_chunk(out, choices, None);
    }

    fn write_chunk(&mut self, out: &mut BytesMut, choices: Vec<ChunkChoice>, usage: Option<Usage>) {
        let id = self
            .id
            .get_or_insert_with(|| format!("chatcmpl-{}", random_id()))
            .clone();
        ChatCompletionChunk {
            id,
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
        }
        .write_sse(out);
    }

    /// The opening `{"role":"assistant","content":""}` delta, once.
    fn start(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let delta = Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            ..Delta::default()
        };
        self.write(out, delta, None);
    }

    fn text(&mut self, out: &mut BytesMut, text: &str) {
        if text.is_empty() {
            return;
        }
        self.start(out);
        self.output.push_str(text);
        let delta = Delta {
            content: Some(text.to_owned()),
            ..Delta::default()
        };
        self.write(out, delta, None);
    }

    fn handle(&mut self, event: SseEvent, out: &mut BytesMut) -> Result<(), String> {
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let parsed: Event = serde_json::from_str(data)
            .map_err(|e| format!("Cohere sent a stream event we cannot read: {e}"))?;
        // The event's name is in its data; the SSE `event:` field repeats it.
        let kind = parsed
            .kind
            .as_deref()
            .or(event.event.as_deref())
            .unwrap_or_default();
        let message = parsed.delta.as_ref().and_then(|d| d.message.as_ref());
        match kind {
            "message-start" => {
                if let Some(id) = &parsed.id {
                    self.id.get_or_insert_with(|| format!("chatcmpl-{id}"));
                    self.upstream_id.get_or_insert_with(|| id.clone());
                }
                self.start(out);
            }
            "content-delta" => {
                let text = message
                    .and_then(|m| m["content"]["text"].as_str())
                    .unwrap_or_default();
                self.text(out, text);
            }
            "tool-plan-delta" => {
                let plan = message
                    .and_then(|m| m["tool_plan"].as_str())
                    .unwrap_or_default();
                self.text(out, plan);
            }
            "tool-call-start" => {
                self.start(out);
                let call = message.map(|m| &m["tool_calls"]);
                let id = call.and_then(|c| c["id"].as_str()).map_or_else(
                    || minted_call_id(self.upstream_id.as_deref(), self.calls as usize),
                    str::to_owned,
                );
                let function = call.map(|c| &c["function"]);
                let delta = ToolCallDelta {
                    index: self.calls,
                    id: Some(id),
                    kind: Some("function".into()),
                    function: FunctionCallDelta {
                        name: Some(
                            function
                                .and_then(|f| f["name"].as_str())
                                .unwrap_or_default()
                                .to_owned(),
                        ),
                        arguments: Some(
                            function
                                .and_then(|f| f["arguments"].as_str())
                                .unwrap_or_default()
                                .to_owned(),
                        ),
                    },
                };
                self.calls += 1;
                let delta = Delta {
                    tool_calls: Some(vec![delta]),
                    ..Delta::default()
                };
                self.write(out, delta, None);
            }
            "tool-call-delta" => {
                let arguments = message
                    .and_then(|m| m["tool_calls"]["function"]["arguments"].as_str())
                    .unwrap_or_default();
                if self.calls == 0 || arguments.is_empty() {
                    return Ok(());
                }
                let delta = Delta {
                    tool_calls: Some(vec![ToolCallDelta {
                        index: self.calls - 1,
                        id: None,
                        kind: None,
                        function: FunctionCallDelta {
                            name: None,
                            arguments: Some(arguments.to_owned()),
                        },
                    }]),
                    ..Delta::default()
                };
                self.write(out, delta, None);
            }
            "message-end" => {
                let delta = parsed.delta.as_ref();
                if let Some(usage) = delta
                    .and_then(|d| d.usage.clone())
                    .and_then(CohereUsage::usage)
                {
                    self.usage = Some(usage);
                }
                let reason = finish_reason(
                    delta.and_then(|d| d.finish_reason.as_deref()),
                    self.calls > 0,
                )?;
                self.start(out);
                self.write(out, Delta::default(), Some(reason));
                self.finished = true;
            }
            "error" => {
                let message = match &parsed.message {
                    Some(Value::String(m)) => m.clone(),
                    Some(other) => other.to_string(),
                    None => "no message".into(),
                };
                return Err(format!("Cohere reported an error in the stream: {message}"));
            }
            // content-start/-end, tool-call-end, citation-start/-end, debug.
            _ => {}
        }
        Ok(())
    }
}

impl StreamTranslator for CohereStream {
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
        if !self.finished {
            return Err("the Cohere stream ended before message-end".into());
        }
        if self.include_usage
            && let Some(usage) = self.usage
        {
            self.write_chunk(out, Vec::new(), Some(usage));
        }
        out.extend_from_slice(SSE_DONE);
        Ok(())
    }

    fn usage(&self) -> Option<TokenUsage> {
        self.usage.map(|u| u.tokens())
    }

    fn output_text(&self) -> &str {
        &self.output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::tests_support::fixture;

    fn run(name: &str, include_usage: bool, split: usize) -> (Vec<Value>, CohereStream) {
        let mut stream = CohereStream::new("command-a-03-2025", include_usage);
        let mut out = BytesMut::new();
        for piece in fixture("cohere", name).chunks(split) {
            stream.feed(piece, &mut out).unwrap();
        }
        stream.finish(&mut out).unwrap();
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        let chunks = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        (chunks, stream)
    }

    #[test]
    fn text_events_become_chunks_with_the_usage_last_when_asked() {
        for (include_usage, split) in [(true, 3), (false, 100)] {
            let (chunks, stream) = run("chat_stream.sse", include_usage, split);
            assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
            let id = chunks[0]["id"].as_str().unwrap();
            assert!(id.starts_with("chatcmpl-29f14a5a"), "{id}");
            assert!(chunks.iter().all(|c| c["id"] == id));
            let last = chunks.last().unwrap();
            assert_eq!(
                last["choices"].as_array().unwrap().is_empty(),
                include_usage
            );
            assert_eq!(stream.output_text(), "Hello! How can I help you?");
            let usage = stream.usage().unwrap();
            assert_eq!((usage.input_tokens, usage.output_tokens), (3, 8));
        }
    }

    #[test]
    fn the_tool_plan_streams_as_text_and_calls_as_deltas() {
        let (chunks, stream) = run("chat_stream_tool_calls.sse", false, 17);
        assert_eq!(
            stream.output_text(),
            "I will look up the weather and the time."
        );
        let starts: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["id"]
                    .as_str()
                    .map(|_| c)
            })
            .collect();
        assert_eq!(starts.len(), 2);
        assert_eq!(
            starts[1]["choices"][0]["delta"]["tool_calls"][0]["index"],
            1
        );
    }

    #[test]
    fn failed_and_unfinished_streams_are_errors() {
        let mut out = BytesMut::new();
        let failed = b"event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"ERROR\"}}\n\n";
        assert!(
            CohereStream::new("m", false)
                .feed(failed, &mut out)
                .is_err()
        );
        let mut cut = CohereStream::new("m", false);
        let start = b"event: message-start\ndata: {\"id\":\"x\",\"type\":\"message-start\",\"delta\":{\"message\":{\"role\":\"assistant\",\"content\":[]}}}\n\n";
        cut.feed(start, &mut out).unwrap();
        assert!(cut.finish(&mut out).is_err());
        let error = b"data: {\"type\":\"error\",\"message\":\"internal\"}\n\n";
        assert!(
            CohereStream::new("m", false)
                .feed(error, &mut out)
                .unwrap_err()
                .contains("internal")
        );
    }
}
