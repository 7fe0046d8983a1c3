//! Guardrail policies as the GraphQL API shows them: the policy set at one level (the
//! organization, a team or a key) and the way to set it, as JSON documents (a policy is nested
//! lists and maps, validated whole by the auth service); and a policy tried on a sample prompt.

use async_graphql::{Context, Error, Object, SimpleObject};
use serde_json::Value;
use tollgate_common::guardrails::GuardrailPolicy;

use crate::errors::{OrGraphql, bad_input};
use crate::levels::{PolicyLevelInput, policy_target};
use crate::schema::{caller, service};

/// Longest sample prompt a preview takes, in bytes.
pub const MAX_PREVIEW_PROMPT_BYTES: usize = 32 * 1024;

/// What a policy's input rules do to a sample prompt.
#[derive(SimpleObject)]
#[graphql(name = "GuardrailPreview")]
pub struct GuardrailPreviewObject {
    /// The prompt as the provider would receive it.
    pub text: String,
    /// The rule that would refuse the request (`input.deny_regex[0]`), if one would.
    pub blocked_by: Option<String>,
    /// What each rule did: `[{"policy", "rule", "taken", "entities"}]`.
    pub actions: Value,
}

/// Reads `value` as a policy; a document that is not one is the `policy` argument's fault,
/// with the path inside it in the message.
fn parse_policy(value: Value) -> Result<GuardrailPolicy, Error> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = if path == "." {
            format!("Not a guardrail policy: {inner}")
        } else {
            format!("Not a guardrail policy: {path}: {inner}")
        };
        bad_input("policy", message)
    })
}

fn as_json(policy: &GuardrailPolicy) -> Value {
    serde_json::to_value(policy).unwrap_or_default()
}

#[derive(Default)]
pub struct GuardrailsQuery;

#[Object]
impl GuardrailsQuery {
    /// The guardrail policy set at one level (not combined with the levels above), as JSON:
    /// `{}` when none is set.
    async fn guardrail_policy(
        &self,
        ctx: &Context<'_>,
        level: PolicyLevelInput,
    ) -> Result<Value, Error> {
        let policy = service(ctx)
            .guardrail_policy(caller(ctx)?, policy_target(&level)?)
            .await
            .or_graphql()?;
        Ok(as_json(&policy))
    }

    /// What `policy`'s input rules that need no outside call (PII, keywords, expressions) do
    /// to `prompt`: nothing is stored or sent anywhere. Any member may try a policy.
    async fn guardrail_preview(
        &self,
        ctx: &Context<'_>,
        policy: Value,
        prompt: String,
    ) -> Result<GuardrailPreviewObject, Error> {
        caller(ctx)?;
        let policy = parse_policy(policy)?;
        if let Some((field, message)) = policy.problem() {
            return Err(bad_input(&field, message));
        }
        if prompt.len() > MAX_PREVIEW_PROMPT_BYTES {
            return Err(bad_input(
                "prompt",
                format!("A sample prompt is at most {MAX_PREVIEW_PROMPT_BYTES} bytes."),
            ));
        }
        let preview = tollgate_guardrails::preview(&policy, &prompt);
        Ok(GuardrailPreviewObject {
            text: preview.text,
            blocked_by: preview.blocked_by,
            actions: serde_json::to_value(&preview.actions).unwrap_or_default(),
        })
    }
}

#[derive(Default)]
pub struct GuardrailsMutation;

#[Object]
impl GuardrailsMutation {
    /// Replaces the guardrail policy set at one level (`{}` removes it) and returns it. The
    /// organization's needs an admin, a team's a team admin, a key's whoever may change the
    /// key; an error's `extensions.field` names the part of the policy at fault.
    async fn set_guardrail_policy(
        &self,
        ctx: &Context<'_>,
        level: PolicyLevelInput,
        policy: Value,
    ) -> Result<Value, Error> {
        let caller = caller(ctx)?;
        let target = policy_target(&level)?;
        let policy = parse_policy(policy)?;
        let set = service(ctx)
            .set_guardrail_policy(caller, target, policy)
            .await
            .or_graphql()?;
        Ok(as_json(&set))
    }
}
