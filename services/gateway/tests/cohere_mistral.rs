//! Mistral and Cohere end to end: OpenAI requests through the gateway to the mock's Mistral
//! and Cohere routes, which validate the way those APIs do. An OpenAI body forwarded as it is
//! fails there (each test that relies on it shows so first), so a passing request proves the
//! translation, not just the plumbing.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use common::{TestGateway, chunks, mock};
use serde_json::{Value, json};
use tollgate_mock_provider::{MockConfig, MockServer};

const MISTRAL_MODEL: &str = "mistral-small-latest";
const COHERE_MODEL: &str = "command-a-03-2025";

/// The mock, requiring the key `k` the gateway is configured with.
async fn keyed_mock() -> MockServer {
    mock(MockConfig {
        require_key: Some("k".into()),
        chunks: 3,
        ..MockConfig::default()
    })
    .await
}

/// A gateway whose `smart` group is one target at `provider` (`mistral` or `cohere`), and
/// whose `embed` group is that provider's embedding model, on `m`.
async fn gateway(m: &MockServer, provider: &str) -> TestGateway {
    let (chat_model, embed_model) = match provider {
        "mistral" => (MISTRAL_MODEL, "mistral-embed"),
        _ => (COHERE_MODEL, "embed-v4.0"),
    };
    let yaml = format!(
        r#"
providers:
  mistral: {{ kind: mistral, api_base: "{{mock:m}}/mistral", api_key: k }}
  cohere:  {{ kind: cohere,  api_base: "{{mock:m}}", api_key: k }}
models:
  - name: smart
    retry: {{ attempts: 1 }}
    targets: [ {{ provider: {provider}, model: {chat_model} }} ]
  - name: embed
    retry: {{ attempts: 1 }}
    targets: [ {{ provider: {provider}, model: {embed_model} }} ]
"#
    );
    TestGateway::start(&yaml, &[("m", m)]).await
}

