//! The request pipeline, top to bottom. Each stage is one step here and one module elsewhere:
//!
//! | stage        | does                                                   | adds to the context      |
//! |--------------|--------------------------------------------------------|--------------------------|
//! | authenticate | [`Authenticate`]: who is calling, from the headers     | [`KeyContext`]           |
//! |              | alone, before the body is read                         |                          |
//! | parse        | reads the top-level fields, checks their types         | model, stream, end user  |
//! | route        | [`crate::routing`]: the model's targets (unknown: 404) | route group              |
//! |              | and the key's allow-list (not allowed: 403)            |                          |
//! | admit        | [`Admit`]: rate limits, budget reservation             | [`Reservation`]          |
//! | guardrails   | [`Guardrails`]: input checks                           |                          |
//! | cache        | [`ResponseCache`]: an answer without a provider call   |                          |
//! | provider     | [`crate::upstream`] + adapter: strategy order, send,   | target, attempts         |
//! |              | retry, fail over                                       |                          |
//! | respond      | translate back; stream through [`relay`]               | usage, time to first token |
//! | settle/meter | [`metering`]: tokens, cost, reservation, usage event   | (off the request path)   |
//!
//! The server runs the authenticate stage before it reads the body, so that a caller without a
//! valid key is refused before a byte of its body is buffered or parsed; [`Gateway::handle`]
//! runs the rest with the key it found.
//!
//! A non-streaming request's provider call finishes in the background if the client hangs up
//! ([`detach::FinishDetached`]), so that an answer the provider produced (and charged for) is
//! metered; a streaming one is metered by the relay, which also reports when the client leaves
//! mid-stream.

pub mod context;
mod detach;
pub mod metering;
mod relay;
pub mod stages;
pub mod tags;
pub mod usage;

use std::sync::Arc;
use std::time::Instant;

use actix_web::HttpResponse;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use tollgate_common::PriceCatalog;
use tracing::Instrument;
use tracing::field::Empty;

pub use context::{KeyContext, RequestContext};
use metering::{Completion, UsageSender};
pub use stages::{
    Admit, AnswerGuard, Authenticate, CachedAnswer, GuardedText, Guardrails, InputChecked, Meter,
    Reservation, ResponseCache, Stages, StreamGuard,
};

use crate::error::GatewayError;
use crate::ingress::Ingress;
use crate::metrics::Metrics;
use crate::openai::response::completion_as_stream;
use crate::openai::{Endpoint, InboundBody};
use crate::providers::Translated;
use crate::routing::{Router, Target};
use crate::upstream::{self, UpstreamBody, UpstreamFailure, UpstreamSuccess};
use relay::{RelayBody, StreamKeeper};

/// Everything a request needs, shared by all workers.
pub struct Gateway {
    pub router: Router,
    pub metrics: Arc<Metrics>,
    pub catalog: Arc<PriceCatalog>,
    pub(crate) stages: Stages,
}

/// What each server worker owns, so that a request never hops threads: a pooled upstream client
/// whose connections the worker's runtime drives, and a usage recorder running beside it.
#[derive(Clone)]
pub struct Worker {
    pub client: reqwest::Client,
    pub recorder: UsageSender,
}

/// Token counts of bodies up to this size use the tokenizer; larger ones are estimated.
const TOKENIZED_BYTES: usize = 256 * 1024;

/// A whole answer, ready to send.
struct Answer {
    body: Bytes,
    target: Arc<Target>,
    attempts: u32,
    /// `body` is the target's own answer in the client's API (see
    /// [`crate::providers::ProviderAdapter::forwards`]), not OpenAI's.
    native: bool,
}

impl Gateway {
    pub fn new(
        router: Router,
        catalog: Arc<PriceCatalog>,
        metrics: Arc<Metrics>,
        stages: Stages,
    ) -> Gateway {
        Gateway {
            router,
            metrics,
            catalog,
            stages,
        }
    }

    /// A worker's state around its own `client`. Call on the worker's runtime: the recorder
    /// task is spawned there.
    pub fn worker(&self, client: reqwest::Client) -> Worker {
        Worker {
            client,
            recorder: metering::spawn_recorder(
                self.stages.clone(),
                self.catalog.clone(),
                self.metrics.clone(),
            ),
        }
    }

    /// The authenticate stage: who is calling, from the request's headers alone. The server
    /// runs it before reading the body; a refusal is answered with [`Gateway::refuse`].
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<KeyContext>, GatewayError> {
        self.stages.authenticate.authenticate(headers).await
    }

