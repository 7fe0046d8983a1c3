//! The `storage` section: the data directory and the database.

use serde::Deserialize;

use super::{ConfigProblem, problem};

/// Where durable state lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Folder for the embedded database and other local state; created when missing.
    pub data_dir: std::path::PathBuf,
    /// `sqlite://FILE` or `postgres://...`; without it, `tollgate.db` in `data_dir`.
    pub database_url: Option<String>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: "data".into(),
            database_url: None,
        }
    }
}

impl StorageConfig {
    /// The database to open: the configured URL, or the embedded SQLite file.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("tollgate.db").display()
            ),
        }
    }
}

pub(super) fn validate_storage(storage: &StorageConfig, problems: &mut Vec<ConfigProblem>) {
    if let Some(url) = &storage.database_url
        && !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
    {
        problems.push(problem(
            "storage.database_url",
            "must start with sqlite:, postgres:// or postgresql://",
        ));
    }
    if storage.data_dir.as_os_str().is_empty() {
        problems.push(problem("storage.data_dir", "must not be empty"));
    }
}
