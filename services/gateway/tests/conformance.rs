//! One set of checks every provider adapter must pass, stamped out for each row of one table.
//!
//! Each check drives an adapter through its public API with payloads from that provider's
//! `src/providers/<name>/fixtures/` folder, written from the provider's API reference. What
//! differs between providers (fixture names, where the provider's body keeps a value, what its
//! fixtures say) lives in the provider's [`Case`]; the checks themselves are shared, so that a new
//! provider is one more row and its fixtures, and every promise made for the others is made
//! for it too.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use bytes::BytesMut;
use serde_json::{Value, json};
use tollgate_common::TokenUsage;
use tollgate_common::config::{PROVIDERS, ProviderKind};

use common::{adapter, chat_body};

/// `(JSON pointer into the provider's request body, the JSON expected there)`.
type Expect = (&'static str, &'static str);

/// A tool call as OpenAI's `tool_calls` should show it.
struct Call {
    /// The provider's own id, or `None` where the provider has none and the adapter mints one.
    id: Option<&'static str>,
    name: &'static str,
    /// The arguments as JSON text; compared as JSON, not as text.
    arguments: &'static str,
}

const fn call(id: Option<&'static str>, name: &'static str, arguments: &'static str) -> Call {
    Call {
        id,
        name,
        arguments,
    }
}

/// An error body and what it must read as.
struct ErrorCase {
    fixture: &'static str,
    /// OpenAI's `error.type` the body must map to.
    kind: &'static str,
    /// Some words of the provider's message that must reach the client.
    message: &'static str,
}

const fn error(fixture: &'static str, kind: &'static str, message: &'static str) -> ErrorCase {
    ErrorCase {
        fixture,
        kind,
        message,
    }
}

const fn tokens(input_tokens: u64, output_tokens: u64, cached_input_tokens: u64) -> TokenUsage {
    TokenUsage {
        input_tokens,
        output_tokens,
        cached_input_tokens,
    }
}

/// One provider adapter and what its fixtures hold.
struct Case {
    kind: ProviderKind,
    /// The model the target names, as it must reach the provider.
    model: &'static str,
    /// The folder under `src/providers/` holding the fixtures.
    folder: &'static str,
    /// Where the body names the model; `None` where the model is part of the URL instead.
    model_at: Option<&'static str>,
    /// Where the provider's body keeps the system prompt and the user's text of
    /// [`text_request`].
    system_at: &'static str,
    user_text_at: &'static str,
    /// A whole text answer and its text.
    text_response: &'static str,
    text: &'static str,
    /// A whole answer reporting cached prompt tokens where the provider reports them, and the
    /// usage read from it.
    usage_response: &'static str,
    usage: TokenUsage,
    /// A streamed text answer, its text and its usage.
    stream: &'static str,
    stream_text: &'static str,
    stream_usage: TokenUsage,
    /// Where [`tools_request`]'s tool, tool call and tool result land in the provider's body.
    tools_at: &'static [Expect],
    /// An answer calling tools, and the calls it makes.
    tool_calls_response: &'static str,
    tool_calls: &'static [Call],
    /// A streamed answer calling tools, and the calls it makes.
    tool_calls_stream: &'static str,
    stream_tool_calls: &'static [Call],
    /// Where [`image_request`]'s image lands in the provider's body.
    image_at: &'static [Expect],
    /// Answers cut off at the output limit.
    length_responses: &'static [&'static str],
    /// Answers withheld or cut off by the provider's content filter.
    content_filter_responses: &'static [&'static str],
    /// A 400 body.
    invalid_request: ErrorCase,
    /// A 429 body.
    rate_limited: ErrorCase,
    /// The wait the 429 body asks for, in milliseconds, where the provider puts it in the body
    /// rather than in a `Retry-After` header.
    retry_hint_ms: Option<u64>,
}

