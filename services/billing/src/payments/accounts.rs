//! Each organization's billing account: its Stripe customer, card, plan, payment standing and
//! prepaid credit; the Stripe events already processed; invoices and credit top-ups.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use tollgate_common::Picodollars;

use super::pricing::Plan;

/// The card an organization pays with, as Stripe describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// The payment method's id (`pm_...`).
    pub id: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: i64,
    pub exp_year: i64,
}

/// Whether an organization's payments are in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Good,
    /// A payment failed at `since` (Unix ms) and no invoice has been paid since.
    PastDue {
        since: i64,
    },
}

/// One organization's billing account.
#[derive(Debug, Clone, PartialEq)]
pub struct BillingAccount {
    pub org_id: String,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub plan: Plan,
    pub card: Option<Card>,
    pub standing: Standing,
    /// Prepaid balance, in billable picodollars.
    pub credit: Picodollars,
}

/// An invoice as Stripe last described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invoice {
    pub id: String,
    pub status: String,
    pub currency: String,
    /// Cents.
    pub amount_due: i64,
    pub amount_paid: i64,
    pub hosted_url: Option<String>,
    pub pdf_url: Option<String>,
    /// Unix seconds.
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
}

/// What a month's billable usage (picodollars) comes to on its invoice: what the month's free
/// allowance and the prepaid credit leave, never below zero. The credit is what is left plus
/// what the month already drew, since `billable` includes the usage that drew it. The usage
/// reports draw in this order ([`super::reports`]).
pub fn invoiced(billable: i64, free_allowance: i64, credit_left: i64, credit_drawn: i64) -> i64 {
    billable
        .saturating_sub(free_allowance.max(0))
        .saturating_sub(credit_left.max(0))
        .saturating_sub(credit_drawn.max(0))
        .max(0)
}

fn account_from_row(row: &AnyRow) -> Result<BillingAccount, sqlx::Error> {
    let plan: String = row.try_get("plan")?;
    let card: Option<String> = row.try_get("payment_method")?;
    let standing: String = row.try_get("standing")?;
    let since: Option<i64> = row.try_get("past_due_since")?;
    Ok(BillingAccount {
        org_id: row.try_get("org_id")?,
        stripe_customer_id: row.try_get("stripe_customer_id")?,
        stripe_subscription_id: row.try_get("stripe_subscription_id")?,
        plan: Plan::parse(&plan).unwrap_or(Plan::PayAsYouGo),
        card: card.and_then(|c| serde_json::from_str(&c).ok()),
        standing: match (standing.as_str(), since) {
            ("past_due", Some(since)) => Standing::PastDue { since },
            _ => Standing::Good,
        },
        credit: Picodollars(row.try_get("credit_pico")?),
    })
}

const ACCOUNT_COLUMNS: &str = "org_id, stripe_customer_id, stripe_subscription_id, plan, \
                               payment_method, standing, past_due_since, credit_pico";

/// The billing tables.
#[derive(Clone)]
pub struct Accounts {
    pool: AnyPool,
}

