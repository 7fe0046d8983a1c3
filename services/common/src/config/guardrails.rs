//! The `guardrails` section: policies the deployment applies to every organization's requests,
//! or to one organization's, beneath what organizations, teams and keys set for themselves
//! (see [`crate::guardrails`] for how levels combine).

use serde::Deserialize;

use super::{ConfigProblem, problem};
use crate::guardrails::{GuardrailPolicy, InputRules, NamedPolicy, OutputRules, WebhookRule};
use crate::ids::OrgId;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardrailsConfig {
    pub policies: Vec<ConfiguredPolicy>,
}

/// One policy of the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfiguredPolicy {
    /// Named on every action it takes, in usage events and request logs.
    pub name: String,
    /// `all`, or one organization's id.
    #[serde(default = "all")]
    pub applies_to: String,
    #[serde(default)]
    pub input: InputRules,
    #[serde(default)]
    pub output: OutputRules,
    #[serde(default)]
    pub restore_in_answer: Option<bool>,
    #[serde(default)]
    pub webhook: Option<WebhookRule>,
}

fn all() -> String {
    "all".into()
}

impl ConfiguredPolicy {
    /// The policy with its name.
    pub fn named(&self) -> NamedPolicy {
        NamedPolicy {
            name: self.name.clone(),
            policy: GuardrailPolicy {
                input: self.input.clone(),
                output: self.output.clone(),
                restore_in_answer: self.restore_in_answer,
                webhook: self.webhook.clone(),
            },
        }
    }

    /// The organization it is limited to; `None` for every organization.
    pub fn organization(&self) -> Option<OrgId> {
        if self.applies_to == "all" {
            None
        } else {
            self.applies_to.parse().ok()
        }
    }
}

pub(super) fn validate_guardrails(config: &GuardrailsConfig, problems: &mut Vec<ConfigProblem>) {
    let mut names = std::collections::BTreeSet::new();
    for (i, policy) in config.policies.iter().enumerate() {
        let path = format!("guardrails.policies[{i}]");
        if policy.name.trim().is_empty() || policy.name.len() > 100 {
            problems.push(problem(
                format!("{path}.name"),
                "must be 1 to 100 characters",
            ));
        } else if !names.insert(policy.name.clone()) {
            problems.push(problem(
                format!("{path}.name"),
                "another policy has this name",
            ));
        }
        if policy.applies_to != "all" && policy.organization().is_none() {
            problems.push(problem(
                format!("{path}.applies_to"),
                "must be `all` or an organization id",
            ));
        }
        if let Some((field, message)) = policy.named().policy.problem() {
            problems.push(problem(format!("{path}.{field}"), message));
        }
    }
}
