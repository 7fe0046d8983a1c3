//! Property tests of the client's request body: whatever bytes arrive, `InboundBody::parse`
//! answers a client error (4xx) or a body whose OpenAI form is the same JSON members, and no
//! provider adapter turns an accepted body into a panic or a server error.
//!
//! Each property runs a bounded number of cases; `PROPTEST_CASES=10000` runs more.
//! Inputs that once failed are replayed first from `tests/proptest-regressions/`.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use proptest::prelude::*;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use tollgate_common::Secret;
use tollgate_common::config::{
    AwsCredentials, DEFAULT_TOKEN_URL, ProviderConfig, ProviderKind, VertexConfig,
};
use tollgate_gateway::GatewayError;
use tollgate_gateway::ingress::Ingress;
use tollgate_gateway::openai::form::FormBody;
use tollgate_gateway::openai::{Endpoint, InboundBody};
use tollgate_gateway::providers::{ProviderAdapter, adapter_for};

#[path = "../../common/tests/proptest_config/mod.rs"]
mod proptest_config;

use proptest_config::{config, scaled_config};

// ---------------------------------------------------------------------------------------------
// JSON text, including what `serde_json::Value` cannot hold (huge numbers, raw escapes)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    /// A number literal exactly as written.
    Number(String),
    Str(String),
    /// A string literal exactly as written, escapes included.
    RawStr(&'static str),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn object(members: Vec<(&str, Json)>) -> Json {
        Json::Object(
            members
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        )
    }

    fn str(s: &str) -> Json {
        Json::Str(s.to_owned())
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::Str(s) => out.push_str(&serde_json::to_string(s).unwrap()),
            Json::RawStr(s) => out.push_str(s),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(key).unwrap());
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }
}

/// Number literals at and past every limit the gateway's types have.
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "2",
    "128",
    "129",
    "0.5",
    "1.0",
    "-0.0",
    "1e2",
    "1E-2",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "-2147483649",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "123456789012345678901234567890123456789",
    "1e308",
    "1e309",
    "-1e400",
    "1e-400",
    "3.4028236e38",
];

/// String literals with escapes a string strategy would not write.
const RAW_STRINGS: &[&str] = &[
    r#""\u0000""#,
    r#""\ud800""#,
    r#""\udc00\ud800""#,
    r#""\ud83d\ude00""#,
    r#""a\"b\\c\/d\b\f\n\r\t""#,
    r#""\u202e\u200b\ufeff""#,
];

/// Strings that look like something else.
const TRICKY_STRINGS: &[&str] = &[
    "",
    " ",
    "NaN",
    "-NaN",
    "Infinity",
    "-inf",
    "null",
    "true",
    "1e999",
    "0x10",
    "[DONE]",
    "data: x\n\n",
    "\u{0}",
    "\u{7f}",
    "\u{202e}gpt-4o",
    "gpt-4o\r\nx-injected: 1",
    "../../etc/passwd",
    "gpt-4o/../../v1",
    "%00",
    "é",
    "日本語のモデル",
    "🦀",
    "a\u{0}b",
    "auto",
    "none",
    "required",
    "user",
    "assistant",
    "system",
    "tool",
    "function",
    "developer",
    "text",
    "image_url",
    "input_audio",
    "file",
    "json_schema",
    "json_object",
    "base64",
    "data:image/png;base64,iVBORw0KGgo=",
    "data:application/pdf;base64,JVBERi0=",
    "data:;base64,",
    "data:image/png,notbase64",
    "https://example.com/cat.png",
    "HTTP://EXAMPLE.COM/A.GIF",
    "file-abc123",
    "call_0_ts_AAAA",
    "call_1_ts_-_-_",
    "tollgate_json_output",
    "{}",
    "{\"a\":1}",
    "{\"a\":",
    "[1,2]",
];

fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(TRICKY_STRINGS).prop_map(str::to_owned),
        2 => proptest::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
        1 => "[a-z0-9_./-]{0,24}",
        1 => (1usize..400).prop_map(|n| "m".repeat(n)),
    ]
}

fn leaf() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        proptest::sample::select(NUMBERS).prop_map(|n| Json::Number(n.to_owned())),
        any::<i64>().prop_map(|n| Json::Number(n.to_string())),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| Json::Number(format!("{f:e}"))),
        any_string().prop_map(Json::Str),
        proptest::sample::select(RAW_STRINGS).prop_map(Json::RawStr),
    ]
}

fn any_json() -> impl Strategy<Value = Json> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            proptest::collection::vec((any_key(), inner), 0..6).prop_map(Json::Object),
        ]
    })
}

/// Every top-level field the gateway or an adapter reads, and then some.
const KNOWN_FIELDS: &[&str] = &[
    "model",
    "messages",
    "stream",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "stream_options",
    "user",
    "input",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "encoding_format",
    "dimensions",
    "include_usage",
    "logprobs",
    "metadata",
];

/// Keys of message, part, tool and format objects.
const NESTED_FIELDS: &[&str] = &[
    "role",
    "content",
    "name",
    "tool_calls",
    "tool_call_id",
    "type",
    "text",
    "image_url",
    "url",
    "detail",
    "input_audio",
    "data",
    "format",
    "file",
    "file_data",
    "file_id",
    "filename",
    "function",
    "arguments",
    "id",
    "description",
    "parameters",
    "strict",
    "json_schema",
    "schema",
    "refusal",
];

