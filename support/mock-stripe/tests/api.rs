//! The Stripe API as a form-encoding client sees it: authentication, errors, customers and
//! idempotency, Checkout, the portal, meters and meter events, prices, subscriptions, invoices,
//! payment methods, and failure injection.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use std::time::Duration;

use common::{Stripe, control, hour_start, start, start_with_customer};
use serde_json::{Value, json};
use tollgate_mock_stripe::{InvoiceSpec, Outage};

#[tokio::test]
async fn a_missing_or_wrong_key_is_a_401_with_stripes_error_body() {
    let mock = start().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let missing = http
        .get(format!("{}/v1/customers", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 401);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API key")
    );

    let wrong = Stripe::with_key(&mock, "sk_test_wrongkey1234")
        .get("/v1/customers", &[])
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.error_type(), "invalid_request_error");
    assert!(wrong.error_message().contains("sk_test_****1234"));

    // HTTP basic auth with the key as user name, as curl -u sends it.
    let basic = http
        .get(format!("{}/v1/customers", mock.url()))
        .basic_auth(mock.api_key(), Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status().as_u16(), 200);
}

#[tokio::test]
async fn customers_are_created_retrieved_updated_and_listed() {
    let mock = start().await;
    let stripe = Stripe::new(&mock);
    let created = stripe
        .post(
            "/v1/customers",
            &[
                ("email", "ops@acme.test"),
                ("name", "Acme"),
                ("description", "org acme"),
                ("metadata[org_id]", "org_1"),
                ("metadata[plan]", "team"),
            ],
        )
        .await;
    assert!(created.header("request-id").unwrap().starts_with("req_"));
    let created = created.ok();
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("cus_"));
    assert_eq!(created["object"], "customer");
    assert_eq!(created["livemode"], false);
    assert!(created["created"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(
        created["metadata"],
        json!({"org_id": "org_1", "plan": "team"})
    );
    assert_eq!(
        created["invoice_settings"]["default_payment_method"],
        Value::Null
    );

    let fetched = stripe.get(&format!("/v1/customers/{id}"), &[]).await.ok();
    assert_eq!(fetched, created);

    // An empty metadata value deletes the key; an empty field clears it.
    let updated = stripe
        .post(
            &format!("/v1/customers/{id}"),
            &[
                ("name", "Acme Inc"),
                ("description", ""),
                ("metadata[plan]", ""),
            ],
        )
        .await
        .ok();
    assert_eq!(updated["name"], "Acme Inc");
    assert_eq!(updated["description"], Value::Null);
    assert_eq!(updated["metadata"], json!({"org_id": "org_1"}));
    let event = mock.events_of_type("customer.updated").pop().unwrap();
    assert_eq!(
        event["data"]["previous_attributes"],
        json!({"name": "Acme", "description": "org acme", "metadata": {"org_id": "org_1", "plan": "team"}})
    );

    for n in 0..3 {
        stripe.customer(&format!("other{n}@acme.test")).await;
    }
    let by_email = stripe
        .get("/v1/customers", &[("email", "ops@acme.test")])
        .await
        .ok();
    assert_eq!(by_email["object"], "list");
    assert_eq!(by_email["url"], "/v1/customers");
    assert_eq!(by_email["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_email["data"][0]["id"], id);

    // Newest first; `starting_after` continues after the cursor.
    let first = stripe.get("/v1/customers", &[("limit", "2")]).await.ok();
    assert_eq!(first["has_more"], true);
    assert_eq!(first["data"][0]["email"], "other2@acme.test");
    let cursor = first["data"][1]["id"].as_str().unwrap();
    let rest = stripe
        .get(
            "/v1/customers",
            &[("limit", "2"), ("starting_after", cursor)],
        )
        .await
        .ok();
    assert_eq!(rest["has_more"], false);
    assert_eq!(rest["data"][1]["id"], id);

    let future = (mock.now() + 1_000).to_string();
    let none = stripe
        .get("/v1/customers", &[("created[gte]", future.as_str())])
        .await
        .ok();
    assert!(none["data"].as_array().unwrap().is_empty());

    let missing = stripe.get("/v1/customers/cus_nope", &[]).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "resource_missing");
    assert_eq!(missing.error_message(), "No such customer: 'cus_nope'");
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_other_parameters() {
    let mock = start().await;
    let stripe = Stripe::new(&mock);
    let params = [("email", "a@b.test"), ("metadata[org_id]", "org_9")];

    let first = stripe
        .post_idempotent("/v1/customers", &params, "key-1")
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = stripe
        .post_idempotent("/v1/customers", &params, "key-1")
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("request-id"), first.header("request-id"));
    assert_eq!(again.body, first.body);
    // The order of parameters does not matter.
    let reordered = stripe
        .post_idempotent("/v1/customers", &[params[1], params[0]], "key-1")
        .await;
    assert_eq!(reordered.body["id"], first.body["id"]);
    let list = stripe.get("/v1/customers", &[]).await.ok();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(mock.events_of_type("customer.created").len(), 1);

    let conflict = stripe
        .post_idempotent("/v1/customers", &[("email", "other@b.test")], "key-1")
        .await;
    assert_eq!(conflict.status, 400);
    assert_eq!(conflict.error_type(), "idempotency_error");

    // A request refused for its parameters saves nothing: the corrected one may reuse the key.
    let refused = stripe
        .post_idempotent("/v1/customers", &[("emali", "typo@b.test")], "key-2")
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.body["error"]["param"], "emali");
    let corrected = stripe
        .post_idempotent("/v1/customers", &[("email", "typo@b.test")], "key-2")
        .await;
    assert_eq!(corrected.status, 200);
    assert_eq!(corrected.header("idempotent-replayed"), None);

    // Keys are kept 24 hours.
    mock.advance_clock(Duration::from_secs(25 * 3_600));
    let later = stripe
        .post_idempotent("/v1/customers", &params, "key-1")
        .await
        .ok();
    assert_ne!(later["id"], first.body["id"]);

    let log = mock.requests();
    assert_eq!(log.len(), 8);
    assert_eq!(log[1].idempotency_key.as_deref(), Some("key-1"));
    assert!(log[1].replayed);
    assert_eq!(
        log[0].params[1],
        ("metadata[org_id]".into(), "org_9".into())
    );
}

#[tokio::test]
async fn requests_stripe_would_refuse_are_refused() {
    let mock = start().await;
    let stripe = Stripe::new(&mock);
    let json_body = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/v1/customers", mock.url()))
        .bearer_auth(mock.api_key())
        .header("content-type", "application/json")
        .body(r#"{"email":"a@b.test"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status().as_u16(), 400);

    let unknown = stripe.get("/v1/nothing_here", &[]).await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.error_message().contains("Unrecognized request URL"));

    let bad_limit = stripe.get("/v1/customers", &[("limit", "1000")]).await;
    assert_eq!(bad_limit.status, 400);
    assert_eq!(bad_limit.body["error"]["param"], "limit");

    let missing = stripe
        .post("/v1/checkout/sessions", &[("mode", "setup")])
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["error"]["code"], "parameter_missing");
    assert_eq!(missing.body["error"]["param"], "success_url");
}

