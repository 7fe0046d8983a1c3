//! Virtual keys as the GraphQL API shows them (never their secret, except once when issued),
//! and the ways to create, change, rotate and revoke them.

use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, Error, ID, InputObject, Object, SimpleObject};
use serde_json::{Value, json};
use tollgate_auth::service::{IssuedKey, KeyView};
use tollgate_auth::{Actor, AuthError};

use crate::errors::OrGraphql;
use crate::schema::{caller, parse, present, service};
use crate::teams::{TeamLoader, TeamObject};

/// A tag of a key, for cost attribution.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "TagInput")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// A virtual key; never its secret.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct VirtualKey {
    pub id: ID,
    pub team_id: ID,
    pub name: String,
    /// The key's first characters, to tell keys apart.
    pub display_prefix: String,
    /// `active`, `rotating`, `disabled`, `expired` or `revoked`.
    pub status: String,
    pub allowed_models: Vec<String>,
    pub expires_at: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    /// USD, exact decimal.
    pub budget_usd: Option<String>,
    pub budget_period: Option<String>,
    pub tags: Vec<Tag>,
    pub created_by: Option<ID>,
    pub revoked_at: Option<i64>,
    pub rotated_to: Option<ID>,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
}

impl From<KeyView> for VirtualKey {
    fn from(view: KeyView) -> Self {
        let key = view.key;
        let status = serde_json::to_value(view.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        VirtualKey {
            id: ID(key.id.to_string()),
            team_id: ID(key.team_id.to_string()),
            name: key.name,
            display_prefix: key.display_prefix,
            status,
            allowed_models: key.allowed_models,
            expires_at: key.expires_at,
            rpm_limit: key.rpm_limit,
            tpm_limit: key.tpm_limit,
            budget_usd: key.budget_usd.map(|d| d.to_string()),
            budget_period: key.budget_period,
            tags: key
                .tags
                .into_iter()
                .map(|(key, value)| Tag { key, value })
                .collect(),
            created_by: key.created_by.map(|u| ID(u.to_string())),
            revoked_at: key.revoked_at,
            rotated_to: key.rotated_to.map(|k| ID(k.to_string())),
            last_used_at: key.last_used_at,
            created_at: key.created_at,
        }
    }
}

#[ComplexObject]
impl VirtualKey {
    /// The key's team (loaded once for all the keys of an answer).
    async fn team(&self, ctx: &Context<'_>) -> Result<Option<TeamObject>, Error> {
        let Ok(loader) = ctx.data::<DataLoader<TeamLoader>>() else {
            return Err(crate::errors::graphql_error(AuthError::MissingToken));
        };
        loader
            .load_one(self.team_id.to_string())
            .await
            .map_err(|err| (*err).clone())
    }
}

/// A key just created or rotated, with its secret: shown this once.
#[derive(SimpleObject)]
pub struct IssuedVirtualKey {
    /// The full key; it cannot be read again.
    pub secret: String,
    pub key: VirtualKey,
}

impl From<IssuedKey> for IssuedVirtualKey {
    fn from(issued: IssuedKey) -> Self {
        IssuedVirtualKey {
            secret: issued.key,
            key: issued.view.into(),
        }
    }
}

/// A new key's settings; the organization's first team when `teamId` is absent.
#[derive(InputObject)]
pub struct CreateKeyInput {
    pub name: Option<String>,
    pub team_id: Option<ID>,
    pub allowed_models: Option<Vec<String>>,
    pub expires_at: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    /// USD, exact decimal (`"25.00"`).
    pub budget_usd: Option<String>,
    pub budget_period: Option<String>,
    pub tags: Option<Vec<Tag>>,
}

/// A key change; absent fields stay as they are.
#[derive(InputObject)]
pub struct UpdateKeyInput {
    pub name: Option<String>,
    pub allowed_models: Option<Vec<String>>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub budget_usd: Option<String>,
    pub budget_period: Option<String>,
    pub tags: Option<Vec<Tag>>,
    pub disabled: Option<bool>,
}

fn tags_json(tags: &Option<Vec<Tag>>) -> Option<Value> {
    tags.as_ref().map(|tags| {
        Value::Object(
            tags.iter()
                .map(|tag| (tag.key.clone(), Value::String(tag.value.clone())))
                .collect(),
        )
    })
}

#[derive(Default)]
pub struct KeysQuery;

#[Object]
impl KeysQuery {
    /// The organization's keys (of one team when given).
    async fn keys(&self, ctx: &Context<'_>, team_id: Option<ID>) -> Result<Vec<VirtualKey>, Error> {
        let keys = service(ctx)
            .keys(caller(ctx)?, team_id.as_ref().map(|id| id.as_str()))
            .await
            .or_graphql()?;
        Ok(keys.into_iter().map(VirtualKey::from).collect())
    }

    async fn key(&self, ctx: &Context<'_>, id: ID) -> Result<VirtualKey, Error> {
        let key = service(ctx).key(caller(ctx)?, &id).await.or_graphql()?;
        Ok(key.into())
    }
}

#[derive(Default)]
pub struct KeysMutation;

#[Object]
impl KeysMutation {
    /// Creates a key; its secret is in the answer and nowhere else, ever.
    async fn create_key(
        &self,
        ctx: &Context<'_>,
        input: CreateKeyInput,
    ) -> Result<IssuedVirtualKey, Error> {
        let spec = parse(
            "input",
            present(json!({
                "name": input.name,
                "team_id": input.team_id.map(|id| id.0),
                "allowed_models": input.allowed_models,
                "expires_at": input.expires_at,
                "rpm_limit": input.rpm_limit,
                "tpm_limit": input.tpm_limit,
                "budget_usd": input.budget_usd,
                "budget_period": input.budget_period,
                "tags": tags_json(&input.tags),
            })),
        )?;
        let caller = caller(ctx)?;
        let issued = service(ctx)
            .create_key(&Actor::User(caller.clone()), caller.org, spec)
            .await
            .or_graphql()?;
        Ok(issued.into())
    }

    async fn update_key(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateKeyInput,
    ) -> Result<VirtualKey, Error> {
        let patch = parse(
            "input",
            present(json!({
                "name": input.name,
                "allowed_models": input.allowed_models,
                "rpm_limit": input.rpm_limit,
                "tpm_limit": input.tpm_limit,
                "budget_usd": input.budget_usd,
                "budget_period": input.budget_period,
                "tags": tags_json(&input.tags),
                "disabled": input.disabled,
            })),
        )?;
        let key = service(ctx)
            .update_key(caller(ctx)?, &id, patch)
            .await
            .or_graphql()?;
        Ok(key.into())
    }

    /// Replaces a key: the new secret in the answer, the old key working for `graceSeconds`.
    async fn rotate_key(
        &self,
        ctx: &Context<'_>,
        id: ID,
        grace_seconds: Option<u64>,
    ) -> Result<IssuedVirtualKey, Error> {
        let request = parse("graceSeconds", json!({ "grace_seconds": grace_seconds }))?;
        let issued = service(ctx)
            .rotate_key(caller(ctx)?, &id, request)
            .await
            .or_graphql()?;
        Ok(issued.into())
    }

    async fn revoke_key(&self, ctx: &Context<'_>, id: ID) -> Result<VirtualKey, Error> {
        let caller = caller(ctx)?;
        let key = service(ctx)
            .revoke_key(&Actor::User(caller.clone()), caller.org, &id)
            .await
            .or_graphql()?;
        Ok(key.into())
    }
}
