//! The gateway's admit stage backed by the billing service's rate limiter: requests and tokens
//! per minute for each virtual key, with OpenAI's rate-limit headers on every answer.

use std::sync::Arc;

use actix_web::http::header::{HeaderName, HeaderValue};
use async_trait::async_trait;
use tollgate_billing::limits::Counted;
use tollgate_billing::{Bucket, Decision, LimitError, RateLimiter};
use tollgate_common::config::LimitsConfig;
use tollgate_gateway::GatewayError;
use tollgate_gateway::openai::{Endpoint, InboundBody};
use tollgate_gateway::pipeline::metering::UsageEvent;
use tollgate_gateway::pipeline::{Admit, RequestContext, Reservation};
use tollgate_gateway::tokens;

/// Rate limits per virtual key.
pub struct RateLimitAdmission {
    limiter: Arc<RateLimiter>,
    config: LimitsConfig,
}

impl RateLimitAdmission {
    pub fn new(limiter: Arc<RateLimiter>, config: LimitsConfig) -> Self {
        RateLimitAdmission { limiter, config }
    }
}

/// What a request holds until it is settled.
struct Held {
    id: String,
    counted: Counted,
    token_buckets: Vec<String>,
}

const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

/// Tokens a request may use: its prompt and its output limit. The prompt is estimated at about
/// four bytes a token rather than counted with the tokenizer, whose tables cost some 50 MB of
/// memory and whose count costs more than the rest of admission; the reservation is corrected
/// with the upstream's real usage when the request ends.
fn estimate_tokens(body: &InboundBody, default_max_tokens: u64) -> u64 {
    let prompt = match body.endpoint {
        Endpoint::ChatCompletions => body.chat().map(tokens::chat_prompt_estimate),
        Endpoint::Embeddings => body.embeddings().map(tokens::embeddings_input_estimate),
    }
    // A body the typed view cannot read is refused later anyway; a byte estimate will do.
    .unwrap_or_else(|_| (body.raw().len() as u64).div_ceil(4));
    let output = match body.endpoint {
        Endpoint::Embeddings => 0,
        Endpoint::ChatCompletions => body.max_output_tokens.map_or(default_max_tokens, u64::from),
    };
    prompt + output
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
fn applicable(ctx: &RequestContext, config: &LimitsConfig, estimate: u64) -> Vec<Applied> {
    let key = &ctx.key;
    let mut applied = Vec::with_capacity(6);
    let mut add = |scope: String, name: String, rpm: Option<u64>, tpm: Option<u64>| {
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

#[async_trait]
impl Admit for RateLimitAdmission {
    async fn admit(
        &self,
        ctx: &RequestContext,
        body: &InboundBody,
    ) -> Result<Reservation, GatewayError> {
        // Open access (no key) has no limits to count against.
        if ctx.key.key_id.is_none() {
            return Ok(Reservation::default());
        }
        let estimate = estimate_tokens(body, self.config.default_max_tokens);
        let applied = applicable(ctx, &self.config, estimate);
        let buckets: Vec<Bucket> = applied.iter().map(|a| a.bucket.clone()).collect();
        let id = uuid::Uuid::now_v7().to_string();
        let (decision, counted) =
            self.limiter
                .acquire(&id, &buckets)
                .await
                .map_err(|err| match err {
                    LimitError::Unavailable | LimitError::Redis(_) => {
                        GatewayError::LimitsUnavailable
                    }
                })?;
        let headers = headers(&applied, &decision);
        if let Some(denied) = decision.denied_by.and_then(|i| applied.get(i)) {
            let retry_after_secs = decision.retry_after_ms.div_ceil(1000).max(1);
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
            return Err(GatewayError::RateLimited {
                message,
                retry_after_secs,
                headers,
            });
        }
        let token_buckets = applied
            .into_iter()
            .filter(|a| a.unit == Unit::Tokens)
            .map(|a| a.bucket.key)
            .collect();
        Ok(Reservation {
            data: Some(Arc::new(Held {
                id,
                counted,
                token_buckets,
            })),
            headers,
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
        let costs: Vec<(String, u64)> = held
            .token_buckets
            .iter()
            .map(|k| (k.clone(), used))
            .collect();
        self.limiter
            .adjust_in_background(held.id.clone(), held.counted, costs);
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
