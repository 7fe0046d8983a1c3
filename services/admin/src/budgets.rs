//! Budgets as the GraphQL API shows them, each with its spend in the current period, and the
//! ways to create, change and delete them.

use std::sync::Arc;

use async_graphql::{Context, Error, ID, InputObject, Object, SimpleObject};
use rust_decimal::Decimal;
use serde_json::json;
use tollgate_auth::AuthError;
use tollgate_auth::store::BudgetRecord;
use tollgate_billing::BudgetCounters;
use tollgate_billing::budgets::counter_name;
use tollgate_common::BudgetScope;

use crate::errors::OrGraphql;
use crate::schema::{caller, parse, present, service};

#[derive(SimpleObject)]
pub struct Budget {
    pub id: ID,
    /// `organization`, `team`, `key` or `user`.
    pub scope: String,
    /// The team or key id, the end user, or `*` for each end user; empty for the organization.
    pub target: String,
    /// `daily`, `weekly`, `monthly` or `lifetime`.
    pub period: String,
    /// USD, exact decimal.
    pub limit_usd: String,
    /// Alert thresholds, percent of the limit.
    pub thresholds: Vec<u32>,
    /// When the current period started, Unix milliseconds (UTC).
    pub period_start: i64,
    /// Settled spend in the current period, USD (for a budget on each end user, the most
    /// any one spent). Requests in flight are not included.
    pub spent_usd: String,
    /// Held by requests in flight in the current period, USD, until they settle (0 for a
    /// budget on each end user: each end user's reservations are apart).
    pub reserved_usd: String,
    /// What is left of the limit in the current period, USD, never below zero.
    pub remaining_usd: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Budget {
    /// The budget with its spend in the current period, from the ledger's daily rollups.
    async fn with_spend(ctx: &Context<'_>, budget: BudgetRecord) -> Result<Budget, Error> {
        let (spent, period_start) = service(ctx)
            .store()
            .budget_spent(&budget, tollgate_common::now_ms())
            .await
            .map_err(|e| crate::errors::graphql_error(AuthError::Internal(e.to_string())))?;
        let spent_usd = spent.to_usd();
        let remaining = (budget.limit_usd - spent_usd).max(Decimal::ZERO);
        let reserved_usd = match budget.budget_scope() {
            BudgetScope::EveryUser => Decimal::ZERO,
            _ => {
                let counters = ctx.data_unchecked::<Arc<BudgetCounters>>();
                let counter = counter_name(&budget.id, period_start, None);
                // Counters are whole nanodollars.
                let reserved = counters.read(&counter).await.map_or(0, |(_, r)| r.max(0));
                Decimal::new(reserved, 9)
            }
        };
        Ok(Budget {
            id: ID(budget.id),
            scope: budget.scope,
            target: budget.target,
            period: budget.period.as_str().to_owned(),
            limit_usd: budget.limit_usd.to_string(),
            thresholds: budget.thresholds,
            period_start,
            spent_usd: spent_usd.normalize().to_string(),
            reserved_usd: reserved_usd.normalize().to_string(),
            remaining_usd: remaining.normalize().to_string(),
            created_at: budget.created_at,
            updated_at: budget.updated_at,
        })
    }
}

#[derive(InputObject)]
pub struct CreateBudgetInput {
    /// `organization`, `team`, `key` or `user`.
    pub scope: String,
    /// The team (id or name), key id, or end user (`*` for each end user).
    pub target: Option<String>,
    /// `daily`, `weekly`, `monthly` or `lifetime`.
    pub period: String,
    /// USD, exact decimal (`"25.00"`).
    pub limit_usd: String,
    /// Percent of the limit; 50, 80 and 100 when absent.
    pub thresholds: Option<Vec<u32>>,
}

#[derive(InputObject)]
pub struct UpdateBudgetInput {
    pub limit_usd: Option<String>,
    pub thresholds: Option<Vec<u32>>,
}

#[derive(Default)]
pub struct BudgetsQuery;

#[Object]
impl BudgetsQuery {
    async fn budgets(&self, ctx: &Context<'_>) -> Result<Vec<Budget>, Error> {
        let budgets = service(ctx).budgets(caller(ctx)?).await.or_graphql()?;
        let mut with_spend = Vec::with_capacity(budgets.len());
        for budget in budgets {
            with_spend.push(Budget::with_spend(ctx, budget).await?);
        }
        Ok(with_spend)
    }
}

#[derive(Default)]
pub struct BudgetsMutation;

#[Object]
impl BudgetsMutation {
    async fn create_budget(
        &self,
        ctx: &Context<'_>,
        input: CreateBudgetInput,
    ) -> Result<Budget, Error> {
        let spec = parse(
            "input",
            present(json!({
                "scope": input.scope,
                "target": input.target,
                "period": input.period,
                "limit_usd": input.limit_usd,
                "thresholds": input.thresholds,
            })),
        )?;
        let budget = service(ctx)
            .create_budget(caller(ctx)?, spec)
            .await
            .or_graphql()?;
        Budget::with_spend(ctx, budget).await
    }

    async fn update_budget(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateBudgetInput,
    ) -> Result<Budget, Error> {
        let patch = parse(
            "input",
            present(json!({ "limit_usd": input.limit_usd, "thresholds": input.thresholds })),
        )?;
        let budget = service(ctx)
            .update_budget(caller(ctx)?, &id, patch)
            .await
            .or_graphql()?;
        Budget::with_spend(ctx, budget).await
    }

    async fn delete_budget(&self, ctx: &Context<'_>, id: ID) -> Result<bool, Error> {
        service(ctx)
            .delete_budget(caller(ctx)?, &id)
            .await
            .or_graphql()?;
        Ok(true)
    }
}
