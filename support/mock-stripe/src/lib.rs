//! A local stand-in for the Stripe API (v1), for tests of Tollgate's billing: it speaks
//! Stripe's wire format (form-encoded requests in bracket notation, secret-key authentication,
//! JSON objects with Stripe's ids and fields, list objects with cursor pagination, Stripe's error
//! bodies, idempotency keys) and delivers signed webhooks, with controls for what the
//! outside world would do (a customer completing Checkout, an invoice being paid or failing) and
//! for failure injection.
//!
//! What it serves, by module:
//! - `api`: the pipeline every `/v1` request runs through (log, injected failures,
//!   authentication, parameters, idempotency, endpoint, events);
//! - `resources`: customers, Checkout Sessions, portal sessions, meters and meter events (with
//!   summaries), products and prices, subscriptions, invoices, payment methods, events;
//! - `webhooks`: signing and delivery with retries;
//! - `control`: the `/_mock/...` test controls (listed there), also offered as methods of
//!   [`MockStripe`];
//! - `pages`: the Checkout, portal and invoice pages behind the URLs the API hands out.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use tollgate_mock_stripe::{MockStripe, MockStripeConfig};
//! let stripe = MockStripe::start(MockStripeConfig {
//!     webhook_url: Some("http://127.0.0.1:8080/stripe/webhook".into()),
//!     ..MockStripeConfig::default()
//! })
//! .await?;
//! // Point the client at stripe.url() with stripe.api_key(); verify webhooks with
//! // stripe.webhook_secret().
//! # Ok(()) }
//! ```

// The `json!` literals of Stripe's larger objects (Checkout Session, invoice) nest deeply.
#![recursion_limit = "256"]

mod api;
mod clock;
mod config;
mod control;
mod error;
mod form;
mod ids;
mod pages;
mod records;
mod resources;
mod state;
mod webhooks;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub use config::{API_VERSION, MockStripeConfig};
pub use error::ControlError;
pub use records::{MeterEventRecord, Outage, RecordedRequest, RefusedMeterEvent, WebhookDelivery};
pub use resources::invoices::InvoiceSpec;
pub use resources::payment_methods::TestCard;
pub use resources::subscriptions::SubscriptionChange;
pub use webhooks::{WebhookEndpoint, sign};

use control::InvoiceOutcome;
use state::State;

/// A running mock Stripe, serving on its own thread until stopped or dropped.
pub struct MockStripe {
    addr: SocketAddr,
    state: Arc<State>,
    handle: Option<ServerHandle>,
    finished: Option<oneshot::Receiver<()>>,
}

