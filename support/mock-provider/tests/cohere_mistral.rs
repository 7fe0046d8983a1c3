//! The Mistral and Cohere routes, over real TCP: their answers have the real shapes, and they
//! refuse what the real APIs refuse, in those APIs' own error bodies.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use common::{named_events, post_json, sse_data};
use serde_json::{Value, json};
use tollgate_mock_provider::{MockConfig, MockServer};

const MISTRAL_CHAT: &str = "/mistral/v1/chat/completions";
const KEY: &[(&str, &str)] = &[("Authorization", "Bearer k")];

async fn keyed() -> MockServer {
    MockServer::start(MockConfig {
        require_key: Some("k".into()),
        chunks: 3,
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello there"}]})
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
}

#[actix_web::test]
async fn mistral_answers_with_usage_on_the_last_chunk_unasked() {
    let mock = keyed().await;
    let res = post_json(
        mock.addr(),
        MISTRAL_CHAT,
        KEY,
        &hello("mistral-small-latest"),
    )
    .await;
    assert_eq!(res.status, 200);
    let v = res.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Mock Mistral answer to: Hello there")
    );
    assert_eq!(v["usage"]["completion_tokens"], 3);

    let mut body = hello("mistral-small-latest");
    body["stream"] = json!(true);
    let res = post_json(mock.addr(), MISTRAL_CHAT, KEY, &body).await;
    assert_eq!(res.status, 200);
    let events = sse_data(&res.text(), "\n\n");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["usage"]["completion_tokens"], 3);
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c.get("usage").is_none())
    );
    assert_eq!(mock.stats().by_route["mistral.chat"], 2);
    mock.stop().await;
}

#[actix_web::test]
async fn mistral_refuses_what_mistral_refuses() {
    let mock = keyed().await;
    let res = post_json(mock.addr(), MISTRAL_CHAT, &[], &hello("m")).await;
    assert_eq!(res.status, 401);
    assert_eq!(res.json()["message"], "Unauthorized");

    let mut extra = hello("m");
    extra["stream_options"] = json!({"include_usage": true});
    let res = post_json(mock.addr(), MISTRAL_CHAT, KEY, &extra).await;
    assert_eq!(res.status, 422);
    let v = res.json();
    assert_eq!(v["object"], "error");
    assert_eq!(
        v["message"]["detail"][0]["loc"],
        json!(["body", "stream_options"])
    );
    assert_eq!(v["message"]["detail"][0]["type"], "extra_forbidden");

    let foreign_id = json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "call_abc", "type": "function",
            "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "ok"}]});
    let res = post_json(mock.addr(), MISTRAL_CHAT, KEY, &foreign_id).await;
    assert_eq!(res.status, 422);
    assert_eq!(
        res.json()["message"]["detail"][0]["type"],
        "string_pattern_mismatch"
    );

    let mut bad_choice = hello("m");
    bad_choice["tool_choice"] = json!("sometimes");
    let res = post_json(mock.addr(), MISTRAL_CHAT, KEY, &bad_choice).await;
    assert_eq!(res.status, 422);

    let res = post_json(mock.addr(), MISTRAL_CHAT, KEY, &hello("mock-error-429")).await;
    assert_eq!(res.status, 429);
    assert_eq!(res.json()["type"], "rate_limited");
    mock.stop().await;
}

#[actix_web::test]
async fn mistral_calls_tools_with_nine_character_ids_and_embeds() {
    let mock = keyed().await;
    let mut body = hello("m");
    body["tools"] = weather_tool();
    body["tool_choice"] = json!("any");
    let v = post_json(mock.addr(), MISTRAL_CHAT, KEY, &body)
        .await
        .json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    let id = call["id"].as_str().unwrap();
    assert!(
        id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{id}"
    );
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "test"}));

    let res = post_json(
        mock.addr(),
        "/mistral/v1/embeddings",
        KEY,
        &json!({"model": "mistral-embed", "input": ["a", "b"], "output_dimension": 4}),
    )
    .await;
    assert_eq!(res.status, 200);
    let v = res.json();
    assert_eq!(v["data"][1]["embedding"].as_array().unwrap().len(), 4);
    let res = post_json(
        mock.addr(),
        "/mistral/v1/embeddings",
        KEY,
        &json!({"model": "mistral-embed", "input": "a", "dimensions": 4}),
    )
    .await;
    assert_eq!(res.status, 422);
    mock.stop().await;
}

