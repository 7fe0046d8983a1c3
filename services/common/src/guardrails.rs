//! Guardrail policies: what an organization, a team, a key or the deployment asks the gateway
//! to check in prompts and answers. This is the policy's vocabulary (what is stored, sent
//! between services and written in the configuration); the guardrails service compiles and
//! applies it.
//!
//! ## How levels combine
//! A request is checked against every policy that applies to it, from the widest to the
//! narrowest: the deployment's (`applies_to: all` in the configuration), those the
//! configuration declares for its organization, then the organization's, its team's and its
//! key's own. They combine so that a narrower level can relax what a wider one decided for a
//! value it names, and add to every list:
//! - **PII actions** are decided per entity type by the narrowest level that names the type
//!   (a team may set `email: allow` under an organization's `email: redact`).
//! - **Lists** (denied keywords, expressions, topics and models) add up across levels.
//! - **Single values** (token and length maximums, the allowed models, citation rule,
//!   restoration, the webhook) are the narrowest level's that sets them.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

/// The kinds of personal data and secrets the detectors find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Email,
    /// Phone numbers in international and common national formats.
    Phone,
    /// Payment card numbers that pass the Luhn check.
    CreditCard,
    /// IBANs whose check digits are right.
    Iban,
    /// US Social Security numbers.
    Ssn,
    /// IPv4 and IPv6 addresses.
    IpAddress,
    /// API keys and tokens of the common providers, private-key blocks and JWTs.
    Secret,
}

impl EntityKind {
    pub const ALL: [EntityKind; 7] = [
        EntityKind::Email,
        EntityKind::Phone,
        EntityKind::CreditCard,
        EntityKind::Iban,
        EntityKind::Ssn,
        EntityKind::IpAddress,
        EntityKind::Secret,
    ];

    /// The name policies and records use (`credit_card`).
    pub fn name(self) -> &'static str {
        match self {
            EntityKind::Email => "email",
            EntityKind::Phone => "phone",
            EntityKind::CreditCard => "credit_card",
            EntityKind::Iban => "iban",
            EntityKind::Ssn => "ssn",
            EntityKind::IpAddress => "ip_address",
            EntityKind::Secret => "secret",
        }
    }

    /// The placeholder's stem: `<EMAIL_1>`.
    pub fn placeholder(self) -> &'static str {
        match self {
            EntityKind::Email => "EMAIL",
            EntityKind::Phone => "PHONE",
            EntityKind::CreditCard => "CREDIT_CARD",
            EntityKind::Iban => "IBAN",
            EntityKind::Ssn => "SSN",
            EntityKind::IpAddress => "IP_ADDRESS",
            EntityKind::Secret => "SECRET",
        }
    }
}

/// What happens to an entity a detector found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiAction {
    /// Replaced by a typed placeholder (`<EMAIL_1>`) before the text goes on.
    Redact,
    /// The whole request (or answer) is refused.
    Block,
    /// Recorded on the request's usage event, left as it is.
    Log,
    /// Not looked for: lifts a wider level's action for this type.
    Allow,
}

/// What happens when a rule other than PII matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Refused.
    #[default]
    Block,
    /// Recorded on the request's usage event, let through.
    Flag,
}

/// Checks on what the client sends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputRules {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pii: BTreeMap<EntityKind, PiiAction>,
    /// Words or phrases (matched whole-word, case-insensitively) that block a request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_keywords: Vec<String>,
    /// Regular expressions (Rust `regex` syntax) that block a request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_regex: Vec<String>,
    /// Descriptions of topics; a prompt close to one (by the semantic cache's embedder) is
    /// blocked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_topics: Vec<String>,
    /// Cosine similarity from which a prompt counts as on a denied topic (default 0.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_threshold: Option<f32>,
    /// Most prompt tokens a request may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Most output tokens a request may ask for; a request naming no maximum is sent with
    /// this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Model names (globs) requests may use; empty allows all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_models: Vec<String>,
    /// Model names (globs) requests may not use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied_models: Vec<String>,
}

/// Checks on what the model answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputRules {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pii: BTreeMap<EntityKind, PiiAction>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_keywords: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_regex: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_topics: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_threshold: Option<f32>,
    /// Most characters of an answer's text; the rest is cut off (`finish_reason: length`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_chars: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_citation: Option<CitationRule>,
}

