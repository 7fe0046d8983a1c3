//! Payments on both databases against the local Stripe stand-in: hourly usage reports (once per
//! hour and revision, late usage reported as a new revision, free allowance and credit drawn
//! first), the outbox through a Stripe outage (every call delivered once), scheduled
//! reconciliation (once per run whatever the number of processes, read-only at Stripe), and
//! webhooks (duplicates, out-of-order delivery, top-ups, cards).

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use std::sync::Arc;

use common::{both, pico, usage_record, usd};
use serde_json::json;
use sqlx::Row;
use tollgate_auth::store::AuthStore;
use tollgate_billing::payments::accounts::{Accounts, Standing};
use tollgate_billing::payments::outbox::{Delivery, Outbox};
use tollgate_billing::payments::pricing::Plan;
use tollgate_billing::payments::reconcile::{reconcile, revenue, scheduled_run};
use tollgate_billing::payments::reports::UsageReporter;
use tollgate_billing::payments::stripe::StripeApi;
use tollgate_billing::payments::webhooks::{Event, Processed, WebhookProcessor};
use tollgate_billing::usage::Ledger;
use tollgate_common::config::{BillingConfig, StripeConfig};
use tollgate_common::{Picodollars, Secret};
use tollgate_mock_stripe::{MockStripe, MockStripeConfig, Outage};

const HOUR: i64 = 3_600_000;
/// 2026-11-26T04:00:00Z, a whole hour.
const H0: i64 = 1_795_665_600_000;

fn config(stripe: &MockStripe, free_usd: &str, markup: &str) -> BillingConfig {
    let mut config = BillingConfig::default();
    config.free_tier.monthly_usd = usd(free_usd);
    config.pay_as_you_go.markup_percent = usd(markup);
    config.public_url = Some("http://127.0.0.1:9".into());
    config.stripe = Some(StripeConfig {
        api_base: stripe.url(),
        secret_key: Secret::new(stripe.api_key()),
        webhook_secret: Secret::new(stripe.webhook_secret()),
        meter_event_name: "tollgate_usage".into(),
        webhook_tolerance_secs: 300,
    });
    config
}

async fn organization(store: &AuthStore, name: &str) -> String {
    store
        .create_organization(name, "test")
        .await
        .unwrap()
        .0
        .id
        .to_string()
}

async fn reports_of(store: &AuthStore, org: &str) -> Vec<(i64, i64, i64, i64, i64, i64)> {
    sqlx::query(
        "SELECT hour_start, revision, billable_pico, free_used_pico, credit_used_pico, \
         metered_micros FROM usage_reports WHERE org_id = $1 ORDER BY hour_start, revision",
    )
    .bind(org.to_owned())
    .fetch_all(store.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.try_get(0).unwrap(),
            r.try_get(1).unwrap(),
            r.try_get(2).unwrap(),
            r.try_get(3).unwrap(),
            r.try_get(4).unwrap(),
            r.try_get(5).unwrap(),
        )
    })
    .collect()
}

