//! What one SQL database does differently from the other ([`Dialect`]), the bounds generic SQL
//! code needs ([`Binds`]), and the migrations, run by sqlx's migrator.

use async_trait::async_trait;
use sqlx::migrate::{Migrate, Migration, MigrationType, Migrator};
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Pool, Row, SqlSafeStr as _, Transaction, Type};

use super::StoreError;
use super::rows::Decodes;

/// A value both backends bind as a parameter.
pub trait Binds<DB: Database>: for<'q> Encode<'q, DB> + Type<DB> + Send {}

impl<DB: Database, T: for<'q> Encode<'q, DB> + Type<DB> + Send> Binds<DB> for T {}

/// What one database does differently from the other; everything else is [`SqlStore`]'s.
#[async_trait]
pub trait Dialect: std::fmt::Debug + Send + Sync + 'static {
    type Db: Database;

    /// Fails when the database can no longer be used safely (SQLite: its file was deleted or
    /// replaced under the server). Checked before every write and every poll.
    fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// A transaction that holds the write lock before it reads, so what a change read is what
    /// it replaces, even with another process (or replica) writing.
    async fn begin_write(&self, pool: &Pool<Self::Db>) -> Result<Transaction<'static, Self::Db>, StoreError>;
    /// A transaction that reads several tables as of one moment.
    async fn begin_read(&self, pool: &Pool<Self::Db>) -> Result<Transaction<'static, Self::Db>, StoreError>;
    /// Tells other replicas the change counter is now `version` (inside the transaction that
    /// bumped it, so it is delivered on commit). Nothing to do for a single file.
    async fn announce(&self, tx: &mut Transaction<'static, Self::Db>, version: i64) -> Result<(), StoreError>;
    /// The statements that write and commit without changing anything (see [`Store::probe_write`]).
    fn probe_sql(&self) -> &'static [&'static str];
    /// See [`Store::listen`]; backends without notifications never return.
    async fn listen(&self, pool: &Pool<Self::Db>, wake: &tokio::sync::Notify) -> Result<(), StoreError> {
        let _ = (pool, wake);
        std::future::pending().await
    }
}

/// The migrations of one dialect as sqlx's migrator runs them: `(version, description, sql)`
/// from the files under `migrations/<dialect>/`, embedded at build time.
pub(super) fn migrator(files: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(*version, (*description).into(), MigrationType::Simple, sql.into_sql_str(), false)
            })
            .collect(),
    )
}

/// Runs the migrations not yet applied. A store created before migrations were sqlx's records
/// them in its own table (`schema_migrations`): those are marked applied, not run again.
pub(super) async fn migrate<DB: Database>(pool: &Pool<DB>, migrator: &Migrator) -> Result<(), StoreError>
where
    DB::Connection: Migrate,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    i64: Decodes<DB>,
{
    let migration_error = |e: sqlx::migrate::MigrateError| StoreError::Migration(e.to_string());
    // No such table on a store created since: nothing to carry over.
    let old = sqlx::query("SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) AS version FROM schema_migrations")
        .fetch_one(pool)
        .await
        .ok()
        .and_then(|row| row.try_get::<i64, _>("version").ok())
        .unwrap_or(0);
    if old > 0 {
        migrator.skip(pool, Some(old)).await.map_err(migration_error)?;
    }
    migrator.run(pool).await.map_err(migration_error)
}
