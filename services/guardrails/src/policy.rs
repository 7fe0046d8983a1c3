//! Every policy that applies to a request, merged (as `tollgate_common::guardrails` says levels
//! combine) and compiled once: detectors for the entity types in use, expressions, keyword
//! matchers, model globs.

use std::collections::BTreeMap;

use regex::Regex;
use tollgate_common::guardrails::{
    CitationFormat, CitationRule, RuleAction, WebhookRule, bounds, compile_regex,
};
use tollgate_common::{EntityKind, NamedPolicy, PiiAction};
use wildmatch::WildMatch;

use crate::detect::Detectors;

/// A rule's origin: which policy, and the rule's path within it (`input.deny_regex[0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleName {
    pub policy: String,
    pub rule: String,
}

impl RuleName {
    fn new(policy: &str, rule: impl Into<String>) -> Self {
        RuleName {
            policy: policy.to_owned(),
            rule: rule.into(),
        }
    }

    /// `policy/rule`, as errors name it.
    pub fn label(&self) -> String {
        format!("{}/{}", self.policy, self.rule)
    }
}

/// One side's checks (the prompt's, or the answer's).
#[derive(Default)]
pub struct Side {
    /// `input` or `output`, as rule names start.
    pub name: &'static str,
    /// The action per entity type and the policy that decided it; types allowed are absent.
    pub pii: BTreeMap<EntityKind, (PiiAction, String)>,
    /// Finds the types in `pii`; `None` when there are none.
    pub detectors: Option<Detectors>,
    /// Denied keywords and expressions, each with the rule it came from and what it does.
    pub patterns: Vec<(Regex, RuleName)>,
    /// Denied topics' descriptions, with their rule names.
    pub topics: Vec<(String, RuleName)>,
    pub topic_threshold: f32,
    /// The topics' vectors, once embedded.
    pub topic_vectors: crate::topics::TopicVectors,
}

impl Side {
    /// Whether this side checks anything.
    pub fn is_empty(&self) -> bool {
        self.pii.is_empty() && self.patterns.is_empty() && self.topics.is_empty()
    }

    fn finish(&mut self) {
        let kinds: Vec<EntityKind> = self.pii.keys().copied().collect();
        self.detectors = (!kinds.is_empty()).then(|| Detectors::new(&kinds));
    }
}

/// The merged, compiled policy for one key's requests.
#[derive(Default)]
pub struct Policy {
    pub input: Side,
    pub output: Side,
    pub max_input_tokens: Option<(u64, RuleName)>,
    pub max_output_tokens: Option<(u32, RuleName)>,
    /// The narrowest level's allow-list of models, if one sets it.
    pub allowed_models: Option<(Vec<WildMatch>, RuleName)>,
    pub denied_models: Vec<(WildMatch, RuleName)>,
    pub max_chars: Option<(u64, RuleName)>,
    pub citation: Option<(Citation, RuleName)>,
    /// Set (naming the policy that asked) when redacted values go back into answers.
    pub restore: Option<RuleName>,
    pub webhook: Option<(WebhookRule, RuleName)>,
}

/// How a citation is recognised, and what a missing one does.
pub struct Citation {
    pub pattern: Regex,
    pub action: RuleAction,
}