fn any_key() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => proptest::sample::select(KNOWN_FIELDS).prop_map(str::to_owned),
        2 => proptest::sample::select(NESTED_FIELDS).prop_map(str::to_owned),
        1 => any_string(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Plausible requests: the right shape, with wrong and extreme values mixed in
// ---------------------------------------------------------------------------------------------

fn text_or_any() -> impl Strategy<Value = Json> {
    prop_oneof![
        3 => any_string().prop_map(Json::Str),
        1 => any_json(),
    ]
}

fn content_part() -> impl Strategy<Value = Json> {
    prop_oneof![
        text_or_any().prop_map(|t| Json::object(vec![("type", Json::str("text")), ("text", t)])),
        (text_or_any(), text_or_any()).prop_map(|(url, detail)| Json::object(vec![
            ("type", Json::str("image_url")),
            (
                "image_url",
                Json::object(vec![("url", url), ("detail", detail)])
            ),
        ])),
        (text_or_any(), text_or_any()).prop_map(|(data, format)| Json::object(vec![
            ("type", Json::str("input_audio")),
            (
                "input_audio",
                Json::object(vec![("data", data), ("format", format)])
            ),
        ])),
        (text_or_any(), text_or_any(), text_or_any()).prop_map(|(data, id, name)| Json::object(
            vec![
                ("type", Json::str("file")),
                (
                    "file",
                    Json::object(vec![
                        ("file_data", data),
                        ("file_id", id),
                        ("filename", name)
                    ])
                ),
            ]
        )),
        text_or_any()
            .prop_map(|t| Json::object(vec![("type", Json::str("refusal")), ("refusal", t)])),
        any_json(),
    ]
}

fn content() -> impl Strategy<Value = Json> {
    prop_oneof![
        3 => any_string().prop_map(Json::Str),
        2 => proptest::collection::vec(content_part(), 0..4).prop_map(Json::Array),
        1 => Just(Json::Null),
        1 => any_json(),
    ]
}

fn tool_call() -> impl Strategy<Value = Json> {
    (text_or_any(), text_or_any(), text_or_any()).prop_map(|(id, name, arguments)| {
        Json::object(vec![
            ("id", id),
            ("type", Json::str("function")),
            (
                "function",
                Json::object(vec![("name", name), ("arguments", arguments)]),
            ),
        ])
    })
}

fn message() -> impl Strategy<Value = Json> {
    let role = prop_oneof![
        4 => proptest::sample::select(&["system", "developer", "user", "assistant", "tool", "function"][..])
            .prop_map(Json::str),
        1 => any_json(),
    ];
    (
        role,
        content(),
        proptest::option::of(proptest::collection::vec(tool_call(), 0..3)),
        proptest::option::of(text_or_any()),
        proptest::option::of(text_or_any()),
    )
        .prop_map(|(role, content, calls, call_id, name)| {
            let mut members = vec![("role", role), ("content", content)];
            if let Some(calls) = calls {
                members.push(("tool_calls", Json::Array(calls)));
            }
            if let Some(id) = call_id {
                members.push(("tool_call_id", id));
            }
            if let Some(name) = name {
                members.push(("name", name));
            }
            Json::object(members)
        })
}

fn tool() -> impl Strategy<Value = Json> {
    (
        prop_oneof![4 => Just(Json::str("function")), 1 => text_or_any()],
        text_or_any(),
        proptest::option::of(any_json()),
    )
        .prop_map(|(kind, name, parameters)| {
            let mut function = vec![("name", name)];
            if let Some(parameters) = parameters {
                function.push(("parameters", parameters));
            }
            Json::object(vec![("type", kind), ("function", Json::object(function))])
        })
}

fn tool_choice() -> impl Strategy<Value = Json> {
    prop_oneof![
        text_or_any(),
        text_or_any().prop_map(|name| Json::object(vec![
            ("type", Json::str("function")),
            ("function", Json::object(vec![("name", name)])),
        ])),
    ]
}

fn response_format() -> impl Strategy<Value = Json> {
    prop_oneof![
        proptest::sample::select(&["text", "json_object", "json_schema", "xml"][..])
            .prop_map(|t| Json::object(vec![("type", Json::str(t))])),
        (text_or_any(), proptest::option::of(any_json())).prop_map(|(name, schema)| {
            let mut format = vec![("name", name)];
            if let Some(schema) = schema {
                format.push(("schema", schema));
            }
            Json::object(vec![
                ("type", Json::str("json_schema")),
                ("json_schema", Json::object(format)),
            ])
        }),
        any_json(),
    ]
}

fn number_or_any() -> impl Strategy<Value = Json> {
    prop_oneof![
        3 => proptest::sample::select(NUMBERS).prop_map(|n| Json::Number(n.to_owned())),
        1 => any_json(),
    ]
}

/// An optional member of a chat request, named by a field adapters read.
fn chat_member() -> impl Strategy<Value = (String, Json)> {
    prop_oneof![
        number_or_any().prop_map(|v| ("max_tokens".to_owned(), v)),
        number_or_any().prop_map(|v| ("max_completion_tokens".to_owned(), v)),
        number_or_any().prop_map(|v| ("n".to_owned(), v)),
        number_or_any().prop_map(|v| ("temperature".to_owned(), v)),
        number_or_any().prop_map(|v| ("top_p".to_owned(), v)),
        number_or_any().prop_map(|v| ("seed".to_owned(), v)),
        prop_oneof![any::<bool>().prop_map(Json::Bool), any_json()]
            .prop_map(|v| ("stream".to_owned(), v)),
        prop_oneof![
            any::<bool>().prop_map(|b| Json::object(vec![("include_usage", Json::Bool(b))])),
            any_json(),
        ]
        .prop_map(|v| ("stream_options".to_owned(), v)),
        text_or_any().prop_map(|v| ("user".to_owned(), v)),
        prop_oneof![
            text_or_any(),
            proptest::collection::vec(text_or_any(), 0..5).prop_map(Json::Array)
        ]
        .prop_map(|v| ("stop".to_owned(), v)),
        proptest::collection::vec(tool(), 0..3)
            .prop_map(|tools| ("tools".to_owned(), Json::Array(tools))),
        tool_choice().prop_map(|v| ("tool_choice".to_owned(), v)),
        any_json().prop_map(|v| ("parallel_tool_calls".to_owned(), v)),
        response_format().prop_map(|v| ("response_format".to_owned(), v)),
        (any_key(), any_json()),
    ]
}

/// A chat request with a valid `model` and non-empty `messages` (so that it is usually
/// accepted and reaches the adapters) and any other members.
fn plausible_chat() -> impl Strategy<Value = Json> {
    (
        "[a-z0-9./-]{1,40}",
        proptest::collection::vec(message(), 1..5),
        proptest::collection::vec(chat_member(), 0..8),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(model, messages, extra, at)| {
            let mut members = extra;
            members.push(("model".to_owned(), Json::Str(model)));
            let messages = ("messages".to_owned(), Json::Array(messages));
            let at = at.index(members.len() + 1);
            members.insert(at, messages);
            Json::Object(members)
        })
}

/// Tool call arguments: JSON objects and text that only looks like one.
const ARGUMENTS: &[&str] = &[
    "{}",
    "",
    "  ",
    "{\"city\":\"Paris\",\"days\":[1,2]}",
    "{\"nested\":{\"a\":{\"b\":null}}}",
    "[1,2]",
    "\"text\"",
    "null",
    "{\"a\":",
    "not json",
    "{\"\\u0000\":\"\\ud83d\\ude00\"}",
];

fn typed_text() -> impl Strategy<Value = Json> {
    any_string().prop_map(Json::Str)
}

fn typed_part() -> impl Strategy<Value = Json> {
    prop_oneof![
        3 => typed_text().prop_map(|t| Json::object(vec![("type", Json::str("text")), ("text", t)])),
        2 => (typed_text(), proptest::option::of(typed_text())).prop_map(|(url, detail)| {
            let mut image = vec![("url", url)];
            if let Some(detail) = detail {
                image.push(("detail", detail));
            }
            Json::object(vec![("type", Json::str("image_url")), ("image_url", Json::object(image))])
        }),
        1 => (typed_text(), typed_text()).prop_map(|(data, format)| Json::object(vec![
            ("type", Json::str("input_audio")),
            ("input_audio", Json::object(vec![("data", data), ("format", format)])),
        ])),
        1 => (
            proptest::option::of(typed_text()),
            proptest::option::of(typed_text()),
            proptest::option::of(typed_text()),
        )
            .prop_map(|(data, id, name)| {
                let mut file = Vec::new();
                if let Some(data) = data {
                    file.push(("file_data", data));
                }
                if let Some(id) = id {
                    file.push(("file_id", id));
                }
                if let Some(name) = name {
                    file.push(("filename", name));
                }
                Json::object(vec![("type", Json::str("file")), ("file", Json::object(file))])
            }),
        1 => typed_text().prop_map(|t| Json::object(vec![("type", Json::str("refusal")), ("refusal", t)])),
    ]
}

fn typed_content() -> impl Strategy<Value = Json> {
    prop_oneof![
        4 => typed_text(),
        2 => proptest::collection::vec(typed_part(), 0..4).prop_map(Json::Array),
        1 => Just(Json::Null),
    ]
}

fn typed_tool_call() -> impl Strategy<Value = Json> {
    (
        typed_text(),
        typed_text(),
        proptest::sample::select(ARGUMENTS),
    )
        .prop_map(|(id, name, arguments)| {
            Json::object(vec![
                ("id", id),
                ("type", Json::str("function")),
                (
                    "function",
                    Json::object(vec![("name", name), ("arguments", Json::str(arguments))]),
                ),
            ])
        })
}

/// A message of the right types: any role, with the fields that role may carry.
fn typed_message() -> impl Strategy<Value = Json> {
    (
        proptest::sample::select(
            &[
                "user",
                "user",
                "user",
                "assistant",
                "assistant",
                "system",
                "developer",
                "tool",
                "function",
            ][..],
        ),
        typed_content(),
        proptest::option::of(proptest::collection::vec(typed_tool_call(), 0..3)),
        proptest::option::of(typed_text()),
        proptest::option::of(typed_text()),
    )
        .prop_map(|(role, content, calls, call_id, name)| {
            let mut members = vec![("role", Json::str(role)), ("content", content)];
            if let Some(calls) = calls.filter(|_| role == "assistant") {
                members.push(("tool_calls", Json::Array(calls)));
            }
            if let Some(id) = call_id.filter(|_| role == "tool") {
                members.push(("tool_call_id", id));
            }
            if let Some(name) = name {
                members.push(("name", name));
            }
            Json::object(members)
        })
}

fn typed_tool() -> impl Strategy<Value = Json> {
    (
        prop_oneof![8 => Just("function"), 1 => Just("code_interpreter")],
        typed_text(),
        proptest::option::of(typed_text()),
        proptest::option::of(any_json()),
    )
        .prop_map(|(kind, name, description, parameters)| {
            let mut function = vec![("name", name)];
            if let Some(description) = description {
                function.push(("description", description));
            }
            if let Some(parameters) = parameters {
                function.push(("parameters", parameters));
            }
            Json::object(vec![
                ("type", Json::str(kind)),
                ("function", Json::object(function)),
            ])
        })
}

/// An optional member of a chat request with a value of the type OpenAI documents, at any
/// point of that type's range.
fn typed_chat_member() -> impl Strategy<Value = (&'static str, Json)> {
    let small = || prop_oneof![0u32..5, Just(u32::MAX), any::<u32>()];
    prop_oneof![
        small().prop_map(|n| ("max_tokens", Json::Number(n.to_string()))),
        small().prop_map(|n| ("max_completion_tokens", Json::Number(n.to_string()))),
        prop_oneof![4 => Just(1u32), 1 => small()].prop_map(|n| ("n", Json::Number(n.to_string()))),
        prop_oneof![
            0.0f32..2.0,
            any::<f32>().prop_filter("finite", |f| f.is_finite())
        ]
        .prop_map(|t| ("temperature", Json::Number(format!("{t:e}")))),
        (0.0f32..=1.0).prop_map(|p| ("top_p", Json::Number(format!("{p:e}")))),
        any::<i64>().prop_map(|s| ("seed", Json::Number(s.to_string()))),
        any::<bool>().prop_map(|b| ("stream", Json::Bool(b))),
        any::<bool>().prop_map(|b| (
            "stream_options",
            Json::object(vec![("include_usage", Json::Bool(b))])
        )),
        typed_text().prop_map(|u| ("user", u)),
        prop_oneof![
            typed_text(),
            proptest::collection::vec(typed_text(), 0..5).prop_map(Json::Array)
        ]
        .prop_map(|stop| ("stop", stop)),
        proptest::collection::vec(typed_tool(), 0..3).prop_map(|t| ("tools", Json::Array(t))),
        prop_oneof![
            proptest::sample::select(&["auto", "none", "required", "sometimes"][..])
                .prop_map(Json::str),
            typed_text().prop_map(|name| Json::object(vec![
                ("type", Json::str("function")),
                ("function", Json::object(vec![("name", name)])),
            ])),
        ]
        .prop_map(|choice| ("tool_choice", choice)),
        any::<bool>().prop_map(|b| ("parallel_tool_calls", Json::Bool(b))),
        response_format().prop_map(|f| ("response_format", f)),
    ]
}

/// A chat request whose every field has its documented type, so that it is accepted and
/// reaches the translating adapters, with values anywhere in each type's range.
fn well_typed_chat() -> impl Strategy<Value = Json> {
    (
        "[a-z0-9./-]{1,40}",
        proptest::collection::vec(typed_message(), 1..6),
        proptest::collection::vec(typed_chat_member(), 0..8),
    )
        .prop_map(|(model, messages, extra)| {
            let mut members = vec![
                ("model".to_owned(), Json::Str(model)),
                ("messages".to_owned(), Json::Array(messages)),
            ];
            members.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
            Json::Object(members)
        })
}

fn embedding_input() -> impl Strategy<Value = Json> {
    prop_oneof![
        any_string().prop_map(Json::Str),
        proptest::collection::vec(any_string().prop_map(Json::Str), 0..4).prop_map(Json::Array),
        proptest::collection::vec(number_or_any(), 0..6).prop_map(Json::Array),
        proptest::collection::vec(
            proptest::collection::vec(number_or_any(), 0..4).prop_map(Json::Array),
            0..3
        )
        .prop_map(Json::Array),
        any_json(),
    ]
}

fn plausible_embeddings() -> impl Strategy<Value = Json> {
    (
        "[a-z0-9./-]{1,40}",
        embedding_input(),
        proptest::option::of(prop_oneof![
            proptest::sample::select(&["float", "base64", "int8"][..]).prop_map(Json::str),
            any_json(),
        ]),
        proptest::option::of(number_or_any()),
        proptest::collection::vec((any_key(), any_json()), 0..3),
    )
        .prop_map(|(model, input, format, dimensions, extra)| {
            let mut members = vec![
                ("model".to_owned(), Json::Str(model)),
                ("input".to_owned(), input),
            ];
            if let Some(format) = format {
                members.push(("encoding_format".to_owned(), format));
            }
            if let Some(dimensions) = dimensions {
                members.push(("dimensions".to_owned(), dimensions));
            }
            members.extend(extra);
            Json::Object(members)
        })
}

/// An object of known fields only, each with any value.
fn known_fields_object() -> impl Strategy<Value = Json> {
    proptest::collection::vec(
        (
            proptest::sample::select(KNOWN_FIELDS).prop_map(str::to_owned),
            prop_oneof![leaf(), any_json()],
        ),
        0..10,
    )
    .prop_map(Json::Object)
}

/// JSON-like bytes: the tokens JSON is made of, in any order, with the odd stray byte.
fn json_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    const TOKENS: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        " ",
        "\"",
        "\\",
        "\"model\"",
        "\"messages\"",
        "\"input\"",
        "\"stream\"",
        "\"max_tokens\"",
        "\"stream_options\"",
        "\"user\"",
        "\"gpt-4o\"",
        "null",
        "true",
        "false",
        "0",
        "-1",
        "1e999",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\u{0}",
        "\u{feff}",
    ];
    proptest::collection::vec(
        prop_oneof![
            8 => proptest::sample::select(TOKENS).prop_map(|t| t.as_bytes().to_vec()),
            1 => any::<u8>().prop_map(|b| vec![b]),
        ],
        0..40,
    )
    .prop_map(|tokens| tokens.concat())
}

