//! One text checked against one side of a policy: denied patterns first (on the text as
//! written), then personal data, redacted into typed placeholders (`<EMAIL_1>`) that are the
//! same for the same value throughout a request, so that an answer can have them put back.

use std::collections::{BTreeMap, HashMap};

use tollgate_common::{EntityKind, GuardrailAction, PiiAction, Taken};

use crate::detect::Found;
use crate::policy::{RuleName, Side};

/// A rule refused the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub rule: RuleName,
    /// Why, in words a client can act on (never the matched value).
    pub reason: String,
}

/// What guardrails did to one request, merged per policy, rule and action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actions(Vec<GuardrailAction>);

impl Actions {
    pub fn add(&mut self, rule: &RuleName, taken: Taken, entity: Option<EntityKind>) {
        let existing = self
            .0
            .iter()
            .position(|a| a.taken == taken && a.rule == rule.rule && a.policy == rule.policy);
        let at = existing.unwrap_or_else(|| {
            self.0.push(GuardrailAction {
                policy: rule.policy.clone(),
                rule: rule.rule.clone(),
                taken,
                entities: Vec::new(),
            });
            self.0.len() - 1
        });
        let action = &mut self.0[at];
        if let Some(entity) = entity
            && !action.entities.contains(&entity)
        {
            action.entities.push(entity);
            action.entities.sort();
        }
    }

