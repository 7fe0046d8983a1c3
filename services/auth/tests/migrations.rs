// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

//! The PostgreSQL and SQLite migrations build the same schema: the same tables, each with the
//! same columns and the same named indexes. Every store query runs on both, so a column or an
//! index added to one dialect only would show up as a failure on one database, or as a query
//! that is fast on one and scans on the other.

mod common;

use std::collections::BTreeMap;

use common::{Db, fresh_database};
use sqlx::{Connection, PgConnection, Row, SqliteConnection};
use tollgate_auth::AuthStore;

/// Each table, with its columns and the indexes made by `CREATE INDEX` (not those a primary
/// key or a unique constraint makes, whose names differ by database).
type Schema = BTreeMap<String, (Vec<String>, Vec<String>)>;

async fn migrated(db: Db) -> String {
    let url = fresh_database(db).await;
    let store = AuthStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    url
}

async fn sqlite_schema(url: &str) -> Schema {
    let mut conn = SqliteConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for table in tables {
        let mut columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
            .bind(&table)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        columns.sort();
        let indexes: Vec<String> = sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? \
             AND sql IS NOT NULL ORDER BY name",
        )
        .bind(&table)
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>(0))
        .collect();
        schema.insert(table, (columns, indexes));
    }
    schema
}

async fn postgres_schema(url: &str) -> Schema {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' \
         AND table_type = 'BASE TABLE' AND table_name NOT LIKE '\\_sqlx%' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for table in tables {
        let mut columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1",
        )
        .bind(&table)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        columns.sort();
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT i.relname::text FROM pg_index x \
             JOIN pg_class i ON i.oid = x.indexrelid \
             JOIN pg_class t ON t.oid = x.indrelid \
             WHERE t.relname = $1 \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) \
             ORDER BY 1",
        )
        .bind(&table)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        schema.insert(table, (columns, indexes));
    }
    schema
}

#[tokio::test]
async fn postgres_and_sqlite_migrations_build_the_same_schema() {
    let sqlite = sqlite_schema(&migrated(Db::Sqlite).await).await;
    let postgres = postgres_schema(&migrated(Db::Postgres).await).await;
    assert!(sqlite.contains_key("usage_events"), "{sqlite:?}");
    let mut differences = Vec::new();
    for table in sqlite.keys().chain(postgres.keys()) {
        match (sqlite.get(table), postgres.get(table)) {
            (Some(a), Some(b)) if a == b => {}
            (Some((columns, indexes)), Some((pg_columns, pg_indexes))) => {
                if columns != pg_columns {
                    differences.push(format!(
                        "{table} columns: sqlite {columns:?}, postgres {pg_columns:?}"
                    ));
                }
                if indexes != pg_indexes {
                    differences.push(format!(
                        "{table} indexes: sqlite {indexes:?}, postgres {pg_indexes:?}"
                    ));
                }
            }
            (Some(_), None) => differences.push(format!("{table}: in SQLite only")),
            (None, _) => differences.push(format!("{table}: in PostgreSQL only")),
        }
    }
    differences.dedup();
    assert!(
        differences.is_empty(),
        "the migrations differ:\n{}",
        differences.join("\n")
    );
}