/// An answer must cite a source, in the form named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CitationRule {
    pub format: CitationFormat,
    /// For `format: regex`, the expression a citation matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Refuse the answer, or let it through with the miss recorded.
    #[serde(default)]
    pub action: RuleAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CitationFormat {
    /// An `http(s)://` link.
    Url,
    /// A numbered reference such as `[1]`.
    Bracket,
    /// A match of `pattern`.
    Regex,
}

/// An HTTPS endpoint the organization runs, asked about each request (and answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookRule {
    pub url: String,
    /// How long the endpoint has to answer (default 1000 ms, at most 10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// What a timed-out or failed call means.
    #[serde(default)]
    pub on_failure: FailurePolicy,
    /// Whether answers are sent too (prompts always are).
    #[serde(default)]
    pub output: bool,
}

/// What a guardrail that cannot answer (a webhook down or late) decides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// The request goes on, the failure recorded.
    Open,
    /// The request is refused.
    #[default]
    Closed,
}

/// One level's guardrail policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailPolicy {
    #[serde(default, skip_serializing_if = "is_default")]
    pub input: InputRules,
    #[serde(default, skip_serializing_if = "is_default")]
    pub output: OutputRules,
    /// Put the values redacted from the prompt back into the answer, so the user sees their
    /// own data and the provider never did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_in_answer: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookRule>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Limits that keep one policy's cost bounded, whoever writes it.
pub mod bounds {
    /// Entries in each list.
    pub const LIST_ENTRIES: usize = 100;
    /// Characters of one keyword, expression or topic.
    pub const ENTRY_CHARS: usize = 500;
    /// Compiled size of one expression, bytes.
    pub const REGEX_SIZE: usize = 256 * 1024;
    /// Longest webhook deadline.
    pub const WEBHOOK_TIMEOUT_MS: u64 = 10_000;
    pub const DEFAULT_WEBHOOK_TIMEOUT_MS: u64 = 1_000;
    pub const DEFAULT_TOPIC_THRESHOLD: f32 = 0.6;
}

impl GuardrailPolicy {
    /// Whether the policy asks for nothing.
    pub fn is_empty(&self) -> bool {
        *self == GuardrailPolicy::default()
    }

