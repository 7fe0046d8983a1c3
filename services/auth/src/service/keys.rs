//! Virtual keys: created, listed, changed, revoked and rotated.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use tollgate_common::{KeyId, OrgId, TeamId};

use super::limits::validate_limit;
use super::{
    Actor, AuthService, Caller, MAX_METADATA_BYTES, MAX_MODELS, MAX_TAGS, parse_id, parse_usd,
    validate_name,
};
use crate::error::AuthError;
use crate::roles::Role;
use crate::secrets::generate_key;
use crate::store::{KeyChanges, KeyRecord, KeyStatus, NewKey, now_ms};

/// A key as the API shows it: never the secret, with its current status.
#[derive(Debug, Serialize)]
pub struct KeyView {
    #[serde(flatten)]
    pub key: KeyRecord,
    pub status: KeyStatus,
}

impl From<KeyRecord> for KeyView {
    fn from(key: KeyRecord) -> Self {
        let status = key.status(now_ms());
        KeyView { key, status }
    }
}

/// A key just created or rotated: the secret, shown this once.
#[derive(Debug, Serialize)]
pub struct IssuedKey {
    /// The full key; it cannot be shown again.
    pub key: String,
    #[serde(flatten)]
    pub view: KeyView,
}

/// Settings of a new key (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    #[serde(default)]
    pub name: Option<String>,
    /// The team the key belongs to; the organization's first team by default.
    #[serde(default)]
    pub team_id: Option<String>,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// Unix milliseconds.
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub rpm_limit: Option<i64>,
    #[serde(default)]
    pub tpm_limit: Option<i64>,
    /// USD, as a string (`"25.00"`) or a number.
    #[serde(default)]
    pub budget_usd: Option<serde_json::Value>,
    #[serde(default)]
    pub budget_period: Option<String>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A partial update of a key; `null` clears a nullable field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub expires_at: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub rpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub tpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub budget_usd: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    pub budget_period: Option<Option<String>>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// Tells "absent" (`None`) from "null" (`Some(None)`).
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the old key keeps working; the deployment's default when absent.
    #[serde(default)]
    pub grace_seconds: Option<u64>,
}

impl AuthService {
    pub async fn keys(
        &self,
        caller: &Caller,
        team: Option<&str>,
    ) -> Result<Vec<KeyView>, AuthError> {
        let team = match team {
            Some(team) => Some(self.team(caller, team).await?.id),
            None => None,
        };
        Ok(self
            .store
            .keys(caller.org, team)
            .await?
            .into_iter()
            .map(KeyView::from)
            .collect())
    }

    pub async fn key(&self, caller: &Caller, key: &str) -> Result<KeyView, AuthError> {
        Ok(self.key_record(caller.org, key).await?.into())
    }

    pub(super) async fn key_record(&self, org: OrgId, key: &str) -> Result<KeyRecord, AuthError> {
        let id = parse_id::<KeyId>(key, "key")?;
        self.store
            .key(org, id)
            .await?
            .ok_or(AuthError::NotFound("key"))
    }

