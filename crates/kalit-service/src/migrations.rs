//! Database migrations as the relay and the RA ship them: SQL files compiled into the binary, numbered
//! in order, applied by sqlx's migrator (which records each in `_sqlx_migrations` and checks checksums).

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr};

/// A migrator for `files` (SQL text and a short description), versions 1, 2, ... in the order given.
pub fn migrator(files: &[(&'static str, &'static str)]) -> Migrator {
    let migrations = files
        .iter()
        .zip(1..)
        .map(|(&(sql, description), version)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                AssertSqlSafe(sql).into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}
