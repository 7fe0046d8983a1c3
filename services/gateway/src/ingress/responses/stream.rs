//! The pipeline's OpenAI chat chunks as the Responses API's typed stream events.
//!
//! The order OpenAI's SDKs rebuild a response from: `response.created`, `response.in_progress`;
//! per output item `response.output_item.added`, then for the message
//! `response.content_part.added`, `response.output_text.delta`s, `response.output_text.done`,
//! `response.content_part.done`, or for a function call
//! `response.function_call_arguments.delta`s and `.done`; `response.output_item.done`; and
//! last `response.completed` (or `response.incomplete` when the output limit cut it) with the
//! whole response and its usage. A failed stream ends in `response.failed`. Every event carries
//! its `sequence_number`.
//!
//! A stream forwarded from a target serving the Responses API is already in these events: they
//! pass as they are ([`ResponsesEvents::relaying`]), and only the gateway's own error event, for
//! an upstream that broke off, becomes `response.failed` in the same response and numbering.

use bytes::BytesMut;
use serde_json::{Value, json};

use super::response::{
    Status, function_call_item, message_item, message_item_id, output_text, response_id,
    response_object,
};
use crate::ingress::StreamEncoder;
use crate::openai::response::{ChatCompletionChunk, Usage};
use crate::providers::sse::SseDecoder;

/// The output item being streamed.
#[derive(Debug)]
enum Open {
    Message {
        output_index: usize,
        text: String,
    },
    Call {
        /// Its index among OpenAI's `tool_calls`.
        openai_index: u32,
        output_index: usize,
        call_id: String,
        name: String,
        arguments: String,
    },
}

#[derive(Debug, Default)]
pub struct ResponsesEvents {
    decoder: SseDecoder,
    sequence: u64,
    started: bool,
    id: String,
    model: String,
    created_at: u64,
    open: Option<Open>,
    /// Finished output items, in order.
    output: Vec<Value>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    /// Ended by `response.completed` or a failure: nothing more is written.
    ended: bool,
    /// The stream is the Responses API's own (a target serving it): its events pass as they
    /// are, and only the gateway's OpenAI-shaped error events are rewritten.
    relaying: bool,
}

impl ResponsesEvents {
    pub fn new() -> Self {
        Self::default()
    }

    /// For a stream already in the Responses API's events.
    pub fn relaying() -> Self {
        ResponsesEvents {
            relaying: true,
            ..Self::default()
        }
    }

    /// Passes on one of the upstream's own events, noting what a failure written after it
    /// needs: the response it belongs to and the next sequence number.
    fn relay(&mut self, name: &str, data: &str, raw: &[u8], out: &mut BytesMut) {
        #[derive(serde::Deserialize)]
        struct Created {
            response: CreatedResponse,
        }
        #[derive(serde::Deserialize)]
        struct CreatedResponse {
            #[serde(default)]
            id: String,
            #[serde(default)]
            model: String,
            #[serde(default)]
            created_at: u64,
        }
        out.extend_from_slice(raw);
        // The upstream numbers its events from 0, one by one.
        self.sequence += 1;
        match name {
            "response.created" => {
                if let Ok(Created { response }) = serde_json::from_str::<Created>(data) {
                    self.id = response.id;
                    self.model = response.model;
                    self.created_at = response.created_at;
                }
                self.started = true;
            }
            // The upstream ended the stream itself; the gateway's error event that follows
            // would be a second ending.
            "response.failed" | "error" => self.ended = true,
            _ => {}
        }
    }

    fn emit(&mut self, out: &mut BytesMut, kind: &str, mut data: Value) {
        data["type"] = Value::String(kind.to_owned());
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(data.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }

    fn snapshot(&self, status: Status) -> Value {
        response_object(
            &self.id,
            self.created_at,
            &self.model,
            status,
            self.output.clone(),
            self.usage,
        )
    }

    fn start(&mut self, out: &mut BytesMut) {
        self.started = true;
        let response = self.snapshot(Status::InProgress);
        self.emit(out, "response.created", json!({"response": response}));
        self.emit(out, "response.in_progress", json!({"response": response}));
    }

    fn chunk(&mut self, chunk: ChatCompletionChunk, out: &mut BytesMut) {
        if !self.started {
            self.id = response_id(&chunk.id);
            self.model = chunk.model.clone();
            self.created_at = chunk.created;
            self.start(out);
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) else {
            return;
        };
        let delta = choice.delta;
        for text in [delta.content, delta.refusal].into_iter().flatten() {
            if !text.is_empty() {
                self.text(&text, out);
            }
        }
        for call in delta.tool_calls.unwrap_or_default() {
            let same_call = matches!(&self.open,
                Some(Open::Call { openai_index, .. }) if *openai_index == call.index);
            if !same_call || call.id.is_some() {
                self.close(out);
                let output_index = self.output.len();
                let call_id = call.id.clone().unwrap_or_default();
                let name = call.function.name.clone().unwrap_or_default();
                let item = function_call_item(&call_id, &name, "", "in_progress");
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({"output_index": output_index, "item": item}),
                );
                self.open = Some(Open::Call {
                    openai_index: call.index,
                    output_index,
                    call_id,
                    name,
                    arguments: String::new(),
                });
            }
            if let Some(fragment) = call.function.arguments.filter(|a| !a.is_empty())
                && let Some(Open::Call {
                    output_index,
                    call_id,
                    arguments,
                    ..
                }) = &mut self.open
            {
                arguments.push_str(&fragment);
                let data = json!({
                    "item_id": call_item_id(call_id),
                    "output_index": *output_index,
                    "delta": fragment,
                });
                self.emit(out, "response.function_call_arguments.delta", data);
            }
        }
        if let Some(reason) = choice.finish_reason {
            self.finish_reason = Some(reason);
        }
    }