    /// The answer to a request refused before its body was read (no valid key, or a body too
    /// large or too slow), recorded like every failed request.
    pub fn refuse(
        &self,
        worker: &Worker,
        ingress: Ingress,
        request_id: String,
        key: Option<Arc<KeyContext>>,
        error: GatewayError,
    ) -> HttpResponse {
        let ctx = RequestContext::new(request_id, ingress, key.unwrap_or_default());
        let span = request_span(ctx.endpoint, &ctx.request_id);
        span.record("otel.name", ctx.endpoint.operation());
        respond_to_failure(worker, ctx, Failure::early(error), &span)
    }

    /// Runs one model call (a body sent to `ingress`) through every stage after
    /// authentication, as `key` (from [`Gateway::authenticate`]). `worker` is the calling
    /// worker's own client and recorder.
    pub async fn handle(
        self: &Arc<Self>,
        worker: &Worker,
        ingress: Ingress,
        headers: &HeaderMap,
        key: Arc<KeyContext>,
        raw: Bytes,
        request_id: String,
    ) -> HttpResponse {
        let mut ctx = RequestContext::new(request_id, ingress, key);
        let endpoint = ctx.endpoint;
        let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let parsed = ingress.parse(content_type, raw);
        let span = request_span(endpoint, &ctx.request_id);
        // Named before the span is first entered: OpenTelemetry fixes the name at start.
        if !span.is_disabled()
            && let Ok(body) = &parsed
        {
            span.record("gen_ai.request.model", body.model.as_str());
            span.record(
                "otel.name",
                format!("{} {}", endpoint.operation(), body.model),
            );
        }
        let result = self
            .run(worker, &mut ctx, headers, parsed)
            .instrument(span.clone())
            .await;
        match result {
            Ok(mut response) => {
                span.record("http.response.status_code", response.status().as_u16());
                for (name, value) in &ctx.response_headers {
                    response.headers_mut().insert(name.clone(), value.clone());
                }
                response
            }
            Err(failure) => respond_to_failure(worker, ctx, failure, &span),
        }
    }

    /// The prompt tokens of an OpenAI chat body (for `/v1/messages/count_tokens`), with the
    /// headers its answer carries: the parse and route stages, so an unknown model is a 404
    /// and one the key may not use a 403, then admission as a request that reserves nothing
    /// ([`Admit::admit_uncharged`]); no model is called and nothing is metered. Counted by the
    /// tokenizer up to [`TOKENIZED_BYTES`], estimated beyond: tokenizing costs CPU in
    /// proportion to the body.
    pub async fn count_tokens(
        &self,
        key: Arc<KeyContext>,
        chat: Bytes,
        request_id: String,
    ) -> Result<(u64, Vec<(HeaderName, HeaderValue)>), GatewayError> {
        let body = InboundBody::parse(Endpoint::ChatCompletions, chat)?;
        let route = self.router.resolve(&body.model)?;
        if !key.allows_model(&body.model) {
            return Err(GatewayError::ModelNotAllowed(body.model.clone()));
        }
        let mut ctx = RequestContext::new(request_id, Ingress::AnthropicMessages, key);
        ctx.requested_model.clone_from(&body.model);
        ctx.route = Some(route);
        let headers = self.stages.admit.admit_uncharged(&ctx).await?;
        let tools = body.field("tools").map_or(0, crate::tokens::json_estimate);
        let messages = if body.raw().len() <= TOKENIZED_BYTES {
            crate::tokens::chat_prompt(body.chat()?)
        } else {
            body.field("messages")
                .and_then(crate::tokens::chat_prompt_estimate)
                .unwrap_or_else(|| (body.raw().len() as u64).div_ceil(4))
        };
        Ok((messages + tools, ctx.ingress.response_headers(&headers)))
    }

