//! Provider-independent pieces of an answer: the deterministic text, token counts, tool-call
//! arguments, embedding vectors, ids and the hand-rolled JSON writing used on hot paths.

use std::borrow::Cow;
use std::fmt;

use bytes::BufMut;
use rand::Rng;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Words appended after the echoed prompt so every answer has exactly `chunks` deltas.
const FILLER: [&str; 8] = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
];

/// How much of the user's text is echoed back.
const ECHO_CHARS: usize = 60;

/// The deterministic answer text, split into the deltas a stream would carry.
pub(crate) struct Answer {
    pub text: String,
    /// Byte offset where each delta starts; delta `i` ends where delta `i + 1` starts.
    starts: Vec<usize>,
}

impl Answer {
    /// Builds "Mock <provider> answer to: <user text>" padded or merged to exactly `chunks` deltas.
    pub fn new(provider: &str, user_text: &str, chunks: usize) -> Answer {
        // Zero deltas would make a stream with no content at all, which no provider sends.
        let chunks = chunks.max(1);
        let echo = match user_text.char_indices().nth(ECHO_CHARS) {
            Some((cut, _)) => &user_text[..cut],
            None => user_text,
        };
        let mut text = String::with_capacity(32 + echo.len() + chunks * 7);
        let mut starts = Vec::with_capacity(chunks);
        let words = ["Mock"]
            .into_iter()
            .chain(provider.split_whitespace())
            .chain(["answer", "to:"])
            .chain(echo.split_whitespace());
        for word in words {
            push_word(&mut text, &mut starts, chunks, word);
        }
        let mut filler = FILLER.iter().cycle();
        while starts.len() < chunks {
            let Some(word) = filler.next() else { break };
            push_word(&mut text, &mut starts, chunks, word);
        }
        Answer { text, starts }
    }

    /// Number of deltas (also the completion token count).
    pub fn deltas(&self) -> usize {
        self.starts.len()
    }

    /// The `i`-th delta; deltas concatenate to `text`.
    pub fn delta(&self, i: usize) -> &str {
        let start = self.starts.get(i).copied().unwrap_or(self.text.len());
        let end = self.starts.get(i + 1).copied().unwrap_or(self.text.len());
        self.text.get(start..end).unwrap_or("")
    }
}

fn push_word(text: &mut String, starts: &mut Vec<usize>, chunks: usize, word: &str) {
    // Once all deltas are allocated, further words merge into the last one.
    if starts.len() < chunks {
        starts.push(text.len());
    }
    if !text.is_empty() {
        text.push(' ');
    }
    text.push_str(word);
}

/// Splits `s` into at most `parts` non-empty pieces on char boundaries (tool-argument fragments).
pub(crate) fn fragments(s: &str, parts: usize) -> Vec<&str> {
    let parts = parts.max(1);
    let total = s.chars().count();
    if total == 0 {
        return vec![s];
    }
    let per = total.div_ceil(parts);
    let mut out = Vec::with_capacity(parts);
    let mut rest = s;
    while !rest.is_empty() {
        let cut = rest.char_indices().nth(per).map_or(rest.len(), |(i, _)| i);
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out
}

/// Prompt tokens as the mock counts them: a quarter of the characters, rounded up, at least 1.
pub(crate) fn prompt_tokens(chars: usize) -> u64 {
    (chars.div_ceil(4).max(1)) as u64
}

/// Text gathered from a message's content, whatever shape the provider used for it.
#[derive(Default)]
pub(crate) struct Text<'a> {
    pub text: Cow<'a, str>,
    pub chars: usize,
    /// An Anthropic `tool_result` block was present.
    pub tool_result: bool,
    /// A Gemini `functionResponse` part was present.
    pub function_response: bool,
}

impl<'a> Text<'a> {
    fn append(&mut self, other: Text<'a>) {
        self.chars += other.chars;
        self.tool_result |= other.tool_result;
        self.function_response |= other.function_response;
        if other.text.is_empty() {
            return;
        }
        if self.text.is_empty() {
            self.text = other.text;
        } else {
            let joined = self.text.to_mut();
            joined.push(' ');
            joined.push_str(&other.text);
        }
    }

