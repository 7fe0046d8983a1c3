//! Gemini's `alt=sse` stream, each event a whole `GenerateContentResponse`, as OpenAI
//! `chat.completion.chunk` events.

use std::collections::HashMap;

use bytes::BytesMut;
use tollgate_common::TokenUsage;

use super::bare_model;
use super::response::{
    GenerateContentResponse, OutputCall, candidate_output, finish_reason, random_id, tool_call_id,
};
use crate::openai::response::{
    ChatCompletionChunk, ChunkChoice, Delta, FunctionCallDelta, SSE_DONE, ToolCallDelta, Usage,
    unix_now,
};
use crate::providers::StreamTranslator;
use crate::providers::sse::{SseDecoder, SseEvent};

/// What every chunk of one stream repeats.
struct ChunkHeader {
    id: String,
    created: u64,
    model: String,
}

impl ChunkHeader {
    fn write(&self, out: &mut BytesMut, choices: Vec<ChunkChoice>, usage: Option<Usage>) {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
        }
        .write_sse(out);
    }

    fn write_delta(&self, out: &mut BytesMut, index: u32, delta: Delta, finish: Option<&str>) {
        self.write(
            out,
            vec![ChunkChoice {
                index,
                delta,
                finish_reason: finish.map(str::to_owned),
            }],
            None,
        );
    }
}

pub(crate) struct GeminiStream {
    decoder: SseDecoder,
    requested_model: String,
    include_usage: bool,
    /// Fixed by the first event.
    header: Option<ChunkHeader>,
    /// Choice indexes whose opening `role` delta went out.
    started: Vec<u32>,
    /// Tool calls sent so far, per choice index.
    calls_per_choice: HashMap<u32, u32>,
    /// Tool calls sent so far in the whole stream, for unique ids.
    calls_total: u32,
    finished: bool,
    usage: Option<Usage>,
    output: String,
}

