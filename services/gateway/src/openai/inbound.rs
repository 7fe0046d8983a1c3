//! The client's request body, read only as far as routing needs.
//!
//! The body is parsed once into its top-level fields, each kept as a byte range of the original
//! bytes; the few fields the gateway reads (`model`, `stream`, `max_tokens`, ...) are typed and
//! checked here, so a wrong type gets a 400 naming the field. An OpenAI-shaped target receives
//! the same bytes back with `model` swapped ([`InboundBody::to_openai_body`]); other targets ask
//! for the fully typed request ([`InboundBody::chat`]), parsed at most once.
//!
//! A `multipart/form-data` body (audio transcriptions) is read into its parts instead
//! ([`super::form`]), and sent on as the same parts with `model` replaced.
//!
//! A body that came in another API's format ([`crate::ingress`]) is parsed from its OpenAI
//! translation, and keeps the client's own bytes beside it ([`InboundBody::native`]), so that a
//! target speaking that same API gets them back untouched but for `model`.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::Endpoint;
use super::form::FormBody;
use super::request::{ChatRequest, EmbeddingsRequest};
use crate::error::GatewayError;
use crate::ingress::Ingress;

struct Field {
    key: String,
    value: Range<usize>,
}

/// A validated request body: the client's bytes and the fields routing reads.
pub struct InboundBody {
    raw: Bytes,
    fields: Vec<Field>,
    pub endpoint: Endpoint,
    /// The model name the client asked for.
    pub model: String,
    pub stream: bool,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_output_tokens: Option<u32>,
    /// `n`: how many choices the answer has, each up to `max_output_tokens`.
    pub choices: u32,
    /// Whether the client itself asked for the usage chunk at the end of a stream.
    pub client_wants_stream_usage: bool,
    /// OpenAI's end-user identifier.
    pub user: Option<String>,
    chat: OnceLock<Result<ChatRequest, GatewayError>>,
    embeddings: OnceLock<Result<EmbeddingsRequest, GatewayError>>,
    native: Option<NativeBody>,
    /// The parts of a `multipart/form-data` body; `raw` is then empty.
    form: Option<FormBody>,
}

/// The body as the client wrote it in another API's format, with its top-level fields.
pub struct NativeBody {
    /// The API it was written for.
    pub ingress: Ingress,
    raw: Bytes,
    fields: Vec<Field>,
}

impl NativeBody {
    /// Reads the top-level fields of a body the client sent in another API's format (already
    /// checked by that API's own parser).
    pub fn parse(ingress: Ingress, raw: Bytes) -> Result<NativeBody, GatewayError> {
        let top: TopLevel<'_> =
            serde_json::from_slice(&raw).map_err(|e| GatewayError::MalformedJson(e.to_string()))?;
        let fields = field_ranges(&raw, &top);
        drop(top);
        Ok(NativeBody {
            ingress,
            raw,
            fields,
        })
    }

    /// The client's bytes with `model` set to the target's.
    pub fn with_model(&self, model: &str) -> Bytes {
        write_fields(&self.raw, &self.fields, model, false)
    }
}

impl fmt::Debug for InboundBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundBody")
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .field("stream", &self.stream)
            .field("bytes", &self.raw.len())
            .finish()
    }
}

