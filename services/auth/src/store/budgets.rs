//! Budgets: spending limits per organization, team, key and end user (where their alerts go is
//! `alert_webhooks.rs`). Spend itself is the billing service's: the ledger's daily rollups,
//! read here once per key load so that the gateway starts each budget's shared counter from
//! the right figure.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tollgate_common::{
    BillingFacts, BudgetPeriod, BudgetRule, BudgetScope, OrgId, Picodollars, TeamId,
};

use super::audit::AuditEntry;
use super::limits::key_hashes;
use super::{AuthStore, KeyRecord, StoreError, duplicate_as, id_column, json_column, now_ms};

/// Alert thresholds when a budget names none, in percent of its limit.
pub const DEFAULT_THRESHOLDS: [u32; 3] = [50, 80, 100];

/// A budget as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BudgetRecord {
    pub id: String,
    pub org_id: OrgId,
    /// `organization`, `team`, `key` or `user`.
    pub scope: String,
    /// The team or key id, the end user, or `*` for every end user; empty for the organization.
    pub target: String,
    pub period: BudgetPeriod,
    #[serde(with = "rust_decimal::serde::str")]
    pub limit_usd: Decimal,
    pub thresholds: Vec<u32>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl BudgetRecord {
    pub fn budget_scope(&self) -> BudgetScope {
        match self.scope.as_str() {
            "team" => BudgetScope::Team(self.target.clone()),
            "key" => BudgetScope::Key(self.target.clone()),
            "user" if self.target == "*" => BudgetScope::EveryUser,
            "user" => BudgetScope::User(self.target.clone()),
            _ => BudgetScope::Organization,
        }
    }
}

/// A budget to create.
#[derive(Debug, Clone)]
pub struct NewBudget {
    pub scope: String,
    pub target: String,
    pub period: BudgetPeriod,
    pub limit_usd: Decimal,
    pub thresholds: Vec<u32>,
}

macro_rules! budget_columns {
    () => {
        "id, org_id, scope, target, period, limit_usd, thresholds, created_at, updated_at"
    };
}