const OPENAI: Case = Case {
    kind: ProviderKind::Openai,
    model: MODEL,
    folder: "openai",
    model_at: Some("/model"),
    system_at: "/messages/0/content",
    user_text_at: "/messages/1/content",
    text_response: "chat_completion.json",
    text: "Hello! How can I assist you today?",
    usage_response: "chat_completion_cached_prompt.json",
    usage: tokens(2006, 300, 1920),
    stream: "chat_stream.sse",
    stream_text: "Hello there!",
    stream_usage: tokens(9, 3, 0),
    tools_at: &[
        ("/tools/0/function/name", r#""get_weather""#),
        (
            "/messages/1/tool_calls/0",
            r#"{"id": "call_abc", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}"#,
        ),
        (
            "/messages/2",
            r#"{"role": "tool", "tool_call_id": "call_abc", "content": "18°C"}"#,
        ),
    ],
    tool_calls_response: "chat_completion_tool_calls.json",
    tool_calls: &[call(
        Some("call_abc123"),
        "get_current_weather",
        r#"{"location": "Boston, MA"}"#,
    )],
    tool_calls_stream: "chat_stream_tool_calls.sse",
    stream_tool_calls: &[
        call(
            Some("call_DdmO9pD3xa9XTPNJ32zg2hcA"),
            "get_weather",
            r#"{"location": "Paris, France"}"#,
        ),
        call(
            Some("call_7pQ2rXv1bLkN0sWd5YhGm3Fc"),
            "get_time",
            r#"{"timezone": "Europe/Paris"}"#,
        ),
    ],
    image_at: &[(
        "/messages/0/content/1/image_url/url",
        r#""data:image/png;base64,iVBORw0KGgo=""#,
    )],
    length_responses: &["chat_completion_length.json"],
    content_filter_responses: &["chat_completion_content_filter.json"],
    invalid_request: error(
        "error_400.json",
        "invalid_request_error",
        "max_tokens is too large",
    ),
    // OpenAI names the limit that was hit (`tokens`, `requests`) as the type; being OpenAI's own
    // body, it reaches the client unchanged.
    rate_limited: error("error_429.json", "tokens", "Rate limit reached"),
    retry_hint_ms: None,
};

/// Azure speaks OpenAI's dialect; only the URL and the key's header differ.
const AZURE: Case = Case {
    kind: ProviderKind::Azure,
    ..OPENAI
};

const ANTHROPIC: Case = Case {
    kind: ProviderKind::Anthropic,
    model: MODEL,
    folder: "anthropic",
    model_at: Some("/model"),
    system_at: "/system",
    user_text_at: "/messages/0/content",
    text_response: "messages_response.json",
    text: "Hello! How can I help you today?",
    usage_response: "messages_response.json",
    // Anthropic counts cached and cache-writing prompt tokens apart; OpenAI's count includes them.
    usage: tokens(21 + 100 + 1500, 12, 1500),
    stream: "messages_stream.sse",
    stream_text: "Hello, wörld! é\nHow can I help?",
    stream_usage: tokens(25 + 1024, 15, 1024),
    tools_at: &[
        ("/tools/0/name", r#""get_weather""#),
        (
            "/messages/1",
            r#"{"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_abc", "name": "get_weather", "input": {"location": "Paris"}}]}"#,
        ),
        (
            "/messages/2",
            r#"{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_abc", "content": "18°C"}]}"#,
        ),
    ],
    tool_calls_response: "messages_tool_use.json",
    tool_calls: &[call(
        Some("toolu_01A09q90qw90lq917835lq9"),
        "get_weather",
        r#"{"location": "San Francisco, CA", "unit": "celsius"}"#,
    )],
    tool_calls_stream: "messages_stream_tool_use.sse",
    stream_tool_calls: &[
        call(
            Some("toolu_01T1x1fJ34qAmk2tNTrN7Up6"),
            "get_weather",
            r#"{"location": "San Francisco, CA"}"#,
        ),
        call(
            Some("toolu_01Hq7zT1d6a7uWhkPZd8Ksx2"),
            "get_time",
            r#"{"timezone": "America/Los_Angeles"}"#,
        ),
    ],
    image_at: &[(
        "/messages/0/content/1",
        r#"{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}"#,
    )],
    length_responses: &["messages_max_tokens.json"],
    content_filter_responses: &["messages_refusal.json"],
    invalid_request: error(
        "error_invalid_request.json",
        "invalid_request_error",
        "unexpected `tool_use_id`",
    ),
    rate_limited: error(
        "error_rate_limit.json",
        "rate_limit_error",
        "exceed the rate limit",
    ),
    retry_hint_ms: None,
};

const GEMINI: Case = Case {
    kind: ProviderKind::Gemini,
    model: MODEL,
    folder: "gemini",
    model_at: None,
    system_at: "/systemInstruction/parts/0/text",
    user_text_at: "/contents/0/parts/0/text",
    text_response: "generate_response.json",
    text: "The capital of France is Paris.",
    usage_response: "generate_response.json",
    // Gemini counts thinking apart from the answer; OpenAI bills it as output.
    usage: tokens(1312, 7 + 42, 1024),
    stream: "stream.sse",
    stream_text: "Hello there, how can I help? é",
    stream_usage: tokens(9, 8 + 3, 0),
    // Gemini has no call ids: a result names the function it answers.
    tools_at: &[
        ("/tools/0/functionDeclarations/0/name", r#""get_weather""#),
        (
            "/contents/1",
            r#"{"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}]}"#,
        ),
        (
            "/contents/2/parts/0/functionResponse",
            r#"{"name": "get_weather", "response": {"content": "18°C"}}"#,
        ),
    ],
    tool_calls_response: "generate_function_call.json",
    tool_calls: &[
        call(
            None,
            "get_weather",
            r#"{"location": "Paris, France", "unit": "celsius"}"#,
        ),
        call(None, "get_time", r#"{"timezone": "Europe/Paris"}"#),
    ],
    tool_calls_stream: "stream_function_call.sse",
    stream_tool_calls: &[
        call(None, "get_weather", r#"{"location": "Paris, France"}"#),
        call(None, "get_time", r#"{"timezone": "Europe/Paris"}"#),
    ],
    image_at: &[(
        "/contents/0/parts/1/inlineData",
        r#"{"mimeType": "image/png", "data": "iVBORw0KGgo="}"#,
    )],
    length_responses: &["generate_max_tokens.json"],
    // A candidate stopped for safety, and a prompt blocked before any candidate.
    content_filter_responses: &["generate_finish_safety.json", "generate_blocked.json"],
    invalid_request: error(
        "error_400.json",
        "invalid_request_error",
        "max_output_tokens must be positive",
    ),
    rate_limited: error(
        "error_429.json",
        "rate_limit_error",
        "You exceeded your current quota",
    ),
    // `RetryInfo.retryDelay`.
    retry_hint_ms: Some(27_000),
};

const BEDROCK: Case = Case {
    kind: ProviderKind::Bedrock,
    model: MODEL,
    folder: "bedrock",
    model_at: None,
    system_at: "/system/0/text",
    user_text_at: "/messages/0/content/0/text",
    text_response: "converse_response.json",
    text: "The capital of France is Paris.",
    usage_response: "converse_response.json",
    // Like Anthropic's, Bedrock's input count leaves out the prompt cache's reads and writes.
    usage: tokens(12 + 1024 + 100, 8, 1024),
    // Event stream binaries, encoded from the `.json` descriptions beside them.
    stream: "converse_stream.bin",
    stream_text: "Bonjour ! Comment ça va ?",
    stream_usage: tokens(9, 7, 0),
    tools_at: &[
        ("/toolConfig/tools/0/toolSpec/name", r#""get_weather""#),
        (
            "/messages/1",
            r#"{"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "call_abc", "name": "get_weather", "input": {"location": "Paris"}}}]}"#,
        ),
        (
            "/messages/2",
            r#"{"role": "user", "content": [
                {"toolResult": {"toolUseId": "call_abc", "content": [{"text": "18°C"}]}}]}"#,
        ),
    ],
    tool_calls_response: "converse_tool_use.json",
    tool_calls: &[call(
        Some("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"),
        "get_weather",
        r#"{"location": "Paris, France", "unit": "celsius"}"#,
    )],
    tool_calls_stream: "converse_stream_tool_use.bin",
    stream_tool_calls: &[
        call(
            Some("tooluse_Qp7tKxTqRL2vZ9J3cNdMbw"),
            "get_weather",
            r#"{"location": "Paris, France"}"#,
        ),
        call(
            Some("tooluse_8f2cKs1LQm2xWbA0eJ5vYg"),
            "get_time",
            r#"{"timezone": "Europe/Paris"}"#,
        ),
    ],
    image_at: &[(
        "/messages/0/content/1",
        r#"{"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}"#,
    )],
    length_responses: &["converse_max_tokens.json"],
    content_filter_responses: &[
        "converse_guardrail_intervened.json",
        "converse_content_filtered.json",
    ],
    invalid_request: error(
        "error_validation.json",
        "invalid_request_error",
        "exceeds the model limit",
    ),
    rate_limited: error(
        "error_throttling.json",
        "rate_limit_error",
        "Too many requests",
    ),
    retry_hint_ms: None,
};

/// Vertex AI serves Gemini models in Gemini's format, with the model in the URL.
const VERTEX_GEMINI: Case = Case {
    kind: ProviderKind::Vertex,
    ..GEMINI
};

/// Vertex AI serves Claude models in Anthropic's format, but the URL names the model (the body
/// must not) and the body carries the API version.
const VERTEX_ANTHROPIC: Case = Case {
    kind: ProviderKind::Vertex,
    model: "claude-target-model@20250514",
    model_at: None,
    ..ANTHROPIC
};

/// Mistral's body is OpenAI's in outline; the differences are checked here: the foreign
/// `call_abc` becomes a 9-character id (the same one in the call and in its result), and the
/// tool result names its function.
const MISTRAL: Case = Case {
    kind: ProviderKind::Mistral,
    model: MODEL,
    folder: "mistral",
    model_at: Some("/model"),
    system_at: "/messages/0/content",
    user_text_at: "/messages/1/content",
    text_response: "chat_completion.json",
    text: "Bonjour ! Je suis là pour vous aider. Que puis-je faire pour vous ?",
    usage_response: "chat_completion.json",
    usage: tokens(16, 34, 0),
    stream: "chat_stream.sse",
    stream_text: "Hello! How can I help?",
    stream_usage: tokens(10, 7, 0),
    tools_at: &[
        ("/tools/0/function/name", r#""get_weather""#),
        (
            "/messages/1/tool_calls/0",
            r#"{"id": "eTihXaFDH", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}"#,
        ),
        (
            "/messages/2",
            r#"{"role": "tool", "tool_call_id": "eTihXaFDH", "name": "get_weather", "content": "18°C"}"#,
        ),
    ],
    tool_calls_response: "chat_completion_tool_calls.json",
    tool_calls: &[call(
        Some("D681PevKs"),
        "get_weather",
        r#"{"location": "Paris, France"}"#,
    )],
    tool_calls_stream: "chat_stream_tool_calls.sse",
    stream_tool_calls: &[
        call(
            Some("Q8bXk2mZp"),
            "get_weather",
            r#"{"location": "Paris, France"}"#,
        ),
        call(
            Some("r3TnW7vLc"),
            "get_time",
            r#"{"timezone": "Europe/Paris"}"#,
        ),
    ],
    image_at: &[(
        "/messages/0/content/1",
        r#"{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}"#,
    )],
    length_responses: &[
        "chat_completion_length.json",
        "chat_completion_model_length.json",
    ],
    // Mistral has no content filter finish: `safe_prompt` steers the model instead.
    content_filter_responses: &[],
    invalid_request: error(
        "error_400.json",
        "invalid_request_error",
        "Expected last role User or Tool",
    ),
    rate_limited: error(
        "error_429.json",
        "rate_limit_error",
        "Requests rate limit exceeded",
    ),
    retry_hint_ms: None,
};

/// Cohere's v2 chat: roles as OpenAI's, tool calls keep their ids, answers are content items
/// with a tool plan, and the usage is what Cohere bills.
const COHERE: Case = Case {
    kind: ProviderKind::Cohere,
    model: MODEL,
    folder: "cohere",
    model_at: Some("/model"),
    system_at: "/messages/0/content",
    user_text_at: "/messages/1/content",
    text_response: "chat_response.json",
    text: "LLMs stand for Large Language Models, a type of neural network trained on vast amounts of text.",
    usage_response: "chat_response.json",
    // `billed_units`, not `tokens` (71 with the prompt template Cohere adds).
    usage: tokens(5, 12, 0),
    stream: "chat_stream.sse",
    stream_text: "Hello! How can I help you?",
    stream_usage: tokens(3, 8, 0),
    tools_at: &[
        ("/tools/0/function/name", r#""get_weather""#),
        (
            "/messages/1",
            r#"{"role": "assistant", "tool_calls": [{"id": "call_abc", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]}"#,
        ),
        (
            "/messages/2",
            r#"{"role": "tool", "tool_call_id": "call_abc", "content": "18°C"}"#,
        ),
    ],
    tool_calls_response: "chat_tool_calls.json",
    tool_calls: &[call(
        Some("get_weather_k88p0m8504w5"),
        "get_weather",
        r#"{"location": "Paris, France"}"#,
    )],
    tool_calls_stream: "chat_stream_tool_calls.sse",
    stream_tool_calls: &[
        call(
            Some("get_weather_nsz5zm3w56q3"),
            "get_weather",
            r#"{"location": "Paris, France"}"#,
        ),
        call(
            Some("get_time_7wbc4e8hyv4p"),
            "get_time",
            r#"{"timezone": "Europe/Paris"}"#,
        ),
    ],
    image_at: &[(
        "/messages/0/content/1",
        r#"{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}"#,
    )],
    length_responses: &["chat_max_tokens.json"],
    // Cohere's v2 finish reasons have no content filter (`safety_mode` steers the model).
    content_filter_responses: &[],
    invalid_request: error(
        "error_400.json",
        "invalid_request_error",
        "max_tokens must be greater than 0",
    ),
    rate_limited: error(
        "error_429.json",
        "rate_limit_error",
        "limited to 10 API calls / minute",
    ),
    retry_hint_ms: None,
};

/// The model the target names, as it must reach the provider.
const MODEL: &str = "target-model";

const SYSTEM: &str = "Be brief.";
const USER_TEXT: &str = "Hello there";

/// A system and a user message.
fn text_request() -> Value {
    json!({"model": "smart", "messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": USER_TEXT},
    ]})
}

/// A tool offered, the model's earlier call of it, and its result.
fn tools_request() -> Value {
    json!({
        "model": "smart",
        "tools": [{"type": "function", "function": {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        }}],
        "messages": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_abc", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"},
            }]},
            {"role": "tool", "tool_call_id": "call_abc", "content": "18°C"},
        ],
    })
}

