//! AWS Bedrock end to end: OpenAI requests through the gateway to the mock's Converse routes,
//! each signed with SigV4 by the gateway and checked by the mock's own verifier.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use common::{AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, TestGateway, events, mock};
use serde_json::{Value, json};
use tollgate_mock_provider::{MockConfig, MockServer};

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

/// A gateway whose `smart` group is one Bedrock target on `m`, signing with `secret`.
async fn gateway(m: &MockServer, secret: &str, session_token: Option<&str>) -> TestGateway {
    let token = session_token.map_or(String::new(), |t| format!(", aws_session_token: \"{t}\""));
    let yaml = format!(
        r#"
providers:
  bedrock:
    {{ kind: bedrock, api_base: "{{mock:m}}", region: eu-west-3,
      aws_access_key_id: {AWS_ACCESS_KEY_ID}, aws_secret_access_key: "{secret}"{token} }}
models:
  - name: smart
    retry: {{ attempts: 1 }}
    targets: [ {{ provider: bedrock, model: "{MODEL}" }} ]
"#
    );
    TestGateway::start(&yaml, &[("m", m)]).await
}

#[actix_web::test]
async fn a_chat_completion_reaches_bedrock_signed_and_comes_back_in_openai_shape() {
    let m = mock(MockConfig::default()).await;
    let gw = gateway(&m, AWS_SECRET_ACCESS_KEY, None).await;
    let res = gw
        .chat(json!({"model": "smart", "max_tokens": 64, "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello there"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("Mock Bedrock answer to: Hello there"),
        "{content}"
    );
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    let stats = m.stats();
    assert_eq!(stats.by_route["bedrock.converse"], 1);
    assert_eq!(
        stats.last_path_and_query.as_deref(),
        Some("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse")
    );
    let authorization = &stats.last_headers["authorization"];
    assert!(
        authorization.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/" // then the date
        ) && authorization.contains("/eu-west-3/bedrock/aws4_request"),
        "{authorization}"
    );
    let sent = stats.last_request.unwrap();
    assert_eq!(sent["system"], json!([{"text": "Be brief."}]));
    assert_eq!(sent["inferenceConfig"], json!({"maxTokens": 64}));
    gw.stop().await;
}

#[actix_web::test]
async fn a_stream_and_tool_calls_come_back_as_openai_chunks() {
    let m = mock(MockConfig {
        chunks: 4,
        aws_session_token: Some("FQoGZXIvYXdzEXAMPLE".into()),
        ..MockConfig::default()
    })
    .await;
    let gw = gateway(&m, AWS_SECRET_ACCESS_KEY, Some("FQoGZXIvYXdzEXAMPLE")).await;
    let res = gw
        .chat(json!({"model": "smart", "stream": true,
                     "stream_options": {"include_usage": true},
                     "messages": [{"role": "user", "content": "Tell me a story"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let body = res.text().await.unwrap();
    let payloads = events(&body);
    assert_eq!(
        payloads.last().map(String::as_str),
        Some("[DONE]"),
        "{body}"
    );
    let chunks: Vec<Value> = payloads[..payloads.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(
        text.starts_with("Mock Bedrock answer to: Tell me"),
        "{text}"
    );
    let finishes: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finishes, ["stop"]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 4, "{body}");
    assert_eq!(m.stats().by_route["bedrock.converse_stream"], 1);
    assert_eq!(m.stats().streams_completed, 1);

    // A tool offered and forced: the call comes back as OpenAI tool call deltas.
    let res = gw
        .chat(json!({"model": "smart", "stream": true,
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required",
            "messages": [{"role": "user", "content": "Weather in Paris?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let mut arguments = String::new();
    let mut name = None;
    for event in events(&body).iter().filter(|e| *e != "[DONE]") {
        let chunk: Value = serde_json::from_str(event).unwrap();
        if let Some(call) = chunk["choices"][0]["delta"]["tool_calls"].get(0) {
            if let Some(n) = call["function"]["name"].as_str() {
                name = Some(n.to_owned());
            }
            arguments.push_str(call["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(name.as_deref(), Some("get_weather"), "{body}");
    let arguments: Value = serde_json::from_str(&arguments).unwrap();
    assert_eq!(arguments, json!({"city": "test"}));
    assert!(body.contains("\"finish_reason\":\"tool_calls\""), "{body}");
    gw.stop().await;
}

#[actix_web::test]
async fn wrong_credentials_are_refused_by_bedrock_and_said_so_without_the_secret() {
    let m = mock(MockConfig::default()).await;
    let gw = gateway(&m, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYWRONGKEY", None).await;
    let res = gw.chat(common::hello("smart")).send().await.unwrap();
    assert_eq!(res.status(), 502);
    let text = res.text().await.unwrap();
    assert!(text.contains("credentials"), "{text}");
    assert!(!text.contains("WRONGKEY"), "{text}");
    // The mock refused the signature itself, as Bedrock would.
    assert_eq!(m.stats().by_route["bedrock.converse"], 1);

    // A session token the mock does not expect to be missing is refused the same way.
    m.set_config(MockConfig {
        aws_session_token: Some("expected-token".into()),
        ..MockConfig::default()
    });
    let gw_no_token = gateway(&m, AWS_SECRET_ACCESS_KEY, None).await;
    let res = gw_no_token
        .chat(common::hello("smart"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    gw.stop().await;
    gw_no_token.stop().await;
}

#[actix_web::test]
async fn bedrock_throttling_is_a_rate_limit_of_the_target() {
    let m = mock(MockConfig {
        fail_first: 1,
        failure_status: 429,
        ..MockConfig::default()
    })
    .await;
    let gw = gateway(&m, AWS_SECRET_ACCESS_KEY, None).await;
    let res = gw.chat(common::hello("smart")).send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    // One attempt, throttled: the client hears of a rate limit, not of the provider's account.
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("rate limiting"), "{text}");
    assert!(!text.contains("org-mockdeployment42"), "{text}");
    // The next one goes through.
    let res = gw.chat(common::hello("smart")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    gw.stop().await;
}
