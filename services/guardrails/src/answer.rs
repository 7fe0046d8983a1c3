//! A model's answer checked before the client sees it: personal data and denied patterns
//! (the output rules), the prompt's redacted values put back, the length cut, and the
//! citation required. Whole answers are OpenAI chat completions (or legacy completions);
//! a stream is checked as its text arrives, holding back only the tail an entity or a
//! placeholder that has begun could still be completing.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tollgate_common::Taken;
use tollgate_common::guardrails::RuleAction;

use crate::Guardrails;
use crate::detect::Found;
use crate::policy::{Policy, RuleName};
use crate::request::Refused;
use crate::text::{self, Actions, Blocked, Placeholders};
use crate::webhook::{self, Call, Stage, Verdict};

/// How much answered text a denied expression or citation is looked for across, when a
/// stream delivers it in pieces.
const PATTERN_WINDOW: usize = 512;

/// The answer checks of one request.
pub struct AnswerRules {
    policy: Arc<Policy>,
    placeholders: Placeholders,
    /// For the checks that call out (the webhook, denied topics), with the request they are
    /// about.
    outside: Option<(Arc<Guardrails>, Call)>,
}

impl AnswerRules {
    pub fn new(policy: Arc<Policy>, placeholders: Placeholders) -> AnswerRules {
        AnswerRules {
            policy,
            placeholders,
            outside: None,
        }
    }

    /// Lets the answer's checks call the organization's webhook and the topic embedder.
    pub fn calling_out(mut self, engine: Arc<Guardrails>, call: Call) -> AnswerRules {
        self.outside = Some((engine, call));
        self
    }

    /// A whole answer: the organization's webhook first (on the model's answer, before the
    /// prompt's values are put back), the denied topics, then [`AnswerRules::check_completion`].
    pub async fn check(&self, body: &[u8]) -> Result<(Option<Vec<u8>>, Actions), Refused> {
        let Some((engine, call)) = &self.outside else {
            return self.check_completion(body);
        };
        let policy = &self.policy;
        let mut actions = Actions::default();
        let mut modified = None;
        if let Some((hook, rule)) = &policy.webhook
            && hook.output
            && let Ok(mut answer) = serde_json::from_slice::<Value>(body)
        {
            match webhook::ask(engine.client(), hook, rule, Stage::Output, call, &answer).await {
                Verdict::Allow => {}
                Verdict::Block(blocked) => return Err(Refused::new(blocked, actions)),
                Verdict::FailedOpen(failure) => {
                    tracing::warn!(policy = %rule.label(), %failure, "guardrail webhook failed open");
                    actions.add(rule, Taken::Flagged, None);
                }
                Verdict::Modify(new) => {
                    // Only the choices' text may change.
                    let new = Value::Object(new);
                    for (i, choice) in choices(&mut answer).iter_mut().enumerate() {
                        let text = new["choices"][i]["message"]["content"]
                            .as_str()
                            .or(new["choices"][i]["text"].as_str());
                        if let (Some(text), Some(current)) = (text, text_of(choice)) {
                            *current = text.to_owned();
                        }
                    }
                    modified = serde_json::to_vec(&answer).ok();
                    actions.add(rule, Taken::Modified, None);
                }
            }
        }
        let current = modified.as_deref().unwrap_or(body);
        if !policy.output.topics.is_empty()
            && let Ok(mut answer) = serde_json::from_slice::<Value>(current)
        {
            let text: Vec<String> = choices(&mut answer)
                .iter_mut()
                .filter_map(|choice| text_of(choice).map(|t| t.clone()))
                .collect();
            if let Err(blocked) = engine.check_topics(&policy.output, &text.join("\n")).await {
                return Err(Refused::new(blocked, actions));
            }
        }
        match self.check_completion(current) {
            Ok((rewritten, more)) => {
                actions.extend(more);
                Ok((rewritten.or(modified), actions))
            }
            Err(refused) => {
                actions.extend(refused.actions);
                Err(Refused {
                    blocked: refused.blocked,
                    actions,
                })
            }
        }
    }