    /// Creates a key in `org`: through the API (`actor` a user, `org` theirs) or the CLI.
    pub async fn create_key(
        &self,
        actor: &Actor,
        org: OrgId,
        spec: KeySpec,
    ) -> Result<IssuedKey, AuthError> {
        let team = match &spec.team_id {
            Some(team) => {
                let team = parse_id::<TeamId>(team, "team")?;
                self.store
                    .team(org, team)
                    .await?
                    .ok_or(AuthError::NotFound("team"))?
            }
            None => self
                .store
                .teams(org)
                .await?
                .into_iter()
                .next()
                .ok_or(AuthError::NotFound("team"))?,
        };
        let created_by = match actor {
            Actor::User(caller) => {
                caller.require(Role::Member, "create keys")?;
                if !caller.role.at_least(Role::Admin)
                    && !self
                        .store
                        .team_role(org, team.id, caller.user)
                        .await?
                        .is_some_and(|r| r.at_least(Role::Member))
                {
                    return Err(AuthError::Forbidden(
                        "You can create keys only in teams where you are a member.".into(),
                    ));
                }
                Some(caller.user)
            }
            Actor::Operator => None,
        };
        self.check_ceiling(
            org,
            ("rpm_limit", "tpm_limit"),
            spec.rpm_limit,
            spec.tpm_limit,
        )
        .await?;
        let generated = generate_key();
        let new = NewKey {
            name: validate_name("name", spec.name.as_deref().unwrap_or("unnamed key"))?,
            key_hash: generated.hash,
            display_prefix: generated.display_prefix,
            allowed_models: validate_models(spec.allowed_models.unwrap_or_default())?,
            expires_at: validate_expiry(spec.expires_at)?,
            rpm_limit: validate_limit("rpm_limit", spec.rpm_limit)?,
            tpm_limit: validate_limit("tpm_limit", spec.tpm_limit)?,
            budget_usd: spec.budget_usd.as_ref().map(parse_usd).transpose()?,
            budget_period: validate_period(spec.budget_period)?,
            tags: validate_tags(spec.tags.unwrap_or_default())?,
            metadata: validate_metadata(spec.metadata.unwrap_or_default())?,
        };
        let record = self
            .store
            .create_key(org, team.id, created_by, new, &actor.label())
            .await?;
        Ok(IssuedKey {
            key: generated.secret,
            view: record.into(),
        })
    }

    pub async fn update_key(
        &self,
        caller: &Caller,
        key: &str,
        patch: KeyPatch,
    ) -> Result<KeyView, AuthError> {
        let record = self.key_record(caller.org, key).await?;
        self.require_key_manager(caller, &record).await?;
        self.check_ceiling(
            caller.org,
            ("rpm_limit", "tpm_limit"),
            patch.rpm_limit.flatten(),
            patch.tpm_limit.flatten(),
        )
        .await?;
        let changes = KeyChanges {
            name: patch.name.map(|n| validate_name("name", &n)).transpose()?,
            allowed_models: patch.allowed_models.map(validate_models).transpose()?,
            expires_at: patch.expires_at.map(validate_expiry).transpose()?,
            rpm_limit: patch
                .rpm_limit
                .map(|v| validate_limit("rpm_limit", v))
                .transpose()?,
            tpm_limit: patch
                .tpm_limit
                .map(|v| validate_limit("tpm_limit", v))
                .transpose()?,
            budget_usd: patch
                .budget_usd
                .map(|v| v.as_ref().map(parse_usd).transpose())
                .transpose()?,
            budget_period: patch.budget_period.map(validate_period).transpose()?,
            tags: patch.tags.map(validate_tags).transpose()?,
            metadata: patch.metadata.map(validate_metadata).transpose()?,
            disabled: patch.disabled,
        };
        let updated = self
            .store
            .update_key(caller.org, record.id, changes, &caller.actor())
            .await?
            .ok_or(AuthError::NotFound("key"))?;
        self.feed.key_changed(&updated.key_hash).await;
        Ok(updated.into())
    }

    /// Revokes a key: through the API (`actor` a user of `org`) or the CLI.
    pub async fn revoke_key(
        &self,
        actor: &Actor,
        org: OrgId,
        key: &str,
    ) -> Result<KeyView, AuthError> {
        let record = self.key_record(org, key).await?;
        if let Actor::User(caller) = actor {
            self.require_key_manager(caller, &record).await?;
        }
        let revoked = self
            .store
            .revoke_key(org, record.id, &actor.label())
            .await?
            .ok_or(AuthError::NotFound("key"))?;
        self.feed.key_changed(&revoked.key_hash).await;
        Ok(revoked.into())
    }

