//! The mock through async-stripe, the client Tollgate's billing uses: its typed requests are
//! encoded as it encodes them, and its typed answers must parse strictly (every field its
//! structs require present, with values its enums know).

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use std::collections::HashMap;

use common::{hour_start, start, start_with_customer};
use serde_json::Value;
use stripe::{IdempotencyKey, RequestStrategy, StripeError, StripeRequest as _};
use stripe_billing::billing_meter::{
    CreateBillingMeter, CreateBillingMeterDefaultAggregation,
    CreateBillingMeterDefaultAggregationFormula, ListBillingMeter,
};
use stripe_billing::billing_meter_event::CreateBillingMeterEvent;
use stripe_billing::billing_meter_event_summary::{
    ListIdBillingMeterEventSummary, ListIdBillingMeterEventSummaryValueGroupingWindow,
};
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    ProductData, RetrieveCheckoutSession,
};
use stripe_core::customer::{CreateCustomer, RetrieveCustomer, RetrieveCustomerReturned};
use stripe_shared::{CheckoutSessionMode, CheckoutSessionStatus};
use stripe_types::Currency;

/// A client on the mock. TLS is chosen first: with several crypto providers compiled into the
/// workspace, the client's connector needs the process default set (billing sets it too).
fn client(mock: &tollgate_mock_stripe::MockStripe) -> stripe::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    stripe::ClientBuilder::new(mock.api_key())
        .url(format!("{}/", mock.url()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn async_stripe_creates_a_customer_and_checkout_sessions() {
    let mock = start().await;
    let client = client(&mock);

    let customer = CreateCustomer::new()
        .email("ops@acme.test")
        .name("Acme")
        .metadata(HashMap::from([("org_id".to_owned(), "org_1".to_owned())]))
        .customize()
        .request_strategy(RequestStrategy::Idempotent(
            IdempotencyKey::new("org_1-customer").unwrap(),
        ))
        .send(&client)
        .await
        .unwrap();
    assert!(customer.id.as_str().starts_with("cus_"));
    assert_eq!(customer.email.as_deref(), Some("ops@acme.test"));
    assert_eq!(
        mock.requests()[0].idempotency_key.as_deref(),
        Some("org_1-customer")
    );

    let setup = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Setup)
        .customer(customer.id.as_str())
        .currency(Currency::USD)
        .success_url("https://app.test/billing?session={CHECKOUT_SESSION_ID}")
        .cancel_url("https://app.test/billing")
        .client_reference_id("org_1")
        .metadata(HashMap::from([("org_id".to_owned(), "org_1".to_owned())]))
        .send(&client)
        .await
        .unwrap();
    assert!(setup.id.as_str().starts_with("cs_test_"));
    assert_eq!(
        setup.url.as_deref(),
        Some(format!("{}/checkout/{}", mock.url(), setup.id.as_str()).as_str())
    );
    assert!(matches!(setup.status, Some(CheckoutSessionStatus::Open)));

    mock.complete_checkout(setup.id.as_str()).unwrap();
    let done = RetrieveCheckoutSession::new(setup.id.clone())
        .send(&client)
        .await
        .unwrap();
    assert!(matches!(done.status, Some(CheckoutSessionStatus::Complete)));
    let intent = done.setup_intent.expect("a setup intent");
    let RetrieveCustomerReturned::Customer(customer) = RetrieveCustomer::new(customer.id.clone())
        .send(&client)
        .await
        .unwrap()
    else {
        panic!("the customer was deleted");
    };
    let default = customer
        .invoice_settings
        .and_then(|settings| settings.default_payment_method)
        .expect("a default payment method");
    assert!(default.id().as_str().starts_with("pm_"));
    assert!(intent.id().as_str().starts_with("seti_"));

    let mut price = CreateCheckoutSessionLineItemsPriceData::new(Currency::USD);
    price.unit_amount = Some(1_500);
    price.product_data = Some(ProductData::new("Prepaid credit"));
    let mut item = CreateCheckoutSessionLineItems::new();
    item.price_data = Some(price);
    item.quantity = Some(1);
    let top_up = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Payment)
        .customer(customer.id.as_str())
        .line_items(vec![item])
        .success_url("https://app.test/credits")
        .cancel_url("https://app.test/credits")
        .send(&client)
        .await
        .unwrap();
    assert_eq!(top_up.amount_total, Some(1_500));
    mock.complete_checkout(top_up.id.as_str()).unwrap();
    let paid = RetrieveCheckoutSession::new(top_up.id.clone())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(paid.amount_total, Some(1_500));
    assert!(paid.payment_intent.is_some());

    let portal = CreateBillingPortalSession::new()
        .customer(customer.id.as_str())
        .return_url("https://app.test/billing")
        .send(&client)
        .await
        .unwrap();
    assert!(portal.url.starts_with(&mock.url()));
}

