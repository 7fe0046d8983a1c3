//! An incremental decoder for the AWS event stream encoding (`application/vnd.amazon.eventstream`),
//! fed with whatever byte splits the network delivers, as [`super::sse`] is for server-sent
//! events. Bedrock's ConverseStream answers in it.
//!
//! A message is framed as: total length (u32), headers length (u32), CRC32 of those 8 bytes,
//! the headers, the payload, and the CRC32 of everything before it; integers are big-endian.
//! A header is its name's length (u8), the name, a type byte and the typed value.
//! <https://docs.aws.amazon.com/transcribe/latest/dg/event-stream.html>
//!
//! Written here rather than taken from `aws-smithy-eventstream`: the format is small, and that
//! crate's frame types come with the smithy runtime's, where this needs only bytes in and
//! headers and payload out. The lengths are checked against the prelude's CRC and a bound
//! before anything is buffered for them, so a broken or hostile upstream cannot make the
//! gateway wait for, or allocate, gigabytes.

use bytes::{Buf, Bytes, BytesMut};

/// Bytes of a message that are not headers or payload: the prelude, its CRC, the message CRC.
const OVERHEAD: usize = 16;
/// The prelude (two lengths) and its CRC.
const PRELUDE: usize = 12;
/// The largest message accepted: the encoding's own limit (16 MiB), far above any event
/// Bedrock sends.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// One decoded message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Bytes,
}

impl Message {
    /// The value of a string header, such as `:event-type`.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }
}

/// A header's typed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(Bytes),
    String(String),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

/// Why the stream cannot be read further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("event stream message of {total} bytes is shorter than its 16-byte framing")]
    TooShort { total: usize },
    #[error("event stream message of {total} bytes exceeds the {max}-byte limit")]
    TooLarge { total: usize, max: usize },
    #[error("event stream headers of {headers} bytes do not fit a {total}-byte message")]
    HeadersTooLong { headers: usize, total: usize },
    #[error(
        "event stream prelude checksum mismatch (sent {sent:#010x}, computed {computed:#010x})"
    )]
    PreludeChecksum { sent: u32, computed: u32 },
    #[error(
        "event stream message checksum mismatch (sent {sent:#010x}, computed {computed:#010x})"
    )]
    MessageChecksum { sent: u32, computed: u32 },
    #[error("event stream header is malformed: {0}")]
    Header(&'static str),
}

/// Buffers bytes until messages are complete.
#[derive(Debug)]
pub struct EventStreamDecoder {
    buffer: BytesMut,
    max_message: usize,
    /// Set once a message failed to decode: nothing after it can be trusted to be framed right.
    failed: Option<FrameError>,
}

impl Default for EventStreamDecoder {
    fn default() -> Self {
        Self::new(MAX_MESSAGE_BYTES)
    }
}

impl EventStreamDecoder {
    /// A decoder refusing messages longer than `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        EventStreamDecoder {
            buffer: BytesMut::new(),
            max_message,
            failed: None,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// Whether bytes of an unfinished message are waiting.
    pub fn has_pending(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// The next complete message, if one has fully arrived. After an error every call returns
    /// that error again.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        match self.decode() {
            Err(error) => {
                self.buffer.clear();
                self.failed = Some(error.clone());
                Err(error)
            }
            ok => ok,
        }
    }

    fn decode(&mut self) -> Result<Option<Message>, FrameError> {
        if self.buffer.len() < PRELUDE {
            return Ok(None);
        }
        let total = read_u32(&self.buffer[0..4]) as usize;
        let headers_len = read_u32(&self.buffer[4..8]) as usize;
        let sent = read_u32(&self.buffer[8..12]);
        let computed = crc32fast::hash(&self.buffer[0..8]);
        if sent != computed {
            return Err(FrameError::PreludeChecksum { sent, computed });
        }
        if total < OVERHEAD {
            return Err(FrameError::TooShort { total });
        }
        if total > self.max_message {
            return Err(FrameError::TooLarge {
                total,
                max: self.max_message,
            });
        }
        if headers_len > total - OVERHEAD {
            return Err(FrameError::HeadersTooLong {
                headers: headers_len,
                total,
            });
        }
        if self.buffer.len() < total {
            // Ask for the whole message at once rather than growing the buffer piecemeal.
            self.buffer.reserve(total - self.buffer.len());
            return Ok(None);
        }
        let mut message = self.buffer.split_to(total).freeze();
        let sent = read_u32(&message[total - 4..]);
        let computed = crc32fast::hash(&message[..total - 4]);
        if sent != computed {
            return Err(FrameError::MessageChecksum { sent, computed });
        }
        message.truncate(total - 4);
        message.advance(PRELUDE);
        let payload = message.split_off(headers_len);
        let headers = parse_headers(message)?;
        Ok(Some(Message { headers, payload }))
    }
}

