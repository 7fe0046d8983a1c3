//! How organizations pay (the `billing` section): the free tier, pay-as-you-go prices,
//! bring-your-own-key fees, prepaid credit, and the Stripe account usage is billed through.
//! Without `billing.stripe`, nothing is billed and every organization is served.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Deserialize;

use super::{ConfigProblem, Secret, is_http_url, problem};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BillingConfig {
    /// The dashboard's address, where customers return from Stripe Checkout and the billing
    /// portal (`https://tollgate.example.com`).
    pub public_url: Option<String>,
    pub free_tier: FreeTier,
    pub pay_as_you_go: PayAsYouGo,
    pub bring_your_own_key: ByokFees,
    /// Days an organization whose payment failed is still served before it gets 402.
    pub grace_days: u32,
    /// Smallest prepaid top-up, USD.
    pub min_top_up_usd: Decimal,
    pub stripe: Option<StripeConfig>,
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            public_url: None,
            free_tier: FreeTier::default(),
            pay_as_you_go: PayAsYouGo::default(),
            bring_your_own_key: ByokFees::default(),
            grace_days: 7,
            min_top_up_usd: Decimal::new(5, 0),
            stripe: None,
        }
    }
}

/// Usage every organization gets free each calendar month (UTC). An organization without a
/// payment method is refused past it (and past its prepaid credit) until it adds a card.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FreeTier {
    /// Billable USD a month.
    pub monthly_usd: Decimal,
}

impl Default for FreeTier {
    fn default() -> Self {
        FreeTier {
            monthly_usd: Decimal::new(5, 0),
        }
    }
}

/// Pay-as-you-go: the provider's cost plus a markup, or a sell price per model.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PayAsYouGo {
    /// Percent added to the provider's cost (`20` bills $1.20 for $1.00).
    pub markup_percent: Decimal,
    /// Prices per model name (as the catalog names it) that replace cost plus markup.
    pub sell_prices: BTreeMap<String, SellPrice>,
}

/// What customers pay for a model, USD per million tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SellPrice {
    pub input_per_million: Decimal,
    pub output_per_million: Decimal,
}

/// Organizations that bring their own provider keys pay a platform fee instead of the
/// provider's cost.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ByokFees {
    pub enabled: bool,
    pub per_request_usd: Decimal,
    pub per_million_tokens_usd: Decimal,
    /// The AES-256 key (32 bytes, base64) that organizations' provider keys are encrypted
    /// with in storage; required when `enabled`. Keep it out of the database's backups.
    pub encryption_key: Option<Secret>,
}

/// The Stripe account: the API (Stripe's own, or a stand-in for tests) and its webhooks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeConfig {
    /// `https://api.stripe.com` unless set.
    #[serde(default = "default_stripe_api")]
    pub api_base: String,
    pub secret_key: Secret,
    /// The webhook endpoint's signing secret (`whsec_...`).
    pub webhook_secret: Secret,
    /// The Billing Meter usage is reported to, by its event name; made at start-up if the
    /// account has none.
    #[serde(default = "default_meter_event")]
    pub meter_event_name: String,
    /// How old a webhook's signature timestamp may be.
    #[serde(default = "default_tolerance")]
    pub webhook_tolerance_secs: u64,
}

fn default_stripe_api() -> String {
    "https://api.stripe.com".into()
}

fn default_meter_event() -> String {
    "tollgate_usage".into()
}

fn default_tolerance() -> u64 {
    300
}