impl InboundBody {
    /// Parses and checks a body sent to `endpoint`.
    pub fn parse(endpoint: Endpoint, raw: Bytes) -> Result<InboundBody, GatewayError> {
        let top: TopLevel<'_> = serde_json::from_slice(&raw).map_err(|e| {
            if e.is_data() {
                GatewayError::MalformedJson("the body must be a JSON object".into())
            } else {
                GatewayError::MalformedJson(e.to_string())
            }
        })?;
        let base = raw.as_ptr() as usize;
        let mut body = InboundBody {
            native: None,
            form: None,
            fields: Vec::with_capacity(top.0.len()),
            raw: Bytes::new(),
            endpoint,
            model: String::new(),
            stream: false,
            max_output_tokens: None,
            choices: 1,
            client_wants_stream_usage: false,
            user: None,
            chat: OnceLock::new(),
            embeddings: OnceLock::new(),
        };
        let mut seen_model = false;
        let mut seen_required = false;
        let mut max_tokens = None;
        let mut max_completion_tokens = None;
        let mut best_of = None;
        let generates = endpoint.generates();
        for (key, value) in &top.0 {
            let text = value.get();
            let start = text.as_ptr() as usize - base;
            match (endpoint, key.as_ref()) {
                (_, "model") => {
                    body.model = typed::<String>(key, text, "a string")?;
                    if body.model.is_empty() {
                        return Err(GatewayError::invalid_field(
                            "model",
                            "`model` must not be empty.",
                        ));
                    }
                    storable("model", &body.model)?;
                    seen_model = true;
                }
                (_, "user") => {
                    body.user = typed::<Option<String>>(key, text, "a string")?;
                    if let Some(user) = &body.user {
                        storable("user", user)?;
                    }
                }
                (Endpoint::ChatCompletions, "messages") => {
                    let first = text.as_bytes().first().copied();
                    if first != Some(b'[') {
                        return Err(type_error(key, "an array of messages"));
                    }
                    if text[1..].trim_start().starts_with(']') {
                        return Err(GatewayError::invalid_field(
                            "messages",
                            "`messages` must contain at least one message.",
                        ));
                    }
                    seen_required = true;
                }
                (Endpoint::Completions, "prompt") => seen_required = true,
                (Endpoint::ImageGenerations, "prompt") => {
                    if !text.starts_with('"') {
                        return Err(type_error(key, "a string"));
                    }
                    seen_required = true;
                }
                (Endpoint::ImageGenerations, "n") => body.choices = image_count(text)?,
                (Endpoint::ImageGenerations, "stream") => {
                    let stream = typed::<Option<bool>>(key, text, "a boolean")?;
                    if stream == Some(true) {
                        return Err(stream_not_offered());
                    }
                }
                (_, "stream") if generates => {
                    body.stream = typed::<Option<bool>>(key, text, "a boolean")?.unwrap_or(false);
                }
                (_, "max_tokens") if generates => {
                    max_tokens = typed::<Option<u32>>(key, text, "a non-negative integer")?;
                }
                (Endpoint::ChatCompletions, "max_completion_tokens") => {
                    max_completion_tokens =
                        typed::<Option<u32>>(key, text, "a non-negative integer")?;
                }
                (_, "n") if generates => body.choices = choices(key, text)?,
                // The legacy completions' `best_of` answers are all generated, and paid for.
                (Endpoint::Completions, "best_of") => best_of = Some(choices(key, text)?),
                (_, "stream_options") if generates => {
                    let options = typed::<Option<StreamOptions>>(key, text, "an object")?;
                    body.client_wants_stream_usage =
                        options.and_then(|o| o.include_usage).unwrap_or(false);
                }
                (Endpoint::Embeddings | Endpoint::Moderations, "input") => seen_required = true,
                _ => {}
            }
            body.fields.push(Field {
                key: key.clone().into_owned(),
                value: start..start + text.len(),
            });
        }
        if !seen_model {
            return Err(GatewayError::invalid_field(
                "model",
                "you must provide a `model` parameter.",
            ));
        }
        if !seen_required {
            let field = endpoint.required();
            return Err(GatewayError::invalid_field(
                field,
                format!("you must provide a `{field}` parameter."),
            ));
        }
        body.max_output_tokens = max_completion_tokens.or(max_tokens);
        if let Some(best_of) = best_of {
            body.choices = body.choices.max(best_of);
        }
        drop(top);
        body.raw = raw;
        Ok(body)
    }

    /// Parses and checks a `multipart/form-data` body sent to `endpoint` (audio
    /// transcriptions) with the request header `content_type`: `model` and `file` are
    /// required, and `stream=true` is refused. Of several `model` parts the last counts, and
    /// it is the only one sent upstream ([`FormBody::with_model`]).
    pub fn parse_form(
        endpoint: Endpoint,
        content_type: Option<&str>,
        raw: Bytes,
    ) -> Result<InboundBody, GatewayError> {
        let (form, model) = FormBody::read_request(endpoint.required(), content_type, raw)?;
        Ok(InboundBody {
            raw: Bytes::new(),
            fields: Vec::new(),
            endpoint,
            model,
            stream: false,
            max_output_tokens: None,
            choices: 1,
            client_wants_stream_usage: false,
            user: None,
            chat: OnceLock::new(),
            embeddings: OnceLock::new(),
            native: None,
            form: Some(form),
        })
    }

    /// The parts of a `multipart/form-data` body.
    pub fn form(&self) -> Option<&FormBody> {
        self.form.as_ref()
    }

    /// The `Content-Type` of the body [`InboundBody::to_openai_body`] writes, where it is not
    /// JSON.
    pub fn upstream_content_type(&self) -> Option<String> {
        self.form.as_ref().map(FormBody::content_type)
    }

    /// The media type of the answer a provider gives this request: a transcription asked for
    /// as `text`, `srt` or `vtt` is plain text, everything else JSON.
    pub fn answer_content_type(&self) -> &'static str {
        let text_format = self.form.as_ref().is_some_and(FormBody::answers_in_text);
        if text_format {
            "text/plain; charset=utf-8"
        } else {
            "application/json"
        }
    }

    /// The bytes the client sent (for a body from another API, their OpenAI translation).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Keeps the client's own bytes beside this, their translation.
    pub fn with_native(mut self, native: NativeBody) -> InboundBody {
        self.native = Some(native);
        self
    }

    /// The client's bytes, when it wrote them in another API's format.
    pub fn native(&self) -> Option<&NativeBody> {
        self.native.as_ref()
    }

    /// The JSON of the top-level member `key`, as the client sent it.
    pub fn field(&self, key: &str) -> Option<&[u8]> {
        let field = self.fields.iter().find(|field| field.key == key)?;
        Some(&self.raw[field.value.clone()])
    }

    /// The body for an OpenAI-shaped upstream: the client's bytes with `model` replaced and,
    /// with `ask_usage`, for a stream whose client did not ask for usage,
    /// `stream_options.include_usage` switched on (the relay takes the extra usage chunk out
    /// again before it reaches the client).
    pub fn to_openai_body(&self, model: &str, ask_usage: bool) -> Bytes {
        if let Some(form) = &self.form {
            return form.with_model(model);
        }
        let force_usage = ask_usage && self.stream && !self.client_wants_stream_usage;
        write_fields(&self.raw, &self.fields, model, force_usage)
    }

    /// The fully typed chat request, parsed on first use.
    pub fn chat(&self) -> Result<&ChatRequest, GatewayError> {
        self.chat
            .get_or_init(|| parse_typed(&self.raw))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The fully typed embeddings request, parsed on first use.
    pub fn embeddings(&self) -> Result<&EmbeddingsRequest, GatewayError> {
        self.embeddings
            .get_or_init(|| parse_typed(&self.raw))
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// `fields` of `raw` written back as an object, `model` replaced; with `force_usage`,
/// `stream_options.include_usage` switched on.
fn write_fields(raw: &[u8], fields: &[Field], model: &str, force_usage: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(raw.len() + model.len() + 48);
    out.put_u8(b'{');
    let mut wrote_options = false;
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        write_json_str(&mut out, &field.key);
        out.put_u8(b':');
        let value = &raw[field.value.clone()];
        if field.key == "model" {
            write_json_str(&mut out, model);
        } else if field.key == "stream_options" && force_usage {
            write_stream_options(&mut out, value);
            wrote_options = true;
        } else {
            out.extend_from_slice(value);
        }
    }
    if force_usage && !wrote_options {
        if !fields.is_empty() {
            out.put_u8(b',');
        }
        out.extend_from_slice(br#""stream_options":{"include_usage":true}"#);
    }
    out.put_u8(b'}');
    out.freeze()
}

/// Where each top-level member's value sits in `raw`.
fn field_ranges(raw: &[u8], top: &TopLevel<'_>) -> Vec<Field> {
    let base = raw.as_ptr() as usize;
    top.0
        .iter()
        .map(|(key, value)| {
            let start = value.get().as_ptr() as usize - base;
            Field {
                key: key.clone().into_owned(),
                value: start..start + value.get().len(),
            }
        })
        .collect()
}

fn parse_typed<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, GatewayError> {
    // The path is tracked only to name what failed: a good body is read without it.
    if let Ok(parsed) = serde_json::from_slice(raw) {
        return Ok(parsed);
    }
    let mut de = serde_json::Deserializer::from_slice(raw);
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        GatewayError::invalid_field(
            path.clone(),
            format!("Invalid value for '{path}': {}", err.into_inner()),
        )
    })
}