    /// Issues a new secret for a key; the old one works for the grace period, then stops.
    pub async fn rotate_key(
        &self,
        caller: &Caller,
        key: &str,
        request: RotateRequest,
    ) -> Result<IssuedKey, AuthError> {
        let record = self.key_record(caller.org, key).await?;
        self.require_key_manager(caller, &record).await?;
        match record.status(now_ms()) {
            KeyStatus::Active => {}
            KeyStatus::Rotating => {
                return Err(AuthError::Conflict(
                    "This key was already rotated; rotate its replacement instead.".into(),
                ));
            }
            _ => {
                return Err(AuthError::Conflict(
                    "Only an active key can be rotated.".into(),
                ));
            }
        }
        let grace = request
            .grace_seconds
            .unwrap_or(self.config.rotation_grace_secs);
        if grace > 30 * 24 * 3600 {
            return Err(AuthError::invalid(
                "grace_seconds",
                "must be at most 30 days (2592000)",
            ));
        }
        let generated = generate_key();
        let stops_at = now_ms().saturating_add(i64::try_from(grace * 1000).unwrap_or(i64::MAX));
        let (old, new) = self
            .store
            .rotate_key(
                caller.org,
                record.id,
                generated.hash,
                generated.display_prefix,
                stops_at,
                &caller.actor(),
            )
            .await?
            .ok_or(AuthError::NotFound("key"))?;
        self.feed.key_changed(&old.key_hash).await;
        Ok(IssuedKey {
            key: generated.secret,
            view: new.into(),
        })
    }

    pub(super) async fn require_key_manager(
        &self,
        caller: &Caller,
        key: &KeyRecord,
    ) -> Result<(), AuthError> {
        let own = key.created_by == Some(caller.user) && caller.role.at_least(Role::Member);
        if own || caller.role.at_least(Role::Admin) {
            return Ok(());
        }
        if self
            .store
            .team_role(caller.org, key.team_id, caller.user)
            .await?
            == Some(Role::Admin)
        {
            return Ok(());
        }
        Err(AuthError::Forbidden(
            "You can change only keys you created, or those of teams you administer.".into(),
        ))
    }
}

fn validate_models(models: Vec<String>) -> Result<Vec<String>, AuthError> {
    if models.len() > MAX_MODELS {
        return Err(AuthError::invalid(
            "allowed_models",
            format!("at most {MAX_MODELS} entries"),
        ));
    }
    for model in &models {
        if model.is_empty() || model.len() > 200 || model.chars().any(char::is_control) {
            return Err(AuthError::invalid(
                "allowed_models",
                "each entry must be a model name or glob of 1 to 200 characters",
            ));
        }
    }
    Ok(models)
}

fn validate_expiry(expires_at: Option<i64>) -> Result<Option<i64>, AuthError> {
    match expires_at {
        Some(at) if at <= now_ms() => Err(AuthError::invalid(
            "expires_at",
            "`expires_at` (Unix milliseconds) must be in the future.",
        )),
        other => Ok(other),
    }
}

fn validate_period(period: Option<String>) -> Result<Option<String>, AuthError> {
    match period.as_deref() {
        None | Some("daily" | "weekly" | "monthly" | "lifetime") => Ok(period),
        Some(_) => Err(AuthError::invalid(
            "budget_period",
            "`budget_period` must be daily, weekly, monthly or lifetime.",
        )),
    }
}

fn validate_tags(tags: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AuthError> {
    if tags.len() > MAX_TAGS {
        return Err(AuthError::invalid(
            "tags",
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    for (key, value) in &tags {
        // Tags travel with every usage event into the ledger's tag rollups, whose text
        // columns cannot hold NUL (PostgreSQL) and whose index keys must stay small.
        if key.is_empty()
            || key.len() > 64
            || value.len() > 256
            || key.chars().chain(value.chars()).any(char::is_control)
        {
            return Err(AuthError::invalid(
                "tags",
                "tag names must be 1 to 64 bytes and values at most 256, without control characters",
            ));
        }
    }
    Ok(tags)
}

fn validate_metadata(
    metadata: serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Map<String, serde_json::Value>, AuthError> {
    let size = serde_json::to_vec(&metadata)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(AuthError::invalid(
            "metadata",
            format!("`metadata` must be at most {MAX_METADATA_BYTES} bytes of JSON."),
        ));
    }
    Ok(metadata)
}
