//! Mistral's event stream as OpenAI `chat.completion.chunk` events.
//!
//! Mistral streams OpenAI-shaped chunks, with its differences: the usage rides on the chunk
//! that carries the finish reason (unasked, since Mistral has no `stream_options`), a tool call
//! arrives whole in one delta, possibly without an `index`, and content may be an array of
//! chunks. Each chunk is rebuilt; the usage goes out in a chunk of its own at the end, as
//! OpenAI sends it, when the client asked for it.

use std::collections::HashMap;

use bytes::BytesMut;
use serde::Deserialize;
use tollgate_common::TokenUsage;

use super::response::{
    Arguments, Content, MistralToolCall, MistralUsage, finish_reason, minted_call_id,
};
use crate::openai::response::{
    ChatCompletionChunk, ChunkChoice, Delta, FunctionCallDelta, SSE_DONE, ToolCallDelta, Usage,
    unix_now,
};
use crate::providers::StreamTranslator;
use crate::providers::sse::{SseDecoder, SseEvent};

#[derive(Deserialize)]
struct MistralChunk {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    created: Option<u64>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<MistralChunkChoice>,
    #[serde(default)]
    usage: Option<MistralUsage>,
    /// `"error"` on an error reported inside the stream.
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    message: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct MistralChunkChoice {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    delta: Option<MistralDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct MistralDelta {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    tool_calls: Option<Vec<MistralToolCall>>,
}

/// What every chunk of one stream repeats, fixed by the first.
struct Header {
    id: String,
    created: u64,
    model: String,
}

pub(super) struct MistralStream {
    decoder: SseDecoder,
    requested_model: String,
    include_usage: bool,
    header: Option<Header>,
    /// Tool calls begun so far, per choice index: a delta with an id starts the next one.
    calls: HashMap<u32, u32>,
    /// The upstream's own answer id (empty if it sent none), for ids of calls sent without.
    upstream_id: String,
    /// Calls that came without an id so far.
    minted: usize,
    finished: bool,
    usage: Option<Usage>,
    output: String,
}

impl MistralStream {
    pub(super) fn new(model: &str, include_usage: bool) -> Self {
        MistralStream {
            decoder: SseDecoder::new(),
            requested_model: model.to_owned(),
            include_usage,
            header: None,
            calls: HashMap::new(),
            upstream_id: String::new(),
            minted: 0,
            finished: false,
            usage: None,
            output: String::new(),
        }
    }

    fn handle(&mut self, event: SseEvent, out: &mut BytesMut) -> Result<(), String> {
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let chunk: MistralChunk = serde_json::from_str(data)
            .map_err(|e| format!("Mistral sent a stream event we cannot read: {e}"))?;
        if chunk.object.as_deref() == Some("error") {
            let message = match &chunk.message {
                Some(serde_json::Value::String(m)) => m.clone(),
                Some(other) => other.to_string(),
                None => "no message".into(),
            };
            return Err(format!(
                "Mistral reported an error in the stream: {message}"
            ));
        }
        if self.header.is_none() {
            self.upstream_id = chunk.id.clone().unwrap_or_default();
        }
        let requested_model = &self.requested_model;
        let header = self.header.get_or_insert_with(|| Header {
            id: chunk
                .id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string()),
            created: chunk.created.unwrap_or_else(unix_now),
            model: chunk
                .model
                .clone()
                .unwrap_or_else(|| requested_model.clone()),
        });
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.usage());
        }
        let mut choices = Vec::with_capacity(chunk.choices.len());
        for (choice, position) in chunk.choices.into_iter().zip(0u32..) {
            let index = choice.index.unwrap_or(position);
            let mut delta = Delta::default();
            if let Some(upstream) = choice.delta {
                delta.role = upstream.role;
                if let Some(content) = upstream.content {
                    let text = content.into_text();
                    self.output.push_str(&text);
                    delta.content = Some(text);
                }
                let calls = upstream.tool_calls.unwrap_or_default();
                if !calls.is_empty() {
                    let begun = self.calls.entry(index).or_insert(0);
                    let mut deltas = Vec::with_capacity(calls.len());
                    for mut call in calls {
                        let starts =
                            call.id.is_some() || call.function.name.is_some() || *begun == 0;
                        if starts && call.id.is_none() {
                            self.minted += 1;
                            call.id = Some(minted_call_id(&self.upstream_id, self.minted));
                        }
                        deltas.push(tool_call_delta(call, starts, begun));
                    }
                    delta.tool_calls = Some(deltas);
                }
            }
            let finish = match choice.finish_reason.as_deref() {
                None => None,
                Some(reason) => {
                    self.finished = true;
                    Some(finish_reason(Some(reason))?.to_owned())
                }
            };
            choices.push(ChunkChoice {
                index,
                delta,
                finish_reason: finish,
            });
        }
        if !choices.is_empty() {
            write(header, choices, None, out);
        }
        Ok(())
    }
}