/// A question about an image sent inline as a data URL.
fn image_request() -> Value {
    json!({"model": "smart", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]}]})
}

fn fixture(case: &Case, name: &str) -> Vec<u8> {
    let path = format!(
        "{}/src/providers/{}/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR"),
        case.folder
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read fixture {path}: {e}"))
}

/// The provider body `case`'s adapter builds for `request`, after checking it names the model.
fn provider_body(case: &Case, request: &Value) -> Value {
    let upstream = adapter(case.kind)
        .chat_request(case.model, &chat_body(request))
        .unwrap();
    let body: Value = serde_json::from_slice(&upstream.body).unwrap();
    match case.model_at {
        Some(pointer) => assert_eq!(body.pointer(pointer), Some(&json!(case.model)), "{body}"),
        None => {
            assert!(upstream.url.path().contains(case.model), "{}", upstream.url);
            assert!(body.get("model").is_none(), "{body}");
        }
    }
    body
}

fn assert_at(case: &Case, request: &Value, expected: &[Expect]) {
    let body = provider_body(case, request);
    for (pointer, value) in expected {
        let value: Value = serde_json::from_str(value).unwrap();
        assert_eq!(
            body.pointer(pointer),
            Some(&value),
            "at {pointer} in {body}"
        );
    }
}