    async fn run(
        self: &Arc<Self>,
        worker: &Worker,
        ctx: &mut RequestContext,
        headers: &HeaderMap,
        parsed: Result<InboundBody, GatewayError>,
    ) -> Result<HttpResponse, Failure> {
        // authenticate: done by the server before the body was read (`ctx.key`), so a caller
        // without access learns nothing about its body's problems
        ctx.tags = tags::request_tags(&ctx.key.tags, headers).map_err(Failure::early)?;

        // parse (done by the caller, so that the span is named after the model; its errors
        // are reported only now)
        let body = Arc::new(parsed.map_err(Failure::early)?);
        ctx.requested_model.clone_from(&body.model);
        ctx.stream = body.stream;
        ctx.end_user.clone_from(&body.user);

        // route (before admission, so an unknown model reserves nothing)
        let group = self.router.resolve(&body.model).map_err(Failure::early)?;
        ctx.route = Some(group.clone());
        if !ctx.key.allows_model(&body.model) {
            return Err(Failure::early(GatewayError::ModelNotAllowed(
                body.model.clone(),
            )));
        }

        // admit
        let reservation = self
            .stages
            .admit
            .admit(ctx, &body)
            .await
            .map_err(Failure::early)?;
        ctx.response_headers = ctx.ingress.response_headers(&reservation.headers);
        let fail = |error: GatewayError| Failure {
            error,
            attempts: 0,
            target: None,
            reservation: reservation.clone(),
            metered: false,
        };

        // guardrails
        let checked = self
            .stages
            .guardrails
            .check_input(ctx, &body)
            .await
            .map_err(fail)?;
        let guard = checked.answer;
        let body = match checked.body {
            Some(redacted) => Arc::new(InboundBody::parse(ctx.endpoint, redacted).map_err(fail)?),
            // An answer the guardrails read must come in OpenAI's shape: the body is not
            // forwarded in the client's own format, even to a target that speaks it.
            None if guard.is_some() && body.native().is_some() => {
                Arc::new(InboundBody::parse(ctx.endpoint, body.raw().clone()).map_err(fail)?)
            }
            None => body,
        };

        // cache (the stage decides what a streaming request gets)
        if let Some(hit) = self
            .stages
            .cache
            .lookup(ctx, headers, &body)
            .await
            .map_err(fail)?
        {
            ctx.cache = "hit";
            let cached = replayed_usage(&hit.body);
            // A cached answer goes through the answer checks as a provider's would.
            let answer = match &guard {
                Some(guard) => match guard.check(&hit.body, &mut ctx.guardrails).await {
                    Ok(checked) => checked.unwrap_or(hit.body),
                    Err(error) => return Err(fail(error)),
                },
                None => hit.body,
            };
            let mut completion = Completion::new(ctx.clone(), reservation);
            completion.cached = cached;
            worker.recorder.send_and_wait(completion).await;
            if body.stream {
                // A cached answer replayed as the stream the client asked for.
                let mut replay = completion_as_stream(&answer, body.client_wants_stream_usage)
                    .ok_or_else(|| {
                        Failure::early(GatewayError::Internal(
                            "a cached answer is not a chat completion".into(),
                        ))
                    })?;
                if let Some(mut encoder) = ctx.ingress.stream_encoder(false) {
                    let mut encoded = bytes::BytesMut::with_capacity(replay.len() * 2);
                    encoder.encode(&replay, &mut encoded);
                    replay = encoded.freeze();
                }
                let mut response = HttpResponse::Ok();
                response
                    .insert_header((CONTENT_TYPE, HeaderValue::from_static("text/event-stream")))
                    .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-cache")));
                tag(&mut response, &ctx.request_id, None, 0);
                return Ok(response.body(replay));
            }
            let answer = ctx.ingress.answer(answer).map_err(Failure::early)?;
            return Ok(whole_response(
                &ctx.request_id,
                "application/json",
                answer,
                None,
                0,
            ));
        }

        // provider, then respond
        if body.stream {
            self.stream(worker, ctx, body, group, reservation, guard)
                .await
        } else {
            // The provider call and its metering finish even if the client disconnects and
            // this future is dropped.
            let gateway = self.clone();
            let worker = worker.clone();
            let task_ctx = ctx.clone();
            let content_type = body.answer_content_type();
            let call = detach::FinishDetached::new(
                async move {
                    gateway
                        .complete(&worker, task_ctx, body, group, reservation, guard)
                        .await
                }
                .instrument(tracing::Span::current()),
            );
            let answer = call.await?;
            let body = if answer.native {
                answer.body
            } else {
                // The answer is metered already: a failure to rewrite it is no reason to
                // charge again, only to say what went wrong.
                ctx.ingress.answer(answer.body).map_err(|error| Failure {
                    metered: true,
                    ..Failure::early(error)
                })?
            };
            Ok(whole_response(
                &ctx.request_id,
                content_type,
                body,
                Some(&answer.target),
                answer.attempts,
            ))
        }
    }

