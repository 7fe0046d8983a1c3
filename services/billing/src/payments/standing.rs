//! An organization's standing at admission: one whose payment failed is served through its
//! grace period, then answered 402 until it pays; one without a card is served up to the
//! month's free allowance plus its prepaid credit, counted like a budget (reserved before the
//! request, settled to its cost after), then answered 402 until it adds a card.

use tollgate_common::config::BillingConfig;
use tollgate_common::{BillingFacts, BudgetPeriod, OrgId, Picodollars};

use crate::admission::Refusal;
use crate::payments::pricing::SellPrices;
use crate::script::Charge;

const DAY_MS: i64 = 86_400_000;

/// The deployment's payment rules; only when billing through Stripe is configured.
pub struct PaymentRules {
    grace_ms: i64,
    free_monthly: Picodollars,
    prices: SellPrices,
}

impl PaymentRules {
    pub fn new(config: &BillingConfig) -> Option<PaymentRules> {
        config.stripe.as_ref()?;
        Some(PaymentRules {
            grace_ms: i64::from(config.grace_days) * DAY_MS,
            free_monthly: Picodollars::from_usd(config.free_tier.monthly_usd).unwrap_or_default(),
            prices: SellPrices::new(config),
        })
    }

    /// Refuses an organization whose payment failed longer ago than the grace period, and one
    /// on its own provider keys without a card: its platform fee is not in provider cost, the
    /// unit the free allowance and credit are counted in at admission, so it is charged to a
    /// card only.
    pub fn check_standing(&self, facts: &BillingFacts, now_ms: i64) -> Result<(), Refusal> {
        if facts.own_provider_keys && !facts.has_card {
            return Err(Refusal::PaymentRequired(
                "This organization uses its own provider keys, whose platform fee is charged to \
                 a card. Add a payment method on the dashboard's Billing page to continue."
                    .into(),
            ));
        }
        let Some(since) = facts.past_due_since else {
            return Ok(());
        };
        let grace_ends = since.saturating_add(self.grace_ms);
        if now_ms < grace_ends {
            return Ok(());
        }
        Err(Refusal::PaymentRequired(format!(
            "A payment for this organization failed on {}, and its grace period ended on {}. \
             Pay the open invoice or update the payment method on the dashboard's Billing page \
             to continue.",
            date(since),
            date(grace_ends)
        )))
    }

    /// For an organization without a card: the charge that holds its usage this month to the
    /// free allowance plus its prepaid credit (in provider cost, the unit budgets count in).
    pub fn allowance(&self, org: OrgId, facts: &BillingFacts, now_ms: i64) -> Option<Charge> {
        if facts.has_card {
            return None;
        }
        let start = BudgetPeriod::Monthly.start(now_ms);
        let billable = Picodollars(
            self.free_monthly
                .0
                .saturating_add(facts.credit.max(0))
                .saturating_add(facts.credit_used_this_month.max(0)),
        );
        Some(Charge {
            counter: format!("tollgate:allowance:{org}:{start}"),
            limit: self.prices.cost_for_billable(billable).0 / 1000,
            baseline: Picodollars(facts.month_cost).to_nanos_ceil(),
            ttl_secs: BudgetPeriod::Monthly.counter_ttl_secs(start),
        })
    }

    /// The refusal once the allowance is used.
    pub fn allowance_used(&self) -> Refusal {
        Refusal::PaymentRequired(format!(
            "This organization has used this month's free allowance ({}) and its prepaid \
             credit. Add a payment method or buy credit on the dashboard's Billing page to \
             continue.",
            self.free_monthly
        ))
    }
}

/// `2026-11-26`.
fn date(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| ms.to_string())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use rust_decimal::Decimal;
    use tollgate_common::Secret;
    use tollgate_common::config::StripeConfig;

    use super::*;

    fn rules() -> PaymentRules {
        let mut config = BillingConfig::default();
        config.free_tier.monthly_usd = Decimal::from_str("5").unwrap_or_default();
        config.pay_as_you_go.markup_percent = Decimal::from(25);
        config.grace_days = 7;
        config.stripe = Some(StripeConfig {
            api_base: "http://127.0.0.1:1".into(),
            secret_key: Secret::new("sk_test"),
            webhook_secret: Secret::new("whsec_x"),
            meter_event_name: "tollgate_usage".into(),
            webhook_tolerance_secs: 300,
        });
        PaymentRules::new(&config).unwrap_or_else(|| panic!("billing is configured"))
    }

    #[test]
    fn a_failed_payment_is_served_through_the_grace_period_only() {
        let rules = rules();
        let facts = BillingFacts {
            past_due_since: Some(1_000),
            ..BillingFacts::default()
        };
        assert!(rules.check_standing(&facts, 1_000 + 7 * DAY_MS - 1).is_ok());
        let refused = rules.check_standing(&facts, 1_000 + 7 * DAY_MS);
        assert!(matches!(refused, Err(Refusal::PaymentRequired(m)) if m.contains("1970-01-08")));
        assert!(
            rules
                .check_standing(&BillingFacts::default(), i64::MAX)
                .is_ok()
        );
    }

    #[test]
    fn own_provider_keys_need_a_card() {
        let rules = rules();
        let own = BillingFacts {
            own_provider_keys: true,
            ..BillingFacts::default()
        };
        assert!(
            matches!(rules.check_standing(&own, 0), Err(Refusal::PaymentRequired(m)) if m.contains("own provider keys"))
        );
        let with_card = BillingFacts {
            has_card: true,
            ..own
        };
        assert!(rules.check_standing(&with_card, 0).is_ok());
    }

    #[test]
    fn without_a_card_the_free_allowance_and_credit_bound_the_month() {
        let rules = rules();
        let org = OrgId::generate();
        let card = BillingFacts {
            has_card: true,
            ..BillingFacts::default()
        };
        assert!(rules.allowance(org, &card, 0).is_none());
        let facts = BillingFacts {
            credit: Picodollars::from_usd(Decimal::from(10))
                .unwrap_or_default()
                .0,
            credit_used_this_month: Picodollars::from_usd(Decimal::from(5))
                .unwrap_or_default()
                .0,
            month_cost: 3_000,
            ..BillingFacts::default()
        };
        let charge = rules
            .allowance(org, &facts, 0)
            .unwrap_or_else(|| panic!("a charge"));
        // ($5 free + $10 left + $5 used) billable at 25 % markup: $16 of provider cost
        assert_eq!(charge.limit, 16_000_000_000);
        assert_eq!(charge.baseline, 3);
        assert!(
            charge
                .counter
                .starts_with(&format!("tollgate:allowance:{org}:"))
        );
    }
}
