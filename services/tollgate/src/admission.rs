//! The gateway's admit stage, backed by the billing service: the gateway estimates what the
//! request may use from its body and route, and billing's rules ([`tollgate_billing::Admission`])
//! decide on its rate limits and budgets in one step (one Redis round trip when Redis is
//! configured); this file only translates between the two.

use std::sync::Arc;

use actix_web::http::header::{HeaderName, HeaderValue};
use async_trait::async_trait;
use tollgate_billing::{Admission, Estimate, Held, PolicyInput, Refusal};
use tollgate_gateway::GatewayError;
use tollgate_gateway::openai::{Endpoint, InboundBody};
use tollgate_gateway::pipeline::usage::UsageEvent;
use tollgate_gateway::pipeline::{Admit, RequestContext, Reservation};
use tollgate_gateway::tokens;

/// The admit stage: billing's admission, with `limits.default_max_tokens` for requests that
/// set no output limit.
pub struct BillingAdmission {
    admission: Admission,
    default_max_tokens: u64,
}

impl BillingAdmission {
    pub fn new(admission: Admission, default_max_tokens: u64) -> Self {
        BillingAdmission {
            admission,
            default_max_tokens,
        }
    }
}

/// Top-level members of a chat request that providers turn into prompt text besides the
/// messages: tool and function definitions and a structured-output schema.
const PROMPT_MEMBERS: [&str; 3] = ["tools", "functions", "response_format"];

/// The most output tokens OpenAI lists for one gpt-image-1 image: high quality at its largest
/// size (1536×1024 and 1024×1536).
const MAX_IMAGE_OUTPUT_TOKENS: u64 = 6_240;

