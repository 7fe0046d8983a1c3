//! A request's prompt checked before it leaves: the model, the token maximums, denied
//! keywords and expressions, then personal data (redacted, blocked or logged).

use serde_json::{Map, Value};
use tollgate_common::Taken;

use crate::body;
use crate::policy::Policy;
use crate::text::{self, Actions, Blocked, Placeholders};

/// What the input check reads of a request.
pub struct Request<'a> {
    /// The model name the client asked for.
    pub model: &'a str,
    /// The OpenAI-shaped body.
    pub body: &'a [u8],
    /// Whether the endpoint generates text (chat, completions): only then do output maximums
    /// apply.
    pub generates: bool,
    /// The most output tokens the request asks for.
    pub max_output_tokens: Option<u32>,
}

/// A request that may go on.
#[derive(Debug, Default)]
pub struct Checked {
    /// The body to send instead of the client's, when something in it changed.
    pub body: Option<Vec<u8>>,
    /// What was redacted, to be put back into the answer when the policy says so.
    pub placeholders: Placeholders,
    pub actions: Actions,
    /// The prompt's text as sent, when a later check reads it whole (topics, a webhook).
    pub text: Option<String>,
}

/// A request a rule refused, with what was done before it was.
#[derive(Debug)]
pub struct Refused {
    pub blocked: Blocked,
    pub actions: Actions,
}

impl Refused {
    pub fn new(blocked: Blocked, mut actions: Actions) -> Refused {
        actions.add(&blocked.rule, Taken::Blocked, None);
        Refused { blocked, actions }
    }
}

/// Checks `request` against `policy`'s input rules; `prompt_tokens` is asked only when a
/// maximum applies.
pub fn check(
    policy: &Policy,
    request: &Request<'_>,
    prompt_tokens: impl FnOnce() -> u64,
    wants_text: bool,
) -> Result<Checked, Refused> {
    let mut checked = Checked::default();
    if let Some(rule) = policy.refuses_model(request.model) {
        return Err(Refused::new(
            Blocked {
                rule: rule.clone(),
                reason: format!("the model `{}` is not allowed", request.model),
            },
            checked.actions,
        ));
    }
    let mut cap_output = None;
    if let Some((max, rule)) = &policy.max_output_tokens
        && request.generates
    {
        match request.max_output_tokens {
            Some(asked) if asked > *max => {
                return Err(Refused::new(
                    Blocked {
                        rule: rule.clone(),
                        reason: format!("at most {max} output tokens may be asked for"),
                    },
                    checked.actions,
                ));
            }
            Some(_) => {}
            None => cap_output = Some(*max),
        }
    }
    if let Some((max, rule)) = &policy.max_input_tokens {
        let tokens = prompt_tokens();
        if tokens > *max {
            return Err(Refused::new(
                Blocked {
                    rule: rule.clone(),
                    reason: format!(
                        "the prompt has about {tokens} tokens; at most {max} are allowed"
                    ),
                },
                checked.actions,
            ));
        }
    }
    let side = &policy.input;
    if side.patterns.is_empty() && side.detectors.is_none() && cap_output.is_none() && !wants_text {
        return Ok(checked);
    }
    let Ok(mut members) = serde_json::from_slice::<Map<String, Value>>(request.body) else {
        // The gateway parsed this body already; one that is not an object has no text.
        return Ok(checked);
    };
    let mut changed = false;
    if !side.patterns.is_empty() || side.detectors.is_some() {
        let placeholders = &mut checked.placeholders;
        let actions = &mut checked.actions;
        let result = body::rewrite_request(&mut members, &mut |text| {
            text::check(side, text, placeholders, actions)
        });
        match result {
            Ok(redacted) => changed |= redacted,
            Err(blocked) => return Err(Refused::new(blocked, checked.actions)),
        }
    }
    if let Some(max) = cap_output {
        // A maximum the client did not set is set for it, so that the answer keeps to it.
        members.insert("max_tokens".into(), Value::from(max));
        changed = true;
    }
    if wants_text {
        checked.text = Some(body::request_text(&members));
    }
    if changed {
        checked.body = serde_json::to_vec(&members).ok();
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_common::{EntityKind, GuardrailPolicy, NamedPolicy};

    fn policy(json: &str) -> Policy {
        let policy: GuardrailPolicy = serde_json::from_str(json).unwrap();
        Policy::compile([&NamedPolicy {
            name: "p".into(),
            policy,
        }])
    }

    fn request(body: &str) -> Request<'_> {
        Request {
            model: "gpt-4o",
            body: body.as_bytes(),
            generates: true,
            max_output_tokens: None,
        }
    }

    #[test]
    fn denied_expressions_refuse_and_name_the_rule() {
        let policy = policy(r#"{"input": {"deny_regex": ["(?i)internal use only"]}}"#);
        let body = r#"{"model": "gpt-4o", "messages": [{"role": "user", "content": "INTERNAL USE ONLY: plan"}]}"#;
        let refused = check(&policy, &request(body), || 0, false).unwrap_err();
        assert_eq!(refused.blocked.rule.label(), "p/input.deny_regex[0]");
        assert_eq!(refused.actions.as_slice()[0].taken, Taken::Blocked);
        let fine = r#"{"model": "gpt-4o", "messages": [{"role": "user", "content": "public"}]}"#;
        let checked = check(&policy, &request(fine), || 0, false).unwrap();
        assert!(checked.body.is_none());
    }

    #[test]
    fn token_maximums_refuse_or_cap() {
        let policy = policy(r#"{"input": {"max_tokens": 10, "max_output_tokens": 100}}"#);
        let body = r#"{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}"#;
        let refused = check(&policy, &request(body), || 11, false).unwrap_err();
        assert_eq!(refused.blocked.rule.rule, "input.max_tokens");
        let mut asked = request(body);
        asked.max_output_tokens = Some(101);
        let refused = check(&policy, &asked, || 1, false).unwrap_err();
        assert_eq!(refused.blocked.rule.rule, "input.max_output_tokens");
        let checked = check(&policy, &request(body), || 1, false).unwrap();
        let sent: Value = serde_json::from_slice(&checked.body.unwrap()).unwrap();
        assert_eq!(sent["max_tokens"], 100);
    }

    #[test]
    fn no_text_escapes_the_check_by_what_it_says() {
        let policy = policy(r#"{"input": {"pii": {"credit_card": "block"}}}"#);
        for content in [
            "data: my card is 4111 1111 1111 1111",
            "data:image/png;base64,4111 1111 1111 1111",
        ] {
            let body = json_body(content);
            assert!(
                check(&policy, &request(&body), || 0, false).is_err(),
                "{content}"
            );
        }
    }

    fn json_body(content: &str) -> String {
        serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": content}]})
            .to_string()
    }

    #[test]
    fn models_are_refused_by_name() {
        let policy = policy(r#"{"input": {"denied_models": ["gpt-4*"]}}"#);
        let refused = check(&policy, &request("{}"), || 0, false).unwrap_err();
        assert_eq!(refused.blocked.rule.rule, "input.denied_models[0]");
        assert!(refused.blocked.reason.contains("gpt-4o"));
    }

    #[test]
    fn entity_types_without_an_action_are_not_looked_for() {
        let policy = policy(r#"{"input": {"pii": {"email": "allow"}}}"#);
        assert!(policy.input.detectors.is_none());
        assert!(!policy.input.pii.contains_key(&EntityKind::Email));
    }
}