    /// The first problem with this policy, as (field path, message). Expressions are compiled
    /// with the same size limit the gateway uses, so one that is accepted here compiles there.
    pub fn problem(&self) -> Option<(String, String)> {
        let lists = [
            ("input.deny_keywords", &self.input.deny_keywords),
            ("input.deny_regex", &self.input.deny_regex),
            ("input.deny_topics", &self.input.deny_topics),
            ("input.allowed_models", &self.input.allowed_models),
            ("input.denied_models", &self.input.denied_models),
            ("output.deny_keywords", &self.output.deny_keywords),
            ("output.deny_regex", &self.output.deny_regex),
            ("output.deny_topics", &self.output.deny_topics),
        ];
        for (field, list) in lists {
            if list.len() > bounds::LIST_ENTRIES {
                return Some((
                    field.into(),
                    format!("at most {} entries", bounds::LIST_ENTRIES),
                ));
            }
            for (i, entry) in list.iter().enumerate() {
                if entry.trim().is_empty() {
                    return Some((format!("{field}[{i}]"), "must not be empty".into()));
                }
                if entry.chars().count() > bounds::ENTRY_CHARS {
                    return Some((
                        format!("{field}[{i}]"),
                        format!("at most {} characters", bounds::ENTRY_CHARS),
                    ));
                }
            }
        }
        for (field, list) in [
            ("input.deny_regex", &self.input.deny_regex),
            ("output.deny_regex", &self.output.deny_regex),
        ] {
            for (i, pattern) in list.iter().enumerate() {
                if let Err(error) = compile_regex(pattern) {
                    return Some((format!("{field}[{i}]"), error));
                }
            }
        }
        for (field, threshold) in [
            ("input.topic_threshold", self.input.topic_threshold),
            ("output.topic_threshold", self.output.topic_threshold),
        ] {
            if let Some(t) = threshold
                && !(t > 0.0 && t <= 1.0)
            {
                return Some((field.into(), "must be above 0 and at most 1".into()));
            }
        }
        if self.input.max_tokens == Some(0) {
            return Some(("input.max_tokens".into(), "must be at least 1".into()));
        }
        if self.input.max_output_tokens == Some(0) {
            return Some((
                "input.max_output_tokens".into(),
                "must be at least 1".into(),
            ));
        }
        if self.output.max_chars == Some(0) {
            return Some(("output.max_chars".into(), "must be at least 1".into()));
        }
        if let Some(citation) = &self.output.require_citation {
            match (citation.format, &citation.pattern) {
                (CitationFormat::Regex, None) => {
                    return Some((
                        "output.require_citation.pattern".into(),
                        "is required with format: regex".into(),
                    ));
                }
                (CitationFormat::Regex, Some(pattern)) => {
                    if pattern.chars().count() > bounds::ENTRY_CHARS {
                        return Some((
                            "output.require_citation.pattern".into(),
                            format!("at most {} characters", bounds::ENTRY_CHARS),
                        ));
                    }
                    if let Err(error) = compile_regex(pattern) {
                        return Some(("output.require_citation.pattern".into(), error));
                    }
                }
                (_, Some(_)) => {
                    return Some((
                        "output.require_citation.pattern".into(),
                        "is only used with format: regex".into(),
                    ));
                }
                (_, None) => {}
            }
        }
        if let Some(webhook) = &self.webhook {
            let url = webhook.url.trim();
            if !url.starts_with("https://") && !url.starts_with("http://") {
                return Some((
                    "webhook.url".into(),
                    "must be an https:// (or http://) URL".into(),
                ));
            }
            if url.len() > 2048 {
                return Some(("webhook.url".into(), "at most 2048 characters".into()));
            }
            if let Some(ms) = webhook.timeout_ms
                && !(1..=bounds::WEBHOOK_TIMEOUT_MS).contains(&ms)
            {
                return Some((
                    "webhook.timeout_ms".into(),
                    format!("must be 1 to {}", bounds::WEBHOOK_TIMEOUT_MS),
                ));
            }
        }
        None
    }
}

/// Compiles `pattern` as guardrails do: bounded in size, so that no expression can take
/// unbounded memory or time (the `regex` crate runs in time linear in the text).
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(bounds::REGEX_SIZE)
        .dfa_size_limit(bounds::REGEX_SIZE)
        .build()
        .map_err(|error| match error {
            regex::Error::CompiledTooBig(_) => "the expression is too large".into(),
            other => format!("not a valid expression: {other}"),
        })
}

/// One thing a guardrail did to a request or its answer, as usage events and request logs
/// record it: which policy and rule, which entity types, never the values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardrailAction {
    /// The policy's name (`default-pii`, `organization`, `team`, `key`).
    pub policy: String,
    /// The rule within it (`input.pii`, `input.deny_regex[0]`, `output.max_chars`, ...).
    pub rule: String,
    pub taken: Taken,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<EntityKind>,
}

/// What a guardrail did, from the most to the least severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Taken {
    /// Refused the request or the answer.
    Blocked,
    /// Changed by an organization's webhook.
    Modified,
    /// Personal data replaced by placeholders.
    Redacted,
    /// Cut at the policy's length.
    Truncated,
    /// A rule matched and was only recorded; or a webhook failed open.
    Flagged,
    /// Redacted values put back into the answer.
    Restored,
    /// Personal data found and left as it was.
    Logged,
}

impl Taken {
    /// The name records and analytics use.
    pub fn name(self) -> &'static str {
        match self {
            Taken::Blocked => "blocked",
            Taken::Modified => "modified",
            Taken::Redacted => "redacted",
            Taken::Truncated => "truncated",
            Taken::Flagged => "flagged",
            Taken::Restored => "restored",
            Taken::Logged => "logged",
        }
    }
}

/// A policy with the name its records use: the configuration's `name`, or the level it is
/// set on (`organization`, `team`, `key`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedPolicy {
    pub name: String,
    pub policy: GuardrailPolicy,
}