// ---------------------------------------------------------------------------------------------
// What every outcome must satisfy
// ---------------------------------------------------------------------------------------------

/// A JSON object's members in order, values as written.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

fn members(json: &[u8]) -> Vec<(String, String)> {
    let Members(members) = serde_json::from_slice(json)
        .unwrap_or_else(|e| panic!("not a JSON object ({e}): {}", String::from_utf8_lossy(json)));
    members
        .into_iter()
        .map(|(k, v)| (k, v.get().to_owned()))
        .collect()
}

fn is_client_error(error: &GatewayError) -> bool {
    error.status().is_client_error()
}

/// One adapter of every kind, and OpenAI's again serving the Responses API (its clients'
/// bodies forwarded).
fn adapters() -> Vec<(ProviderKind, Box<dyn ProviderAdapter>)> {
    [
        (ProviderKind::Openai, "http://127.0.0.1:1/v1", None, false),
        (ProviderKind::Openai, "http://127.0.0.1:1/v1", None, true),
        (
            ProviderKind::Azure,
            "https://x.openai.azure.com",
            Some("2024-10-21"),
            false,
        ),
        (ProviderKind::Anthropic, "http://127.0.0.1:1", None, false),
        (ProviderKind::Gemini, "http://127.0.0.1:1", None, false),
        (ProviderKind::Bedrock, "http://127.0.0.1:1", None, false),
        (ProviderKind::Vertex, "http://127.0.0.1:1", None, false),
        (ProviderKind::Mistral, "http://127.0.0.1:1", None, false),
        (ProviderKind::Cohere, "http://127.0.0.1:1", None, false),
    ]
    .into_iter()
    .map(|(kind, api_base, api_version, responses_api)| {
        let signs = kind == ProviderKind::Bedrock;
        let config = ProviderConfig {
            kind,
            api_base: api_base.into(),
            api_key: (!signs).then(|| Secret::new("test-key")),
            api_version: api_version.map(str::to_owned),
            responses_api,
            headers: BTreeMap::new(),
            stream_usage: true,
            aws: signs.then(|| AwsCredentials {
                region: "us-east-1".into(),
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                session_token: None,
            }),
            // A static token: no token endpoint to reach.
            vertex: (kind == ProviderKind::Vertex).then(|| VertexConfig {
                project: "test-project".into(),
                location: "us-central1".into(),
                service_account: None,
                token_url: DEFAULT_TOKEN_URL.into(),
            }),
        };
        (kind, adapter_for(&config).unwrap())
    })
    .collect()
}