impl MockStripe {
    /// Binds 127.0.0.1 on a free port and serves in the background.
    pub async fn start(config: MockStripeConfig) -> anyhow::Result<MockStripe> {
        MockStripe::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Binds `addr` and serves in the background.
    pub async fn start_on(
        addr: SocketAddr,
        config: MockStripeConfig,
    ) -> anyhow::Result<MockStripe> {
        let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        listener.set_nonblocking(true)?;
        let bound = listener.local_addr()?;
        let base_url = config
            .public_url
            .clone()
            .map(|url| url.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("http://{bound}"));
        let (hub, shared, deliveries) = webhooks::Hub::new(&config);
        let state = Arc::new(State::new(config, base_url, hub));
        let (ready_tx, ready_rx) = oneshot::channel();
        let (finished_tx, finished_rx) = oneshot::channel();
        let server_state = state.clone();
        // Its own actix System on a dedicated thread, as the mock provider does: it works the
        // same under any test runtime and outlives none of them. The webhook worker runs there
        // too.
        std::thread::Builder::new()
            .name(format!("mock-stripe-{}", bound.port()))
            .spawn(move || {
                let system = actix_web::rt::System::new();
                system.block_on(async move {
                    actix_web::rt::spawn(webhooks::run(shared, deliveries));
                    match build_server(listener, server_state) {
                        Ok(server) => {
                            let _ = ready_tx.send(Ok(server.handle()));
                            let _ = server.await;
                        }
                        Err(err) => {
                            let _ = ready_tx.send(Err(err));
                        }
                    }
                });
                let _ = finished_tx.send(());
            })
            .context("spawning the mock Stripe thread")?;
        let handle = ready_rx
            .await
            .context("the mock Stripe thread ended before it started serving")??;
        Ok(MockStripe {
            addr: bound,
            state,
            handle: Some(handle),
            finished: Some(finished_rx),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:PORT`; the API is under `/v1`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The secret key clients must send.
    pub fn api_key(&self) -> &str {
        &self.state.config.api_key
    }

    /// The current webhook endpoint's signing secret (else the configured one).
    pub fn webhook_secret(&self) -> String {
        self.state
            .hub
            .endpoint()
            .map_or_else(|| self.state.config.webhook_secret.clone(), |e| e.secret)
    }

    /// The webhook endpoint, if any.
    pub fn webhook_endpoint(&self) -> Option<WebhookEndpoint> {
        self.state.hub.endpoint()
    }

    /// Sets (or with `None` removes) the webhook endpoint; new events go there.
    pub fn set_webhook_endpoint(&self, endpoint: Option<WebhookEndpoint>) {
        self.state.hub.set_endpoint(endpoint);
    }

    /// Points webhooks at `url`, keeping the secret and enabled events.
    pub fn set_webhook_url(&self, url: &str) {
        let current = self.state.hub.endpoint();
        self.state.hub.set_endpoint(Some(WebhookEndpoint {
            url: url.to_owned(),
            secret: self.webhook_secret(),
            enabled_events: current.map_or_else(
                || self.state.config.enabled_events.clone(),
                |e| e.enabled_events,
            ),
        }));
    }

    // ----- what the customer and Stripe's billing cycle do -----

    /// Completes an open Checkout Session with the test card Visa 4242. Setup mode: a card
    /// payment method attached to the customer (and made its default unless configured off),
    /// a succeeded SetupIntent, and `payment_method.attached`, `setup_intent.succeeded`,
    /// `customer.updated`, `checkout.session.completed`. Payment mode: a succeeded
    /// PaymentIntent for `amount_total`, `payment_intent.succeeded` and
    /// `checkout.session.completed` with `payment_status: paid`.
    pub fn complete_checkout(&self, session_id: &str) -> Result<Value, ControlError> {
        control::complete_checkout(&self.state, session_id, &TestCard::default())
    }

    /// Completes an open Checkout Session with the given card.
    pub fn complete_checkout_with(
        &self,
        session_id: &str,
        card: &TestCard,
    ) -> Result<Value, ControlError> {
        control::complete_checkout(&self.state, session_id, card)
    }

    /// Creates an invoice (`invoice.created`, then `invoice.finalized` unless a draft).
    pub fn create_invoice(&self, spec: &InvoiceSpec) -> Result<Value, ControlError> {
        control::create_invoice(&self.state, spec)
    }

    /// Pays an open invoice (`invoice.paid`, `invoice.payment_succeeded`).
    pub fn pay_invoice(&self, id: &str) -> Result<Value, ControlError> {
        control::settle_invoice(&self.state, id, InvoiceOutcome::Pay)
    }

    /// Fails a payment attempt (`invoice.payment_failed`; the invoice stays open).
    pub fn fail_invoice_payment(&self, id: &str) -> Result<Value, ControlError> {
        control::settle_invoice(&self.state, id, InvoiceOutcome::Fail)
    }

    /// Marks an open invoice uncollectible (`invoice.marked_uncollectible`).
    pub fn mark_invoice_uncollectible(&self, id: &str) -> Result<Value, ControlError> {
        control::settle_invoice(&self.state, id, InvoiceOutcome::Uncollectible)
    }

    /// Voids an open invoice (`invoice.voided`).
    pub fn void_invoice(&self, id: &str) -> Result<Value, ControlError> {
        control::settle_invoice(&self.state, id, InvoiceOutcome::Void)
    }

    /// Changes a subscription (`customer.subscription.updated` with `previous_attributes`).
    pub fn update_subscription(
        &self,
        id: &str,
        change: &SubscriptionChange,
    ) -> Result<Value, ControlError> {
        control::update_subscription(&self.state, id, change)
    }

    /// Cancels a subscription now (`customer.subscription.deleted`).
    pub fn cancel_subscription(&self, id: &str) -> Result<Value, ControlError> {
        control::cancel_subscription(&self.state, id)
    }

    /// Detaches a payment method from its customer (`payment_method.detached`).
    pub fn detach_payment_method(&self, id: &str) -> Result<Value, ControlError> {
        control::detach_payment_method(&self.state, id)
    }

    /// Emits an event of any type about `object`; returns the event.
    pub fn emit_event(&self, event_type: &str, object: &Value) -> Value {
        control::emit_event(&self.state, event_type, object)
    }

    // ----- webhook delivery -----

    /// Delivers stored events in this order, whether or not they were delivered before: a
    /// duplicate delivery, or out-of-order delivery of held events.
    pub fn deliver_events(&self, event_ids: &[&str]) -> Result<(), ControlError> {
        let ids: Vec<String> = event_ids.iter().map(|id| (*id).to_owned()).collect();
        control::deliver_events(&self.state, &ids)
    }

    /// Delivers one event again.
    pub fn redeliver(&self, event_id: &str) -> Result<(), ControlError> {
        self.deliver_events(&[event_id])
    }

    /// While held, new events are recorded but not delivered.
    pub fn hold_webhooks(&self, hold: bool) {
        self.state.hub.set_hold(hold);
    }

    /// Ids of the events held back, oldest first.
    pub fn held_events(&self) -> Vec<String> {
        self.state.hub.held()
    }

    /// Delivers the held events in the order they were made and stops holding.
    pub fn release_webhooks(&self) {
        self.state.hub.release();
    }

    /// Every delivery attempt so far.
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.state.hub.deliveries()
    }

    /// Forgets the recorded delivery attempts.
    pub fn clear_webhook_deliveries(&self) {
        self.state.hub.clear_deliveries();
    }

    /// Waits until no delivery is queued or retrying; false on timeout.
    pub async fn wait_for_webhooks(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.state.hub.pending() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // ----- failure injection -----

    /// The next `count` API requests fail with 500 `api_error`.
    pub fn fail_next_requests(&self, count: u32) {
        self.state.fail_next(count);
    }

    /// Every API request fails this way until [`MockStripe::clear_failures`].
    pub fn set_outage(&self, outage: Outage) {
        self.state.set_outage(Some(outage));
    }

    pub fn clear_failures(&self) {
        self.state.clear_failures();
    }

    /// Moves the mock's clock forward (object timestamps, meter event windows, idempotency key
    /// expiry; not webhook signatures).
    pub fn advance_clock(&self, by: Duration) {
        self.state
            .clock
            .advance(i64::try_from(by.as_secs()).unwrap_or(i64::MAX));
    }

    /// The mock's current time, Unix seconds.
    pub fn now(&self) -> i64 {
        self.state.clock.now()
    }

    // ----- read-back -----

    /// Every API request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    pub fn clear_requests(&self) {
        self.state.clear_requests();
    }

    /// Meter events accepted, in order.
    pub fn meter_events(&self) -> Vec<MeterEventRecord> {
        self.state.read(|store| store.meter_events.clone())
    }

    /// Meter events refused, with the errors answered.
    pub fn refused_meter_events(&self) -> Vec<RefusedMeterEvent> {
        self.state.read(|store| store.refused_meter_events.clone())
    }

    /// Every event made, oldest first.
    pub fn events(&self) -> Vec<Value> {
        control::events(&self.state)
    }

    /// Events of one type, oldest first.
    pub fn events_of_type(&self, event_type: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|event| event["type"] == json!(event_type))
            .collect()
    }

    /// Any stored object by id, as the API would return it.
    pub fn object(&self, id: &str) -> Option<Value> {
        self.state.read(|store| store.get(id).cloned())
    }

    /// Stops serving, dropping open connections, and waits until the port is released.
    pub async fn stop(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.stop(false).await;
        }
        if let Some(finished) = self.finished.take() {
            let _ = finished.await;
        }
    }
}

impl Drop for MockStripe {
    fn drop(&mut self) {
        // The stop command is sent eagerly, so a forgotten server still shuts down.
        if let Some(handle) = self.handle.take() {
            drop(handle.stop(false));
        }
    }
}

fn build_server(
    listener: TcpListener,
    state: Arc<State>,
) -> anyhow::Result<actix_web::dev::Server> {
    let data = web::Data::from(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
            .route("/v1/{tail:.*}", web::to(api::dispatch))
            .configure(control::routes)
            .route("/checkout/{id}", web::get().to(pages::checkout))
            .route(
                "/checkout/{id}/submit",
                web::post().to(pages::checkout_submit),
            )
            .route("/billing_portal/{id}", web::get().to(pages::portal))
            .route("/invoices/{id}", web::get().to(pages::invoice))
            .route("/invoices/{id}/pdf", web::get().to(pages::invoice_pdf))
            .default_service(web::to(not_found))
    })
    .workers(1)
    .tcp_nodelay(true)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .context("serving on the bound socket")?;
    Ok(server.run())
}

async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    HttpResponse::NotFound().json(json!({
        "error": {
            "type": "invalid_request_error",
            "message": format!("Unrecognized request URL ({}: {}).", req.method(), req.path()),
        }
    }))
}