impl Accounts {
    pub fn new(pool: AnyPool) -> Self {
        Accounts { pool }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn get(&self, org: &str) -> Result<Option<BillingAccount>, sqlx::Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM billing_accounts WHERE org_id = $1"
        )))
        .bind(org.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    /// The organization's account, opened on `plan` if it has none.
    pub async fn open(&self, org: &str, plan: Plan) -> Result<BillingAccount, sqlx::Error> {
        let now = tollgate_common::now_ms();
        sqlx::query(
            "INSERT INTO billing_accounts (org_id, plan, standing, standing_event_at, \
             credit_pico, created_at, updated_at) VALUES ($1, $2, 'good', 0, 0, $3, $3) \
             ON CONFLICT (org_id) DO NOTHING",
        )
        .bind(org.to_owned())
        .bind(plan.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.get(org).await?.ok_or_else(|| sqlx::Error::RowNotFound)
    }

    /// Moves the organization to `plan` (opening its account if need be).
    pub async fn set_plan(&self, org: &str, plan: Plan) -> Result<(), sqlx::Error> {
        self.open(org, plan).await?;
        sqlx::query("UPDATE billing_accounts SET plan = $1, updated_at = $2 WHERE org_id = $3")
            .bind(plan.as_str())
            .bind(tollgate_common::now_ms())
            .bind(org.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the Stripe customer made for the organization (the first one wins).
    pub async fn set_customer(&self, org: &str, customer: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE billing_accounts SET stripe_customer_id = $1, updated_at = $2 \
             WHERE org_id = $3 AND stripe_customer_id IS NULL",
        )
        .bind(customer.to_owned())
        .bind(tollgate_common::now_ms())
        .bind(org.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records (or clears) the organization's usage subscription.
    pub async fn set_subscription(
        &self,
        org: &str,
        subscription: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE billing_accounts SET stripe_subscription_id = $1, updated_at = $2 \
             WHERE org_id = $3",
        )
        .bind(subscription.map(str::to_owned))
        .bind(tollgate_common::now_ms())
        .bind(org.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The organization a Stripe customer belongs to.
    pub async fn org_of_customer(&self, customer: &str) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query("SELECT org_id FROM billing_accounts WHERE stripe_customer_id = $1")
            .bind(customer.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("org_id")).transpose()
    }

    /// Sets (or clears) the card of the customer's organization.
    pub async fn set_card(&self, customer: &str, card: Option<&Card>) -> Result<(), sqlx::Error> {
        let card = card
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query(
            "UPDATE billing_accounts SET payment_method = $1, updated_at = $2 \
             WHERE stripe_customer_id = $3",
        )
        .bind(card)
        .bind(tollgate_common::now_ms())
        .bind(customer.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Clears the card if it is `payment_method` (a detached card that was the default).
    pub async fn remove_card(
        &self,
        customer: &str,
        payment_method: &str,
    ) -> Result<(), sqlx::Error> {
        let Some(org) = self.org_of_customer(customer).await? else {
            return Ok(());
        };
        let account = self.get(&org).await?;
        if account
            .and_then(|a| a.card)
            .is_some_and(|c| c.id == payment_method)
        {
            self.set_card(customer, None).await?;
        }
        Ok(())
    }

    /// Sets the standing from a Stripe event created at `event_at` (Unix seconds), unless an
    /// event at least as recent already set it: events delivered out of order leave the
    /// newest word standing. Returns whether it changed.
    pub async fn set_standing(
        &self,
        customer: &str,
        standing: Standing,
        event_at: i64,
    ) -> Result<bool, sqlx::Error> {
        let (text, since) = match standing {
            Standing::Good => ("good", None),
            Standing::PastDue { since } => ("past_due", Some(since)),
        };
        let done = sqlx::query(
            "UPDATE billing_accounts SET standing = $1, \
             past_due_since = CASE WHEN $1 = 'good' THEN NULL \
                 WHEN standing = 'past_due' THEN past_due_since ELSE $2 END, \
             standing_event_at = $3, updated_at = $4 \
             WHERE stripe_customer_id = $5 AND standing_event_at <= $3",
        )
        .bind(text)
        .bind(since)
        .bind(event_at)
        .bind(tollgate_common::now_ms())
        .bind(customer.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a Stripe event as processed; false if it already was.
    pub async fn first_delivery(
        &self,
        event_id: &str,
        event_type: &str,
        created: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO stripe_events (id, type, created, received_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(event_id.to_owned())
        .bind(event_type.to_owned())
        .bind(created)
        .bind(tollgate_common::now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets that an event was processed (its processing failed, so that Stripe's retry is
    /// processed again).
    pub async fn forget_delivery(&self, event_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM stripe_events WHERE id = $1")
            .bind(event_id.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores an invoice as an event created at `event_at` describes it, unless a newer event
    /// already did.
    pub async fn save_invoice(
        &self,
        org: &str,
        invoice: &Invoice,
        event_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO invoices (id, org_id, status, currency, amount_due, amount_paid, \
             hosted_url, pdf_url, period_start, period_end, event_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
             amount_due = excluded.amount_due, amount_paid = excluded.amount_paid, \
             hosted_url = excluded.hosted_url, pdf_url = excluded.pdf_url, \
             event_at = excluded.event_at \
             WHERE invoices.event_at <= excluded.event_at",
        )
        .bind(invoice.id.clone())
        .bind(org.to_owned())
        .bind(invoice.status.clone())
        .bind(invoice.currency.clone())
        .bind(invoice.amount_due)
        .bind(invoice.amount_paid)
        .bind(invoice.hosted_url.clone())
        .bind(invoice.pdf_url.clone())
        .bind(invoice.period_start)
        .bind(invoice.period_end)
        .bind(event_at)
        .bind(invoice.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The organization's invoices, newest first.
    pub async fn invoices(&self, org: &str, limit: i64) -> Result<Vec<Invoice>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, status, currency, amount_due, amount_paid, hosted_url, pdf_url, \
             period_start, period_end, created_at FROM invoices WHERE org_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(org.to_owned())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Invoice {
                    id: row.try_get("id")?,
                    status: row.try_get("status")?,
                    currency: row.try_get("currency")?,
                    amount_due: row.try_get("amount_due")?,
                    amount_paid: row.try_get("amount_paid")?,
                    hosted_url: row.try_get("hosted_url")?,
                    pdf_url: row.try_get("pdf_url")?,
                    period_start: row.try_get("period_start")?,
                    period_end: row.try_get("period_end")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Adds prepaid credit paid through Checkout Session `session`, once however often the
    /// event comes. Returns whether it was added now.
    pub async fn grant_credit(
        &self,
        session: &str,
        org: &str,
        amount: Picodollars,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let now = tollgate_common::now_ms();
        let granted = sqlx::query(
            "INSERT INTO credit_grants (id, org_id, amount_pico, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(session.to_owned())
        .bind(org.to_owned())
        .bind(amount.0)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if granted.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE billing_accounts SET credit_pico = credit_pico + $1, updated_at = $2 \
             WHERE org_id = $3",
        )
        .bind(amount.0)
        .bind(now)
        .bind(org.to_owned())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_invoice_is_what_the_free_allowance_and_credit_leave() {
        // $12 of usage, $5 free, $3 of credit left and $2 drawn this month: $2 invoiced
        let usd = |n: i64| n * 1_000_000_000_000;
        assert_eq!(invoiced(usd(12), usd(5), usd(3), usd(2)), usd(2));
        // covered: nothing, never less
        assert_eq!(invoiced(usd(4), usd(5), usd(3), 0), 0);
        assert_eq!(invoiced(0, 0, 0, 0), 0);
        // a negative balance (never expected) is no credit
        assert_eq!(invoiced(usd(6), usd(5), -usd(3), 0), usd(1));
        assert_eq!(invoiced(i64::MAX, 0, 0, 0), i64::MAX);
    }
}
