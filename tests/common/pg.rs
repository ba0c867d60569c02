//! Fresh PostgreSQL databases for tests and benchmarks (the local server, or
//! `RECORDBRIDGE_TEST_PG_URL`).
#![allow(dead_code)]

use sqlx::Connection;

pub fn admin_url() -> String {
    std::env::var("RECORDBRIDGE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A new, empty database named `PREFIX_<random>`: (its URL, its name).
pub async fn fresh_db(prefix: &str) -> (String, String) {
    let admin = admin_url();
    let name = format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut c = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL not reachable at {admin} ({e}): run deploy/local/test.sh")
        });
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut c)
        .await
        .unwrap();
    (
        format!("{}/{name}", admin.rsplit_once('/').unwrap().0),
        name,
    )
}

/// Drop a database made by [`fresh_db`] (connections to it are closed).
pub async fn drop_db(name: &str) {
    let mut c = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut c)
    .await;
}