/// Audio bytes per input token assumed for a transcription's file, which cannot be decoded
/// here. OpenAI's transcription models bill about 1,000 audio tokens a minute
/// (gpt-4o-transcribe: some $0.006 a minute at $6 per million audio tokens), about 17 a
/// second; speech compressed as far as common codecs go (Opus or MP3 near 4 kbit/s, 500 bytes
/// a second) is then some 30 bytes a token. 24 stays above that for files denser still,
/// so that reservations err high; they are settled with the usage reported.
const AUDIO_BYTES_PER_TOKEN: u64 = 24;

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
        Endpoint::Completions => body.field("prompt").map(tokens::json_estimate),
        Endpoint::Moderations => body.field("input").map(tokens::json_estimate),
        Endpoint::ImageGenerations => body.field("prompt").map(tokens::json_estimate),
        Endpoint::AudioTranscriptions => body.form().map(|form| {
            let prompt = form
                .text("prompt")
                .ok()
                .flatten()
                .map_or(0, |prompt| tokens::json_estimate(prompt.as_bytes()));
            form.bytes_of("file").div_ceil(AUDIO_BYTES_PER_TOKEN) + prompt
        }),
    }
    // A body the estimates cannot read is refused later anyway; a byte estimate will do.
    .unwrap_or_else(|| (body.raw().len() as u64).div_ceil(4));
    match body.endpoint {
        Endpoint::ImageGenerations => {
            // Every image at the most it can cost: gpt-image answers are billed in output
            // tokens by quality and size, and dall-e's per image, neither known before the
            // answer; budgets must hold the worst case, so each image reserves the most.
            let worst = u64::from(body.choices) * MAX_IMAGE_OUTPUT_TOKENS;
            return Estimate {
                prompt,
                limited_output: worst,
                worst_output: worst,
            };
        }
        Endpoint::AudioTranscriptions => {
            // A transcript has no output limit of its own: the route's default bounds it.
            let worst = ctx.route.as_ref().map_or(default_max_tokens, |route| {
                route.worst_case_output(None, default_max_tokens)
            });
            return Estimate {
                prompt,
                limited_output: default_max_tokens,
                worst_output: worst,
            };
        }
        _ => {}
    }
    if !body.endpoint.generates() {
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

fn refused(refusal: Refusal) -> GatewayError {
    match refusal {
        Refusal::RateLimited {
            message,
            retry_after_secs,
            headers,
        } => GatewayError::RateLimited {
            message,
            retry_after_secs,
            headers,
        },
        Refusal::OverBudget(message) => GatewayError::BudgetExceeded(message),
        Refusal::PaymentRequired(message) => GatewayError::PaymentRequired(message),
        Refusal::LimitsUnavailable => GatewayError::LimitsUnavailable,
        Refusal::BudgetsUnavailable => GatewayError::BudgetsUnavailable,
    }
}

#[async_trait]
impl Admit for BillingAdmission {
    async fn admit(
        &self,
        ctx: &RequestContext,
        body: &InboundBody,
    ) -> Result<Reservation, GatewayError> {
        if ctx.key.key_id.is_none() {
            return Ok(Reservation::default());
        }
        let admitted = self
            .admission
            .admit(PolicyInput {
                key: &ctx.key,
                end_user: ctx.end_user.as_deref(),
                model: &ctx.requested_model,
                now_ms: ctx.received_at_ms(),
                estimate: estimate_tokens(ctx, body, self.default_max_tokens),
                worst_case_price: ctx.route.as_ref().and_then(|r| r.worst_case_price()),
            })
            .await
            .map_err(refused)?;
        Ok(Reservation {
            data: admitted
                .held
                .map(|held| Arc::new(held) as Arc<dyn std::any::Any + Send + Sync>),
            headers: admitted.headers,
            budget_reserved: admitted.budget_reserved,
        })
    }

    async fn admit_uncharged(
        &self,
        ctx: &RequestContext,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, GatewayError> {
        self.admission
            .admit_uncharged(&ctx.key, &ctx.requested_model, ctx.received_at_ms())
            .await
            .map_err(refused)
    }

    /// Corrects the reservations to what the request really used (nothing, if it failed
    /// before any usage).
    fn settle(&self, reservation: Reservation, event: &UsageEvent) {
        let Some(held) = reservation
            .data
            .and_then(|data| data.downcast::<Held>().ok())
        else {
            return;
        };
        let used = event.usage.input_tokens + event.usage.output_tokens;
        self.admission.settle(&held, used, event.cost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tollgate_gateway::ingress::Ingress;

    fn estimate(endpoint: Endpoint, body: InboundBody) -> Estimate {
        let ctx = RequestContext::new("r".into(), Ingress::OpenAi(endpoint), Arc::default());
        estimate_tokens(&ctx, &body, 4_096)
    }

    #[test]
    fn every_image_asked_for_reserves_the_most_one_image_can_cost() {
        let body = InboundBody::parse(
            Endpoint::ImageGenerations,
            Bytes::from_static(br#"{"model":"m","prompt":"a red fox in the snow","n":3}"#),
        )
        .unwrap();
        let estimate = estimate(Endpoint::ImageGenerations, body);
        assert_eq!(estimate.worst_output, 3 * MAX_IMAGE_OUTPUT_TOKENS);
        assert_eq!(estimate.limited_output, 3 * MAX_IMAGE_OUTPUT_TOKENS);
        assert!((4..=10).contains(&estimate.prompt), "{}", estimate.prompt);
    }

    #[test]
    fn a_transcription_reserves_by_its_files_size_and_the_default_output() {
        let audio = vec![b'a'; 24_000];
        let mut raw = b"--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n\
                        --B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n\r\n"
            .to_vec();
        raw.extend_from_slice(&audio);
        raw.extend_from_slice(b"\r\n--B--\r\n");
        let body = InboundBody::parse_form(
            Endpoint::AudioTranscriptions,
            Some("multipart/form-data; boundary=B"),
            Bytes::from(raw),
        )
        .unwrap();
        let estimate = estimate(Endpoint::AudioTranscriptions, body);
        assert_eq!(estimate.prompt, 1_000);
        assert_eq!(
            (estimate.limited_output, estimate.worst_output),
            (4_096, 4_096)
        );
    }
}