/// Target model names, some of which need escaping in JSON or in a URL.
const TARGET_MODELS: &[&str] = &[
    "gpt-4o",
    "models/gemini-2.5-flash",
    "claude \"quoted\" \\ model",
    "dep loy/ment?x=1#f",
    "日本語",
    "",
];

/// The properties every body must have, accepted or not.
fn check(endpoint: Endpoint, raw: &[u8]) -> Result<(), TestCaseError> {
    let body = match InboundBody::parse(endpoint, Bytes::copy_from_slice(raw)) {
        Ok(body) => body,
        Err(error) => {
            prop_assert!(
                is_client_error(&error),
                "{error:?} is a {} for {:?}",
                error.status(),
                String::from_utf8_lossy(raw)
            );
            return Ok(());
        }
    };
    check_openai_body(&body, raw)?;
    check_adapters(endpoint, &body)
}

/// The upstream body is the client's members in order, with only `model` and (for a stream
/// whose client did not ask for usage) `stream_options` changed.
fn check_openai_body(body: &InboundBody, raw: &[u8]) -> Result<(), TestCaseError> {
    let sent = members(raw);
    for model in TARGET_MODELS {
        let out = body.to_openai_body(model, true);
        let got = members(&out);
        let force_usage = body.stream && !body.client_wants_stream_usage;
        let model_json = serde_json::to_string(model).unwrap();
        let mut expected = Vec::with_capacity(sent.len() + 1);
        for (key, value) in &sent {
            let value = match key.as_str() {
                "model" => model_json.clone(),
                "stream_options" if force_usage => forced_stream_options(value),
                _ => value.clone(),
            };
            expected.push((key.clone(), value));
        }
        if force_usage && !sent.iter().any(|(key, _)| key == "stream_options") {
            expected.push((
                "stream_options".to_owned(),
                r#"{"include_usage":true}"#.to_owned(),
            ));
        }
        prop_assert_eq!(got, expected);
    }
    Ok(())
}

