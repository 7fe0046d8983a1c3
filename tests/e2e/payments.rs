//! The money loop through the real binary and the local Stripe stand-in: sign up, add a card
//! through Checkout, use the gateway, report the hour to Stripe's meter (once, however often
//! it is reported), a failed payment refused with 402 once the grace period is over, served
//! again once paid; prepaid credit never overdrawn by concurrent requests, on one process or
//! two replicas; and webhooks that are not Stripe's refused.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::{Value, json};
use tollgate_mock_provider::{MockConfig, MockServer};
use tollgate_mock_stripe::{InvoiceSpec, MockStripe, MockStripeConfig};

use crate::{
    Gateway, REDIS_URL, TOLLGATE, fresh_postgres_database, graphql, scratch_dir, signup,
    write_billed_config,
};

async fn chat(gateway: &str, key: &str) -> (u16, Value) {
    chat_with(&reqwest::Client::new(), gateway, key).await
}

async fn chat_with(client: &reqwest::Client, gateway: &str, key: &str) -> (u16, Value) {
    let res = client
        .post(format!("{gateway}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "smart", "max_tokens": 16,
                      "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

/// A gateway on `config` with its own data directory `data`, `stripe` sending it webhooks.
fn start_billed(config: &Path, data: &Path, stripe: &MockStripe) -> Gateway {
    let data_env = data.display().to_string();
    let gateway = Gateway::start(config, &[("TOLLGATE_DATA_DIR", data_env.as_str())]);
    stripe.set_webhook_url(&format!("{}/billing/stripe/webhook", gateway.url));
    gateway
}

/// Starts a Stripe Checkout with the GraphQL `mutation` and completes it at `stripe`, as the
/// customer's browser would.
async fn complete_checkout(gateway: &str, access_token: &str, stripe: &MockStripe, mutation: &str) {
    let answer = graphql(gateway, Some(access_token), mutation).await;
    let url = answer["data"]["startCheckout"]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_owned();
    let session = url.rsplit('/').next().unwrap().to_owned();
    stripe.complete_checkout(&session).unwrap();
}

/// A decimal field of the billing page: `field` is its path in `query`'s answer under
/// `billing`.
async fn billing_usd(gateway: &str, access_token: &str, query: &str, field: &[&str]) -> Decimal {
    let answer = graphql(gateway, Some(access_token), query).await;
    let mut value = &answer["data"]["billing"];
    for name in field {
        value = &value[*name];
    }
    value.as_str().unwrap().parse().unwrap()
}

/// The organization's prepaid credit left.
async fn credit_usd(gateway: &str, access_token: &str) -> Decimal {
    billing_usd(
        gateway,
        access_token,
        "{ billing { creditUsd } }",
        &["creditUsd"],
    )
    .await
}

/// What the providers charged for the organization's requests this period.
async fn provider_cost_usd(gateway: &str, access_token: &str) -> Decimal {
    billing_usd(
        gateway,
        access_token,
        "{ billing { currentPeriod { providerCostUsd } } }",
        &["currentPeriod", "providerCostUsd"],
    )
    .await
}

/// The organization's requests in the ledger from a day ago to a day ahead.
async fn requests_around_now(gateway: &str, access_token: &str) -> i64 {
    let now = tollgate_common::now_ms();
    let totals = format!(
        "{{ usageTotals(input: {{from: {}, to: {}}}) {{ figures {{ requests }} }} }}",
        now - 86_400_000,
        now + 86_400_000
    );
    let usage = graphql(gateway, Some(access_token), &totals).await;
    usage["data"]["usageTotals"][0]["figures"]["requests"]
        .as_i64()
        .unwrap_or(0)
}

/// Two hours from now, RFC 3339: a time by which the current hour is complete and reportable.
fn two_hours_ahead() -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::hours(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// 200 concurrent requests spread over `gateways` until prepaid credit runs out: how many were
/// served and how many refused with 402 (at least one).
async fn two_hundred_at_once(gateways: &[String], key: &str) -> (i64, i64) {
    // One client, as an application would have: its pool opens the connections.
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (client, gateway, key) = (
            client.clone(),
            gateways[i % gateways.len()].clone(),
            key.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            chat_with(&client, &gateway, &key).await
        }));
    }
    let (mut served, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            (200, _) => served += 1,
            (402, body) => {
                assert_eq!(body["error"]["code"], "payment_required");
                refused += 1;
            }
            (status, body) => panic!("unexpected {status}: {body}"),
        }
    }
    assert!(refused > 0, "the credit should run out");
    (served, refused)
}

