//! OpenAI's endpoints that only OpenAI-format providers serve: the legacy `/v1/completions`
//! (whole and streamed) and `/v1/moderations`, forwarded with `model` swapped and metered from
//! the usage they report; other kinds of provider refuse them with a 400 that says why.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use common::{TestGateway, events, mock};
use serde_json::{Value, json};
use tollgate_mock_provider::MockConfig;

async fn post(gw: &TestGateway, path: &str, body: Value) -> reqwest::Response {
    gw.client
        .post(format!("{}{path}", gw.url))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn legacy_completions_are_forwarded_whole_and_streamed_and_metered() {
    let m = mock(MockConfig::default()).await;
    let gw = TestGateway::with_every_kind(&m).await;
    let res = post(&gw, "/v1/completions",
        json!({"model": "openai/gpt-3.5-turbo-instruct", "prompt": "Say this is a test", "max_tokens": 20})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "text_completion", "{body}");
    assert!(
        body["choices"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Say this is a test")
    );
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let sent = m.stats().last_request.unwrap();
    assert_eq!(sent["model"], "gpt-3.5-turbo-instruct");
    assert_eq!(m.stats().by_route["openai.completions"], 1);

    let res = post(&gw, "/v1/completions",
        json!({"model": "openai/gpt-3.5-turbo-instruct", "prompt": "Tell me a story", "stream": true})).await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let sse = res.text().await.unwrap();
    assert!(sse.ends_with("data: [DONE]\n\n"), "{sse}");
    let mut text = String::new();
    for data in events(&sse) {
        let Ok(chunk) = serde_json::from_str::<Value>(&data) else {
            continue;
        };
        // The usage chunk the gateway asked for on the client's behalf is not passed on.
        assert!(chunk.get("usage").is_none(), "{sse}");
        text.push_str(chunk["choices"][0]["text"].as_str().unwrap_or_default());
    }
    assert!(text.contains("Tell me a story"), "{sse}");
    assert_eq!(
        m.stats().last_request.unwrap()["stream_options"]["include_usage"],
        true
    );
    let metered =
        r#"tollgate_tokens_total{direction="output",target="openai/gpt-3.5-turbo-instruct"}"#;
    let metrics = gw.metrics_once_containing(metered).await;
    assert!(metrics.contains(r#"tollgate_requests_total{endpoint="completions",status="200",target="openai/gpt-3.5-turbo-instruct"} 2"#), "{metrics}");
}

#[actix_web::test]
async fn moderations_are_forwarded_and_other_kinds_refuse_what_they_do_not_serve() {
    let m = mock(MockConfig::default()).await;
    let gw = TestGateway::with_every_kind(&m).await;
    let res = post(&gw, "/v1/moderations",
        json!({"model": "openai/omni-moderation-latest", "input": ["a calm day", "graphic violence"]})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["results"][0]["flagged"], false, "{body}");
    assert_eq!(body["results"][1]["categories"]["violence"], true, "{body}");

    for (path, body) in [
        ("/v1/completions", json!({"model": "smart", "prompt": "x"})),
        (
            "/v1/moderations",
            json!({"model": "gemini/gemini-2.5-flash", "input": "x"}),
        ),
    ] {
        let res = post(&gw, path, body).await;
        assert_eq!(res.status(), 400, "{path}");
        let error: Value = res.json().await.unwrap();
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("OpenAI-format providers"),
            "{error}"
        );
    }
    let res = post(
        &gw,
        "/v1/completions",
        json!({"model": "openai/gpt-3.5-turbo-instruct"}),
    )
    .await;
    let error: Value = res.json().await.unwrap();
    assert_eq!(error["error"]["param"], "prompt", "{error}");
}