/// Every policy stored for one key's requests, widest first (organization, team, key); the
/// configuration's policies are added by the gateway. The gateway compiles them once per
/// key context and keeps the result in `prepared`.
#[derive(Default)]
pub struct GuardrailLevels {
    pub levels: Vec<NamedPolicy>,
    /// Filled by the guardrails service on first use.
    pub prepared: OnceLock<Arc<dyn std::any::Any + Send + Sync>>,
}

impl GuardrailLevels {
    pub fn new(levels: Vec<NamedPolicy>) -> Self {
        GuardrailLevels {
            levels: levels
                .into_iter()
                .filter(|level| !level.policy.is_empty())
                .collect(),
            prepared: OnceLock::new(),
        }
    }
}

impl Clone for GuardrailLevels {
    fn clone(&self) -> Self {
        GuardrailLevels::new(self.levels.clone())
    }
}

impl PartialEq for GuardrailLevels {
    fn eq(&self, other: &Self) -> bool {
        self.levels == other.levels
    }
}

impl std::fmt::Debug for GuardrailLevels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.levels).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_reads_and_validates() {
        let yaml = r#"
input:  { pii: { email: redact, phone: redact, credit_card: block, secret: block }, deny_regex: ["(?i)internal use only"] }
output: { pii: { email: redact } }
restore_in_answer: false
"#;
        let policy: GuardrailPolicy = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(policy.input.pii[&EntityKind::CreditCard], PiiAction::Block);
        assert_eq!(policy.output.pii[&EntityKind::Email], PiiAction::Redact);
        assert_eq!(policy.problem(), None);
        let json = serde_json::to_string(&policy).unwrap();
        assert_eq!(
            serde_json::from_str::<GuardrailPolicy>(&json).unwrap(),
            policy
        );
    }

    #[test]
    fn problems_name_the_field() {
        let mut policy = GuardrailPolicy::default();
        policy.input.deny_regex = vec!["ok".into(), "(unclosed".into()];
        assert_eq!(policy.problem().unwrap().0, "input.deny_regex[1]");

        let mut policy = GuardrailPolicy::default();
        policy.output.deny_regex = vec!["a{1000}{1000}".into()];
        let (field, message) = policy.problem().unwrap();
        assert_eq!(field, "output.deny_regex[0]");
        assert!(message.contains("too large"), "{message}");

        let mut policy = GuardrailPolicy::default();
        policy.input.deny_keywords = vec!["x".into(); bounds::LIST_ENTRIES + 1];
        assert_eq!(policy.problem().unwrap().0, "input.deny_keywords");

        let policy = GuardrailPolicy {
            webhook: Some(WebhookRule {
                url: "ftp://example.com".into(),
                timeout_ms: None,
                on_failure: FailurePolicy::Open,
                output: false,
            }),
            ..GuardrailPolicy::default()
        };
        assert_eq!(policy.problem().unwrap().0, "webhook.url");

        let mut policy = GuardrailPolicy::default();
        policy.output.require_citation = Some(CitationRule {
            format: CitationFormat::Regex,
            pattern: None,
            action: RuleAction::Block,
        });
        assert_eq!(
            policy.problem().unwrap().0,
            "output.require_citation.pattern"
        );

        let mut policy = GuardrailPolicy::default();
        policy.input.topic_threshold = Some(1.5);
        assert_eq!(policy.problem().unwrap().0, "input.topic_threshold");
    }

    #[test]
    fn unknown_fields_and_entity_types_are_refused() {
        assert!(serde_json::from_str::<GuardrailPolicy>(r#"{"inputs": {}}"#).is_err());
        assert!(
            serde_json::from_str::<GuardrailPolicy>(
                r#"{"input": {"pii": {"passport": "redact"}}}"#
            )
            .is_err()
        );
    }

    #[test]
    fn empty_levels_are_dropped() {
        let levels = GuardrailLevels::new(vec![
            NamedPolicy {
                name: "organization".into(),
                policy: GuardrailPolicy::default(),
            },
            NamedPolicy {
                name: "key".into(),
                policy: GuardrailPolicy {
                    restore_in_answer: Some(true),
                    ..GuardrailPolicy::default()
                },
            },
        ]);
        assert_eq!(levels.levels.len(), 1);
        assert_eq!(levels.levels[0].name, "key");
    }
}