#[tokio::test]
async fn each_hour_is_reported_once_and_late_usage_as_a_new_revision() {
    let stripe = MockStripe::start(MockStripeConfig::default())
        .await
        .unwrap();
    both(async |store: AuthStore| {
        let billing = config(&stripe, "0.001", "20");
        let org = organization(&store, "Reported Inc").await;
        let ledger = Ledger::new(store.pool().clone());
        // $0.002 of provider cost in H0: $0.0024 billable, $0.001 of it free
        ledger
            .record(&[
                usage_record(&org, &format!("{org}-1"), H0 + 60_000, "0.0015"),
                usage_record(&org, &format!("{org}-2"), H0 + 120_000, "0.0005"),
            ])
            .await
            .unwrap();
        let reporter = UsageReporter::new(store.pool().clone(), &billing);

        // the hour is not over: nothing yet
        assert_eq!(reporter.report(H0 + 30 * 60_000).await.unwrap().reports, 0);
        let run = reporter.report(H0 + HOUR + 60_000).await.unwrap();
        assert_eq!(run.reports, 1);
        assert_eq!(run.metered_micros, 1_400);
        assert_eq!(
            reports_of(&store, &org).await,
            [(H0, 0, pico("0.0024"), pico("0.001"), 0, 1_400)]
        );
        // run again, anywhere: nothing twice
        for _ in 0..3 {
            assert_eq!(reporter.report(H0 + HOUR + 120_000).await.unwrap().reports, 0);
        }

        // usage of H0 that reached the ledger late: only it is reported, as revision 1
        ledger
            .record(&[usage_record(&org, &format!("{org}-3"), H0 + 30 * 60_000, "0.001")])
            .await
            .unwrap();
        let run = reporter.report(H0 + 2 * HOUR).await.unwrap();
        assert_eq!(run.reports, 1);
        assert_eq!(run.metered_micros, 1_200);
        let reports = reports_of(&store, &org).await;
        assert_eq!(reports[1], (H0, 1, pico("0.0012"), 0, 0, 1_200));

        // two queued meter events and one customer, each with its own key
        let queued: Vec<(String, String)> = sqlx::query(
            "SELECT kind, idempotency_key FROM stripe_outbox WHERE org_id = $1 ORDER BY created_at, kind",
        )
        .bind(org.clone())
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
        .collect();
        let secs = H0 / 1000;
        assert_eq!(
            queued,
            [
                ("create_customer".to_owned(), format!("tollgate-customer-{org}")),
                ("report_usage".to_owned(), format!("tg-{org}-tollgate_usage-{secs}-0")),
                (
                    "subscribe".to_owned(),
                    format!("tollgate-subscription-{org}-first")
                ),
                ("report_usage".to_owned(), format!("tg-{org}-tollgate_usage-{secs}-1")),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn prepaid_credit_is_drawn_before_anything_is_metered() {
    let stripe = MockStripe::start(MockStripeConfig::default())
        .await
        .unwrap();
    both(async |store: AuthStore| {
        let billing = config(&stripe, "0", "0");
        let org = organization(&store, "Prepaid Inc").await;
        let accounts = Accounts::new(store.pool().clone());
        accounts.open(&org, Plan::PayAsYouGo).await.unwrap();
        assert!(
            accounts
                .grant_credit("cs_1", &org, Picodollars(pico("0.005")))
                .await
                .unwrap()
        );
        assert!(
            !accounts
                .grant_credit("cs_1", &org, Picodollars(pico("0.005")))
                .await
                .unwrap()
        );
        let ledger = Ledger::new(store.pool().clone());
        ledger
            .record(&[
                usage_record(&org, &format!("{org}-a"), H0, "0.003"),
                usage_record(&org, &format!("{org}-b"), H0 + HOUR, "0.004"),
            ])
            .await
            .unwrap();
        let reporter = UsageReporter::new(store.pool().clone(), &billing);
        reporter.report(H0 + 2 * HOUR).await.unwrap();
        assert_eq!(
            reports_of(&store, &org).await,
            [
                (H0, 0, pico("0.003"), 0, pico("0.003"), 0),
                (H0 + HOUR, 0, pico("0.004"), 0, pico("0.002"), 2_000),
            ]
        );
        let account = accounts.get(&org).await.unwrap().unwrap();
        assert_eq!(account.credit, Picodollars(0));
    })
    .await;
}

#[tokio::test]
async fn the_outbox_holds_calls_through_an_outage_and_delivers_each_once() {
    let stripe = MockStripe::start(MockStripeConfig::default())
        .await
        .unwrap();
    both(async |store: AuthStore| {
        let billing = config(&stripe, "0", "0");
        let api = Arc::new(StripeApi::new(billing.stripe.as_ref().unwrap()).unwrap());
        api.ensure_meter().await.unwrap();
        let org = organization(&store, "Outage Inc").await;
        let ledger = Ledger::new(store.pool().clone());
        ledger
            .record(&[usage_record(&org, &format!("{org}-x"), H0, "0.25")])
            .await
            .unwrap();
        let reporter = UsageReporter::new(store.pool().clone(), &billing);
        let accounts = Accounts::new(store.pool().clone());
        let outbox = Outbox::new(store.pool().clone());
        let now = tollgate_common::now_ms();
        reporter.report(H0 + HOUR).await.unwrap();
        assert_eq!(outbox.pending().await.unwrap(), 3);

        // Stripe is down: nothing is lost, nothing is sent
        let before = stripe.meter_events().len();
        stripe.set_outage(Outage::CloseConnection);
        let delivery = outbox.deliver_due(&api, &accounts, now).await.unwrap();
        assert_eq!(delivery.sent, 0);
        assert_eq!(delivery.given_up, 0);
        assert_eq!(outbox.pending().await.unwrap(), 3);
        stripe.set_outage(Outage::Error500);
        // (retries wait: the next pass, a little later, tries again)
        let delivery = outbox
            .deliver_due(&api, &accounts, now + 10_000)
            .await
            .unwrap();
        assert_eq!(delivery.sent, 0);

        // Stripe is back: the customer first, then its subscription and the usage; once
        stripe.clear_failures();
        let mut sent = 0;
        for pass in 1..=3 {
            let Delivery { sent: n, .. } = outbox
                .deliver_due(&api, &accounts, now + pass * 120_000)
                .await
                .unwrap();
            sent += n;
        }
        assert_eq!(sent, 3);
        assert_eq!(outbox.pending().await.unwrap(), 0);
        let account = accounts.get(&org).await.unwrap().unwrap();
        let customer = account.stripe_customer_id.unwrap();
        let subscription = stripe
            .object(&account.stripe_subscription_id.unwrap())
            .unwrap();
        assert_eq!(subscription["customer"], customer.as_str());
        assert_eq!(subscription["status"], "active");
        let events: Vec<_> = stripe
            .meter_events()
            .into_iter()
            .skip(before)
            .filter(|e| e.customer == customer)
            .collect();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].value, "250000");
        assert_eq!(
            events[0].identifier,
            format!("tg-{org}-tollgate_usage-{}-0", H0 / 1000)
        );

        // the same report sent again (an answer lost, a replay) is not counted again: within
        // a day Stripe replays its first answer to the idempotency key, later it refuses the
        // identifier, and either is success
        api.report_usage(&customer, 250_000, &events[0].identifier, H0 / 1000)
            .await
            .unwrap();
        stripe.advance_clock(std::time::Duration::from_secs(25 * 3600));
        api.report_usage(&customer, 250_000, &events[0].identifier, H0 / 1000)
            .await
            .unwrap();
        assert!(
            stripe
                .refused_meter_events()
                .iter()
                .any(|r| r.identifier.as_deref() == Some(events[0].identifier.as_str())),
            "the second report reached Stripe and was refused as a duplicate"
        );
        // reconciliation: our reports and Stripe's meter agree hour by hour
        let check = reconcile(store.pool(), &api, H0, H0 + 2 * HOUR).await.unwrap();
        assert_eq!((check.organizations, check.hours, check.queued), (1, 1, 0));
        assert_eq!(check.differences, []);
        let money = revenue(store.pool(), H0, H0 + 2 * HOUR).await.unwrap();
        assert_eq!(money.len(), 1);
        assert_eq!(money[0].billable, pico("0.25"));
        assert_eq!(money[0].metered_micros, 250_000);
        // a report Stripe never got shows up as a difference
        sqlx::query(
            "INSERT INTO usage_reports (org_id, hour_start, revision, billable_pico,              provider_cost_pico, free_used_pico, credit_used_pico, metered_micros, identifier,              created_at) VALUES ($1, $2, 9, 0, 0, 0, 0, 5, $3, 0)",
        )
        .bind(org.clone())
        .bind(H0)
        .bind(format!("lost-{org}"))
        .execute(store.pool())
        .await
        .unwrap();
        let check = reconcile(store.pool(), &api, H0, H0 + 2 * HOUR).await.unwrap();
        assert_eq!(check.differences.len(), 1);
        assert_eq!(
            (check.differences[0].ours, check.differences[0].stripe),
            (250_005, 250_000)
        );

        let again = stripe
            .meter_events()
            .into_iter()
            .filter(|e| e.identifier == events[0].identifier)
            .count();
        assert_eq!(again, 1);
    })
    .await;
}

#[tokio::test]
async fn scheduled_reconciliation_runs_once_per_slot_and_finds_what_stripe_lacks() {
    let stripe = MockStripe::start(MockStripeConfig::default())
        .await
        .unwrap();
    let every = std::time::Duration::from_secs(6 * 3600);
    // 2026-11-26T07:01Z: November up to 06:00 is compared
    let now = H0 + 3 * HOUR + 60_000;
    both(async |store: AuthStore| {
        let billing = config(&stripe, "0", "0");
        let api = StripeApi::new(billing.stripe.as_ref().unwrap()).unwrap();
        let pool = store.pool();

        // nothing reported yet: the run asks Stripe nothing
        stripe.clear_requests();
        let earlier = scheduled_run(pool, &api, now - 6 * HOUR, every)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(earlier.len(), 1);
        assert_eq!(earlier[0].reconciliation.organizations, 0);
        assert!(stripe.requests().is_empty(), "{:?}", stripe.requests());

        // two hours reported and delivered
        let org = organization(&store, "Reconciled Inc").await;
        Ledger::new(pool.clone())
            .record(&[
                usage_record(&org, &format!("{org}-1"), H0, "0.25"),
                usage_record(&org, &format!("{org}-2"), H0 + HOUR, "0.1"),
            ])
            .await
            .unwrap();
        UsageReporter::new(pool.clone(), &billing)
            .report(H0 + 2 * HOUR)
            .await
            .unwrap();
        let (accounts, outbox) = (Accounts::new(pool.clone()), Outbox::new(pool.clone()));
        let sent_at = tollgate_common::now_ms();
        for pass in 1..=5 {
            outbox
                .deliver_due(&api, &accounts, sent_at + pass * 120_000)
                .await
                .unwrap();
        }
        assert_eq!(outbox.pending().await.unwrap(), 0);
        // a report of H0 + 1h that never reached Stripe
        sqlx::query(
            "INSERT INTO usage_reports (org_id, hour_start, revision, billable_pico, \
             provider_cost_pico, free_used_pico, credit_used_pico, metered_micros, identifier, \
             created_at) VALUES ($1, $2, 1, 0, 0, 0, 0, 5, $3, 0)",
        )
        .bind(org.clone())
        .bind(H0 + HOUR)
        .bind(format!("lost-{org}"))
        .execute(pool)
        .await
        .unwrap();

        // Stripe fails: the run gives its slot back
        stripe.set_outage(Outage::Error500);
        assert!(scheduled_run(pool, &api, now, every).await.is_err());
        stripe.clear_failures();

        // the run finds the hour Stripe lacks, and only reads
        stripe.clear_requests();
        let run = scheduled_run(pool, &api, now, every)
            .await
            .unwrap()
            .expect("the slot is free again");
        assert_eq!(run.len(), 1);
        let check = &run[0].reconciliation;
        assert_eq!((check.organizations, check.hours), (1, 2));
        assert_eq!(check.differences.len(), 1);
        let difference = &check.differences[0];
        assert_eq!(
            (difference.hour_start, difference.ours, difference.stripe),
            (H0 + HOUR, 100_005, 100_000)
        );
        let requests = stripe.requests();
        assert!(!requests.is_empty());
        assert!(
            requests.iter().all(|r| r.method == "GET"),
            "{:?}",
            requests
                .iter()
                .map(|r| format!("{} {}", r.method, r.path))
                .collect::<Vec<_>>()
        );

        // another replica, in the same slot: no run, no call to Stripe
        stripe.clear_requests();
        let replica = StripeApi::new(billing.stripe.as_ref().unwrap()).unwrap();
        for at in [now, now + HOUR] {
            assert_eq!(
                scheduled_run(pool, &replica, at, every).await.unwrap(),
                None
            );
        }
        assert!(stripe.requests().is_empty());
        // the next slot runs again
        let next = scheduled_run(pool, &replica, now + 6 * HOUR, every)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next[0].reconciliation.differences.len(), 1);
    })
    .await;
}

fn stripe_event(id: &str, kind: &str, created: i64, object: serde_json::Value) -> Event {
    serde_json::from_value(json!({
        "id": id, "object": "event", "type": kind, "created": created,
        "data": {"object": object}
    }))
    .unwrap()
}

#[tokio::test]
async fn webhooks_apply_once_and_the_newest_word_on_standing_wins() {
    both(async |store: AuthStore| {
        let org = organization(&store, "Hooked Inc").await;
        let accounts = Accounts::new(store.pool().clone());
        accounts.open(&org, Plan::PayAsYouGo).await.unwrap();
        accounts.set_customer(&org, "cus_hooked").await.unwrap();
        let hooks = WebhookProcessor::new(accounts.clone());
        let invoice = |status: &str| {
            json!({"id": "in_1", "object": "invoice", "customer": "cus_hooked", "status": status,
                   "currency": "usd", "amount_due": 1200, "amount_paid": 0, "created": 100,
                   "hosted_invoice_url": "https://invoice.example/in_1"})
        };

        // a card
        let attached = stripe_event(
            "evt_pm",
            "payment_method.attached",
            90,
            json!({"id": "pm_1", "customer": "cus_hooked",
                   "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030}}),
        );
        assert_eq!(
            hooks.process(&attached).await.unwrap(),
            Processed::Applied {
                changed: Some(org.clone())
            }
        );
        let card = accounts.get(&org).await.unwrap().unwrap().card.unwrap();
        assert_eq!((card.brand.as_str(), card.last4.as_str()), ("visa", "4242"));

        // payment failed, then paid: good standing
        let failed = stripe_event("evt_f", "invoice.payment_failed", 200, invoice("open"));
        assert!(matches!(
            hooks.process(&failed).await.unwrap(),
            Processed::Applied { changed: Some(_) }
        ));
        assert_eq!(
            accounts.get(&org).await.unwrap().unwrap().standing,
            Standing::PastDue { since: 200_000 }
        );
        assert_eq!(hooks.process(&failed).await.unwrap(), Processed::Duplicate);
        let paid = stripe_event("evt_p", "invoice.paid", 300, invoice("paid"));
        hooks.process(&paid).await.unwrap();
        assert_eq!(
            accounts.get(&org).await.unwrap().unwrap().standing,
            Standing::Good
        );

        // an older failure delivered late changes nothing, the invoice stays paid
        let late = stripe_event("evt_late", "invoice.payment_failed", 250, invoice("open"));
        assert!(matches!(
            hooks.process(&late).await.unwrap(),
            Processed::Applied { .. }
        ));
        assert_eq!(
            accounts.get(&org).await.unwrap().unwrap().standing,
            Standing::Good
        );
        let invoices = accounts.invoices(&org, 10).await.unwrap();
        assert_eq!(invoices.len(), 1);
        assert_eq!(invoices[0].status, "paid");

        // a top-up: credit once, for the customer's organization
        let top_up = stripe_event(
            "evt_c",
            "checkout.session.completed",
            400,
            json!({"id": "cs_top", "object": "checkout.session", "customer": "cus_hooked",
                   "mode": "payment", "payment_status": "paid", "amount_total": 2500,
                   "metadata": {"purpose": "credit_top_up", "org_id": "someone-else"}}),
        );
        hooks.process(&top_up).await.unwrap();
        let redelivered = stripe_event(
            "evt_c2",
            "checkout.session.completed",
            401,
            top_up.data.object.clone(),
        );
        hooks.process(&redelivered).await.unwrap();
        assert_eq!(
            accounts.get(&org).await.unwrap().unwrap().credit,
            Picodollars(pico("25"))
        );

        // the card detached: gone
        let detached = serde_json::from_value::<Event>(json!({
            "id": "evt_d", "type": "payment_method.detached", "created": 500,
            "data": {"object": {"id": "pm_1", "customer": null},
                     "previous_attributes": {"customer": "cus_hooked"}}
        }))
        .unwrap();
        hooks.process(&detached).await.unwrap();
        assert!(accounts.get(&org).await.unwrap().unwrap().card.is_none());
    })
    .await;
}