#[tokio::test]
async fn completing_a_setup_checkout_attaches_a_default_card() {
    let (mock, stripe, customer) = start_with_customer("billing@acme.test").await;
    let session = stripe
        .checkout_session(
            "setup",
            &customer,
            &[
                ("currency", "usd"),
                (
                    "success_url",
                    "https://app.test/billing?session={CHECKOUT_SESSION_ID}",
                ),
                ("cancel_url", "https://app.test/billing"),
                ("metadata[org_id]", "org_1"),
            ],
        )
        .await;
    let id = session["id"].as_str().unwrap();
    assert!(id.starts_with("cs_test_"));
    assert_eq!(session["object"], "checkout.session");
    assert_eq!(session["status"], "open");
    assert_eq!(session["payment_status"], "no_payment_required");
    assert_eq!(session["setup_intent"], Value::Null);
    assert_eq!(session["url"], format!("{}/checkout/{id}", mock.url()));

    // The page a browser would open.
    let page = reqwest::get(session["url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("Save card"));

    let (status, completed) =
        control(&mock, &format!("/_mock/checkout/{id}/complete"), &json!({})).await;
    assert_eq!(status, 200, "{completed}");
    assert_eq!(completed["status"], "complete");

    let session = stripe
        .get(
            &format!("/v1/checkout/sessions/{id}"),
            &[("expand[]", "setup_intent")],
        )
        .await
        .ok();
    assert_eq!(session["status"], "complete");
    assert_eq!(session["setup_intent"]["object"], "setup_intent");
    assert_eq!(session["setup_intent"]["status"], "succeeded");
    let pm = session["setup_intent"]["payment_method"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pm.starts_with("pm_"));

    let customer_now = stripe
        .get(
            &format!("/v1/customers/{customer}"),
            &[("expand[]", "invoice_settings.default_payment_method")],
        )
        .await
        .ok();
    let default = &customer_now["invoice_settings"]["default_payment_method"];
    assert_eq!(default["id"], pm);
    assert_eq!(default["card"]["brand"], "visa");
    assert_eq!(default["card"]["last4"], "4242");

    let cards = stripe
        .get(
            "/v1/payment_methods",
            &[("customer", &customer), ("type", "card")],
        )
        .await
        .ok();
    assert_eq!(cards["data"].as_array().unwrap().len(), 1);
    assert_eq!(cards["data"][0]["id"], pm);
    assert!(cards["data"][0]["card"]["exp_year"].as_i64().unwrap() > 2024);
    let same = stripe
        .get(
            &format!("/v1/customers/{customer}/payment_methods"),
            &[("type", "card")],
        )
        .await
        .ok();
    assert_eq!(same["data"], cards["data"]);

    let types: Vec<String> = mock
        .events()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "customer.created",
            "payment_method.attached",
            "setup_intent.succeeded",
            "customer.updated",
            "checkout.session.completed",
        ]
    );
    let done = mock
        .events_of_type("checkout.session.completed")
        .pop()
        .unwrap();
    assert_eq!(done["data"]["object"]["metadata"]["org_id"], "org_1");

    // A completed session cannot complete again.
    assert_eq!(mock.complete_checkout(id).unwrap_err().status, 400);

    // Detaching the default card clears the default.
    mock.detach_payment_method(&pm).unwrap();
    let customer_now = stripe
        .get(&format!("/v1/customers/{customer}"), &[])
        .await
        .ok();
    assert_eq!(
        customer_now["invoice_settings"]["default_payment_method"],
        Value::Null
    );
    assert_eq!(mock.events_of_type("payment_method.detached").len(), 1);
}