/// Polls `check` every 100 ms for up to 15 s.
async fn eventually<F: AsyncFn() -> bool>(what: &str, check: F) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn report(config: &Path, data: &Path, at: &str) -> String {
    report_with(config, &[("TOLLGATE_DATA_DIR", data.to_str().unwrap())], at)
}

/// `tollgate billing report --at AT` with `env` (where the database is).
fn report_with(config: &Path, env: &[(&str, &str)], at: &str) -> String {
    let mut command = Command::new(TOLLGATE);
    command
        .args(["billing", "report", "--at", at, "--config"])
        .arg(config)
        .env("TOLLGATE_LOG", "warn");
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_usage_meter_failed_payment_and_payment_again() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let stripe = MockStripe::start(MockStripeConfig::default())
        .await
        .unwrap();
    let dir = scratch_dir("payments");
    let data = dir.join("data");
    let config = write_billed_config(
        &dir,
        &mock,
        &stripe,
        r#"
  grace_days: 0
  free_tier: { monthly_usd: "0" }
  pay_as_you_go: { markup_percent: "20" }"#,
    );
    let gateway = start_billed(&config, &data, &stripe);
    let owner = signup(&gateway.url, "payer@example.com").await;

    // a card through Stripe Checkout
    complete_checkout(
        &gateway.url,
        &owner.access_token,
        &stripe,
        "mutation { startCheckout(purpose: PAYMENT_METHOD) { url } }",
    )
    .await;
    assert!(stripe.wait_for_webhooks(Duration::from_secs(10)).await);
    eventually("the card on the billing page", async || {
        let billing = graphql(
            &gateway.url,
            Some(&owner.access_token),
            "{ billing { enabled standing paymentMethod { brand last4 } } }",
        )
        .await;
        billing["data"]["billing"]["paymentMethod"]["last4"] == "4242"
    })
    .await;

    // usage through the gateway, all of it in the ledger before the hour is reported (usage
    // is shipped off the request path; a report taken before the last row lands would leave
    // it for the next one)
    for _ in 0..3 {
        assert_eq!(chat(&gateway.url, &owner.key).await.0, 200);
    }
    eventually("the requests in the ledger", async || {
        let log = graphql(
            &gateway.url,
            Some(&owner.access_token),
            "{ requests(first: 10) { items { eventId } } }",
        )
        .await;
        log["data"]["requests"]["items"]
            .as_array()
            .is_some_and(|items| items.len() == 3)
    })
    .await;
    let usage = graphql(
        &gateway.url,
        Some(&owner.access_token),
        "{ billing { currentPeriod { runningUsd } } }",
    )
    .await;
    assert_ne!(
        usage["data"]["billing"]["currentPeriod"]["runningUsd"], "0",
        "{usage}"
    );

    // the hour reported to Stripe's meter, with its stable identifier, once
    let later = two_hours_ahead();
    let printed = report(&config, &data, &later);
    assert!(printed.contains("reports written 1"), "{printed}");
    let customer_events = |stripe: &MockStripe| {
        stripe
            .meter_events()
            .into_iter()
            .filter(|e| e.identifier.starts_with("tg-"))
            .collect::<Vec<_>>()
    };
    eventually("the meter event at Stripe", async || {
        !customer_events(&stripe).is_empty()
    })
    .await;
    let events = customer_events(&stripe);
    assert_eq!(events.len(), 1);
    assert!(
        events[0].identifier.ends_with("-0"),
        "{}",
        events[0].identifier
    );
    assert!(events[0].value.parse::<i64>().unwrap() > 0);
    // the same hour again: nothing new is sent
    let printed = report(&config, &data, &later);
    assert!(printed.contains("reports written 0"), "{printed}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(customer_events(&stripe).len(), 1);

    // a failed payment: no grace here, so refused with 402 until it is paid
    let invoice = stripe
        .create_invoice(&InvoiceSpec {
            customer: events[0].customer.clone(),
            amount_due: 1_000,
            currency: None,
            subscription: None,
            description: None,
            period_start: None,
            period_end: None,
            draft: false,
        })
        .unwrap();
    let invoice_id = invoice["id"].as_str().unwrap().to_owned();
    stripe.fail_invoice_payment(&invoice_id).unwrap();
    eventually("402 after the failed payment", async || {
        let (status, body) = chat(&gateway.url, &owner.key).await;
        status == 402 && body["error"]["code"] == "payment_required"
    })
    .await;
    let billing = graphql(
        &gateway.url,
        Some(&owner.access_token),
        "{ billing { standing invoices { id status } } }",
    )
    .await;
    assert_eq!(billing["data"]["billing"]["standing"], "suspended");
    stripe.pay_invoice(&invoice_id).unwrap();
    eventually("served again once paid", async || {
        chat(&gateway.url, &owner.key).await.0 == 200
    })
    .await;
    let billing = graphql(
        &gateway.url,
        Some(&owner.access_token),
        "{ billing { standing invoices { id status } } }",
    )
    .await;
    assert_eq!(billing["data"]["billing"]["standing"], "good");
    assert_eq!(billing["data"]["billing"]["invoices"][0]["status"], "paid");

    // plans, by the operator: bring-your-own-key only where the deployment offers it
    let viewer = graphql(
        &gateway.url,
        Some(&owner.access_token),
        "{ viewer { organization { id } } }",
    )
    .await;
    let org = viewer["data"]["viewer"]["organization"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let plan = |plan: &str| {
        Command::new(TOLLGATE)
            .args(["billing", "plan", "--org", &org, plan, "--config"])
            .arg(&config)
            .env("TOLLGATE_DATA_DIR", &data)
            .output()
            .unwrap()
    };
    let refused = plan("byok");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("bring_your_own_key.enabled"));
    assert!(plan("payg").status.success());

    // deliveries that are not Stripe's
    let forged = tollgate_mock_stripe::sign("whsec_wrong", tollgate_common::now_ms() / 1000, "{}");
    let stale = tollgate_mock_stripe::sign(&stripe.webhook_secret(), 1_000, "{}");
    for signature in [forged, stale, "t=1,v1=zz".to_owned()] {
        let res = reqwest::Client::new()
            .post(format!("{}/billing/stripe/webhook", gateway.url))
            .header("stripe-signature", signature)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
    }
    drop(gateway);
}

/// Prepaid credit is a hard limit for an organization without a card: 200 concurrent requests
/// against $0.01 of credit spend at most the credit plus what admitted requests cost beyond
/// their reservations (nothing here: each is reserved at its worst case), and the balance
/// never goes below zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_usage_never_overdraws_prepaid_credit() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let stripe = MockStripe::start(MockStripeConfig::default())
        .await
        .unwrap();
    let dir = scratch_dir("credit");
    let data = dir.join("data");
    let config = write_billed_config(
        &dir,
        &mock,
        &stripe,
        r#"
  free_tier: { monthly_usd: "0" }
  min_top_up_usd: "0.01""#,
    );
    let gateway = start_billed(&config, &data, &stripe);
    let owner = signup(&gateway.url, "prepaid@example.com").await;

    // without a card or credit, and no free allowance: 402 at once
    let (status, body) = chat(&gateway.url, &owner.key).await;
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["error"]["code"], "payment_required");

    // $0.01 of credit through Checkout
    complete_checkout(
        &gateway.url,
        &owner.access_token,
        &stripe,
        "mutation { startCheckout(purpose: CREDIT, amountUsd: \"0.01\") { url } }",
    )
    .await;
    eventually("the credit on the billing page", async || {
        let billing = graphql(
            &gateway.url,
            Some(&owner.access_token),
            "{ billing { creditUsd } }",
        )
        .await;
        billing["data"]["billing"]["creditUsd"] == "0.01"
    })
    .await;
    eventually("served on credit", async || {
        chat(&gateway.url, &owner.key).await.0 == 200
    })
    .await;

    // 200 at once; one more was served above
    let (served, refused) =
        two_hundred_at_once(std::slice::from_ref(&gateway.url), &owner.key).await;
    let served = served + 1;

    // what was spent: within the credit
    eventually("every request in the ledger", async || {
        let requests = requests_around_now(&gateway.url, &owner.access_token).await;
        // one ledger row per request, answered or refused
        requests >= 202
    })
    .await;
    let spent = provider_cost_usd(&gateway.url, &owner.access_token).await;
    assert!(
        spent <= "0.01".parse().unwrap(),
        "spent {spent} of $0.01 credit ({served} served, {refused} refused)"
    );
    assert!(served > 1);
    eprintln!("prepaid credit $0.01: {served} served, {refused} refused, ${spent} spent");

    // the hour reported: credit covers it all, the balance stays at or above zero
    let later = two_hours_ahead();
    report(&config, &data, &later);
    let left = credit_usd(&gateway.url, &owner.access_token).await;
    assert!(left >= Decimal::ZERO, "{left}");
    assert!(
        stripe.meter_events().is_empty(),
        "nothing beyond the credit is metered"
    );
    drop(gateway);
}