    /// A non-streaming request: send, translate, meter.
    async fn complete(
        &self,
        worker: &Worker,
        ctx: RequestContext,
        body: Arc<InboundBody>,
        group: Arc<crate::routing::RouteGroup>,
        reservation: Reservation,
        guard: Option<Arc<dyn AnswerGuard>>,
    ) -> Result<Answer, Failure> {
        let endpoint = ctx.endpoint;
        let sent = upstream::send(&worker.client, &group, false, ctx.key.org_id, |target| {
            let request = upstream_request(endpoint, target, &body)?;
            upstream::own_key(&ctx.key, target, request)
        })
        .await;
        let mut completion = Completion::new(ctx, reservation);
        completion.request = Some(body.clone());
        let result = match sent {
            Ok(UpstreamSuccess {
                target,
                body: UpstreamBody::Complete(bytes),
                attempts,
            }) => {
                completion.target = Some(target.clone());
                completion.attempts = attempts;
                let adapter = &target.provider.adapter;
                let native = forwarded(&body, &target);
                let translated = match endpoint {
                    // The client gets a forwarded answer as it came; the cache, if it keeps
                    // this one, wants it as a chat completion.
                    Endpoint::ChatCompletions if native => adapter.forwarded_response(
                        &target.model,
                        &bytes,
                        completion.ctx.cache_state.is_some(),
                    ),
                    Endpoint::ChatCompletions => adapter.chat_response(&target.model, &bytes),
                    Endpoint::Embeddings => {
                        adapter.embeddings_response(&target.model, &body, &bytes)
                    }
                    Endpoint::Completions
                    | Endpoint::Moderations
                    | Endpoint::ImageGenerations
                    | Endpoint::AudioTranscriptions => adapter
                        .passthrough_usage(endpoint, &bytes)
                        .map(|usage| Translated {
                            body: Bytes::new(),
                            usage,
                        }),
                };
                // Answers of the endpoints only OpenAI-format targets serve go to the client as
                // they came: only their usage was read (images run to megabytes).
                let as_it_came = native || endpoint.passes_through();
                match translated {
                    Ok(translated) => {
                        completion.usage = translated.usage;
                        if translated.usage.is_none() {
                            // Metering counts the answer's text with the tokenizer instead.
                            let answer = match endpoint {
                                Endpoint::ChatCompletions if native => adapter
                                    .forwarded_response(&target.model, &bytes, true)
                                    .map(|chat| chat.body)
                                    .unwrap_or_default(),
                                Endpoint::ChatCompletions => translated.body.clone(),
                                Endpoint::Completions => bytes.clone(),
                                // Embeddings, moderations, images and audio generate no text
                                // that is priced by the token.
                                _ => Bytes::new(),
                            };
                            completion.output_text = crate::openai::response::answer_text(&answer);
                        }
                        record_answer(&target, translated.usage, attempts);
                        self.stages
                            .cache
                            .store(&completion.ctx, &body, &translated.body)
                            .await;
                        let answer = if as_it_came { bytes } else { translated.body };
                        // The answer checks run on what the cache keeps (the provider's
                        // answer), so that a hit is checked for its own request.
                        let checked = match &guard {
                            Some(guard) if endpoint.generates() => {
                                guard.check(&answer, &mut completion.ctx.guardrails).await
                            }
                            _ => Ok(None),
                        };
                        checked.map(|checked| Answer {
                            body: checked.unwrap_or(answer),
                            target,
                            attempts,
                            native,
                        })
                    }
                    Err(reason) => Err(GatewayError::AllTargetsFailed {
                        unavailable: false,
                        message: format!(
                            "{} answered with a response Tollgate could not read: {reason}",
                            target.label()
                        ),
                    }),
                }
            }
            Ok(UpstreamSuccess { .. }) => Err(GatewayError::Internal(
                "a non-streaming request received a stream".into(),
            )),
            Err(UpstreamFailure {
                error,
                attempts,
                target,
            }) => {
                completion.target = target;
                completion.attempts = attempts;
                Err(error)
            }
        };
        completion.finished = Instant::now();
        // The answer leaves only once its usage event is durably recorded: an answer whose
        // usage could not be recorded is withheld rather than given away unmetered.
        match result {
            Ok(answer) => {
                let attempts = completion.attempts;
                if worker.recorder.send_and_wait(completion).await {
                    Ok(answer)
                } else {
                    Err(Failure {
                        error: GatewayError::UsageUnrecorded,
                        attempts,
                        target: None,
                        reservation: Reservation::default(),
                        metered: true,
                    })
                }
            }
            Err(error) => {
                completion.status = error.status().as_u16();
                completion.error = Some(error.label());
                let attempts = completion.attempts;
                worker.recorder.send(completion);
                Err(Failure {
                    error,
                    attempts,
                    target: None,
                    reservation: Reservation::default(),
                    metered: true,
                })
            }
        }
    }