impl Policy {
    /// `levels` merged, widest first. An expression that does not compile (possible only for
    /// one stored before a stricter check) is skipped with a warning rather than stopping the
    /// key: every other rule still applies.
    pub fn compile<'a>(levels: impl IntoIterator<Item = &'a NamedPolicy>) -> Policy {
        let mut policy = Policy {
            input: Side {
                name: "input",
                topic_threshold: bounds::DEFAULT_TOPIC_THRESHOLD,
                ..Side::default()
            },
            output: Side {
                name: "output",
                topic_threshold: bounds::DEFAULT_TOPIC_THRESHOLD,
                ..Side::default()
            },
            ..Policy::default()
        };
        let mut input_keywords = Vec::new();
        let mut output_keywords = Vec::new();
        for NamedPolicy {
            name,
            policy: level,
        } in levels
        {
            let input = &level.input;
            let output = &level.output;
            merge_pii(&mut policy.input.pii, &input.pii, name);
            merge_pii(&mut policy.output.pii, &output.pii, name);
            for (i, keyword) in input.deny_keywords.iter().enumerate() {
                input_keywords.push((
                    keyword.clone(),
                    RuleName::new(name, format!("input.deny_keywords[{i}]")),
                ));
            }
            for (i, keyword) in output.deny_keywords.iter().enumerate() {
                output_keywords.push((
                    keyword.clone(),
                    RuleName::new(name, format!("output.deny_keywords[{i}]")),
                ));
            }
            add_patterns(&mut policy.input.patterns, &input.deny_regex, name, "input");
            add_patterns(
                &mut policy.output.patterns,
                &output.deny_regex,
                name,
                "output",
            );
            for (i, topic) in input.deny_topics.iter().enumerate() {
                policy.input.topics.push((
                    topic.clone(),
                    RuleName::new(name, format!("input.deny_topics[{i}]")),
                ));
            }
            for (i, topic) in output.deny_topics.iter().enumerate() {
                policy.output.topics.push((
                    topic.clone(),
                    RuleName::new(name, format!("output.deny_topics[{i}]")),
                ));
            }
            if let Some(threshold) = input.topic_threshold {
                policy.input.topic_threshold = threshold;
            }
            if let Some(threshold) = output.topic_threshold {
                policy.output.topic_threshold = threshold;
            }
            if let Some(max) = input.max_tokens {
                policy.max_input_tokens = Some((max, RuleName::new(name, "input.max_tokens")));
            }
            if let Some(max) = input.max_output_tokens {
                policy.max_output_tokens =
                    Some((max, RuleName::new(name, "input.max_output_tokens")));
            }
            if !input.allowed_models.is_empty() {
                let globs = input.allowed_models.iter().map(|m| WildMatch::new(m));
                policy.allowed_models =
                    Some((globs.collect(), RuleName::new(name, "input.allowed_models")));
            }
            for (i, model) in input.denied_models.iter().enumerate() {
                policy.denied_models.push((
                    WildMatch::new(model),
                    RuleName::new(name, format!("input.denied_models[{i}]")),
                ));
            }
            if let Some(max) = output.max_chars {
                policy.max_chars = Some((max, RuleName::new(name, "output.max_chars")));
            }
            if let Some(rule) = &output.require_citation
                && let Some(citation) = citation(rule, name)
            {
                policy.citation = Some((citation, RuleName::new(name, "output.require_citation")));
            }
            if let Some(restore) = level.restore_in_answer {
                policy.restore = restore.then(|| RuleName::new(name, "restore_in_answer"));
            }
            if let Some(webhook) = &level.webhook {
                policy.webhook = Some((webhook.clone(), RuleName::new(name, "webhook")));
            }
        }
        add_keywords(&mut policy.input.patterns, input_keywords);
        add_keywords(&mut policy.output.patterns, output_keywords);
        policy.input.finish();
        policy.output.finish();
        policy
    }

    /// Whether anything at all is checked.
    pub fn is_empty(&self) -> bool {
        self.input.is_empty()
            && self.output.is_empty()
            && self.max_input_tokens.is_none()
            && self.max_output_tokens.is_none()
            && self.allowed_models.is_none()
            && self.denied_models.is_empty()
            && self.max_chars.is_none()
            && self.citation.is_none()
            && self.restore.is_none()
            && self.webhook.is_none()
    }

    /// Whether answers need looking at: output rules, restoration, or a webhook that sees them.
    pub fn checks_answers(&self) -> bool {
        !self.output.is_empty()
            || self.max_chars.is_some()
            || self.citation.is_some()
            || self.restore.is_some()
            || self.webhook.as_ref().is_some_and(|(hook, _)| hook.output)
    }

    /// The rule that refuses `model`, if one does.
    pub fn refuses_model(&self, model: &str) -> Option<&RuleName> {
        if let Some((_, rule)) = self.denied_models.iter().find(|(g, _)| g.matches(model)) {
            return Some(rule);
        }
        match &self.allowed_models {
            Some((globs, rule)) if !globs.iter().any(|g| g.matches(model)) => Some(rule),
            _ => None,
        }
    }
}

fn merge_pii(
    merged: &mut BTreeMap<EntityKind, (PiiAction, String)>,
    level: &BTreeMap<EntityKind, PiiAction>,
    name: &str,
) {
    for (&kind, &action) in level {
        if action == PiiAction::Allow {
            merged.remove(&kind);
        } else {
            merged.insert(kind, (action, name.to_owned()));
        }
    }
}

