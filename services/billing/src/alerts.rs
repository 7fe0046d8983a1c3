//! Budget alerts: when a budget's spend reaches one of its thresholds (50, 80, 100% by
//! default), one event per threshold per period goes to the organization's webhook, signed
//! with HMAC-SHA256.
//!
//! Spend is read from the ledger's rollups after each committed batch, so alerts follow the
//! money actually recorded. An alert is a row in `budget_alerts`, whose primary key (budget,
//! end user, period, threshold) makes it fire once however many batches, processes or
//! replicas see the crossing; undelivered rows are the outbox that [`BudgetAlerts::deliver`]
//! works through with retries.
//!
//! The signature header is `tollgate-signature: t=<unix seconds>,v1=<hex>`, where the hex is
//! HMAC-SHA256 of `<t>.<body>` under the organization's webhook secret: a receiver recomputes
//! it and rejects old timestamps to stop replays.
//!
//! The webhook URL is the organization's choice, so every delivery goes through
//! [`OutboundClient`]: an address inside the network is refused as the connection is made,
//! whatever the URL was when it was set, and a redirect is an answer, never followed.

use std::collections::BTreeSet;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use rust_decimal::Decimal;
use serde_json::json;
use sha2::Sha256;
use sqlx::{AnyPool, Row};
use tokio::sync::Notify;
use tollgate_common::now_ms;
use tollgate_common::outbound::{OutboundClient, OutboundPolicy};
use tollgate_common::{BudgetPeriod, Picodollars};

use crate::usage::UsageRecord;

/// Deliveries are retried this many times, with backoff up to an hour, then given up.
const MAX_ATTEMPTS: i64 = 15;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "tollgate-signature";

/// A budget as the alert check needs it.
#[derive(Debug)]
struct Budget {
    id: String,
    scope: String,
    target: String,
    period: BudgetPeriod,
    limit_usd: Decimal,
    thresholds: Vec<u32>,
}

impl Budget {
    /// The rollup column the budget's scope narrows spend by, and whether `record` counts
    /// against it.
    fn covers(&self, record: &UsageRecord) -> bool {
        match self.scope.as_str() {
            "team" => record.team_id.as_deref() == Some(self.target.as_str()),
            "key" => record.key_id.as_deref() == Some(self.target.as_str()),
            "user" if self.target == "*" => record.end_user.is_some(),
            "user" => record.end_user.as_deref() == Some(self.target.as_str()),
            _ => true,
        }
    }
}

pub struct BudgetAlerts {
    pool: AnyPool,
    webhooks: OutboundClient,
    /// Wakes the delivery loop when alerts are added.
    added: Notify,
}

impl BudgetAlerts {
    /// `outbound` decides which webhook URLs may be called.
    pub fn new(pool: AnyPool, outbound: &OutboundPolicy) -> Result<Self, String> {
        let webhooks = OutboundClient::new(outbound, Duration::from_secs(10))
            .map_err(|e| format!("webhook client: {e}"))?;
        Ok(BudgetAlerts {
            pool,
            webhooks,
            added: Notify::new(),
        })
    }

    /// Records an alert for every threshold that newly recorded usage brought a budget to.
    pub async fn check(&self, new: &[&UsageRecord]) -> Result<(), sqlx::Error> {
        let now = now_ms();
        let orgs: BTreeSet<&str> = new.iter().map(|r| r.org_id.as_str()).collect();
        let mut added = false;
        for org in orgs {
            for budget in self.budgets(org).await? {
                let start = budget.period.start(now);
                let subjects: BTreeSet<String> = new
                    .iter()
                    .filter(|r| r.org_id == org && r.time_ms >= start && budget.covers(r))
                    .map(|r| {
                        if budget.scope == "user" && budget.target == "*" {
                            r.end_user.clone().unwrap_or_default()
                        } else {
                            String::new()
                        }
                    })
                    .collect();
                for subject in subjects {
                    let spent = self.spent(org, &budget, &subject, start).await?;
                    let limit =
                        Picodollars::from_usd(budget.limit_usd).unwrap_or(Picodollars(i64::MAX));
                    for &threshold in &budget.thresholds {
                        let reached = i128::from(spent.0) * 100
                            >= i128::from(limit.0) * i128::from(threshold);
                        if reached {
                            added |= self
                                .add(org, &budget, &subject, start, threshold, spent, now)
                                .await?;
                        }
                    }
                }
            }
        }
        if added {
            self.added.notify_one();
        }
        Ok(())
    }