    /// A streaming request: send, wait for the first bytes (fail-over is possible until then),
    /// then hand the stream to the relay.
    async fn stream(
        &self,
        worker: &Worker,
        ctx: &RequestContext,
        body: Arc<InboundBody>,
        group: Arc<crate::routing::RouteGroup>,
        reservation: Reservation,
        guard: Option<Arc<dyn AnswerGuard>>,
    ) -> Result<HttpResponse, Failure> {
        if !ctx.endpoint.generates() {
            return Err(Failure::early(GatewayError::invalid_field(
                "stream",
                "Streaming is only available for chat completions and completions.",
            )));
        }
        let endpoint = ctx.endpoint;
        let sent = upstream::send(&worker.client, &group, true, ctx.key.org_id, |target| {
            let request = upstream_request(endpoint, target, &body)?;
            upstream::own_key(&ctx.key, target, request)
        })
        .await;
        match sent {
            Ok(UpstreamSuccess {
                target,
                body: UpstreamBody::Stream { first, rest },
                attempts,
            }) => {
                let translator = target.provider.adapter.chat_stream(&target.model, &body);
                let native = forwarded(&body, &target);
                record_answer(&target, None, attempts);
                let mut completion = Completion::new(ctx.clone(), reservation);
                completion.target = Some(target.clone());
                completion.attempts = attempts;
                completion.request = Some(body.clone());
                let relay = RelayBody::new(
                    first,
                    rest,
                    translator,
                    group.timeout,
                    completion,
                    worker.recorder.clone(),
                    tracing::Span::current(),
                )
                .encoding(ctx.ingress.stream_encoder(native))
                .guarding(guard.map(|guard| guard.stream()))
                // The cache keeps answers in OpenAI's shape, which a forwarded stream is not.
                .keeping((ctx.cache_state.is_some() && !native).then(|| {
                    StreamKeeper::new(self.stages.cache.clone(), ctx.clone(), body.clone())
                }));
                let mut response = HttpResponse::Ok();
                response
                    .insert_header((CONTENT_TYPE, HeaderValue::from_static("text/event-stream")))
                    .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-cache")));
                tag(&mut response, &ctx.request_id, Some(&target), attempts);
                Ok(response.streaming(relay))
            }
            Ok(UpstreamSuccess {
                target, attempts, ..
            }) => Err(Failure {
                error: GatewayError::Internal("a streaming request received a whole body".into()),
                attempts,
                target: Some(target),
                reservation,
                metered: false,
            }),
            Err(UpstreamFailure {
                error,
                attempts,
                target,
            }) => Err(Failure {
                error,
                attempts,
                target,
                reservation,
                metered: false,
            }),
        }
    }
}

/// The request for `endpoint` that `target`'s adapter builds from the client's body.
fn upstream_request(
    endpoint: Endpoint,
    target: &Target,
    body: &InboundBody,
) -> Result<crate::providers::UpstreamRequest, GatewayError> {
    let adapter = &target.provider.adapter;
    match endpoint {
        Endpoint::ChatCompletions => adapter.chat_request(&target.model, body),
        Endpoint::Embeddings => adapter.embeddings_request(&target.model, body),
        Endpoint::Completions
        | Endpoint::Moderations
        | Endpoint::ImageGenerations
        | Endpoint::AudioTranscriptions => {
            adapter.passthrough_request(endpoint, &target.model, body)
        }
    }
}

/// Whether `target` was sent the client's own body (and so answered in the client's API).
fn forwarded(body: &InboundBody, target: &Target) -> bool {
    body.native()
        .is_some_and(|native| target.provider.adapter.forwards(native.ingress))
}