    /// A whole answer (an OpenAI chat completion or completion): the body the client gets
    /// instead, when anything changed, and what was done.
    pub fn check_completion(&self, body: &[u8]) -> Result<(Option<Vec<u8>>, Actions), Refused> {
        let mut actions = Actions::default();
        let Ok(mut answer) = serde_json::from_slice::<Value>(body) else {
            return Ok((None, actions));
        };
        let mut changed = false;
        // Values the answer itself gives away are numbered after the prompt's.
        let mut placeholders = self.placeholders.clone();
        let choices = answer
            .get_mut("choices")
            .and_then(Value::as_array_mut)
            .map(|c| c.as_mut_slice())
            .unwrap_or_default();
        for choice in choices {
            let mut finish_length = false;
            let result = {
                let (text, tool_calls) = match choice.get_mut("message") {
                    Some(message) => {
                        let message = message.as_object_mut();
                        match message {
                            Some(m) => {
                                let mut content = None;
                                let mut calls = None;
                                for (key, value) in m.iter_mut() {
                                    match key.as_str() {
                                        "content" => content = Some(value),
                                        "tool_calls" => calls = Some(value),
                                        _ => {}
                                    }
                                }
                                (content, calls)
                            }
                            None => (None, None),
                        }
                    }
                    None => (choice.get_mut("text"), None),
                };
                let mut outcome = Ok(());
                if let Some(Value::String(content)) = text {
                    match self.check_text(content, &mut placeholders, &mut actions) {
                        Ok(Some((new, cut))) => {
                            *content = new;
                            finish_length = cut;
                            changed = true;
                        }
                        Ok(None) => {}
                        Err(blocked) => outcome = Err(blocked),
                    }
                }
                if outcome.is_ok()
                    && let Some(calls) = tool_calls
                {
                    let side = &self.policy.output;
                    let restore = self.policy.restore.is_some();
                    let placeholders = &mut placeholders;
                    let actions = &mut actions;
                    let rewritten = crate::body::rewrite(calls, &mut |text| {
                        let mut out = text::check(side, text, placeholders, actions)?;
                        if restore
                            && let Some(restored) =
                                placeholders.restore(out.as_deref().unwrap_or(text))
                        {
                            out = Some(restored);
                        }
                        Ok::<_, Blocked>(out)
                    });
                    match rewritten {
                        Ok(rewrote) => changed |= rewrote,
                        Err(blocked) => outcome = Err(blocked),
                    }
                }
                outcome
            };
            if let Err(blocked) = result {
                return Err(Refused::new(blocked, actions));
            }
            if finish_length {
                choice["finish_reason"] = Value::from("length");
            }
        }
        let body = changed.then(|| serde_json::to_vec(&answer).ok()).flatten();
        Ok((body, actions))
    }

    /// One choice's whole text: `Some((new text, cut))` when it changed.
    fn check_text(
        &self,
        content: &str,
        placeholders: &mut Placeholders,
        actions: &mut Actions,
    ) -> Result<Option<(String, bool)>, Blocked> {
        let policy = &self.policy;
        let mut text = text::check(&policy.output, content, placeholders, actions)?;
        if let Some(rule) = &policy.restore
            && let Some(restored) = self
                .placeholders
                .restore(text.as_deref().unwrap_or(content))
        {
            actions.add(rule, Taken::Restored, None);
            text = Some(restored);
        }
        let mut cut = false;
        if let Some((max, rule)) = &policy.max_chars {
            let current = text.as_deref().unwrap_or(content);
            if let Some((end, _)) = current
                .char_indices()
                .nth(usize::try_from(*max).unwrap_or(usize::MAX))
            {
                text = Some(current[..end].to_owned());
                actions.add(rule, Taken::Truncated, None);
                cut = true;
            }
        }
        if let Some((citation, rule)) = &policy.citation
            && !citation
                .pattern
                .is_match(text.as_deref().unwrap_or(content))
        {
            missing_citation(citation.action, rule, actions)?;
        }
        Ok(text.map(|text| (text, cut)))
    }

    /// The checks of a streamed answer, fed its text as it arrives.
    pub fn stream(&self) -> StreamRules {
        let policy = &self.policy;
        let mut hold = policy.output.detectors.as_ref().map_or(0, |d| d.max_len());
        if policy.restore.is_some() {
            hold = hold.max(self.placeholders.longest());
        }
        StreamRules {
            policy: policy.clone(),
            placeholders: self.placeholders.clone(),
            given: self.placeholders.clone(),
            hold,
            choices: HashMap::new(),
            actions: Actions::default(),
        }
    }
}

/// An answer's choices.
fn choices(answer: &mut Value) -> &mut [Value] {
    answer
        .get_mut("choices")
        .and_then(Value::as_array_mut)
        .map(|c| c.as_mut_slice())
        .unwrap_or_default()
}