/// `case`'s fixture `name` as an OpenAI `chat.completion`, with the usage read from it.
fn completion(case: &Case, name: &str) -> (Value, Option<TokenUsage>) {
    let translated = adapter(case.kind)
        .chat_response(case.model, &fixture(case, name))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let body: Value = serde_json::from_slice(&translated.body).unwrap();
    assert_eq!(body["object"], "chat.completion", "{name}: {body}");
    (body, translated.usage)
}

fn finish_reason(case: &Case, name: &str) -> Value {
    completion(case, name).0["choices"][0]["finish_reason"].clone()
}

fn check_text(case: &Case) {
    let body = provider_body(case, &text_request());
    assert_eq!(body.pointer(case.system_at), Some(&json!(SYSTEM)), "{body}");
    assert_eq!(
        body.pointer(case.user_text_at),
        Some(&json!(USER_TEXT)),
        "{body}"
    );

    let (body, usage) = completion(case, case.text_response);
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], case.text);
    assert_eq!(choice["finish_reason"], "stop");
    assert!(usage.is_some(), "no usage read");
    assert_eq!(
        body["usage"]["total_tokens"],
        body["usage"]["prompt_tokens"].as_u64().unwrap()
            + body["usage"]["completion_tokens"].as_u64().unwrap(),
        "{body}"
    );
}

