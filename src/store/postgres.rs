//! The PostgreSQL dialect of the one SQL store ([`super::sql`]), for several replicas on
//! different hosts: the same tables as SQLite (times as unix milliseconds, JSON as text);
//! migrations in `migrations/postgres/`, run by sqlx's migrator at start under its advisory lock
//! so replicas may start at once. Every write takes a transaction-level advisory lock, and a
//! change `NOTIFY`s the other replicas in its transaction (delivered on commit).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Postgres, Transaction};

use super::StoreError;
use super::dialect::{Dialect, migrate, migrator};
use super::sql::SqlStore;

/// Ordered schema migrations (`migrations/postgres/`, one file each).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../../migrations/postgres/0001_initial.sql")),
    (2, "notify", include_str!("../../migrations/postgres/0002_notify.sql")),
    (3, "leases", include_str!("../../migrations/postgres/0003_leases.sql")),
    (4, "store identity", include_str!("../../migrations/postgres/0004_store_identity.sql")),
    (5, "release summary", include_str!("../../migrations/postgres/0005_release_summary.sql")),
    (6, "schedules", include_str!("../../migrations/postgres/0006_schedules.sql")),
];

/// The advisory lock every write takes, so what a change read is what it replaces ("toggled"
/// in ASCII, plus one).
const CHANGE_LOCK: i64 = 0x0074_6f67_676c_6565;
/// The channel replicas `LISTEN` on; the payload is the new change version.
pub const CHANNEL: &str = "toggled_changes";

/// The store on a PostgreSQL database.
pub type PostgresStore = SqlStore<PostgresDialect>;

#[derive(Debug, Clone)]
pub struct PostgresDialect;

impl SqlStore<PostgresDialect> {
    /// Connects (lazily: a database that is down at start is retried by every later call) and
    /// migrates when it can.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        // Two connections kept open: a change never waits for a new backend to start (slow on a
        // loaded host); a down database still fails a write within the acquire timeout, well
        // inside the request timeout, so it answers 503 rather than timing out.
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .min_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .after_release(super::close_if_half_open::<Postgres>)
            .connect_with(options)
            .await?;
        migrate(&pool, &migrator(MIGRATIONS)).await?;
        let store = Self { pool, dialect: PostgresDialect };
        store.summarise_old_releases().await?;
        Ok(store)
    }
}

#[async_trait]
impl Dialect for PostgresDialect {
    type Db = Postgres;

    async fn begin_write(&self, pool: &Pool<Postgres>) -> Result<Transaction<'static, Postgres>, StoreError> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHANGE_LOCK).execute(&mut *tx).await?;
        Ok(tx)
    }

    async fn begin_read(&self, pool: &Pool<Postgres>) -> Result<Transaction<'static, Postgres>, StoreError> {
        let mut tx = pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        Ok(tx)
    }

    async fn announce(&self, tx: &mut Transaction<'static, Postgres>, version: i64) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(version.to_string()).execute(&mut **tx).await?;
        Ok(())
    }

    fn probe_sql(&self) -> &'static [&'static str] {
        &["UPDATE state_version SET version = version WHERE id = 1"]
    }

    async fn listen(&self, pool: &Pool<Postgres>, wake: &tokio::sync::Notify) -> Result<(), StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        wake.notify_one();
        loop {
            // `None`: the connection was lost; the next call reconnects. Either way the
            // poller checks the version, so a lost notification only costs latency.
            listener.try_recv().await?;
            wake.notify_one();
        }
    }
}
