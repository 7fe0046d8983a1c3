//! Webhook delivery to a receiver on a real socket: the event shape, the signature checked with
//! an HMAC computed here, retries, giving up, duplicate and out-of-order delivery, filters.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use std::time::Duration;

use common::{Receiver, Stripe, control, start_with, verify_signature};
use serde_json::{Value, json};
use tollgate_mock_stripe::{MockStripeConfig, WebhookEndpoint, sign};

fn config(receiver: &Receiver) -> MockStripeConfig {
    MockStripeConfig {
        webhook_url: Some(receiver.url()),
        webhook_secret: "whsec_test_secret".into(),
        webhook_retry_base_ms: 20,
        ..MockStripeConfig::default()
    }
}

#[tokio::test]
async fn events_arrive_signed_as_stripe_signs_them() {
    let receiver = Receiver::start(&[]).await;
    let mock = start_with(config(&receiver)).await;
    let stripe = Stripe::new(&mock);
    let created = stripe
        .post_idempotent("/v1/customers", &[("email", "hook@acme.test")], "idem-7")
        .await;
    let request_id = created.header("request-id").unwrap().to_owned();
    let customer = created.ok();

    let got = receiver.wait_for(1).await;
    let delivery = &got[0];
    assert_eq!(
        delivery.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let header = delivery.header("stripe-signature").unwrap();
    assert!(header.starts_with("t="), "{header}");
    assert!(verify_signature(
        header,
        &delivery.body,
        "whsec_test_secret"
    ));
    assert!(!verify_signature(header, &delivery.body, "whsec_other"));
    assert!(!verify_signature(
        header,
        &delivery.body.replace("hook@", "evil@"),
        "whsec_test_secret"
    ));
    let t: i64 = header
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - t).abs() < 60, "signed at {t}, now {now}");

    let event = delivery.event();
    assert!(event["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(event["object"], "event");
    assert_eq!(event["api_version"], "2024-06-20");
    assert_eq!(event["type"], "customer.created");
    assert_eq!(event["livemode"], false);
    assert_eq!(event["pending_webhooks"], 1);
    assert_eq!(event["data"]["object"], customer);
    assert_eq!(
        event["request"],
        json!({"id": request_id, "idempotency_key": "idem-7"})
    );
    // The same event through the API.
    let fetched = stripe
        .get(
            &format!("/v1/events/{}", event["id"].as_str().unwrap()),
            &[],
        )
        .await
        .ok();
    assert_eq!(fetched, event);

    // The exported helper signs the same way.
    assert_eq!(sign("whsec_test_secret", t, &delivery.body), header);
    assert!(mock.wait_for_webhooks(Duration::from_secs(5)).await);
    let recorded = mock.webhook_deliveries();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].status, Some(200));
    assert_eq!(recorded[0].body, delivery.body);
}

#[tokio::test]
async fn failed_deliveries_are_retried_until_the_receiver_succeeds() {
    let receiver = Receiver::start(&[500, 503]).await;
    let mock = start_with(config(&receiver)).await;
    let event = mock.emit_event("invoice.paid", &json!({"id": "in_x", "object": "invoice"}));
    let id = event["id"].as_str().unwrap();

    let got = receiver.wait_for(3).await;
    assert!(mock.wait_for_webhooks(Duration::from_secs(5)).await);
    assert!(got.iter().all(|r| r.event()["id"] == id));
    assert!(got.iter().all(|r| verify_signature(
        r.header("stripe-signature").unwrap(),
        &r.body,
        "whsec_test_secret"
    )));
    let attempts: Vec<(u32, Option<u16>, bool)> = mock
        .webhook_deliveries()
        .iter()
        .map(|d| (d.attempt, d.status, d.succeeded))
        .collect();
    assert_eq!(
        attempts,
        [
            (1, Some(500), false),
            (2, Some(503), false),
            (3, Some(200), true)
        ]
    );
    // Nothing more once delivered.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_tried_the_configured_number_of_times() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let mock = start_with(MockStripeConfig {
        webhook_url: Some(url),
        webhook_attempts: 3,
        webhook_retry_base_ms: 10,
        ..MockStripeConfig::default()
    })
    .await;
    mock.emit_event(
        "customer.updated",
        &json!({"id": "cus_x", "object": "customer"}),
    );
    assert!(mock.wait_for_webhooks(Duration::from_secs(10)).await);
    let deliveries = mock.webhook_deliveries();
    assert_eq!(deliveries.len(), 3);
    assert!(
        deliveries
            .iter()
            .all(|d| d.status.is_none() && d.error.is_some() && !d.succeeded)
    );
}

