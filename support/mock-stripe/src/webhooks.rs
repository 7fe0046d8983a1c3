//! Webhook delivery, the way Stripe does it.
//!
//! Each event is POSTed as its JSON (pretty-printed, as Stripe sends it) with
//! `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`; the secret is
//! the whole `whsec_...` string, used as the key bytes. An answer outside 2xx, a refused
//! connection or a timeout fails the attempt, and the event is tried again after a delay that
//! doubles each time, up to the configured number of attempts. Every attempt is recorded.
//!
//! One worker task delivers events one at a time in the order they were queued (retries go back
//! into the queue at their due time, without holding up later events). Tests that need another
//! order hold delivery ([`Hub::set_hold`]) and then deliver chosen events in a chosen order
//! ([`Hub::deliver`]); delivering an event again is a duplicate delivery, as Stripe sometimes
//! makes.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::clock::real_now;
use crate::config::MockStripeConfig;
use crate::records::WebhookDelivery;
use crate::state::lock;

/// The `Stripe-Signature` header value for `body` signed at `timestamp` with `secret`:
/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
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

/// Where events go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub url: String,
    /// The signing secret, `whsec_...`.
    pub secret: String,
    /// Event types to deliver; `*` means all.
    pub enabled_events: Vec<String>,
}

impl WebhookEndpoint {
    fn wants(&self, event_type: &str) -> bool {
        self.enabled_events
            .iter()
            .any(|enabled| enabled == "*" || enabled == event_type)
    }
}

#[derive(Debug, Clone)]
struct Settings {
    attempts: u32,
    retry_base: Duration,
    timeout: Duration,
}

/// One event on its way to the endpoint.
#[derive(Debug)]
pub(crate) struct Job {
    event_id: String,
    event_type: String,
    body: Arc<String>,
    attempt: u32,
}

/// What the request handlers and the delivery worker share.
#[derive(Debug)]
pub(crate) struct Shared {
    endpoint: std::sync::Mutex<Option<WebhookEndpoint>>,
    settings: Settings,
    deliveries: std::sync::Mutex<Vec<WebhookDelivery>>,
    /// Queued or retrying deliveries not yet finished.
    pending: AtomicUsize,
    hold: AtomicBool,
    held: std::sync::Mutex<Vec<Value>>,
}

/// The sending side of webhook delivery.
pub(crate) struct Hub {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Job>,
}

