//! The other ways in, driven by their official SDKs against the real binary: Anthropic's
//! Python SDK on `/v1/messages` and the OpenAI SDK's `responses` on `/v1/responses`, each to
//! an OpenAI, an Anthropic, a Gemini and a Bedrock target, and to an OpenAI target serving the
//! Responses API (where Responses clients are forwarded), and metered like the chat route.

use tollgate_mock_provider::{MockConfig, MockServer};

use super::{
    Gateway, PROVIDER_KEY, config_for, run_python, scratch_dir, signup, wait_for_usage_rows,
    write_config,
};

/// Model calls each SDK script makes per model (count_tokens and refusals not included).
const ANTHROPIC_CALLS_PER_MODEL: usize = 7;
const RESPONSES_CALLS_PER_MODEL: usize = 6;

/// OpenAI (translated for Responses clients), Anthropic (first in `smart`), Gemini, Bedrock
/// and OpenAI serving the Responses API (forwarded) targets.
const MODELS: [&str; 5] = [
    "openai/gpt-4o",
    "smart",
    "flash",
    "rock",
    "openai-responses/gpt-4o",
];

/// The usual providers of [`config_for`], Bedrock signing with the key the mock checks, its
/// model priced (Bedrock has no catalog prices), and an OpenAI provider serving the Responses
/// API.
fn config_with_bedrock(mock: &MockServer) -> String {
    let bedrock = format!(
        r#"  openai-responses: {{ kind: openai, api_base: "{url}/v1", api_key: "${{E2E_OPENAI_KEY}}", responses_api: true }}
  bedrock: {{ kind: bedrock, api_base: "{url}", region: us-east-1, aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }}
models:
  - name: rock
    targets: [ {{ provider: bedrock, model: "anthropic.claude-3-haiku-20240307-v1:0" }} ]
"#,
        url = mock.url()
    );
    let prices = r#"prices:
  - { family: bedrock, model: "anthropic.claude-3-haiku-20240307-v1:0", input: "0.25", output: "1.25", as_of: 2026-01-01 }
"#;
    format!(
        "{}{prices}",
        config_for(mock).replacen("models:\n", &bedrock, 1)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_and_responses_sdks_through_every_provider() {
    let mock = MockServer::start(MockConfig {
        chunks: 8,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let dir = scratch_dir("ingress");
    let config = dir.join("tollgate.yaml");
    std::fs::write(&config, config_with_bedrock(&mock)).unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let data_dir = data.display().to_string();
    let gateway = Gateway::start(&config, &[PROVIDER_KEY, ("TOLLGATE_DATA_DIR", &data_dir)]);
    let tenant = signup(&gateway.url, "ingress@example.com").await;

    for auth in ["--x-api-key", "--auth-header"] {
        let mut args = vec![gateway.url.clone(), "--api-key".into(), tenant.key.clone()];
        if auth == "--auth-header" {
            args.push(auth.into());
        }
        args.extend(["--request-id".into(), format!("anthropic{auth}")]);
        args.extend(MODELS.iter().map(|m| (*m).to_owned()));
        let output = run_python("anthropic_sdk.py", args).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "Anthropic SDK checks failed ({auth}):\n{stdout}\n{stderr}"
        );
        assert!(
            stdout.contains("ok tools rock") && stdout.contains("ok errors"),
            "{stdout}"
        );
    }

    let mut args = vec![
        format!("{}/v1", gateway.url),
        "--api-key".into(),
        tenant.key.clone(),
        "--request-id".into(),
        "responses".into(),
    ];
    args.extend(MODELS.iter().map(|m| (*m).to_owned()));
    let output = run_python("responses_sdk.py", args).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "Responses SDK checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok errors"), "{stdout}");
    // The Responses target was sent the SDK's own calls; the others' were translated.
    assert_eq!(
        mock.stats().by_route["openai.responses"],
        RESPONSES_CALLS_PER_MODEL as u64,
        "{stdout}"
    );

    // Every answer is in the ledger, as on the chat route.
    let database = format!("sqlite://{}", data.join("tollgate.db").display());
    let answered = ANTHROPIC_CALLS_PER_MODEL * MODELS.len();
    for prefix in ["anthropic--x-api-key", "anthropic--auth-header"] {
        let rows = wait_for_usage_rows(&database, prefix, answered).await;
        let paid = rows.iter().filter(|(_, cost, _)| *cost > 0).count();
        assert!(
            paid >= answered,
            "{prefix}: {paid} of {} rows paid",
            rows.len()
        );
    }
    let answered = RESPONSES_CALLS_PER_MODEL * MODELS.len();
    let rows = wait_for_usage_rows(&database, "responses", answered).await;
    let paid = rows.iter().filter(|(_, cost, _)| *cost > 0).count();
    assert!(
        paid >= answered,
        "responses: {paid} of {} rows paid",
        rows.len()
    );

    drop(gateway);
    mock.stop().await;
}

/// Counting tokens calls no model, but each count is a request against the key's limits: a
/// key cannot count without bound, and what it counted is not taken from its tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counting_tokens_counts_against_the_request_limit() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let config = write_config(
        &scratch_dir("count-limits"),
        &mock,
        "limits:\n  default: { rpm: 2, tpm: 1000000 }\n",
    );
    let gateway = Gateway::start(&config, &[PROVIDER_KEY]);
    let tenant = signup(&gateway.url, "count-limits@example.com").await;
    let client = reqwest::Client::new();
    let count = || {
        client
            .post(format!("{}/v1/messages/count_tokens", gateway.url))
            .header("x-api-key", &tenant.key)
            .header("anthropic-version", "2023-06-01")
            .json(&serde_json::json!({
                "model": "smart",
                "messages": [{"role": "user", "content": "How many tokens is this?"}],
            }))
            .send()
    };
    for remaining in ["1", "0"] {
        let res = count().await.unwrap();
        assert_eq!(res.status(), 200);
        let header = |name: &str| {
            res.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            header("anthropic-ratelimit-requests-remaining").as_deref(),
            Some(remaining)
        );
        assert_eq!(
            header("anthropic-ratelimit-requests-limit").as_deref(),
            Some("2")
        );
        assert_eq!(
            header("anthropic-ratelimit-tokens-remaining").as_deref(),
            Some("1000000"),
            "counting takes nothing from the token limit"
        );
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(body["input_tokens"].as_u64().unwrap() > 0, "{body}");
    }
    let res = count().await.unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    // The same limit holds for model calls.
    let res = client
        .post(format!("{}/v1/messages", gateway.url))
        .header("x-api-key", &tenant.key)
        .json(&serde_json::json!({
            "model": "smart",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    drop(gateway);
    mock.stop().await;
}
