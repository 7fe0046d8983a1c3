//! An OpenAI-format event stream, relayed as it comes; and a Responses API stream, relayed to a
//! client of that API.
//! <https://platform.openai.com/docs/api-reference/responses-streaming>

use std::borrow::Cow;

use bytes::BytesMut;
use serde::Deserialize;
use tollgate_common::TokenUsage;

use super::response::ResponsesUsage;
use crate::openai::response::{SSE_DONE, Usage};
use crate::providers::StreamTranslator;
use crate::providers::sse::{SseDecoder, SseEvent};

/// Relays an OpenAI event stream event by event, unchanged but for one thing: when the gateway
/// asked for the usage chunk on the client's behalf, that chunk is read and not forwarded.
pub(super) struct OpenAiStream {
    decoder: SseDecoder,
    strip_usage_chunk: bool,
    usage: Option<TokenUsage>,
    output: String,
}

impl OpenAiStream {
    pub(super) fn new(strip_usage_chunk: bool) -> Self {
        OpenAiStream {
            decoder: SseDecoder::new(),
            strip_usage_chunk,
            usage: None,
            output: String::new(),
        }
    }

    fn relay(&mut self, event: SseEvent, out: &mut BytesMut) -> Result<(), String> {
        #[derive(Deserialize)]
        struct ChunkView<'a> {
            #[serde(default, borrow)]
            choices: Vec<ChoiceView<'a>>,
            #[serde(default)]
            usage: Option<Usage>,
            /// Groq's extras, where its streams carry their usage.
            #[serde(default)]
            x_groq: Option<GroqExtras>,
            #[serde(default)]
            error: Option<serde_json::Value>,
        }
        #[derive(Deserialize)]
        struct GroqExtras {
            #[serde(default)]
            usage: Option<Usage>,
        }
        #[derive(Deserialize)]
        struct ChoiceView<'a> {
            #[serde(default, borrow)]
            delta: Option<DeltaView<'a>>,
            /// A legacy completion's chunk has its text here.
            #[serde(default, borrow)]
            text: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        struct DeltaView<'a> {
            #[serde(default, borrow)]
            content: Option<Cow<'a, str>>,
        }
        if event.data == "[DONE]" {
            // Held back to `finish`: the end of the answer goes out only after the upstream
            // has ended and the request's usage is recorded.
            return Ok(());
        }
        let Ok(chunk) = serde_json::from_str::<ChunkView<'_>>(&event.data) else {
            out.extend_from_slice(&event.raw);
            return Ok(());
        };
        if let Some(error) = chunk.error {
            out.extend_from_slice(&event.raw);
            let message = error
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("upstream reported an error in the stream");
            return Err(message.to_owned());
        }
        for choice in &chunk.choices {
            let delta = choice.delta.as_ref().and_then(|d| d.content.as_deref());
            if let Some(text) = delta.or(choice.text.as_deref()) {
                self.output.push_str(text);
            }
        }
        if let Some(usage) = chunk.usage.or(chunk.x_groq.and_then(|x| x.usage)) {
            self.usage = Some(usage.tokens());
            if self.strip_usage_chunk && chunk.choices.is_empty() {
                return Ok(());
            }
        }
        out.extend_from_slice(&event.raw);
        Ok(())
    }
}

impl StreamTranslator for OpenAiStream {
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
        out.extend_from_slice(SSE_DONE);
        Ok(())
    }

    fn usage(&self) -> Option<TokenUsage> {
        self.usage
    }

    fn output_text(&self) -> &str {
        &self.output
    }
}

/// A Responses API stream for a client of that API: every event is relayed as it came, and only
/// read for the usage and the text. The closing `response.completed` (or `response.incomplete`)
/// is held back to `finish`, so that the end of the answer goes out only after the upstream has
/// ended and the usage is recorded.
pub(super) struct ResponsesRelay {
    decoder: SseDecoder,
    held_end: Option<bytes::Bytes>,
    usage: Option<TokenUsage>,
    output: String,
}