impl GeminiStream {
    pub(crate) fn new(model: &str, include_usage: bool) -> Self {
        GeminiStream {
            decoder: SseDecoder::new(),
            requested_model: bare_model(model).to_owned(),
            include_usage,
            header: None,
            started: Vec::new(),
            calls_per_choice: HashMap::new(),
            calls_total: 0,
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
        let mut response: GenerateContentResponse = serde_json::from_str(data)
            .map_err(|e| format!("Gemini sent a stream event we cannot read: {e}"))?;
        if let Some(error) = &response.error {
            return Err(format!(
                "Gemini reported an error in the stream: {}",
                error.message.as_deref().unwrap_or("no message")
            ));
        }
        let requested_model = &self.requested_model;
        let header = self.header.get_or_insert_with(|| ChunkHeader {
            id: format!(
                "chatcmpl-{}",
                response.response_id.take().unwrap_or_else(random_id)
            ),
            created: unix_now(),
            model: response
                .model_version
                .take()
                .unwrap_or_else(|| requested_model.clone()),
        });
        if let Some(usage) = response.usage_metadata {
            self.usage = Some(usage.usage());
        }
        if response.blocked() {
            start_choice(header, &mut self.started, 0, out);
            header.write_delta(out, 0, Delta::default(), Some("content_filter"));
            self.finished = true;
            return Ok(());
        }
        for (candidate, position) in response.candidates.iter_mut().zip(0u32..) {
            let index = candidate.index.unwrap_or(position);
            let output = candidate_output(candidate);
            let has_output =
                output.text.as_deref().is_some_and(|t| !t.is_empty()) || !output.calls.is_empty();
            if has_output || candidate.finish_reason.is_some() {
                start_choice(header, &mut self.started, index, out);
            }
            if let Some(text) = output.text.filter(|t| !t.is_empty()) {
                self.output.push_str(&text);
                let delta = Delta {
                    content: Some(text),
                    ..Delta::default()
                };
                header.write_delta(out, index, delta, None);
            }
            if !output.calls.is_empty() {
                let sent = self.calls_per_choice.entry(index).or_insert(0);
                let mut deltas = Vec::with_capacity(output.calls.len());
                for OutputCall { call, signature } in &output.calls {
                    deltas.push(ToolCallDelta {
                        index: *sent,
                        id: Some(tool_call_id(self.calls_total, signature.as_deref())),
                        kind: Some("function".into()),
                        function: FunctionCallDelta {
                            name: Some(call.name.clone()),
                            arguments: Some(call.arguments()),
                        },
                    });
                    *sent += 1;
                    self.calls_total += 1;
                }
                let delta = Delta {
                    tool_calls: Some(deltas),
                    ..Delta::default()
                };
                header.write_delta(out, index, delta, None);
            }
            if let Some(reason) = candidate.finish_reason.as_deref() {
                let has_calls = self.calls_per_choice.get(&index).is_some_and(|n| *n > 0);
                let reason = finish_reason(Some(reason), has_calls);
                header.write_delta(out, index, Delta::default(), Some(reason));
                self.finished = true;
            }
        }
        Ok(())
    }
}

/// Sends the opening `{"role":"assistant","content":""}` delta of a choice, once.
fn start_choice(header: &ChunkHeader, started: &mut Vec<u32>, index: u32, out: &mut BytesMut) {
    if started.contains(&index) {
        return;
    }
    started.push(index);
    let delta = Delta {
        role: Some("assistant".into()),
        content: Some(String::new()),
        ..Delta::default()
    };
    header.write_delta(out, index, delta, None);
}

impl StreamTranslator for GeminiStream {
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
            return Err("stream ended before a finish reason".into());
        }
        if self.include_usage
            && let (Some(header), Some(usage)) = (&self.header, self.usage)
        {
            header.write(out, Vec::new(), Some(usage));
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
    use crate::providers::ProviderAdapter;
    use crate::providers::gemini::request::thought_signature_of;
    use crate::providers::gemini::tests::*;
    use crate::providers::tests_support::fixture;
    use serde_json::{Value, json};

    /// Feeds `stream` in the given piece sizes (cycled), returning the output text and translator.
    fn run_stream(stream: &[u8], sizes: &[usize], include_usage: bool) -> (String, GeminiStream) {
        let mut translator = GeminiStream::new("gemini-2.0-flash", include_usage);
        let mut out = BytesMut::new();
        let mut rest = stream;
        let mut k = 0;
        while !rest.is_empty() {
            let size = sizes[k % sizes.len()].clamp(1, rest.len());
            let (piece, tail) = rest.split_at(size);
            translator.feed(piece, &mut out).unwrap();
            rest = tail;
            k += 1;
        }
        translator.finish(&mut out).unwrap();
        (String::from_utf8(out.to_vec()).unwrap(), translator)
    }

    /// The JSON of each event, `created` left out; `None` for `[DONE]`.
    fn events(text: &str) -> Vec<Option<Value>> {
        assert!(text.ends_with("\n\n"), "{text}");
        text.split_terminator("\n\n")
            .map(|event| {
                let data = event.strip_prefix("data: ").unwrap();
                if data == "[DONE]" {
                    return None;
                }
                let mut value: Value = serde_json::from_str(data).unwrap();
                value.as_object_mut().unwrap().remove("created").unwrap();
                Some(value)
            })
            .collect()
    }

    #[test]
    fn stream_split_anywhere_translates_the_same_as_whole() {
        let stream = fixture("gemini", "stream.sse");
        let (whole, translator) = run_stream(&stream, &[stream.len()], false);
        let expected = events(&whole);
        for seed in 1..=40u64 {
            let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let sizes: Vec<usize> = (0..64)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    usize::try_from(state % 23).unwrap() + 1
                })
                .collect();
            let (text, _) = run_stream(&stream, &sizes, false);
            assert_eq!(events(&text), expected, "seed {seed}");
        }
        let (bytewise, _) = run_stream(&stream, &[1], false);
        assert_eq!(events(&bytewise), expected);

