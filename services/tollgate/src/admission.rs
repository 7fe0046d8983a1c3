//! The gateway's admit stage, backed by the billing service: rate limits (requests and tokens
//! per minute, with OpenAI's rate-limit headers on every answer) and budgets (the request's
//! worst-case cost reserved against every budget that applies), decided together in one step
//! (one Redis round trip when Redis is configured).

use std::sync::Arc;

use actix_web::http::header::{HeaderName, HeaderValue};
use async_trait::async_trait;
use rust_decimal::Decimal;
use tollgate_billing::budgets::counter_name;
use tollgate_billing::{
    AdmissionError, AdmissionGate, AdmissionRequest, Bucket, Charge, Counted, Decision, Settlement,
    Verdict,
};
use tollgate_common::config::LimitsConfig;
use tollgate_common::{BudgetRule, BudgetScope, Picodollars};
use tollgate_gateway::GatewayError;
use tollgate_gateway::openai::{Endpoint, InboundBody};
use tollgate_gateway::pipeline::metering::UsageEvent;
use tollgate_gateway::pipeline::{Admit, RequestContext, Reservation};
use tollgate_gateway::tokens;

use crate::payments::PaymentRules;

/// Rate limits and budgets per virtual key, and the organization's payments.
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
}

/// What a request holds until it is settled.
struct Held {
    id: String,
    counted: Counted,
    token_buckets: Vec<String>,
    budgets: Option<HeldBudgets>,
}

/// A budget reservation: on which counters, how much (nanodollars), and where it was counted.
struct HeldBudgets {
    counters: Vec<String>,
    reserved: i64,
    counted: Counted,
}

const MILLION: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

/// Top-level members of a chat request that providers turn into prompt text besides the
/// messages: tool and function definitions and a structured-output schema.
const PROMPT_MEMBERS: [&str; 3] = ["tools", "functions", "response_format"];

/// What a request may use, estimated at admission: its prompt, the output it counts against
/// token limits, and the output its budgets must hold room for.
struct Estimate {
    prompt: u64,
    /// Every choice at the client's output limit (`limits.default_max_tokens` without one):
    /// what token-per-minute limits count, as OpenAI's own limits do.
    limited_output: u64,
    /// Every choice at the most any target may answer: the client's limit capped by the
    /// model's maximum, or without a limit the model's maximum (Anthropic: what the gateway
    /// sends it). Budgets reserve this, so no answer can cost more than was reserved.
    worst_output: u64,
}

/// The prompt is estimated (about four bytes a token of ASCII, a token a character of other
/// scripts, a fixed amount an image) rather than counted with the tokenizer, whose tables cost
/// some 50 MB of memory and whose count costs more than the rest of admission; reservations
/// are corrected with the upstream's real usage when the request ends.
fn estimate_tokens(ctx: &RequestContext, body: &InboundBody, default_max_tokens: u64) -> Estimate {
    let prompt = match body.endpoint {
        Endpoint::ChatCompletions => body
            .field("messages")
            .and_then(tokens::chat_prompt_estimate)
            .map(|messages| {
                let members: u64 = PROMPT_MEMBERS
                    .iter()
                    .filter_map(|member| body.field(member))
                    .map(tokens::json_estimate)
                    .sum();
                messages + members
            }),
        Endpoint::Embeddings => body
            .embeddings()
            .ok()
            .map(tokens::embeddings_input_estimate),
    }
    // A body the estimates cannot read is refused later anyway; a byte estimate will do.
    .unwrap_or_else(|| (body.raw().len() as u64).div_ceil(4));
    if body.endpoint == Endpoint::Embeddings {
        return Estimate {
            prompt,
            limited_output: 0,
            worst_output: 0,
        };
    }
    let choices = u64::from(body.choices);
    let requested = body.max_output_tokens;
    let worst_per_choice = ctx.route.as_ref().map_or(default_max_tokens, |route| {
        route.worst_case_output(requested, default_max_tokens)
    });
    Estimate {
        prompt,
        limited_output: choices * requested.map_or(default_max_tokens, u64::from),
        worst_output: choices * worst_per_choice,
    }
}

/// The most a request can cost: its prompt at the highest input price and its worst-case
/// output at the highest output price among the targets it may be routed to. `None` when none
/// of them has a price.
fn worst_case_cost(ctx: &RequestContext, estimate: &Estimate) -> Option<Decimal> {
    let (input_price, output_price) = ctx.route.as_ref()?.worst_case_price()?;
    Some(
        (Decimal::from(estimate.prompt) * input_price
            + Decimal::from(estimate.worst_output) * output_price)
            / MILLION,
    )
}

