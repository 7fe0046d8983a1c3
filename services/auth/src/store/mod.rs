//! Storage for tenancy and keys: one interface over SQLite (the embedded default) and
//! PostgreSQL, chosen by the database URL.
//!
//! Both databases get the same schema (see `migrations/`) and the same SQL: numbered parameters (`$1`),
//! text ids, Unix-millisecond integers and JSON as text, which both understand. Every method
//! that reads tenant data takes the caller's [`OrgId`] and filters on it; the one exception is
//! [`AuthStore::key_by_hash`], where the presented secret itself selects the row.

mod admin_tokens;
mod alert_webhooks;
mod audit;
mod budgets;
mod cache_policy;
mod guardrails;
mod invitations;
mod keys;
mod levels;
mod limits;
mod members;
mod organizations;
mod provider_keys;
pub mod scratch;
mod sessions;
mod signups;
mod teams;
#[cfg(test)]
mod tests;
mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor, Row};

use crate::roles::Role;

pub use admin_tokens::{AdminTokenRecord, NewAdminToken};
pub use audit::{AuditEntry, AuditRecord};
pub use budgets::{BudgetRecord, DEFAULT_THRESHOLDS, NewBudget};
pub use invitations::{InvitationRecord, Invitee};
pub use keys::{KeyChanges, KeyRecord, KeyStatus, NewKey, VerifiedKey};
pub use levels::PolicyLevel;
pub use limits::{RatePair, TeamLimits};
pub use members::Member;
pub use organizations::Organization;
pub use provider_keys::ProviderKeyRecord;
pub use sessions::{RefreshOutcome, RefreshRecord};
pub use signups::{NewPendingSignup, PendingSignup, PendingSignupOutcome, SignupRecords};
pub use teams::Team;
pub use users::User;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot prepare the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    /// A stored value does not parse: the row was written by something else.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
    /// A uniqueness rule was broken (an email already registered, a team name taken).
    #[error("{0} already exists")]
    Duplicate(&'static str),
}

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The auth service's tables, on either database.
#[derive(Clone)]
pub struct AuthStore {
    pool: AnyPool,
    backend: Backend,
}

impl AuthStore {
    /// Opens (and for SQLite, creates) the database at `url`. Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        if backend == Backend::Sqlite {
            create_parent_dir(url)?;
        }
        let options = AnyPoolOptions::new()
            .max_connections(match backend {
                // SQLite serializes writers; a few readers in WAL mode are plenty.
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            });
        let pool = options.connect(url).await?;
        Ok(AuthStore { pool, backend })
    }

    /// Applies every pending migration of this database's kind.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// The pool, for the services that keep their own tables in the same database (the
    /// billing service's ledger).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A transaction that writes. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a transaction that reads before it writes could otherwise fail with
    /// `SQLITE_BUSY_SNAPSHOT` when another connection wrote in between, which no busy timeout
    /// waits out; with the lock taken first it waits its turn instead.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn create_parent_dir(url: &str) -> Result<(), StoreError> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return Ok(());
    }
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::DataDir {
            path: parent.display().to_string(),
            source,
        })?;
    }
    Ok(())
}

pub use tollgate_common::now_ms;

/// Reads a typed id stored as text.
fn id_column<T: FromStr>(row: &AnyRow, column: &str, table: &'static str) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    text.parse().map_err(|_| StoreError::Corrupt {
        table,
        detail: format!("{column} = {text:?} is not an id"),
    })
}

/// Reads a role stored as text.
fn role_column(row: &AnyRow, table: &'static str) -> Result<Role, StoreError> {
    let text: String = row.try_get("role")?;
    text.parse()
        .map_err(|detail| StoreError::Corrupt { table, detail })
}

fn optional_id_column<T: FromStr>(
    row: &AnyRow,
    column: &str,
    table: &'static str,
) -> Result<Option<T>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|text| {
        text.parse().map_err(|_| StoreError::Corrupt {
            table,
            detail: format!("{column} = {text:?} is not an id"),
        })
    })
    .transpose()
}

fn json_column<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &str,
    table: &'static str,
) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        table,
        detail: format!("{column}: {e}"),
    })
}

/// Maps a unique-constraint violation to [`StoreError::Duplicate`].
fn duplicate_as(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |err| match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate(what),
        _ => StoreError::Database(err),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Fresh databases for tests: a temporary SQLite file, and a new PostgreSQL database on
    //! the local server (`TOLLGATE_TEST_POSTGRES`, by default `postgres://postgres@127.0.0.1:5432/test`).

    use super::*;

    pub async fn sqlite() -> AuthStore {
        super::scratch::sqlite().await.unwrap()
    }

    pub async fn postgres() -> AuthStore {
        super::scratch::postgres().await.unwrap()
    }

    /// Runs `check` against both databases.
    macro_rules! on_both_databases {
        ($name:ident, $check:expr) => {
            mod $name {
                use super::*;
                #[tokio::test]
                async fn sqlite() {
                    ($check)($crate::store::testing::sqlite().await).await;
                }
                #[tokio::test]
                async fn postgres() {
                    ($check)($crate::store::testing::postgres().await).await;
                }
            }
        };
    }
    pub(crate) use on_both_databases;
}