/// `case`'s stream fixture `name` through a fresh translator: the OpenAI chunks before the
/// closing `data: [DONE]`, and the usage the translator read.
fn stream_chunks(case: &Case, name: &str) -> (Vec<Value>, Option<TokenUsage>) {
    let mut request = text_request();
    request["stream"] = json!(true);
    request["stream_options"] = json!({"include_usage": true});
    let mut translator = adapter(case.kind).chat_stream(case.model, &chat_body(&request));
    let mut out = BytesMut::new();
    translator
        .feed(&fixture(case, name), &mut out)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    translator.finish(&mut out).unwrap();

    let out = String::from_utf8(out.to_vec()).unwrap();
    let mut events = common::events(&out);
    assert_eq!(events.pop().as_deref(), Some("[DONE]"), "{name}: {out}");
    let chunks = events
        .iter()
        .map(|event| {
            let chunk: Value = serde_json::from_str(event).unwrap();
            assert_eq!(chunk["object"], "chat.completion.chunk", "{name}: {chunk}");
            chunk
        })
        .collect();
    (chunks, translator.usage())
}

/// The `choices[0]` of every chunk that has one.
fn choices(chunks: &[Value]) -> impl Iterator<Item = &Value> {
    chunks
        .iter()
        .filter_map(|chunk| chunk.pointer("/choices/0"))
}

