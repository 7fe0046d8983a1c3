//! The calls Tollgate makes to Stripe, through async-stripe: requests are built with its typed
//! request structs (so they are encoded as Stripe expects), and only the few fields of each
//! answer that billing reads are parsed, so that an answer with more or fewer optional fields
//! than this version of the library knows still works.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use stripe::{IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
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
    ProductData,
};
use stripe_core::customer::CreateCustomer;
use stripe_shared::CheckoutSessionMode;
use tollgate_common::config::StripeConfig;

/// Why a call to Stripe failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StripeCallError {
    /// Stripe answered with an error: the request itself is wrong (4xx) or Stripe failed
    /// (5xx, 429).
    #[error("Stripe refused ({status}): {message}")]
    Refused {
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// Stripe could not be reached, or did not answer in time.
    #[error("Stripe is unreachable: {0}")]
    Unreachable(String),
    /// Stripe's answer could not be read.
    #[error("unexpected answer from Stripe: {0}")]
    Unexpected(String),
    /// The call waits for something else first (the customer a usage report is for).
    #[error("not yet: {0}")]
    Waiting(&'static str),
}

impl StripeCallError {
    /// Whether the same call may succeed later: Stripe down, overloaded or rate limiting.
    pub fn is_transient(&self) -> bool {
        match self {
            StripeCallError::Unreachable(_) | StripeCallError::Waiting(_) => true,
            StripeCallError::Refused { status, .. } => *status >= 500 || *status == 429,
            StripeCallError::Unexpected(_) => false,
        }
    }

    /// Whether Stripe already has what the call would have made (a meter event whose
    /// identifier it has seen): for an idempotent report, success. Stripe says so with a 400
    /// that carries no error code, only its message.
    pub fn is_duplicate(&self) -> bool {
        match self {
            StripeCallError::Refused {
                status: 400,
                code,
                message,
            } => {
                code.as_deref() == Some("resource_already_exists")
                    || message.contains("already exists with identifier")
            }
            _ => false,
        }
    }
}

impl From<StripeError> for StripeCallError {
    fn from(err: StripeError) -> Self {
        match err {
            StripeError::Stripe(details, status) => StripeCallError::Refused {
                status,
                code: details.code.as_ref().map(|c| c.as_str().to_owned()),
                message: details
                    .message
                    .clone()
                    .unwrap_or_else(|| "no message".to_owned()),
            },
            StripeError::ClientError(message) => StripeCallError::Unreachable(message),
            StripeError::Timeout => StripeCallError::Unreachable("timed out".into()),
            StripeError::JSONDeserialize(message) | StripeError::ConfigError(message) => {
                StripeCallError::Unexpected(message)
            }
        }
    }
}

/// A Checkout Session or portal session to send the customer to.
#[derive(Debug, Clone, Deserialize)]
pub struct Redirect {
    pub id: String,
    pub url: String,
}

#[derive(Debug, Deserialize)]
struct Created {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Meters {
    data: Vec<Meter>,
}

#[derive(Debug, Deserialize)]
struct Meter {
    id: String,
    event_name: String,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Summaries {
    data: Vec<Summary>,
    #[serde(default)]
    has_more: bool,
}

#[derive(Debug, Deserialize)]
struct Summary {
    id: String,
    aggregated_value: f64,
    start_time: i64,
}

/// What a meter recorded for one customer in one hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeteredHour {
    /// Unix seconds.
    pub start: i64,
    pub value: f64,
}

/// Stripe, as Tollgate uses it.
pub struct StripeApi {
    client: stripe::Client,
    meter_event_name: String,
}

/// Per attempt; a slow Stripe delays billing, it never holds a request.
const TIMEOUT: Duration = Duration::from_secs(15);

impl StripeApi {
    pub fn new(config: &StripeConfig) -> Result<StripeApi, StripeCallError> {
        let base = format!("{}/", config.api_base.trim_end_matches('/'));
        let client = stripe::ClientBuilder::new(config.secret_key.expose())
            .url(base)
            .timeout(TIMEOUT)
            .app_info("tollgate", Some(env!("CARGO_PKG_VERSION").to_owned()), None)
            .build()
            .map_err(StripeCallError::from)?;
        Ok(StripeApi {
            client,
            meter_event_name: config.meter_event_name.clone(),
        })
    }

    /// Sends a request with an idempotency key (retries of the same call are one call at
    /// Stripe) and reads the fields of the answer billing needs.
    async fn send<T: DeserializeOwned>(
        &self,
        request: &impl StripeRequest,
        idempotency_key: Option<&str>,
    ) -> Result<T, StripeCallError> {
        let mut customized = request.build().customize::<miniserde::json::Value>();
        if let Some(key) = idempotency_key {
            let key = IdempotencyKey::new(key)
                .map_err(|e| StripeCallError::Unexpected(format!("idempotency key: {e}")))?;
            customized = customized.request_strategy(RequestStrategy::Idempotent(key));
        }
        let answer = customized.send(&self.client).await?;
        serde_json::from_str(&miniserde::json::to_string(&answer))
            .map_err(|e| StripeCallError::Unexpected(e.to_string()))
    }

    /// The Stripe customer of an organization, with its id in the metadata; the same key
    /// always makes the same customer.
    pub async fn create_customer(
        &self,
        org_id: &str,
        name: &str,
        email: Option<&str>,
        idempotency_key: &str,
    ) -> Result<String, StripeCallError> {
        let mut request = CreateCustomer::new()
            .name(name)
            .metadata(HashMap::from([("org_id".to_owned(), org_id.to_owned())]));
        if let Some(email) = email {
            request = request.email(email);
        }
        let created: Created = self.send(&request, Some(idempotency_key)).await?;
        Ok(created.id)
    }

    /// A Checkout Session in setup mode: the customer adds a card for later payments.
    pub async fn checkout_setup(
        &self,
        customer: &str,
        org_id: &str,
        success_url: &str,
        cancel_url: &str,
    ) -> Result<Redirect, StripeCallError> {
        let request = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Setup)
            .customer(customer)
            .currency(stripe_types::Currency::USD)
            .success_url(success_url)
            .cancel_url(cancel_url)
            .client_reference_id(org_id)
            .metadata(HashMap::from([
                ("org_id".to_owned(), org_id.to_owned()),
                ("purpose".to_owned(), "payment_method".to_owned()),
            ]));
        self.send(&request, None).await
    }

    /// A Checkout Session in payment mode for `cents` of prepaid credit.
    pub async fn checkout_top_up(
        &self,
        customer: &str,
        org_id: &str,
        cents: i64,
        success_url: &str,
        cancel_url: &str,
    ) -> Result<Redirect, StripeCallError> {
        let mut price = CreateCheckoutSessionLineItemsPriceData::new(stripe_types::Currency::USD);
        price.unit_amount = Some(cents);
        price.product_data = Some(ProductData::new("Tollgate prepaid credit"));
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price_data = Some(price);
        item.quantity = Some(1);
        let request = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Payment)
            .customer(customer)
            .line_items(vec![item])
            .success_url(success_url)
            .cancel_url(cancel_url)
            .client_reference_id(org_id)
            .metadata(HashMap::from([
                ("org_id".to_owned(), org_id.to_owned()),
                ("purpose".to_owned(), "credit_top_up".to_owned()),
            ]));
        self.send(&request, None).await
    }

    /// A customer-portal session, where the customer manages cards and sees invoices.
    pub async fn portal(
        &self,
        customer: &str,
        return_url: &str,
    ) -> Result<Redirect, StripeCallError> {
        let request = CreateBillingPortalSession::new()
            .customer(customer)
            .return_url(return_url);
        self.send(&request, None).await
    }

    /// The id of the meter usage is reported to, made (summing) if the account has none.
    pub async fn ensure_meter(&self) -> Result<String, StripeCallError> {
        let meters: Meters = self.send(&ListBillingMeter::new().limit(100), None).await?;
        if let Some(meter) = meters.data.into_iter().find(|m| {
            m.event_name == self.meter_event_name && m.status.as_deref() != Some("inactive")
        }) {
            return Ok(meter.id);
        }
        let request = CreateBillingMeter::new(
            CreateBillingMeterDefaultAggregation::new(
                CreateBillingMeterDefaultAggregationFormula::Sum,
            ),
            "Tollgate usage (micro-USD)",
            self.meter_event_name.as_str(),
        );
        let key = format!("tollgate-meter-{}", self.meter_event_name);
        let created: Created = self.send(&request, Some(&key)).await?;
        Ok(created.id)
    }

    /// Reports `micros` of usage for `customer` at `timestamp` (Unix seconds). `identifier`
    /// is the event's, and the idempotency key: reporting the same hour again is no new usage.
    pub async fn report_usage(
        &self,
        customer: &str,
        micros: i64,
        identifier: &str,
        timestamp: i64,
    ) -> Result<(), StripeCallError> {
        let payload = HashMap::from([
            ("stripe_customer_id".to_owned(), customer.to_owned()),
            ("value".to_owned(), micros.to_string()),
        ]);
        let request = CreateBillingMeterEvent::new(self.meter_event_name.as_str(), payload)
            .identifier(identifier)
            .timestamp(timestamp);
        match self
            .send::<serde_json::Value>(&request, Some(identifier))
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if err.is_duplicate() => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// What the meter recorded for `customer` per hour in `[start, end)` (Unix seconds, whole
    /// hours).
    pub async fn metered_hours(
        &self,
        meter: &str,
        customer: &str,
        start: i64,
        end: i64,
    ) -> Result<Vec<MeteredHour>, StripeCallError> {
        let mut hours = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut request = ListIdBillingMeterEventSummary::new(meter, customer, end, start)
                .value_grouping_window(ListIdBillingMeterEventSummaryValueGroupingWindow::Hour)
                .limit(100);
            if let Some(after) = &after {
                request = request.starting_after(after.as_str());
            }
            let page: Summaries = self.send(&request, None).await?;
            after = page.data.last().map(|s| s.id.clone());
            hours.extend(page.data.into_iter().map(|s| MeteredHour {
                start: s.start_time,
                value: s.aggregated_value,
            }));
            if !page.has_more || after.is_none() {
                return Ok(hours);
            }
        }
    }
}
