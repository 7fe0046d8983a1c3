//! Settling and metering, off the request path.
//!
//! When a request ends (answered, failed, or abandoned by its client mid-stream) the path that
//! ended it sends a [`Completion`] down an unbounded channel and moves on. The recorder task
//! turns it into a [`UsageEvent`]: tokens (counted with the tokenizer where the upstream gave
//! none), cost from the price catalog, metrics; then settles the admission reservation and
//! hands the event to the meter stage.
//!
//! The recorder takes whatever has queued up since it last ran and meters it as one batch,
//! with one acknowledgement that it passes on to each waiting answer itself: one journal write
//! per batch rather than per request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tollgate_common::{PriceCatalog, TokenUsage};

use super::context::RequestContext;
use super::stages::{Reservation, Stages};
use super::usage::{UsageEvent, Written};
use crate::metrics::Metrics;
use crate::openai::{Endpoint, InboundBody};
use crate::routing::Target;
use crate::tokens;

/// The status recorded for a request whose client went away before the answer ended (nginx's
/// convention; never sent to anyone).
pub const CLIENT_CLOSED: u16 = 499;

/// How a request ended, as the request path saw it.
pub struct Completion {
    pub ctx: RequestContext,
    pub target: Option<Arc<Target>>,
    pub attempts: u32,
    pub status: u16,
    /// A bounded error label ([`crate::error::GatewayError::label`]), `None` on success.
    pub error: Option<&'static str>,
    /// What the upstream reported.
    pub usage: Option<TokenUsage>,
    /// Generated text, for counting output tokens when `usage` is `None`.
    pub output_text: String,
    /// The parsed request, for counting prompt tokens when `usage` is `None`.
    pub request: Option<Arc<InboundBody>>,
    pub time_to_first_token: Option<Duration>,
    pub finished: Instant,
    pub reservation: Reservation,
    /// For an answer replayed from the cache: the model and usage it had when it was made,
    /// so that the event can say what the hit saved.
    pub cached: Option<(String, TokenUsage)>,
    /// Told whether the usage event reached durable storage, for an answer that waits on it.
    pub written: Option<Written>,
}

impl Completion {
    /// A request that ended well, with nothing known yet beyond its context: the path that
    /// ends it fills in the rest.
    pub fn new(ctx: RequestContext, reservation: Reservation) -> Self {
        Completion {
            ctx,
            target: None,
            attempts: 0,
            status: 200,
            error: None,
            usage: None,
            output_text: String::new(),
            request: None,
            time_to_first_token: None,
            finished: Instant::now(),
            reservation,
            cached: None,
            written: None,
        }
    }
}

/// The request path's end of the recorder.
#[derive(Clone)]
pub struct UsageSender(mpsc::UnboundedSender<Completion>);

impl UsageSender {
    /// Queues a completion; never waits.
    pub fn send(&self, completion: Completion) {
        if self.0.send(completion).is_err() {
            tracing::error!("usage recorder has stopped; a usage event was not recorded");
        }
    }

    /// Queues a completion and waits until its usage event is durably recorded: an answer's
    /// last byte waits on this. False when it could not be recorded.
    pub async fn send_and_wait(&self, mut completion: Completion) -> bool {
        let (written, recorded) = oneshot::channel();
        completion.written = Some(written);
        self.send(completion);
        recorded.await.unwrap_or(false)
    }
}

/// The most completions the recorder meters as one batch.
const RECORDER_BATCH: usize = 256;

