//! Guardrail policies set on an organization, a team or a key, with the same levels and roles
//! as cache policies.

use tollgate_common::guardrails::GuardrailPolicy;

use super::levels::PolicyTarget;
use super::{AuthService, Caller};
use crate::error::AuthError;

/// Largest policy document stored at one level, serialized. Every key's context carries its
/// levels' policies (and crosses processes in split deployments), so one level cannot make
/// every key of its organization heavy; the lists' own bounds allow more than this in total.
pub const MAX_GUARDRAIL_POLICY_BYTES: usize = 32 * 1024;

impl AuthService {
    /// The guardrail policy set at one level (not combined with the levels above).
    pub async fn guardrail_policy(
        &self,
        caller: &Caller,
        target: PolicyTarget<'_>,
    ) -> Result<GuardrailPolicy, AuthError> {
        let (level, what) = self.policy_level(caller, target).await?;
        self.store
            .guardrail_policy(caller.org, level)
            .await?
            .ok_or(AuthError::NotFound(what))
    }

    /// Replaces the guardrail policy set at one level; an empty policy removes it. Keys'
    /// cached contexts are refreshed everywhere, as for cache policies.
    pub async fn set_guardrail_policy(
        &self,
        caller: &Caller,
        target: PolicyTarget<'_>,
        policy: GuardrailPolicy,
    ) -> Result<GuardrailPolicy, AuthError> {
        let (level, what) = self
            .policy_level_to_set(caller, target, "guardrail policy")
            .await?;
        if let Some((field, message)) = policy.problem() {
            return Err(AuthError::invalid(field, message));
        }
        let size = serde_json::to_string(&policy).map_or(usize::MAX, |json| json.len());
        if size > MAX_GUARDRAIL_POLICY_BYTES {
            return Err(AuthError::invalid(
                "policy",
                format!(
                    "The policy takes {size} bytes as JSON; at most {MAX_GUARDRAIL_POLICY_BYTES} \
                     are stored per level."
                ),
            ));
        }
        if let Some(webhook) = &policy.webhook {
            // The gateway checks again on every call; this answers now, rather than with
            // every request failing (or passing, when it fails open) later.
            if let Err(refusal) = self.outbound.check_url_and_resolve(&webhook.url).await {
                return Err(AuthError::invalid(
                    "webhook.url",
                    format!("`webhook.url` must be a public http(s) URL: {refusal}."),
                ));
            }
        }
        let stale = self
            .store
            .set_guardrail_policy(caller.org, level, &policy, &caller.actor())
            .await?
            .ok_or(AuthError::NotFound(what))?;
        self.stale_keys(stale).await;
        Ok(policy)
    }
}
