//! The rules of admission: which rate limits and budgets a request counts against (the key's,
//! its team's, its team's for the model, each held to the deployment's ceilings; every budget
//! that applies, per period and end user; the free allowance of an organization without a
//! card), what it reserves (its worst case), OpenAI's rate-limit headers, and the refusal
//! texts. The gateway and a split deployment apply the same rules through [`Admission`].

use actix_web::http::header::{HeaderName, HeaderValue};
use rust_decimal::Decimal;
use tollgate_common::config::LimitsConfig;
use tollgate_common::{BudgetRule, BudgetScope, KeyContext, Picodollars};

use super::{AdmissionError, AdmissionGate};
use crate::budgets::counter_name;
use crate::fallback::Counted;
use crate::payments::standing::PaymentRules;
use crate::script::{AdmissionRequest, Bucket, Charge, Decision, Settlement, Verdict};

const MILLION: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

/// What a request may use, estimated by the gateway from its body and route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    pub prompt: u64,
    /// Every choice at the client's output limit (`limits.default_max_tokens` without one):
    /// what token-per-minute limits count, as OpenAI's own limits do.
    pub limited_output: u64,
    /// Every choice at the most any target may answer: the client's limit capped by the
    /// model's maximum, or without a limit the model's maximum. Budgets reserve this, so no
    /// answer can cost more than was reserved.
    pub worst_output: u64,
}

impl Estimate {
    /// What token limits count the request as.
    pub fn limited_tokens(&self) -> u64 {
        self.prompt + self.limited_output
    }
}

/// Who asks, for what, and what it may use.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    pub key: &'a KeyContext,
    /// OpenAI's `user`, for budgets on each end user.
    pub end_user: Option<&'a str>,
    /// The model name the client sent, for the team's limits on it.
    pub model: &'a str,
    /// When the request arrived, which picks each budget's period.
    pub now_ms: i64,
    pub estimate: Estimate,
    /// The highest input and output price (USD per million tokens) among the targets the
    /// request may be routed to; `None` when none has a price.
    pub worst_case_price: Option<(Decimal, Decimal)>,
}

/// Why a request is not admitted; each has its own status in the gateway's error format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A rate limit has no room: 429 with `Retry-After` and the limit's headers.
    RateLimited {
        message: String,
        retry_after_secs: u64,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// A budget has no room: 429, naming the budget.
    OverBudget(String),
    /// The organization must pay first: 402.
    PaymentRequired(String),
    /// Limits or budgets cannot be counted right now (Redis down and the policy is to refuse).
    LimitsUnavailable,
    BudgetsUnavailable,
}

/// What an admitted request carries until it is settled.
#[derive(Debug, Default)]
pub struct Admitted {
    /// What was reserved; `None` for open access, which counts against nothing.
    pub held: Option<Held>,
    /// OpenAI's rate-limit headers, for the answer whatever it is.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The worst-case cost reserved against budgets, as the usage event records it.
    pub budget_reserved: Decimal,
}

/// A request's reservations, corrected at [`Admission::settle`].
#[derive(Debug)]
pub struct Held {
    id: String,
    counted: Counted,
    token_buckets: Vec<String>,
    budgets: Option<HeldBudgets>,
}

/// A budget reservation: on which counters, how much (nanodollars), and where it was counted.
#[derive(Debug)]
struct HeldBudgets {
    counters: Vec<String>,
    reserved: i64,
    counted: Counted,
}

/// Rate limits, budgets and the organization's payments, applied to every request.
pub struct Admission {
    gate: AdmissionGate,
    config: LimitsConfig,
    payments: Option<PaymentRules>,
}

impl Admission {
    pub fn new(gate: AdmissionGate, config: LimitsConfig, payments: Option<PaymentRules>) -> Self {
        Admission {
            gate,
            config,
            payments,
        }
    }

    pub fn gate(&self) -> &AdmissionGate {
        &self.gate
    }