#[tokio::test]
async fn held_events_are_delivered_in_a_chosen_order_and_again() {
    let receiver = Receiver::start(&[]).await;
    let mock = start_with(config(&receiver)).await;
    let stripe = Stripe::new(&mock);
    mock.hold_webhooks(true);
    let customer = stripe.customer("order@acme.test").await;
    stripe
        .post(&format!("/v1/customers/{customer}"), &[("name", "Renamed")])
        .await
        .ok();
    let held = mock.held_events();
    assert_eq!(held.len(), 2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(receiver.received().is_empty());

    // Out of order: the update before the creation.
    let (status, _) = control(
        &mock,
        "/_mock/webhooks/deliver",
        &json!({"events": [held[1], held[0]]}),
    )
    .await;
    assert_eq!(status, 200);
    receiver.wait_for(2).await;
    assert_eq!(
        receiver.event_types(),
        ["customer.updated", "customer.created"]
    );

    // A duplicate delivery of the same event.
    mock.redeliver(&held[0]).unwrap();
    receiver.wait_for(3).await;
    assert_eq!(
        receiver.event_ids(),
        [held[1].clone(), held[0].clone(), held[0].clone()]
    );

    // Released holding: new events flow again.
    mock.release_webhooks();
    assert!(mock.held_events().is_empty());
    stripe.customer("next@acme.test").await;
    receiver.wait_for(4).await;
    assert_eq!(receiver.event_types()[3], "customer.created");

    assert!(mock.redeliver("evt_unknown").is_err());
}

#[tokio::test]
async fn only_enabled_event_types_are_delivered() {
    let receiver = Receiver::start(&[]).await;
    let mock = start_with(MockStripeConfig {
        enabled_events: vec!["checkout.session.completed".into()],
        ..config(&receiver)
    })
    .await;
    let stripe = Stripe::new(&mock);
    let customer = stripe.customer("filter@acme.test").await;
    stripe
        .completed_checkout(
            &mock,
            "setup",
            &customer,
            &[
                ("payment_method_types[]", "card"),
                ("success_url", "https://app.test/ok"),
            ],
        )
        .await;
    receiver.wait_for(1).await;
    assert!(mock.wait_for_webhooks(Duration::from_secs(5)).await);
    assert_eq!(receiver.event_types(), ["checkout.session.completed"]);
    let event: Value = receiver.received()[0].event();
    assert_eq!(event["data"]["object"]["status"], "complete");
    assert_eq!(event["request"]["id"], Value::Null);
    // Other events were made all the same, with no webhook pending.
    let attached = mock
        .events_of_type("payment_method.attached")
        .pop()
        .unwrap();
    assert_eq!(attached["pending_webhooks"], 0);

    // A new endpoint and secret take effect for the next events.
    let second = Receiver::start(&[]).await;
    mock.set_webhook_endpoint(Some(WebhookEndpoint {
        url: second.url(),
        secret: "whsec_rotated".into(),
        enabled_events: vec!["*".into()],
    }));
    stripe.customer("after@acme.test").await;
    let got = second.wait_for(1).await;
    assert!(verify_signature(
        got[0].header("stripe-signature").unwrap(),
        &got[0].body,
        "whsec_rotated"
    ));
}
