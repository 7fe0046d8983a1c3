//! The pluggable stages of the pipeline, each a trait with the implementation a bare deployment
//! uses. Services plug their own in through [`Stages`]: the auth service an [`Authenticate`],
//! billing an [`Admit`] (limits and budget reservations) and a [`Meter`], the cache service a
//! [`ResponseCache`].

use std::sync::Arc;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use async_trait::async_trait;
use bytes::Bytes;
use tollgate_common::GuardrailAction;

use super::context::{KeyContext, RequestContext};
use super::usage::{UsageEvent, Written};
use crate::error::GatewayError;
use crate::openai::InboundBody;

/// Establishes who is calling.
#[async_trait]
pub trait Authenticate: Send + Sync {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<KeyContext>, GatewayError>;
}

/// Admission before any upstream work: rate limits and budget reservations. The returned
/// [`Reservation`] is settled with the real usage when the request ends, however it ends.
#[async_trait]
pub trait Admit: Send + Sync {
    async fn admit(
        &self,
        ctx: &RequestContext,
        body: &InboundBody,
    ) -> Result<Reservation, GatewayError>;

    /// Replaces the reservation with the actual usage (or releases it on failure).
    fn settle(&self, reservation: Reservation, event: &UsageEvent);

    /// Admission of a call that reaches no model (counting a body's tokens): one request
    /// against the key's request limits, so that such calls cannot be made without bound, and
    /// nothing reserved against tokens or budgets. Returns the headers its answer carries.
    async fn admit_uncharged(
        &self,
        ctx: &RequestContext,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, GatewayError> {
        let _ = ctx;
        Ok(Vec::new())
    }
}

/// What admission set aside for one request.
#[derive(Clone, Default)]
pub struct Reservation {
    /// Opaque to the pipeline; meaningful to the [`Admit`] implementation that made it.
    pub data: Option<Arc<dyn std::any::Any + Send + Sync>>,
    /// Headers every answer to this request carries (the rate-limit headers).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// USD set aside against budgets: the request's worst-case cost.
    pub budget_reserved: rust_decimal::Decimal,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("headers", &self.headers)
            .field("budget_reserved", &self.budget_reserved)
            .finish_non_exhaustive()
    }
}

/// The checks policies set on what a request sends and what it is answered.
#[async_trait]
pub trait Guardrails: Send + Sync {
    /// Checks a request before it leaves (and before the cache is asked). What was done is
    /// added to `ctx.guardrails`, refused requests included; a refusal is a
    /// [`GatewayError::GuardrailViolation`].
    async fn check_input(
        &self,
        ctx: &mut RequestContext,
        body: &InboundBody,
    ) -> Result<InputChecked, GatewayError>;
}

/// A request the guardrails let through.
#[derive(Default)]
pub struct InputChecked {
    /// The OpenAI-shaped body to send instead of the client's (personal data redacted).
    pub body: Option<Bytes>,
    /// The checks its answer goes through before the client sees it, if the policy has any.
    pub answer: Option<Arc<dyn AnswerGuard>>,
}

/// The checks of one request's answer.
#[async_trait]
pub trait AnswerGuard: Send + Sync {
    /// A whole OpenAI chat completion (or legacy completion): the body the client gets
    /// instead, when it changed, or a refusal. What was done is added to `actions`.
    async fn check(
        &self,
        answer: &[u8],
        actions: &mut Vec<GuardrailAction>,
    ) -> Result<Option<Bytes>, GatewayError>;

    /// The checks of a streamed answer, fed its text as it arrives.
    fn stream(&self) -> Box<dyn StreamGuard>;
}

/// The checks of one streamed answer.
pub trait StreamGuard: Send {
    /// Text of choice `index` arrived: what may be sent now.
    fn push(&mut self, index: u32, text: &str) -> Result<GuardedText, GatewayError>;
    /// Choice `index` finished: what was held back.
    fn finish(&mut self, index: u32) -> Result<GuardedText, GatewayError>;
    /// What was done so far.
    fn actions(&self) -> Vec<GuardrailAction>;
}

/// Text a stream's guard lets through.
#[derive(Debug, PartialEq, Eq)]
pub enum GuardedText {
    Send(String),
    /// The text, after which the choice ends (`finish_reason: length`).
    Cut(String),
}

/// A complete answer kept by the cache.
#[derive(Debug, Clone)]
pub struct CachedAnswer {
    pub body: Bytes,
}