/// A choice's text: its message's `content`, or a legacy completion's `text`.
fn text_of(choice: &mut Value) -> Option<&mut String> {
    let text = match choice.get("message") {
        Some(_) => choice.get_mut("message")?.get_mut("content")?,
        None => choice.get_mut("text")?,
    };
    match text {
        Value::String(text) => Some(text),
        _ => None,
    }
}

fn missing_citation(
    action: RuleAction,
    rule: &RuleName,
    actions: &mut Actions,
) -> Result<(), Blocked> {
    match action {
        RuleAction::Block => Err(Blocked {
            rule: rule.clone(),
            reason: "the answer cites no source".into(),
        }),
        RuleAction::Flag => {
            actions.add(rule, Taken::Flagged, None);
            Ok(())
        }
    }
}

/// What a stream's text check lets through now.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// This text goes to the client (possibly empty: all of it is held back for now).
    Send(String),
    /// This text goes, and the choice ends here (`finish_reason: length`); its further text
    /// is dropped.
    Cut(String),
}

/// The checks of one streamed answer.
pub struct StreamRules {
    policy: Arc<Policy>,
    placeholders: Placeholders,
    /// The prompt's placeholders and those given to values the answer gives away.
    given: Placeholders,
    /// Bytes held back at the end of the text received.
    hold: usize,
    choices: HashMap<u32, Pending>,
    actions: Actions,
}

#[derive(Default)]
struct Pending {
    /// Received, not yet sent.
    held: String,
    /// The end of what was sent, for expressions and citations that span pieces.
    recent: String,
    sent_chars: u64,
    cut: bool,
    cited: bool,
}

impl StreamRules {
    /// Text of choice `index` arrived.
    pub fn push(&mut self, index: u32, delta: &str) -> Result<Flow, Refused> {
        let pending = self.choices.entry(index).or_default();
        if pending.cut {
            return Ok(Flow::Send(String::new()));
        }
        pending.held.push_str(delta);
        // Text is let go in batches rather than per delta (a token is a few bytes): each
        // release scans what is held once, so this bounds the scans per KB.
        if self.hold > 0 && pending.held.len() < self.hold + release_batch(self.hold) {
            return Ok(Flow::Send(String::new()));
        }
        let (safe, found) = safe_end(&pending.held, self.hold, &self.policy, &self.placeholders);
        if safe == 0 {
            return Ok(Flow::Send(String::new()));
        }
        let segment: String = pending.held.drain(..safe).collect();
        self.release(index, segment, Some(found))
    }

    /// Choice `index` finished (or the stream ended): what was held back, checked, and the
    /// citation rule applied to the whole answer.
    pub fn finish(&mut self, index: u32) -> Result<Flow, Refused> {
        let pending = self.choices.entry(index).or_default();
        if pending.cut {
            return Ok(Flow::Send(String::new()));
        }
        let segment = std::mem::take(&mut pending.held);
        let flow = self.release(index, segment, None)?;
        let pending = self.choices.entry(index).or_default();
        if let Some((citation, rule)) = &self.policy.citation
            && !pending.cited
            && let Err(blocked) = missing_citation(citation.action, rule, &mut self.actions)
        {
            return Err(Refused::new(blocked, std::mem::take(&mut self.actions)));
        }
        Ok(flow)
    }

    /// What was done so far.
    pub fn actions(&self) -> &Actions {
        &self.actions
    }