/// The same bound over two replicas sharing PostgreSQL and Redis: the allowance is one counter
/// in Redis, so 200 concurrent requests spread over both spend at most the $0.01 of credit,
/// and the credit bought through one replica is honoured by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_usage_on_two_replicas_never_overdraws_prepaid_credit() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let stripe = MockStripe::start(MockStripeConfig::default())
        .await
        .unwrap();
    let dir = scratch_dir("credit-replicas");
    let config = write_billed_config(
        &dir,
        &mock,
        &stripe,
        r#"
  free_tier: { monthly_usd: "0" }
  min_top_up_usd: "0.01""#,
    );
    let database = fresh_postgres_database();
    let shared = [
        ("TOLLGATE_DATABASE_URL", database.as_str()),
        ("TOLLGATE_REDIS_URL", REDIS_URL),
    ];
    let replicas = [
        Gateway::start(&config, &shared),
        Gateway::start(&config, &shared),
    ];
    stripe.set_webhook_url(&format!("{}/billing/stripe/webhook", replicas[0].url));
    let owner = signup(&replicas[0].url, "prepaid-replicas@example.com").await;

    // without a card or credit, and no free allowance: 402 at once, at either replica
    for replica in &replicas {
        let (status, body) = chat(&replica.url, &owner.key).await;
        assert_eq!(status, 402, "{body}");
        assert_eq!(body["error"]["code"], "payment_required");
    }

    // $0.01 of credit through Checkout at one replica, seen by both
    complete_checkout(
        &replicas[1].url,
        &owner.access_token,
        &stripe,
        "mutation { startCheckout(purpose: CREDIT, amountUsd: \"0.01\") { url } }",
    )
    .await;
    eventually("the credit on the billing page", async || {
        let billing = graphql(
            &replicas[1].url,
            Some(&owner.access_token),
            "{ billing { creditUsd } }",
        )
        .await;
        billing["data"]["billing"]["creditUsd"] == "0.01"
    })
    .await;
    // (every attempt is a ledger row, counted to know when all have arrived)
    let attempts = std::cell::Cell::new(0);
    for replica in &replicas {
        eventually("served on credit at each replica", async || {
            attempts.set(attempts.get() + 1);
            chat(&replica.url, &owner.key).await.0 == 200
        })
        .await;
    }

    // 200 at once, half at each replica; one more was served by each above
    let urls = [replicas[0].url.clone(), replicas[1].url.clone()];
    let (served, refused) = two_hundred_at_once(&urls, &owner.key).await;
    let served = served + 2;

    // what was spent: within the credit
    eventually("every request in the ledger", async || {
        let requests = requests_around_now(&replicas[0].url, &owner.access_token).await;
        // one ledger row per request, answered or refused
        requests >= 2 + attempts.get() + 200
    })
    .await;
    let spent = provider_cost_usd(&replicas[1].url, &owner.access_token).await;
    assert!(
        spent <= "0.01".parse().unwrap(),
        "spent {spent} of $0.01 credit ({served} served, {refused} refused)"
    );
    assert!(served > 2, "{served} served");
    eprintln!(
        "prepaid credit $0.01 on two replicas: {served} served, {refused} refused, ${spent} spent"
    );

    // the hour reported: credit covers it all, the balance stays at or above zero
    let later = two_hours_ahead();
    let data = dir.join("report-data");
    let mut env = shared.to_vec();
    env.push(("TOLLGATE_DATA_DIR", data.to_str().unwrap()));
    report_with(&config, &env, &later);
    let left = credit_usd(&replicas[0].url, &owner.access_token).await;
    assert!(left >= Decimal::ZERO, "{left}");
    // no markup here: the credit drew exactly what was spent
    assert_eq!(left, "0.01".parse::<Decimal>().unwrap() - spent);
    assert!(
        stripe.meter_events().is_empty(),
        "nothing beyond the credit is metered"
    );
    drop(replicas);
    mock.stop().await;
}