impl ResponsesRelay {
    pub(super) fn new() -> Self {
        ResponsesRelay {
            decoder: SseDecoder::new(),
            held_end: None,
            usage: None,
            output: String::new(),
        }
    }

    fn relay(&mut self, event: SseEvent, out: &mut BytesMut) -> Result<(), String> {
        #[derive(Deserialize)]
        struct EventView<'a> {
            #[serde(default, rename = "type", borrow)]
            kind: Option<Cow<'a, str>>,
            #[serde(default, borrow)]
            delta: Option<Cow<'a, str>>,
            #[serde(default)]
            response: Option<ResponseView>,
            /// An `error` event's.
            #[serde(default)]
            message: Option<String>,
        }
        #[derive(Deserialize)]
        struct ResponseView {
            #[serde(default)]
            usage: Option<ResponsesUsage>,
            #[serde(default)]
            error: Option<ErrorView>,
        }
        #[derive(Deserialize)]
        struct ErrorView {
            #[serde(default)]
            message: Option<String>,
        }
        if self.held_end.is_some() {
            return Ok(());
        }
        if event.data.is_empty() {
            out.extend_from_slice(&event.raw);
            return Ok(());
        }
        let parsed: EventView<'_> = serde_json::from_str(&event.data)
            .map_err(|e| format!("OpenAI sent an unreadable stream event: {e}"))?;
        let kind = parsed.kind.as_deref().or(event.event.as_deref());
        match kind.unwrap_or_default() {
            "response.output_text.delta" => {
                if let Some(delta) = &parsed.delta {
                    self.output.push_str(delta);
                }
            }
            "response.completed" | "response.incomplete" => {
                self.usage = parsed
                    .response
                    .and_then(|r| r.usage)
                    .map(|usage| usage.tokens());
                self.held_end = Some(event.raw);
                return Ok(());
            }
            "response.failed" => {
                out.extend_from_slice(&event.raw);
                let message = parsed
                    .response
                    .and_then(|r| r.error)
                    .and_then(|e| e.message);
                return Err(message.unwrap_or_else(|| "the response failed".to_owned()));
            }
            "error" => {
                out.extend_from_slice(&event.raw);
                return Err(parsed
                    .message
                    .unwrap_or_else(|| "OpenAI reported an error in the stream".to_owned()));
            }
            _ => {}
        }
        out.extend_from_slice(&event.raw);
        Ok(())
    }
}

