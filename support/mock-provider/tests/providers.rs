//! Wire formats of each provider, checked over real TCP against a started MockServer.

mod common;

use common::{chat_completion, named_events, post_json, send, sse_data};
use serde_json::{Value, json};
use tollgate_mock_provider::{MockConfig, MockServer};

const AZURE_CHAT: &str = "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21";
const ANTHROPIC_HEADERS: &[(&str, &str)] = &[("anthropic-version", "2023-06-01")];

fn chat_body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "What is the capital of France?"}
        ]
    })
}

fn weather_tool_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "metric": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "extra": {"type": "object"}
        },
        "required": ["city"]
    })
}

fn expected_weather_args() -> Value {
    json!({"city": "test", "days": 1, "metric": true, "tags": [], "extra": {}})
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_chat_answer_has_the_real_shape() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let res = chat_completion(mock.addr(), &chat_body("gpt-4o", false)).await;
    assert_eq!(res.status, 200);
    assert!(
        res.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let v = res.json();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], "gpt-4o");
    assert!(v["system_fingerprint"].as_str().unwrap().starts_with("fp_"));
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["message"]["role"], "assistant");
    let content = choice["message"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("Mock OpenAI answer to: What is the capital of France?"),
        "{content}"
    );
    // "be brief" + the question = 8 + 30 chars -> ceil(38 / 4) = 10
    assert_eq!(v["usage"]["prompt_tokens"], 10);
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["usage"]["total_tokens"], 15);
    mock.stop().await;
}

