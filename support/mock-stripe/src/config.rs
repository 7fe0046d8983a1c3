//! How the mock is set up: the API key it accepts and where and how it delivers webhooks.

use serde::{Deserialize, Serialize};

/// The Stripe API version stamped on events and answers (`Stripe-Version`).
pub const API_VERSION: &str = "2024-06-20";

/// Settings fixed at start; the webhook endpoint can also be changed while running
/// ([`crate::MockStripe::set_webhook_endpoint`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MockStripeConfig {
    /// The secret key clients must present (`Authorization: Bearer <key>`, or HTTP basic auth
    /// with the key as user name).
    pub api_key: String,
    /// Where events are POSTed; none means events are only recorded.
    pub webhook_url: Option<String>,
    /// The endpoint's signing secret (`whsec_...`).
    pub webhook_secret: String,
    /// Event types delivered to the endpoint; `*` means all, like Stripe's `enabled_events`.
    pub enabled_events: Vec<String>,
    /// Delivery attempts per event, the first included. Stripe makes 4 in test mode
    /// (the first and three retries over a few hours).
    pub webhook_attempts: u32,
    /// Delay before the first retry; each further retry waits twice as long.
    pub webhook_retry_base_ms: u64,
    /// How long one delivery attempt may take before it counts as failed.
    pub webhook_timeout_ms: u64,
    /// Completing a setup-mode Checkout Session also makes the new card the customer's
    /// `invoice_settings.default_payment_method`. Real Checkout does not do this (the
    /// integration sets it through `POST /v1/customers/{id}`); turn it off to test that.
    pub checkout_sets_default_payment_method: bool,
    /// The base URL in links the mock hands out (Checkout and portal pages, invoice pages);
    /// defaults to the address it listens on.
    pub public_url: Option<String>,
    /// The account's name on invoices.
    pub account_name: String,
}

impl Default for MockStripeConfig {
    fn default() -> Self {
        MockStripeConfig {
            api_key: "sk_test_mock".into(),
            webhook_url: None,
            webhook_secret: format!("whsec_{}", crate::ids::hex(32)),
            enabled_events: vec!["*".into()],
            webhook_attempts: 4,
            webhook_retry_base_ms: 200,
            webhook_timeout_ms: 10_000,
            checkout_sets_default_payment_method: true,
            public_url: None,
            account_name: "Mock account".into(),
        }
    }
}
