//! Tollgate's admin API: one GraphQL schema at `/graphql` over everything a customer manages
//! (teams, members, keys, budgets, limits, cache and guardrail policies) and every figure they watch (usage
//! analytics from the rollups). Every resolver acts as the caller, through the auth service's
//! operations, so role rules and tenant scoping are the same as on the REST API.

pub mod admin_tokens;
pub mod analytics;
pub mod billing;
pub mod budgets;
pub mod cache_policy;
pub mod dashboard;
pub mod errors;
pub mod guardrails;
pub mod http;
pub mod invitations;
pub mod keys;
pub mod levels;
pub mod limits;
pub mod members;
pub mod models;
pub mod operation_limits;
pub mod provider_keys;
pub mod requests;
pub mod schema;
pub mod teams;
pub mod usage;
pub mod viewer;