#[actix_web::test]
async fn openai_stream_matches_openai_framing() {
    let mock = MockServer::start(MockConfig {
        chunks: 4,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let non_stream = chat_completion(mock.addr(), &chat_body("gpt-4o", false))
        .await
        .json();
    let res = chat_completion(mock.addr(), &chat_body("gpt-4o", true)).await;
    assert_eq!(res.status, 200);
    assert!(
        res.header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(res.complete);
    let body = res.text();
    assert!(body.ends_with("data: [DONE]\n\n"));
    let events = sse_data(&body, "\n\n");
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    // role chunk, 4 content deltas, finish chunk; no usage chunk without include_usage
    assert_eq!(chunks.len(), 6);
    let id = chunks[0]["id"].as_str().unwrap();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], id);
        assert_eq!(c["model"], "gpt-4o");
        assert!(c.get("usage").is_none());
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "", "refusal": null})
    );
    let text: String = chunks[1..5]
        .iter()
        .map(|c| {
            let delta = c["choices"][0]["delta"]["content"].as_str().unwrap();
            assert!(!delta.is_empty());
            assert!(c["choices"][0]["finish_reason"].is_null());
            delta.to_owned()
        })
        .collect();
    assert_eq!(
        text,
        non_stream["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
    );
    assert_eq!(chunks[5]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "stop");

    // include_usage adds "usage": null everywhere and a final choices-less usage chunk.
    let mut body = chat_body("gpt-4o", true);
    body["stream_options"] = json!({"include_usage": true});
    let res = chat_completion(mock.addr(), &body).await;
    let events = sse_data(&res.text(), "\n\n");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks.len(), 7);
    assert!(
        chunks[..6]
            .iter()
            .all(|c| c["usage"].is_null() && c.get("usage").is_some())
    );
    let usage_chunk = &chunks[6];
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 10);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 4);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 14);

    // omit_usage simulates servers that never report usage, even when asked.
    mock.set_config(MockConfig {
        omit_usage: true,
        ..MockConfig::default()
    });
    let res = chat_completion(mock.addr(), &body).await;
    assert!(!res.text().contains("\"prompt_tokens\""));
    let res = chat_completion(mock.addr(), &chat_body("gpt-4o", false)).await;
    assert!(res.json().get("usage").is_none());
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_tool_calls_plain_and_streamed() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut body = chat_body("gpt-4o", false);
    body["tools"] = json!([
        {"type": "function", "function": {"name": "other", "parameters": {"type": "object", "properties": {}}}},
        {"type": "function", "function": {"name": "get_weather", "parameters": weather_tool_schema()}}
    ]);
    body["tool_choice"] = json!({"type": "function", "function": {"name": "get_weather"}});
    let v = chat_completion(mock.addr(), &body).await.json();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, expected_weather_args());

    // Streamed: header delta with id/name and empty arguments, then fragments, then finish.
    body["stream"] = json!(true);
    let res = chat_completion(mock.addr(), &body).await;
    let events = sse_data(&res.text(), "\n\n");
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let first = &chunks[0]["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant");
    assert_eq!(first["tool_calls"][0]["index"], 0);
    assert!(
        first["tool_calls"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("call_")
    );
    assert_eq!(first["tool_calls"][0]["type"], "function");
    assert_eq!(first["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(first["tool_calls"][0]["function"]["arguments"], "");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
    let joined: String = chunks[1..chunks.len() - 1]
        .iter()
        .map(|c| {
            let tc = &c["choices"][0]["delta"]["tool_calls"][0];
            assert_eq!(tc["index"], 0);
            assert!(tc.get("id").is_none());
            tc["function"]["arguments"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(chunks.len() > 3, "arguments arrive in several fragments");
    assert_eq!(
        serde_json::from_str::<Value>(&joined).unwrap(),
        expected_weather_args()
    );

    // After a tool result, or with tool_choice "none", the model answers in text.
    let mut answered = body.clone();
    answered["stream"] = json!(false);
    answered["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}),
        json!({"role": "tool", "tool_call_id": "call_1", "content": "sunny"}),
    ]);
    let v = chat_completion(mock.addr(), &answered).await.json();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let mut disabled = chat_body("gpt-4o", false);
    disabled["tools"] = body["tools"].clone();
    disabled["tool_choice"] = json!("none");
    let v = chat_completion(mock.addr(), &disabled).await.json();
    assert!(v["choices"][0]["message"]["content"].is_string());
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_embeddings_are_deterministic() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let res = post_json(
        mock.addr(),
        "/v1/embeddings",
        &[],
        &json!({"model": "text-embedding-3-small", "input": ["hello", "world", "hello"]}),
    )
    .await;
    assert_eq!(res.status, 200);
    let v = res.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "text-embedding-3-small");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        let vector: Vec<f64> = item["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(vector.len(), 16);
        let norm: f64 = vector.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit length, got {norm}");
    }
    assert_eq!(data[0]["embedding"], data[2]["embedding"]);
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    // 5 characters each -> 2 tokens each
    assert_eq!(v["usage"]["prompt_tokens"], 6);
    assert_eq!(v["usage"]["total_tokens"], 6);

    let single = post_json(
        mock.addr(),
        "/v1/embeddings",
        &[],
        &json!({"model": "m", "input": "hello", "dimensions": 8}),
    )
    .await
    .json();
    assert_eq!(single["data"][0]["embedding"].as_array().unwrap().len(), 8);

    for input in [json!([1, 2, 3]), json!([[1, 2], [3]])] {
        let v = post_json(
            mock.addr(),
            "/v1/embeddings",
            &[],
            &json!({"model": "m", "input": input}),
        )
        .await
        .json();
        assert!(!v["data"].as_array().unwrap().is_empty());
        assert_eq!(v["usage"]["prompt_tokens"], 3);
    }

    let b64 = post_json(
        mock.addr(),
        "/v1/embeddings",
        &[],
        &json!({"model": "m", "input": "hello", "encoding_format": "base64"}),
    )
    .await
    .json();
    // 16 little-endian f32 = 64 bytes = 88 base64 characters
    assert_eq!(b64["data"][0]["embedding"].as_str().unwrap().len(), 88);
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_uses_the_deployment_and_requires_api_version() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let res = post_json(mock.addr(), AZURE_CHAT, &[], &chat_body("ignored", false)).await;
    assert_eq!(res.status, 200);
    let v = res.json();
    assert_eq!(v["model"], "my-gpt");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Mock Azure OpenAI answer to:")
    );

    let res = post_json(
        mock.addr(),
        "/openai/deployments/my-gpt/chat/completions",
        &[],
        &chat_body("x", false),
    )
    .await;
    assert_eq!(res.status, 400);
    let err = &res.json()["error"];
    assert!(err["message"].as_str().unwrap().contains("api-version"));
    for field in ["type", "param", "code"] {
        assert!(err.get(field).is_some(), "{field} present");
    }

    let res = post_json(mock.addr(), AZURE_CHAT, &[], &chat_body("x", true)).await;
    let events = sse_data(&res.text(), "\n\n");
    assert_eq!(events.last().unwrap(), "[DONE]");
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["model"], "my-gpt");

    let res = post_json(
        mock.addr(),
        "/openai/deployments/embedder/embeddings?api-version=2024-10-21",
        &[],
        &json!({"input": "hi"}),
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["model"], "embedder");
    let stats = mock.stats();
    assert_eq!(stats.by_route["azure.chat"], 3);
    assert_eq!(stats.by_route["azure.embeddings"], 1);
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_message_and_stream() {
    let mock = MockServer::start(MockConfig {
        chunks: 3,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "system": "be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello there"}]}]
    });
    let res = post_json(mock.addr(), "/v1/messages", ANTHROPIC_HEADERS, &body).await;
    assert_eq!(res.status, 200);
    let v = res.json();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["stop_sequence"].is_null());
    assert_eq!(v["content"][0]["type"], "text");
    let text = v["content"][0]["text"].as_str().unwrap().to_owned();
    assert!(
        text.starts_with("Mock Anthropic answer to: Hello there"),
        "{text}"
    );
    // "be brief" + "Hello there" = 19 chars -> 5 tokens
    assert_eq!(v["usage"]["input_tokens"], 5);
    assert_eq!(v["usage"]["output_tokens"], 3);

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let res = post_json(mock.addr(), "/v1/messages", ANTHROPIC_HEADERS, &streamed).await;
    assert_eq!(res.status, 200);
    assert!(
        res.header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = named_events(&res.text());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for (name, data) in &events {
        assert_eq!(
            data["type"],
            name.as_str(),
            "data.type matches the event name"
        );
    }
    let start = &events[0].1["message"];
    assert_eq!(start["model"], "claude-sonnet-4-5");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["usage"]["input_tokens"], 5);
    assert!(start["usage"]["output_tokens"].is_u64());
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let streamed_text: String = events[3..6]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(streamed_text, text);
    assert_eq!(events[7].1["delta"]["stop_reason"], "end_turn");
    assert_eq!(events[7].1["usage"]["output_tokens"], 3);
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_validates_like_the_real_api() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let body = json!({"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let res = post_json(mock.addr(), "/v1/messages", &[], &body).await;
    assert_eq!(res.status, 400);
    let v = res.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("anthropic-version")
    );

    let res = post_json(
        mock.addr(),
        "/v1/messages",
        ANTHROPIC_HEADERS,
        &json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json()["error"]["type"], "invalid_request_error");
    assert!(res.text().contains("max_tokens"));
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_tool_use_plain_and_streamed() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut body = json!({
        "model": "claude",
        "max_tokens": 100,
        "tools": [{"name": "get_weather", "description": "w", "input_schema": weather_tool_schema()}],
        "messages": [{"role": "user", "content": "weather?"}]
    });
    let v = post_json(mock.addr(), "/v1/messages", ANTHROPIC_HEADERS, &body)
        .await
        .json();
    assert_eq!(v["stop_reason"], "tool_use");
    let block = &v["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], expected_weather_args());

    body["stream"] = json!(true);
    let res = post_json(mock.addr(), "/v1/messages", ANTHROPIC_HEADERS, &body).await;
    let events = named_events(&res.text());
    let start = &events[1].1["content_block"];
    assert_eq!(start["type"], "tool_use");
    assert_eq!(start["name"], "get_weather");
    assert_eq!(start["input"], json!({}));
    let partial: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&partial).unwrap(),
        expected_weather_args()
    );
    let delta = events.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    assert_eq!(events.last().unwrap().0, "message_stop");

    // A tool_result as the last user turn gets a text answer.
    body["stream"] = json!(false);
    body["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]}),
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}),
    ]);
    let v = post_json(mock.addr(), "/v1/messages", ANTHROPIC_HEADERS, &body)
        .await
        .json();
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["content"][0]["type"], "text");
    mock.stop().await;
}

