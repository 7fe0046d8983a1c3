//! Where budget alerts may be delivered: never inside the network unless the operator opened
//! it, whatever webhook URL is stored, and never where a redirect points. On both databases.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use common::{OK, Receiver, both};
use sqlx::Row;
use tollgate_auth::store::AuthStore;
use tollgate_billing::alerts::BudgetAlerts;
use tollgate_common::config::OutboundConfig;
use tollgate_common::now_ms;
use tollgate_common::outbound::OutboundPolicy;

fn allowing(entries: &[&str]) -> OutboundPolicy {
    OutboundPolicy::new(&OutboundConfig {
        allow_hosts: entries.iter().map(|e| e.parse().unwrap()).collect(),
    })
}

/// Stores the organization's webhook URL directly, as a row written before these checks
/// existed, or a name that has since been rebound, would be.
async fn store_webhook(store: &AuthStore, org: &str, url: &str) {
    sqlx::query(
        "UPDATE organizations SET alert_webhook_url = $1, alert_webhook_secret = $2 WHERE id = $3",
    )
    .bind(url.to_owned())
    .bind("whsec_test".to_owned())
    .bind(org.to_owned())
    .execute(store.pool())
    .await
    .unwrap();
}

/// An alert due now; returns its id.
async fn add_due_alert(store: &AuthStore, org: &str) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO budget_alerts (budget_id, subject, period_start, threshold, id, org_id, \
         payload, created_at, next_attempt_at) VALUES ($1, '', 0, 100, $2, $3, '{}', $4, $5)",
    )
    .bind(format!("budget-{id}"))
    .bind(id.clone())
    .bind(org.to_owned())
    .bind(now)
    .bind(now)
    .execute(store.pool())
    .await
    .unwrap();
    id
}

struct AlertState {
    delivered_at: Option<i64>,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
}

async fn alert_state(store: &AuthStore, id: &str) -> AlertState {
    let row = sqlx::query(
        "SELECT delivered_at, attempts, next_attempt_at, last_error FROM budget_alerts \
         WHERE id = $1",
    )
    .bind(id.to_owned())
    .fetch_one(store.pool())
    .await
    .unwrap();
    AlertState {
        delivered_at: row.try_get("delivered_at").unwrap(),
        attempts: row.try_get("attempts").unwrap(),
        next_attempt_at: row.try_get("next_attempt_at").unwrap(),
        last_error: row.try_get("last_error").unwrap(),
    }
}

#[tokio::test]
async fn a_stored_webhook_inside_the_network_is_refused_until_the_operator_opens_it() {
    both(async |store: AuthStore| {
        let receiver = Receiver::start(OK.into()).await;
        let port = receiver.port();
        let (org, _) = store.create_organization("Inside", "test").await.unwrap();
        let org = org.id.to_string();
        let strict = BudgetAlerts::new(store.pool().clone(), &OutboundPolicy::default()).unwrap();
        let mut alerts = Vec::new();
        for (url, reason) in [
            (
                format!("http://127.0.0.1:{port}/hook"),
                "127.0.0.1 is a loopback address",
            ),
            (
                format!("http://[::ffff:127.0.0.1]:{port}/hook"),
                "::ffff:127.0.0.1 is a loopback address",
            ),
            (
                format!("http://2130706433:{port}/hook"),
                "127.0.0.1 is a loopback address",
            ),
            (
                format!("http://localhost:{port}/hook"),
                "`localhost` names this machine",
            ),
        ] {
            store_webhook(&store, &org, &url).await;
            let alert = add_due_alert(&store, &org).await;
            let before = now_ms();
            assert_eq!(strict.deliver_due().await.unwrap(), 1, "{url}");
            let state = alert_state(&store, &alert).await;
            assert_eq!(state.delivered_at, None, "{url}");
            assert_eq!(state.attempts, 1, "{url}");
            assert!(state.next_attempt_at > before, "{url}: retried later");
            let error = state.last_error.unwrap_or_default();
            assert!(
                error.contains("refused") && error.contains(reason),
                "{url}: {error}"
            );
            alerts.push(alert);
        }
        assert_eq!(receiver.connections(), 0, "the receiver was reached");

        // The operator opens the receiver's address and port: the same alerts are delivered.
        store_webhook(&store, &org, &format!("http://127.0.0.1:{port}/hook")).await;
        sqlx::query("UPDATE budget_alerts SET next_attempt_at = 0")
            .execute(store.pool())
            .await
            .unwrap();
        let open = BudgetAlerts::new(
            store.pool().clone(),
            &allowing(&[&format!("127.0.0.1:{port}")]),
        )
        .unwrap();
        assert_eq!(open.deliver_due().await.unwrap(), alerts.len());
        assert_eq!(receiver.connections(), alerts.len());
        for alert in &alerts {
            assert!(alert_state(&store, alert).await.delivered_at.is_some());
        }
    })
    .await;
}

#[tokio::test]
async fn a_redirect_from_an_allowed_receiver_to_an_address_inside_is_not_followed() {
    both(async |store: AuthStore| {
        let inside = Receiver::start(OK.into()).await;
        let inside_port = inside.port();
        let redirecting = Receiver::start(format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{inside_port}/hook\r\n\
             content-length: 0\r\nconnection: close\r\n\r\n"
        ))
        .await;
        let port = redirecting.port();
        let (org, _) = store
            .create_organization("Redirected", "test")
            .await
            .unwrap();
        let org = org.id.to_string();
        store_webhook(&store, &org, &format!("http://127.0.0.1:{port}/hook")).await;
        let alert = add_due_alert(&store, &org).await;
        let alerts = BudgetAlerts::new(
            store.pool().clone(),
            &allowing(&[&format!("127.0.0.1:{port}")]),
        )
        .unwrap();
        assert_eq!(alerts.deliver_due().await.unwrap(), 1);
        assert_eq!(redirecting.connections(), 1);
        assert_eq!(inside.connections(), 0, "the redirect was followed");
        let state = alert_state(&store, &alert).await;
        assert_eq!(state.delivered_at, None);
        let error = state.last_error.unwrap_or_default();
        assert!(
            error.contains("307") && error.contains("redirects are not followed"),
            "{error}"
        );
    })
    .await;
}