/// One tool call delta. Mistral sends each call whole, with its id and name, so a delta with
/// either `starts` the next call, and one without continues the last; Mistral's own `index`,
/// when there, is not relied on.
fn tool_call_delta(call: MistralToolCall, starts: bool, begun: &mut u32) -> ToolCallDelta {
    if starts {
        *begun += 1;
    }
    ToolCallDelta {
        index: begun.saturating_sub(1),
        id: if starts { call.id } else { None },
        kind: starts.then(|| "function".to_owned()),
        function: FunctionCallDelta {
            name: call.function.name,
            arguments: Some(
                call.function
                    .arguments
                    .map(Arguments::into_text)
                    .unwrap_or_default(),
            ),
        },
    }
}

fn write(header: &Header, choices: Vec<ChunkChoice>, usage: Option<Usage>, out: &mut BytesMut) {
    ChatCompletionChunk {
        id: header.id.clone(),
        object: "chat.completion.chunk".into(),
        created: header.created,
        model: header.model.clone(),
        choices,
        usage,
    }
    .write_sse(out);
}

impl StreamTranslator for MistralStream {
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
            return Err("the Mistral stream ended before a finish reason".into());
        }
        if self.include_usage
            && let (Some(header), Some(usage)) = (&self.header, self.usage)
        {
            write(header, Vec::new(), Some(usage), out);
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
    use serde_json::Value;

    fn run(name: &str, include_usage: bool, split: usize) -> (Vec<Value>, MistralStream) {
        let mut stream = MistralStream::new("mistral-small-latest", include_usage);
        let mut out = BytesMut::new();
        for piece in fixture("mistral", name).chunks(split) {
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
    fn usage_from_the_finishing_chunk_goes_out_alone_and_only_when_asked() {
        for (include_usage, split) in [(true, 5), (false, 64)] {
            let (chunks, stream) = run("chat_stream.sse", include_usage, split);
            let last = chunks.last().unwrap();
            assert_eq!(
                last["choices"].as_array().unwrap().is_empty(),
                include_usage
            );
            assert_eq!(
                last.get("usage").is_some_and(|u| !u.is_null()),
                include_usage
            );
            assert!(
                chunks[..chunks.len() - 1]
                    .iter()
                    .all(|c| c.get("usage").is_none_or(Value::is_null))
            );
            assert_eq!(stream.output_text(), "Hello! How can I help?");
            assert_eq!(stream.usage().unwrap().output_tokens, 7);
        }
    }

    #[test]
    fn errors_in_the_stream_and_streams_without_an_end_fail() {
        let mut stream = MistralStream::new("m", false);
        let mut out = BytesMut::new();
        let error = b"data: {\"object\":\"error\",\"message\":\"Service unavailable\",\"type\":\"internal_server_error\"}\n\n";
        assert!(
            stream
                .feed(error, &mut out)
                .unwrap_err()
                .contains("Service unavailable")
        );
        let mut stream = MistralStream::new("m", false);
        let cut =
            b"data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n";
        stream.feed(cut, &mut out).unwrap();
        assert!(stream.finish(&mut out).is_err());
    }
}