    /// Sends `segment` on, checked; `found` are its entities when they are known already.
    fn release(
        &mut self,
        index: u32,
        segment: String,
        found: Option<Vec<Found>>,
    ) -> Result<Flow, Refused> {
        let policy = &self.policy;
        let pending = self.choices.entry(index).or_default();
        let window = format!("{}{}", pending.recent, segment);
        if let Err(blocked) = text::check_patterns(&policy.output, &window) {
            return Err(Refused::new(blocked, std::mem::take(&mut self.actions)));
        }
        let redacted = match found {
            Some(found) => text::redact_found(
                &policy.output,
                &segment,
                &found,
                &mut self.given,
                &mut self.actions,
            ),
            None => text::redact(&policy.output, &segment, &mut self.given, &mut self.actions),
        };
        let mut out = match redacted {
            Ok(redacted) => redacted.unwrap_or(segment),
            Err(blocked) => {
                return Err(Refused::new(blocked, std::mem::take(&mut self.actions)));
            }
        };
        if let Some(rule) = &policy.restore
            && let Some(restored) = self.placeholders.restore(&out)
        {
            self.actions.add(rule, Taken::Restored, None);
            out = restored;
        }
        if let Some((citation, _)) = &policy.citation {
            pending.cited |= citation.pattern.is_match(&window);
        }
        let mut flow_cut = false;
        if let Some((max, rule)) = &policy.max_chars {
            let room = max.saturating_sub(pending.sent_chars);
            let room = usize::try_from(room).unwrap_or(usize::MAX);
            if let Some((end, _)) = out.char_indices().nth(room) {
                out.truncate(end);
                self.actions.add(rule, Taken::Truncated, None);
                pending.cut = true;
                flow_cut = true;
            }
            pending.sent_chars += out.chars().count() as u64;
        }
        pending.recent = tail(&window, PATTERN_WINDOW).to_owned();
        Ok(if flow_cut {
            Flow::Cut(out)
        } else {
            Flow::Send(out)
        })
    }
}

/// Where the text that can be sent now ends: everything but the last `hold` bytes, moved
/// forward past an entity or placeholder that straddles that point (it cannot grow: it began
/// more than the longest entity's length before the end) and back before a placeholder that
/// has begun but not closed.
fn safe_end(
    held: &str,
    hold: usize,
    policy: &Policy,
    placeholders: &Placeholders,
) -> (usize, Vec<Found>) {
    if held.len() <= hold {
        return (0, Vec::new());
    }
    let mut safe = floor_boundary(held, held.len() - hold);
    let mut found = match &policy.output.detectors {
        Some(detectors) => detectors.find(held),
        None => Vec::new(),
    };
    for entity in &found {
        if entity.start < safe && safe < entity.end {
            safe = entity.end;
        }
    }
    if policy.restore.is_some() && !placeholders.is_empty() {
        let from = floor_boundary(held, safe.saturating_sub(placeholders.longest()));
        if let Some(open) = held[from..safe].rfind('<') {
            let open = from + open;
            match held[open..].find('>') {
                Some(close) if open + close >= safe => safe = open + close + 1,
                Some(_) => {}
                None => safe = open,
            }
        }
    }
    // Those after the point are found again, whole, in a later release.
    found.retain(|entity| entity.end <= safe);
    (safe, found)
}

/// How much more than it must hold back a stream gathers before it lets text go.
fn release_batch(hold: usize) -> usize {
    (hold / 4).max(32)
}

