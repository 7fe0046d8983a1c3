//! The streaming relay: upstream bytes in, OpenAI SSE out, one chunk at a time.
//!
//! The relay is the response body. Actix polls it only when the client can take more, and it
//! polls the upstream only then, so back-pressure reaches the provider and nothing is buffered
//! beyond one chunk. When the client disconnects, actix drops the body: the upstream response is
//! dropped with it (closing that connection, which cancels the generation) and `Drop` still
//! reports the partial usage, so what the client saw is metered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use futures_util::stream::BoxStream;
use tokio::sync::oneshot;
use tokio::time::Sleep;

use crate::error::GatewayError;
use crate::ingress::StreamEncoder;
use crate::openai::InboundBody;
use crate::openai::response::{SSE_DONE, stream_as_completion};
use crate::pipeline::metering::{CLIENT_CLOSED, Completion, UsageSender};
use crate::pipeline::usage::Written;
use crate::pipeline::{GuardedText, RequestContext, ResponseCache, StreamGuard};
use crate::providers::StreamTranslator;

/// The body of a streaming answer.
pub struct RelayBody {
    upstream: BoxStream<'static, reqwest::Result<Bytes>>,
    first: Option<Bytes>,
    translator: Box<dyn StreamTranslator>,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    /// When upstream bytes last arrived; the idle timer is checked against it.
    last_data: tokio::time::Instant,
    out: BytesMut,
    done: bool,
    /// Sent when the stream ends, or from `Drop` if the client left first.
    completion: Option<Completion>,
    recorder: UsageSender,
    /// Whether the usage event was recorded: the last output waits for it.
    recorded: Option<oneshot::Receiver<bool>>,
    /// The request's span, kept open until the stream ends.
    span: tracing::Span,
    /// Set when the cache wants the answer: what the client was sent, offered once complete.
    keeper: Option<StreamKeeper>,
    /// The stream ended as a complete answer (not interrupted, not withheld).
    complete: bool,
    /// Where in `out` the translator's closing output begins, once the upstream has ended.
    closing_at: Option<usize>,
    /// Rewrites the OpenAI events for a client of another API, as they leave.
    encoder: Option<Box<dyn StreamEncoder>>,
    /// The answer checks guardrails apply to the text, as it is translated.
    guard: Option<GuardedStream>,
}

/// Streamed answers longer than this are not kept in the cache.
const MAX_KEPT_BYTES: usize = 4 * 1024 * 1024;

/// Collects a streamed answer for the cache and offers it, assembled into one chat completion,
/// once the stream has ended complete and its usage is recorded.
pub struct StreamKeeper {
    cache: Arc<dyn ResponseCache>,
    ctx: RequestContext,
    body: Arc<InboundBody>,
    sent: BytesMut,
}

impl StreamKeeper {
    pub fn new(cache: Arc<dyn ResponseCache>, ctx: RequestContext, body: Arc<InboundBody>) -> Self {
        StreamKeeper {
            cache,
            ctx,
            body,
            sent: BytesMut::new(),
        }
    }

    /// Adds output; false once the answer is too long to keep.
    fn collect(&mut self, bytes: &[u8]) -> bool {
        if self.sent.len() + bytes.len() > MAX_KEPT_BYTES {
            return false;
        }
        self.sent.extend_from_slice(bytes);
        true
    }

    /// Offers the answer off the response path; one that does not assemble is not kept.
    fn offer(self, usage: Option<tollgate_common::TokenUsage>) {
        let Some(answer) = stream_as_completion(&self.sent, usage) else {
            return;
        };
        let StreamKeeper {
            cache, ctx, body, ..
        } = self;
        tokio::spawn(async move { cache.store(&ctx, &body, &answer).await });
    }
}