/// The client's `stream_options` with `include_usage` switched on and its other members kept.
fn forced_stream_options(value: &str) -> String {
    let mut out = String::from(r#"{"include_usage":true"#);
    if let Ok(Members(members)) = serde_json::from_str(value) {
        for (key, member) in members {
            if key != "include_usage" {
                out.push(',');
                out.push_str(&serde_json::to_string(&key).unwrap());
                out.push(':');
                out.push_str(member.get());
            }
        }
    }
    out.push('}');
    out
}

/// Every adapter either builds its upstream request or refuses the body as the client's fault.
fn check_adapters(endpoint: Endpoint, body: &InboundBody) -> Result<(), TestCaseError> {
    for (kind, adapter) in adapters() {
        for model in TARGET_MODELS {
            let request = match endpoint {
                Endpoint::ChatCompletions => adapter.chat_request(model, body),
                Endpoint::Embeddings => adapter.embeddings_request(model, body),
                Endpoint::Completions
                | Endpoint::Moderations
                | Endpoint::ImageGenerations
                | Endpoint::AudioTranscriptions => {
                    adapter.passthrough_request(endpoint, model, body)
                }
            };
            match request {
                Ok(request) if endpoint == Endpoint::AudioTranscriptions => {
                    // The form sent on reads back with the target's model, once.
                    let content_type = request
                        .headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok());
                    match FormBody::read(content_type, request.body.clone()) {
                        Ok(form) => {
                            prop_assert_eq!(form.text("model").unwrap(), Some(*model));
                            prop_assert_eq!(form.bytes_of("model"), model.len() as u64);
                            let original = body.form().unwrap();
                            prop_assert_eq!(form.bytes_of("file"), original.bytes_of("file"));
                        }
                        Err(e) => prop_assert!(false, "{kind:?} sent a form it cannot read: {e}"),
                    }
                }
                Ok(request) => {
                    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&request.body) {
                        prop_assert!(false, "{kind:?} sent a body that is not JSON ({e})");
                    }
                }
                Err(error) => prop_assert!(
                    is_client_error(&error),
                    "{kind:?} answered {error:?} ({}) for a body the gateway accepted",
                    error.status()
                ),
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_are_refused_as_the_clients_fault(
        raw in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        check(Endpoint::ChatCompletions, &raw)?;
        check(Endpoint::Embeddings, &raw)?;
    }

    #[test]
    fn json_like_bytes_are_read_or_refused_as_the_clients_fault(raw in json_like_bytes()) {
        check(Endpoint::ChatCompletions, &raw)?;
        check(Endpoint::Embeddings, &raw)?;
    }

    #[test]
    fn any_json_value_is_read_or_refused_as_the_clients_fault(value in any_json()) {
        let text = value.text();
        check(Endpoint::ChatCompletions, text.as_bytes())?;
        check(Endpoint::Embeddings, text.as_bytes())?;
        check(Endpoint::Completions, text.as_bytes())?;
        check(Endpoint::Moderations, text.as_bytes())?;
        check(Endpoint::ImageGenerations, text.as_bytes())?;
    }

    #[test]
    fn known_fields_with_any_values_are_read_or_refused(value in known_fields_object()) {
        let text = value.text();
        check(Endpoint::ChatCompletions, text.as_bytes())?;
        check(Endpoint::Embeddings, text.as_bytes())?;
        check(Endpoint::Completions, text.as_bytes())?;
    }

    #[test]
    fn plausible_chat_requests_reach_every_adapter_without_a_server_error(
        value in plausible_chat(),
    ) {
        check(Endpoint::ChatCompletions, value.text().as_bytes())?;
    }

    #[test]
    fn well_typed_chat_requests_are_translated_or_refused_as_the_clients_fault(
        value in well_typed_chat(),
    ) {
        check(Endpoint::ChatCompletions, value.text().as_bytes())?;
    }

    #[test]
    fn plausible_embeddings_requests_reach_every_adapter_without_a_server_error(
        value in plausible_embeddings(),
    ) {
        check(Endpoint::Embeddings, value.text().as_bytes())?;
    }
}

proptest! {
    // Each case parses bodies of up to a quarter of a megabyte: a longer run gives this one an
    // eighth of its cases.
    #![proptest_config(scaled_config(32, 8))]

    #[test]
    fn deep_nesting_is_read_or_refused_without_overflowing_the_stack(
        depth in 1usize..50_000,
        open in proptest::sample::select(&["[", "{\"a\":"][..]),
        field in proptest::sample::select(&["messages", "tools", "input", "metadata", "user"][..]),
        closed in any::<bool>(),
    ) {
        let close = if open == "[" { "]" } else { "}" };
        let nested = format!(
            "{}1{}",
            open.repeat(depth),
            if closed { close.repeat(depth) } else { String::new() }
        );
        let text = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"input":"x","{field}":{nested}}}"#
        );
        check(Endpoint::ChatCompletions, text.as_bytes())?;
        check(Endpoint::Embeddings, text.as_bytes())?;
        let in_content = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":{nested}}}]}}"#
        );
        check(Endpoint::ChatCompletions, in_content.as_bytes())?;
    }
}