        assert_eq!(
            expected,
            vec![
                Some(
                    json!({"id": "chatcmpl-sse-resp-42", "object": "chat.completion.chunk",
                    "model": "gemini-2.0-flash",
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]})
                ),
                Some(
                    json!({"id": "chatcmpl-sse-resp-42", "object": "chat.completion.chunk",
                    "model": "gemini-2.0-flash",
                    "choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": null}]})
                ),
                Some(
                    json!({"id": "chatcmpl-sse-resp-42", "object": "chat.completion.chunk",
                    "model": "gemini-2.0-flash",
                    "choices": [{"index": 0, "delta": {"content": " there, "}, "finish_reason": null}]})
                ),
                Some(
                    json!({"id": "chatcmpl-sse-resp-42", "object": "chat.completion.chunk",
                    "model": "gemini-2.0-flash",
                    "choices": [{"index": 0, "delta": {"content": "how can I help? é"}, "finish_reason": null}]})
                ),
                Some(
                    json!({"id": "chatcmpl-sse-resp-42", "object": "chat.completion.chunk",
                    "model": "gemini-2.0-flash",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                ),
                None,
            ]
        );
        assert!(whole.ends_with("data: [DONE]\n\n"));
        assert_eq!(translator.output_text(), "Hello there, how can I help? é");
        let usage = translator.usage().unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (9, 11));
    }

    #[test]
    fn every_chunk_shares_id_created_and_model() {
        let (text, _) = run_stream(&fixture("gemini", "stream.sse"), &[5], true);
        let chunks: Vec<Value> = text
            .split_terminator("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert!(chunks.len() > 2);
        for chunk in &chunks {
            assert_eq!(chunk["id"], chunks[0]["id"]);
            assert_eq!(chunk["created"], chunks[0]["created"]);
            assert_eq!(chunk["model"], chunks[0]["model"]);
        }
    }

    #[test]
    fn usage_chunk_only_when_the_client_asked() {
        let stream = fixture("gemini", "stream.sse");
        let (without, _) = run_stream(&stream, &[7], false);
        assert!(!without.contains("\"usage\""), "{without}");

        let (with, _) = run_stream(&stream, &[7], true);
        let all = events(&with);
        assert_eq!(all.len(), 7);
        assert_eq!(all[6], None);
        let usage_chunk = all[5].as_ref().unwrap();
        assert_eq!(usage_chunk["choices"], json!([]));
        assert_eq!(
            usage_chunk["usage"],
            json!({"prompt_tokens": 9, "completion_tokens": 11, "total_tokens": 20})
        );
        assert_eq!(
            all[4].as_ref().unwrap()["choices"][0]["finish_reason"],
            "stop"
        );
    }

    #[test]
    fn streamed_function_calls_arrive_whole() {
        let (text, translator) = run_stream(
            &fixture("gemini", "stream_function_call.sse"),
            &[3, 11],
            false,
        );
        let all = events(&text);
        assert_eq!(all.len(), 4, "{text}");
        let calls = &all[1].as_ref().unwrap()["choices"][0]["delta"]["tool_calls"];
        assert_eq!(
            calls,
            &json!([
                {"index": 0, "id": "call_0_ts_CiwBVKhc7nVYAQ1dJv3Nm4dp5Vt3o0k0cQ9pF1C2nB6nYk3Yy5i3iM8D8R0",
                 "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris, France\"}"}},
                {"index": 1, "id": "call_1", "type": "function",
                 "function": {"name": "get_time", "arguments": "{\"timezone\":\"Europe/Paris\"}"}}
            ])
        );
        assert_eq!(
            all[2].as_ref().unwrap()["choices"][0]["finish_reason"],
            "tool_calls"
        );
        assert_eq!(all[3], None);
        assert_eq!(translator.output_text(), "");
        assert_eq!(translator.usage().unwrap().output_tokens, 31);
    }

    #[test]
    fn signed_streamed_function_calls_round_trip_through_the_tool_call_ids() {
        let stream = fixture("gemini", "stream_function_call_signed.sse");
        let text = String::from_utf8(stream.clone()).unwrap();
        let events_in: Vec<Value> = text
            .split_terminator("\r\n\r\n")
            .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
            .collect();
        let signature = part_signature(&events_in[1], 0);

        for sizes in [&[stream.len()][..], &[1], &[3, 11], &[64, 5]] {
            let (out, _) = run_stream(&stream, sizes, false);
            // Rebuild the assistant message the way a client accumulates deltas.
            let mut content = String::new();
            let mut tool_calls: Vec<Value> = Vec::new();
            for event in events(&out).into_iter().flatten() {
                let delta = &event["choices"][0]["delta"];
                if let Some(text) = delta["content"].as_str() {
                    content.push_str(text);
                }
                for call in delta["tool_calls"].as_array().into_iter().flatten() {
                    assert_eq!(call["index"], tool_calls.len());
                    tool_calls.push(json!({
                        "id": call["id"], "type": "function", "function": call["function"]
                    }));
                }
            }
            assert_eq!(content, "Let me look that up.");
            assert_eq!(tool_calls.len(), 2, "{out}");
            let id = tool_calls[0]["id"].as_str().unwrap();
            assert_eq!(
                thought_signature_of(id).as_deref(),
                Some(signature.as_str())
            );
            assert_eq!(tool_calls[1]["id"], "call_1");

            let assistant =
                json!({"role": "assistant", "content": content, "tool_calls": tool_calls});
            let next = sent(next_tool_turn(&assistant));
            // The text part's own signature has nowhere to go and is not sent; Gemini checks
            // only those of function calls.
            assert_eq!(
                next["contents"][1],
                json!({"role": "model", "parts": [
                    {"text": "Let me look that up."},
                    {"functionCall": {"name": "get_weather", "args": {"location": "Paris, France"}},
                     "thoughtSignature": signature},
                    {"functionCall": {"name": "get_time", "args": {"timezone": "Europe/Paris"}}}
                ]}),
                "{sizes:?}"
            );
            assert_eq!(
                next["contents"][2]["parts"][0]["functionResponse"]["name"],
                "get_weather"
            );
        }
    }

    #[test]
    fn blocked_prompt_in_a_stream_ends_with_content_filter() {
        let event = br#"data: {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},"usageMetadata": {"promptTokenCount": 7,"totalTokenCount": 7},"modelVersion": "gemini-2.0-flash"}"#;
        let mut stream = event.to_vec();
        stream.extend_from_slice(b"\r\n\r\n");
        let (text, _) = run_stream(&stream, &[9], false);
        let all = events(&text);
        assert_eq!(all.len(), 3, "{text}");
        assert_eq!(
            all[0].as_ref().unwrap()["choices"][0]["delta"]["role"],
            "assistant"
        );
        assert_eq!(
            all[1].as_ref().unwrap()["choices"][0]["finish_reason"],
            "content_filter"
        );
        assert_eq!(all[2], None);
    }

    #[test]
    fn truncated_or_failing_streams_are_errors() {
        let stream = fixture("gemini", "stream.sse");
        let text = String::from_utf8(stream).unwrap();
        // Cut between events: everything read, but no finish reason.
        let last_event = text.rfind("data: ").unwrap();
        let mut translator = GeminiStream::new("m", true);
        let mut out = BytesMut::new();
        translator
            .feed(&text.as_bytes()[..last_event], &mut out)
            .unwrap();
        let error = translator.finish(&mut out).unwrap_err();
        assert!(error.contains("before a finish reason"), "{error}");
        assert!(!String::from_utf8_lossy(&out).contains("[DONE]"));

        // Cut inside the last event: the partial event cannot be read.
        let cut = text.find("finishReason").unwrap();
        let mut translator = GeminiStream::new("m", true);
        let mut out = BytesMut::new();
        translator.feed(&text.as_bytes()[..cut], &mut out).unwrap();
        assert!(translator.finish(&mut out).is_err());

        let mut translator = GeminiStream::new("m", false);
        let mut out = BytesMut::new();
        assert!(translator.finish(&mut out).is_err());

        let mut translator = GeminiStream::new("m", false);
        let mut out = BytesMut::new();
        let error = translator
            .feed(
                b"data: {\"error\": {\"code\": 503, \"message\": \"The model is overloaded.\", \"status\": \"UNAVAILABLE\"}}\r\n\r\n",
                &mut out,
            )
            .unwrap_err();
        assert!(error.contains("overloaded"), "{error}");
    }

    #[test]
    fn chat_stream_uses_the_clients_usage_wish() {
        let gemini = adapter();
        let stream = fixture("gemini", "stream.sse");
        for (options, wanted) in [(json!({"include_usage": true}), true), (json!({}), false)] {
            let body = chat(json!({
                "model": "smart", "stream": true, "stream_options": options,
                "messages": [{"role": "user", "content": "hi"}]
            }));
            let mut translator = gemini.chat_stream("gemini-2.0-flash", &body);
            let mut out = BytesMut::new();
            translator.feed(&stream, &mut out).unwrap();
            translator.finish(&mut out).unwrap();
            let text = String::from_utf8(out.to_vec()).unwrap();
            assert_eq!(text.contains("\"usage\""), wanted, "{text}");
        }
    }
}