#[actix_web::test]
async fn cohere_answers_and_streams_in_v2_shapes() {
    let mock = keyed().await;
    let res = post_json(mock.addr(), "/v2/chat", KEY, &hello("command-a-03-2025")).await;
    assert_eq!(res.status, 200);
    let v = res.json();
    assert_eq!(v["finish_reason"], "COMPLETE");
    assert_eq!(v["message"]["content"][0]["type"], "text");
    assert_eq!(v["usage"]["billed_units"]["output_tokens"], 3);
    assert!(
        v["usage"]["tokens"]["input_tokens"].as_u64()
            > v["usage"]["billed_units"]["input_tokens"].as_u64()
    );

    let mut body = hello("command-a-03-2025");
    body["stream"] = json!(true);
    body["tools"] = weather_tool();
    body["tool_choice"] = json!("REQUIRED");
    let res = post_json(mock.addr(), "/v2/chat", KEY, &body).await;
    assert_eq!(res.status, 200);
    let events = named_events(&res.text());
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.first(), Some(&"message-start"));
    assert_eq!(names.last(), Some(&"message-end"));
    assert!(
        names.contains(&"tool-plan-delta") && names.contains(&"tool-call-start"),
        "{names:?}"
    );
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str());
    }
    let arguments: String = events
        .iter()
        .filter(|(name, _)| name == "tool-call-delta")
        .filter_map(|(_, d)| d["delta"]["message"]["tool_calls"]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        json!({"city": "test"})
    );
    assert_eq!(
        events.last().unwrap().1["delta"]["finish_reason"],
        "TOOL_CALL"
    );
    assert_eq!(mock.stats().by_route["cohere.chat"], 2);
    mock.stop().await;
}

#[actix_web::test]
async fn cohere_refuses_what_cohere_refuses() {
    let mock = keyed().await;
    let res = post_json(mock.addr(), "/v2/chat", &[], &hello("m")).await;
    assert_eq!(res.status, 401);
    assert!(res.json()["message"].is_string());

    let mut openai_names = hello("m");
    openai_names["top_p"] = json!(0.5);
    let res = post_json(mock.addr(), "/v2/chat", KEY, &openai_names).await;
    assert_eq!(res.status, 400);
    assert!(res.json()["message"].as_str().unwrap().contains("top_p"));

    let mut lowercase = hello("m");
    lowercase["tool_choice"] = json!("required");
    assert_eq!(
        post_json(mock.addr(), "/v2/chat", KEY, &lowercase)
            .await
            .status,
        400
    );

    let orphan = json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "x", "content": "ok"}]});
    assert_eq!(
        post_json(mock.addr(), "/v2/chat", KEY, &orphan)
            .await
            .status,
        400
    );

    let embed = json!({"model": "embed-v4.0", "texts": ["a"], "embedding_types": ["float"]});
    assert_eq!(
        post_json(mock.addr(), "/v2/embed", KEY, &embed)
            .await
            .status,
        400
    );
    let mut embed = embed;
    embed["input_type"] = json!("search_document");
    let res = post_json(mock.addr(), "/v2/embed", KEY, &embed).await;
    assert_eq!(res.status, 200);
    let v = res.json();
    assert_eq!(v["embeddings"]["float"].as_array().unwrap().len(), 1);
    assert_eq!(v["response_type"], "embeddings_by_type");

    let res = post_json(mock.addr(), "/v2/chat", KEY, &hello("mock-error-429")).await;
    assert_eq!(res.status, 429);
    assert!(res.json()["message"].is_string());
    mock.stop().await;
}