    fn text(&mut self, text: &str, out: &mut BytesMut) {
        if !matches!(self.open, Some(Open::Message { .. })) {
            self.close(out);
            let output_index = self.output.len();
            let item = message_item(&self.id, "in_progress", Vec::new());
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": output_index, "item": item}),
            );
            let data = json!({
                "item_id": message_item_id(&self.id),
                "output_index": output_index,
                "content_index": 0,
                "part": output_text(""),
            });
            self.emit(out, "response.content_part.added", data);
            self.open = Some(Open::Message {
                output_index,
                text: String::new(),
            });
        }
        if let Some(Open::Message {
            output_index,
            text: sent,
        }) = &mut self.open
        {
            sent.push_str(text);
            let data = json!({
                "item_id": message_item_id(&self.id),
                "output_index": *output_index,
                "content_index": 0,
                "delta": text,
                "logprobs": [],
            });
            self.emit(out, "response.output_text.delta", data);
        }
    }

    /// Finishes the open output item.
    fn close(&mut self, out: &mut BytesMut) {
        match self.open.take() {
            None => {}
            Some(Open::Message { output_index, text }) => {
                let item_id = message_item_id(&self.id);
                let at =
                    json!({"item_id": item_id, "output_index": output_index, "content_index": 0});
                let mut done = at.clone();
                done["text"] = json!(text);
                done["logprobs"] = json!([]);
                self.emit(out, "response.output_text.done", done);
                let mut part = at;
                part["part"] = output_text(&text);
                self.emit(out, "response.content_part.done", part);
                let item = message_item(&self.id, "completed", vec![output_text(&text)]);
                self.output.push(item.clone());
                self.emit(
                    out,
                    "response.output_item.done",
                    json!({"output_index": output_index, "item": item}),
                );
            }
            Some(Open::Call {
                output_index,
                call_id,
                name,
                arguments,
                ..
            }) => {
                let data = json!({
                    "item_id": call_item_id(&call_id),
                    "output_index": output_index,
                    "name": name,
                    "arguments": arguments,
                });
                self.emit(out, "response.function_call_arguments.done", data);
                let item = function_call_item(&call_id, &name, &arguments, "completed");
                self.output.push(item.clone());
                self.emit(
                    out,
                    "response.output_item.done",
                    json!({"output_index": output_index, "item": item}),
                );
            }
        }
    }

    fn done(&mut self, out: &mut BytesMut) {
        if !self.started {
            self.start(out);
        }
        self.close(out);
        let status = Status::of(self.finish_reason.as_deref());
        let kind = match status {
            Status::Incomplete => "response.incomplete",
            Status::Completed | Status::InProgress => "response.completed",
        };
        let response = self.snapshot(status);
        self.emit(out, kind, json!({"response": response}));
        self.ended = true;
    }

    fn fail(&mut self, error: &Value, out: &mut BytesMut) {
        if !self.started {
            self.start(out);
        }
        let mut response = self.snapshot(Status::InProgress);
        response["status"] = json!("failed");
        response["error"] = json!({
            "code": "server_error",
            "message": error["message"].as_str().unwrap_or("The stream failed."),
        });
        self.emit(out, "response.failed", json!({"response": response}));
        self.ended = true;
    }
}

/// The item id of a function call, as [`function_call_item`] writes it.
fn call_item_id(call_id: &str) -> String {
    format!("fc_{}", call_id.strip_prefix("call_").unwrap_or(call_id))
}