/// Checks the section; every problem names its field.
pub(super) fn validate_billing(billing: &BillingConfig, problems: &mut Vec<ConfigProblem>) {
    if let Some(url) = &billing.public_url
        && !is_http_url(url)
    {
        problems.push(problem("billing.public_url", "must be an http(s) URL"));
    }
    let negative = |value: Decimal| value.is_sign_negative() && !value.is_zero();
    if negative(billing.free_tier.monthly_usd) {
        problems.push(problem(
            "billing.free_tier.monthly_usd",
            "must not be negative",
        ));
    }
    if negative(billing.pay_as_you_go.markup_percent) {
        problems.push(problem(
            "billing.pay_as_you_go.markup_percent",
            "must not be negative",
        ));
    }
    for (model, price) in &billing.pay_as_you_go.sell_prices {
        for (field, value) in [
            ("input_per_million", price.input_per_million),
            ("output_per_million", price.output_per_million),
        ] {
            if negative(value) {
                problems.push(problem(
                    format!("billing.pay_as_you_go.sell_prices.{model}.{field}"),
                    "must not be negative",
                ));
            }
        }
    }
    for (field, value) in [
        (
            "per_request_usd",
            billing.bring_your_own_key.per_request_usd,
        ),
        (
            "per_million_tokens_usd",
            billing.bring_your_own_key.per_million_tokens_usd,
        ),
    ] {
        if negative(value) {
            problems.push(problem(
                format!("billing.bring_your_own_key.{field}"),
                "must not be negative",
            ));
        }
    }
    if billing.bring_your_own_key.enabled {
        match &billing.bring_your_own_key.encryption_key {
            None => problems.push(problem(
                "billing.bring_your_own_key.encryption_key",
                "is required when bring_your_own_key is enabled (32 random bytes, base64)",
            )),
            Some(key) if decoded_len(key.expose()) != Some(32) => problems.push(problem(
                "billing.bring_your_own_key.encryption_key",
                "must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)",
            )),
            Some(_) => {}
        }
    }
    if billing.min_top_up_usd <= Decimal::ZERO {
        problems.push(problem("billing.min_top_up_usd", "must be greater than 0"));
    }
    let Some(stripe) = &billing.stripe else {
        return;
    };
    if billing.public_url.is_none() {
        problems.push(problem(
            "billing.public_url",
            "is required with billing.stripe (Checkout returns customers there)",
        ));
    }
    if !is_http_url(&stripe.api_base) {
        problems.push(problem("billing.stripe.api_base", "must be an http(s) URL"));
    }
    if stripe.secret_key.expose().is_empty() {
        problems.push(problem("billing.stripe.secret_key", "must not be empty"));
    }
    if !stripe.webhook_secret.expose().starts_with("whsec_") {
        problems.push(problem(
            "billing.stripe.webhook_secret",
            "must be the endpoint's signing secret (whsec_...)",
        ));
    }
    if stripe.meter_event_name.is_empty() {
        problems.push(problem(
            "billing.stripe.meter_event_name",
            "must not be empty",
        ));
    }
    if stripe.webhook_tolerance_secs == 0 {
        problems.push(problem(
            "billing.stripe.webhook_tolerance_secs",
            "must be greater than 0",
        ));
    }
}

/// The length of `text` decoded from standard base64, if it is base64.
pub(super) fn decoded_len(text: &str) -> Option<usize> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .map(|bytes| bytes.len())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::config::Config;

    fn problems(yaml: &str) -> Vec<String> {
        match Config::parse(yaml, &BTreeMap::<String, String>::new()) {
            Ok(_) => Vec::new(),
            Err(err) => err.problems().iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn every_problem_names_its_field() {
        let found = problems(
            r#"
billing:
  free_tier: { monthly_usd: "-1" }
  pay_as_you_go:
    markup_percent: "-5"
    sell_prices: { smart: { input_per_million: "-1", output_per_million: "2" } }
  min_top_up_usd: "0"
  stripe:
    api_base: "ftp://stripe"
    secret_key: ""
    webhook_secret: "secret"
    meter_event_name: ""
    webhook_tolerance_secs: 0
"#,
        );
        for field in [
            "billing.free_tier.monthly_usd",
            "billing.pay_as_you_go.markup_percent",
            "billing.pay_as_you_go.sell_prices.smart.input_per_million",
            "billing.min_top_up_usd",
            "billing.public_url",
            "billing.stripe.api_base",
            "billing.stripe.secret_key",
            "billing.stripe.webhook_secret",
            "billing.stripe.meter_event_name",
            "billing.stripe.webhook_tolerance_secs",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(&format!("{field}:"))),
                "{field} not named in {found:?}"
            );
        }
        assert!(problems("billing: { grace_days: 3 }").is_empty());
        let unknown = problems("billing: { markup: 5 }");
        assert!(unknown.iter().any(|p| p.contains("markup")), "{unknown:?}");
    }
}
