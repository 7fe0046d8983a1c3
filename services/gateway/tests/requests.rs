//! What clients send and get back: bad input answered with the right 4xx, translation to
//! every provider, the model list, health and metrics.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use common::{TestGateway, hello, mock};
use serde_json::{Value, json};
use tollgate_mock_provider::MockConfig;

async fn error_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    for field in ["message", "type", "param", "code"] {
        assert!(body["error"].get(field).is_some(), "no {field} in {body}");
    }
    (status, body)
}

#[actix_web::test]
async fn bad_input_gets_a_clear_4xx_in_openai_format() {
    let m = mock(MockConfig::default()).await;
    let gw = TestGateway::with_every_kind(&m).await;
    let url = format!("{}/v1/chat/completions", gw.url);
    let post = |body: String| {
        gw.client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let (status, body) = error_of(post("{\"model\": ".into()).await.unwrap()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );

    let (status, body) = error_of(
        post(
            r#"{"model":"smart","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#.into(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (400, Some("stream"))
    );

    let (status, body) =
        error_of(post(r#"{"model":42,"messages":[]}"#.into()).await.unwrap()).await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (400, Some("model"))
    );

    let (status, body) = error_of(post(r#"{"model":"smart"}"#.into()).await.unwrap()).await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (400, Some("messages"))
    );

    let (status, body) = error_of(post(hello("no-such-model").to_string()).await.unwrap()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("model_not_found"))
    );

    let big =
        json!({"model": "smart", "messages": [{"role": "user", "content": "x".repeat(70_000)}]});
    let (status, body) = error_of(post(big.to_string()).await.unwrap()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("request_too_large"))
    );

    // A nested field the translation needs, with the wrong type: the path is named.
    let (status, body) = error_of(
        post(r#"{"model":"smart","messages":[{"role":"user","content":7}]}"#.into())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["param"]
            .as_str()
            .unwrap()
            .starts_with("messages[0]"),
        "{body}"
    );

    // Something Anthropic cannot do.
    let mut two = hello("smart");
    two["n"] = json!(2);
    let (status, _) = error_of(post(two.to_string()).await.unwrap()).await;
    assert_eq!(status, 400);

    // Embeddings on a provider without them.
    let res = gw
        .client
        .post(format!("{}/v1/embeddings", gw.url))
        .json(&json!({"model": "anthropic/claude-sonnet-4-20250514", "input": "hi"}))
        .send()
        .await
        .unwrap();
    let (status, _) = error_of(res).await;
    assert_eq!(status, 400);

    let (status, _) = error_of(gw.client.get(&url).send().await.unwrap()).await;
    assert_eq!(status, 405);
    let (status, _) = error_of(gw.get("/v2/nothing").await).await;
    assert_eq!(status, 404);
    assert_eq!(m.stats().requests, 0, "no bad request reached a provider");
}

#[actix_web::test]
async fn every_provider_answers_in_openai_shape_with_usage() {
    let m = mock(MockConfig::default()).await;
    let gw = TestGateway::with_every_kind(&m).await;
    for (model, route) in [
        ("openai/gpt-4o", "openai.chat"),
        ("azure/prod-gpt4o", "azure.chat"),
        ("anthropic/claude-sonnet-4-20250514", "anthropic.messages"),
        ("gemini/gemini-2.5-flash", "gemini.generate"),
    ] {
        m.reset_stats();
        let mut request = hello(model);
        request["messages"] = json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello there"}
        ]);
        let res = gw.chat(request).send().await.unwrap();
        assert_eq!(res.status(), 200, "{model}");
        assert!(res.headers().contains_key("x-request-id"));
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["object"], "chat.completion", "{model}");
        assert_eq!(body["choices"][0]["message"]["role"], "assistant");
        assert!(
            body["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .contains("Hello there")
        );
        assert!(
            body["usage"]["prompt_tokens"].as_u64().unwrap() > 0,
            "{model}: {body}"
        );
        assert_eq!(m.stats().by_route.get(route), Some(&1), "{model}");
    }
    // The system prompt went where each provider wants it.
    gw.chat(
        json!({"model": "anthropic/claude-sonnet-4-20250514", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}),
    )
    .send()
    .await
    .unwrap();
    let sent = m.stats().last_request.unwrap();
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(sent["messages"][0]["role"], "user");
    gw.chat(json!({"model": "gemini/gemini-2.5-flash", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    let sent = m.stats().last_request.unwrap();
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be brief.");
}

#[actix_web::test]
async fn tool_calls_round_trip_through_every_provider() {
    let m = mock(MockConfig::default()).await;
    let gw = TestGateway::with_every_kind(&m).await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    for model in [
        "openai/gpt-4o",
        "anthropic/claude-sonnet-4-20250514",
        "gemini/gemini-2.5-flash",
    ] {
        let res = gw
            .chat(json!({"model": model, "tools": tools,
                "messages": [{"role": "user", "content": "Weather in Paris?"}]}))
            .send()
            .await
            .unwrap();
        let body: Value = res.json().await.unwrap();
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{model}: {body}");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args["city"], "test");

        // Send the tool's result back: the provider gets it in its own shape and answers.
        let followup = json!({"model": model, "tools": tools, "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "{\"temp_c\": 21}"}
        ]});
        let res = gw.chat(followup).send().await.unwrap();
        assert_eq!(res.status(), 200, "{model}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["finish_reason"], "stop",
            "{model}: {body}"
        );
    }
}

#[actix_web::test]
async fn embeddings_from_openai_azure_and_gemini() {
    let m = mock(MockConfig::default()).await;
    let gw = TestGateway::with_every_kind(&m).await;
    for model in [
        "openai/text-embedding-3-small",
        "azure/embed-deploy",
        "gemini/gemini-embedding-001",
    ] {
        let res = gw
            .client
            .post(format!("{}/v1/embeddings", gw.url))
            .json(&json!({"model": model, "input": ["first", "second"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{model}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["object"], "list");
        assert_eq!(body["data"].as_array().unwrap().len(), 2, "{model}");
        assert_eq!(body["data"][1]["index"], 1);
        assert!(!body["data"][0]["embedding"].as_array().unwrap().is_empty());
    }
}

#[actix_web::test]
async fn model_list_health_and_metrics() {
    let m = mock(MockConfig::default()).await;
    let gw = TestGateway::with_every_kind(&m).await;
    let models: Value = gw.get("/v1/models").await.json().await.unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"smart"));
    assert!(ids.contains(&"openai/gpt-4o"));
    assert_eq!(models["data"][0]["object"], "model");

    assert_eq!(gw.get("/health/live").await.status(), 200);
    assert_eq!(gw.get("/health/ready").await.status(), 200);

    gw.chat_text(hello("openai/gpt-4o")).await;
    let metrics = gw.metrics_once_containing("tollgate_tokens_total").await;
    assert!(metrics.contains(r#"tollgate_requests_total{endpoint="chat_completions",status="200",target="openai/gpt-4o"} 1"#), "{metrics}");
    assert!(metrics.contains("tollgate_tokens_total"), "{metrics}");
    assert!(metrics.contains("tollgate_request_duration_seconds_bucket"));
}

#[actix_web::test]
async fn usage_is_counted_when_the_upstream_reports_none() {
    let m = mock(MockConfig {
        omit_usage: true,
        ..MockConfig::default()
    })
    .await;
    let gw = TestGateway::with_every_kind(&m).await;
    let mut request = hello("openai/gpt-4o");
    request["stream"] = json!(true);
    let body = gw.chat_text(request).await;
    assert!(body.ends_with("data: [DONE]\n\n"));
    let metrics = gw.metrics_once_containing(r#"direction="output""#).await;
    assert!(
        metrics.contains(r#"tollgate_tokens_total{direction="output",target="openai/gpt-4o"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"tollgate_tokens_total{direction="input",target="openai/gpt-4o"}"#),
        "{metrics}"
    );
}