impl StreamEncoder for ResponsesEvents {
    fn encode(&mut self, openai: &[u8], out: &mut BytesMut) {
        self.decoder.push(openai);
        while let Some(event) = self.decoder.next_event() {
            if self.ended {
                continue;
            }
            // The upstream's own events are named; the gateway's error events are not.
            if self.relaying
                && let Some(name) = &event.event
            {
                self.relay(name, &event.data, &event.raw, out);
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
                self.fail(error, out);
                continue;
            }
            if let Ok(chunk) = serde_json::from_value::<ChatCompletionChunk>(value) {
                self.chunk(chunk, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(openai: &str) -> Vec<Value> {
        let mut encoder = ResponsesEvents::new();
        let mut out = BytesMut::new();
        for piece in openai.as_bytes().chunks(7) {
            encoder.encode(piece, &mut out);
        }
        String::from_utf8(out.to_vec())
            .unwrap()
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (name, data) = e.split_once('\n').unwrap();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(
                    Some(data["type"].as_str().unwrap()),
                    name.strip_prefix("event: ")
                );
                data
            })
            .collect()
    }

    fn chunk(delta: Value, finish: Option<&str>) -> String {
        let chunk = json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 5,
            "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {chunk}\n\n")
    }

    #[test]
    fn text_and_a_function_call_in_the_sdks_order() {
        let usage = json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 5,
            "model": "m", "choices": [],
            "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}});
        let stream = [
            chunk(json!({"role": "assistant", "content": "Hi "}), None),
            chunk(json!({"content": "there"}), None),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_7", "type": "function",
                                         "function": {"name": "f", "arguments": "{\"a\""}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
            format!("data: {usage}\n\ndata: [DONE]\n\n"),
        ]
        .concat();
        let events = events(&stream);
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, event) in events.iter().enumerate() {
            assert_eq!(event["sequence_number"], i as u64);
        }
        assert_eq!(events[6]["text"], "Hi there");
        assert_eq!(events[12]["arguments"], "{\"a\":1}");
        let done = &events[14]["response"];
        assert_eq!(done["id"], "resp_9");
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][0]["content"][0]["text"], "Hi there");
        assert_eq!(done["output"][1]["call_id"], "call_7");
        assert_eq!(done["output"][1]["output_index"], Value::Null);
        assert_eq!(done["usage"]["output_tokens"], 4);
    }

    #[test]
    fn a_failure_ends_in_response_failed() {
        let stream = format!(
            "{}data: {}\n\n",
            chunk(json!({"content": "par"}), None),
            json!({"error": {"message": "interrupted", "type": "upstream_error", "code": "stream_interrupted"}})
        );
        let events = events(&stream);
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.failed");
        assert_eq!(last["response"]["status"], "failed");
        assert_eq!(last["response"]["error"]["message"], "interrupted");
    }

    #[test]
    fn a_stream_cut_by_the_limit_is_incomplete() {
        let stream = [
            chunk(json!({"content": "Once"}), None),
            chunk(json!({}), Some("length")),
            "data: [DONE]\n\n".to_owned(),
        ]
        .concat();
        let events = events(&stream);
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(
            last["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
    }

    fn relayed(stream: &str) -> String {
        let mut encoder = ResponsesEvents::relaying();
        let mut out = BytesMut::new();
        for piece in stream.as_bytes().chunks(5) {
            encoder.encode(piece, &mut out);
        }
        String::from_utf8(out.to_vec()).unwrap()
    }

    fn upstream_event(kind: &str, sequence: u64, mut data: Value) -> String {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(sequence);
        format!("event: {kind}\ndata: {data}\n\n")
    }

    #[test]
    fn a_relayed_stream_passes_as_it_came() {
        let response = json!({"id": "resp_up", "object": "response", "created_at": 9,
            "status": "in_progress", "model": "gpt-4.1", "output": []});
        let stream = [
            upstream_event("response.created", 0, json!({"response": response})),
            upstream_event(
                "response.output_text.delta",
                1,
                json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "Hi"}),
            ),
            upstream_event("response.completed", 2, json!({"response": response})),
        ]
        .concat();
        assert_eq!(relayed(&stream), stream);
    }

    #[test]
    fn a_relayed_stream_broken_off_ends_in_response_failed_of_the_same_response() {
        let response = json!({"id": "resp_up", "object": "response", "created_at": 9,
            "status": "in_progress", "model": "gpt-4.1", "output": []});
        let upstream = [
            upstream_event("response.created", 0, json!({"response": response})),
            upstream_event("response.in_progress", 1, json!({"response": response})),
        ]
        .concat();
        let gateway_error = format!(
            "data: {}\n\n",
            json!({"error": {"message": "The upstream stream was interrupted: cut", "type": "upstream_error",
                             "param": null, "code": "stream_interrupted"}})
        );
        let out = relayed(&format!("{upstream}{gateway_error}"));
        let failed = out.strip_prefix(upstream.as_str()).unwrap();
        let (name, data) = failed.trim_end().split_once('\n').unwrap();
        assert_eq!(name, "event: response.failed");
        let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data["type"], "response.failed");
        assert_eq!(data["sequence_number"], 2);
        assert_eq!(data["response"]["id"], "resp_up");
        assert_eq!(data["response"]["model"], "gpt-4.1");
        assert_eq!(data["response"]["status"], "failed");
        assert_eq!(
            data["response"]["error"]["message"],
            "The upstream stream was interrupted: cut"
        );

        // An upstream that reported its own failure is not given a second one.
        let own_failure = upstream_event(
            "response.failed",
            2,
            json!({"response": {"id": "resp_up", "status": "failed",
                                "error": {"code": "server_error", "message": "crashed"}}}),
        );
        let stream = format!("{upstream}{own_failure}");
        assert_eq!(relayed(&format!("{stream}{gateway_error}")), stream);
    }
}