    /// Reserves the request's estimate against its limits and its worst case against its
    /// budgets, all or nothing.
    pub async fn admit(&self, input: PolicyInput<'_>) -> Result<Admitted, Refusal> {
        // Open access (no key) has no limits to count against.
        if input.key.key_id.is_none() {
            return Ok(Admitted::default());
        }
        let estimate = input.estimate.limited_tokens();
        let applied = applicable(&input, &self.config, self.payments.is_some(), estimate);
        let buckets: Vec<Bucket> = applied.iter().map(|a| a.bucket.clone()).collect();
        let id = uuid::Uuid::now_v7().to_string();
        let mut allowance = None;
        if let (Some(payments), Some(org)) = (&self.payments, input.key.org_id) {
            payments.check_standing(&input.key.billing, input.now_ms)?;
            allowance = payments.allowance(org, &input.key.billing, input.now_ms);
        }
        let claim = budget_claim(&input, allowance);
        let charges: Vec<Charge> = claim
            .iter()
            .flat_map(|c| c.charges.iter().map(|(charge, _)| charge.clone()))
            .collect();
        let verdict = self
            .gate
            .admit(AdmissionRequest {
                id: &id,
                buckets: &buckets,
                charges: &charges,
                amount: claim.as_ref().map_or(0, |c| c.amount),
            })
            .await
            .map_err(|err| match err {
                AdmissionError::Limits(_) => Refusal::LimitsUnavailable,
                AdmissionError::Budgets(_) => Refusal::BudgetsUnavailable,
            })?;
        let (decision, counted, budgets_counted) = match verdict {
            Verdict::Admitted {
                decision,
                limits,
                budgets,
            } => (decision, limits, budgets),
            Verdict::Limited { decision } => {
                return Err(rate_limited(&applied, &decision, estimate));
            }
            Verdict::OverBudget {
                index,
                spent,
                reserved,
                ..
            } => {
                let Some(claim) = &claim else {
                    return Err(Refusal::BudgetsUnavailable);
                };
                let over = Overspend {
                    index,
                    spent,
                    reserved,
                };
                return Err(over_budget(&input, self.payments.as_ref(), claim, over));
            }
        };
        let headers = headers(&applied, &decision);
        let budgets = claim
            .as_ref()
            .zip(budgets_counted)
            .map(|(claim, counted)| HeldBudgets {
                counters: charges.into_iter().map(|c| c.counter).collect(),
                reserved: claim.amount,
                counted,
            });
        let token_buckets = applied
            .into_iter()
            .filter(|a| a.unit == Unit::Tokens)
            .map(|a| a.bucket.key)
            .collect();
        Ok(Admitted {
            held: Some(Held {
                id,
                counted,
                token_buckets,
                budgets,
            }),
            headers,
            budget_reserved: claim.map_or(Decimal::ZERO, |c| c.usd),
        })
    }

    /// Admits a call that reaches no model (counting a body's tokens): one request against
    /// the key's request limits, so that such calls cannot be made without bound, and nothing
    /// held against tokens or budgets (a budget already overspent still refuses it, as it
    /// refuses any request). Returns the limits' headers.
    pub async fn admit_uncharged(
        &self,
        key: &KeyContext,
        model: &str,
        now_ms: i64,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, Refusal> {
        let admitted = self
            .admit(PolicyInput {
                key,
                end_user: None,
                model,
                now_ms,
                estimate: Estimate {
                    prompt: 0,
                    limited_output: 0,
                    worst_output: 0,
                },
                worst_case_price: None,
            })
            .await?;
        // The request counted stays counted; the rest is released at once.
        if let Some(held) = &admitted.held {
            self.settle(held, 0, Some(Decimal::ZERO));
        }
        Ok(admitted.headers)
    }

    /// Corrects a finished request's reservations to what it really used: `tokens` against
    /// its token limits, `cost` (USD, `None` for none) against its budgets. Off the caller's
    /// path.
    pub fn settle(&self, held: &Held, tokens: u64, cost: Option<Decimal>) {
        let actual = cost
            .and_then(Picodollars::from_usd)
            .map_or(0, Picodollars::to_nanos_ceil);
        let (counters, reserved, budgets_counted) = match &held.budgets {
            Some(budgets) => (
                budgets.counters.clone(),
                budgets.reserved,
                Some(budgets.counted),
            ),
            None => (Vec::new(), 0, None),
        };
        let settlement = Settlement {
            id: held.id.clone(),
            token_costs: held
                .token_buckets
                .iter()
                .map(|bucket| (bucket.clone(), tokens))
                .collect(),
            counters,
            reserved,
            actual,
        };
        self.gate
            .settle_in_background(settlement, held.counted, budgets_counted);
    }
}

/// The most a request can cost: its prompt at the highest input price and its worst-case
/// output at the highest output price among the targets it may be routed to. `None` when none
/// of them has a price.
fn worst_case_cost(input: &PolicyInput<'_>) -> Option<Decimal> {
    let (input_price, output_price) = input.worst_case_price?;
    let estimate = &input.estimate;
    Some(
        (Decimal::from(estimate.prompt) * input_price
            + Decimal::from(estimate.worst_output) * output_price)
            / MILLION,
    )
}

/// The counters a request is charged against: one per budget that applies, per period (and
/// per end user for a per-user budget).
fn budget_charges<'a>(input: &PolicyInput<'a>) -> Vec<(Charge, &'a BudgetRule)> {
    let end_user = input.end_user;
    input
        .key
        .budgets
        .iter()
        .filter(|rule| rule.applies_to(end_user))
        .map(|rule| {
            let start = rule.period.start(input.now_ms);
            let per_user = match (&rule.scope, end_user) {
                (BudgetScope::EveryUser, Some(user)) => Some(user),
                _ => None,
            };
            let counter = counter_name(&rule.id, start, per_user);
            let limit = Picodollars::from_usd(rule.limit_usd).unwrap_or(Picodollars(i64::MAX));
            let charge = Charge {
                counter,
                // Rounded down: a counter never allows more than the limit.
                limit: limit.0 / 1000,
                baseline: rule.baseline(start, end_user).to_nanos_ceil(),
                ttl_secs: rule.period.counter_ttl_secs(start),
            };
            (charge, rule)
        })
        .collect()
}