#[tokio::test]
async fn async_stripe_reports_usage_and_reads_it_back() {
    let mock = start().await;
    let client = client(&mock);
    let customer = CreateCustomer::new().send(&client).await.unwrap();
    let meter = CreateBillingMeter::new(
        CreateBillingMeterDefaultAggregation::new(CreateBillingMeterDefaultAggregationFormula::Sum),
        "Usage",
        "tollgate_usage",
    )
    .send(&client)
    .await
    .unwrap();
    let meters = ListBillingMeter::new()
        .limit(100)
        .send(&client)
        .await
        .unwrap();
    assert_eq!(meters.data.len(), 1);
    assert_eq!(meters.data[0].id, meter.id);

    let hour = hour_start(&mock, 1);
    let payload = |value: &str| {
        HashMap::from([
            (
                "stripe_customer_id".to_owned(),
                customer.id.as_str().to_owned(),
            ),
            ("value".to_owned(), value.to_owned()),
        ])
    };
    let event = CreateBillingMeterEvent::new("tollgate_usage", payload("1200"))
        .identifier("org_1:hour-1")
        .timestamp(hour + 30)
        .send(&client)
        .await
        .unwrap();
    assert_eq!(event.identifier, "org_1:hour-1");
    CreateBillingMeterEvent::new("tollgate_usage", payload("300"))
        .identifier("org_1:hour-1b")
        .timestamp(hour + 90)
        .send(&client)
        .await
        .unwrap();

    // A repeated identifier: refused as Stripe refuses it, a 400 with no error code.
    let duplicate = CreateBillingMeterEvent::new("tollgate_usage", payload("1200"))
        .identifier("org_1:hour-1")
        .timestamp(hour + 30)
        .send(&client)
        .await
        .unwrap_err();
    match duplicate {
        StripeError::Stripe(details, status) => {
            assert_eq!(status, 400);
            assert!(details.code.is_none());
            assert_eq!(
                details.message.as_deref(),
                Some("An event already exists with identifier org_1:hour-1.")
            );
        }
        other => panic!("expected Stripe's refusal, got {other:?}"),
    }

    let summaries = ListIdBillingMeterEventSummary::new(
        meter.id.clone(),
        customer.id.as_str(),
        hour + 3_600,
        hour - 3_600,
    )
    .value_grouping_window(ListIdBillingMeterEventSummaryValueGroupingWindow::Hour)
    .send(&client)
    .await
    .unwrap();
    assert_eq!(summaries.data.len(), 1);
    assert_eq!(summaries.data[0].start_time, hour);
    assert!((summaries.data[0].aggregated_value - 1_500.0).abs() < f64::EPSILON);
}

/// `text` parsed strictly as `T`, the way async-stripe parses answers and webhook payloads.
fn parses_as<T: miniserde::Deserialize>(what: &str, value: &Value) {
    let text = serde_json::to_string(value).unwrap();
    if let Err(err) = miniserde::json::from_str::<T>(&text) {
        panic!("{what} does not parse as async-stripe's type ({err}): {value:#}");
    }
}

