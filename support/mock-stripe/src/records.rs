//! What the mock remembers for tests to read back: API requests, meter events, webhook
//! deliveries; and the failure modes tests can switch on.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One API request as received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The `Request-Id` the mock answered with.
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub query: String,
    /// Form parameters (body for POST, query for GET and DELETE), decoded, in order.
    pub params: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
    /// The status answered; 0 when the connection was closed without an answer.
    pub status: u16,
    /// Answered from the idempotency store rather than executed.
    pub replayed: bool,
    /// Failed by failure injection; such requests change nothing.
    pub injected_failure: bool,
    /// Mock-clock Unix seconds.
    pub at: i64,
}

/// A meter event the mock accepted and counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeterEventRecord {
    pub meter: String,
    pub event_name: String,
    pub identifier: String,
    pub customer: String,
    /// The value as sent (`"12"`, `"0.5"`); `"1"` for a `count` meter's events without one.
    pub value: String,
    pub timestamp: i64,
    pub created: i64,
    pub payload: Map<String, Value>,
}

/// A meter event the mock refused, with the error it answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusedMeterEvent {
    pub event_name: Option<String>,
    pub identifier: Option<String>,
    pub params: Vec<(String, String)>,
    pub status: u16,
    pub code: Option<String>,
    pub message: String,
    pub at: i64,
}

/// One attempt to deliver one event to the webhook endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub event_id: String,
    pub event_type: String,
    /// 1 for the first attempt of this delivery.
    pub attempt: u32,
    pub url: String,
    /// The `Stripe-Signature` header sent.
    pub signature: String,
    /// The raw body sent (the signed bytes).
    pub body: String,
    /// The endpoint's status, when it answered.
    pub status: Option<u16>,
    /// Why the attempt failed without a status (refused connection, timeout).
    pub error: Option<String>,
    pub succeeded: bool,
    /// Real-clock Unix seconds of the attempt (the signature's `t`).
    pub at: i64,
}

/// How every API request fails during an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outage {
    /// 500 with Stripe's `api_error` body.
    Error500,
    /// The connection is closed without an answer.
    CloseConnection,
}