fn gemini_body() -> Value {
    json!({
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [{"role": "user", "parts": [{"text": "Why is the sky blue?"}]}]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn gemini_generate_and_both_stream_modes() {
    let mock = MockServer::start(MockConfig {
        chunks: 3,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let res = post_json(
        mock.addr(),
        "/v1beta/models/gemini-2.0-flash:generateContent",
        &[],
        &gemini_body(),
    )
    .await;
    assert_eq!(res.status, 200);
    let v = res.json();
    let cand = &v["candidates"][0];
    assert_eq!(cand["content"]["role"], "model");
    assert_eq!(cand["finishReason"], "STOP");
    assert_eq!(cand["index"], 0);
    let text = cand["content"]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.starts_with("Mock Gemini answer to: Why is the sky blue?"),
        "{text}"
    );
    // "be brief" + question = 8 + 20 = 28 chars -> 7 tokens
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 7);
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 3);
    assert_eq!(v["usageMetadata"]["totalTokenCount"], 10);
    assert_eq!(v["modelVersion"], "gemini-2.0-flash");

    let res = post_json(
        mock.addr(),
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        &[],
        &gemini_body(),
    )
    .await;
    assert_eq!(res.status, 200);
    assert!(
        res.header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    let body = res.text();
    assert!(body.ends_with("\r\n\r\n"));
    let events: Vec<Value> = sse_data(&body, "\r\n\r\n")
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(events.len(), 3);
    let mut streamed = String::new();
    for (i, e) in events.iter().enumerate() {
        let cand = &e["candidates"][0];
        assert_eq!(cand["content"]["role"], "model");
        assert_eq!(e["modelVersion"], "gemini-2.0-flash");
        streamed.push_str(cand["content"]["parts"][0]["text"].as_str().unwrap());
        let last = i == events.len() - 1;
        assert_eq!(cand.get("finishReason").is_some(), last);
        assert_eq!(e.get("usageMetadata").is_some(), last);
    }
    assert_eq!(streamed, text);
    assert_eq!(events[2]["usageMetadata"]["candidatesTokenCount"], 3);

    // Without alt=sse the stream is one JSON array.
    let res = post_json(
        mock.addr(),
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
        &[],
        &gemini_body(),
    )
    .await;
    assert!(
        res.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let array = res.json();
    assert_eq!(array.as_array().unwrap().len(), 3);
    assert_eq!(array[2]["candidates"][0]["finishReason"], "STOP");
    let stats = mock.stats();
    assert_eq!(stats.by_route["gemini.generate"], 1);
    assert_eq!(stats.by_route["gemini.stream"], 2);
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gemini_function_call_and_embeddings() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut body = gemini_body();
    body["tools"] = json!([{"functionDeclarations": [{"name": "get_weather", "parameters": {
        "type": "OBJECT",
        "properties": {"city": {"type": "STRING"}, "days": {"type": "INTEGER"}}
    }}]}]);
    let v = post_json(
        mock.addr(),
        "/v1beta/models/gemini-2.0-flash:generateContent",
        &[],
        &body,
    )
    .await
    .json();
    let part = &v["candidates"][0]["content"]["parts"][0];
    assert_eq!(part["functionCall"]["name"], "get_weather");
    assert_eq!(
        part["functionCall"]["args"],
        json!({"city": "test", "days": 1})
    );
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");

    let res = post_json(
        mock.addr(),
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        &[],
        &body,
    )
    .await;
    let events = sse_data(&res.text(), "\r\n\r\n");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(
        last["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
        "get_weather"
    );

    body["contents"].as_array_mut().unwrap().extend([
        json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]}),
        json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"ok": true}}}]}),
    ]);
    let v = post_json(
        mock.addr(),
        "/v1beta/models/gemini-2.0-flash:generateContent",
        &[],
        &body,
    )
    .await
    .json();
    assert!(v["candidates"][0]["content"]["parts"][0]["text"].is_string());

    let one = post_json(
        mock.addr(),
        "/v1beta/models/text-embedding-004:embedContent",
        &[],
        &json!({"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 8}),
    )
    .await
    .json();
    let values = one["embedding"]["values"].as_array().unwrap();
    assert_eq!(values.len(), 8);
    let batch = post_json(
        mock.addr(),
        "/v1beta/models/text-embedding-004:batchEmbedContents",
        &[],
        &json!({"requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 8},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "other"}]}}
        ]}),
    )
    .await
    .json();
    let embeddings = batch["embeddings"].as_array().unwrap();
    assert_eq!(embeddings.len(), 2);
    assert_eq!(embeddings[0]["values"].as_array().unwrap(), values);
    assert_eq!(embeddings[1]["values"].as_array().unwrap().len(), 16);
    assert_eq!(mock.stats().by_route["gemini.embed"], 2);
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn magic_error_models_answer_in_each_providers_format() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();

    let res = chat_completion(mock.addr(), &chat_body("mock-error-429", false)).await;
    assert_eq!(res.status, 429);
    let err = &res.json()["error"];
    assert!(err["message"].is_string());
    assert_eq!(err["type"], "requests");
    assert_eq!(err["code"], "rate_limit_exceeded");
    assert!(err.get("param").is_some());

    let res = post_json(
        mock.addr(),
        "/openai/deployments/mock-error-500/chat/completions?api-version=2024-10-21",
        &[],
        &chat_body("x", false),
    )
    .await;
    assert_eq!(res.status, 500);
    assert_eq!(res.json()["error"]["type"], "server_error");

    for (status, kind) in [
        (529, "overloaded_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (400, "invalid_request_error"),
        (404, "not_found_error"),
    ] {
        let body = json!({"model": format!("mock-error-{status}"), "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
        let res = post_json(mock.addr(), "/v1/messages", ANTHROPIC_HEADERS, &body).await;
        assert_eq!(res.status, status);
        let v = res.json();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], kind);
        assert!(v["error"]["message"].is_string());
    }

    for (status, name) in [
        (503, "UNAVAILABLE"),
        (429, "RESOURCE_EXHAUSTED"),
        (400, "INVALID_ARGUMENT"),
    ] {
        let path = format!("/v1beta/models/mock-error-{status}:generateContent");
        let res = post_json(mock.addr(), &path, &[], &gemini_body()).await;
        assert_eq!(res.status, status);
        let err = &res.json()["error"];
        assert_eq!(err["code"], status);
        assert_eq!(err["status"], name);
        assert!(err["message"].is_string());
    }
    let res = post_json(
        mock.addr(),
        "/v1/embeddings",
        &[],
        &json!({"model": "mock-error-503", "input": "x"}),
    )
    .await;
    assert_eq!(res.status, 503);
    assert_eq!(mock.stats().failures_injected, 11);
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn require_key_is_checked_the_providers_way() {
    let mock = MockServer::start(MockConfig {
        require_key: Some("sk-test".into()),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let addr = mock.addr();
    let chat = chat_body("gpt-4o", false);

    let res = chat_completion(addr, &chat).await;
    assert_eq!(res.status, 401);
    assert_eq!(res.json()["error"]["code"], "invalid_api_key");
    let res = post_json(
        addr,
        "/v1/chat/completions",
        &[("Authorization", "Bearer wrong")],
        &chat,
    )
    .await;
    assert_eq!(res.status, 401);
    let res = post_json(
        addr,
        "/v1/chat/completions",
        &[("Authorization", "Bearer sk-test")],
        &chat,
    )
    .await;
    assert_eq!(res.status, 200);
    let res = send(
        addr,
        "GET",
        "/v1/models",
        &[("Authorization", "Bearer sk-test")],
        b"",
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["object"], "list");

    let res = post_json(
        addr,
        AZURE_CHAT,
        &[("Authorization", "Bearer sk-test")],
        &chat,
    )
    .await;
    assert_eq!(res.status, 401);
    assert!(res.json()["error"]["message"].is_string());
    let res = post_json(addr, AZURE_CHAT, &[("api-key", "sk-test")], &chat).await;
    assert_eq!(res.status, 200);

    let anthropic = json!({"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let res = post_json(addr, "/v1/messages", ANTHROPIC_HEADERS, &anthropic).await;
    assert_eq!(res.status, 401);
    assert_eq!(res.json()["error"]["type"], "authentication_error");
    let res = post_json(
        addr,
        "/v1/messages",
        &[
            ("anthropic-version", "2023-06-01"),
            ("x-api-key", "sk-test"),
        ],
        &anthropic,
    )
    .await;
    assert_eq!(res.status, 200);

    let path = "/v1beta/models/gemini-2.0-flash:generateContent";
    let res = post_json(addr, path, &[], &gemini_body()).await;
    assert_eq!(res.status, 401);
    assert_eq!(res.json()["error"]["status"], "UNAUTHENTICATED");
    let res = post_json(addr, path, &[("x-goog-api-key", "sk-test")], &gemini_body()).await;
    assert_eq!(res.status, 200);
    let res = post_json(addr, &format!("{path}?key=sk-test"), &[], &gemini_body()).await;
    assert_eq!(res.status, 200);
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bedrock_refuses_unsigned_and_badly_signed_requests_the_aws_way() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let body = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
    let path = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";

    let res = post_json(mock.addr(), path, &[], &body).await;
    assert_eq!(res.status, 403);
    assert!(
        res.header("x-amzn-errortype")
            .unwrap()
            .starts_with("MissingAuthenticationTokenException:"),
        "{:?}",
        res.headers
    );
    assert_eq!(
        res.json(),
        json!({"message": "Missing Authentication Token"})
    );

    // Signed with a made-up signature by the right key id, at the right time.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (days, secs) = (now / 86_400, now % 86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = format!("{year:04}{month:02}{day:02}");
    let amz_date = format!(
        "{date}T{:02}{:02}{:02}Z",
        secs / 3_600,
        secs / 60 % 60,
        secs % 60
    );
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{date}/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature={}",
        "0".repeat(64)
    );
    let headers = [
        ("x-amz-date", amz_date.as_str()),
        ("authorization", authorization.as_str()),
    ];
    let res = post_json(mock.addr(), path, &headers, &body).await;
    assert_eq!(res.status, 403, "{}", String::from_utf8_lossy(&res.body));
    assert!(
        res.header("x-amzn-errortype")
            .unwrap()
            .starts_with("InvalidSignatureException:")
    );
    assert!(
        res.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("The request signature we calculated does not match")
    );

    let unknown = authorization.replace("AKIDEXAMPLE", "AKIDUNKNOWN");
    let headers = [
        ("x-amz-date", amz_date.as_str()),
        ("authorization", unknown.as_str()),
    ];
    let res = post_json(mock.addr(), path, &headers, &body).await;
    assert_eq!(res.status, 403);
    assert!(
        res.header("x-amzn-errortype")
            .unwrap()
            .starts_with("UnrecognizedClientException:")
    );
    assert_eq!(mock.stats().by_route["bedrock.converse"], 3);
    mock.stop().await;
}