#[tokio::test]
async fn a_payment_checkout_tops_up_through_the_page() {
    let (mock, stripe, customer) = start_with_customer("pay@acme.test").await;
    let session = stripe
        .checkout_session(
            "payment",
            &customer,
            &[
                (
                    "success_url",
                    "https://app.test/credits?session={CHECKOUT_SESSION_ID}",
                ),
                ("line_items[0][price_data][currency]", "usd"),
                ("line_items[0][price_data][unit_amount]", "500"),
                ("line_items[0][price_data][product_data][name]", "Credits"),
                ("line_items[0][quantity]", "4"),
                ("metadata[org_id]", "org_1"),
                ("metadata[credits]", "2000"),
                ("payment_intent_data[metadata][purpose]", "top-up"),
                ("payment_intent_data[setup_future_usage]", "off_session"),
            ],
        )
        .await;
    let id = session["id"].as_str().unwrap().to_owned();
    assert_eq!(session["amount_total"], 2000);
    assert_eq!(session["currency"], "usd");
    assert_eq!(session["payment_status"], "unpaid");

    let items = stripe
        .get(&format!("/v1/checkout/sessions/{id}/line_items"), &[])
        .await
        .ok();
    assert_eq!(items["data"][0]["quantity"], 4);
    assert_eq!(items["data"][0]["description"], "Credits");
    assert_eq!(items["data"][0]["price"]["unit_amount"], 500);

    // The page's button completes the session and redirects to success_url.
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(session["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Pay 20.00 USD"), "{page}");
    let submitted = http
        .post(format!("{}/checkout/{id}/submit", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status().as_u16(), 303);
    assert_eq!(
        submitted.headers()["location"].to_str().unwrap(),
        format!("https://app.test/credits?session={id}")
    );

    let completed = mock
        .events_of_type("checkout.session.completed")
        .pop()
        .unwrap();
    let object = &completed["data"]["object"];
    assert_eq!(object["id"], id.as_str());
    assert_eq!(object["payment_status"], "paid");
    assert_eq!(object["amount_total"], 2000);
    assert_eq!(object["metadata"]["credits"], "2000");
    let intent = stripe
        .get(
            &format!("/v1/checkout/sessions/{id}"),
            &[("expand[]", "payment_intent")],
        )
        .await
        .ok()["payment_intent"]
        .clone();
    assert_eq!(intent["status"], "succeeded");
    assert_eq!(intent["amount_received"], 2000);
    assert_eq!(intent["metadata"], json!({"purpose": "top-up"}));
    // setup_future_usage saved the card on the customer.
    let cards = stripe
        .get(&format!("/v1/customers/{customer}/payment_methods"), &[])
        .await
        .ok();
    assert_eq!(cards["data"][0]["id"], intent["payment_method"]);

    // Expiring a completed session is refused; an open one expires.
    let expire = stripe
        .post(&format!("/v1/checkout/sessions/{id}/expire"), &[])
        .await;
    assert_eq!(expire.status, 400);
}

#[tokio::test]
async fn a_portal_session_links_to_the_portal_page() {
    let (_mock, stripe, customer) = start_with_customer("portal@acme.test").await;
    let session = stripe
        .post(
            "/v1/billing_portal/sessions",
            &[
                ("customer", &customer),
                ("return_url", "https://app.test/billing"),
            ],
        )
        .await
        .ok();
    assert!(session["id"].as_str().unwrap().starts_with("bps_"));
    assert_eq!(session["object"], "billing_portal.session");
    assert!(
        session["configuration"]
            .as_str()
            .unwrap()
            .starts_with("bpc_")
    );
    let page = reqwest::get(session["url"].as_str().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("https://app.test/billing"));

    let unknown = stripe
        .post(
            "/v1/billing_portal/sessions",
            &[("customer", "cus_missing")],
        )
        .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.body["error"]["param"], "customer");
}

