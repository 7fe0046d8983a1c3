//! The two databases every scenario runs on. The admin tests include this file by path, so
//! that their scenarios run the same way.

/// Generates a `sqlite` and a `postgres` test for each scenario function, which takes a
/// [`Db`] (the test file imports `Db`, and this macro by its path).
#[allow(
    unused_macros,
    reason = "not every test file runs scenarios on both databases"
)]
macro_rules! on_both_databases {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[actix_web::test]
            async fn sqlite() {
                super::$scenario(super::Db::Sqlite).await;
            }
            #[actix_web::test]
            async fn postgres() {
                super::$scenario(super::Db::Postgres).await;
            }
        }
    )*};
}

#[allow(
    unused_imports,
    reason = "not every test file runs scenarios on both databases"
)]
pub(crate) use on_both_databases;

#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}