fn read_u32(bytes: &[u8]) -> u32 {
    let mut be = [0u8; 4];
    be.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(be)
}

/// Reads `n` bytes off the front of `bytes`, or says the header ran short.
fn take(bytes: &mut Bytes, n: usize) -> Result<Bytes, FrameError> {
    if bytes.len() < n {
        return Err(FrameError::Header("a value runs past the headers' end"));
    }
    Ok(bytes.split_to(n))
}

fn take_array<const N: usize>(bytes: &mut Bytes) -> Result<[u8; N], FrameError> {
    let taken = take(bytes, N)?;
    let mut array = [0u8; N];
    array.copy_from_slice(&taken);
    Ok(array)
}

fn parse_headers(mut bytes: Bytes) -> Result<Vec<(String, HeaderValue)>, FrameError> {
    let mut headers = Vec::new();
    while !bytes.is_empty() {
        let [name_len] = take_array::<1>(&mut bytes)?;
        if name_len == 0 {
            return Err(FrameError::Header("a header name is empty"));
        }
        let name = String::from_utf8(take(&mut bytes, usize::from(name_len))?.to_vec())
            .map_err(|_| FrameError::Header("a header name is not UTF-8"))?;
        let [kind] = take_array::<1>(&mut bytes)?;
        let value = match kind {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes(take_array(&mut bytes)?)),
            3 => HeaderValue::Short(i16::from_be_bytes(take_array(&mut bytes)?)),
            4 => HeaderValue::Int(i32::from_be_bytes(take_array(&mut bytes)?)),
            5 => HeaderValue::Long(i64::from_be_bytes(take_array(&mut bytes)?)),
            6 | 7 => {
                let len = u16::from_be_bytes(take_array(&mut bytes)?);
                let value = take(&mut bytes, usize::from(len))?;
                if kind == 6 {
                    HeaderValue::Bytes(value)
                } else {
                    HeaderValue::String(
                        String::from_utf8(value.to_vec())
                            .map_err(|_| FrameError::Header("a string value is not UTF-8"))?,
                    )
                }
            }
            8 => HeaderValue::Timestamp(i64::from_be_bytes(take_array(&mut bytes)?)),
            9 => HeaderValue::Uuid(take_array(&mut bytes)?),
            _ => return Err(FrameError::Header("unknown value type")),
        };
        headers.push((name, value));
    }
    Ok(headers)
}