fn usd(nanos: i64) -> String {
    Picodollars::from_nanos(nanos).to_string()
}

/// OpenAI's duration format: `20ms`, `1s`, `6m0s`.
fn duration_text(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = ms.div_ceil(1000);
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

/// What a bucket counts, for headers and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Requests,
    Tokens,
}

/// One limit that applies to a request, and who set it.
#[derive(Debug)]
struct Applied {
    bucket: Bucket,
    unit: Unit,
    /// "this key", "team", "team for model `x`".
    scope: String,
}

/// Every limit a request counts against: the key's (its own, its organization's default, or
/// the deployment's), its team's, and its team's for the requested model.
/// Every limit is held to the deployment's ceiling (and its plan's, where billing is on), even
/// one set before the ceiling was lowered.
fn applicable(
    input: &PolicyInput<'_>,
    config: &LimitsConfig,
    billing_on: bool,
    estimate: u64,
) -> Vec<Applied> {
    let key = input.key;
    let ceiling = config.ceiling(Some(&key.billing), billing_on);
    let mut applied = Vec::with_capacity(6);
    let mut add = |scope: String, name: String, rpm: Option<u64>, tpm: Option<u64>| {
        let rpm = rpm.map(|limit| ceiling.rpm(limit));
        let tpm = tpm.map(|limit| ceiling.tpm(limit));
        if let Some(limit) = rpm {
            applied.push(Applied {
                bucket: Bucket {
                    key: format!("{name}:rpm"),
                    limit,
                    cost: 1,
                },
                unit: Unit::Requests,
                scope: scope.clone(),
            });
        }
        if let Some(limit) = tpm {
            applied.push(Applied {
                bucket: Bucket {
                    key: format!("{name}:tpm"),
                    limit,
                    cost: estimate,
                },
                unit: Unit::Tokens,
                scope,
            });
        }
    };
    if let Some(key_id) = key.key_id {
        add(
            "this key".into(),
            format!("tollgate:rl:key:{key_id}"),
            Some(key.rpm_limit.unwrap_or(config.default.rpm)),
            Some(key.tpm_limit.unwrap_or(config.default.tpm)),
        );
    }
    if let Some(team) = key.team_id {
        add(
            "this key's team".into(),
            format!("tollgate:rl:team:{team}"),
            key.team_limits.rpm,
            key.team_limits.tpm,
        );
        if let Some(model) = key.team_model_limits.get(input.model) {
            add(
                format!("this key's team on `{}`", input.model),
                format!("tollgate:rl:team:{team}:model:{}", input.model),
                model.rpm,
                model.tpm,
            );
        }
    }
    applied
}

