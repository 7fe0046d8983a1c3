//! Fresh, migrated databases for tests (of this service and of the services that share its
//! database): a temporary SQLite file, and a new database on a PostgreSQL server
//! (`TOLLGATE_TEST_POSTGRES`, by default `postgres://postgres@127.0.0.1:5432/test`) named
//! `tollgate_test_<uuid>`.

use super::{AuthStore, StoreError};

pub async fn sqlite() -> Result<AuthStore, StoreError> {
    let dir = std::env::temp_dir().join(format!("tollgate-test-{}", uuid::Uuid::now_v7()));
    let url = format!("sqlite://{}/auth.db?mode=rwc", dir.display());
    let store = AuthStore::connect(&url).await?;
    store.migrate().await?;
    Ok(store)
}

pub async fn postgres() -> Result<AuthStore, StoreError> {
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
    let store = AuthStore::connect(&format!("{base}/{name}")).await?;
    store.migrate().await?;
    Ok(store)
}
