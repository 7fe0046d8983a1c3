//! The Responses API route, over real TCP: whole responses and typed event streams in the shapes
//! OpenAI's reference gives, function calls where the request offers functions, and refusals of
//! what a server keeping nothing cannot answer.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use common::{named_events, post_json};
use serde_json::{Value, json};
use tollgate_mock_provider::{MockConfig, MockServer};

const RESPONSES: &str = "/v1/responses";
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

fn weather_tool() -> Value {
    json!([{"type": "function", "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])
}

#[actix_web::test]
async fn a_response_object_and_its_stream_of_typed_events() {
    let mock = keyed().await;
    let request = json!({"model": "gpt-4.1", "input": "Hello there", "store": false,
                         "instructions": "Be brief."});
    let res = post_json(mock.addr(), RESPONSES, KEY, &request).await;
    assert_eq!(res.status, 200);
    let v = res.json();
    assert!(v["id"].as_str().unwrap().starts_with("resp_"), "{v}");
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "gpt-4.1");
    assert_eq!(v["store"], false);
    assert_eq!(v["instructions"], "Be brief.");
    assert!(v["created_at"].as_u64().unwrap() > 0);
    let message = &v["output"][0];
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    let text = message["content"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("Mock OpenAI answer to: Hello there"),
        "{v}"
    );
    assert_eq!(v["usage"]["output_tokens"], 3);
    assert_eq!(
        v["usage"]["total_tokens"],
        v["usage"]["input_tokens"].as_u64().unwrap() + 3
    );

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let res = post_json(mock.addr(), RESPONSES, KEY, &streamed).await;
    assert_eq!(res.status, 200);
    let events = named_events(&res.text());
    let kinds: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], i as u64);
    }
    let deltas: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"].as_str())
        .collect();
    assert_eq!(events[7].1["text"], deltas.as_str());
    assert_eq!(events[0].1["response"]["status"], "in_progress");
    let completed = &events[10].1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(
        completed["output"][0]["content"][0]["text"],
        deltas.as_str()
    );
    assert_eq!(completed["usage"]["output_tokens"], 3);
    assert_eq!(mock.stats().by_route["openai.responses"], 2);
    assert_eq!(mock.stats().last_path_and_query.as_deref(), Some(RESPONSES));
    mock.stop().await;
}

#[actix_web::test]
async fn offered_functions_are_called_until_their_output_comes_back() {
    let mock = keyed().await;
    let request = json!({"model": "gpt-4.1", "tools": weather_tool(),
                         "input": [{"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]}]});
    let v = post_json(mock.addr(), RESPONSES, KEY, &request)
        .await
        .json();
    let call = &v["output"][0];
    assert_eq!(call["type"], "function_call", "{v}");
    assert_eq!(call["name"], "get_weather");
    assert!(call["call_id"].as_str().unwrap().starts_with("call_"));
    assert!(call["id"].as_str().unwrap().starts_with("fc_"));
    assert_eq!(call["arguments"], r#"{"city":"test"}"#);
    assert_eq!(v["tools"][0]["name"], "get_weather");

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let res = post_json(mock.addr(), RESPONSES, KEY, &streamed).await;
    let events = named_events(&res.text());
    let arguments: String = events
        .iter()
        .filter(|(name, _)| name == "response.function_call_arguments.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, r#"{"city":"test"}"#);
    let done = &events.last().unwrap().1["response"]["output"][0];
    assert_eq!(done["type"], "function_call");
    assert_eq!(done["arguments"], arguments.as_str());

    let answered = json!({"model": "gpt-4.1", "tools": weather_tool(), "input": [
        {"role": "user", "content": "Weather?"},
        call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "21C"},
    ]});
    let v = post_json(mock.addr(), RESPONSES, KEY, &answered)
        .await
        .json();
    assert_eq!(v["output"][0]["type"], "message", "{v}");
    let declined = json!({"model": "gpt-4.1", "tools": weather_tool(), "tool_choice": "none",
                          "input": "Weather?"});
    let v = post_json(mock.addr(), RESPONSES, KEY, &declined)
        .await
        .json();
    assert_eq!(v["output"][0]["type"], "message", "{v}");
    mock.stop().await;
}

#[actix_web::test]
async fn a_bad_key_or_a_previous_response_is_refused() {
    let mock = keyed().await;
    let request = json!({"model": "gpt-4.1", "input": "hi"});
    let res = post_json(mock.addr(), RESPONSES, &[], &request).await;
    assert_eq!(res.status, 401);
    let mut follow_up = request.clone();
    follow_up["previous_response_id"] = json!("resp_123");
    let res = post_json(mock.addr(), RESPONSES, KEY, &follow_up).await;
    assert_eq!(res.status, 400);
    let error = res.json();
    assert_eq!(error["error"]["param"], "previous_response_id");
    assert_eq!(error["error"]["code"], "previous_response_not_found");
    mock.stop().await;
}