/// The request's span. Field names follow OpenTelemetry's GenAI conventions; the span costs
/// nothing unless an OTLP endpoint is configured.
fn request_span(endpoint: Endpoint, request_id: &str) -> tracing::Span {
    tracing::info_span!(
        "gen_ai.request",
        otel.name = Empty,
        otel.kind = "server",
        gen_ai.operation.name = endpoint.operation(),
        gen_ai.request.model = Empty,
        gen_ai.system = Empty,
        gen_ai.response.model = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        http.response.status_code = Empty,
        error.type = Empty,
        tollgate.request_id = %request_id,
        tollgate.attempts = Empty,
    )
}

/// The error answer to a failed request; its usage event is sent unless the path that failed
/// sent it already.
fn respond_to_failure(
    worker: &Worker,
    ctx: RequestContext,
    failure: Failure,
    span: &tracing::Span,
) -> HttpResponse {
    span.record("http.response.status_code", failure.error.status().as_u16());
    span.record("tollgate.attempts", failure.attempts);
    span.record("error.type", failure.error.label());
    let mut response = ctx.ingress.error_response(&failure.error, &ctx.request_id);
    for (name, value) in &ctx.response_headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
        .headers_mut()
        .insert(X_TOLLGATE_ATTEMPTS, HeaderValue::from(failure.attempts));
    if failure.metered {
        return response;
    }
    let mut completion = Completion::new(ctx, failure.reservation);
    completion.status = failure.error.status().as_u16();
    completion.error = Some(failure.error.label());
    completion.target = failure.target;
    completion.attempts = failure.attempts;
    // An error is no answer to withhold: its usage event goes without waiting.
    worker.recorder.send(completion);
    response
}

/// The model and usage a cached answer reports.
fn replayed_usage(body: &[u8]) -> Option<(String, tollgate_common::TokenUsage)> {
    #[derive(serde::Deserialize)]
    struct Replayed {
        model: String,
        usage: crate::openai::response::Usage,
    }
    let replayed: Replayed = serde_json::from_slice(body).ok()?;
    Some((replayed.model, replayed.usage.tokens()))
}

/// A request that ended in an error, with what metering needs to know about it.
struct Failure {
    error: GatewayError,
    attempts: u32,
    target: Option<Arc<Target>>,
    reservation: Reservation,
    /// Already reported to the recorder (by the task that ran the provider call).
    metered: bool,
}

impl Failure {
    /// A failure before any upstream work.
    fn early(error: GatewayError) -> Self {
        Failure {
            error,
            attempts: 0,
            target: None,
            reservation: Reservation::default(),
            metered: false,
        }
    }
}

/// Puts who answered (and the usage, once known) on the request's span.
fn record_answer(target: &Target, usage: Option<tollgate_common::TokenUsage>, attempts: u32) {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    span.record("gen_ai.system", target.provider.kind.otel_system());
    span.record("gen_ai.response.model", target.model.as_str());
    span.record("tollgate.attempts", attempts);
    if let Some(usage) = usage {
        span.record("gen_ai.usage.input_tokens", usage.input_tokens);
        span.record("gen_ai.usage.output_tokens", usage.output_tokens);
    }
}

/// A whole answer of `content_type`.
fn whole_response(
    request_id: &str,
    content_type: &'static str,
    body: Bytes,
    target: Option<&Arc<Target>>,
    attempts: u32,
) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response.insert_header((CONTENT_TYPE, HeaderValue::from_static(content_type)));
    tag(&mut response, request_id, target, attempts);
    response.body(body)
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_TOLLGATE_PROVIDER: HeaderName = HeaderName::from_static("x-tollgate-provider");
const X_TOLLGATE_MODEL: HeaderName = HeaderName::from_static("x-tollgate-model");
const X_TOLLGATE_ATTEMPTS: HeaderName = HeaderName::from_static("x-tollgate-attempts");

/// The `x-request-id` and `x-tollgate-*` headers of every answer.
fn tag(
    response: &mut actix_web::HttpResponseBuilder,
    request_id: &str,
    target: Option<&Arc<Target>>,
    attempts: u32,
) {
    if let Ok(id) = HeaderValue::from_str(request_id) {
        response.insert_header((X_REQUEST_ID, id));
    }
    if let Some(target) = target {
        if let Some(provider) = &target.provider_header {
            response.insert_header((X_TOLLGATE_PROVIDER, provider.clone()));
        }
        if let Some(model) = &target.model_header {
            response.insert_header((X_TOLLGATE_MODEL, model.clone()));
        }
    }
    response.insert_header((X_TOLLGATE_ATTEMPTS, HeaderValue::from(attempts)));
}