fn floor_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn tail(text: &str, bytes: usize) -> &str {
    if text.len() <= bytes {
        return text;
    }
    let mut start = text.len() - bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::Actions;
    use tollgate_common::{EntityKind, GuardrailPolicy, NamedPolicy};

    fn rules(json: &str, placeholders: Placeholders) -> AnswerRules {
        let policy: GuardrailPolicy = serde_json::from_str(json).unwrap();
        let policy = Policy::compile([&NamedPolicy {
            name: "p".into(),
            policy,
        }]);
        AnswerRules::new(Arc::new(policy), placeholders)
    }

    /// The prompt's placeholders, as the input check would have given them.
    fn given(values: &[(EntityKind, &str)]) -> Placeholders {
        let mut placeholders = Placeholders::default();
        for (kind, value) in values {
            placeholders.give(*kind, value);
        }
        placeholders
    }

    /// Streams `text` in pieces cut at `cuts`, returning what the client gets.
    fn streamed(
        rules: &AnswerRules,
        text: &str,
        cuts: &[usize],
    ) -> Result<(String, bool), Refused> {
        let mut stream = rules.stream();
        let mut out = String::new();
        let mut from = 0;
        let mut cut = false;
        for &to in cuts.iter().chain([text.len()].iter()) {
            match stream.push(0, &text[from..to])? {
                Flow::Send(sent) => out.push_str(&sent),
                Flow::Cut(sent) => {
                    out.push_str(&sent);
                    cut = true;
                }
            }
            from = to;
        }
        match stream.finish(0)? {
            Flow::Send(rest) | Flow::Cut(rest) => out.push_str(&rest),
        }
        Ok((out, cut))
    }

    fn completion(text: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "id": "c", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]
        }))
        .unwrap()
    }

    fn content(body: &[u8]) -> String {
        let value: Value = serde_json::from_slice(body).unwrap();
        value["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn placeholders_are_restored_however_the_stream_splits_them() {
        let rules = rules(
            r#"{"restore_in_answer": true}"#,
            given(&[(EntityKind::Email, "ada@example.com")]),
        );
        let text = "Write to <EMAIL_1> today; <EMAIL_9> is not ours.";
        let whole = rules
            .check_completion(&completion(text))
            .unwrap()
            .0
            .unwrap();
        let expected = "Write to ada@example.com today; <EMAIL_9> is not ours.";
        assert_eq!(content(&whole), expected);
        for a in 0..text.len() {
            for b in a..text.len() {
                let (out, _) = streamed(&rules, text, &[a, b]).unwrap();
                assert_eq!(out, expected, "cut at {a} and {b}");
            }
        }
    }

    #[test]
    fn entities_split_across_chunks_are_redacted_as_in_a_whole_answer() {
        let rules = rules(
            r#"{"output": {"pii": {"email": "redact", "phone": "redact", "credit_card": "redact", "iban": "redact"}}}"#,
            Placeholders::default(),
        );
        let text = "Mail ada.lovelace@example.com, call +44 20 7946 0958, pay 4111 1111 1111 1111 \
                    or GB82 WEST 1234 5698 7654 32 — then write to ada.lovelace@example.com again.";
        let whole = rules
            .check_completion(&completion(text))
            .unwrap()
            .0
            .unwrap();
        let expected = content(&whole);
        assert_eq!(
            expected,
            "Mail <EMAIL_1>, call <PHONE_1>, pay <CREDIT_CARD_1> or <IBAN_1> — then write to \
             <EMAIL_1> again."
        );
        let boundaries: Vec<usize> = (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .collect();
        for &cut in &boundaries {
            let (out, _) = streamed(&rules, text, &[cut]).unwrap();
            assert_eq!(out, expected, "cut at {cut}");
        }
        // Many small pieces: a token or two at a time, as models stream.
        for size in 1..8 {
            let cuts: Vec<usize> = boundaries
                .iter()
                .copied()
                .filter(|i| i % size == 0)
                .collect();
            let (out, _) = streamed(&rules, text, &cuts).unwrap();
            assert_eq!(out, expected, "pieces of {size}");
        }
    }

    #[test]
    fn a_stream_is_cut_at_the_maximum_length() {
        let rules = rules(r#"{"output": {"max_chars": 10}}"#, Placeholders::default());
        let (out, cut) = streamed(&rules, "héllo wörld and more", &[3, 8, 15]).unwrap();
        assert_eq!(out, "héllo wörl");
        assert!(cut);
        let (body, actions) = rules
            .check_completion(&completion("héllo wörld and more"))
            .unwrap();
        let body: Value = serde_json::from_slice(&body.unwrap()).unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "héllo wörl");
        assert_eq!(body["choices"][0]["finish_reason"], "length");
        assert_eq!(actions.as_slice()[0].taken, Taken::Truncated);
    }

    #[test]
    fn denied_expressions_are_found_across_pieces() {
        let rules = rules(
            r#"{"output": {"deny_regex": ["launch code \\d{4}"]}}"#,
            Placeholders::default(),
        );
        let text = "the launch code 1234 is secret";
        let refused = streamed(&rules, text, &[8, 14, 17]).unwrap_err();
        assert_eq!(refused.blocked.rule.label(), "p/output.deny_regex[0]");
        assert!(rules.check_completion(&completion(text)).is_err());
    }

    #[test]
    fn a_missing_citation_blocks_or_is_flagged() {
        let block = rules(
            r#"{"output": {"require_citation": {"format": "url"}}}"#,
            Placeholders::default(),
        );
        assert!(block.check_completion(&completion("trust me")).is_err());
        assert!(
            block
                .check_completion(&completion("see https://example.com/doc"))
                .unwrap()
                .0
                .is_none()
        );
        assert!(streamed(&block, "trust me", &[3]).is_err());
        assert!(streamed(&block, "see https://example.com/doc", &[8, 12]).is_ok());
        let flag = rules(
            r#"{"output": {"require_citation": {"format": "bracket", "action": "flag"}}}"#,
            Placeholders::default(),
        );
        let (_, actions) = flag.check_completion(&completion("trust me")).unwrap();
        assert_eq!(actions.as_slice()[0].taken, Taken::Flagged);
        let mut actions = Actions::default();
        actions.extend(flag.stream().actions().clone());
        assert!(actions.is_empty());
    }
}
