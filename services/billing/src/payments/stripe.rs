//! The calls Tollgate makes to Stripe, through async-stripe: requests are built with its typed
//! request structs (so they are encoded as Stripe expects), and only the few fields of each
//! answer that billing reads are parsed, so that an answer with more or fewer optional fields
//! than this version of the library knows still works.

use std::collections::HashMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
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
use stripe_client_core::{RequestBuilder, StripeMethod};
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

/// A call the library has no typed request for: a form (or query) in Stripe's bracket
/// notation.
struct FormRequest<F> {
    method: StripeMethod,
    path: &'static str,
    params: F,
}

impl<F: Serialize> StripeRequest for FormRequest<F> {
    type Output = miniserde::json::Value;

    fn build(&self) -> RequestBuilder {
        let builder = RequestBuilder::new(self.method, self.path);
        match self.method {
            StripeMethod::Get => builder.query(&self.params),
            StripeMethod::Post | StripeMethod::Delete => builder.form(&self.params),
        }
    }
}

/// The lookup key of the metered price reported usage is invoiced at.
const PRICE_LOOKUP_KEY: &str = "tollgate_usage_micro_usd";

#[derive(Debug, Deserialize)]
struct Prices {
    data: Vec<Created>,
}

#[derive(Serialize)]
struct PriceLookup {
    lookup_keys: [&'static str; 1],
    active: bool,
}

#[derive(Serialize)]
struct NewPrice<'a> {
    currency: &'static str,
    /// Cents per unit: a micro-USD is a ten-thousandth of a cent.
    unit_amount_decimal: &'static str,
    recurring: Recurring<'a>,
    product_data: ProductName,
    lookup_key: &'static str,
}

#[derive(Serialize)]
struct Recurring<'a> {
    interval: &'static str,
    usage_type: &'static str,
    meter: &'a str,
}

#[derive(Serialize)]
struct ProductName {
    name: &'static str,
}

#[derive(Serialize)]
struct NewSubscription<'a> {
    customer: &'a str,
    items: [SubscriptionItem<'a>; 1],
    metadata: OrgMetadata<'a>,
}

#[derive(Serialize)]
struct SubscriptionItem<'a> {
    price: &'a str,
}

#[derive(Serialize)]
struct OrgMetadata<'a> {
    org_id: &'a str,
}

/// Stripe, as Tollgate uses it.
pub struct StripeApi {
    client: stripe::Client,
    meter_event_name: String,
    /// The meter and the price usage is invoiced at, found (or made) once per process.
    meter: tokio::sync::OnceCell<String>,
    price: tokio::sync::OnceCell<String>,
}

/// Per attempt; a slow Stripe delays billing, it never holds a request.
const TIMEOUT: Duration = Duration::from_secs(15);

impl StripeApi {
    pub fn new(config: &StripeConfig) -> Result<StripeApi, StripeCallError> {
        // The Stripe client's TLS takes the process's default crypto provider, and with more
        // than one compiled in (aws-lc through reqwest, ring through gRPC) there is none
        // until one is chosen; the gateway's own clients use aws-lc, so that is the choice.
        // (Already chosen is fine.)
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
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
            meter: tokio::sync::OnceCell::new(),
            price: tokio::sync::OnceCell::new(),
        })
    }

    /// The id of the meter usage is reported to.
    pub async fn usage_meter(&self) -> Result<String, StripeCallError> {
        self.meter
            .get_or_try_init(|| self.ensure_meter())
            .await
            .cloned()
    }

    /// The id of the metered price usage is invoiced at.
    pub async fn usage_price(&self) -> Result<String, StripeCallError> {
        self.price
            .get_or_try_init(|| async {
                let meter = self.usage_meter().await?;
                self.ensure_price(&meter).await
            })
            .await
            .cloned()
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

    /// The metered price usage is invoiced at (a micro-USD per unit, monthly), made on
    /// `meter` if the account has none.
    pub async fn ensure_price(&self, meter: &str) -> Result<String, StripeCallError> {
        let lookup = FormRequest {
            method: StripeMethod::Get,
            path: "/prices",
            params: PriceLookup {
                lookup_keys: [PRICE_LOOKUP_KEY],
                active: true,
            },
        };
        let prices: Prices = self.send(&lookup, None).await?;
        if let Some(price) = prices.data.into_iter().next() {
            return Ok(price.id);
        }
        let create = FormRequest {
            method: StripeMethod::Post,
            path: "/prices",
            params: NewPrice {
                currency: "usd",
                unit_amount_decimal: "0.0001",
                recurring: Recurring {
                    interval: "month",
                    usage_type: "metered",
                    meter,
                },
                product_data: ProductName {
                    name: "Tollgate usage",
                },
                lookup_key: PRICE_LOOKUP_KEY,
            },
        };
        let key = format!("tollgate-price-{meter}");
        let created: Created = self.send(&create, Some(&key)).await?;
        Ok(created.id)
    }

    /// Subscribes `customer` to the usage price, so that what the meter records is invoiced
    /// every month.
    pub async fn subscribe(
        &self,
        customer: &str,
        price: &str,
        org_id: &str,
        idempotency_key: &str,
    ) -> Result<String, StripeCallError> {
        let request = FormRequest {
            method: StripeMethod::Post,
            path: "/subscriptions",
            params: NewSubscription {
                customer,
                items: [SubscriptionItem { price }],
                metadata: OrgMetadata { org_id },
            },
        };
        let created: Created = self.send(&request, Some(idempotency_key)).await?;
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
        // Events for a meter the account does not have are refused: make sure it has it.
        self.usage_meter().await?;
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