// ---------------------------------------------------------------------------------------------
// multipart/form-data bodies (audio transcriptions)
// ---------------------------------------------------------------------------------------------

/// A form body is read (and then sent on by every adapter that serves it, with the target's
/// model in one `model` part) or refused as the client's fault.
fn check_form(content_type: Option<&str>, raw: &[u8]) -> Result<(), TestCaseError> {
    let parsed = InboundBody::parse_form(
        Endpoint::AudioTranscriptions,
        content_type,
        Bytes::copy_from_slice(raw),
    );
    match parsed {
        Ok(body) => check_adapters(Endpoint::AudioTranscriptions, &body),
        Err(error) => {
            prop_assert!(
                is_client_error(&error),
                "{error:?} is a {} for {:?}",
                error.status(),
                String::from_utf8_lossy(raw)
            );
            Ok(())
        }
    }
}

const FORM_BOUNDARY: &str = "b0undary";

/// Names a transcription form uses, and some it does not.
fn part_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("model".to_owned()),
        Just("file".to_owned()),
        Just("stream".to_owned()),
        Just("prompt".to_owned()),
        Just("response_format".to_owned()),
        Just("include[]".to_owned()),
        "[a-z\\[\\]\"; =]{0,12}",
        "n{200,300}",
    ]
}

