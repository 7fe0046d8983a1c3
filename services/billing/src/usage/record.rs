//! One request's usage event, as journaled, streamed and stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tollgate_common::GuardrailAction;

/// Who, what, how much and how it went, for one request. Ids are text, money picodollars.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Made by the gateway for each request: the ledger's idempotency key. (The request id
    /// can come from the client, so it cannot be one.)
    pub event_id: String,
    pub request_id: String,
    /// When the request arrived, Unix milliseconds.
    pub time_ms: i64,
    pub org_id: String,
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    /// The user who created the key.
    pub user_id: Option<String>,
    /// OpenAI's `user` field.
    pub end_user: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub endpoint: String,
    pub requested_model: String,
    pub provider: Option<String>,
    pub provider_model: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    /// The tokens were counted by Tollgate because the upstream reported none.
    pub usage_estimated: bool,
    /// `None` when the model has no price.
    pub cost_pico: Option<i64>,
    /// What admission reserved against budgets for the request.
    pub reserved_pico: i64,
    /// For a cache hit: what the answer cost when it was made.
    #[serde(default)]
    pub saved_pico: Option<i64>,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub status: u16,
    pub error: Option<String>,
    /// `hit`, `miss` or `off`.
    pub cache: String,
    pub attempts: u32,
    pub stream: bool,
    /// The most severe thing guardrails did (`blocked`, `modified`, `redacted`, `truncated`,
    /// `flagged`, `restored`, `logged`); `None` when none acted. Analytics group by it.
    /// (`default`: records journaled before guardrails existed have neither field.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrail: Option<String>,
    /// What each guardrail did (policy, rule, action, entity types; never the values), as
    /// [`bounded_actions`] keeps them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guardrail_actions: Vec<GuardrailAction>,
}

/// The most guardrail actions one record keeps: a policy with hundreds of rules must not make
/// every record, journal line and ledger row that much larger.
pub const MAX_GUARDRAIL_ACTIONS: usize = 32;
/// The most characters of a policy's or a rule's name a record keeps.
pub const MAX_GUARDRAIL_NAME_CHARS: usize = 200;

/// The name of the most severe of `actions` (see [`UsageRecord::guardrail`]).
pub fn most_severe(actions: &[GuardrailAction]) -> Option<&'static str> {
    actions.iter().map(|a| a.taken).min().map(|t| t.name())
}

/// `actions` as a record keeps them: at most [`MAX_GUARDRAIL_ACTIONS`], the most severe ones
/// when there are more (so that the action behind [`UsageRecord::guardrail`] is always
/// there), in the order they were taken; names cut at [`MAX_GUARDRAIL_NAME_CHARS`]; each
/// entity type once.
pub fn bounded_actions(mut actions: Vec<GuardrailAction>) -> Vec<GuardrailAction> {
    if actions.len() > MAX_GUARDRAIL_ACTIONS {
        let mut by_severity: Vec<usize> = (0..actions.len()).collect();
        // Stable: among equally severe actions, the first taken are kept.
        by_severity.sort_by_key(|&i| actions[i].taken);
        let mut keep = vec![false; actions.len()];
        for &i in &by_severity[..MAX_GUARDRAIL_ACTIONS] {
            keep[i] = true;
        }
        let mut index = 0;
        actions.retain(|_| {
            index += 1;
            keep[index - 1]
        });
    }
    for action in &mut actions {
        cut(&mut action.policy);
        cut(&mut action.rule);
        action.entities.sort_unstable();
        action.entities.dedup();
    }
    actions
}

fn cut(name: &mut String) {
    if let Some((at, _)) = name.char_indices().nth(MAX_GUARDRAIL_NAME_CHARS) {
        name.truncate(at);
    }
}

#[cfg(test)]
mod tests {
    use tollgate_common::{EntityKind, Taken};

    use super::*;

    fn action(rule: &str, taken: Taken) -> GuardrailAction {
        GuardrailAction {
            policy: "organization".into(),
            rule: rule.into(),
            taken,
            entities: Vec::new(),
        }
    }

    #[test]
    fn the_outcome_is_the_most_severe_action() {
        assert_eq!(most_severe(&[]), None);
        let actions = [
            action("input.pii", Taken::Logged),
            action("input.pii", Taken::Redacted),
            action("output.deny_keywords", Taken::Flagged),
        ];
        assert_eq!(most_severe(&actions), Some("redacted"));
        let blocked = [action("a", Taken::Restored), action("b", Taken::Blocked)];
        assert_eq!(most_severe(&blocked), Some("blocked"));
    }

    #[test]
    fn many_actions_keep_the_most_severe_in_order_and_names_are_cut() {
        let mut actions: Vec<GuardrailAction> = (0..100)
            .map(|n| action(&format!("input.deny_regex[{n}]"), Taken::Flagged))
            .collect();
        actions[70].taken = Taken::Blocked;
        actions[0].rule = "é".repeat(500);
        actions[0].entities = vec![EntityKind::Phone, EntityKind::Email, EntityKind::Phone];
        let kept = bounded_actions(actions);
        assert_eq!(kept.len(), MAX_GUARDRAIL_ACTIONS);
        assert_eq!(kept[0].rule.chars().count(), MAX_GUARDRAIL_NAME_CHARS);
        assert_eq!(kept[0].entities, [EntityKind::Email, EntityKind::Phone]);
        assert_eq!(kept[1].rule, "input.deny_regex[1]");
        // The blocking action outranks the later flags, and stays in its place: last.
        assert_eq!(kept[30].rule, "input.deny_regex[30]");
        assert_eq!(kept[31].rule, "input.deny_regex[70]");
        assert_eq!(kept[31].taken, Taken::Blocked);
    }

    #[test]
    fn records_without_guardrail_fields_still_read() {
        let mut record = crate::usage::journal::tests::record(1);
        let json = serde_json::to_string(&record).unwrap_or_default();
        assert!(!json.contains("guardrail"), "{json}");
        let old: UsageRecord = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(old, record);

        record.guardrail = Some("redacted".into());
        record.guardrail_actions = vec![GuardrailAction {
            entities: vec![EntityKind::Email],
            ..action("input.pii", Taken::Redacted)
        }];
        let json = serde_json::to_string(&record).unwrap_or_default();
        let back: UsageRecord = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, record);
    }
}
