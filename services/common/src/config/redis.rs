//! The `redis` section: state shared between gateway replicas.

use serde::Deserialize;

use super::{ConfigProblem, problem};

/// Shared state between gateway replicas; everything stays in-process without it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port[/db]` or `rediss://...`.
    pub url: Option<String>,
}

pub(super) fn validate_redis(redis: &RedisConfig, problems: &mut Vec<ConfigProblem>) {
    if let Some(url) = &redis.url
        && !url.starts_with("redis://")
        && !url.starts_with("rediss://")
    {
        problems.push(problem(
            "redis.url",
            "must start with redis:// or rediss://",
        ));
    }
}
