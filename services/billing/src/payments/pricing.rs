//! What usage costs the customer: the provider's cost plus the deployment's markup, a sell
//! price per model, or (for organizations on their own provider keys) a platform fee.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use tollgate_common::Picodollars;
use tollgate_common::config::BillingConfig;

/// How an organization is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Provider cost plus markup, or the model's sell price.
    PayAsYouGo,
    /// Its own provider keys: a fee per request and per million tokens.
    BringYourOwnKey,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::PayAsYouGo => "payg",
            Plan::BringYourOwnKey => "byok",
        }
    }

    pub fn parse(text: &str) -> Option<Plan> {
        match text {
            "payg" => Some(Plan::PayAsYouGo),
            "byok" => Some(Plan::BringYourOwnKey),
            _ => None,
        }
    }
}

/// The usage of one model in some period, as the rollups keep it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelUsage {
    /// The model name clients sent.
    pub model: String,
    /// Requests answered successfully (refused and failed ones are not billed).
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// What the providers charge for it.
    pub cost: Picodollars,
}

/// The deployment's prices, ready to apply.
#[derive(Debug, Clone)]
pub struct SellPrices {
    /// 1 + markup, as a factor.
    markup_factor: Decimal,
    /// USD per token, input and output, per model name clients send.
    per_model: BTreeMap<String, (Decimal, Decimal)>,
    byok_per_request: Decimal,
    byok_per_token: Decimal,
}

const MILLION: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);
const HUNDRED: Decimal = Decimal::from_parts(100, 0, 0, false, 0);

impl SellPrices {
    pub fn new(config: &BillingConfig) -> Self {
        let payg = &config.pay_as_you_go;
        SellPrices {
            markup_factor: Decimal::ONE + payg.markup_percent / HUNDRED,
            per_model: payg
                .sell_prices
                .iter()
                .map(|(model, price)| {
                    (
                        model.clone(),
                        (
                            price.input_per_million / MILLION,
                            price.output_per_million / MILLION,
                        ),
                    )
                })
                .collect(),
            byok_per_request: config.bring_your_own_key.per_request_usd,
            byok_per_token: config.bring_your_own_key.per_million_tokens_usd / MILLION,
        }
    }

    /// What `usage` is billed under `plan`, rounded up to a picodollar.
    pub fn billable(&self, plan: Plan, usage: &[ModelUsage]) -> Picodollars {
        let total: Decimal = usage
            .iter()
            .map(|row| match plan {
                Plan::BringYourOwnKey => {
                    Decimal::from(row.requests) * self.byok_per_request
                        + Decimal::from(row.input_tokens + row.output_tokens) * self.byok_per_token
                }
                Plan::PayAsYouGo => match self.per_model.get(&row.model) {
                    Some((input, output)) => {
                        Decimal::from(row.input_tokens) * input
                            + Decimal::from(row.output_tokens) * output
                    }
                    None => row.cost.to_usd() * self.markup_factor,
                },
            })
            .sum();
        Picodollars::from_usd(total).unwrap_or(Picodollars(i64::MAX))
    }

    /// The provider cost that bills `billable` at the markup alone: how far a budget counted
    /// in provider cost may go for a billable allowance (exact without sell prices).
    pub fn cost_for_billable(&self, billable: Picodollars) -> Picodollars {
        let cost = billable.to_usd() / self.markup_factor;
        Picodollars(
            (cost * Decimal::from(1_000_000_000_000_i64))
                .floor()
                .to_i64()
                .unwrap_or(i64::MAX),
        )
    }
}

/// Picodollars per micro-USD, the unit usage is metered to Stripe in.
pub const PICO_PER_MICRO: i64 = 1_000_000;

/// Whole micro-USD, half up: what an hour is metered as.
pub fn to_micros(amount: Picodollars) -> i64 {
    (amount.0 + PICO_PER_MICRO / 2).div_euclid(PICO_PER_MICRO)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use tollgate_common::config::SellPrice;

    use super::*;

    fn usd(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn prices() -> SellPrices {
        let mut config = BillingConfig::default();
        config.pay_as_you_go.markup_percent = usd("20");
        config.pay_as_you_go.sell_prices.insert(
            "premium".into(),
            SellPrice {
                input_per_million: usd("3"),
                output_per_million: usd("12"),
            },
        );
        config.bring_your_own_key.per_request_usd = usd("0.0001");
        config.bring_your_own_key.per_million_tokens_usd = usd("0.05");
        SellPrices::new(&config)
    }

    fn usage(model: &str, requests: i64, input: i64, output: i64, cost_usd: &str) -> ModelUsage {
        ModelUsage {
            model: model.into(),
            requests,
            input_tokens: input,
            output_tokens: output,
            cost: Picodollars::from_usd(usd(cost_usd)).unwrap_or_default(),
        }
    }

    #[test]
    fn pay_as_you_go_adds_the_markup_unless_the_model_has_a_sell_price() {
        let prices = prices();
        let rows = [
            usage("smart", 10, 1_000, 500, "0.0125"),
            usage("premium", 2, 1_000_000, 100_000, "9.99"),
        ];
        // 0.0125 × 1.2 + (1M × $3/M + 100k × $12/M)
        assert_eq!(
            prices.billable(Plan::PayAsYouGo, &rows).to_usd(),
            usd("0.015") + usd("3") + usd("1.2")
        );
        assert_eq!(
            prices.cost_for_billable(Picodollars::from_usd(usd("6")).unwrap_or_default()),
            Picodollars::from_usd(usd("5")).unwrap_or_default()
        );
    }

    #[test]
    fn own_keys_pay_the_platform_fee_only() {
        let rows = [usage("smart", 10, 1_000_000, 1_000_000, "123")];
        // 10 × $0.0001 + 2M tokens × $0.05/M
        assert_eq!(
            prices().billable(Plan::BringYourOwnKey, &rows).to_usd(),
            usd("0.101")
        );
    }

    #[test]
    fn micros_round_half_up() {
        assert_eq!(to_micros(Picodollars(499_999)), 0);
        assert_eq!(to_micros(Picodollars(500_000)), 1);
        assert_eq!(to_micros(Picodollars(2_000_000)), 2);
        assert_eq!(Plan::parse("byok"), Some(Plan::BringYourOwnKey));
        assert_eq!(
            Plan::parse(Plan::PayAsYouGo.as_str()),
            Some(Plan::PayAsYouGo)
        );
        assert_eq!(Plan::parse("gold"), None);
    }
}