#[tokio::test]
async fn every_object_in_every_event_parses_as_async_stripes_types() {
    let (mock, stripe, customer) = start_with_customer("types@acme.test").await;
    stripe
        .completed_checkout(
            &mock,
            "setup",
            &customer,
            &[("currency", "usd"), ("success_url", "https://app.test/ok")],
        )
        .await;
    stripe
        .completed_checkout(
            &mock,
            "payment",
            &customer,
            &[
                ("success_url", "https://app.test/ok"),
                ("line_items[0][price_data][currency]", "usd"),
                ("line_items[0][price_data][unit_amount]", "900"),
                ("line_items[0][price_data][product_data][name]", "Credit"),
                ("line_items[0][quantity]", "1"),
            ],
        )
        .await;
    let meter = stripe
        .post(
            "/v1/billing/meters",
            &[
                ("display_name", "Usage"),
                ("event_name", "usage"),
                ("default_aggregation[formula]", "sum"),
            ],
        )
        .await
        .ok();
    let metered = stripe
        .post(
            "/v1/prices",
            &[
                ("currency", "usd"),
                ("unit_amount_decimal", "0.0001"),
                ("product_data[name]", "Usage"),
                ("recurring[interval]", "month"),
                ("recurring[usage_type]", "metered"),
                ("recurring[meter]", meter["id"].as_str().unwrap()),
            ],
        )
        .await
        .ok();
    let seat = stripe
        .post(
            "/v1/prices",
            &[
                ("currency", "usd"),
                ("unit_amount", "2000"),
                ("product_data[name]", "Seat"),
                ("recurring[interval]", "month"),
            ],
        )
        .await
        .ok();
    let subscription = stripe
        .post(
            "/v1/subscriptions",
            &[
                ("customer", &customer),
                ("items[0][price]", metered["id"].as_str().unwrap()),
                ("items[1][price]", seat["id"].as_str().unwrap()),
                ("items[1][quantity]", "2"),
            ],
        )
        .await
        .ok();
    let sub_id = subscription["id"].as_str().unwrap();
    let invoice = mock
        .create_invoice(&tollgate_mock_stripe::InvoiceSpec {
            customer: customer.clone(),
            amount_due: 4_321,
            subscription: Some(sub_id.to_owned()),
            ..Default::default()
        })
        .unwrap();
    let invoice_id = invoice["id"].as_str().unwrap();
    mock.fail_invoice_payment(invoice_id).unwrap();
    mock.pay_invoice(invoice_id).unwrap();
    mock.cancel_subscription(sub_id).unwrap();
    let portal = stripe
        .post("/v1/billing_portal/sessions", &[("customer", &customer)])
        .await
        .ok();
    parses_as::<stripe_billing::BillingPortalSession>("billing_portal.session", &portal);
    let summaries = stripe
        .get(
            &format!(
                "/v1/billing/meters/{}/event_summaries",
                meter["id"].as_str().unwrap()
            ),
            &[
                ("customer", &customer),
                (
                    "start_time",
                    &(mock.now() - mock.now() % 60 - 3_600).to_string(),
                ),
                ("end_time", &(mock.now() - mock.now() % 60 + 60).to_string()),
            ],
        )
        .await
        .ok();
    parses_as::<stripe_billing::BillingMeterEventSummary>("summary", &summaries["data"][0]);

    // The check has teeth: an object missing required fields does not parse.
    assert!(
        miniserde::json::from_str::<stripe_shared::Subscription>(
            r#"{"id": "sub_1", "object": "subscription"}"#
        )
        .is_err()
    );

    let events = mock.events();
    let mut kinds = std::collections::BTreeSet::new();
    for event in &events {
        parses_as::<stripe_shared::Event>("event", event);
        let object = &event["data"]["object"];
        let kind = object["object"].as_str().unwrap();
        match kind {
            "customer" => parses_as::<stripe_shared::Customer>(kind, object),
            "checkout.session" => parses_as::<stripe_shared::CheckoutSession>(kind, object),
            "payment_method" => parses_as::<stripe_shared::PaymentMethod>(kind, object),
            "setup_intent" => parses_as::<stripe_shared::SetupIntent>(kind, object),
            "payment_intent" => parses_as::<stripe_shared::PaymentIntent>(kind, object),
            "invoice" => parses_as::<stripe_shared::Invoice>(kind, object),
            "subscription" => parses_as::<stripe_shared::Subscription>(kind, object),
            "price" => parses_as::<stripe_shared::Price>(kind, object),
            "product" => parses_as::<stripe_shared::Product>(kind, object),
            "billing.meter" => parses_as::<stripe_billing::BillingMeter>(kind, object),
            other => panic!("no type checked for {other}"),
        }
        kinds.insert(kind.to_owned());
    }
    assert_eq!(kinds.len(), 10, "{kinds:?}");
}
