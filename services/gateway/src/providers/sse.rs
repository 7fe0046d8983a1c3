//! An incremental decoder for server-sent events, fed with whatever byte splits the network
//! delivers. See <https://html.spec.whatwg.org/multipage/server-sent-events.html>.

use bytes::{Buf, Bytes, BytesMut};

/// One complete event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event exactly as received, terminator included, for relaying untouched.
    pub raw: Bytes,
    /// The `event:` field, when present.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Buffers bytes until events are complete.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buffer: BytesMut,
    /// Bytes already searched for an event end, so each byte is scanned once.
    scanned: usize,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// Whether bytes of an unfinished event are waiting.
    pub fn has_pending(&self) -> bool {
        self.buffer.iter().any(|b| !b.is_ascii_whitespace())
    }

    /// The next complete event, if one has fully arrived.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.find_event_end()?;
            let raw = self.buffer.split_to(end).freeze();
            self.scanned = 0;
            if let Some(event) = parse_event(raw) {
                return Some(event);
            }
        }
    }

    /// Treats what is left at the end of the stream as a last event (a server that closes
    /// without the final blank line).
    pub fn finish(&mut self) -> Option<SseEvent> {
        if let Some(event) = self.next_event() {
            return Some(event);
        }
        if !self.has_pending() {
            self.buffer.clear();
            return None;
        }
        let raw = self.buffer.split().freeze();
        self.scanned = 0;
        parse_event(raw)
    }

    /// Offset just past the blank line that ends the first event.
    fn find_event_end(&mut self) -> Option<usize> {
        let bytes = &self.buffer[..];
        let mut i = self.scanned.saturating_sub(3);
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => {
                    if bytes.get(i + 1) == Some(&b'\n') {
                        return Some(i + 2);
                    }
                    if bytes.get(i + 1) == Some(&b'\r') && bytes.get(i + 2) == Some(&b'\n') {
                        return Some(i + 3);
                    }
                }
                b'\r' if bytes.get(i + 1) == Some(&b'\r') => return Some(i + 2),
                _ => {}
            }
            i += 1;
        }
        self.scanned = bytes.len();
        None
    }
}

/// Parses one event's lines; `None` for an event with no data (comments, keep-alives).
fn parse_event(raw: Bytes) -> Option<SseEvent> {
    let mut event = None;
    let mut data: Option<String> = None;
    let text = String::from_utf8_lossy(raw.chunk());
    for line in text.split(['\n', '\r']) {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    data.map(|data| SseEvent { raw, event, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        for chunk in chunks {
            decoder.push(chunk);
            while let Some(event) = decoder.next_event() {
                events.push(event);
            }
        }
        events.extend(decoder.finish());
        events
    }

    #[test]
    fn events_split_at_every_byte_decode_the_same() {
        let stream = b"event: message_start\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: x\ndata: y\r\n\r\ndata: [DONE]\n\n";
        let whole = decode_all(&[stream]);
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_all(&bytewise), whole);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].event.as_deref(), Some("message_start"));
        assert_eq!(whole[0].data, "{\"a\":1}");
        assert_eq!(whole[1].data, "x\ny");
        assert_eq!(whole[2].data, "[DONE]");
        assert_eq!(
            &whole[0].raw[..],
            b"event: message_start\ndata: {\"a\":1}\n\n"
        );
    }

    #[test]
    fn a_last_event_without_blank_line_is_not_lost() {
        let events = decode_all(&[b"data: one\n\ndata: two"]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].data, "two");
    }
}
