//! `multipart/form-data` bodies, as `/v1/audio/transcriptions` takes them: the parts are read
//! once (with `multer`), and the body sent upstream is the same parts under the same boundary,
//! with the `model` part's value replaced.
//!
//! The body is already in memory, bounded by `server.max_body_bytes`, when it is read here;
//! the parser is driven to its end at once, without waiting on anything.

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::FutureExt;

use super::inbound::{storable, stream_not_offered, type_error};
use crate::error::GatewayError;

/// The most parts a body may have. OpenAI's transcription form has about a dozen fields
/// (`include[]` and `timestamp_granularities[]` repeat a few times at most); a limit keeps a
/// body of endless empty parts from costing a part record each.
const MAX_PARTS: usize = 100;

/// The longest part name accepted, in bytes. Every name OpenAI's forms use is a short word.
const MAX_PART_NAME_BYTES: usize = 256;

/// The longest boundary RFC 2046 allows.
const MAX_BOUNDARY_BYTES: usize = 70;

/// One part: its name, its header lines as they are written upstream, and its content.
struct FormPart {
    name: String,
    head: Bytes,
    data: Bytes,
}

/// A `multipart/form-data` body, read into its parts.
pub struct FormBody {
    boundary: String,
    parts: Vec<FormPart>,
}

impl FormBody {
    /// Reads `raw`, sent with the request header `content_type`. Anything but a well-formed
    /// `multipart/form-data` body with named parts is a [`GatewayError::MalformedForm`].
    pub fn read(content_type: Option<&str>, raw: Bytes) -> Result<FormBody, GatewayError> {
        let content_type = content_type.unwrap_or_default();
        let boundary = multer::parse_boundary(content_type).map_err(|_| {
            GatewayError::MalformedForm(
                "the body must be sent as multipart/form-data, with a boundary in its \
                 Content-Type header"
                    .into(),
            )
        })?;
        if !valid_boundary(&boundary) {
            return Err(GatewayError::MalformedForm(format!(
                "the boundary must be 1 to {MAX_BOUNDARY_BYTES} characters of those RFC 2046 \
                 allows"
            )));
        }
        let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(raw) });
        let mut multipart = multer::Multipart::new(stream, boundary.clone());
        let read = async {
            let mut parts = Vec::new();
            while let Some(field) = multipart.next_field().await.map_err(form_error)? {
                if parts.len() == MAX_PARTS {
                    return Err(GatewayError::MalformedForm(format!(
                        "the body has more than {MAX_PARTS} parts"
                    )));
                }
                let name = match field.name() {
                    None | Some("") => {
                        return Err(GatewayError::MalformedForm(
                            "every part needs a name (Content-Disposition: form-data; name=\"...\")"
                                .into(),
                        ));
                    }
                    Some(name) if name.len() > MAX_PART_NAME_BYTES => {
                        return Err(GatewayError::MalformedForm(format!(
                            "a part name is longer than {MAX_PART_NAME_BYTES} bytes"
                        )));
                    }
                    Some(name) => name.to_owned(),
                };
                let head = write_head(field.headers());
                let data = field.bytes().await.map_err(form_error)?;
                parts.push(FormPart { name, head, data });
            }
            Ok(parts)
        };
        // The whole body is one ready chunk, so the parser never waits; were it ever to, the
        // body could not be read.
        let parts = read.now_or_never().unwrap_or_else(|| {
            Err(GatewayError::MalformedForm(
                "the body ended before its closing boundary".into(),
            ))
        })?;
        Ok(FormBody { boundary, parts })
    }

    /// Reads a request's form: `model` (the last `model` part, which must be a name the ledger
    /// can store) and `required` must be there, and `stream` may only be false. Returns the
    /// form and its model.
    pub(super) fn read_request(
        required: &str,
        content_type: Option<&str>,
        raw: Bytes,
    ) -> Result<(FormBody, String), GatewayError> {
        let form = FormBody::read(content_type, raw)?;
        let model = match form.text("model")? {
            None => {
                return Err(GatewayError::invalid_field(
                    "model",
                    "you must provide a `model` parameter.",
                ));
            }
            Some("") => {
                return Err(GatewayError::invalid_field(
                    "model",
                    "`model` must not be empty.",
                ));
            }
            Some(model) => model.to_owned(),
        };
        storable("model", &model)?;
        if !form.has(required) {
            return Err(GatewayError::invalid_field(
                required,
                format!("you must provide a `{required}` parameter."),
            ));
        }
        match form.text("stream")?.map(str::trim) {
            None => {}
            Some(value) if value.eq_ignore_ascii_case("false") => {}
            Some(value) if value.eq_ignore_ascii_case("true") => return Err(stream_not_offered()),
            Some(_) => return Err(type_error("stream", "`true` or `false`")),
        }
        Ok((form, model))
    }

    /// Whether the answer is plain text: a transcript asked for as `text`, `srt` or `vtt`.
    pub fn answers_in_text(&self) -> bool {
        matches!(
            self.text("response_format").ok().flatten().map(str::trim),
            Some("text" | "srt" | "vtt")
        )
    }

    /// The value of the last part called `name`, as text; a value that is not UTF-8 is a 400
    /// naming the field.
    pub fn text(&self, name: &str) -> Result<Option<&str>, GatewayError> {
        let Some(part) = self.parts.iter().rev().find(|part| part.name == name) else {
            return Ok(None);
        };
        std::str::from_utf8(&part.data)
            .map(Some)
            .map_err(|_| GatewayError::invalid_field(name, format!("`{name}` must be UTF-8 text.")))
    }

    /// Whether a part called `name` was sent.
    pub fn has(&self, name: &str) -> bool {
        self.parts.iter().any(|part| part.name == name)
    }

    /// The bytes of every part called `name`.
    pub fn bytes_of(&self, name: &str) -> u64 {
        self.parts
            .iter()
            .filter(|part| part.name == name)
            .map(|part| part.data.len() as u64)
            .sum()
    }

    /// The body's `Content-Type` header: the client's boundary, quoted where it must be.
    pub fn content_type(&self) -> String {
        let token = self
            .boundary
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"'+-._".contains(&b));
        if token {
            format!("multipart/form-data; boundary={}", self.boundary)
        } else {
            format!("multipart/form-data; boundary=\"{}\"", self.boundary)
        }
    }

    /// The same parts under the same boundary, with one `model` part, whose value is `model`.
    /// It stands where the last `model` part stood: that is the one the request was authorised
    /// by ([`FormBody::text`]), and no other model name may reach the upstream.
    pub fn with_model(&self, model: &str) -> Bytes {
        let last_model = self.parts.iter().rposition(|part| part.name == "model");
        let size: usize = self
            .parts
            .iter()
            .map(|part| part.head.len() + part.data.len() + self.boundary.len() + 8)
            .sum();
        let mut out = BytesMut::with_capacity(size + model.len() + self.boundary.len() + 8);
        for (index, part) in self.parts.iter().enumerate() {
            let value = match last_model {
                Some(last) if index == last => model.as_bytes(),
                _ if part.name == "model" => continue,
                _ => &part.data[..],
            };
            out.put_slice(b"--");
            out.put_slice(self.boundary.as_bytes());
            out.put_slice(b"\r\n");
            out.put_slice(&part.head);
            out.put_slice(b"\r\n");
            out.put_slice(value);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"--");
        out.put_slice(self.boundary.as_bytes());
        out.put_slice(b"--\r\n");
        out.freeze()
    }
}