/// OpenAI's six headers; with several limits of a kind, the one with the least left.
fn headers(applied: &[Applied], decision: &Decision) -> Vec<(HeaderName, HeaderValue)> {
    let tightest = |unit: Unit| {
        applied
            .iter()
            .zip(&decision.states)
            .filter(|(a, _)| a.unit == unit)
            .map(|(_, state)| state)
            .min_by_key(|state| state.remaining)
    };
    let text = |s: String| HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static("0"));
    let mut headers = Vec::with_capacity(6);
    for (unit, [limit, remaining, reset]) in [
        (
            Unit::Requests,
            [LIMIT_REQUESTS, REMAINING_REQUESTS, RESET_REQUESTS],
        ),
        (Unit::Tokens, [LIMIT_TOKENS, REMAINING_TOKENS, RESET_TOKENS]),
    ] {
        if let Some(state) = tightest(unit) {
            headers.push((limit, HeaderValue::from(state.limit)));
            headers.push((remaining, HeaderValue::from(state.remaining)));
            headers.push((reset, text(duration_text(state.reset_ms))));
        }
    }
    headers
}

/// The refusal of a request a rate limit has no room for, with the limit's headers.
fn rate_limited(applied: &[Applied], decision: &Decision, estimate: u64) -> Refusal {
    let headers = headers(applied, decision);
    let retry_after_secs = decision.retry_after_ms.div_ceil(1000).max(1);
    let Some(denied) = decision.denied_by.and_then(|i| applied.get(i)) else {
        return Refusal::RateLimited {
            message: format!("Rate limit reached. Try again in {retry_after_secs}s."),
            retry_after_secs,
            headers,
        };
    };
    let (limit, scope) = (denied.bucket.limit, &denied.scope);
    let message = match denied.unit {
        Unit::Tokens if estimate > limit => format!(
            "This request may use up to {estimate} tokens, more than the limit of {limit} tokens per minute on {scope}; lower max_tokens or the prompt."
        ),
        Unit::Tokens => format!(
            "Rate limit reached for tokens on {scope}: {limit} per minute, and this request may use up to {estimate}. Try again in {retry_after_secs}s."
        ),
        Unit::Requests => format!(
            "Rate limit reached for requests on {scope}: {limit} per minute. Try again in {retry_after_secs}s."
        ),
    };
    Refusal::RateLimited {
        message,
        retry_after_secs,
        headers,
    }
}

/// What a request would reserve against its budgets.
struct BudgetClaim<'a> {
    /// Each budget's charge; without a rule, the organization's free allowance and credit.
    charges: Vec<(Charge, Option<&'a BudgetRule>)>,
    /// Nanodollars, rounded up.
    amount: i64,
    /// The same in USD, as the usage event records it.
    usd: Decimal,
}

/// The request's worst-case cost against every budget that applies, and against the free
/// allowance of an organization without a card; `None` when nothing applies.
fn budget_claim<'a>(input: &PolicyInput<'a>, allowance: Option<Charge>) -> Option<BudgetClaim<'a>> {
    let mut charges: Vec<(Charge, Option<&BudgetRule>)> = if input.key.budgets.is_empty() {
        Vec::new()
    } else {
        budget_charges(input)
            .into_iter()
            .map(|(charge, rule)| (charge, Some(rule)))
            .collect()
    };
    charges.extend(allowance.map(|charge| (charge, None)));
    if charges.is_empty() {
        return None;
    }
    // An unpriced model costs nothing in the ledger; it is still refused once a budget is
    // overspent.
    let usd = worst_case_cost(input).unwrap_or(Decimal::ZERO);
    let amount = Picodollars::from_usd(usd).map_or(i64::MAX, Picodollars::to_nanos_ceil);
    Some(BudgetClaim {
        charges,
        amount,
        usd,
    })
}

/// The charge that had no room, and its counter's state (nanodollars).
struct Overspend {
    index: usize,
    spent: i64,
    reserved: i64,
}