    /// The organization's budgets, a key's own budget included.
    async fn budgets(&self, org: &str) -> Result<Vec<Budget>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, scope, target, period, limit_usd, thresholds FROM budgets \
             WHERE org_id = $1",
        )
        .bind(org.to_owned())
        .fetch_all(&self.pool)
        .await?;
        let mut budgets = Vec::with_capacity(rows.len());
        for row in &rows {
            let period: String = row.try_get("period")?;
            let limit: String = row.try_get("limit_usd")?;
            let thresholds: String = row.try_get("thresholds")?;
            let (Some(period), Ok(limit_usd), Ok(thresholds)) = (
                BudgetPeriod::parse(&period),
                limit.parse(),
                serde_json::from_str(&thresholds),
            ) else {
                continue;
            };
            budgets.push(Budget {
                id: row.try_get("id")?,
                scope: row.try_get("scope")?,
                target: row.try_get("target")?,
                period,
                limit_usd,
                thresholds,
            });
        }
        let keys = sqlx::query(
            "SELECT id, budget_usd, budget_period FROM virtual_keys \
             WHERE org_id = $1 AND budget_usd IS NOT NULL",
        )
        .bind(org.to_owned())
        .fetch_all(&self.pool)
        .await?;
        for row in &keys {
            let id: String = row.try_get("id")?;
            let limit: String = row.try_get("budget_usd")?;
            let period: Option<String> = row.try_get("budget_period")?;
            let Ok(limit_usd) = limit.parse() else {
                continue;
            };
            budgets.push(Budget {
                id: format!("key:{id}"),
                scope: "key".into(),
                target: id,
                period: period
                    .as_deref()
                    .and_then(BudgetPeriod::parse)
                    .unwrap_or(BudgetPeriod::Lifetime),
                limit_usd,
                thresholds: vec![50, 80, 100],
            });
        }
        Ok(budgets)
    }

    /// Spend against `budget` (for one end user of a per-user budget) since `start`.
    async fn spent(
        &self,
        org: &str,
        budget: &Budget,
        subject: &str,
        start: i64,
    ) -> Result<Picodollars, sqlx::Error> {
        let (column, value) = match budget.scope.as_str() {
            "team" => ("team_id", budget.target.as_str()),
            "key" => ("key_id", budget.target.as_str()),
            "user" if budget.target == "*" => ("end_user", subject),
            "user" => ("end_user", budget.target.as_str()),
            _ => ("org_id", org),
        };
        // `column` is one of four fixed names above, never input.
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(cost_pico), 0) AS BIGINT) AS spent FROM usage_rollups \
             WHERE granularity = 'day' AND org_id = $1 AND bucket_start >= $2 AND {column} = $3"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org.to_owned())
            .bind(start)
            .bind(value.to_owned())
            .fetch_one(&self.pool)
            .await?;
        Ok(Picodollars(row.try_get("spent")?))
    }

    /// Adds one alert unless it exists; true when it was new.
    #[allow(clippy::too_many_arguments)]
    async fn add(
        &self,
        org: &str,
        budget: &Budget,
        subject: &str,
        period_start: i64,
        threshold: u32,
        spent: Picodollars,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let id = uuid::Uuid::now_v7().to_string();
        let payload = json!({
            "id": id,
            "type": "budget.threshold_reached",
            "created_at": now / 1000,
            "organization_id": org,
            "budget": {
                "id": budget.id,
                "scope": budget.scope,
                "target": budget.target,
                "period": budget.period.as_str(),
                "limit_usd": budget.limit_usd.to_string(),
            },
            "end_user": (!subject.is_empty()).then_some(subject),
            "period_start": period_start / 1000,
            "threshold_percent": threshold,
            "spent_usd": spent.to_usd().normalize().to_string(),
        });
        let inserted = sqlx::query(
            "INSERT INTO budget_alerts (budget_id, subject, period_start, threshold, id, org_id, \
             payload, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (budget_id, subject, period_start, threshold) DO NOTHING",
        )
        .bind(budget.id.clone())
        .bind(subject.to_owned())
        .bind(period_start)
        .bind(i64::from(threshold))
        .bind(id)
        .bind(org.to_owned())
        .bind(payload.to_string())
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Delivers alerts for ever: woken when alerts are added, and every few seconds for
    /// retries.
    pub async fn deliver(&self) {
        loop {
            match self.deliver_due().await {
                Ok(0) => {
                    tokio::select! {
                        () = self.added.notified() => {}
                        () = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(%err, "budget alert delivery failed");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }

    /// Attempts every alert that is due; returns how many were attempted.
    pub async fn deliver_due(&self) -> Result<usize, sqlx::Error> {
        let now = now_ms();
        let due = sqlx::query(
            "SELECT a.id, a.payload, a.attempts, a.next_attempt_at, o.alert_webhook_url, \
             o.alert_webhook_secret FROM budget_alerts a JOIN organizations o ON o.id = a.org_id \
             WHERE a.delivered_at IS NULL AND a.next_attempt_at <= $1 \
             ORDER BY a.next_attempt_at LIMIT 50",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut attempted = 0;
        for row in &due {
            let id: String = row.try_get("id")?;
            let payload: String = row.try_get("payload")?;
            let attempts: i64 = row.try_get("attempts")?;
            let next: i64 = row.try_get("next_attempt_at")?;
            let url: Option<String> = row.try_get("alert_webhook_url")?;
            let secret: Option<String> = row.try_get("alert_webhook_secret")?;
            // Claim the row for a minute, so that other billing processes leave it alone.
            let claimed = sqlx::query(
                "UPDATE budget_alerts SET next_attempt_at = $1 \
                 WHERE id = $2 AND next_attempt_at = $3 AND delivered_at IS NULL",
            )
            .bind(now + 60_000)
            .bind(id.clone())
            .bind(next)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if claimed != 1 {
                continue;
            }
            attempted += 1;
            let outcome = match url.zip(secret) {
                None => Ok(()),
                Some((url, secret)) => self.post(&url, &secret, &id, &payload).await,
            };
            let attempts = attempts + 1;
            match outcome {
                Ok(()) => {
                    sqlx::query(
                        "UPDATE budget_alerts SET delivered_at = $1, attempts = $2 WHERE id = $3",
                    )
                    .bind(now_ms())
                    .bind(attempts)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                }
                Err(error) => {
                    let delay_ms = 1000_i64 << attempts.min(12);
                    let next = if attempts >= MAX_ATTEMPTS {
                        i64::MAX
                    } else {
                        now_ms() + delay_ms.min(3_600_000)
                    };
                    tracing::warn!(alert = %id, attempts, %error, "budget alert webhook failed");
                    sqlx::query(
                        "UPDATE budget_alerts SET attempts = $1, next_attempt_at = $2, \
                         last_error = $3 WHERE id = $4",
                    )
                    .bind(attempts)
                    .bind(next)
                    .bind(error)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                }
            }
        }
        Ok(attempted)
    }

    async fn post(&self, url: &str, secret: &str, id: &str, payload: &str) -> Result<(), String> {
        let timestamp = now_ms() / 1000;
        let request = self
            .webhooks
            .post(url)
            .map_err(|refusal| format!("the webhook URL is refused: {refusal}"))?;
        let response = request
            .header("content-type", "application/json")
            .header("tollgate-event-id", id)
            .header(SIGNATURE_HEADER, signature(secret, timestamp, payload))
            .body(payload.to_owned())
            .send()
            .await
            .map_err(|e| with_causes(&e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_redirection() {
            Err(format!(
                "the webhook answered {status}; redirects are not followed"
            ))
        } else {
            Err(format!("the webhook answered {status}"))
        }
    }
}

/// An error and its causes: reqwest's own message ("error sending request") hides whether the
/// address was refused, the connection was refused or the call timed out.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_and_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            signature("whsec_test", 1_700_000_000, r#"{"a":1}"#),
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }
}