fn finish_reasons(chunks: &[Value]) -> Vec<&str> {
    choices(chunks)
        .filter_map(|choice| choice["finish_reason"].as_str())
        .collect()
}

fn check_streaming(case: &Case) {
    let (chunks, usage) = stream_chunks(case, case.stream);
    let text: String = choices(&chunks)
        .filter_map(|choice| choice["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, case.stream_text);
    assert_eq!(finish_reasons(&chunks), ["stop"]);
    assert_eq!(usage, Some(case.stream_usage));
}

/// OpenAI `tool_calls` match `expected`, in order, with ids given once each.
fn assert_calls(calls: &[Value], expected: &[Call]) {
    assert_eq!(calls.len(), expected.len(), "{calls:?}");
    let mut ids = std::collections::HashSet::new();
    for (call, expected) in calls.iter().zip(expected) {
        assert_eq!(call["type"], "function", "{call}");
        let id = call["id"].as_str().unwrap();
        assert!(ids.insert(id), "tool call id {id} given twice");
        if let Some(expected_id) = expected.id {
            assert_eq!(id, expected_id);
        }
        assert_eq!(call["function"]["name"], expected.name);
        let arguments: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        let expected_arguments: Value = serde_json::from_str(expected.arguments).unwrap();
        assert_eq!(arguments, expected_arguments);
    }
}

/// Streamed tool call deltas put back together as whole calls, by their `index`: the first
/// delta of a call brings its id, type and name, the rest pieces of its arguments.
fn streamed_calls(chunks: &[Value]) -> Vec<Value> {
    let mut calls: Vec<Value> = Vec::new();
    let deltas = choices(chunks)
        .filter_map(|choice| choice["delta"]["tool_calls"].as_array())
        .flatten();
    for delta in deltas {
        let index = usize::try_from(delta["index"].as_u64().unwrap()).unwrap();
        if index == calls.len() {
            calls.push(json!({"id": delta["id"], "type": delta["type"],
                              "function": {"name": delta["function"]["name"], "arguments": ""}}));
        }
        let piece = delta["function"]["arguments"].as_str().unwrap_or_default();
        let arguments = &mut calls[index]["function"]["arguments"];
        *arguments = json!(format!("{}{piece}", arguments.as_str().unwrap()));
    }
    calls
}

fn check_tools(case: &Case) {
    assert_at(case, &tools_request(), case.tools_at);

    let (body, _) = completion(case, case.tool_calls_response);
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{body}");
    assert_calls(
        choice["message"]["tool_calls"].as_array().unwrap(),
        case.tool_calls,
    );

    let (chunks, _) = stream_chunks(case, case.tool_calls_stream);
    assert_eq!(finish_reasons(&chunks), ["tool_calls"]);
    assert_calls(&streamed_calls(&chunks), case.stream_tool_calls);
}

fn check_images(case: &Case) {
    assert_at(case, &image_request(), case.image_at);
}

fn check_stop_reasons(case: &Case) {
    for name in case.length_responses {
        assert_eq!(finish_reason(case, name), "length", "{name}");
    }
    for name in case.content_filter_responses {
        assert_eq!(finish_reason(case, name), "content_filter", "{name}");
    }
}

fn check_usage(case: &Case) {
    let (body, usage) = completion(case, case.usage_response);
    assert_eq!(usage, Some(case.usage));
    // The client sees the same counts as the meter.
    let usage = &body["usage"];
    assert_eq!(usage["prompt_tokens"], case.usage.input_tokens, "{body}");
    assert_eq!(
        usage["completion_tokens"], case.usage.output_tokens,
        "{body}"
    );
    let cached = usage
        .pointer("/prompt_tokens_details/cached_tokens")
        .and_then(Value::as_u64)
        .unwrap_or_default();
    assert_eq!(cached, case.usage.cached_input_tokens, "{body}");
}

fn check_error_bodies(case: &Case) {
    for (status, expected) in [(400, &case.invalid_request), (429, &case.rate_limited)] {
        let details = adapter(case.kind).error_details(status, &fixture(case, expected.fixture));
        assert!(
            details.message.contains(expected.message),
            "{}: {details:?}",
            expected.fixture
        );
        assert_eq!(
            details.kind.as_deref(),
            Some(expected.kind),
            "{}",
            expected.fixture
        );
    }
    let rate_limited = fixture(case, case.rate_limited.fixture);
    assert_eq!(
        adapter(case.kind)
            .error_details(429, &rate_limited)
            .retry_after,
        case.retry_hint_ms.map(std::time::Duration::from_millis)
    );
}

/// Stamps one module of tests per row, each running every check on that row, and lists the
/// rows in `ADAPTERS`.
macro_rules! conformance {
    ($($provider:ident => $case:ident),+ $(,)?) => {
        /// Every row, to check that no provider kind goes without one.
        const ADAPTERS: &[&Case] = &[$(&$case),+];
    $(
        mod $provider {
            use super::*;

            #[test]
            fn text() {
                check_text(&$case);
            }

            #[test]
            fn streaming() {
                check_streaming(&$case);
            }

            #[test]
            fn tools_and_tool_results() {
                check_tools(&$case);
            }

            #[test]
            fn images() {
                check_images(&$case);
            }

            #[test]
            fn stop_reasons() {
                check_stop_reasons(&$case);
            }

            #[test]
            fn usage() {
                check_usage(&$case);
            }

            #[test]
            fn error_bodies() {
                check_error_bodies(&$case);
            }
        }
    )+};
}

conformance! {
    openai => OPENAI,
    azure => AZURE,
    anthropic => ANTHROPIC,
    gemini => GEMINI,
    bedrock => BEDROCK,
    vertex_gemini => VERTEX_GEMINI,
    vertex_anthropic => VERTEX_ANTHROPIC,
    mistral => MISTRAL,
    cohere => COHERE,
}

#[test]
fn every_provider_kind_has_a_row() {
    for provider in PROVIDERS {
        assert!(
            ADAPTERS.iter().any(|case| case.kind == provider.kind),
            "no conformance row for {:?}",
            provider.kind
        );
    }
}
