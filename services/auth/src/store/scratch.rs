//! Fresh, migrated databases for tests (of this service and of the services that share its
//! database): a temporary SQLite file, and a new database on a PostgreSQL server
//! (`TOLLGATE_TEST_POSTGRES`, by default `postgres://postgres@127.0.0.1:5432/test`) named
//! `tollgate_test_<uuid>`.

use super::{AuthStore, StoreError};

/// The URL of a new SQLite database in a temporary directory (created on first connection).
pub fn sqlite_url() -> String {
    let dir = std::env::temp_dir().join(format!("tollgate-test-{}", uuid::Uuid::now_v7()));
    format!("sqlite://{}/auth.db?mode=rwc", dir.display())
}

/// Creates a new, empty PostgreSQL database and returns its URL.
pub async fn postgres_url() -> Result<String, StoreError> {
    let admin_url = std::env::var("TOLLGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("tollgate_test_{}", uuid::Uuid::now_v7().simple());
    let admin = AuthStore::connect(&admin_url).await?;
    // `name` is made here from a UUID, never input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin.pool)
        .await?;
    admin.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(&admin_url);
    Ok(format!("{base}/{name}"))
}

pub async fn sqlite() -> Result<AuthStore, StoreError> {
    let store = AuthStore::connect(&sqlite_url()).await?;
    store.migrate().await?;
    Ok(store)
}

pub async fn postgres() -> Result<AuthStore, StoreError> {
    let store = AuthStore::connect(&postgres_url().await?).await?;
    store.migrate().await?;
    Ok(store)
}