/// A part's header lines, each ending in CRLF, as they are written upstream.
fn write_head(headers: &reqwest::header::HeaderMap) -> Bytes {
    let mut head = BytesMut::new();
    for (name, value) in headers {
        head.put_slice(name.as_str().as_bytes());
        head.put_slice(b": ");
        head.put_slice(value.as_bytes());
        head.put_slice(b"\r\n");
    }
    head.freeze()
}

/// RFC 2046's `boundary`: 1 to 70 of its `bchars`, not ending in a space. The boundary is
/// written again in the upstream request's header, so nothing else may pass.
fn valid_boundary(boundary: &str) -> bool {
    !boundary.is_empty()
        && boundary.len() <= MAX_BOUNDARY_BYTES
        && !boundary.ends_with(' ')
        && boundary
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b))
}

/// The parser's complaint, shortened: it may quote a part name of any length.
fn form_error(error: multer::Error) -> GatewayError {
    let message: String = error.to_string().chars().take(200).collect();
    GatewayError::MalformedForm(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::{Endpoint, InboundBody};

    const CONTENT_TYPE: &str = "multipart/form-data; boundary=XyZ";

    fn body(parts: &[(&str, &str)]) -> Bytes {
        let mut out = String::new();
        for (name, value) in parts {
            out.push_str(&format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        out.push_str("--XyZ--\r\n");
        Bytes::from(out)
    }

    #[test]
    fn parts_come_back_under_the_same_boundary_with_one_model() {
        let raw = Bytes::from_static(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nfirst\r\n\
              --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\
              Content-Type: audio/wav\r\n\r\nRIFF\0\r\nbytes\r\n\
              --XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nsecond\r\n\
              --XyZ--\r\n",
        );
        let form = FormBody::read(Some(CONTENT_TYPE), raw).unwrap();
        assert_eq!(form.text("model").unwrap(), Some("second"));
        assert_eq!(form.bytes_of("file"), 12);
        let sent = form.with_model("whisper-1");
        let again = FormBody::read(Some(&form.content_type()), sent.clone()).unwrap();
        assert_eq!(again.text("model").unwrap(), Some("whisper-1"));
        assert_eq!(again.parts.len(), 2, "{}", String::from_utf8_lossy(&sent));
        assert_eq!(&again.parts[0].data[..], b"RIFF\0\r\nbytes");
        assert!(
            String::from_utf8_lossy(&again.parts[0].head).contains("filename=\"a.wav\""),
            "{}",
            String::from_utf8_lossy(&sent)
        );
    }

    #[test]
    fn a_boundary_that_is_not_a_token_is_quoted() {
        let raw = Bytes::from_static(
            b"--a b:c\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--a b:c--\r\n",
        );
        let form = FormBody::read(Some("multipart/form-data; boundary=\"a b:c\""), raw).unwrap();
        assert_eq!(
            form.content_type(),
            "multipart/form-data; boundary=\"a b:c\""
        );
        assert_eq!(form.text("model").unwrap(), Some("m"));
    }

    #[test]
    fn bodies_that_are_not_forms_are_refused() {
        for content_type in [
            None,
            Some("application/json"),
            Some("multipart/form-data"),
            Some("multipart/form-data; boundary=\"\""),
            Some("multipart/form-data; boundary=\"a\u{1}b\""),
        ] {
            let err = FormBody::read(content_type, body(&[("model", "m")])).err();
            assert!(
                matches!(err, Some(GatewayError::MalformedForm(_))),
                "{content_type:?}: {err:?}"
            );
        }
        for raw in [
            &b""[..],
            b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm",
            b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nm\r\n--XyZ--\r\n",
            b"--XyZ\r\nno colon here\r\n\r\nm\r\n--XyZ--\r\n",
            b"garbage",
        ] {
            let err = FormBody::read(Some(CONTENT_TYPE), Bytes::copy_from_slice(raw)).err();
            assert!(
                matches!(err, Some(GatewayError::MalformedForm(_))),
                "{}: {err:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn huge_names_and_endless_parts_are_refused() {
        let long = "n".repeat(MAX_PART_NAME_BYTES + 1);
        let err = FormBody::read(Some(CONTENT_TYPE), body(&[(long.as_str(), "x")])).err();
        assert!(matches!(err, Some(GatewayError::MalformedForm(m)) if m.len() < 300));
        let many = vec![("x", ""); MAX_PARTS + 1];
        let err = FormBody::read(Some(CONTENT_TYPE), body(&many)).err();
        assert!(matches!(err, Some(GatewayError::MalformedForm(_))));
    }

    fn transcription(parts: &[(&str, &str)]) -> Result<InboundBody, GatewayError> {
        let mut raw = String::new();
        for (name, value) in parts {
            raw.push_str(&format!(
                "--B\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        raw.push_str("--B--\r\n");
        InboundBody::parse_form(
            Endpoint::AudioTranscriptions,
            Some("multipart/form-data; boundary=B"),
            Bytes::from(raw),
        )
    }

    #[test]
    fn transcription_forms_need_a_model_and_a_file_and_take_no_stream() {
        let body = transcription(&[
            ("model", "a"),
            ("file", "RIFF"),
            ("stream", "False"),
            ("response_format", "srt"),
            ("model", "b"),
        ])
        .unwrap();
        assert_eq!(body.model, "b");
        assert_eq!(body.answer_content_type(), "text/plain; charset=utf-8");
        let content_type = body.upstream_content_type().unwrap();
        assert_eq!(content_type, "multipart/form-data; boundary=B");
        let sent =
            FormBody::read(Some(&content_type), body.to_openai_body("whisper-1", true)).unwrap();
        assert_eq!(sent.text("model").unwrap(), Some("whisper-1"));
        assert_eq!(sent.bytes_of("model"), 9);
        let json = transcription(&[("model", "a"), ("file", "x")]).unwrap();
        assert_eq!(json.answer_content_type(), "application/json");
        for (parts, param) in [
            (&[("file", "x")][..], "model"),
            (&[("model", "a")][..], "file"),
            (&[("model", ""), ("file", "x")][..], "model"),
            (&[("model", "a\u{7}"), ("file", "x")][..], "model"),
            (
                &[("model", "a"), ("file", "x"), ("stream", "TRUE")][..],
                "stream",
            ),
            (
                &[("model", "a"), ("file", "x"), ("stream", "1")][..],
                "stream",
            ),
        ] {
            let err = transcription(parts).err();
            assert!(
                matches!(&err, Some(GatewayError::InvalidField { param: p, .. }) if p == param),
                "{parts:?}: {err:?}"
            );
        }
    }

    #[test]
    fn a_value_that_is_not_text_names_its_field() {
        let raw = Bytes::from_static(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n\xff\r\n--XyZ--\r\n",
        );
        let form = FormBody::read(Some(CONTENT_TYPE), raw).unwrap();
        let err = form.text("model").unwrap_err();
        assert!(matches!(err, GatewayError::InvalidField { param, .. } if param == "model"));
    }
}
