//! The `usage` section: the journal every gateway writes, the stream that ships it, and how
//! long the ledger keeps its rows.

use serde::Deserialize;

use super::{ConfigProblem, StorageConfig, problem};

/// The usage pipeline: the local journal every gateway writes before an answer ends, and how
/// long the ledger keeps raw rows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageConfig {
    /// The journal's folder; `journal` in the data directory when absent. One process each.
    pub journal_dir: Option<std::path::PathBuf>,
    /// Flush the journal to the device before acknowledging (survives power loss, not just a
    /// crash of the process), at the cost of a disk flush per batch.
    pub sync: bool,
    /// The Redis stream through which gateways without the database ship usage.
    pub stream: String,
    pub retention: RetentionConfig,
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig {
            journal_dir: None,
            sync: false,
            stream: "tollgate:usage".into(),
            retention: RetentionConfig::default(),
        }
    }
}

impl UsageConfig {
    /// The journal's folder.
    pub fn effective_journal_dir(&self, storage: &StorageConfig) -> std::path::PathBuf {
        self.journal_dir
            .clone()
            .unwrap_or_else(|| storage.data_dir.join("journal"))
    }
}

/// How long the ledger keeps raw rows and hourly totals; daily totals are kept for ever.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    pub events_days: u32,
    pub hourly_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            events_days: 90,
            hourly_days: 90,
        }
    }
}

pub(super) fn validate_usage(usage: &UsageConfig, problems: &mut Vec<ConfigProblem>) {
    for (field, value) in [
        (
            "usage.retention.events_days",
            u64::from(usage.retention.events_days),
        ),
        (
            "usage.retention.hourly_days",
            u64::from(usage.retention.hourly_days),
        ),
    ] {
        if value == 0 {
            problems.push(problem(field, "must be greater than 0"));
        }
    }
    if usage.stream.is_empty() {
        problems.push(problem("usage.stream", "must not be empty"));
    }
}