#[derive(serde::Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// The refusal of `stream: true` where the gateway offers no stream.
pub(super) fn stream_not_offered() -> GatewayError {
    GatewayError::invalid_field(
        "stream",
        "Streaming is not offered on this endpoint (no partial images or transcript deltas); \
         leave `stream` unset or false.",
    )
}

/// The most images one request may ask for: OpenAI's own limit for `n`.
const MAX_IMAGES: u32 = 10;

/// An image request's `n`: each image is generated and paid for, and budgets reserve for
/// every one.
fn image_count(text: &str) -> Result<u32, GatewayError> {
    let expected = format!("an integer from 1 to {MAX_IMAGES}");
    match typed::<Option<u32>>("n", text, &expected)? {
        None => Ok(1),
        Some(n) if (1..=MAX_IMAGES).contains(&n) => Ok(n),
        Some(_) => Err(GatewayError::invalid_field(
            "n",
            format!("`n` must be {expected}."),
        )),
    }
}

/// `n` or `best_of`: how many answers are generated, each paid for.
fn choices(key: &str, text: &str) -> Result<u32, GatewayError> {
    match typed::<Option<u32>>(key, text, "a positive integer")? {
        Some(0) => Err(GatewayError::invalid_field(
            key,
            format!("`{key}` must be at least 1."),
        )),
        Some(n) if n > MAX_CHOICES => Err(GatewayError::invalid_field(
            key,
            format!("`{key}` must be at most {MAX_CHOICES}."),
        )),
        n => Ok(n.unwrap_or(1)),
    }
}