impl Hub {
    pub fn new(config: &MockStripeConfig) -> (Hub, Arc<Shared>, mpsc::UnboundedReceiver<Job>) {
        let endpoint = config.webhook_url.as_ref().map(|url| WebhookEndpoint {
            url: url.clone(),
            secret: config.webhook_secret.clone(),
            enabled_events: config.enabled_events.clone(),
        });
        let shared = Arc::new(Shared {
            endpoint: std::sync::Mutex::new(endpoint),
            settings: Settings {
                attempts: config.webhook_attempts.max(1),
                retry_base: Duration::from_millis(config.webhook_retry_base_ms),
                timeout: Duration::from_millis(config.webhook_timeout_ms.max(1)),
            },
            deliveries: std::sync::Mutex::new(Vec::new()),
            pending: AtomicUsize::new(0),
            hold: AtomicBool::new(false),
            held: std::sync::Mutex::new(Vec::new()),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Hub {
                shared: shared.clone(),
                tx,
            },
            shared,
            rx,
        )
    }

    pub fn endpoint(&self) -> Option<WebhookEndpoint> {
        lock(&self.shared.endpoint).clone()
    }

    pub fn set_endpoint(&self, endpoint: Option<WebhookEndpoint>) {
        *lock(&self.shared.endpoint) = endpoint;
    }

    /// Whether an event of this type would go to the endpoint now (its `pending_webhooks`).
    pub fn would_deliver(&self, event_type: &str) -> bool {
        lock(&self.shared.endpoint)
            .as_ref()
            .is_some_and(|endpoint| endpoint.wants(event_type))
    }

    /// Queues newly made events, or keeps those for the endpoint back while delivery is held.
    pub fn publish(&self, events: Vec<Value>) {
        if events.is_empty() {
            return;
        }
        if self.shared.hold.load(AtomicOrdering::SeqCst) {
            let deliverable = events.into_iter().filter(|event| {
                self.would_deliver(
                    event
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                )
            });
            lock(&self.shared.held).extend(deliverable);
            return;
        }
        for event in &events {
            self.enqueue(event);
        }
    }

    /// Queues `events` in this order whatever the hold, taking them out of the held ones;
    /// an event already delivered is delivered again.
    pub fn deliver(&self, events: &[Value]) {
        {
            let mut held = lock(&self.shared.held);
            held.retain(|kept| !events.iter().any(|event| event.get("id") == kept.get("id")));
        }
        for event in events {
            self.enqueue(event);
        }
    }

    pub fn set_hold(&self, hold: bool) {
        self.shared.hold.store(hold, AtomicOrdering::SeqCst);
    }

    /// Ids of the events kept back while delivery is held, oldest first.
    pub fn held(&self) -> Vec<String> {
        lock(&self.shared.held)
            .iter()
            .filter_map(|event| event.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect()
    }

    /// Delivers the held events in the order they were made, and stops holding.
    pub fn release(&self) {
        self.set_hold(false);
        let held = std::mem::take(&mut *lock(&self.shared.held));
        for event in &held {
            self.enqueue(event);
        }
    }

    pub fn deliveries(&self) -> Vec<WebhookDelivery> {
        lock(&self.shared.deliveries).clone()
    }

    pub fn clear_deliveries(&self) {
        lock(&self.shared.deliveries).clear();
    }

    /// Deliveries queued or retrying.
    pub fn pending(&self) -> usize {
        self.shared.pending.load(AtomicOrdering::SeqCst)
    }

    fn enqueue(&self, event: &Value) {
        let event_type = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !self.would_deliver(&event_type) {
            return;
        }
        let Ok(body) = serde_json::to_string_pretty(event) else {
            return;
        };
        let job = Job {
            event_id: event
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            event_type,
            body: Arc::new(body),
            attempt: 1,
        };
        self.shared.pending.fetch_add(1, AtomicOrdering::SeqCst);
        if self.tx.send(job).is_err() {
            // The worker is gone (the server stopped); nothing will deliver it.
            self.shared.pending.fetch_sub(1, AtomicOrdering::SeqCst);
        }
    }
}

/// A job waiting for its due time; ordered by due time, then by queueing order.
struct Queued {
    due: Instant,
    seq: u64,
    job: Job,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// Delivers queued events until the sending side is dropped.
pub(crate) async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let client = match reqwest::Client::builder()
        .timeout(shared.settings.timeout)
        .tcp_nodelay(true)
        .no_proxy()
        .user_agent("Stripe/1.0 (+https://stripe.com/docs/webhooks)")
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            eprintln!("tollgate-mock-stripe: cannot build the webhook client: {err}");
            return;
        }
    };
    let mut queue: BinaryHeap<Reverse<Queued>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let next_due = queue.peek().map(|Reverse(queued)| queued.due);
        let received = match next_due {
            Some(due) => tokio::select! {
                message = rx.recv() => Some(message),
                () = tokio::time::sleep_until(due) => None,
            },
            None => Some(rx.recv().await),
        };
        match received {
            Some(Some(job)) => {
                seq += 1;
                queue.push(Reverse(Queued {
                    due: Instant::now(),
                    seq,
                    job,
                }));
            }
            Some(None) => return,
            None => {
                while queue
                    .peek()
                    .is_some_and(|Reverse(queued)| queued.due <= Instant::now())
                {
                    let Some(Reverse(queued)) = queue.pop() else {
                        break;
                    };
                    let job = queued.job;
                    if attempt(&client, &shared, &job).await
                        || job.attempt >= shared.settings.attempts
                    {
                        shared.pending.fetch_sub(1, AtomicOrdering::SeqCst);
                        continue;
                    }
                    let delay = shared
                        .settings
                        .retry_base
                        .saturating_mul(1u32 << (job.attempt - 1).min(20));
                    seq += 1;
                    queue.push(Reverse(Queued {
                        due: Instant::now() + delay,
                        seq,
                        job: Job {
                            attempt: job.attempt + 1,
                            ..job
                        },
                    }));
                }
            }
        }
    }
}

/// One delivery attempt; true when the endpoint answered 2xx.
async fn attempt(client: &reqwest::Client, shared: &Shared, job: &Job) -> bool {
    let Some(endpoint) = lock(&shared.endpoint).clone() else {
        return true;
    };
    let timestamp = real_now();
    let signature = sign(&endpoint.secret, timestamp, &job.body);
    let result = client
        .post(&endpoint.url)
        .header("content-type", "application/json; charset=utf-8")
        .header("stripe-signature", &signature)
        .body(job.body.as_ref().clone())
        .send()
        .await;
    let (status, error) = match result {
        Ok(response) => {
            let status = response.status().as_u16();
            // Read the answer so the connection can be reused; its content does not matter.
            let _ = response.bytes().await;
            (Some(status), None)
        }
        Err(err) => (None, Some(describe(&err))),
    };
    let succeeded = status.is_some_and(|s| (200..300).contains(&s));
    lock(&shared.deliveries).push(WebhookDelivery {
        event_id: job.event_id.clone(),
        event_type: job.event_type.clone(),
        attempt: job.attempt,
        url: endpoint.url,
        signature,
        body: job.body.as_ref().clone(),
        status,
        error,
        succeeded,
        at: timestamp,
    });
    succeeded
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        format!("could not connect: {err}")
    } else {
        err.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // HMAC-SHA256(key "whsec_test", "1700000000.{}"), computed with Python's hmac module.
        assert_eq!(
            sign("whsec_test", 1_700_000_000, "{}"),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }
}
