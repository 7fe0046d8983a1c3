//! Guardrails: what organizations ask the gateway to check in prompts and answers, applied.
//!
//! - [`detect`]: the personal-data and secret detectors.
//! - [`policy`]: every policy that applies to a key's requests, merged and compiled once.
//! - [`text`]: one text against one side of a policy; placeholders and their restoration.
//! - [`body`]: where the text is in OpenAI-shaped requests and answers.
//! - [`request`]: the input check; [`answer`]: whole answers and streams.
//!
//! The gateway's guardrails stage (wired by the binary) asks [`Guardrails::policy`] for the
//! caller's policy, runs [`request::check`] on the body, and hands the answer checks
//! ([`answer::AnswerRules`]) to whatever answers: the provider's relay or the cache.

pub mod answer;
pub mod body;
pub mod detect;
pub mod policy;
pub mod request;
pub mod text;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use tollgate_common::config::GuardrailsConfig;
use tollgate_common::{GuardrailAction, GuardrailPolicy, KeyContext, NamedPolicy, OrgId};

pub use policy::Policy;

/// The deployment's policies, and the way to each caller's merged policy.
#[derive(Default)]
pub struct Guardrails {
    everyone: Vec<NamedPolicy>,
    by_org: HashMap<OrgId, Vec<NamedPolicy>>,
}

/// What a key context keeps once its policy is compiled.
struct Prepared(Option<Arc<Policy>>);

impl Guardrails {
    pub fn new(config: &GuardrailsConfig) -> Guardrails {
        let mut guardrails = Guardrails::default();
        for configured in &config.policies {
            match configured.organization() {
                None => guardrails.everyone.push(configured.named()),
                Some(org) => guardrails
                    .by_org
                    .entry(org)
                    .or_default()
                    .push(configured.named()),
            }
        }
        guardrails
    }

    /// The policy `key`'s requests are checked against, `None` when none applies. Compiled on
    /// the key context's first request and kept with it, so a request pays one lookup.
    pub fn policy(&self, key: &KeyContext) -> Option<Arc<Policy>> {
        let prepared = key.guardrails.prepared.get_or_init(|| {
            let org = key.org_id.and_then(|org| self.by_org.get(&org));
            let levels = self
                .everyone
                .iter()
                .chain(org.into_iter().flatten())
                .chain(&key.guardrails.levels);
            let policy = Policy::compile(levels);
            Arc::new(Prepared((!policy.is_empty()).then(|| Arc::new(policy))))
        });
        prepared.downcast_ref::<Prepared>()?.0.clone()
    }
}

/// What one policy does to a sample prompt.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// The prompt as a provider would receive it.
    pub text: String,
    /// The rule that would refuse it (`policy/rule`), if one would.
    pub blocked_by: Option<String>,
    /// Why, when it would be refused.
    pub reason: Option<String>,
    pub actions: Vec<GuardrailAction>,
}

/// Applies `policy`'s input rules that need no outside call (personal data, keywords,
/// expressions, allowed models aside) to `prompt`.
pub fn preview(policy: &GuardrailPolicy, prompt: &str) -> Preview {
    let compiled = Policy::compile([&NamedPolicy {
        name: "policy".into(),
        policy: policy.clone(),
    }]);
    let mut placeholders = text::Placeholders::default();
    let mut actions = text::Actions::default();
    match text::check(&compiled.input, prompt, &mut placeholders, &mut actions) {
        Ok(redacted) => Preview {
            text: redacted.unwrap_or_else(|| prompt.to_owned()),
            blocked_by: None,
            reason: None,
            actions: actions.into_vec(),
        },
        Err(blocked) => {
            let refused = request::Refused::new(blocked, actions);
            Preview {
                text: prompt.to_owned(),
                blocked_by: Some(refused.blocked.rule.label()),
                reason: Some(refused.blocked.reason),
                actions: refused.actions.into_vec(),
            }
        }
    }
}