impl StreamTranslator for ResponsesRelay {
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
        match self.held_end.take() {
            Some(end) => {
                out.extend_from_slice(&end);
                Ok(())
            }
            None => Err("stream ended before response.completed".into()),
        }
    }

    fn usage(&self) -> Option<TokenUsage> {
        self.usage
    }

    fn output_text(&self) -> &str {
        &self.output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::tests_support::fixture;
    use serde_json::json;

    #[test]
    fn stream_is_relayed_verbatim_except_the_usage_chunk_we_asked_for() {
        let stream = fixture("openai", "chat_stream.sse");
        for strip in [true, false] {
            let mut translator = OpenAiStream::new(strip);
            let mut out = BytesMut::new();
            for piece in stream.chunks(7) {
                translator.feed(piece, &mut out).unwrap();
            }
            translator.finish(&mut out).unwrap();
            let text = String::from_utf8(out.to_vec()).unwrap();
            assert_eq!(text.contains("\"usage\":{"), !strip, "{text}");
            assert!(text.ends_with("data: [DONE]\n\n"));
            assert_eq!(translator.output_text(), "Hello there!");
            assert_eq!(translator.usage().unwrap().output_tokens, 3);
        }
    }

    fn relayed(stream: &[u8], split: usize) -> (ResponsesRelay, Result<String, String>, usize) {
        let mut relay = ResponsesRelay::new();
        let mut out = BytesMut::new();
        for piece in stream.chunks(split) {
            if let Err(e) = relay.feed(piece, &mut out) {
                let text = String::from_utf8(out.to_vec()).unwrap();
                return (relay, Err(format!("{e}\n{text}")), 0);
            }
        }
        let before_finish = out.len();
        let result = relay
            .finish(&mut out)
            .map(|()| String::from_utf8(out.to_vec()).unwrap());
        (relay, result, before_finish)
    }

    #[test]
    fn a_responses_stream_is_passed_on_byte_for_byte_with_its_end_held() {
        let upstream = fixture("openai", "responses_stream.sse");
        for split in [1, 7, 64, upstream.len()] {
            let (relay, out, before_finish) = relayed(&upstream, split);
            let out = out.unwrap();
            assert_eq!(out.as_bytes(), &upstream[..], "split {split}");
            // Only the closing `response.completed` waits for the end.
            assert!(out[before_finish..].starts_with("event: response.completed\n"));
            assert_eq!(out[before_finish..].matches("\n\n").count(), 1);
            let usage = relay.usage().unwrap();
            assert_eq!(
                (
                    usage.input_tokens,
                    usage.output_tokens,
                    usage.cached_input_tokens
                ),
                (37, 11, 0)
            );
            assert_eq!(relay.output_text(), "Hi there! How can I help?");
        }
    }

    #[test]
    fn a_responses_stream_without_its_end_or_with_a_failure_is_an_error() {
        let upstream = fixture("openai", "responses_stream.sse");
        let text = String::from_utf8(upstream.clone()).unwrap();
        let cut = text.find("event: response.completed").unwrap();
        let (_, out, _) = relayed(&upstream[..cut], 5);
        assert!(out.unwrap_err().contains("ended before response.completed"));

        let failed = format!(
            "{}event: response.failed\ndata: {}\n\n",
            &text[..cut],
            json!({"type": "response.failed", "sequence_number": 11,
                   "response": {"id": "resp_1", "object": "response", "status": "failed",
                                "error": {"code": "server_error", "message": "The model crashed."}}})
        );
        let (_, out, _) = relayed(failed.as_bytes(), 9);
        let err = out.unwrap_err();
        // The failure is reported, and its event was passed on before the relay stopped.
        assert!(err.starts_with("The model crashed.\n"), "{err}");
        let last_event = err.rsplit("event: ").next().unwrap();
        assert!(last_event.starts_with("response.failed\n"), "{err}");

        let error = format!(
            "{}event: error\ndata: {}\n\n",
            &text[..cut],
            json!({"type": "error", "code": "rate_limit_exceeded", "message": "Slow down.",
                   "param": null, "sequence_number": 11})
        );
        let (_, out, _) = relayed(error.as_bytes(), 64);
        assert!(out.unwrap_err().starts_with("Slow down.\n"));

        let (_, out, _) = relayed(b"event: response.created\ndata: <html>\n\n", 64);
        assert!(out.unwrap_err().contains("unreadable"));
    }

    #[test]
    fn an_incomplete_response_is_held_and_read_like_a_completed_one() {
        let end = json!({"type": "response.incomplete", "sequence_number": 3, "response": {
            "id": "resp_1", "object": "response", "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "usage": {"input_tokens": 5, "output_tokens": 16, "total_tokens": 21}}});
        let stream = format!(
            "event: response.output_text.delta\ndata: {}\n\nevent: response.incomplete\ndata: {end}\n\n",
            json!({"type": "response.output_text.delta", "sequence_number": 2, "delta": "Once"})
        );
        let (relay, out, before_finish) = relayed(stream.as_bytes(), 4);
        assert_eq!(out.unwrap(), stream);
        assert!(before_finish < stream.len());
        assert_eq!(relay.usage().unwrap().output_tokens, 16);
        assert_eq!(relay.output_text(), "Once");
    }
}
