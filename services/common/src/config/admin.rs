//! The `admin` section: the admin API's GraphiQL and its rate of mutations.

use serde::Deserialize;

use super::{ConfigProblem, problem};

/// The admin API at `/graphql`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve GraphiQL at `GET /graphql` and answer introspection from callers without a
    /// token. Off by default: the schema is then shown only to logged-in callers.
    pub graphiql: bool,
    /// Mutations each user (or admin token, which acts as its creator) may run per minute;
    /// a token bucket per process, so bursts up to this many are allowed.
    pub mutations_per_minute: u32,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            graphiql: false,
            mutations_per_minute: 60,
        }
    }
}

pub(super) fn validate_admin(admin: &AdminConfig, problems: &mut Vec<ConfigProblem>) {
    if admin.mutations_per_minute == 0 {
        problems.push(problem(
            "admin.mutations_per_minute",
            "must be greater than 0",
        ));
    }
}
