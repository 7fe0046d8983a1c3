//! Webhook guardrails: an organization's own endpoint, asked about each request (and whole
//! answer) within the policy's deadline, answers allow, block or modify.
//!
//! The call is `POST <url>` with `{"stage": "input" | "output", "request_id", "organization_id",
//! "model", "body"}`, where `body` is the OpenAI-shaped request as it would be sent (personal
//! data already redacted) or the chat completion as the model answered it (before the
//! prompt's values are put back, so the endpoint never sees them either). The endpoint answers
//! `{"action": "allow"}`, `{"action": "block", "reason": "..."}` or `{"action": "modify",
//! "body": {...}}`; a modified request keeps only its text members (`messages`, `prompt`,
//! `input`, `instructions`), a modified answer only its choices' text. A call that fails, times
//! out or answers anything else follows the policy's `on_failure`: `open` lets the request
//! through (recorded as flagged), `closed` refuses it.
//!
//! The URL is one a tenant chose, so the call goes through [`OutboundClient`]: internal
//! addresses are refused as it connects, redirects are not followed.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use tollgate_common::guardrails::{FailurePolicy, WebhookRule, bounds};
use tollgate_common::outbound::OutboundClient;

use crate::policy::RuleName;
use crate::text::Blocked;

/// The most of an endpoint's answer read.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Which side of the exchange is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Input,
    Output,
}

/// What the endpoint decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allow,
    /// Replace the body's text with this body's.
    Modify(Map<String, Value>),
    /// The endpoint refused, or failed closed.
    Block(Blocked),
    /// The endpoint failed and the policy fails open: go on, recorded.
    FailedOpen(String),
}

/// Which request is asked about, for the endpoint.
#[derive(Debug, Clone)]
pub struct Call {
    pub request_id: String,
    pub organization_id: Option<String>,
    pub model: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    Allow,
    Block,
    Modify,
}

#[derive(Deserialize)]
struct Answer {
    action: Action,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    body: Option<Map<String, Value>>,
}

/// Asks `hook` about `body` (named by `rule`).
pub async fn ask(
    client: &OutboundClient,
    hook: &WebhookRule,
    rule: &RuleName,
    stage: Stage,
    call: &Call,
    body: &Value,
) -> Verdict {
    let timeout = Duration::from_millis(
        hook.timeout_ms
            .unwrap_or(bounds::DEFAULT_WEBHOOK_TIMEOUT_MS)
            .min(bounds::WEBHOOK_TIMEOUT_MS),
    );
    let payload = json!({
        "stage": match stage { Stage::Input => "input", Stage::Output => "output" },
        "request_id": call.request_id,
        "organization_id": call.organization_id,
        "model": call.model,
        "body": body,
    });
    let answer = match tokio::time::timeout(timeout, post(client, &hook.url, &payload)).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(failure)) => return failed(hook.on_failure, rule, failure),
        Err(_) => {
            let failure = format!("no answer within {} ms", timeout.as_millis());
            return failed(hook.on_failure, rule, failure);
        }
    };
    match answer.action {
        Action::Allow => Verdict::Allow,
        Action::Block => Verdict::Block(Blocked {
            rule: rule.clone(),
            reason: match answer.reason {
                // The endpoint's own words, bounded: they go back to the client.
                Some(reason) if !reason.trim().is_empty() => {
                    format!(
                        "the organization's check refused it: {}",
                        bounded(&reason, 300)
                    )
                }
                _ => "the organization's check refused it".into(),
            },
        }),
        Action::Modify => match answer.body {
            Some(body) => Verdict::Modify(body),
            None => failed(hook.on_failure, rule, "`modify` without a `body`".into()),
        },
    }
}

async fn post(client: &OutboundClient, url: &str, payload: &Value) -> Result<Answer, String> {
    let request = client.post(url).map_err(|refusal| refusal.to_string())?;
    let response = request
        .header("content-type", "application/json")
        .body(payload.to_string())
        .send()
        .await
        .map_err(|error| error.without_url().to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the endpoint answered {status}"));
    }
    let mut response = response;
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| error.without_url().to_string())?
    {
        if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err("the endpoint's answer is too large".into());
        }
        bytes.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&bytes).map_err(|error| format!("the endpoint's answer: {error}"))
}

fn failed(policy: FailurePolicy, rule: &RuleName, failure: String) -> Verdict {
    match policy {
        FailurePolicy::Open => Verdict::FailedOpen(failure),
        FailurePolicy::Closed => Verdict::Block(Blocked {
            rule: rule.clone(),
            reason: "the organization's check could not be reached".into(),
        }),
    }
}

fn bounded(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}
