//! OpenAI's endpoints that only OpenAI-format providers serve: the legacy `/v1/completions`
//! (whole and streamed), `/v1/moderations`, `/v1/images/generations` and
//! `/v1/audio/transcriptions` (a `multipart/form-data` body), forwarded with `model` swapped and
//! metered from the usage they report; other kinds of provider refuse them with a 400 that says
//! why.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use std::sync::Arc;

use common::{ALL_KINDS, TestGateway, events, mock};
use serde_json::{Value, json};
use tollgate_common::{KeyContext, ModelAllowList};
use tollgate_gateway::pipeline::Authenticate;
use tollgate_gateway::{GatewayError, Stages};
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

/// The 400 a non-OpenAI target gives an endpoint only OpenAI-format targets serve.
async fn assert_served_only_by_openai_format(res: reqwest::Response, path: &str) {
    assert_eq!(res.status(), 400, "{path}");
    let error: Value = res.json().await.unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "`{path}` is served only by OpenAI-format providers"
        )),
        "{error}"
    );
    assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
}

/// The error of a refused request: its status, `param` and `code`.
async fn refusal(res: reqwest::Response) -> (u16, Value, Value) {
    let status = res.status().as_u16();
    let error: Value = res.json().await.unwrap();
    (
        status,
        error["error"]["param"].clone(),
        error["error"]["code"].clone(),
    )
}

