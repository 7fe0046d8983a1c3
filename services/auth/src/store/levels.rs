//! The levels a policy is set on: the organization, a team or a key. Each policy domain
//! (cache policies, guardrail policies) is a JSON column on the three levels' rows; this is
//! what they share: where a level's row is, which keys it applies to, and the one query that
//! reads every level's policies for a key when it is verified.

use sqlx::{AnyConnection, Row};
use tollgate_common::guardrails::{GuardrailPolicy, NamedPolicy};
use tollgate_common::{CachePolicy, KeyId, OrgId, TeamId};

use super::limits::key_hashes;
use super::{AuthStore, StoreError, json_column};

/// Where a policy is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyLevel {
    Organization,
    Team(TeamId),
    Key(KeyId),
}

/// A policy column, on each of the three levels' rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PolicyColumn {
    Cache,
    Guardrails,
}

/// The statements reading and replacing `$column` on each level's row, organization first.
/// Reading binds: organization, row id; replacing: the new value, organization, row id.
macro_rules! level_statements {
    ($column:literal) => {
        [
            (
                concat!(
                    "SELECT ",
                    $column,
                    " FROM organizations WHERE id = $1 AND id = $2"
                ),
                concat!(
                    "UPDATE organizations SET ",
                    $column,
                    " = $1 WHERE id = $2 AND id = $3"
                ),
            ),
            (
                concat!(
                    "SELECT ",
                    $column,
                    " FROM teams WHERE org_id = $1 AND id = $2"
                ),
                concat!(
                    "UPDATE teams SET ",
                    $column,
                    " = $1 WHERE org_id = $2 AND id = $3"
                ),
            ),
            (
                concat!(
                    "SELECT ",
                    $column,
                    " FROM virtual_keys WHERE org_id = $1 AND id = $2"
                ),
                concat!(
                    "UPDATE virtual_keys SET ",
                    $column,
                    " = $1 WHERE org_id = $2 AND id = $3"
                ),
            ),
        ]
    };
}

impl PolicyColumn {
    pub(super) fn name(self) -> &'static str {
        match self {
            PolicyColumn::Cache => "cache_policy",
            PolicyColumn::Guardrails => "guardrail_policy",
        }
    }

    fn statements(self) -> [(&'static str, &'static str); 3] {
        match self {
            PolicyColumn::Cache => level_statements!("cache_policy"),
            PolicyColumn::Guardrails => level_statements!("guardrail_policy"),
        }
    }
}

impl PolicyLevel {
    /// The row's id and the audit target type.
    pub(super) fn target(self, org: OrgId) -> (String, &'static str) {
        match self {
            PolicyLevel::Organization => (org.to_string(), "organization"),
            PolicyLevel::Team(team) => (team.to_string(), "team"),
            PolicyLevel::Key(key) => (key.to_string(), "key"),
        }
    }

    fn index(self) -> usize {
        match self {
            PolicyLevel::Organization => 0,
            PolicyLevel::Team(_) => 1,
            PolicyLevel::Key(_) => 2,
        }
    }

    /// The statement reading `column` of the level's row, bound as: organization, row id.
    pub(super) fn select(self, column: PolicyColumn) -> &'static str {
        column.statements()[self.index()].0
    }

    /// The statement replacing `column` of the level's row, bound as: the new value,
    /// organization, row id.
    pub(super) fn update(self, column: PolicyColumn) -> &'static str {
        column.statements()[self.index()].1
    }

    /// The hashes of the keys a policy set at this level applies to: their cached contexts
    /// are stale once it changes.
    pub(super) async fn key_hashes(
        self,
        conn: &mut AnyConnection,
        org: OrgId,
    ) -> Result<Vec<String>, StoreError> {
        match self {
            PolicyLevel::Organization => key_hashes(conn, org, None).await,
            PolicyLevel::Team(team) => key_hashes(conn, org, Some(team)).await,
            PolicyLevel::Key(key) => {
                let row =
                    sqlx::query("SELECT key_hash FROM virtual_keys WHERE org_id = $1 AND id = $2")
                        .bind(org.to_string())
                        .bind(key.to_string())
                        .fetch_one(&mut *conn)
                        .await?;
                Ok(vec![row.try_get("key_hash")?])
            }
        }
    }
}

/// What a key inherits from the policies set on its organization, its team and itself.
#[derive(Debug, Default)]
pub(super) struct InheritedPolicies {
    /// The three cache policies merged, the narrowest level winning field by field.
    pub cache: CachePolicy,
    /// The guardrail policies, widest first, named by their level.
    pub guardrails: Vec<NamedPolicy>,
}

impl AuthStore {
    /// Every level's policies for one key, in one query. A stored document this code cannot
    /// read is an error naming its column: a key whose guardrails cannot be known is not
    /// let through unchecked. Setting the policy again at that level repairs it (replacing
    /// a policy never needs to read the old one).
    pub(super) async fn inherited_policies(
        &self,
        org: OrgId,
        team: TeamId,
        key: KeyId,
    ) -> Result<InheritedPolicies, StoreError> {
        let row = sqlx::query(
            "SELECT o.cache_policy AS org_cache, t.cache_policy AS team_cache, \
                    k.cache_policy AS key_cache, o.guardrail_policy AS org_guardrails, \
                    t.guardrail_policy AS team_guardrails, k.guardrail_policy AS key_guardrails \
             FROM virtual_keys k \
             JOIN teams t ON t.id = k.team_id \
             JOIN organizations o ON o.id = k.org_id \
             WHERE k.org_id = $1 AND k.team_id = $2 AND k.id = $3",
        )
        .bind(org.to_string())
        .bind(team.to_string())
        .bind(key.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(InheritedPolicies::default());
        };
        let org_cache: CachePolicy = json_column(&row, "org_cache", "organizations")?;
        let team_cache: CachePolicy = json_column(&row, "team_cache", "teams")?;
        let key_cache: CachePolicy = json_column(&row, "key_cache", "virtual_keys")?;
        let mut guardrails = Vec::with_capacity(3);
        for (name, alias, table) in [
            ("organization", "org_guardrails", "organizations"),
            ("team", "team_guardrails", "teams"),
            ("key", "key_guardrails", "virtual_keys"),
        ] {
            let text: String = row.try_get(alias)?;
            let policy: GuardrailPolicy =
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                    table,
                    detail: format!("guardrail_policy: {e}"),
                })?;
            // Empty levels ask for nothing; left out, the context crossing processes is smaller.
            if !policy.is_empty() {
                guardrails.push(NamedPolicy {
                    name: name.into(),
                    policy,
                });
            }
        }
        Ok(InheritedPolicies {
            cache: key_cache.over(team_cache.over(org_cache)),
            guardrails,
        })
    }
}