fn typed<'a, T: Deserialize<'a>>(
    key: &str,
    text: &'a str,
    expected: &str,
) -> Result<T, GatewayError> {
    serde_json::from_str(text).map_err(|_| type_error(key, expected))
}

/// The most choices one request may ask for (OpenAI's own limit): each is paid for, and the
/// budget reservation counts every one at its full output limit.
const MAX_CHOICES: u32 = 128;

/// The longest `model` or `user` the gateway accepts, in bytes. Both are stored with every
/// usage event and are part of the ledger's rollup keys, whose indexes hold a few kilobytes at
/// most; no provider's model name or sensible end-user id comes near this.
const MAX_STORED_FIELD_BYTES: usize = 256;

/// Refuses a string that the ledger could not store or index: over-long, or carrying control
/// characters (PostgreSQL refuses NUL in text outright, and the others only garble logs and
/// the dashboard). Refusing it here, with a 400 naming the field, keeps one request's text
/// from reaching the shared usage pipeline at all.
pub(super) fn storable(field: &str, value: &str) -> Result<(), GatewayError> {
    if value.len() > MAX_STORED_FIELD_BYTES {
        return Err(GatewayError::invalid_field(
            field,
            format!("`{field}` must be at most {MAX_STORED_FIELD_BYTES} bytes."),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(GatewayError::invalid_field(
            field,
            format!("`{field}` must not contain control characters."),
        ));
    }
    Ok(())
}

pub(super) fn type_error(key: &str, expected: &str) -> GatewayError {
    GatewayError::invalid_field(
        key,
        format!("Invalid type for '{key}': expected {expected}."),
    )
}

fn write_json_str(out: &mut BytesMut, s: &str) {
    // Writing a &str to a Vec-backed writer cannot fail.
    let _ = serde_json::to_writer((&mut *out).writer(), s);
}

/// Re-writes the client's `stream_options` object with `include_usage: true`, keeping its
/// other members.
fn write_stream_options(out: &mut BytesMut, value: &[u8]) {
    out.extend_from_slice(br#"{"include_usage":true"#);
    if let Ok(TopLevel(members)) = serde_json::from_slice::<TopLevel<'_>>(value) {
        for (key, member) in members {
            if key != "include_usage" {
                out.put_u8(b',');
                write_json_str(out, &key);
                out.put_u8(b':');
                out.extend_from_slice(member.get().as_bytes());
            }
        }
    }
    out.put_u8(b'}');
}

/// A JSON object's members in order, values borrowed from the input.
struct TopLevel<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TopLevelVisitor)
    }
}

struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(Key(key)) = map.next_key()? {
            let value: &'de RawValue = map.next_value()?;
            members.push((key, value));
        }
        Ok(TopLevel(members))
    }
}