#[actix_web::test]
async fn images_are_forwarded_as_they_came_and_metered_from_their_token_usage() {
    let m = mock(MockConfig::default()).await;
    let gw = TestGateway::with_every_kind(&m).await;
    let res = post(
        &gw,
        "/v1/images/generations",
        json!({
        "model": "openai/gpt-image-1", "prompt": "a red fox in snow", "n": 2,
        "size": "1024x1536", "quality": "high"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2, "{body}");
    assert!(
        body["data"][0]["b64_json"]
            .as_str()
            .unwrap()
            .starts_with("iVBOR"),
        "{body}"
    );
    assert_eq!(body["usage"]["output_tokens"], 2 * 6240, "{body}");
    assert_eq!(body["quality"], "high", "{body}");
    let stats = m.stats();
    assert_eq!(stats.by_route["openai.images"], 1);
    assert_eq!(
        stats.last_path_and_query.as_deref(),
        Some("/v1/images/generations")
    );
    let sent = stats.last_request.unwrap();
    assert_eq!(sent["model"], "gpt-image-1");
    assert_eq!(sent["n"], 2);

    // dall-e reports no usage: a request without token usage, not an error.
    let res = post(&gw, "/v1/images/generations",
        json!({"model": "openai/dall-e-3", "prompt": "a lighthouse", "response_format": "b64_json"})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("usage").is_none(), "{body}");
    assert!(body["data"][0]["b64_json"].is_string(), "{body}");

    // Azure: the deployment's URL with the api-version.
    let res = post(
        &gw,
        "/v1/images/generations",
        json!({"model": "azure/image-prod", "prompt": "a red fox"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let stats = m.stats();
    assert_eq!(stats.by_route["azure.images"], 1);
    assert_eq!(
        stats.last_path_and_query.as_deref(),
        Some("/openai/deployments/image-prod/images/generations?api-version=2024-10-21")
    );
    assert_eq!(stats.last_headers["api-key"], "k");

    let metered = r#"tollgate_tokens_total{direction="output",target="openai/gpt-image-1"} 12480"#;
    let metrics = gw.metrics_once_containing(metered).await;
    assert!(metrics.contains(metered), "{metrics}");
    let unpriced = r#"tollgate_requests_total{endpoint="image_generations",status="200",target="openai/dall-e-3"} 1"#;
    let metrics = gw.metrics_once_containing(unpriced).await;
    assert!(metrics.contains(unpriced), "{metrics}");
    assert!(
        !metrics.contains(r#"tollgate_tokens_total{direction="output",target="openai/dall-e-3"}"#),
        "{metrics}"
    );
}

#[actix_web::test]
async fn image_requests_budgets_cannot_bound_are_refused_naming_the_field() {
    let m = mock(MockConfig::default()).await;
    let gw = TestGateway::with_every_kind(&m).await;
    let cases = [
        (json!({"prompt": "x"}), "model"),
        (json!({"model": "openai/gpt-image-1"}), "prompt"),
        (
            json!({"model": "openai/gpt-image-1", "prompt": ["x"]}),
            "prompt",
        ),
        (
            json!({"model": "openai/gpt-image-1", "prompt": "x", "n": 0}),
            "n",
        ),
        (
            json!({"model": "openai/gpt-image-1", "prompt": "x", "n": 11}),
            "n",
        ),
        (
            json!({"model": "openai/gpt-image-1", "prompt": "x", "n": 1.5}),
            "n",
        ),
        (
            json!({"model": "openai/gpt-image-1", "prompt": "x", "n": "2"}),
            "n",
        ),
        (
            json!({"model": "openai/gpt-image-1", "prompt": "x", "n": -1}),
            "n",
        ),
        (
            json!({"model": "openai/gpt-image-1", "prompt": "x", "stream": true}),
            "stream",
        ),
        (
            json!({"model": "openai/gpt-image-1", "prompt": "x", "stream": "yes"}),
            "stream",
        ),
    ];
    for (body, param) in cases {
        let (status, got, code) =
            refusal(post(&gw, "/v1/images/generations", body.clone()).await).await;
        assert_eq!((status, got.as_str()), (400, Some(param)), "{body}");
        assert_eq!(code, "invalid_value", "{body}");
    }
    let res = post(
        &gw,
        "/v1/images/generations",
        json!({"model": "openai/gpt-image-1", "prompt": "x", "n": 10, "stream": false}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        m.stats().by_route["openai.images"],
        1,
        "only the valid request went upstream"
    );

    let res = post(
        &gw,
        "/v1/images/generations",
        json!({"model": "gemini/gemini-2.5-flash-image", "prompt": "x"}),
    )
    .await;
    assert_served_only_by_openai_format(res, "/v1/images/generations").await;
    let res = post(
        &gw,
        "/v1/images/generations",
        json!({"model": "smart", "prompt": "x"}),
    )
    .await;
    assert_served_only_by_openai_format(res, "/v1/images/generations").await;
    assert_eq!(m.stats().requests, 1);
}

/// A `multipart/form-data` body of `parts` (name, optional file name, value) and its
/// Content-Type, written by hand so that tests can write it wrong too.
fn form(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    const BOUNDARY: &str = "----tollgate-test-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, file_name, value) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match file_name {
            Some(file_name) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\n\
                     Content-Type: audio/wav\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// Some bytes standing for a WAV file, with CRLFs and dashes inside.
const AUDIO: &[u8] = b"RIFF\x24\0\0\0WAVEfmt \r\n--\r\n\0\x01\x02\xff\xfe data";

async fn post_form(gw: &TestGateway, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    gw.client
        .post(format!("{}/v1/audio/transcriptions", gw.url))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn transcriptions_are_forwarded_part_for_part_and_metered_when_in_tokens() {
    let m = mock(MockConfig::default()).await;
    let gw = TestGateway::with_every_kind(&m).await;
    let (content_type, body) = form(&[
        ("file", Some("hello.wav"), AUDIO),
        ("model", None, b"openai/gpt-4o-transcribe"),
        ("language", None, b"en"),
        ("include[]", None, b"logprobs"),
    ]);
    let res = post_form(&gw, &content_type, body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let answer: Value = res.json().await.unwrap();
    let text = answer["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("hello.wav, {} bytes", AUDIO.len())),
        "{answer}"
    );
    assert_eq!(answer["usage"]["type"], "tokens", "{answer}");
    let stats = m.stats();
    assert_eq!(stats.by_route["openai.transcriptions"], 1);
    assert_eq!(
        stats.last_path_and_query.as_deref(),
        Some("/v1/audio/transcriptions")
    );
    assert!(stats.last_headers["content-type"].starts_with("multipart/form-data; boundary="));
    let sent = stats.last_request.unwrap();
    assert_eq!(sent["models"], json!(["gpt-4o-transcribe"]));
    assert_eq!(
        sent["parts"],
        json!(["file", "model", "language", "include[]"])
    );
    assert_eq!(sent["file"]["filename"], "hello.wav");
    assert_eq!(sent["file"]["content_type"], "audio/wav");
    assert_eq!(sent["file"]["bytes"], AUDIO.len());
    assert_eq!(sent["language"], "en");
    let output = answer["usage"]["output_tokens"].as_u64().unwrap();
    let metered = format!(
        r#"tollgate_tokens_total{{direction="output",target="openai/gpt-4o-transcribe"}} {output}"#
    );
    let metrics = gw.metrics_once_containing(&metered).await;
    assert!(metrics.contains(&metered), "{metrics}");

    // whisper-1 reports seconds, and text answers nothing: requests without token usage.
    let (content_type, body) = form(&[
        ("model", None, b"openai/whisper-1"),
        ("file", Some("a.wav"), AUDIO),
    ]);
    let res = post_form(&gw, &content_type, body).await;
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["usage"]["type"], "duration", "{answer}");
    let (content_type, body) = form(&[
        ("model", None, b"openai/whisper-1"),
        ("file", Some("a.wav"), AUDIO),
        ("response_format", None, b"text"),
    ]);
    let res = post_form(&gw, &content_type, body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    let text = res.text().await.unwrap();
    assert!(text.starts_with("A transcript of a.wav"), "{text}");
    let unpriced = r#"tollgate_requests_total{endpoint="audio_transcriptions",status="200",target="openai/whisper-1"} 2"#;
    let metrics = gw.metrics_once_containing(unpriced).await;
    assert!(metrics.contains(unpriced), "{metrics}");
    assert!(
        !metrics.contains(r#"tollgate_tokens_total{direction="output",target="openai/whisper-1"}"#),
        "{metrics}"
    );

    // Azure: the deployment's URL with the api-version.
    let (content_type, body) = form(&[
        ("model", None, b"azure/transcribe-prod"),
        ("file", Some("a.wav"), AUDIO),
    ]);
    let res = post_form(&gw, &content_type, body).await;
    assert_eq!(res.status(), 200);
    let stats = m.stats();
    assert_eq!(stats.by_route["azure.transcriptions"], 1);
    assert_eq!(
        stats.last_path_and_query.as_deref(),
        Some("/openai/deployments/transcribe-prod/audio/transcriptions?api-version=2024-10-21")
    );
    assert_eq!(
        stats.last_request.unwrap()["models"],
        json!(["transcribe-prod"])
    );
}

#[actix_web::test]
async fn the_last_model_part_is_the_one_routed_and_the_only_one_sent() {
    let m = mock(MockConfig::default()).await;
    let gw = TestGateway::with_every_kind(&m).await;
    // The last names an OpenAI target: that is where it goes, and all the upstream sees.
    let (content_type, body) = form(&[
        ("model", None, b"gemini/gemini-2.5-flash"),
        ("file", Some("a.wav"), AUDIO),
        ("model", None, b"openai/gpt-4o-transcribe"),
    ]);
    let res = post_form(&gw, &content_type, body).await;
    assert_eq!(res.status(), 200);
    let sent = m.stats().last_request.unwrap();
    assert_eq!(sent["models"], json!(["gpt-4o-transcribe"]));
    assert_eq!(sent["parts"], json!(["file", "model"]));
    // The last names a Gemini target: refused, and nothing reaches the OpenAI one.
    let (content_type, body) = form(&[
        ("model", None, b"openai/gpt-4o-transcribe"),
        ("file", Some("a.wav"), AUDIO),
        ("model", None, b"gemini/gemini-2.5-flash"),
    ]);
    let res = post_form(&gw, &content_type, body).await;
    assert_served_only_by_openai_format(res, "/v1/audio/transcriptions").await;
    assert_eq!(m.stats().requests, 1);
}

/// Every caller holds a key that opens `openai/whisper-1` only.
struct WhisperOnlyKey;

#[async_trait::async_trait]
impl Authenticate for WhisperOnlyKey {
    async fn authenticate(
        &self,
        _headers: &actix_web::http::header::HeaderMap,
    ) -> Result<Arc<KeyContext>, GatewayError> {
        Ok(Arc::new(KeyContext {
            models: ModelAllowList::new(vec!["openai/whisper-1".into()]),
            ..KeyContext::default()
        }))
    }
}

#[actix_web::test]
async fn the_model_part_the_key_is_checked_against_is_the_one_sent() {
    let m = mock(MockConfig::default()).await;
    let stages = Stages {
        authenticate: Arc::new(WhisperOnlyKey),
        ..Stages::default()
    };
    let gw = TestGateway::start_with(ALL_KINDS, &[("m", &m)], stages).await;
    // An allowed model first cannot carry a forbidden one after it.
    let (content_type, body) = form(&[
        ("model", None, b"openai/whisper-1"),
        ("file", Some("a.wav"), AUDIO),
        ("model", None, b"openai/gpt-4o-transcribe"),
    ]);
    let (status, param, code) = refusal(post_form(&gw, &content_type, body).await).await;
    assert_eq!(
        (status, param.as_str(), code.as_str()),
        (403, Some("model"), Some("model_not_allowed"))
    );
    assert_eq!(m.stats().requests, 0);
    // Nor a forbidden one before it: the allowed one is checked and is all that is sent.
    let (content_type, body) = form(&[
        ("model", None, b"openai/gpt-4o-transcribe"),
        ("file", Some("a.wav"), AUDIO),
        ("model", None, b"openai/whisper-1"),
    ]);
    let res = post_form(&gw, &content_type, body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        m.stats().last_request.unwrap()["models"],
        json!(["whisper-1"])
    );
}

#[actix_web::test]
async fn transcription_bodies_that_are_wrong_are_refused_with_a_400_naming_the_problem() {
    let m = mock(MockConfig::default()).await;
    let gw = TestGateway::with_every_kind(&m).await;
    let model = ("model", None, &b"openai/whisper-1"[..]);
    let file = ("file", Some("a.wav"), AUDIO);
    for (parts, param) in [
        (vec![file], "model"),
        (vec![model], "file"),
        (vec![("model", None, &b""[..]), file], "model"),
        (vec![model, file, ("stream", None, b"true")], "stream"),
        (vec![model, file, ("stream", None, b"sometimes")], "stream"),
        (vec![("model", None, &b"\xff\xfe"[..]), file], "model"),
    ] {
        let (content_type, body) = form(&parts);
        let (status, got, code) = refusal(post_form(&gw, &content_type, body).await).await;
        assert_eq!((status, got.as_str()), (400, Some(param)), "{parts:?}");
        assert_eq!(code, "invalid_value");
    }

    let (content_type, body) = form(&[model, file]);
    let long_name = "n".repeat(10_000);
    let (_, huge_name) = form(&[model, file, (long_name.as_str(), None, b"x")]);
    let cut = body[..body.len() - 20].to_vec();
    let malformed: Vec<(String, Vec<u8>)> = vec![
        (content_type.clone(), cut),
        (content_type.clone(), b"not a form at all".to_vec()),
        (content_type.clone(), Vec::new()),
        (content_type.clone(), huge_name),
        (
            "application/json".into(),
            br#"{"model":"openai/whisper-1","file":"x"}"#.to_vec(),
        ),
        ("multipart/form-data".into(), body.clone()),
        ("text/plain".into(), body.clone()),
        ("multipart/form-data; boundary=other".into(), body.clone()),
    ];
    for (content_type, body) in malformed {
        let res = post_form(&gw, &content_type, body).await;
        let (status, _, code) = refusal(res).await;
        assert_eq!(
            (status, code.as_str()),
            (400, Some("invalid_multipart")),
            "{content_type}"
        );
    }
    // No Content-Type at all.
    let res = gw
        .client
        .post(format!("{}/v1/audio/transcriptions", gw.url))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(res).await.2, "invalid_multipart");

    // Over the body limit: 413 before any parsing.
    let big = vec![0_u8; 70 * 1024];
    let (content_type, body) = form(&[model, ("file", Some("big.wav"), &big)]);
    let (status, _, code) = refusal(post_form(&gw, &content_type, body).await).await;
    assert_eq!((status, code.as_str()), (413, Some("request_too_large")));

    let (content_type, body) = form(&[("model", None, b"smart"), file]);
    let res = post_form(&gw, &content_type, body).await;
    assert_served_only_by_openai_format(res, "/v1/audio/transcriptions").await;
    assert_eq!(m.stats().requests, 0, "nothing wrong reached the provider");
}
