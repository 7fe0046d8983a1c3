//! An OpenAI-format event stream, relayed as it comes.

use std::borrow::Cow;

use bytes::BytesMut;
use serde::Deserialize;
use tollgate_common::TokenUsage;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::tests_support::fixture;

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
}
