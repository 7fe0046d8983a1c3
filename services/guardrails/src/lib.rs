//! Guardrails: what organizations ask the gateway to check in prompts and answers, applied.
//!
//! - [`detect`]: the personal-data and secret detectors.
//! - [`policy`]: every policy that applies to a key's requests, merged and compiled once.
//! - [`text`]: one text against one side of a policy; placeholders and their restoration.
//! - [`body`]: where the text is in OpenAI-shaped requests and answers.
//! - [`request`]: the input check; [`answer`]: whole answers and streams.
//! - [`topics`] and [`webhook`]: the checks that call out (an embedder, the organization's
//!   endpoint), applied by [`Guardrails::check_request`] and [`answer::AnswerRules::check`].
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
pub mod topics;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use tollgate_common::config::GuardrailsConfig;
use tollgate_common::guardrails::bounds;
use tollgate_common::outbound::{OutboundClient, OutboundPolicy};
use tollgate_common::{GuardrailAction, GuardrailPolicy, KeyContext, NamedPolicy, OrgId, Taken};

pub use policy::Policy;
use request::{Checked, Refused, Request};
use text::Blocked;
use topics::TopicEmbedder;
use webhook::{Call, Stage, Verdict};

/// The deployment's policies, the way to each caller's merged policy, and what the checks
/// that call out use.
pub struct Guardrails {
    everyone: Vec<NamedPolicy>,
    by_org: HashMap<OrgId, Vec<NamedPolicy>>,
    /// For webhooks: URLs tenants chose, checked as they connect.
    client: OutboundClient,
    /// For denied topics; without one, a policy with topics refuses (it cannot be checked).
    embedder: Option<Arc<dyn TopicEmbedder>>,
}

/// Bodies larger than this are scanned on a blocking thread.
const OFFLOAD_BYTES: usize = 64 * 1024;

/// What a key context keeps once its policy is compiled.
struct Prepared(Option<Arc<Policy>>);

impl Guardrails {
    pub fn new(
        config: &GuardrailsConfig,
        outbound: &OutboundPolicy,
        embedder: Option<Arc<dyn TopicEmbedder>>,
    ) -> Result<Guardrails, String> {
        let timeout = Duration::from_millis(bounds::WEBHOOK_TIMEOUT_MS);
        let client = OutboundClient::new(outbound, timeout)
            .map_err(|error| format!("the webhook client: {error}"))?;
        let mut guardrails = Guardrails {
            everyone: Vec::new(),
            by_org: HashMap::new(),
            client,
            embedder,
        };
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
        Ok(guardrails)
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

    /// The input check ([`request::check`]), then the denied topics and the organization's
    /// webhook, which see the prompt as it would be sent.
    pub async fn check_request(
        &self,
        policy: &Arc<Policy>,
        request: &Request<'_>,
        call: &Call,
        prompt_tokens: impl FnOnce() -> u64,
    ) -> Result<Checked, Refused> {
        let wants_text = !policy.input.topics.is_empty();
        let tokens = policy.max_input_tokens.as_ref().map(|_| prompt_tokens());
        let mut checked = if request.body.len() > OFFLOAD_BYTES {
            // A large body is scanned off the async worker, which other requests share.
            let policy = policy.clone();
            let (model, body) = (request.model.to_owned(), request.body.to_vec());
            let (generates, max_output_tokens) = (request.generates, request.max_output_tokens);
            let scan = move || {
                let request = Request {
                    model: &model,
                    body: &body,
                    generates,
                    max_output_tokens,
                };
                request::check(&policy, &request, || tokens.unwrap_or(0), wants_text)
            };
            match tokio::task::spawn_blocking(scan).await {
                Ok(result) => result?,
                Err(_) => {
                    let blocked = Blocked {
                        rule: policy::RuleName {
                            policy: "guardrails".into(),
                            rule: "input".into(),
                        },
                        reason: "the prompt could not be checked".into(),
                    };
                    return Err(Refused::new(blocked, text::Actions::default()));
                }
            }
        } else {
            request::check(policy, request, || tokens.unwrap_or(0), wants_text)?
        };
        if let Some(text) = checked.text.take()
            && let Err(blocked) = self.check_topics(&policy.input, &text).await
        {
            return Err(Refused::new(blocked, checked.actions));
        }
        let Some((hook, rule)) = &policy.webhook else {
            return Ok(checked);
        };
        let sent = checked.body.as_deref().unwrap_or(request.body);
        let Ok(mut members) = serde_json::from_slice::<Map<String, Value>>(sent) else {
            return Ok(checked);
        };
        let verdict = webhook::ask(
            &self.client,
            hook,
            rule,
            Stage::Input,
            call,
            &Value::Object(members.clone()),
        )
        .await;
        match verdict {
            Verdict::Allow => {}
            Verdict::Block(blocked) => return Err(Refused::new(blocked, checked.actions)),
            Verdict::FailedOpen(failure) => {
                tracing::warn!(policy = %rule.label(), %failure, "guardrail webhook failed open");
                checked.actions.add(rule, Taken::Flagged, None);
            }
            Verdict::Modify(new) => {
                // Only the prompt's text may change: not the model, limits or anything
                // admission and budgets were decided on.
                for member in body::REQUEST_TEXT {
                    if let Some(value) = new.get(*member) {
                        members.insert((*member).to_owned(), value.clone());
                    }
                }
                checked.body = serde_json::to_vec(&members).ok();
                checked.actions.add(rule, Taken::Modified, None);
            }
        }
        Ok(checked)
    }

    pub(crate) fn client(&self) -> &OutboundClient {
        &self.client
    }

    /// Whether `text` is on one of `side`'s denied topics. Without an embedder, or with one
    /// that fails, the rule cannot be checked and refuses.
    pub(crate) async fn check_topics(
        &self,
        side: &policy::Side,
        text: &str,
    ) -> Result<(), Blocked> {
        let Some(rule) = side.topics.first().map(|(_, rule)| rule) else {
            return Ok(());
        };
        let unavailable = |failure: String| {
            tracing::warn!(policy = %rule.label(), %failure, "denied topics could not be checked");
            Blocked {
                rule: rule.clone(),
                reason: "denied topics could not be checked".into(),
            }
        };
        let Some(embedder) = &self.embedder else {
            return Err(unavailable("no embedder".into()));
        };
        topics::check(side, embedder.as_ref(), text)
            .await
            .map_err(unavailable)?
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