fn add_patterns(out: &mut Vec<(Regex, RuleName)>, patterns: &[String], name: &str, side: &str) {
    for (i, pattern) in patterns.iter().enumerate() {
        let rule = RuleName::new(name, format!("{side}.deny_regex[{i}]"));
        match compile_regex(pattern) {
            Ok(regex) => out.push((regex, rule)),
            Err(problem) => {
                tracing::warn!(policy = %rule.label(), %problem, "guardrail expression skipped")
            }
        }
    }
}

/// Keywords match as whole words, case-insensitively; each is its own expression so that the
/// one that matched is named.
fn add_keywords(out: &mut Vec<(Regex, RuleName)>, keywords: Vec<(String, RuleName)>) {
    for (keyword, rule) in keywords {
        let pattern = format!(r"(?i)(?:^|\W){}(?:\W|$)", regex::escape(keyword.trim()));
        if let Ok(regex) = compile_regex(&pattern) {
            out.push((regex, rule));
        }
    }
}

fn citation(rule: &CitationRule, name: &str) -> Option<Citation> {
    let pattern = match rule.format {
        CitationFormat::Url => r"https?://[^\s)\]>]+",
        CitationFormat::Bracket => r"\[\d{1,3}\]",
        CitationFormat::Regex => rule.pattern.as_deref()?,
    };
    match compile_regex(pattern) {
        Ok(pattern) => Some(Citation {
            pattern,
            action: rule.action,
        }),
        Err(problem) => {
            tracing::warn!(policy = %name, %problem, "guardrail citation rule skipped");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_common::GuardrailPolicy;

    fn named(name: &str, json: &str) -> NamedPolicy {
        let policy: GuardrailPolicy = serde_json::from_str(json).unwrap();
        NamedPolicy {
            name: name.into(),
            policy,
        }
    }

    #[test]
    fn narrower_levels_decide_each_entity_type_and_lists_add_up() {
        let org = named(
            "organization",
            r#"{"input": {"pii": {"email": "redact", "phone": "block"}, "deny_keywords": ["secret project"]}}"#,
        );
        let team = named(
            "team",
            r#"{"input": {"pii": {"email": "allow", "ssn": "log"}, "deny_regex": ["(?i)internal"]}}"#,
        );
        let policy = Policy::compile([&org, &team]);
        assert!(!policy.input.pii.contains_key(&EntityKind::Email));
        assert_eq!(
            policy.input.pii[&EntityKind::Phone],
            (PiiAction::Block, "organization".to_owned())
        );
        assert_eq!(
            policy.input.pii[&EntityKind::Ssn],
            (PiiAction::Log, "team".to_owned())
        );
        let rules: Vec<String> = policy
            .input
            .patterns
            .iter()
            .map(|(_, r)| r.label())
            .collect();
        assert_eq!(
            rules,
            [
                "team/input.deny_regex[0]",
                "organization/input.deny_keywords[0]"
            ]
        );
        assert!(!policy.checks_answers());
    }

    #[test]
    fn keywords_match_whole_words_in_any_case() {
        let org = named("o", r#"{"input": {"deny_keywords": ["Project X"]}}"#);
        let policy = Policy::compile([&org]);
        let (regex, _) = &policy.input.patterns[0];
        assert!(regex.is_match("tell me about project x."));
        assert!(regex.is_match("PROJECT X"));
        assert!(!regex.is_match("project xylophone"));
    }

    #[test]
    fn single_values_come_from_the_narrowest_level() {
        let org = named(
            "o",
            r#"{"input": {"max_tokens": 100, "allowed_models": ["gpt-*"], "denied_models": ["gpt-4o"]}, "restore_in_answer": true}"#,
        );
        let key = named(
            "k",
            r#"{"input": {"max_tokens": 50}, "restore_in_answer": false}"#,
        );
        let policy = Policy::compile([&org, &key]);
        assert_eq!(policy.max_input_tokens.as_ref().unwrap().0, 50);
        assert!(policy.restore.is_none());
        assert_eq!(
            policy.refuses_model("gpt-4o").unwrap().label(),
            "o/input.denied_models[0]"
        );
        assert_eq!(
            policy.refuses_model("claude").unwrap().label(),
            "o/input.allowed_models"
        );
        assert!(policy.refuses_model("gpt-4o-mini").is_none());
    }
}