/// Bring your own key through the real binary: an organization on that plan is served with its
/// own provider key (the provider here accepts no other), is told clearly when it has none or
/// the provider refuses it (without tripping the target for everyone else), and is billed the
/// platform fee per answered request instead of the provider's cost, metered to Stripe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_provider_keys_are_used_and_billed_as_a_platform_fee() {
    const OWN_KEY: &str = "sk-org-own-5678";
    let mock = MockServer::start(MockConfig {
        require_key: Some(OWN_KEY.into()),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let stripe = MockStripe::start(MockStripeConfig::default())
        .await
        .unwrap();
    let dir = scratch_dir("byok");
    let data = dir.join("data");
    let config = write_billed_config(
        &dir,
        &mock,
        &stripe,
        r#"
  free_tier: { monthly_usd: "0" }
  bring_your_own_key:
    enabled: true
    per_request_usd: "0.001"
    encryption_key: "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=""#,
    );
    let gateway = start_billed(&config, &data, &stripe);
    let owner = signup(&gateway.url, "byok@example.com").await;
    let set_key = |key: &str| {
        format!("mutation {{ setProviderKey(provider: \"openai\", apiKey: \"{key}\") {{ hint }} }}")
    };

    let answer = graphql(&gateway.url, Some(&owner.access_token), &set_key(OWN_KEY)).await;
    assert_eq!(
        answer["data"]["setProviderKey"]["hint"], "…5678",
        "{answer}"
    );
    let to_own_keys = "mutation { setBillingPlan(plan: BRING_YOUR_OWN_KEY) }";
    // the platform fee is charged to a card: none yet
    let answer = graphql(&gateway.url, Some(&owner.access_token), to_own_keys).await;
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{answer}"
    );
    complete_checkout(
        &gateway.url,
        &owner.access_token,
        &stripe,
        "mutation { startCheckout(purpose: PAYMENT_METHOD) { url } }",
    )
    .await;
    eventually("the card", async || {
        let answer = graphql(&gateway.url, Some(&owner.access_token), to_own_keys).await;
        answer["data"]["setBillingPlan"] == true
    })
    .await;

    // served with the organization's key: the provider takes no other
    let mut served = 0;
    for _ in 0..3 {
        let (status, body) = chat(&gateway.url, &owner.key).await;
        assert_eq!(status, 200, "{body}");
        served += 1;
    }

    // a key the provider refuses: the organization is told, the target stays usable
    graphql(
        &gateway.url,
        Some(&owner.access_token),
        &set_key("sk-org-wrong-0000"),
    )
    .await;
    for _ in 0..8 {
        let (status, body) = chat(&gateway.url, &owner.key).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "provider_key_rejected");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(!message.contains("sk-org-wrong"), "{message}");
    }
    graphql(&gateway.url, Some(&owner.access_token), &set_key(OWN_KEY)).await;
    let (status, body) = chat(&gateway.url, &owner.key).await;
    assert_eq!(
        status, 200,
        "the target was not tripped by one organization's key: {body}"
    );
    served += 1;

    // no key for the provider: refused, the deployment's key is not used instead
    graphql(
        &gateway.url,
        Some(&owner.access_token),
        "mutation { deleteProviderKey(provider: \"openai\") }",
    )
    .await;
    let (status, body) = chat(&gateway.url, &owner.key).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "provider_key_missing");

    // billed per answered request, not at the provider's cost
    let expected = Decimal::new(served, 3);
    eventually("the platform fee on the billing page", async || {
        let billing = graphql(
            &gateway.url,
            Some(&owner.access_token),
            "{ billing { plan currentPeriod { runningUsd providerCostUsd } } }",
        )
        .await;
        let period = &billing["data"]["billing"]["currentPeriod"];
        let running: Decimal = period["runningUsd"]
            .as_str()
            .unwrap_or("0")
            .parse()
            .unwrap();
        let cost: Decimal = period["providerCostUsd"]
            .as_str()
            .unwrap_or("0")
            .parse()
            .unwrap();
        running == expected && cost > Decimal::ZERO
    })
    .await;

    // the hour metered at the fee: $0.001 a request is 1,000 micro-USD
    let later = two_hours_ahead();
    let printed = report(&config, &data, &later);
    assert!(printed.contains("reports written 1"), "{printed}");
    eventually("the meter event at Stripe", async || {
        stripe
            .meter_events()
            .iter()
            .any(|e| e.identifier.starts_with("tg-"))
    })
    .await;
    let metered: Vec<String> = stripe
        .meter_events()
        .into_iter()
        .filter(|e| e.identifier.starts_with("tg-"))
        .map(|e| e.value)
        .collect();
    assert_eq!(metered, vec![(served * 1000).to_string()]);
    drop(gateway);
}