/// An object key, borrowed unless it contains escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<InboundBody, GatewayError> {
        InboundBody::parse(Endpoint::ChatCompletions, Bytes::from(body.to_owned()))
    }

    #[test]
    fn a_native_body_names_only_the_target_model_whatever_its_keys_say() {
        // Duplicate and escaped `model` keys: every one is rewritten, so that whichever a
        // server reads (the first, the last) it names the target, never the client's choice.
        let raw = r#"{"model":"smart","input":"hi","m\u006fdel":"gpt-pro","model":"gpt-pro"}"#;
        let native = NativeBody::parse(Ingress::OpenAiResponses, Bytes::from(raw)).unwrap();
        assert_eq!(
            &native.with_model("gpt-4.1")[..],
            br#"{"model":"gpt-4.1","input":"hi","model":"gpt-4.1","model":"gpt-4.1"}"#
        );
        // Not a JSON object: nothing to forward.
        assert!(NativeBody::parse(Ingress::OpenAiResponses, Bytes::from_static(b"[]")).is_err());
    }

    #[test]
    fn reads_routing_fields_and_keeps_the_rest_verbatim() {
        let body = chat(r#"{"model":"smart","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"seed":7,"max_tokens":12}"#).unwrap();
        assert_eq!(body.model, "smart");
        assert!(!body.stream);
        assert_eq!(body.max_output_tokens, Some(12));
        let out = body.to_openai_body("gpt-4o", true);
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["model"], "gpt-4o");
        assert_eq!(value["seed"], 7);
        assert_eq!(
            value["tools"][0]["function"]["parameters"]["type"],
            "object"
        );
        assert!(value.get("stream_options").is_none());
    }

    #[test]
    fn model_and_user_the_ledger_cannot_store_are_refused_naming_the_field() {
        let long = "m".repeat(MAX_STORED_FIELD_BYTES + 1);
        for (field, value) in [
            ("model", r#""gpt-4o\u0000""#.to_owned()),
            ("model", format!("\"{long}\"")),
            ("model", r#""a\nb""#.to_owned()),
            ("user", r#""\u0000""#.to_owned()),
            ("user", r#""u\u001b[31m""#.to_owned()),
            ("user", format!("\"{long}\"")),
        ] {
            let body = if field == "model" {
                format!(r#"{{"model":{value},"messages":[{{"role":"user","content":"hi"}}]}}"#)
            } else {
                format!(
                    r#"{{"model":"m","user":{value},"messages":[{{"role":"user","content":"hi"}}]}}"#
                )
            };
            let err = chat(&body).err();
            assert!(
                matches!(&err, Some(GatewayError::InvalidField { param, .. }) if param == field),
                "{body}: {err:?}"
            );
        }
        // Names of every script, at the limit, are fine.
        let edge = "é".repeat(MAX_STORED_FIELD_BYTES / 2);
        let body = chat(&format!(
            r#"{{"model":"m","user":"{edge}","messages":[{{"role":"user","content":"hi"}}]}}"#
        ))
        .unwrap();
        assert_eq!(body.user.as_deref(), Some(edge.as_str()));
    }

    #[test]
    fn streams_ask_upstream_for_usage_and_keep_other_stream_options() {
        let body =
            chat(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#)
                .unwrap();
        assert!(body.stream && !body.client_wants_stream_usage);
        let value: serde_json::Value =
            serde_json::from_slice(&body.to_openai_body("x", true)).unwrap();
        assert_eq!(value["stream_options"]["include_usage"], true);

        let body = chat(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_obfuscation":false}}"#).unwrap();
        let value: serde_json::Value =
            serde_json::from_slice(&body.to_openai_body("x", true)).unwrap();
        assert_eq!(value["stream_options"]["include_usage"], true);
        assert_eq!(value["stream_options"]["include_obfuscation"], false);

        let body = chat(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#).unwrap();
        assert!(body.client_wants_stream_usage);
        assert_eq!(&body.to_openai_body("m", true)[..], body.raw().as_ref());
    }

    #[test]
    fn escaped_keys_and_unicode_model_names_survive() {
        let body =
            chat(r#"{"mod\u0065l":"m","messages":[{"role":"user","content":"\u00e9"}]}"#).unwrap();
        assert_eq!(body.model, "m");
        let value: serde_json::Value =
            serde_json::from_slice(&body.to_openai_body("modèle \"x\"", true)).unwrap();
        assert_eq!(value["model"], "modèle \"x\"");
        assert_eq!(value["messages"][0]["content"], "é");
    }

    #[test]
    fn bad_bodies_name_the_problem() {
        let cases = [
            ("{not json", "invalid_json", None),
            ("[1,2]", "invalid_json", None),
            (
                r#"{"messages":[{"role":"user","content":"x"}]}"#,
                "invalid_value",
                Some("model"),
            ),
            (
                r#"{"model":3,"messages":[]}"#,
                "invalid_value",
                Some("model"),
            ),
            (r#"{"model":"m"}"#, "invalid_value", Some("messages")),
            (
                r#"{"model":"m","messages":[]}"#,
                "invalid_value",
                Some("messages"),
            ),
            (
                r#"{"model":"m","messages":"hi"}"#,
                "invalid_value",
                Some("messages"),
            ),
            (
                r#"{"model":"m","messages":[{}],"stream":"yes"}"#,
                "invalid_value",
                Some("stream"),
            ),
            (
                r#"{"model":"m","messages":[{}],"max_tokens":-1}"#,
                "invalid_value",
                Some("max_tokens"),
            ),
            (
                r#"{"model":"m","messages":[{}],"n":0}"#,
                "invalid_value",
                Some("n"),
            ),
        ];
        for (input, code, param) in cases {
            let err = chat(input).unwrap_err();
            let body = err.body();
            assert_eq!(body.error.code, Some(code), "{input}: {err}");
            assert_eq!(body.error.param, param, "{input}: {err}");
            assert_eq!(err.status().as_u16(), 400);
        }
    }

    #[test]
    fn every_answer_a_legacy_completion_generates_is_counted() {
        let body = InboundBody::parse(
            Endpoint::Completions,
            Bytes::from_static(br#"{"model":"m","prompt":"x","n":2,"best_of":5,"max_tokens":9}"#),
        )
        .unwrap();
        assert_eq!((body.choices, body.max_output_tokens), (5, Some(9)));
        let err = InboundBody::parse(
            Endpoint::Completions,
            Bytes::from_static(br#"{"model":"m","prompt":"x","best_of":100000}"#),
        )
        .unwrap_err();
        assert!(matches!(err, GatewayError::InvalidField { param, .. } if param == "best_of"));
    }

    #[test]
    fn image_requests_read_their_count_and_refuse_streams() {
        let image = |body: &'static str| {
            InboundBody::parse(
                Endpoint::ImageGenerations,
                Bytes::from_static(body.as_bytes()),
            )
        };
        let body = image(r#"{"model":"m","prompt":"a fox","n":3,"size":"1024x1024"}"#).unwrap();
        assert_eq!((body.choices, body.stream), (3, false));
        let sent: serde_json::Value =
            serde_json::from_slice(&body.to_openai_body("gpt-image-1", true)).unwrap();
        assert_eq!(sent["model"], "gpt-image-1");
        assert_eq!(sent["size"], "1024x1024");
        assert_eq!(
            image(r#"{"model":"m","prompt":"x","n":null}"#)
                .unwrap()
                .choices,
            1
        );
        assert!(image(r#"{"model":"m","prompt":"x","stream":false}"#).is_ok());
        for (input, param) in [
            (r#"{"model":"m"}"#, "prompt"),
            (r#"{"model":"m","prompt":7}"#, "prompt"),
            (r#"{"model":"m","prompt":"x","n":0}"#, "n"),
            (r#"{"model":"m","prompt":"x","n":11}"#, "n"),
            (r#"{"model":"m","prompt":"x","n":2.5}"#, "n"),
            (r#"{"model":"m","prompt":"x","stream":true}"#, "stream"),
        ] {
            let err = image(input).unwrap_err();
            assert!(
                matches!(&err, GatewayError::InvalidField { param: p, .. } if p == param),
                "{input}: {err:?}"
            );
        }
    }

    #[test]
    fn typed_parse_reports_the_path_of_a_bad_nested_field() {
        let body = chat(r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#).unwrap();
        let err = body.chat().unwrap_err();
        assert!(err.to_string().contains("messages[0].role"), "{err}");
    }
}