/// Starts the recorder task on the current runtime.
pub fn spawn_recorder(
    stages: Stages,
    catalog: Arc<PriceCatalog>,
    metrics: Arc<Metrics>,
) -> UsageSender {
    let (tx, mut rx) = mpsc::unbounded_channel::<Completion>();
    tokio::spawn(async move {
        let mut arrived = Vec::with_capacity(RECORDER_BATCH);
        while rx.recv_many(&mut arrived, RECORDER_BATCH).await > 0 {
            let mut events = Vec::with_capacity(arrived.len());
            let mut waiting = Vec::new();
            for mut completion in arrived.drain(..) {
                let reservation = completion.reservation.clone();
                waiting.extend(completion.written.take());
                let event = to_event(completion, &catalog).await;
                metrics.observe(&event);
                stages.admit.settle(reservation, &event);
                events.push(event);
            }
            if waiting.is_empty() {
                stages.meter.record(events, None);
                continue;
            }
            let (written, mut recorded) = oneshot::channel();
            stages.meter.record(events, Some(written));
            let pass_on = |ok: bool, waiting: Vec<Written>| {
                for answer in waiting {
                    let _ = answer.send(ok);
                }
            };
            match recorded.try_recv() {
                // Written already (the journal's usual case): no task to wait for it.
                Ok(ok) => pass_on(ok, waiting),
                Err(oneshot::error::TryRecvError::Closed) => pass_on(false, waiting),
                // Passed on from this thread, so that the meter's thread wakes this one once
                // per batch rather than once per answer.
                Err(oneshot::error::TryRecvError::Empty) => {
                    tokio::spawn(async move { pass_on(recorded.await.unwrap_or(false), waiting) });
                }
            }
        }
    });
    UsageSender(tx)
}

async fn to_event(c: Completion, catalog: &PriceCatalog) -> UsageEvent {
    let mut usage_estimated = false;
    let usage = match c.usage {
        Some(usage) => usage,
        // Estimate only where the provider did the work: an answer, or a stream the client
        // abandoned after it started. A rejected or failed request costs nothing.
        None if c.target.is_some()
            && (c.status < 300 || c.status == CLIENT_CLOSED || !c.output_text.is_empty()) =>
        {
            usage_estimated = true;
            let request = c.request.clone();
            let output = c.output_text;
            // The tokenizer is CPU work: keep it off the async workers.
            tokio::task::spawn_blocking(move || estimate(request.as_deref(), &output))
                .await
                .unwrap_or_default()
        }
        None => TokenUsage::default(),
    };
    let saved = c
        .cached
        .as_ref()
        .and_then(|(model, usage)| catalog.cost(model, *usage));
    let cost = c
        .target
        .as_ref()
        .and_then(|t| catalog.cost(&t.model, usage));
    UsageEvent {
        request_id: c.ctx.request_id,
        event_id: c.ctx.event_id,
        tags: c.ctx.tags,
        cache: c.ctx.cache,
        budget_reserved: c.reservation.budget_reserved,
        saved,
        time: c.ctx.received_at,
        key: c.ctx.key,
        end_user: c.ctx.end_user,
        endpoint: c.ctx.endpoint,
        requested_model: c.ctx.requested_model,
        provider: c.target.as_ref().map(|t| t.provider.name.clone()),
        provider_model: c.target.as_ref().map(|t| t.model.clone()),
        usage,
        usage_estimated,
        cost,
        latency: c.finished.duration_since(c.ctx.started),
        time_to_first_token: c.time_to_first_token,
        status: c.status,
        error: c.error,
        attempts: c.attempts,
        stream: c.ctx.stream,
        guardrails: Vec::new(),
    }
}

fn estimate(request: Option<&InboundBody>, output: &str) -> TokenUsage {
    let input_tokens = match request {
        Some(body) => match body.endpoint {
            Endpoint::ChatCompletions => body.chat().map(tokens::chat_prompt).unwrap_or(0),
            Endpoint::Embeddings => body.embeddings().map(tokens::embeddings_input).unwrap_or(0),
            Endpoint::Completions => body.field("prompt").map_or(0, tokens::json_estimate),
            // Moderations are free, and their answers report no usage; an image or audio
            // answer without usage (dall-e, whisper-1) is priced per image or minute, which
            // tokens would misstate.
            Endpoint::Moderations | Endpoint::ImageGenerations | Endpoint::AudioTranscriptions => 0,
        },
        None => 0,
    };
    TokenUsage {
        input_tokens,
        output_tokens: tokens::count(output),
        cached_input_tokens: 0,
    }
}