/// Values: model names, booleans, and any bytes (the boundary and CRLFs among them).
fn part_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"openai/whisper-1".to_vec()),
        Just(b"true".to_vec()),
        Just(b"false".to_vec()),
        Just(Vec::new()),
        Just(format!("\r\n--{FORM_BOUNDARY}").into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

/// A form of `parts`, written as a client would; `cut` bytes are then taken off its end.
fn form_text(parts: &[(String, bool, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, file, value) in parts {
        out.extend_from_slice(format!("--{FORM_BOUNDARY}\r\n").as_bytes());
        let filename = if *file { "; filename=\"a.wav\"" } else { "" };
        out.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n").as_bytes(),
        );
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{FORM_BOUNDARY}--\r\n").as_bytes());
    out
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_as_a_form_are_refused_as_the_clients_fault(
        raw in proptest::collection::vec(any::<u8>(), 0..256),
        content_type in prop_oneof![
            Just(None),
            Just(Some(format!("multipart/form-data; boundary={FORM_BOUNDARY}"))),
            "[ -~]{0,40}".prop_map(Some),
        ],
    ) {
        check_form(content_type.as_deref(), &raw)?;
    }

    #[test]
    fn forms_of_any_parts_are_read_or_refused_and_sent_with_one_model(
        parts in proptest::collection::vec((part_name(), any::<bool>(), part_value()), 0..8),
        cut in 0_usize..4,
        flip in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
    ) {
        let mut raw = form_text(&parts);
        raw.truncate(raw.len().saturating_sub(cut * 7));
        if let Some((at, byte)) = flip && !raw.is_empty() {
            let at = at.index(raw.len());
            raw[at] = byte;
        }
        let content_type = format!("multipart/form-data; boundary={FORM_BOUNDARY}");
        check_form(Some(&content_type), &raw)?;
        // Whole and unaltered, the last `model` part is the request's model.
        if cut == 0 && flip.is_none()
            && let Ok(body) = InboundBody::parse_form(
                Endpoint::AudioTranscriptions,
                Some(&content_type),
                Bytes::from(raw),
            )
        {
            let last = parts.iter().rev().find(|(name, _, _)| name == "model").unwrap();
            prop_assert_eq!(body.model.as_bytes(), &last.2[..]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The other ways in: Anthropic's Messages API and OpenAI's Responses API
// ---------------------------------------------------------------------------------------------

/// A way-in body is read into the pipeline's request, which every adapter then takes or refuses
/// as the client's fault, or the body itself is refused as the client's fault.
fn check_ingress(ingress: Ingress, raw: &[u8]) -> Result<(), TestCaseError> {
    match ingress.parse(None, Bytes::copy_from_slice(raw)) {
        Ok(body) => check_adapters(Endpoint::ChatCompletions, &body),
        Err(error) => {
            prop_assert!(
                is_client_error(&error),
                "{error:?} is a {} for {:?}",
                error.status(),
                String::from_utf8_lossy(raw)
            );
            Ok(())
        }
    }
}

fn one_of_or_any(words: &'static [&'static str]) -> impl Strategy<Value = Json> {
    prop_oneof![
        4 => proptest::sample::select(words).prop_map(Json::str),
        1 => any_json(),
    ]
}

fn anthropic_source() -> impl Strategy<Value = Json> {
    (
        one_of_or_any(&["base64", "url", "text", "file"]),
        text_or_any(),
        text_or_any(),
    )
        .prop_map(|(kind, data, media)| {
            Json::object(vec![
                ("type", kind),
                ("data", data.clone()),
                ("url", data),
                ("media_type", media),
            ])
        })
}

fn anthropic_block() -> impl Strategy<Value = Json> {
    prop_oneof![
        3 => text_or_any().prop_map(|t| Json::object(vec![("type", Json::str("text")), ("text", t)])),
        1 => anthropic_source().prop_map(|s| Json::object(vec![("type", Json::str("image")), ("source", s)])),
        1 => anthropic_source().prop_map(|s| Json::object(vec![("type", Json::str("document")), ("source", s)])),
        2 => (text_or_any(), text_or_any(), any_json()).prop_map(|(id, name, input)| Json::object(vec![
            ("type", Json::str("tool_use")), ("id", id), ("name", name), ("input", input),
        ])),
        2 => (text_or_any(), any_json()).prop_map(|(id, content)| Json::object(vec![
            ("type", Json::str("tool_result")), ("tool_use_id", id), ("content", content),
        ])),
        1 => one_of_or_any(&["thinking", "redacted_thinking", "server_tool_use", "search_result"])
            .prop_map(|kind| Json::object(vec![("type", kind)])),
    ]
}

fn anthropic_message() -> impl Strategy<Value = Json> {
    (
        one_of_or_any(&["user", "assistant"]),
        prop_oneof![
            2 => typed_text(),
            3 => proptest::collection::vec(anthropic_block(), 0..4).prop_map(Json::Array),
        ],
    )
        .prop_map(|(role, content)| Json::object(vec![("role", role), ("content", content)]))
}

/// A Messages body with a model and messages, and any of the members the translation reads.
fn plausible_anthropic() -> impl Strategy<Value = Json> {
    (
        "[a-z0-9./-]{1,40}",
        number_or_any(),
        proptest::collection::vec(anthropic_message(), 0..4),
        proptest::collection::vec(
            prop_oneof![
                text_or_any().prop_map(|v| ("system".to_owned(), v)),
                any_json().prop_map(|v| ("stop_sequences".to_owned(), v)),
                any_json().prop_map(|v| ("stream".to_owned(), v)),
                number_or_any().prop_map(|v| ("temperature".to_owned(), v)),
                any_json().prop_map(|v| ("metadata".to_owned(), v)),
                (
                    text_or_any(),
                    any_json(),
                    proptest::option::of(one_of_or_any(&["custom", "bash_20250124"]))
                )
                    .prop_map(|(name, schema, kind)| {
                        let mut tool = vec![("name", name), ("input_schema", schema)];
                        if let Some(kind) = kind {
                            tool.push(("type", kind));
                        }
                        ("tools".to_owned(), Json::Array(vec![Json::object(tool)]))
                    }),
                (
                    one_of_or_any(&["auto", "any", "tool", "none"]),
                    text_or_any()
                )
                    .prop_map(|(kind, name)| {
                        (
                            "tool_choice".to_owned(),
                            Json::object(vec![("type", kind), ("name", name)]),
                        )
                    }),
                (any_key(), any_json()),
            ],
            0..6,
        ),
    )
        .prop_map(|(model, max_tokens, messages, extra)| {
            let mut members = extra;
            members.push(("model".to_owned(), Json::Str(model)));
            members.push(("max_tokens".to_owned(), max_tokens));
            members.push(("messages".to_owned(), Json::Array(messages)));
            Json::Object(members)
        })
}

fn responses_item() -> impl Strategy<Value = Json> {
    let part = prop_oneof![
        3 => text_or_any().prop_map(|t| Json::object(vec![("type", Json::str("input_text")), ("text", t)])),
        1 => text_or_any().prop_map(|t| Json::object(vec![("type", Json::str("output_text")), ("text", t)])),
        1 => text_or_any().prop_map(|u| Json::object(vec![("type", Json::str("input_image")), ("image_url", u)])),
        1 => any_json(),
    ];
    prop_oneof![
        3 => (one_of_or_any(&["user", "assistant", "system", "developer"]),
              prop_oneof![typed_text(), proptest::collection::vec(part, 0..3).prop_map(Json::Array)])
            .prop_map(|(role, content)| Json::object(vec![("role", role), ("content", content)])),
        2 => (text_or_any(), text_or_any(), one_of_or_any(&ARGUMENTS_FOR_ITEMS)).prop_map(|(id, name, args)| {
            Json::object(vec![("type", Json::str("function_call")), ("call_id", id), ("name", name), ("arguments", args)])
        }),
        2 => (text_or_any(), any_json()).prop_map(|(id, output)| {
            Json::object(vec![("type", Json::str("function_call_output")), ("call_id", id), ("output", output)])
        }),
        1 => one_of_or_any(&["reasoning", "item_reference", "web_search_call"])
            .prop_map(|kind| Json::object(vec![("type", kind)])),
    ]
}

const ARGUMENTS_FOR_ITEMS: [&str; 3] = ["{}", "{\"a\":1}", "not json"];

/// A Responses body with a model and input, and any of the members the translation reads.
fn plausible_responses() -> impl Strategy<Value = Json> {
    (
        "[a-z0-9./-]{1,40}",
        prop_oneof![
            1 => typed_text(),
            3 => proptest::collection::vec(responses_item(), 0..5).prop_map(Json::Array),
        ],
        proptest::collection::vec(
            prop_oneof![
                text_or_any().prop_map(|v| ("instructions".to_owned(), v)),
                number_or_any().prop_map(|v| ("max_output_tokens".to_owned(), v)),
                any_json().prop_map(|v| ("stream".to_owned(), v)),
                (
                    one_of_or_any(&["function", "web_search"]),
                    text_or_any(),
                    any_json()
                )
                    .prop_map(|(kind, name, parameters)| (
                        "tools".to_owned(),
                        Json::Array(vec![Json::object(vec![
                            ("type", kind),
                            ("name", name),
                            ("parameters", parameters),
                        ])])
                    )),
                tool_choice().prop_map(|v| ("tool_choice".to_owned(), v)),
                (
                    one_of_or_any(&["text", "json_object", "json_schema"]),
                    any_json()
                )
                    .prop_map(|(kind, schema)| {
                        (
                            "text".to_owned(),
                            Json::object(vec![(
                                "format",
                                Json::object(vec![
                                    ("type", kind),
                                    ("name", Json::str("f")),
                                    ("schema", schema),
                                ]),
                            )]),
                        )
                    }),
                (any_key(), any_json()),
            ],
            0..6,
        ),
    )
        .prop_map(|(model, input, extra)| {
            let mut members = extra;
            members.push(("model".to_owned(), Json::Str(model)));
            members.push(("input".to_owned(), input));
            Json::Object(members)
        })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_json_to_another_way_in_is_read_or_refused_as_the_clients_fault(value in any_json()) {
        let text = value.text();
        check_ingress(Ingress::AnthropicMessages, text.as_bytes())?;
        check_ingress(Ingress::OpenAiResponses, text.as_bytes())?;
    }

    #[test]
    fn plausible_messages_bodies_reach_every_adapter_without_a_server_error(
        value in plausible_anthropic(),
    ) {
        check_ingress(Ingress::AnthropicMessages, value.text().as_bytes())?;
    }

    #[test]
    fn plausible_responses_bodies_reach_every_adapter_without_a_server_error(
        value in plausible_responses(),
    ) {
        check_ingress(Ingress::OpenAiResponses, value.text().as_bytes())?;
    }
}

/// The well-typed generator is only useful while its requests get past the typed parse and
/// through the translating adapters; this notices when a change in either makes them stop.
#[test]
fn well_typed_chat_requests_mostly_reach_the_translating_adapters() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = well_typed_chat();
    let adapters = adapters();
    let mut translated: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..200 {
        let text = strategy.new_tree(&mut runner).unwrap().current().text();
        let Ok(body) = InboundBody::parse(Endpoint::ChatCompletions, Bytes::from(text)) else {
            continue;
        };
        for (kind, adapter) in &adapters {
            if adapter.chat_request("m", &body).is_ok() {
                *translated.entry(format!("{kind:?}")).or_default() += 1;
            }
        }
    }
    for kind in [
        "Openai",
        "Azure",
        "Anthropic",
        "Gemini",
        "Bedrock",
        "Mistral",
    ] {
        let count = translated.get(kind).copied().unwrap_or(0);
        assert!(
            count >= 20,
            "{kind} translated {count} of 200: {translated:?}"
        );
    }
}