/// Posts `body` to the mock's `path` as a client would without the gateway.
async fn direct(m: &MockServer, path: &str, body: &Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}{path}", m.url()))
        .bearer_auth("k")
        .json(body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[actix_web::test]
async fn mistral_chat_is_translated_and_answered_in_openai_shape() {
    let m = keyed_mock().await;
    let request = json!({"model": "smart", "seed": 7, "user": "u-1", "max_tokens": 64,
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Hello there"}]});
    // As OpenAI's body, Mistral refuses it: `seed` and `user` are not its members.
    let (status, refusal) = direct(&m, "/mistral/v1/chat/completions", &request).await;
    assert_eq!(status, 422, "{refusal}");

    let gw = gateway(&m, "mistral").await;
    let res = gw.chat(request).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], MISTRAL_MODEL);
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("Mock Mistral answer to: Hello there"),
        "{content}"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    let stats = m.stats();
    assert_eq!(stats.by_route["mistral.chat"], 2);
    assert_eq!(stats.last_headers["authorization"], "Bearer k");
    let sent = stats.last_request.unwrap();
    assert_eq!(sent["random_seed"], 7);
    assert_eq!(sent["max_tokens"], 64);
    assert_eq!(sent["model"], MISTRAL_MODEL);
    assert!(
        sent.get("user").is_none() && sent.get("seed").is_none(),
        "{sent}"
    );
    gw.stop().await;
}

#[actix_web::test]
async fn mistral_streams_report_usage_only_to_clients_that_ask() {
    let m = keyed_mock().await;
    let gw = gateway(&m, "mistral").await;
    for include_usage in [true, false] {
        let res = gw
            .chat(json!({"model": "smart", "stream": true,
                         "stream_options": {"include_usage": include_usage},
                         "messages": [{"role": "user", "content": "Tell me a story"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body = res.text().await.unwrap();
        let chunks = chunks(&body);
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert!(
            text.starts_with("Mock Mistral answer to: Tell me"),
            "{text}"
        );
        let finishes: Vec<&str> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
            .collect();
        assert_eq!(finishes, ["stop"]);
        let usage: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c.get("usage").filter(|u| !u.is_null()))
            .collect();
        if include_usage {
            assert_eq!(usage.len(), 1, "{body}");
            assert_eq!(usage[0]["completion_tokens"], 3, "{body}");
        } else {
            assert!(usage.is_empty(), "{body}");
        }
        // `stream_options` is OpenAI's: it never reaches Mistral, which would refuse it.
        assert!(
            m.stats()
                .last_request
                .unwrap()
                .get("stream_options")
                .is_none()
        );
    }
    gw.stop().await;
}

/// A weather tool, the model's earlier call of it with an Anthropic id, and its result.
fn foreign_tool_history() -> Value {
    json!({
        "model": "smart",
        "tool_choice": "required",
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}],
        "messages": [
            {"role": "user", "content": "Weather in Paris, then in Lyon?"},
            {"role": "assistant", "content": null, "tool_calls": [{
                "id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "18°C"},
            {"role": "user", "content": "And Lyon?"}
        ]
    })
}

#[actix_web::test]
async fn mistral_tool_calls_round_trip_with_a_history_from_another_provider() {
    let m = keyed_mock().await;
    // Sent as it is, the Anthropic id fails Mistral's pattern.
    let (status, refusal) = direct(
        &m,
        "/mistral/v1/chat/completions",
        &json!({
        "model": MISTRAL_MODEL, "messages": foreign_tool_history()["messages"]}),
    )
    .await;
    assert_eq!(status, 422, "{refusal}");
    assert_eq!(refusal["message"]["detail"][0]["loc"][5], "id", "{refusal}");

    let gw = gateway(&m, "mistral").await;
    let res = gw.chat(foreign_tool_history()).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls", "{body}");
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(arguments.get("location").is_some(), "{arguments}");
    let new_id = call["id"].as_str().unwrap().to_owned();

    let sent = m.stats().last_request.unwrap();
    assert_eq!(sent["tool_choice"], "any");
    let mapped = sent["messages"][1]["tool_calls"][0]["id"].as_str().unwrap();
    assert_eq!(sent["messages"][2]["tool_call_id"], mapped);
    assert_eq!(sent["messages"][2]["name"], "get_weather");

    // The next turn answers Mistral's own call: its id goes back unchanged.
    let mut next = foreign_tool_history();
    let messages = next["messages"].as_array_mut().unwrap();
    messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
    messages.push(json!({"role": "tool", "tool_call_id": new_id, "content": "15°C"}));
    let res = gw.chat(next).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "stop", "{body}");
    let sent = m.stats().last_request.unwrap();
    assert_eq!(
        sent["messages"][1]["tool_calls"][0]["id"], mapped,
        "stable across turns"
    );
    assert_eq!(sent["messages"][5]["tool_call_id"], new_id);
    gw.stop().await;
}

#[actix_web::test]
async fn mistral_embeddings_and_errors() {
    let m = keyed_mock().await;
    let gw = gateway(&m, "mistral").await;
    let res = gw
        .client
        .post(format!("{}/v1/embeddings", gw.url))
        .json(&json!({"model": "embed", "input": ["a", "bb"], "encoding_format": "base64"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert!(body["data"][1]["embedding"].is_string(), "{body}");
    let sent = m.stats().last_request.unwrap();
    assert_eq!(
        sent,
        json!({"model": "mistral-embed", "input": ["a", "bb"]})
    );

    let res = gw
        .chat(json!({"model": "mistral/mock-error-400",
                     "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    // Mistral's refusal reaches the client in OpenAI's shape, with Mistral's message.
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("Bad request"), "{body}");
    gw.stop().await;
}

#[actix_web::test]
async fn cohere_chat_is_translated_and_answered_in_openai_shape() {
    let m = keyed_mock().await;
    let request = json!({"model": "smart", "top_p": 0.5, "stop": "END", "max_tokens": 64,
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Hello there"}]});
    // As OpenAI's body, Cohere refuses it: `top_p` and `stop` are not its names.
    let (status, refusal) = direct(&m, "/v2/chat", &request).await;
    assert_eq!(status, 400, "{refusal}");

    let gw = gateway(&m, "cohere").await;
    let res = gw.chat(request).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], COHERE_MODEL);
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("Mock Cohere answer to: Hello there"),
        "{content}"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // Billed units: the mock's `tokens` add 64 for Cohere's prompt template.
    let usage = &body["usage"];
    assert_eq!(usage["completion_tokens"], 3, "{body}");

    let stats = m.stats();
    assert_eq!(stats.by_route["cohere.chat"], 2);
    assert_eq!(stats.last_headers["authorization"], "Bearer k");
    assert_eq!(stats.last_path_and_query.as_deref(), Some("/v2/chat"));
    let sent = stats.last_request.unwrap();
    assert_eq!(sent["p"], 0.5);
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    assert_eq!(sent["max_tokens"], 64);
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    gw.stop().await;
}

#[actix_web::test]
async fn cohere_streams_become_openai_chunks() {
    let m = keyed_mock().await;
    let gw = gateway(&m, "cohere").await;
    for include_usage in [true, false] {
        let res = gw
            .chat(json!({"model": "smart", "stream": true,
                         "stream_options": {"include_usage": include_usage},
                         "messages": [{"role": "user", "content": "Tell me a story"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body = res.text().await.unwrap();
        let chunks = chunks(&body);
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert!(text.starts_with("Mock Cohere answer to: Tell me"), "{text}");
        let finishes: Vec<&str> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
            .collect();
        assert_eq!(finishes, ["stop"]);
        let usage: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c.get("usage").filter(|u| !u.is_null()))
            .collect();
        assert_eq!(usage.len(), usize::from(include_usage), "{body}");
        assert!(
            m.stats()
                .last_request
                .unwrap()
                .get("stream_options")
                .is_none()
        );
    }
    gw.stop().await;
}

#[actix_web::test]
async fn cohere_tool_calls_round_trip_with_a_history_from_another_provider() {
    let m = keyed_mock().await;
    // As OpenAI's body, Cohere refuses `tool_choice: "required"`.
    let mut raw = foreign_tool_history();
    raw["model"] = json!(COHERE_MODEL);
    let (status, refusal) = direct(&m, "/v2/chat", &raw).await;
    assert_eq!(status, 400, "{refusal}");

    let gw = gateway(&m, "cohere").await;
    let res = gw.chat(foreign_tool_history()).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls", "{body}");
    let message = &body["choices"][0]["message"];
    // The tool plan is the text of an answer calling tools.
    assert_eq!(message["content"], "I will call get_weather.");
    let call = &message["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let new_id = call["id"].as_str().unwrap().to_owned();
    assert!(new_id.starts_with("get_weather_"), "{new_id}");
    let sent = m.stats().last_request.unwrap();
    assert_eq!(sent["tool_choice"], "REQUIRED");
    // Cohere takes any id: the Anthropic one goes as it is, in the call and in its result.
    assert_eq!(
        sent["messages"][1]["tool_calls"][0]["id"],
        "toolu_01A09q90qw90lq917835lq9"
    );
    assert_eq!(
        sent["messages"][2]["tool_call_id"],
        "toolu_01A09q90qw90lq917835lq9"
    );

    // The next turn sends Cohere's call back with its plan, and its result.
    let mut next = foreign_tool_history();
    next.as_object_mut().unwrap().remove("tool_choice");
    let messages = next["messages"].as_array_mut().unwrap();
    messages
        .push(json!({"role": "assistant", "content": message["content"], "tool_calls": [call]}));
    messages.push(json!({"role": "tool", "tool_call_id": new_id, "content": "15°C"}));
    let res = gw.chat(next).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "stop", "{body}");
    let sent = m.stats().last_request.unwrap();
    assert_eq!(sent["messages"][4]["tool_plan"], "I will call get_weather.");
    assert!(sent["messages"][4].get("content").is_none(), "{sent}");
    assert_eq!(sent["messages"][5]["tool_call_id"], new_id);

    // A streamed call comes back as OpenAI tool call deltas.
    let mut streamed = foreign_tool_history();
    streamed["stream"] = json!(true);
    let body = gw
        .chat(streamed)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let chunks = chunks(&body);
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    let arguments: Value = serde_json::from_str(&arguments).unwrap();
    assert!(arguments.get("location").is_some(), "{body}");
    let finishes: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finishes, ["tool_calls"]);
    gw.stop().await;
}

#[actix_web::test]
async fn cohere_embeddings_and_errors() {
    let m = keyed_mock().await;
    let gw = gateway(&m, "cohere").await;
    let res = gw
        .client
        .post(format!("{}/v1/embeddings", gw.url))
        .json(&json!({"model": "embed", "input": ["a", "bb"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert!(body["data"][1]["embedding"].is_array(), "{body}");
    assert_eq!(body["usage"]["prompt_tokens"], 2, "{body}");
    let sent = m.stats().last_request.unwrap();
    assert_eq!(
        sent,
        json!({"model": "embed-v4.0", "texts": ["a", "bb"], "input_type": "search_document",
               "embedding_types": ["float"]})
    );

    let res = gw
        .chat(json!({"model": "cohere/mock-error-400",
                     "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Bad request"),
        "{body}"
    );
    gw.stop().await;
}