    fn from_cow(text: Cow<'a, str>) -> Text<'a> {
        Text {
            chars: text.chars().count(),
            text,
            ..Text::default()
        }
    }
}

/// One element of a content array (OpenAI parts, Anthropic blocks, Gemini parts).
#[derive(Deserialize)]
struct Part<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    /// Nested content of an Anthropic `tool_result` block.
    #[serde(default, borrow)]
    content: Option<Text<'a>>,
    #[serde(default, rename = "functionResponse", alias = "function_response")]
    function_response: Option<IgnoredAny>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("message content: a string or an array of parts")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Text::from_cow(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Text::from_cow(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Text::from_cow(Cow::Owned(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Text::default())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Text::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut all = Text::default();
        while let Some(part) = seq.next_element::<Part<'de>>()? {
            if let Some(text) = part.text {
                all.append(Text::from_cow(text));
            }
            if let Some(nested) = part.content {
                all.append(nested);
            }
            if part.kind.as_deref() == Some("tool_result") {
                all.tool_result = true;
            }
            if part.function_response.is_some() {
                all.function_response = true;
            }
        }
        Ok(all)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Text::default())
    }
}

/// Arguments a tool call carries: one placeholder value per property of the JSON schema.
pub(crate) fn arguments_for(schema: Option<&Value>) -> Map<String, Value> {
    let mut args = Map::new();
    let Some(properties) = schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    else {
        return args;
    };
    for (name, prop) in properties {
        args.insert(name.clone(), placeholder(prop));
    }
    args
}

fn placeholder(prop: &Value) -> Value {
    if let Some(first) = prop
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    // `type` may be a list such as ["string", "null"]; Gemini spells types in upper case.
    let ty = match prop.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| !t.eq_ignore_ascii_case("null"))
            .unwrap_or("null"),
        _ => "",
    };
    match ty.to_ascii_lowercase().as_str() {
        "string" => Value::from("test"),
        "integer" | "number" => Value::from(1),
        "boolean" => Value::Bool(true),
        "array" => Value::Array(Vec::new()),
        "object" => Value::Object(Map::new()),
        _ => Value::Null,
    }
}

/// A deterministic unit-length vector derived from `input`.
pub(crate) fn embedding(input: &[u8], dims: usize) -> Vec<f32> {
    // FNV-1a seeds splitmix64 so equal inputs give equal vectors without any table.
    let mut state = input.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut values: Vec<f32> = (0..dims)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // Top 24 bits give an exactly representable f32 in [-1, 1).
            ((z >> 40) as f32 / (1u32 << 23) as f32) - 1.0
        })
        .collect();
    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        for v in &mut values {
            *v /= norm;
        }
    }
    values
}

/// Standard base64 (with padding), as OpenAI uses for `encoding_format: "base64"`.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `prefix` followed by `len` random alphanumerics, like the ids real providers hand out.
pub(crate) fn random_id(prefix: &str, len: usize) -> String {
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    id.extend(
        rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(len)
            .map(char::from),
    );
    id
}

/// Seconds since the Unix epoch, for `created` fields.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes `s` as a JSON string literal; stream events are assembled by hand to avoid a
/// serializer round trip per chunk.
pub(crate) fn push_json_str(out: &mut impl BufMut, s: &str) {
    out.put_u8(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.put_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.put_slice(b"\\u00");
            out.put_u8(HEX[usize::from(b >> 4)]);
            out.put_u8(HEX[usize::from(b & 0xf)]);
        } else {
            out.put_slice(escape);
        }
        start = i + 1;
    }
    out.put_slice(&bytes[start..]);
    out.put_u8(b'"');
}

/// Writes an unsigned integer in decimal without going through `fmt`.
pub(crate) fn push_u64(out: &mut impl BufMut, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_has_exact_delta_count() {
        for chunks in [1, 3, 5, 20] {
            let a = Answer::new("OpenAI", "hello there, how are you doing today?", chunks);
            assert_eq!(a.deltas(), chunks);
            let joined: String = (0..a.deltas()).map(|i| a.delta(i)).collect();
            assert_eq!(joined, a.text);
            assert!((0..a.deltas()).all(|i| !a.delta(i).is_empty()));
        }
        let a = Answer::new("OpenAI", "hi", 5);
        assert_eq!(a.text, "Mock OpenAI answer to: hi");
    }

    #[test]
    fn fragments_cover_the_string() {
        let s = r#"{"city":"test","days":1}"#;
        let f = fragments(s, 5);
        assert!(f.len() <= 5 && !f.is_empty());
        assert_eq!(f.concat(), s);
    }

    #[test]
    fn json_escaping_matches_serde() {
        let s = "a\"b\\c\nd\u{1}é";
        let mut out = Vec::new();
        push_json_str(&mut out, s);
        assert_eq!(out, serde_json::to_vec(s).unwrap());
    }

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embedding(b"hello", 16);
        assert_eq!(a, embedding(b"hello", 16));
        assert_ne!(a, embedding(b"world", 16));
        let norm: f32 = a.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}