/// Encodes a message with string headers, for tests: the decoder's inverse.
#[cfg(test)]
pub(crate) fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut encoded_headers = Vec::new();
    for (name, value) in headers {
        encoded_headers.push(u8::try_from(name.len()).unwrap());
        encoded_headers.extend_from_slice(name.as_bytes());
        encoded_headers.push(7);
        encoded_headers.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
        encoded_headers.extend_from_slice(value.as_bytes());
    }
    let total = OVERHEAD + encoded_headers.len() + payload.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&u32::try_from(total).unwrap().to_be_bytes());
    out.extend_from_slice(&u32::try_from(encoded_headers.len()).unwrap().to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&encoded_headers);
    out.extend_from_slice(payload);
    let message_crc = crc32fast::hash(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known messages from the AWS event stream test suite (aws-c-event-stream), bytes and CRCs
    // as published there.
    const EMPTY: [u8; 16] = [
        0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8,
        0xff,
    ];
    const NO_HEADERS: [u8; 29] = [
        0x00, 0x00, 0x00, 0x1D, 0x00, 0x00, 0x00, 0x00, 0xfd, 0x52, 0x8c, 0x5a, 0x7b, 0x27, 0x66,
        0x6f, 0x6f, 0x27, 0x3a, 0x27, 0x62, 0x61, 0x72, 0x27, 0x7d, 0xc3, 0x65, 0x39, 0x36,
    ];
    const ONE_HEADER: [u8; 61] = [
        0x00, 0x00, 0x00, 0x3D, 0x00, 0x00, 0x00, 0x20, 0x07, 0xFD, 0x83, 0x96, 0x0C, b'c', b'o',
        b'n', b't', b'e', b'n', b't', b'-', b't', b'y', b'p', b'e', 0x07, 0x00, 0x10, b'a', b'p',
        b'p', b'l', b'i', b'c', b'a', b't', b'i', b'o', b'n', b'/', b'j', b's', b'o', b'n', 0x7b,
        0x27, 0x66, 0x6f, 0x6f, 0x27, 0x3a, 0x27, 0x62, 0x61, 0x72, 0x27, 0x7d, 0x8D, 0x9C, 0x08,
        0xB1,
    ];

    fn decode_all(chunks: &[&[u8]]) -> Result<Vec<Message>, FrameError> {
        let mut decoder = EventStreamDecoder::default();
        let mut messages = Vec::new();
        for chunk in chunks {
            decoder.push(chunk);
            while let Some(message) = decoder.next_message()? {
                messages.push(message);
            }
        }
        assert!(!decoder.has_pending(), "bytes left over");
        Ok(messages)
    }

    #[test]
    fn published_messages_decode_with_their_checksums() {
        let messages = decode_all(&[&EMPTY, &NO_HEADERS, &ONE_HEADER]).unwrap();
        assert_eq!(messages.len(), 3);
        assert!(messages[0].headers.is_empty() && messages[0].payload.is_empty());
        assert!(messages[1].headers.is_empty());
        assert_eq!(&messages[1].payload[..], b"{'foo':'bar'}");
        assert_eq!(
            messages[2].headers,
            [(
                "content-type".to_owned(),
                HeaderValue::String("application/json".into())
            )]
        );
        assert_eq!(
            messages[2].header_str("content-type"),
            Some("application/json")
        );
        assert_eq!(&messages[2].payload[..], b"{'foo':'bar'}");
        // The test encoder writes the same bytes, checksums included.
        assert_eq!(
            encode(&[("content-type", "application/json")], b"{'foo':'bar'}"),
            ONE_HEADER
        );
        assert_eq!(encode(&[], b""), EMPTY);
    }

    #[test]
    fn every_split_point_decodes_the_same() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&ONE_HEADER);
        stream.extend(encode(
            &[
                (":event-type", "contentBlockDelta"),
                (":message-type", "event"),
            ],
            "{\"delta\":{\"text\":\"héllo\"}}".as_bytes(),
        ));
        stream.extend_from_slice(&EMPTY);
        let whole = decode_all(&[&stream]).unwrap();
        assert_eq!(whole.len(), 3);
        assert_eq!(
            whole[1].header_str(":event-type"),
            Some("contentBlockDelta")
        );
        for cut in 0..=stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(decode_all(&[a, b]).unwrap(), whole, "cut at {cut}");
        }
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_all(&bytewise).unwrap(), whole);
    }

    #[test]
    fn every_header_type_is_read() {
        let mut headers = Vec::new();
        let mut push = |name: &str, kind: u8, value: &[u8]| {
            headers.push(u8::try_from(name.len()).unwrap());
            headers.extend_from_slice(name.as_bytes());
            headers.push(kind);
            headers.extend_from_slice(value);
        };
        push("t", 0, &[]);
        push("f", 1, &[]);
        push("b", 2, &[0xff]);
        push("s", 3, &[0x01, 0x02]);
        push("i", 4, &7i32.to_be_bytes());
        push("l", 5, &(-9i64).to_be_bytes());
        push("y", 6, &[0x00, 0x02, 0xde, 0xad]);
        push("d", 8, &1_700_000_000_000i64.to_be_bytes());
        push("u", 9, &[7u8; 16]);
        let total = OVERHEAD + headers.len();
        let mut message = Vec::new();
        message.extend_from_slice(&u32::try_from(total).unwrap().to_be_bytes());
        message.extend_from_slice(&u32::try_from(headers.len()).unwrap().to_be_bytes());
        message.extend_from_slice(&crc32fast::hash(&message).to_be_bytes());
        message.extend_from_slice(&headers);
        message.extend_from_slice(&crc32fast::hash(&message).to_be_bytes());
        let decoded = decode_all(&[&message]).unwrap().remove(0);
        let values: Vec<HeaderValue> = decoded.headers.into_iter().map(|(_, v)| v).collect();
        assert_eq!(
            values,
            [
                HeaderValue::Bool(true),
                HeaderValue::Bool(false),
                HeaderValue::Byte(-1),
                HeaderValue::Short(0x0102),
                HeaderValue::Int(7),
                HeaderValue::Long(-9),
                HeaderValue::Bytes(Bytes::from_static(&[0xde, 0xad])),
                HeaderValue::Timestamp(1_700_000_000_000),
                HeaderValue::Uuid([7u8; 16]),
            ]
        );
    }

    #[test]
    fn corrupted_messages_are_refused_and_stay_refused() {
        let mut bad_prelude = ONE_HEADER;
        bad_prelude[3] ^= 0x01;
        let err = decode_all(&[&bad_prelude]).unwrap_err();
        assert!(matches!(err, FrameError::PreludeChecksum { .. }), "{err}");

        let mut bad_payload = ONE_HEADER;
        bad_payload[50] ^= 0x20;
        let err = decode_all(&[&bad_payload]).unwrap_err();
        assert!(matches!(err, FrameError::MessageChecksum { .. }), "{err}");

        let mut decoder = EventStreamDecoder::default();
        decoder.push(&bad_payload);
        assert!(decoder.next_message().is_err());
        decoder.push(&EMPTY);
        assert!(
            decoder.next_message().is_err(),
            "no resync after corruption"
        );

        // Headers that claim more bytes than they have, under valid checksums.
        let mut short_header = Vec::new();
        let headers = [0x03, b'a', b'b', b'c', 7, 0x00, 0x09, b'x'];
        short_header.extend_from_slice(&(OVERHEAD as u32 + 8).to_be_bytes());
        short_header.extend_from_slice(&8u32.to_be_bytes());
        short_header.extend_from_slice(&crc32fast::hash(&short_header).to_be_bytes());
        short_header.extend_from_slice(&headers);
        short_header.extend_from_slice(&crc32fast::hash(&short_header).to_be_bytes());
        assert_eq!(
            decode_all(&[&short_header]).unwrap_err(),
            FrameError::Header("a value runs past the headers' end")
        );
    }

    /// A prelude with valid checksum for the given lengths.
    fn prelude(total: u32, headers: u32) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(&headers.to_be_bytes());
        out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
        out
    }

    #[test]
    fn hostile_lengths_are_refused_before_anything_is_buffered_for_them() {
        let mut decoder = EventStreamDecoder::default();
        decoder.push(&prelude(u32::MAX, 0));
        assert_eq!(
            decoder.next_message().unwrap_err(),
            FrameError::TooLarge {
                total: u32::MAX as usize,
                max: MAX_MESSAGE_BYTES
            }
        );
        assert!(decoder.buffer.capacity() < 1024 * 1024);

        let mut small = EventStreamDecoder::new(64);
        small.push(&prelude(65, 0));
        assert!(matches!(
            small.next_message(),
            Err(FrameError::TooLarge { total: 65, max: 64 })
        ));

        let err = decode_all(&[&prelude(8, 0)]).unwrap_err();
        assert_eq!(err, FrameError::TooShort { total: 8 });
        let err = decode_all(&[&prelude(20, 5)]).unwrap_err();
        assert_eq!(
            err,
            FrameError::HeadersTooLong {
                headers: 5,
                total: 20
            }
        );

        // A valid prelude announcing a large message only waits for it.
        let mut decoder = EventStreamDecoder::default();
        decoder.push(&prelude(1024, 0));
        assert_eq!(decoder.next_message(), Ok(None));
        assert!(decoder.has_pending());
    }
}