impl RelayBody {
    pub fn new(
        first: Bytes,
        upstream: BoxStream<'static, reqwest::Result<Bytes>>,
        translator: Box<dyn StreamTranslator>,
        idle_timeout: Duration,
        completion: Completion,
        recorder: UsageSender,
        span: tracing::Span,
    ) -> Self {
        RelayBody {
            upstream,
            first: Some(first),
            translator,
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            last_data: tokio::time::Instant::now(),
            out: BytesMut::with_capacity(4096),
            done: false,
            completion: Some(completion),
            recorder,
            recorded: None,
            span,
            keeper: None,
            complete: false,
            closing_at: None,
            encoder: None,
            guard: None,
        }
    }

    /// Sends the stream in another API's events.
    pub fn encoding(mut self, encoder: Option<Box<dyn StreamEncoder>>) -> Self {
        self.encoder = encoder;
        self
    }

    /// Keeps the answer in the cache once it is complete.
    pub fn keeping(mut self, keeper: Option<StreamKeeper>) -> Self {
        self.keeper = keeper;
        self
    }

    /// Runs the answer's text through guardrails before it leaves.
    pub fn guarding(mut self, guard: Option<Box<dyn StreamGuard>>) -> Self {
        self.guard = guard.map(GuardedStream::new);
        self
    }

    fn feed(&mut self, chunk: &[u8]) {
        let from = self.out.len();
        match self.translator.feed(chunk, &mut self.out) {
            Ok(()) => self.translated(from),
            Err(reason) => self.fail(&reason),
        }
    }

    /// The translator wrote whole events from `from` on: the cache keeps them as the provider
    /// answered, and the client gets them as guardrails leave them.
    fn translated(&mut self, from: usize) {
        if let Some(keeper) = &mut self.keeper
            && !keeper.collect(&self.out[from..])
        {
            self.keeper = None;
        }
        let Some(guard) = &mut self.guard else {
            return;
        };
        let events = self.out.split_off(from);
        if let Err(error) = guard.rewrite(&events, &mut self.out) {
            self.push_error_event(
                &error.to_string(),
                "guardrail_violation",
                &guard_code(&error),
            );
            self.keeper = None;
            self.finish(error.status().as_u16(), Some(error.label()));
        }
    }

    /// Ends the stream with an OpenAI-style error event, which the OpenAI SDKs raise as an
    /// exception, so a cut-off answer is never mistaken for a complete one.
    fn fail(&mut self, reason: &str) {
        self.push_error_event(
            &format!("The upstream stream was interrupted: {reason}"),
            "upstream_error",
            "stream_interrupted",
        );
        self.finish(502, Some("stream_interrupted"));
    }

    /// Appends an OpenAI-shaped error event.
    fn push_error_event(&mut self, message: &str, kind: &str, code: &str) {
        let event = serde_json::json!({
            "error": { "message": message, "type": kind, "param": null, "code": code }
        });
        self.out.extend_from_slice(b"data: ");
        self.out.extend_from_slice(event.to_string().as_bytes());
        self.out.extend_from_slice(b"\n\n");
    }

    /// The stream ended: report it. A complete answer's last output waits until the report is
    /// recorded; an interrupted one (which ends in an error event) need not.
    fn finish(&mut self, status: u16, error: Option<&'static str>) {
        self.done = true;
        self.complete = status < 300;
        if status < 300 {
            let (written, recorded) = oneshot::channel();
            self.recorded = Some(recorded);
            self.report(status, error, Some(written));
        } else {
            self.report(status, error, None);
        }
    }

    /// The usage event could not be recorded: the answer must not look complete.
    fn withhold_end(&mut self) {
        self.complete = false;
        if let Some(at) = self.closing_at.filter(|at| *at <= self.out.len()) {
            self.out.truncate(at);
        }
        if self.out.ends_with(SSE_DONE) {
            self.out.truncate(self.out.len() - SSE_DONE.len());
        }
        self.push_error_event(
            "The usage of this request could not be recorded, so its answer was cut short; try again shortly.",
            "server_error",
            "metering_unavailable",
        );
    }

