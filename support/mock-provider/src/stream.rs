//! The response body of streamed answers: events are rendered only when the server polls for
//! them, so a slow or vanished client is felt the way it would be by a real provider.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use crate::behaviour::MockConfig;
use crate::stats::Stats;

/// The events of one streamed answer in one wire format.
pub(crate) trait Source: Unpin + 'static {
    /// Total number of events.
    fn steps(&self) -> usize;
    /// Whether event `step` is a content delta (paced by `chunk_delay_ms`, counted for
    /// `fail_mid_stream_after`).
    fn is_content(&self, step: usize) -> bool;
    /// Appends the bytes of event `step` to `out`.
    fn render(&mut self, step: usize, out: &mut BytesMut);
}

/// The error that makes the server abort the connection mid-stream.
#[derive(Debug)]
pub(crate) struct BrokenOff;

impl fmt::Display for BrokenOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stream broken off by fail_mid_stream_after")
    }
}

impl std::error::Error for BrokenOff {}

#[derive(PartialEq, Eq)]
enum Phase {
    Running,
    Completed,
    BrokenOff,
}

/// A lazily produced streamed body; dropping it before the end counts as a cancellation.
pub(crate) struct BodyStream<S: Source> {
    source: S,
    step: usize,
    content_sent: usize,
    buf: BytesMut,
    delay: Duration,
    /// Reused across chunks so pacing costs one allocation per stream, not per chunk.
    sleep: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    fail_after: Option<usize>,
    break_pending: bool,
    phase: Phase,
    stats: Arc<Stats>,
}

impl<S: Source> BodyStream<S> {
    pub fn new(source: S, config: &MockConfig, stats: Arc<Stats>) -> BodyStream<S> {
        stats.stream_started();
        BodyStream {
            source,
            step: 0,
            content_sent: 0,
            buf: BytesMut::with_capacity(1024),
            delay: Duration::from_millis(config.chunk_delay_ms),
            sleep: None,
            waiting: false,
            fail_after: config.fail_mid_stream_after,
            break_pending: false,
            phase: Phase::Running,
            stats,
        }
    }
}

impl<S: Source> Stream for BodyStream<S> {
    type Item = Result<Bytes, BrokenOff>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.phase != Phase::Running {
            return Poll::Ready(None);
        }
        let steps = this.source.steps();
        if this.step >= steps {
            this.phase = Phase::Completed;
            this.stats.stream_completed();
            return Poll::Ready(None);
        }
        let content = this.source.is_content(this.step);
        if let Some(limit) = this.fail_after {
            // With a limit of 0 the preamble still goes out and the break replaces the first delta.
            if this.content_sent >= limit && (limit > 0 || content) {
                // The server discards unflushed output when a body fails, so yield once to let
                // it write what was already produced; the client should see the first chunks.
                if !this.break_pending {
                    this.break_pending = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                this.phase = Phase::BrokenOff;
                return Poll::Ready(Some(Err(BrokenOff)));
            }
        }
        if content && this.content_sent > 0 && !this.delay.is_zero() {
            if !this.waiting {
                let deadline = Instant::now() + this.delay;
                match &mut this.sleep {
                    Some(sleep) => sleep.as_mut().reset(deadline),
                    None => this.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
                this.waiting = true;
            }
            if let Some(sleep) = &mut this.sleep
                && sleep.as_mut().poll(cx).is_pending()
            {
                return Poll::Pending;
            }
            this.waiting = false;
        }
        this.source.render(this.step, &mut this.buf);
        this.step += 1;
        if content {
            this.content_sent += 1;
        }
        if this.step == steps {
            this.phase = Phase::Completed;
            this.stats.stream_completed();
        }
        Poll::Ready(Some(Ok(this.buf.split().freeze())))
    }
}

impl<S: Source> Drop for BodyStream<S> {
    fn drop(&mut self) {
        if self.phase == Phase::Running {
            self.stats.stream_cancelled();
        }
    }
}

/// A stream whose events are written up front, each marked content or not: for wire formats
/// whose events are few and irregular (Mistral's, Cohere's), where rendering them step by step
/// would buy nothing.
pub(crate) struct Prepared {
    events: Vec<(bool, Vec<u8>)>,
}

impl Prepared {
    pub fn new() -> Prepared {
        Prepared { events: Vec::new() }
    }

    /// Appends one event; `content` events are paced and counted like content deltas.
    pub fn push(&mut self, content: bool, event: Vec<u8>) {
        self.events.push((content, event));
    }
}

impl Source for Prepared {
    fn steps(&self) -> usize {
        self.events.len()
    }

    fn is_content(&self, step: usize) -> bool {
        self.events.get(step).is_some_and(|(content, _)| *content)
    }

    fn render(&mut self, step: usize, out: &mut BytesMut) {
        if let Some((_, event)) = self.events.get(step) {
            out.extend_from_slice(event);
        }
    }
}
