//! A budget is an upper bound whatever the request asks for: against a provider that uses
//! every output token it is allowed (all `n` choices at `max_tokens`, or the model's maximum
//! when the request sets none, or what the gateway sends Anthropic by default), concurrent
//! requests never settle above the budget.

use serde_json::{Value, json};
use tollgate_mock_provider::{MockConfig, MockServer};

use crate::{
    Gateway, fresh_postgres_database, replica_env, scratch_dir, set_monthly_budget, signup,
    wait_for_usage_rows, write_config,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_use_every_token_they_may_never_overrun_a_budget() {
    let mock = MockServer::start(MockConfig {
        latency_ms: 20,
        // gpt-4o-mini's maximum output, which the catalog knows too.
        exhaust_output: Some(16_384),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let config = write_config(
        &scratch_dir("budget-bound"),
        &mock,
        "limits:\n  default: { rpm: 100000, tpm: 100000000 }\n",
    );
    let database = fresh_postgres_database();
    let gateway = Gateway::start(&config, &replica_env(&database));
    let tenant = signup(&gateway.url, "bound@example.com").await;
    let client = reqwest::Client::new();
    set_monthly_budget(&gateway.url, &tenant.access_token, "0.05").await;

    // Each costs well under the budget alone, so only the reservation can keep the sum in.
    let kinds = [
        // Three choices at 500 tokens each: $0.015 of output at gpt-4o's price.
        json!({"model": "openai/gpt-4o", "n": 3, "max_tokens": 500}),
        // No limit: the model's maximum, 16,384 tokens ($0.0098).
        json!({"model": "openai/gpt-4o-mini"}),
        // No limit at Anthropic: the gateway sends max_tokens 4,096 ($0.0164).
        json!({"model": "anthropic/claude-3-5-haiku"}),
        // Four choices at max_completion_tokens 3,000 ($0.0072).
        json!({"model": "openai/gpt-4o-mini", "n": 4, "max_completion_tokens": 3000}),
    ];
    let mut calls = Vec::new();
    for i in 0..20 {
        let mut body = kinds[i % kinds.len()].clone();
        body["messages"] = json!([{"role": "user", "content": "Write as much as you may."}]);
        let (client, url, key) = (client.clone(), gateway.url.clone(), tenant.key.clone());
        calls.push(tokio::spawn(async move {
            let res = client
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(key)
                .header("x-request-id", format!("bound-{i}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let (mut answered, mut refused) = (0, 0);
    for call in calls {
        let (status, body) = call.await.unwrap();
        match status {
            200 => answered += 1,
            429 => {
                assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(
        answered > 0 && refused > 0,
        "{answered} answered, {refused} refused"
    );

    let rows = wait_for_usage_rows(&database, "bound-", 20).await;
    assert_eq!(rows.len(), 20);
    let spent: i64 = rows.iter().map(|(_, cost, _)| cost).sum();
    let beyond: i64 = rows
        .iter()
        .map(|(_, cost, reserved)| (cost - reserved).max(0))
        .sum();
    assert_eq!(beyond, 0, "an answer cost more than was reserved for it");
    assert!(
        spent <= 50_000_000_000,
        "spent {spent} picodollars of a $0.05 budget"
    );
    eprintln!(
        "budget $0.05: {answered} answered, {refused} refused, spent ${}",
        spent as f64 / 1e12
    );
    drop(gateway);
    mock.stop().await;
}