    fn report(&mut self, status: u16, error: Option<&'static str>, written: Option<Written>) {
        if let Some(mut completion) = self.completion.take() {
            completion.written = written;
            completion.status = status;
            completion.error = error;
            completion.usage = self.translator.usage();
            if completion.usage.is_none() {
                completion.output_text = self.translator.output_text().to_owned();
            }
            completion.finished = Instant::now();
            if let Some(guard) = &self.guard {
                completion.ctx.guardrails.extend(guard.actions());
            }
            if let Some(usage) = completion.usage {
                self.span
                    .record("gen_ai.usage.input_tokens", usage.input_tokens);
                self.span
                    .record("gen_ai.usage.output_tokens", usage.output_tokens);
            }
            if let Some(error) = error {
                self.span.record("error.type", error);
            }
            self.recorder.send(completion);
        }
    }

    fn take_output(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            return None;
        }
        if let Some(completion) = &mut self.completion
            && completion.time_to_first_token.is_none()
        {
            completion.time_to_first_token = Some(completion.ctx.started.elapsed());
        }
        let openai = self.out.split();
        match &mut self.encoder {
            Some(encoder) => {
                let mut encoded = BytesMut::with_capacity(openai.len() * 2);
                encoder.encode(&openai, &mut encoded);
                // Everything in `openai` is whole events, so it all comes out now.
                Some(encoded.freeze())
            }
            None => Some(openai.freeze()),
        }
    }
}

/// Output is handed to actix once this much has gathered, even if more is already waiting.
const FLUSH_BYTES: usize = 16 * 1024;