/// The refusal of a request a budget has no room for, naming the budget.
fn over_budget(
    input: &PolicyInput<'_>,
    payments: Option<&PaymentRules>,
    claim: &BudgetClaim<'_>,
    over: Overspend,
) -> Refusal {
    let Some((charge, rule)) = claim.charges.get(over.index).or(claim.charges.last()) else {
        return Refusal::OverBudget("A budget of this key has no room left.".into());
    };
    let Some(rule) = rule else {
        return payments.map_or_else(
            || Refusal::OverBudget("The organization's allowance is used.".into()),
            PaymentRules::allowance_used,
        );
    };
    let whose = match (&rule.scope, input.end_user) {
        (BudgetScope::EveryUser, Some(user)) => format!("{} (end user \"{user}\")", rule.label),
        _ => rule.label.clone(),
    };
    let left = (charge.limit - over.spent - over.reserved).max(0);
    Refusal::OverBudget(format!(
        "This request could cost up to {}, and {whose} of {} has {} left ({} spent, {} reserved by requests in progress).",
        usd(claim.amount),
        Picodollars::from_usd(rule.limit_usd).unwrap_or_default(),
        usd(left),
        usd(over.spent),
        usd(over.reserved),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use tollgate_common::{BudgetPeriod, KeyId, RateLimits, TeamId};

    use super::*;
    use crate::{BudgetCounters, OnRedisFailure, RateLimiter};

    fn admission(config: LimitsConfig) -> Admission {
        let gate = AdmissionGate::new(
            Arc::new(RateLimiter::new(None, OnRedisFailure::Local)),
            Arc::new(BudgetCounters::new(None, OnRedisFailure::Local)),
        );
        Admission::new(gate, config, None)
    }

    fn key() -> KeyContext {
        KeyContext {
            key_id: Some(KeyId::generate()),
            rpm_limit: Some(100),
            tpm_limit: Some(1_000_000),
            ..KeyContext::default()
        }
    }

    fn input<'a>(key: &'a KeyContext, estimate: Estimate) -> PolicyInput<'a> {
        PolicyInput {
            key,
            end_user: None,
            model: "gpt-4o",
            now_ms: 1_000_000,
            estimate,
            worst_case_price: Some((Decimal::from(10), Decimal::from(30))),
        }
    }

    fn estimate(prompt: u64, output: u64) -> Estimate {
        Estimate {
            prompt,
            limited_output: output,
            worst_output: output,
        }
    }

    fn monthly_budget(limit_usd: i64, label: &str) -> BudgetRule {
        BudgetRule {
            id: format!("budget-{label}"),
            scope: BudgetScope::Organization,
            period: BudgetPeriod::Monthly,
            limit_usd: Decimal::from(limit_usd),
            thresholds: Vec::new(),
            label: label.into(),
            baseline_period_start: 0,
            spent: Picodollars(0),
            spent_by_user: BTreeMap::new(),
        }
    }

    #[test]
    fn durations_read_like_openais() {
        assert_eq!(duration_text(20), "20ms");
        assert_eq!(duration_text(1000), "1s");
        assert_eq!(duration_text(1001), "2s");
        assert_eq!(duration_text(360_000), "6m0s");
    }

    #[test]
    fn the_key_its_team_and_its_team_on_the_model_each_count() {
        let mut key = key();
        key.rpm_limit = None;
        key.team_id = Some(TeamId::generate());
        key.team_limits = RateLimits {
            rpm: Some(50),
            tpm: None,
        };
        key.team_model_limits.insert(
            "gpt-4o".into(),
            RateLimits {
                rpm: None,
                tpm: Some(700),
            },
        );
        let mut config = LimitsConfig::default();
        config.default.rpm = 60;
        let applied = applicable(&input(&key, estimate(10, 20)), &config, false, 30);
        let seen: Vec<(&str, u64, u64, Unit)> = applied
            .iter()
            .map(|a| (a.scope.as_str(), a.bucket.limit, a.bucket.cost, a.unit))
            .collect();
        assert_eq!(
            seen,
            [
                ("this key", 60, 1, Unit::Requests),
                ("this key", 1_000_000, 30, Unit::Tokens),
                ("this key's team", 50, 1, Unit::Requests),
                ("this key's team on `gpt-4o`", 700, 30, Unit::Tokens),
            ]
        );
        // Another model: the team's limit on gpt-4o does not apply.
        let mut other = input(&key, estimate(10, 20));
        other.model = "gpt-4o-mini";
        assert_eq!(applicable(&other, &config, false, 30).len(), 3);
    }

    #[test]
    fn limits_are_held_to_the_deployments_ceiling() {
        let mut key = key();
        key.rpm_limit = Some(1_000_000);
        let config = LimitsConfig {
            max_rpm: Some(500),
            ..LimitsConfig::default()
        };
        let applied = applicable(&input(&key, estimate(1, 1)), &config, false, 2);
        assert_eq!(applied[0].bucket.limit, 500);
    }

    #[tokio::test]
    async fn open_access_counts_against_nothing() {
        let admitted = admission(LimitsConfig::default())
            .admit(input(&KeyContext::default(), estimate(10, 10)))
            .await
            .unwrap();
        assert!(admitted.held.is_none());
        assert!(admitted.headers.is_empty());
    }

    #[tokio::test]
    async fn a_full_request_limit_refuses_with_openais_headers() {
        let mut key = key();
        key.rpm_limit = Some(1);
        let admission = admission(LimitsConfig::default());
        let first = admission
            .admit(input(&key, estimate(10, 10)))
            .await
            .unwrap();
        let names: Vec<&str> = first.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"x-ratelimit-remaining-requests"));
        assert!(names.contains(&"x-ratelimit-limit-tokens"));
        let Err(Refusal::RateLimited {
            message,
            retry_after_secs,
            headers,
        }) = admission.admit(input(&key, estimate(10, 10))).await
        else {
            panic!("the second request is over the limit");
        };
        assert!(
            message.contains("requests on this key: 1 per minute"),
            "{message}"
        );
        assert!(retry_after_secs >= 1);
        assert!(headers.iter().any(|(name, value)| {
            name.as_str() == "x-ratelimit-remaining-requests" && value == "0"
        }));
    }

    #[tokio::test]
    async fn an_uncharged_call_takes_a_request_and_no_tokens() {
        let mut key = key();
        key.rpm_limit = Some(2);
        key.tpm_limit = Some(100);
        let admission = admission(LimitsConfig::default());
        let headers = admission
            .admit_uncharged(&key, "smart", 1_700_000_000_000)
            .await
            .unwrap();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            header("x-ratelimit-remaining-requests").as_deref(),
            Some("1")
        );
        assert_eq!(
            header("x-ratelimit-remaining-tokens").as_deref(),
            Some("100")
        );
        // The request it took is gone for model calls too.
        admission
            .admit(input(&key, estimate(10, 10)))
            .await
            .unwrap();
        assert!(matches!(
            admission
                .admit_uncharged(&key, "smart", 1_700_000_000_000)
                .await,
            Err(Refusal::RateLimited { .. })
        ));
    }

    #[tokio::test]
    async fn a_request_larger_than_a_token_limit_is_told_to_shrink() {
        let mut key = key();
        key.tpm_limit = Some(100);
        let refused = admission(LimitsConfig::default())
            .admit(input(&key, estimate(60, 60)))
            .await;
        assert!(
            matches!(&refused, Err(Refusal::RateLimited { message, .. }) if message.contains("lower max_tokens")),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn budgets_reserve_the_worst_case_and_refuse_naming_the_budget() {
        let mut key = key();
        key.budgets = vec![monthly_budget(1, "team \"ml\" monthly budget")];
        let admission = admission(LimitsConfig::default());
        // 10,000 prompt tokens at $10/M and 20,000 output tokens at $30/M: $0.70.
        let first = admission
            .admit(input(&key, estimate(10_000, 20_000)))
            .await
            .unwrap();
        assert_eq!(first.budget_reserved, Decimal::new(70, 2));
        let refused = admission.admit(input(&key, estimate(10_000, 20_000))).await;
        let Err(Refusal::OverBudget(message)) = refused else {
            panic!("$0.70 reserved leaves no room for another $0.70 in $1: {refused:?}");
        };
        assert!(message.contains("team \"ml\" monthly budget"), "{message}");
        assert!(
            message.contains("reserved by requests in progress"),
            "{message}"
        );
        // Settled at its real cost ($0.10), the first leaves room for the second.
        let held = first.held.unwrap();
        admission.settle(&held, 100, Some(Decimal::new(10, 2)));
        for _ in 0..100 {
            if admission
                .admit(input(&key, estimate(10_000, 20_000)))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("settling did not give the reservation back");
    }

    #[tokio::test]
    async fn an_end_users_budget_applies_to_that_user_only() {
        let mut key = key();
        let mut rule = monthly_budget(1, "budget of each end user");
        rule.scope = BudgetScope::EveryUser;
        key.budgets = vec![rule];
        let admission = admission(LimitsConfig::default());
        let mut alice = input(&key, estimate(10_000, 20_000));
        alice.end_user = Some("alice");
        admission.admit(alice).await.unwrap();
        let Err(Refusal::OverBudget(message)) = admission.admit(alice).await else {
            panic!("alice's second request is over her budget");
        };
        assert!(message.contains("(end user \"alice\")"), "{message}");
        let mut bob = alice;
        bob.end_user = Some("bob");
        assert!(admission.admit(bob).await.is_ok());
    }
}