    pub fn extend(&mut self, other: Actions) {
        for action in other.0 {
            let rule = RuleName {
                policy: action.policy,
                rule: action.rule,
            };
            if action.entities.is_empty() {
                self.add(&rule, action.taken, None);
            }
            for entity in action.entities {
                self.add(&rule, action.taken, Some(entity));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<GuardrailAction> {
        self.0
    }

    pub fn as_slice(&self) -> &[GuardrailAction] {
        &self.0
    }
}

/// The placeholders given in one request: each distinct value of a type gets the next number.
#[derive(Debug, Clone, Default)]
pub struct Placeholders {
    by_value: HashMap<(EntityKind, String), String>,
    values: HashMap<String, String>,
    counts: BTreeMap<EntityKind, u32>,
    longest: usize,
}

impl Placeholders {
    /// The placeholder of `value`, given now if it has none yet.
    pub fn give(&mut self, kind: EntityKind, value: &str) -> &str {
        let key = (kind, value.to_owned());
        if !self.by_value.contains_key(&key) {
            let count = self.counts.entry(kind).or_insert(0);
            *count += 1;
            let placeholder = format!("<{}_{}>", kind.placeholder(), count);
            self.longest = self.longest.max(placeholder.len());
            self.values.insert(placeholder.clone(), value.to_owned());
            self.by_value.insert(key.clone(), placeholder);
        }
        &self.by_value[&key]
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The longest placeholder given, in bytes.
    pub fn longest(&self) -> usize {
        self.longest
    }

    /// `text` with every placeholder of this request replaced by its value; `None` when it
    /// has none. Placeholders the request did not give are left as they are.
    pub fn restore(&self, text: &str) -> Option<String> {
        if self.values.is_empty() || !text.contains('<') {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut changed = false;
        while let Some(open) = rest.find('<') {
            out.push_str(&rest[..open]);
            let candidate = &rest[open..];
            // Searched as bytes: the bound may fall inside a multi-byte character, and a
            // placeholder is ASCII.
            let window = &candidate.as_bytes()[..candidate.len().min(self.longest)];
            let close = window.iter().position(|&b| b == b'>');
            match close.and_then(|close| self.values.get(&candidate[..=close]).zip(Some(close))) {
                Some((value, close)) => {
                    out.push_str(value);
                    rest = &candidate[close + 1..];
                    changed = true;
                }
                None => {
                    out.push('<');
                    rest = &candidate[1..];
                }
            }
        }
        out.push_str(rest);
        changed.then_some(out)
    }
}

/// Checks `text` against `side`: `Ok(Some(new))` when personal data was redacted, `Ok(None)`
/// when it goes as it is, `Err` when a rule refuses it. What was found is added to `actions`.
pub fn check(
    side: &Side,
    text: &str,
    placeholders: &mut Placeholders,
    actions: &mut Actions,
) -> Result<Option<String>, Blocked> {
    check_patterns(side, text)?;
    redact(side, text, placeholders, actions)
}

/// Refuses `text` when a denied keyword or expression matches it.
pub fn check_patterns(side: &Side, text: &str) -> Result<(), Blocked> {
    for (pattern, rule) in &side.patterns {
        if pattern.is_match(text) {
            return Err(Blocked {
                rule: rule.clone(),
                reason: "the text matches a denied keyword or expression".into(),
            });
        }
    }
    Ok(())
}

/// Applies `side`'s personal-data actions to `text`: `Ok(Some(new))` when something was
/// redacted.
pub fn redact(
    side: &Side,
    text: &str,
    placeholders: &mut Placeholders,
    actions: &mut Actions,
) -> Result<Option<String>, Blocked> {
    let Some(detectors) = &side.detectors else {
        return Ok(None);
    };
    redact_found(side, text, &detectors.find(text), placeholders, actions)
}

/// [`redact`] with the entities of `text` already found.
pub fn redact_found(
    side: &Side,
    text: &str,
    found: &[Found],
    placeholders: &mut Placeholders,
    actions: &mut Actions,
) -> Result<Option<String>, Blocked> {
    if found.is_empty() {
        return Ok(None);
    }
    let mut out = String::new();
    let mut copied = 0;
    for entity in found {
        let Some((action, policy)) = side.pii.get(&entity.kind) else {
            continue;
        };
        let rule = RuleName {
            policy: policy.clone(),
            rule: format!("{}.pii", side.name),
        };
        match action {
            PiiAction::Block => {
                return Err(Blocked {
                    rule,
                    reason: format!("the text contains {}", describe(entity.kind)),
                });
            }
            PiiAction::Log => actions.add(&rule, Taken::Logged, Some(entity.kind)),
            PiiAction::Redact => {
                if out.is_empty() {
                    out.reserve(text.len());
                }
                out.push_str(&text[copied..entity.start]);
                out.push_str(placeholders.give(entity.kind, &text[entity.start..entity.end]));
                copied = entity.end;
                actions.add(&rule, Taken::Redacted, Some(entity.kind));
            }
            PiiAction::Allow => {}
        }
    }
    if copied == 0 {
        return Ok(None);
    }
    out.push_str(&text[copied..]);
    Ok(Some(out))
}

/// An entity type in words, for refusals.
pub fn describe(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Email => "an e-mail address",
        EntityKind::Phone => "a phone number",
        EntityKind::CreditCard => "a payment card number",
        EntityKind::Iban => "an IBAN",
        EntityKind::Ssn => "a social security number",
        EntityKind::IpAddress => "an IP address",
        EntityKind::Secret => "a secret (an API key, token or private key)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_value_gets_the_same_placeholder_and_is_restored() {
        let mut placeholders = Placeholders::default();
        let first = placeholders
            .give(EntityKind::Email, "a@example.com")
            .to_owned();
        let second = placeholders
            .give(EntityKind::Email, "b@example.com")
            .to_owned();
        let again = placeholders
            .give(EntityKind::Email, "a@example.com")
            .to_owned();
        assert_eq!(
            (first.as_str(), second.as_str()),
            ("<EMAIL_1>", "<EMAIL_2>")
        );
        assert_eq!(again, first);
        assert_eq!(
            placeholders
                .restore("write to <EMAIL_2> and <EMAIL_1>, not <EMAIL_3> or <x")
                .unwrap(),
            "write to b@example.com and a@example.com, not <EMAIL_3> or <x"
        );
        assert_eq!(placeholders.restore("nothing here"), None);
        // A '<' followed by multi-byte text, wherever the search bound falls.
        for text in ["<é", "<éééééééééé", "<<ééé<EMAIL_1>", "x<日本語のテキスト>"]
        {
            let restored = placeholders.restore(text);
            assert_eq!(
                restored.is_some(),
                text.contains("<EMAIL_1>"),
                "{text}: {restored:?}"
            );
        }
    }

    #[test]
    fn actions_merge_per_rule_and_keep_entity_types_not_values() {
        let rule = RuleName {
            policy: "p".into(),
            rule: "input.pii".into(),
        };
        let mut actions = Actions::default();
        actions.add(&rule, Taken::Redacted, Some(EntityKind::Phone));
        actions.add(&rule, Taken::Redacted, Some(EntityKind::Email));
        actions.add(&rule, Taken::Redacted, Some(EntityKind::Email));
        assert_eq!(actions.as_slice().len(), 1);
        assert_eq!(
            actions.as_slice()[0].entities,
            [EntityKind::Email, EntityKind::Phone]
        );
    }
}
