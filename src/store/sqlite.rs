//! The SQLite dialect of the one SQL store ([`super::sql`]): one file, WAL journal,
//! `synchronous=FULL` (an acknowledged change survives a crash), migrations embedded in the
//! binary and run by sqlx's migrator at open. A change takes the write lock before it reads
//! (`BEGIN IMMEDIATE`); a database file deleted or replaced under the server is never written.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite, Transaction};

use super::StoreError;
use super::dialect::{Dialect, migrate, migrator};
use super::sql::SqlStore;

/// Ordered schema migrations (`migrations/sqlite/`, one file each).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../../migrations/sqlite/0001_initial.sql")),
    (2, "pause owner", include_str!("../../migrations/sqlite/0002_pause_owner.sql")),
    (3, "releases", include_str!("../../migrations/sqlite/0003_releases.sql")),
    (4, "notify", include_str!("../../migrations/sqlite/0004_notify.sql")),
    (5, "leases", include_str!("../../migrations/sqlite/0005_leases.sql")),
    (6, "write probe", include_str!("../../migrations/sqlite/0006_write_probe.sql")),
    (7, "store identity", include_str!("../../migrations/sqlite/0007_store_identity.sql")),
    (8, "release summary", include_str!("../../migrations/sqlite/0008_release_summary.sql")),
    (9, "schedules", include_str!("../../migrations/sqlite/0009_schedules.sql")),
];

/// The store on one SQLite file.
pub type SqliteStore = SqlStore<SqliteDialect>;

#[derive(Debug, Clone)]
pub struct SqliteDialect {
    /// The database file and its identity (device, inode) when it was opened: a file deleted
    /// or replaced under a running server is noticed, never written on unseen.
    file: Option<(std::path::PathBuf, (u64, u64))>,
}

/// The (device, inode) of a file, or `None` when it does not exist.
fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl SqlStore<SqliteDialect> {
    /// Opens and migrates the database at `url` (`sqlite://PATH`), creating it if missing only
    /// when `create` is set (the server; commands that only read never create one).
    pub async fn open(url: &str, create: bool) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?;
        if !create && !options.get_filename().exists() {
            return Err(StoreError::Missing(options.get_filename().display().to_string()));
        }
        let path = options.get_filename().to_path_buf();
        if create && !path.exists() && url != "sqlite::memory:" {
            tracing::warn!(path = %path.display(), "no store at this path: creating a new, empty one");
        }
        let options = options
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            // 512 KiB of page cache per connection (SQLite's default is 2 MiB): a scan over many
            // releases does not leave 8 MiB cached across the pool.
            .pragma("cache_size", "-512")
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .after_release(super::close_if_half_open::<Sqlite>)
            .connect_with(options)
            .await?;
        let file = identity(&path).map(|id| (path, id));
        migrate(&pool, &migrator(MIGRATIONS)).await?;
        let store = Self { pool, dialect: SqliteDialect { file } };
        store.summarise_old_releases().await?;
        Ok(store)
    }
}

#[async_trait]
impl Dialect for SqliteDialect {
    type Db = Sqlite;

    fn check(&self) -> Result<(), StoreError> {
        match &self.file {
            Some((path, opened)) if identity(path) != Some(*opened) => {
                Err(StoreError::Replaced(path.display().to_string()))
            }
            _ => Ok(()),
        }
    }

    async fn begin_write(&self, pool: &Pool<Sqlite>) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn begin_read(&self, pool: &Pool<Sqlite>) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(pool.begin().await?)
    }

    async fn announce(&self, _: &mut Transaction<'static, Sqlite>, _: i64) -> Result<(), StoreError> {
        Ok(())
    }

    fn probe_sql(&self) -> &'static [&'static str] {
        // 64 KiB: more than any change writes, so a probe that commits means a change would
        // (a smaller write can fit in space the failed one left allocated in the journal).
        &["INSERT OR REPLACE INTO write_probe (id, pad) VALUES (1, zeroblob(65536))", "DELETE FROM write_probe"]
    }
}