fn budget_from_row(row: &AnyRow) -> Result<BudgetRecord, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        table: "budgets",
        detail,
    };
    let period: String = row.try_get("period")?;
    let limit: String = row.try_get("limit_usd")?;
    Ok(BudgetRecord {
        id: row.try_get("id")?,
        org_id: id_column(row, "org_id", "budgets")?,
        scope: row.try_get("scope")?,
        target: row.try_get("target")?,
        period: BudgetPeriod::parse(&period).ok_or_else(|| corrupt(format!("period {period}")))?,
        limit_usd: limit
            .parse()
            .map_err(|_| corrupt(format!("limit_usd {limit}")))?,
        thresholds: json_column(row, "thresholds", "budgets")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The hashes of the keys whose cached budgets a change of `budget` makes stale.
async fn stale_hashes(
    conn: &mut AnyConnection,
    budget: &BudgetRecord,
) -> Result<Vec<String>, StoreError> {
    match budget.budget_scope() {
        BudgetScope::Team(team) => match team.parse::<TeamId>() {
            Ok(team) => key_hashes(conn, budget.org_id, Some(team)).await,
            Err(_) => Ok(Vec::new()),
        },
        BudgetScope::Key(key) => {
            let rows =
                sqlx::query("SELECT key_hash FROM virtual_keys WHERE org_id = $1 AND id = $2")
                    .bind(budget.org_id.to_string())
                    .bind(key)
                    .fetch_all(conn)
                    .await?;
            rows.iter()
                .map(|row| Ok(row.try_get("key_hash")?))
                .collect()
        }
        _ => key_hashes(conn, budget.org_id, None).await,
    }
}

/// Spend in the organization since `since` (Unix ms, a day boundary) from the daily rollups,
/// narrowed to one column's value when given.
async fn spent_since(
    store: &AuthStore,
    org: OrgId,
    since: i64,
    column: Option<(&'static str, &str)>,
) -> Result<Picodollars, StoreError> {
    let sql = match column {
        None => "SELECT CAST(COALESCE(SUM(cost_pico), 0) AS BIGINT) AS spent FROM usage_rollups \
                 WHERE granularity = 'day' AND org_id = $1 AND bucket_start >= $2"
            .to_owned(),
        Some((name, _)) => format!(
            "SELECT CAST(COALESCE(SUM(cost_pico), 0) AS BIGINT) AS spent FROM usage_rollups \
             WHERE granularity = 'day' AND org_id = $1 AND bucket_start >= $2 AND {name} = $3"
        ),
    };
    // `name` is one of three column names chosen by the caller below, never input.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org.to_string())
        .bind(since);
    if let Some((_, value)) = column {
        query = query.bind(value.to_owned());
    }
    let row = query.fetch_one(&store.pool).await?;
    Ok(Picodollars(row.try_get("spent")?))
}

impl AuthStore {
    /// What the ledger says `budget` spent in its current period, and when that period
    /// started (Unix ms). For a budget on each end user, the most any one of them spent.
    /// Settled spend only: requests still in flight are not counted.
    pub async fn budget_spent(
        &self,
        budget: &BudgetRecord,
        now: i64,
    ) -> Result<(Picodollars, i64), StoreError> {
        let start = budget.period.start(now);
        let org = budget.org_id;
        let spent = match budget.budget_scope() {
            BudgetScope::Organization => spent_since(self, org, start, None).await?,
            BudgetScope::Team(team) => {
                spent_since(self, org, start, Some(("team_id", &team))).await?
            }
            BudgetScope::Key(key) => spent_since(self, org, start, Some(("key_id", &key))).await?,
            BudgetScope::User(user) => {
                spent_since(self, org, start, Some(("end_user", &user))).await?
            }
            BudgetScope::EveryUser => {
                let row = sqlx::query(
                    "SELECT CAST(COALESCE(MAX(spent), 0) AS BIGINT) AS spent FROM \
                     (SELECT SUM(cost_pico) AS spent FROM usage_rollups \
                      WHERE granularity = 'day' AND org_id = $1 AND bucket_start >= $2 \
                      AND end_user <> '' GROUP BY end_user) per_user",
                )
                .bind(org.to_string())
                .bind(start)
                .fetch_one(&self.pool)
                .await?;
                Picodollars(row.try_get("spent")?)
            }
        };
        Ok((spent, start))
    }

    pub async fn budgets(&self, org: OrgId) -> Result<Vec<BudgetRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            budget_columns!(),
            " FROM budgets WHERE org_id = $1 ORDER BY created_at, id"
        ))
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(budget_from_row).collect()
    }

    pub async fn budget(&self, org: OrgId, id: &str) -> Result<Option<BudgetRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            budget_columns!(),
            " FROM budgets WHERE org_id = $1 AND id = $2"
        ))
        .bind(org.to_string())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(budget_from_row).transpose()
    }

    /// Creates a budget. Returns it with the hashes of the keys it now applies to.
    pub async fn create_budget(
        &self,
        org: OrgId,
        new: NewBudget,
        actor: &str,
    ) -> Result<(BudgetRecord, Vec<String>), StoreError> {
        let now = now_ms();
        let budget = BudgetRecord {
            id: uuid::Uuid::now_v7().to_string(),
            org_id: org,
            scope: new.scope,
            target: new.target,
            period: new.period,
            limit_usd: new.limit_usd,
            thresholds: new.thresholds,
            created_at: now,
            updated_at: now,
        };
        self.write_audited(async |conn| {
            sqlx::query(concat!(
                "INSERT INTO budgets (",
                budget_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ))
            .bind(budget.id.clone())
            .bind(org.to_string())
            .bind(budget.scope.clone())
            .bind(budget.target.clone())
            .bind(budget.period.as_str())
            .bind(budget.limit_usd.to_string())
            .bind(serde_json::to_string(&budget.thresholds).unwrap_or_else(|_| "[]".into()))
            .bind(now)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(duplicate_as("a budget for this scope, target and period"))?;
            let mut entry =
                AuditEntry::new(org, actor, "budget.create", "budget").target(&budget.id);
            entry = entry.after(serde_json::to_value(&budget).unwrap_or_default());
            let stale = stale_hashes(conn, &budget).await?;
            Ok(((budget, stale), entry))
        })
        .await
    }

    /// Changes a budget's limit and thresholds; `None` when `org` has no such budget.
    pub async fn update_budget(
        &self,
        org: OrgId,
        id: &str,
        limit_usd: Option<Decimal>,
        thresholds: Option<Vec<u32>>,
        actor: &str,
    ) -> Result<Option<(BudgetRecord, Vec<String>)>, StoreError> {
        self.change_audited(self.budget(org, id), async |conn, before| {
            let mut after = before.clone();
            if let Some(limit) = limit_usd {
                after.limit_usd = limit;
            }
            if let Some(thresholds) = thresholds {
                after.thresholds = thresholds;
            }
            after.updated_at = now_ms();
            sqlx::query(
                "UPDATE budgets SET limit_usd = $1, thresholds = $2, updated_at = $3 \
                 WHERE org_id = $4 AND id = $5",
            )
            .bind(after.limit_usd.to_string())
            .bind(serde_json::to_string(&after.thresholds).unwrap_or_else(|_| "[]".into()))
            .bind(after.updated_at)
            .bind(org.to_string())
            .bind(id)
            .execute(&mut *conn)
            .await?;
            let entry =
                AuditEntry::change(org, actor, "budget.update", "budget", id, &before, &after);
            let stale = stale_hashes(conn, &after).await?;
            Ok(((after, stale), entry))
        })
        .await
    }

    /// Deletes a budget; returns the stale key hashes, `None` when there was no such budget.
    pub async fn delete_budget(
        &self,
        org: OrgId,
        id: &str,
        actor: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        self.change_audited(self.budget(org, id), async |conn, before| {
            sqlx::query("DELETE FROM budgets WHERE org_id = $1 AND id = $2")
                .bind(org.to_string())
                .bind(id)
                .execute(&mut *conn)
                .await?;
            let entry = AuditEntry::new(org, actor, "budget.delete", "budget")
                .target(id)
                .before(serde_json::to_value(&before).unwrap_or_default());
            let stale = stale_hashes(conn, &before).await?;
            Ok((stale, entry))
        })
        .await
    }

    /// How `org` stands with its payments: its card, a failed payment, its prepaid credit, and
    /// its provider cost and credit used this calendar month.
    pub async fn billing_facts(&self, org: OrgId) -> Result<BillingFacts, StoreError> {
        let month_start = BudgetPeriod::Monthly.start(now_ms());
        let account = sqlx::query(
            "SELECT payment_method, past_due_since, standing, credit_pico, plan \
             FROM billing_accounts WHERE org_id = $1",
        )
        .bind(org.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let mut facts = BillingFacts {
            month_cost: spent_since(self, org, month_start, None).await?.0,
            ..BillingFacts::default()
        };
        if let Some(row) = account {
            let card: Option<String> = row.try_get("payment_method")?;
            let standing: String = row.try_get("standing")?;
            facts.has_card = card.is_some();
            let plan: String = row.try_get("plan")?;
            facts.own_provider_keys = plan == "byok";
            facts.past_due_since = if standing == "past_due" {
                row.try_get("past_due_since")?
            } else {
                None
            };
            facts.credit = row.try_get("credit_pico")?;
            let used = sqlx::query(
                "SELECT CAST(COALESCE(SUM(credit_used_pico), 0) AS BIGINT) AS used \
                 FROM usage_reports WHERE org_id = $1 AND hour_start >= $2",
            )
            .bind(org.to_string())
            .bind(month_start)
            .fetch_one(&self.pool)
            .await?;
            facts.credit_used_this_month = used.try_get("used")?;
        }
        Ok(facts)
    }

    /// Every budget that applies to `key`'s requests, each with what the ledger says was spent
    /// in its current period.
    pub async fn budget_rules(&self, key: &KeyRecord) -> Result<Vec<BudgetRule>, StoreError> {
        let rows = sqlx::query(
            "SELECT b.id, b.org_id, b.scope, b.target, b.period, b.limit_usd, b.thresholds, \
             b.created_at, b.updated_at, t.name AS team_name FROM budgets b \
             LEFT JOIN teams t ON b.scope = 'team' AND t.id = b.target \
             WHERE b.org_id = $1 AND (b.scope = 'organization' OR b.scope = 'user' \
             OR (b.scope = 'team' AND b.target = $2) OR (b.scope = 'key' AND b.target = $3)) \
             ORDER BY b.created_at, b.id",
        )
        .bind(key.org_id.to_string())
        .bind(key.team_id.to_string())
        .bind(key.id.to_string())
        .fetch_all(&self.pool)
        .await?;
        let now = now_ms();
        let mut rules = Vec::with_capacity(rows.len() + 1);
        for row in &rows {
            let budget = budget_from_row(row)?;
            let team_name: Option<String> = row.try_get("team_name")?;
            let scope = budget.budget_scope();
            let label = match &scope {
                BudgetScope::Organization => "the organization's".to_owned(),
                BudgetScope::Team(_) => {
                    format!("team \"{}\"'s", team_name.as_deref().unwrap_or("?"))
                }
                BudgetScope::Key(_) => "this key's".to_owned(),
                BudgetScope::User(user) => format!("end user \"{user}\"'s"),
                BudgetScope::EveryUser => "the per-user".to_owned(),
            };
            rules.push(
                self.rule(
                    key,
                    budget.id,
                    scope,
                    budget.period,
                    budget.limit_usd,
                    budget.thresholds,
                    label,
                    now,
                )
                .await?,
            );
        }
        if let Some(limit) = key.budget_usd {
            let period = key
                .budget_period
                .as_deref()
                .and_then(BudgetPeriod::parse)
                .unwrap_or(BudgetPeriod::Lifetime);
            rules.push(
                self.rule(
                    key,
                    format!("key:{}", key.id),
                    BudgetScope::Key(key.id.to_string()),
                    period,
                    limit,
                    DEFAULT_THRESHOLDS.to_vec(),
                    "this key's".to_owned(),
                    now,
                )
                .await?,
            );
        }
        Ok(rules)
    }

    #[allow(clippy::too_many_arguments)]
    async fn rule(
        &self,
        key: &KeyRecord,
        id: String,
        scope: BudgetScope,
        period: BudgetPeriod,
        limit_usd: Decimal,
        thresholds: Vec<u32>,
        label: String,
        now: i64,
    ) -> Result<BudgetRule, StoreError> {
        let start = period.start(now);
        let org = key.org_id;
        let mut spent_by_user = BTreeMap::new();
        let spent = match &scope {
            BudgetScope::Organization => spent_since(self, org, start, None).await?,
            BudgetScope::Team(team) => {
                spent_since(self, org, start, Some(("team_id", team))).await?
            }
            BudgetScope::Key(k) => spent_since(self, org, start, Some(("key_id", k))).await?,
            BudgetScope::User(user) => {
                spent_since(self, org, start, Some(("end_user", user))).await?
            }
            BudgetScope::EveryUser => {
                let rows = sqlx::query(
                    "SELECT end_user, CAST(SUM(cost_pico) AS BIGINT) AS spent FROM usage_rollups \
                     WHERE granularity = 'day' AND org_id = $1 AND bucket_start >= $2 \
                     AND end_user <> '' GROUP BY end_user",
                )
                .bind(org.to_string())
                .bind(start)
                .fetch_all(&self.pool)
                .await?;
                for row in &rows {
                    spent_by_user.insert(
                        row.try_get::<String, _>("end_user")?,
                        Picodollars(row.try_get("spent")?),
                    );
                }
                Picodollars::ZERO
            }
        };
        Ok(BudgetRule {
            id,
            scope,
            period,
            limit_usd,
            thresholds,
            label: format!("{label} {} budget", period.as_str()),
            baseline_period_start: start,
            spent,
            spent_by_user,
        })
    }
}
