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
    tokens_bucket: String,
}

const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

/// Tokens a request may use: its prompt, counted with the tokenizer, and its output limit.
fn estimate_tokens(body: &InboundBody, default_max_tokens: u64) -> u64 {
    let prompt = match body.endpoint {
        Endpoint::ChatCompletions => body.chat().map(tokens::chat_prompt),
        Endpoint::Embeddings => body.embeddings().map(tokens::embeddings_input),
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

fn headers(decision: &Decision) -> Vec<(HeaderName, HeaderValue)> {
    let [requests, tokens] = [&decision.states[0], &decision.states[1]];
    let text = |s: String| HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static("0"));
    vec![
        (LIMIT_REQUESTS, HeaderValue::from(requests.limit)),
        (REMAINING_REQUESTS, HeaderValue::from(requests.remaining)),
        (RESET_REQUESTS, text(duration_text(requests.reset_ms))),
        (LIMIT_TOKENS, HeaderValue::from(tokens.limit)),
        (REMAINING_TOKENS, HeaderValue::from(tokens.remaining)),
        (RESET_TOKENS, text(duration_text(tokens.reset_ms))),
    ]
}

#[async_trait]
impl Admit for RateLimitAdmission {
    async fn admit(
        &self,
        ctx: &RequestContext,
        body: &InboundBody,
    ) -> Result<Reservation, GatewayError> {
        // Open access (no key) has no limits to count against.
        let Some(key_id) = ctx.key.key_id else {
            return Ok(Reservation::default());
        };
        let rpm = ctx.key.rpm_limit.unwrap_or(self.config.default.rpm);
        let tpm = ctx.key.tpm_limit.unwrap_or(self.config.default.tpm);
        let estimate = estimate_tokens(body, self.config.default_max_tokens);
        let buckets = [
            Bucket {
                key: format!("tollgate:rl:key:{key_id}:rpm"),
                limit: rpm,
                cost: 1,
            },
            Bucket {
                key: format!("tollgate:rl:key:{key_id}:tpm"),
                limit: tpm,
                cost: estimate,
            },
        ];
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
        let headers = headers(&decision);
        if !decision.allowed {
            let retry_after_secs = decision.retry_after_ms.div_ceil(1000).max(1);
            let message = match decision.denied_by {
                Some(1) if estimate > tpm => format!(
                    "This request may use up to {estimate} tokens, more than this key's limit of {tpm} tokens per minute; lower max_tokens or the prompt."
                ),
                Some(1) => format!(
                    "Rate limit reached for tokens: this key may use {tpm} tokens per minute and this request may use up to {estimate}. Try again in {retry_after_secs}s."
                ),
                _ => format!(
                    "Rate limit reached for requests: this key may make {rpm} requests per minute. Try again in {retry_after_secs}s."
                ),
            };
            return Err(GatewayError::RateLimited {
                message,
                retry_after_secs,
                headers,
            });
        }
        let [_, tokens_bucket] = buckets;
        Ok(Reservation {
            data: Some(Arc::new(Held {
                id,
                counted,
                tokens_bucket: tokens_bucket.key,
            })),
            headers,
        })
    }

    /// Corrects the token reservation to what the request really used (nothing, if it
    /// failed before any usage).
    fn settle(&self, reservation: Reservation, event: &UsageEvent) {
        let Some(held) = reservation
            .data
            .and_then(|data| data.downcast::<Held>().ok())
        else {
            return;
        };
        let used = event.usage.input_tokens + event.usage.output_tokens;
        let limiter = self.limiter.clone();
        tokio::spawn(async move {
            limiter
                .adjust(
                    &held.id,
                    held.counted,
                    &[(held.tokens_bucket.clone(), used)],
                )
                .await;
        });
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