/// Answers served without calling a provider.
#[async_trait]
pub trait ResponseCache: Send + Sync {
    /// The cached answer, if any. May set `ctx.cache`, `ctx.cache_state` (read back by
    /// [`ResponseCache::store`]) and response headers; an error is the client's (a bad cache
    /// header).
    async fn lookup(
        &self,
        ctx: &mut RequestContext,
        headers: &HeaderMap,
        body: &InboundBody,
    ) -> Result<Option<CachedAnswer>, GatewayError>;
    /// Offers a complete answer for keeping: a non-streaming body, or a stream assembled into
    /// the chat completion it amounts to.
    async fn store(&self, ctx: &RequestContext, body: &InboundBody, answer: &Bytes);
}

/// Where usage events go once their requests have ended: the events a worker's recorder
/// gathered, in one call. Called off the request path; `written`, when given, must hear once
/// whether all of them reached durable storage (answers' last bytes wait for it).
pub trait Meter: Send + Sync {
    fn record(&self, events: Vec<UsageEvent>, written: Option<Written>);
}

/// The stage implementations one gateway runs with.
#[derive(Clone)]
pub struct Stages {
    pub authenticate: Arc<dyn Authenticate>,
    pub admit: Arc<dyn Admit>,
    pub guardrails: Arc<dyn Guardrails>,
    pub cache: Arc<dyn ResponseCache>,
    pub meter: Arc<dyn Meter>,
}

impl Default for Stages {
    /// Open access, no limits, no guardrails, no cache, usage logged at debug level.
    fn default() -> Self {
        Stages {
            authenticate: Arc::new(OpenAccess::default()),
            admit: Arc::new(AdmitAll),
            guardrails: Arc::new(NoGuardrails),
            cache: Arc::new(NoCache),
            meter: Arc::new(LogMeter),
        }
    }
}

/// Every caller is the deployment's anonymous caller: for a gateway run without virtual keys.
#[derive(Default)]
pub struct OpenAccess {
    anonymous: Arc<KeyContext>,
}

#[async_trait]
impl Authenticate for OpenAccess {
    async fn authenticate(&self, _headers: &HeaderMap) -> Result<Arc<KeyContext>, GatewayError> {
        Ok(self.anonymous.clone())
    }
}

/// Admits everything and reserves nothing.
pub struct AdmitAll;

#[async_trait]
impl Admit for AdmitAll {
    async fn admit(
        &self,
        _ctx: &RequestContext,
        _body: &InboundBody,
    ) -> Result<Reservation, GatewayError> {
        Ok(Reservation::default())
    }

    fn settle(&self, _reservation: Reservation, _event: &UsageEvent) {}
}

/// Lets every request through.
pub struct NoGuardrails;

#[async_trait]
impl Guardrails for NoGuardrails {
    async fn check_input(
        &self,
        _ctx: &mut RequestContext,
        _body: &InboundBody,
    ) -> Result<InputChecked, GatewayError> {
        Ok(InputChecked::default())
    }
}

/// Never hits, never stores.
pub struct NoCache;

#[async_trait]
impl ResponseCache for NoCache {
    async fn lookup(
        &self,
        _ctx: &mut RequestContext,
        _headers: &HeaderMap,
        _body: &InboundBody,
    ) -> Result<Option<CachedAnswer>, GatewayError> {
        Ok(None)
    }
    async fn store(&self, _ctx: &RequestContext, _body: &InboundBody, _answer: &Bytes) {}
}

/// Writes each usage event to the debug log; metrics are kept by the recorder either way.
pub struct LogMeter;

impl Meter for LogMeter {
    fn record(&self, events: Vec<UsageEvent>, written: Option<Written>) {
        for event in events {
            log_usage(&event);
        }
        if let Some(written) = written {
            let _ = written.send(true);
        }
    }
}

fn log_usage(event: &UsageEvent) {
    tracing::debug!(
        request_id = %event.request_id,
        org_id = %event.key.org_id.map(|id| id.to_string()).unwrap_or_default(),
        key_id = %event.key.key_id.map(|id| id.to_string()).unwrap_or_default(),
        model = %event.requested_model,
        provider = event.provider.as_deref().unwrap_or("-"),
        input_tokens = event.usage.input_tokens,
        output_tokens = event.usage.output_tokens,
        cost = %event.cost.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
        status = event.status,
        "usage"
    );
}
