//! Stripe's webhooks: each delivery's signature checked (HMAC-SHA256 of `"{t}.{body}"` under
//! the endpoint's secret, compared in constant time, `t` within the tolerance), each event
//! processed once (its id is recorded in the same step that claims it), and events delivered
//! out of order handled by their `created` time: an older event never overrides what a newer
//! one said about an organization's standing or an invoice.

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use tollgate_common::Picodollars;

use super::accounts::{Accounts, Card, Invoice, Standing};
use super::outbox::{Outbox, StripeCall};

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing or malformed")]
    Malformed,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

/// Checks a delivery's `Stripe-Signature` header against its raw body.
pub fn verify_signature(
    body: &[u8],
    header: &str,
    secret: &str,
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let mut timestamp: Option<i64> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let Some((name, value)) = part.trim().split_once('=') else {
            continue;
        };
        match name {
            "t" => timestamp = value.parse().ok(),
            // Other schemes (v0, test-mode extras) are not Stripe's live signatures.
            "v1" => {
                if let Ok(bytes) = hex::decode(value) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now_secs - timestamp).abs() > tolerance_secs {
        return Err(SignatureError::Stale);
    }
    let mac = || {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .map_err(|_| SignatureError::Malformed)?;
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        Ok::<_, SignatureError>(mac)
    };
    for signature in &signatures {
        // `verify_slice` compares in constant time.
        if mac()?.verify_slice(signature).is_ok() {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

/// A Stripe event, with the parts billing reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds.
    pub created: i64,
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub object: Value,
    #[serde(default)]
    pub previous_attributes: Option<Value>,
}

/// What processing an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// The event was handled (or is of a type billing ignores); `changed` is the organization
    /// whose card, standing or credit it changed, whose keys' contexts are now stale.
    Applied { changed: Option<String> },
    /// The event was processed before: nothing done.
    Duplicate,
}

fn text<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get(field).and_then(Value::as_str)
}

fn card_of(object: &Value) -> Option<Card> {
    let card = object.get("card")?;
    Some(Card {
        id: text(object, "id")?.to_owned(),
        brand: text(card, "brand").unwrap_or("card").to_owned(),
        last4: text(card, "last4").unwrap_or("????").to_owned(),
        exp_month: card.get("exp_month").and_then(Value::as_i64).unwrap_or(0),
        exp_year: card.get("exp_year").and_then(Value::as_i64).unwrap_or(0),
    })
}

fn invoice_of(object: &Value) -> Option<Invoice> {
    let number = |field: &str| object.get(field).and_then(Value::as_i64);
    Some(Invoice {
        id: text(object, "id")?.to_owned(),
        status: text(object, "status").unwrap_or("draft").to_owned(),
        currency: text(object, "currency").unwrap_or("usd").to_owned(),
        amount_due: number("amount_due").unwrap_or(0),
        amount_paid: number("amount_paid").unwrap_or(0),
        hosted_url: text(object, "hosted_invoice_url").map(str::to_owned),
        pdf_url: text(object, "invoice_pdf").map(str::to_owned),
        period_start: number("period_start"),
        period_end: number("period_end"),
        created_at: number("created").unwrap_or(0),
    })
}

/// Applies Stripe events to the billing accounts.
pub struct WebhookProcessor {
    accounts: Accounts,
}

impl WebhookProcessor {
    pub fn new(accounts: Accounts) -> Self {
        WebhookProcessor { accounts }
    }

    /// Processes `event` once. A failure forgets the event again, so that Stripe's next
    /// delivery of it is processed.
    pub async fn process(&self, event: &Event) -> Result<Processed, sqlx::Error> {
        if !self
            .accounts
            .first_delivery(&event.id, &event.kind, event.created)
            .await?
        {
            return Ok(Processed::Duplicate);
        }
        match self.apply(event).await {
            Ok(changed) => Ok(Processed::Applied { changed }),
            Err(err) => {
                self.accounts.forget_delivery(&event.id).await?;
                Err(err)
            }
        }
    }

    /// Applies one event; returns the organization whose account it changed.
    async fn apply(&self, event: &Event) -> Result<Option<String>, sqlx::Error> {
        let object = &event.data.object;
        let customer = text(object, "customer");
        let owner = async |customer: Option<&str>| match customer {
            Some(customer) => self.accounts.org_of_customer(customer).await,
            None => Ok(None),
        };
        match event.kind.as_str() {
            "payment_method.attached" => {
                if let (Some(customer), Some(card)) = (customer, card_of(object)) {
                    self.accounts.set_card(customer, Some(&card)).await?;
                    let org = owner(Some(customer)).await?;
                    if let Some(org) = &org {
                        self.subscribe(org, &card.id).await?;
                    }
                    return Ok(org);
                }
            }
            "payment_method.detached" => {
                // A detached method no longer names its customer; the previous value does.
                let previous = event
                    .data
                    .previous_attributes
                    .as_ref()
                    .and_then(|p| text(p, "customer"));
                if let (Some(customer), Some(id)) = (previous.or(customer), text(object, "id")) {
                    self.accounts.remove_card(customer, id).await?;
                    return owner(Some(customer)).await;
                }
            }
            "checkout.session.completed" => return self.checkout_completed(object).await,
            "customer.subscription.deleted" | "customer.subscription.updated" => {
                let status = text(object, "status").unwrap_or("active");
                let ended = event.kind.ends_with("deleted")
                    || matches!(status, "canceled" | "unpaid" | "incomplete_expired");
                if let (true, Some(customer)) = (ended, customer)
                    && let Some(org) = owner(Some(customer)).await?
                {
                    // Usage can no longer be invoiced: the organization is back on its free
                    // allowance and credit until it adds a card again.
                    self.accounts.set_subscription(&org, None).await?;
                    self.accounts.set_card(customer, None).await?;
                    return Ok(Some(org));
                }
            }
            "invoice.paid" | "invoice.payment_succeeded" => {
                self.save_invoice(object, event.created).await?;
                if let Some(customer) = customer {
                    self.accounts
                        .set_standing(customer, Standing::Good, event.created)
                        .await?;
                    return owner(Some(customer)).await;
                }
            }
            "invoice.payment_failed" => {
                self.save_invoice(object, event.created).await?;
                if let Some(customer) = customer {
                    let since = event.created.saturating_mul(1000);
                    self.accounts
                        .set_standing(customer, Standing::PastDue { since }, event.created)
                        .await?;
                    return owner(Some(customer)).await;
                }
            }
            kind if kind.starts_with("invoice.") => {
                self.save_invoice(object, event.created).await?;
            }
            _ => {}
        }
        Ok(None)
    }

    /// Queues the organization's subscription to the usage price, unless it has one; once per
    /// card, so that a card added after a cancellation subscribes again.
    async fn subscribe(&self, org: &str, card: &str) -> Result<(), sqlx::Error> {
        let account = self.accounts.get(org).await?;
        if account.is_some_and(|a| a.stripe_subscription_id.is_some()) {
            return Ok(());
        }
        let mut conn = self.accounts.pool().acquire().await?;
        let call = StripeCall::Subscribe {
            org_id: org.to_owned(),
        };
        let key = format!("tollgate-subscription-{org}-{card}");
        Outbox::enqueue(&mut conn, &call, &key, tollgate_common::now_ms()).await?;
        Ok(())
    }

    async fn save_invoice(&self, object: &Value, event_at: i64) -> Result<(), sqlx::Error> {
        let Some(customer) = text(object, "customer") else {
            return Ok(());
        };
        let (Some(org), Some(invoice)) = (
            self.accounts.org_of_customer(customer).await?,
            invoice_of(object),
        ) else {
            return Ok(());
        };
        self.accounts.save_invoice(&org, &invoice, event_at).await
    }

    /// A paid top-up adds credit (once per session); a setup session's card arrives with
    /// `payment_method.attached`.
    async fn checkout_completed(&self, object: &Value) -> Result<Option<String>, sqlx::Error> {
        let purpose = object.get("metadata").and_then(|m| text(m, "purpose"));
        if purpose != Some("credit_top_up") || text(object, "payment_status") != Some("paid") {
            return Ok(None);
        }
        let (Some(session), Some(customer), Some(cents)) = (
            text(object, "id"),
            text(object, "customer"),
            object.get("amount_total").and_then(Value::as_i64),
        ) else {
            return Ok(None);
        };
        // The customer, not the metadata, says whose credit it is.
        let Some(org) = self.accounts.org_of_customer(customer).await? else {
            tracing::warn!(%session, "a top-up for an unknown Stripe customer");
            return Ok(None);
        };
        let amount = Picodollars(cents.saturating_mul(10_000_000_000));
        self.accounts.grant_credit(session, &org, amount).await?;
        Ok(Some(org))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_are_checked_with_their_timestamp() {
        let body = br#"{"id":"evt_1"}"#;
        let secret = "whsec_test";
        let header = sign(secret, 1_000, body);
        assert_eq!(verify_signature(body, &header, secret, 1_100, 300), Ok(()));
        assert_eq!(
            verify_signature(body, &header, secret, 1_400, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature(b"{}", &header, secret, 1_100, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(body, &header, "whsec_other", 1_100, 300),
            Err(SignatureError::Mismatch)
        );
        // several signatures (a secret being rolled): any one matching will do
        let rolled = format!("{header},v1={}", "00".repeat(32));
        assert_eq!(verify_signature(body, &rolled, secret, 1_100, 300), Ok(()));
        for bad in ["", "t=1000", "v1=abcd", "t=x,v1=00", "garbage"] {
            assert!(
                verify_signature(body, bad, secret, 1_100, 300).is_err(),
                "{bad}"
            );
        }
    }
}