async fn meter(stripe: &Stripe) -> String {
    let meter = stripe
        .post(
            "/v1/billing/meters",
            &[
                ("display_name", "Tokens"),
                ("event_name", "tollgate_tokens"),
                ("default_aggregation[formula]", "sum"),
                ("customer_mapping[event_payload_key]", "stripe_customer_id"),
                ("customer_mapping[type]", "by_id"),
                ("value_settings[event_payload_key]", "value"),
            ],
        )
        .await
        .ok();
    assert_eq!(meter["object"], "billing.meter");
    assert_eq!(meter["status"], "active");
    meter["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn meter_events_count_once_per_identifier_and_sum_per_hour() {
    let mock = start().await;
    let stripe = Stripe::new(&mock);
    let meter_id = meter(&stripe).await;
    assert!(meter_id.starts_with("mtr_"));
    let listed = stripe.get("/v1/billing/meters", &[]).await.ok();
    assert_eq!(listed["data"][0]["id"], meter_id);
    let customer = stripe.customer("meter@acme.test").await;
    let other = stripe.customer("other@acme.test").await;

    let h2 = hour_start(&mock, 2);
    let h1 = hour_start(&mock, 1);
    let send = |identifier: &'static str, customer: String, value: &'static str, at: i64| {
        let stripe = stripe.clone();
        async move {
            stripe
                .post(
                    "/v1/billing/meter_events",
                    &[
                        ("event_name", "tollgate_tokens"),
                        ("payload[stripe_customer_id]", &customer),
                        ("payload[value]", value),
                        ("identifier", identifier),
                        ("timestamp", &at.to_string()),
                    ],
                )
                .await
        }
    };
    let accepted = send("req-1", customer.clone(), "12", h2 + 10).await.ok();
    assert_eq!(accepted["object"], "billing.meter_event");
    assert_eq!(accepted["identifier"], "req-1");
    assert_eq!(accepted["payload"]["value"], "12");
    send("req-2", customer.clone(), "30", h2 + 3_599).await.ok();
    send("req-3", customer.clone(), "0.5", h1).await.ok();
    send("req-4", other.clone(), "1000", h1 + 5).await.ok();

    // The same identifier again, even with another value, is refused and not counted.
    let duplicate = send("req-2", customer.clone(), "30", h2 + 3_599).await;
    assert_eq!(duplicate.status, 400);
    assert_eq!(duplicate.error_type(), "invalid_request_error");
    assert_eq!(
        duplicate.error_message(),
        "An event already exists with identifier req-2."
    );
    assert_eq!(duplicate.header("stripe-should-retry"), Some("false"));
    let other_value = send("req-1", customer.clone(), "99", h1 + 60).await;
    assert_eq!(other_value.status, 400);

    assert_eq!(mock.meter_events().len(), 4);
    let refused = mock.refused_meter_events();
    assert_eq!(refused.len(), 2);
    assert_eq!(refused[0].identifier.as_deref(), Some("req-2"));

    let path = format!("/v1/billing/meters/{meter_id}/event_summaries");
    let start_time = (h2 - 3_600).to_string();
    let end_time = (h1 + 3_600).to_string();
    let hourly = stripe
        .get(
            &path,
            &[
                ("customer", &customer),
                ("start_time", &start_time),
                ("end_time", &end_time),
                ("value_grouping_window", "hour"),
            ],
        )
        .await
        .ok();
    let data = hourly["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{hourly}");
    // Newest first.
    assert_eq!(data[0]["object"], "billing.meter_event_summary");
    assert_eq!(data[0]["start_time"], h1);
    assert_eq!(data[0]["end_time"], h1 + 3_600);
    assert_eq!(data[0]["aggregated_value"], 0.5);
    assert_eq!(data[1]["start_time"], h2);
    assert_eq!(data[1]["aggregated_value"], 42);
    assert_eq!(data[1]["meter"], meter_id);

    let total = stripe
        .get(
            &path,
            &[
                ("customer", &customer),
                ("start_time", &start_time),
                ("end_time", &end_time),
            ],
        )
        .await
        .ok();
    assert_eq!(total["data"].as_array().unwrap().len(), 1);
    assert_eq!(total["data"][0]["aggregated_value"], 42.5);

    let unaligned = stripe
        .get(
            &path,
            &[
                ("customer", &customer),
                ("start_time", "1700000001"),
                ("end_time", &end_time),
            ],
        )
        .await;
    assert_eq!(unaligned.status, 400);
    assert_eq!(unaligned.body["error"]["param"], "start_time");
}

#[tokio::test]
async fn meter_events_are_validated_and_refusals_recorded() {
    let mock = start().await;
    let stripe = Stripe::new(&mock);
    meter(&stripe).await;
    let customer = stripe.customer("v@acme.test").await;
    let now = mock.now();
    let old = (now - 36 * 86_400).to_string();
    let ahead = (now + 600).to_string();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("event_name", "nope"),
                ("payload[stripe_customer_id]", &customer),
                ("payload[value]", "1"),
            ],
            "event_name",
        ),
        (
            vec![
                ("event_name", "tollgate_tokens"),
                ("payload[stripe_customer_id]", "cus_missing"),
                ("payload[value]", "1"),
            ],
            "payload[stripe_customer_id]",
        ),
        (
            vec![("event_name", "tollgate_tokens"), ("payload[value]", "1")],
            "payload[stripe_customer_id]",
        ),
        (
            vec![
                ("event_name", "tollgate_tokens"),
                ("payload[stripe_customer_id]", &customer),
            ],
            "payload[value]",
        ),
        (
            vec![
                ("event_name", "tollgate_tokens"),
                ("payload[stripe_customer_id]", &customer),
                ("payload[value]", "-1"),
            ],
            "payload[value]",
        ),
        (
            vec![
                ("event_name", "tollgate_tokens"),
                ("payload[stripe_customer_id]", &customer),
                ("payload[value]", "ten"),
            ],
            "payload[value]",
        ),
        (
            vec![
                ("event_name", "tollgate_tokens"),
                ("payload[stripe_customer_id]", &customer),
                ("payload[value]", "1"),
                ("timestamp", &old),
            ],
            "timestamp",
        ),
        (
            vec![
                ("event_name", "tollgate_tokens"),
                ("payload[stripe_customer_id]", &customer),
                ("payload[value]", "1"),
                ("timestamp", &ahead),
            ],
            "timestamp",
        ),
        (
            vec![
                ("payload[stripe_customer_id]", &customer),
                ("payload[value]", "1"),
            ],
            "event_name",
        ),
    ];
    let count = cases.len();
    for (params, param) in cases {
        let reply = stripe.post("/v1/billing/meter_events", &params).await;
        assert_eq!(reply.status, 400, "{params:?}: {}", reply.body);
        assert_eq!(reply.body["error"]["param"], param, "{params:?}");
    }
    assert!(mock.meter_events().is_empty());
    assert_eq!(mock.refused_meter_events().len(), count);

    // Without an identifier the mock makes one, and 5 minutes ahead is still accepted.
    let soon = (now + 240).to_string();
    let ok = stripe
        .post(
            "/v1/billing/meter_events",
            &[
                ("event_name", "tollgate_tokens"),
                ("payload[stripe_customer_id]", &customer),
                ("payload[value]", "7"),
                ("timestamp", &soon),
            ],
        )
        .await
        .ok();
    assert!(!ok["identifier"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn metered_prices_and_subscriptions() {
    let mock = start().await;
    let stripe = Stripe::new(&mock);
    let meter_id = meter(&stripe).await;
    let customer = stripe.customer("sub@acme.test").await;
    let price = stripe
        .post(
            "/v1/prices",
            &[
                ("currency", "usd"),
                ("unit_amount_decimal", "0.002"),
                ("product_data[name]", "Tokens"),
                ("recurring[interval]", "month"),
                ("recurring[usage_type]", "metered"),
                ("recurring[meter]", &meter_id),
            ],
        )
        .await
        .ok();
    let price_id = price["id"].as_str().unwrap();
    assert!(price_id.starts_with("price_"));
    assert_eq!(price["type"], "recurring");
    assert_eq!(price["unit_amount"], Value::Null);
    assert_eq!(price["unit_amount_decimal"], "0.002");
    assert_eq!(price["recurring"]["meter"], meter_id);
    assert!(price["product"].as_str().unwrap().starts_with("prod_"));

    let subscription = stripe
        .post(
            "/v1/subscriptions",
            &[
                ("customer", &customer),
                ("items[0][price]", price_id),
                ("metadata[org_id]", "org_1"),
            ],
        )
        .await
        .ok();
    let sub_id = subscription["id"].as_str().unwrap();
    assert!(sub_id.starts_with("sub_"));
    assert_eq!(subscription["status"], "active");
    assert_eq!(subscription["items"]["data"][0]["price"]["id"], price_id);
    assert_eq!(subscription["items"]["data"][0]["quantity"], Value::Null);
    assert!(
        subscription["current_period_end"].as_i64().unwrap()
            > subscription["current_period_start"].as_i64().unwrap() + 27 * 86_400
    );
    assert_eq!(subscription["metadata"]["org_id"], "org_1");

    let listed = stripe
        .get("/v1/subscriptions", &[("customer", &customer)])
        .await
        .ok();
    assert_eq!(listed["data"][0]["id"], sub_id);

    let quantity = stripe
        .post(
            "/v1/subscriptions",
            &[
                ("customer", &customer),
                ("items[0][price]", price_id),
                ("items[0][quantity]", "2"),
            ],
        )
        .await;
    assert_eq!(quantity.status, 400);

    // A test moves the subscription; the API shows it.
    mock.update_subscription(
        sub_id,
        &tollgate_mock_stripe::SubscriptionChange {
            status: Some("past_due".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let updated = mock
        .events_of_type("customer.subscription.updated")
        .pop()
        .unwrap();
    assert_eq!(
        updated["data"]["previous_attributes"],
        json!({"status": "active"})
    );
    let canceled = stripe
        .delete(&format!("/v1/subscriptions/{sub_id}"))
        .await
        .ok();
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(
        mock.events_of_type("customer.subscription.deleted").len(),
        1
    );
    let active = stripe
        .get("/v1/subscriptions", &[("customer", &customer)])
        .await
        .ok();
    assert!(active["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn invoices_are_created_paid_and_failed_by_controls() {
    let (mock, stripe, customer) = start_with_customer("inv@acme.test").await;

    let invoice = mock
        .create_invoice(&InvoiceSpec {
            customer: customer.clone(),
            amount_due: 1_250,
            description: Some("Usage, March".into()),
            ..InvoiceSpec::default()
        })
        .unwrap();
    let id = invoice["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("in_"));
    assert_eq!(invoice["status"], "open");
    let (status, failing) = control(
        &mock,
        "/_mock/invoices",
        &json!({"customer": customer, "amount_due": 900, "currency": "eur"}),
    )
    .await;
    assert_eq!(status, 200, "{failing}");
    let failing_id = failing["id"].as_str().unwrap().to_owned();

    let listed = stripe
        .get("/v1/invoices", &[("customer", &customer)])
        .await
        .ok();
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    let fetched = stripe.get(&format!("/v1/invoices/{id}"), &[]).await.ok();
    assert_eq!(fetched["amount_due"], 1_250);
    assert_eq!(fetched["amount_paid"], 0);
    assert_eq!(fetched["currency"], "usd");
    assert_eq!(fetched["customer"], customer.as_str());
    assert!(fetched["number"].as_str().unwrap().ends_with("-0001"));
    let hosted = reqwest::get(fetched["hosted_invoice_url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(hosted.status().as_u16(), 200);
    let pdf = reqwest::get(fetched["invoice_pdf"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(pdf.starts_with(b"%PDF-"));

    mock.pay_invoice(&id).unwrap();
    let paid = stripe.get(&format!("/v1/invoices/{id}"), &[]).await.ok();
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["amount_paid"], 1_250);
    assert_eq!(paid["amount_remaining"], 0);

    let (status, _) = control(
        &mock,
        &format!("/_mock/invoices/{failing_id}/fail"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let open = stripe
        .get(&format!("/v1/invoices/{failing_id}"), &[])
        .await
        .ok();
    assert_eq!(open["status"], "open");
    assert_eq!(open["attempt_count"], 1);
    let only_paid = stripe
        .get(
            "/v1/invoices",
            &[("customer", &customer), ("status", "paid")],
        )
        .await
        .ok();
    assert_eq!(only_paid["data"].as_array().unwrap().len(), 1);

    let types: Vec<String> = mock
        .events()
        .iter()
        .filter_map(|e| {
            e["type"]
                .as_str()
                .filter(|t| t.starts_with("invoice."))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        types,
        [
            "invoice.created",
            "invoice.finalized",
            "invoice.created",
            "invoice.finalized",
            "invoice.paid",
            "invoice.payment_succeeded",
            "invoice.payment_failed",
        ]
    );
    assert_eq!(
        mock.events_of_type("invoice.created")[0]["data"]["object"]["status"],
        "draft"
    );
    // Paying a paid invoice is refused.
    assert_eq!(mock.pay_invoice(&id).unwrap_err().status, 400);
}

#[tokio::test]
async fn injected_failures_change_nothing() {
    let mock = start().await;
    let stripe = Stripe::new(&mock);

    mock.fail_next_requests(2);
    for _ in 0..2 {
        let failed = stripe
            .post_idempotent("/v1/customers", &[("email", "x@acme.test")], "retry-me")
            .await;
        assert_eq!(failed.status, 500);
        assert_eq!(failed.error_type(), "api_error");
        assert_eq!(failed.header("stripe-should-retry"), Some("true"));
    }
    // The failures stored no idempotent answer: the retry with the same key creates the customer.
    let created = stripe
        .post_idempotent("/v1/customers", &[("email", "x@acme.test")], "retry-me")
        .await
        .ok();
    assert_eq!(created["email"], "x@acme.test");

    mock.set_outage(Outage::Error500);
    for _ in 0..3 {
        assert_eq!(
            stripe
                .post("/v1/customers", &[("email", "y@acme.test")])
                .await
                .status,
            500
        );
        assert_eq!(stripe.get("/v1/customers", &[]).await.status, 500);
    }
    let (status, _) = control(
        &mock,
        "/_mock/failures",
        &json!({"outage": "close_connection"}),
    )
    .await;
    assert_eq!(status, 200);
    let closed = stripe
        .try_send("POST", "/v1/customers", &[("email", "z@acme.test")], None)
        .await;
    assert!(
        closed.is_err(),
        "expected a broken connection, got {closed:?}"
    );
    let (status, _) = control(&mock, "/_mock/failures", &json!({"outage": null})).await;
    assert_eq!(status, 200);

    let customers = stripe.get("/v1/customers", &[]).await.ok();
    assert_eq!(customers["data"].as_array().unwrap().len(), 1);
    assert_eq!(mock.events_of_type("customer.created").len(), 1);
    let log = mock.requests();
    assert_eq!(log.iter().filter(|r| r.injected_failure).count(), 9);
    assert!(
        log.iter()
            .filter(|r| r.injected_failure)
            .all(|r| r.status == 500 || r.status == 0)
    );
}