/// The counters a request is charged against: one per budget that applies, per period (and
/// per end user for a per-user budget).
fn budget_charges(ctx: &RequestContext, now_ms: i64) -> Vec<(Charge, &BudgetRule)> {
    let end_user = ctx.end_user.as_deref();
    ctx.key
        .budgets
        .iter()
        .filter(|rule| rule.applies_to(end_user))
        .map(|rule| {
            let start = rule.period.start(now_ms);
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
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Requests,
    Tokens,
}

/// One limit that applies to a request, and who set it.
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
    ctx: &RequestContext,
    config: &LimitsConfig,
    billing_on: bool,
    estimate: u64,
) -> Vec<Applied> {
    let key = &ctx.key;
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
        if let Some(model) = key.team_model_limits.get(&ctx.requested_model) {
            add(
                format!("this key's team on `{}`", ctx.requested_model),
                format!("tollgate:rl:team:{team}:model:{}", ctx.requested_model),
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
fn rate_limited(applied: &[Applied], decision: &Decision, estimate: u64) -> GatewayError {
    let headers = headers(applied, decision);
    let retry_after_secs = decision.retry_after_ms.div_ceil(1000).max(1);
    let Some(denied) = decision.denied_by.and_then(|i| applied.get(i)) else {
        return GatewayError::RateLimited {
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
    GatewayError::RateLimited {
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
fn budget_claim<'a>(
    ctx: &'a RequestContext,
    allowance: Option<Charge>,
    estimate: &Estimate,
) -> Option<BudgetClaim<'a>> {
    let mut charges: Vec<(Charge, Option<&BudgetRule>)> = if ctx.key.budgets.is_empty() {
        Vec::new()
    } else {
        budget_charges(ctx, ctx.received_at_ms())
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
    let usd = worst_case_cost(ctx, estimate).unwrap_or(Decimal::ZERO);
    let amount = Picodollars::from_usd(usd).map_or(i64::MAX, Picodollars::to_nanos_ceil);
    Some(BudgetClaim {
        charges,
        amount,
        usd,
    })
}

/// The refusal of a request a budget has no room for, naming the budget.
fn over_budget(
    ctx: &RequestContext,
    payments: Option<&PaymentRules>,
    claim: &BudgetClaim<'_>,
    index: usize,
    spent: i64,
    reserved: i64,
) -> GatewayError {
    let Some((charge, rule)) = claim.charges.get(index).or(claim.charges.last()) else {
        return GatewayError::BudgetExceeded("A budget of this key has no room left.".into());
    };
    let Some(rule) = rule else {
        return payments.map_or_else(
            || GatewayError::BudgetExceeded("The organization's allowance is used.".into()),
            PaymentRules::allowance_used,
        );
    };
    let whose = match (&rule.scope, ctx.end_user.as_deref()) {
        (BudgetScope::EveryUser, Some(user)) => format!("{} (end user \"{user}\")", rule.label),
        _ => rule.label.clone(),
    };
    let left = (charge.limit - spent - reserved).max(0);
    GatewayError::BudgetExceeded(format!(
        "This request could cost up to {}, and {whose} of {} has {} left ({} spent, {} reserved by requests in progress).",
        usd(claim.amount),
        Picodollars::from_usd(rule.limit_usd).unwrap_or_default(),
        usd(left),
        usd(spent),
        usd(reserved),
    ))
}

#[async_trait]
impl Admit for Admission {
    async fn admit(
        &self,
        ctx: &RequestContext,
        body: &InboundBody,
    ) -> Result<Reservation, GatewayError> {
        // Open access (no key) has no limits to count against.
        if ctx.key.key_id.is_none() {
            return Ok(Reservation::default());
        }
        let tokens = estimate_tokens(ctx, body, self.config.default_max_tokens);
        let estimate = tokens.prompt + tokens.limited_output;
        let applied = applicable(ctx, &self.config, self.payments.is_some(), estimate);
        let buckets: Vec<Bucket> = applied.iter().map(|a| a.bucket.clone()).collect();
        let id = uuid::Uuid::now_v7().to_string();
        let now_ms = ctx.received_at_ms();
        let mut allowance = None;
        if let (Some(payments), Some(org)) = (&self.payments, ctx.key.org_id) {
            payments.check_standing(&ctx.key.billing, now_ms)?;
            allowance = payments.allowance(org, &ctx.key.billing, now_ms);
        }
        let claim = budget_claim(ctx, allowance, &tokens);
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
                AdmissionError::Limits(_) => GatewayError::LimitsUnavailable,
                AdmissionError::Budgets(_) => GatewayError::BudgetsUnavailable,
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
                    return Err(GatewayError::BudgetsUnavailable);
                };
                return Err(over_budget(
                    ctx,
                    self.payments.as_ref(),
                    claim,
                    index,
                    spent,
                    reserved,
                ));
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
        let token_buckets: Vec<String> = applied
            .into_iter()
            .filter(|a| a.unit == Unit::Tokens)
            .map(|a| a.bucket.key)
            .collect();
        Ok(Reservation {
            data: Some(Arc::new(Held {
                id,
                counted,
                token_buckets,
                budgets,
            })),
            headers,
            budget_reserved: claim.map_or(Decimal::ZERO, |c| c.usd),
        })
    }

    /// Corrects the token reservations to what the request really used (nothing, if it
    /// failed before any usage).
    fn settle(&self, reservation: Reservation, event: &UsageEvent) {
        let Some(held) = reservation
            .data
            .and_then(|data| data.downcast::<Held>().ok())
        else {
            return;
        };
        let used = event.usage.input_tokens + event.usage.output_tokens;
        let actual = event
            .cost
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
                .map(|k| (k.clone(), used))
                .collect(),
            counters,
            reserved,
            actual,
        };
        self.gate
            .settle_in_background(settlement, held.counted, budgets_counted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_openais() {
        assert_eq!(duration_text(20), "20ms");
        assert_eq!(duration_text(1000), "1s");
        assert_eq!(duration_text(1001), "2s");
        assert_eq!(duration_text(360_000), "6m0s");
    }
}