impl Stream for RelayBody {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(first) = this.first.take() {
                this.feed(&first);
            }
            if this.done {
                if let Some(recorded) = &mut this.recorded {
                    match Pin::new(recorded).poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(ok) => {
                            this.recorded = None;
                            if !ok.unwrap_or(false) {
                                this.withhold_end();
                            }
                        }
                    }
                }
                let last = this.take_output();
                if this.complete
                    && let Some(keeper) = this.keeper.take()
                {
                    keeper.offer(this.translator.usage());
                }
                return Poll::Ready(last.map(Ok));
            }
            if this.out.len() >= FLUSH_BYTES
                && let Some(bytes) = this.take_output()
            {
                return Poll::Ready(Some(Ok(bytes)));
            }
            // Whatever has already arrived goes out in one write; nothing waits for more.
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    this.last_data = tokio::time::Instant::now();
                    this.feed(&chunk);
                }
                Poll::Ready(Some(Err(err))) => {
                    this.fail(&format!("transport error: {}", err.without_url()));
                }
                Poll::Ready(None) => {
                    let closing_at = this.out.len();
                    this.closing_at = Some(closing_at);
                    if let Err(reason) = this.translator.finish(&mut this.out) {
                        this.fail(&reason);
                    } else {
                        this.translated(closing_at);
                        if !this.done {
                            this.finish(200, None);
                        }
                    }
                }
                Poll::Pending => {
                    if let Some(bytes) = this.take_output() {
                        return Poll::Ready(Some(Ok(bytes)));
                    }
                    if this.idle.as_mut().poll(cx).is_ready() {
                        // The timer is moved lazily, here, rather than on every chunk.
                        let deadline = this.last_data + this.idle_timeout;
                        if tokio::time::Instant::now() < deadline {
                            this.idle.as_mut().reset(deadline);
                            continue;
                        }
                        let reason = format!(
                            "no data from the upstream for {} ms",
                            this.idle_timeout.as_millis()
                        );
                        this.fail(&reason);
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl Drop for RelayBody {
    fn drop(&mut self) {
        // Dropped before the end: the client went away. Meter what was generated so far.
        self.report(CLIENT_CLOSED, Some("client_closed"), None);
    }
}

fn guard_code(error: &GatewayError) -> String {
    match error {
        GatewayError::GuardrailViolation { rule, .. } => rule.clone(),
        other => other.label().to_owned(),
    }
}

/// A stream's guard, applied to OpenAI chunks: each choice's text (`delta.content`, or a
/// legacy completion's `text`) goes through it, and a choice's finish brings out what it held
/// back. A choice cut at the policy's length ends there (`finish_reason: length`) and its
/// later text is dropped.
struct GuardedStream {
    guard: Box<dyn StreamGuard>,
    cut: Vec<u32>,
}

impl GuardedStream {
    fn new(guard: Box<dyn StreamGuard>) -> Self {
        GuardedStream {
            guard,
            cut: Vec::new(),
        }
    }

    fn actions(&self) -> Vec<tollgate_common::GuardrailAction> {
        self.guard.actions()
    }

    /// Appends `events` (whole SSE events) to `out` with their text checked.
    fn rewrite(&mut self, events: &[u8], out: &mut BytesMut) -> Result<(), GatewayError> {
        for event in events.split_inclusive(|&b| b == b'\n') {
            let Some(json) = event
                .strip_prefix(b"data: ")
                .filter(|rest| rest.first() == Some(&b'{'))
            else {
                out.extend_from_slice(event);
                continue;
            };
            let Ok(mut chunk) = serde_json::from_slice::<serde_json::Value>(json) else {
                out.extend_from_slice(event);
                continue;
            };
            if self.rewrite_chunk(&mut chunk)? {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(chunk.to_string().as_bytes());
                out.extend_from_slice(b"\n");
            } else {
                out.extend_from_slice(event);
            }
        }
        Ok(())
    }

    /// Whether the chunk changed.
    fn rewrite_chunk(&mut self, chunk: &mut serde_json::Value) -> Result<bool, GatewayError> {
        use serde_json::Value;
        let Some(choices) = chunk.get_mut("choices").and_then(Value::as_array_mut) else {
            return Ok(false);
        };
        let mut changed = false;
        for choice in choices {
            let index = choice
                .get("index")
                .and_then(Value::as_u64)
                .and_then(|i| u32::try_from(i).ok())
                .unwrap_or(0);
            let finished = choice
                .get("finish_reason")
                .is_some_and(|reason| !reason.is_null());
            if self.cut.contains(&index) {
                // Already ended for the client: nothing more of this choice goes out.
                if let Some(text) = text_of(choice) {
                    text.clear();
                    changed = true;
                }
                if finished {
                    choice["finish_reason"] = Value::Null;
                    changed = true;
                }
                continue;
            }
            let mut text = String::new();
            let mut cut = false;
            if let Some(delta) = text_of(choice) {
                match self.guard.push(index, delta)? {
                    GuardedText::Send(sent) => text = sent,
                    GuardedText::Cut(sent) => {
                        text = sent;
                        cut = true;
                    }
                }
                changed |= text != *delta;
            }
            if finished && !cut {
                let rest = match self.guard.finish(index)? {
                    GuardedText::Send(rest) => rest,
                    GuardedText::Cut(rest) => {
                        cut = true;
                        rest
                    }
                };
                if !rest.is_empty() {
                    text.push_str(&rest);
                    changed = true;
                }
            }
            if changed {
                set_text(choice, text);
            }
            if cut {
                self.cut.push(index);
                choice["finish_reason"] = Value::from("length");
                changed = true;
            }
        }
        Ok(changed)
    }
}

/// A chunk choice's text: `delta.content`, or a legacy completion's `text`.
fn text_of(choice: &mut serde_json::Value) -> Option<&mut String> {
    use serde_json::Value;
    if choice.get("delta").is_some() {
        match choice.get_mut("delta")?.get_mut("content")? {
            Value::String(text) => Some(text),
            _ => None,
        }
    } else {
        match choice.get_mut("text")? {
            Value::String(text) => Some(text),
            _ => None,
        }
    }
}

fn set_text(choice: &mut serde_json::Value, text: String) {
    use serde_json::Value;
    match choice.get_mut("delta") {
        Some(Value::Object(delta)) => {
            delta.insert("content".into(), Value::from(text));
        }
        Some(_) => {}
        None => choice["text"] = Value::from(text),
    }
}
