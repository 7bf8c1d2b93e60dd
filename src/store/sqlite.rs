//! The SQLite store: one file, WAL journal, `synchronous=FULL` (an acknowledged change survives a
//! crash), migrations embedded in the binary and applied at open.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, Transaction};

use super::change::{Change, Refusal, Write, decide};
use super::rows::{
    AUDIT_COLUMNS, RELEASE_COLUMNS, SUMMARY_COLUMNS, audit_of, data_text, override_of, pause_of, release_of,
    summary_of, summary_text,
};
use super::schedule::{NewSchedule, SCHEDULE_COLUMNS, ScheduleRecord, schedule_of};
use super::{
    AuditEntry, NewAudit, PersistedState, ReleasePage, ReleaseRecord, ReleaseSummary, Store, StoreError,
    millis_to_time, release_subject,
};

/// Writes a release's summary (in the transaction that writes the release).
const SUMMARY_UPSERT: &str = "INSERT INTO release_summaries (id, service, version, kind, status, scheduled_at,
     created_at, status_at, deployed_at, first_commit_at, summary) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
     ON CONFLICT (id) DO UPDATE SET status = excluded.status, status_at = excluded.status_at,
     deployed_at = excluded.deployed_at, summary = excluded.summary";

/// Ordered schema migrations (`migrations/sqlite/`, one file each); each runs once, in a
/// transaction, recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_initial.sql")),
    (2, include_str!("../../migrations/sqlite/0002_pause_owner.sql")),
    (3, include_str!("../../migrations/sqlite/0003_releases.sql")),
    (4, include_str!("../../migrations/sqlite/0004_notify.sql")),
    (5, include_str!("../../migrations/sqlite/0005_leases.sql")),
    (6, include_str!("../../migrations/sqlite/0006_write_probe.sql")),
    (7, include_str!("../../migrations/sqlite/0007_store_identity.sql")),
    (8, include_str!("../../migrations/sqlite/0008_release_summary.sql")),
    (9, include_str!("../../migrations/sqlite/0009_schedules.sql")),
];

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The database file and its identity (device, inode) when it was opened: a file deleted
    /// or replaced under a running server is noticed, never written on unseen.
    file: Option<(std::path::PathBuf, (u64, u64))>,
}

/// The (device, inode) of a file, or `None` when it does not exist.
fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl SqliteStore {
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
        let store = Self { pool, file };
        store.migrate().await?;
        store.summarise_old_releases().await?;
        Ok(store)
    }

    /// Fails when the database file this store opened was deleted or replaced since.
    fn same_file(&self) -> Result<(), StoreError> {
        match &self.file {
            Some((path, opened)) if identity(path) != Some(*opened) => {
                Err(StoreError::Replaced(path.display().to_string()))
            }
            _ => Ok(()),
        }
    }

    /// Writes (or rewrites) release `id`'s summary row.
    async fn write_summary(tx: &mut Transaction<'_, Sqlite>, id: i64, r: &ReleaseRecord) -> Result<(), StoreError> {
        sqlx::query(SUMMARY_UPSERT)
            .bind(id)
            .bind(&r.service)
            .bind(&r.version)
            .bind(&r.kind)
            .bind(&r.status)
            .bind(r.scheduled_at.map(|t| t.timestamp_millis()))
            .bind(r.created_at.timestamp_millis())
            .bind(r.status_at.timestamp_millis())
            .bind(r.deployed_at.map(|t| t.timestamp_millis()))
            .bind(r.first_commit_at.timestamp_millis())
            .bind(summary_text(r)?)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Summarises releases stored before summaries existed (once, when the store opens).
    async fn summarise_old_releases(&self) -> Result<(), StoreError> {
        let missing: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM releases WHERE id NOT IN (SELECT id FROM release_summaries) ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        for id in missing {
            if let Some(r) = self.release(id).await? {
                let mut tx = self.pool.begin().await?;
                Self::write_summary(&mut tx, id, &r).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations").fetch_all(&mut *tx).await?;
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            sqlx::raw_sql(*sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::Migration(format!("{version}: {e}")))?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
                .bind(version)
                .bind(Utc::now().timestamp_millis())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn write_audit(tx: &mut Transaction<'_, Sqlite>, a: &NewAudit) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO audit (at, actor, flag, action, before, after, reason) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(a.at.timestamp_millis())
            .bind(&a.actor)
            .bind(&a.flag)
            .bind(&a.action)
            .bind(a.before.as_ref().map(ToString::to_string))
            .bind(a.after.as_ref().map(ToString::to_string))
            .bind(&a.reason)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

macro_rules! override_columns {
    () => {
        "flag, kind, value, reason, actor, created_at"
    };
}

macro_rules! pause_columns {
    () => {
        "flag, paused_total_ms, paused_since, paused_by"
    };
}

impl SqliteStore {
    /// One change in one transaction; with a schedule, only while it is pending, marking it done.
    async fn apply_in(&self, change: &Change, schedule: Option<i64>) -> Result<Result<NewAudit, Refusal>, StoreError> {
        // IMMEDIATE: take the write lock before reading, so what was read is what is replaced
        // even with another process writing the same file.
        self.same_file()?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(id) = schedule {
            let done = sqlx::query(
                "UPDATE schedules SET status = 'done', result = 'applied', ran_at = ? WHERE id = ? AND status = 'pending'",
            )
            .bind(change.at.timestamp_millis())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(Err(Refusal::NotPending));
            }
        }

        let current = sqlx::query(concat!("SELECT ", override_columns!(), " FROM overrides WHERE flag = ?"))
            .bind(&change.flag)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| override_of(&row))
            .transpose()?;
        let pause = sqlx::query(concat!("SELECT ", pause_columns!(), " FROM rollout_pauses WHERE flag = ?"))
            .bind(&change.flag)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| pause_of(&row))
            .transpose()?
            .unwrap_or_default();
        let decision = match decide(change, current.as_ref(), &pause) {
            Ok(decision) => decision,
            Err(refusal) => {
                tx.rollback().await?;
                return Ok(Err(refusal));
            }
        };
        match &decision.write {
            Write::Override(Some(record)) => {
                let (kind, value) = record.kind.parts();
                sqlx::query(
                    "INSERT INTO overrides (flag, kind, value, reason, actor, created_at) VALUES (?, ?, ?, ?, ?, ?)
                     ON CONFLICT (flag) DO UPDATE SET kind = excluded.kind, value = excluded.value,
                     reason = excluded.reason, actor = excluded.actor, created_at = excluded.created_at",
                )
                .bind(&record.flag)
                .bind(kind)
                .bind(value)
                .bind(&record.reason)
                .bind(&record.actor)
                .bind(record.created_at.timestamp_millis())
                .execute(&mut *tx)
                .await?;
            }
            Write::Override(None) => {
                sqlx::query("DELETE FROM overrides WHERE flag = ?").bind(&change.flag).execute(&mut *tx).await?;
            }
            Write::Pause(p) => {
                sqlx::query(
                    "INSERT INTO rollout_pauses (flag, paused_total_ms, paused_since, paused_by) VALUES (?, ?, ?, ?)
                     ON CONFLICT (flag) DO UPDATE SET paused_total_ms = excluded.paused_total_ms,
                     paused_since = excluded.paused_since, paused_by = excluded.paused_by",
                )
                .bind(&change.flag)
                .bind(p.paused_total_ms)
                .bind(p.paused_since.map(|t| t.timestamp_millis()))
                .bind(&p.paused_by)
                .execute(&mut *tx)
                .await?;
            }
            Write::AuditOnly => {}
        }
        Self::write_audit(&mut tx, &decision.audit).await?;
        if decision.write != Write::AuditOnly {
            sqlx::query("UPDATE state_version SET version = version + 1 WHERE id = 1").execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Ok(decision.audit))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_release(&self, r: &ReleaseRecord, audit: &NewAudit) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let result = sqlx::query(
            "INSERT INTO releases (service, version, kind, status, scheduled_at, created_at, status_at, deployed_at,
             first_commit_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.service)
        .bind(&r.version)
        .bind(&r.kind)
        .bind(&r.status)
        .bind(r.scheduled_at.map(|t| t.timestamp_millis()))
        .bind(r.created_at.timestamp_millis())
        .bind(r.status_at.timestamp_millis())
        .bind(r.deployed_at.map(|t| t.timestamp_millis()))
        .bind(r.first_commit_at.timestamp_millis())
        .bind(data_text(r)?)
        .execute(&mut *tx)
        .await?;
        let id = result.last_insert_rowid();
        Self::write_summary(&mut tx, id, r).await?;
        Self::write_audit(&mut tx, &NewAudit { flag: release_subject(id), ..audit.clone() }).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn releases(&self, service: Option<&str>) -> Result<Vec<ReleaseRecord>, StoreError> {
        let sql = format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE (?1 IS NULL OR service = ?1) ORDER BY id DESC");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(service).fetch_all(&self.pool).await?;
        rows.iter().map(release_of).collect()
    }

    async fn release_summaries(&self, page: ReleasePage<'_>) -> Result<Vec<ReleaseSummary>, StoreError> {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM release_summaries WHERE (?1 IS NULL OR service = ?1)
             AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3"
        );
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(page.service)
            .bind(page.before)
            .bind(page.limit.map_or(-1, i64::from))
            .fetch(&self.pool);
        // Decoded as they arrive: 10,000 rows are never held at once.
        let mut out = Vec::new();
        while let Some(row) = futures_util::TryStreamExt::try_next(&mut rows).await? {
            out.push(summary_of(&row)?);
        }
        Ok(out)
    }

    async fn latest_release_summaries(&self) -> Result<Vec<ReleaseSummary>, StoreError> {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM release_summaries
             WHERE id IN (SELECT MAX(id) FROM release_summaries GROUP BY service) ORDER BY id DESC"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        rows.iter().map(summary_of).collect()
    }

    async fn release(&self, id: i64) -> Result<Option<ReleaseRecord>, StoreError> {
        let sql = format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(release_of).transpose()
    }

    async fn update_release(&self, r: &ReleaseRecord, audit: &NewAudit) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        Self::write_summary(&mut tx, r.id, r).await?;
        sqlx::query("UPDATE releases SET status = ?, status_at = ?, deployed_at = ?, data = ? WHERE id = ?")
            .bind(&r.status)
            .bind(r.status_at.timestamp_millis())
            .bind(r.deployed_at.map(|t| t.timestamp_millis()))
            .bind(data_text(r)?)
            .bind(r.id)
            .execute(&mut *tx)
            .await?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record(&self, audit: &NewAudit) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_after(&self, id: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE id > ? ORDER BY id LIMIT ?");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.iter().map(audit_of).collect()
    }

    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO leases (name, holder, until_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
             WHERE leases.holder = excluded.holder OR leases.until_ms < ?4",
        )
        .bind(name)
        .bind(holder)
        .bind(now.timestamp_millis().saturating_add(ttl.num_milliseconds()))
        .bind(now.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        let current: String =
            sqlx::query_scalar("SELECT holder FROM leases WHERE name = ?1").bind(name).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(current == holder)
    }

    async fn count_audit(&self, action: &str, prefix: &str, since: DateTime<Utc>) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit WHERE action = ?1 AND substr(flag, 1, length(?2)) = ?2 AND at >= ?3",
        )
        .bind(action)
        .bind(prefix)
        .bind(since.timestamp_millis())
        .fetch_one(&self.pool)
        .await?)
    }

    async fn last_audit_id(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM audit").fetch_one(&self.pool).await?)
    }

    async fn notify_cursor(&self, url: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT last_id FROM notify_cursors WHERE url = ?")
            .bind(url)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_notify_cursor(&self, url: &str, id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO notify_cursors (url, last_id) VALUES (?1, ?2)
             ON CONFLICT (url) DO UPDATE SET last_id = MAX(last_id, excluded.last_id)",
        )
        .bind(url)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn load(&self) -> Result<PersistedState, StoreError> {
        let mut tx = self.pool.begin().await?;
        let version: i64 =
            sqlx::query_scalar("SELECT version FROM state_version WHERE id = 1").fetch_one(&mut *tx).await?;
        let mut overrides = HashMap::new();
        for row in sqlx::query(concat!("SELECT ", override_columns!(), " FROM overrides")).fetch_all(&mut *tx).await? {
            let record = override_of(&row)?;
            overrides.insert(record.flag.clone(), record);
        }
        let mut first_seen = HashMap::new();
        for row in sqlx::query("SELECT flag, first_seen FROM flag_first_seen").fetch_all(&mut *tx).await? {
            first_seen.insert(row.try_get::<String, _>("flag")?, millis_to_time(row.try_get("first_seen")?));
        }
        let mut pauses = HashMap::new();
        for row in sqlx::query(concat!("SELECT ", pause_columns!(), " FROM rollout_pauses")).fetch_all(&mut *tx).await?
        {
            pauses.insert(row.try_get::<String, _>("flag")?, pause_of(&row)?);
        }
        tx.commit().await?;
        Ok(PersistedState { version, overrides, first_seen, pauses })
    }

    async fn version(&self) -> Result<i64, StoreError> {
        self.same_file()?;
        Ok(sqlx::query_scalar("SELECT version FROM state_version WHERE id = 1").fetch_one(&self.pool).await?)
    }

    async fn identity(&self) -> Result<super::StoreIdentity, StoreError> {
        let row = sqlx::query("SELECT store_id, created_at_ms FROM store_identity WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(super::StoreIdentity {
            id: row.try_get("store_id")?,
            created_at: millis_to_time(row.try_get("created_at_ms")?),
        })
    }

    async fn probe_write(&self) -> Result<(), StoreError> {
        self.same_file()?;
        // 64 KiB: more than any change writes, so a probe that commits means a change would
        // (a smaller write can fit in space the failed one left allocated in the journal).
        sqlx::query("INSERT OR REPLACE INTO write_probe (id, pad) VALUES (1, zeroblob(65536))")
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM write_probe").execute(&self.pool).await?;
        Ok(())
    }

    async fn record_first_seen(&self, flags: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for flag in flags {
            sqlx::query("INSERT OR IGNORE INTO flag_first_seen (flag, first_seen) VALUES (?, ?)")
                .bind(flag)
                .bind(now.timestamp_millis())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn apply(&self, change: &Change) -> Result<Result<NewAudit, Refusal>, StoreError> {
        self.apply_in(change, None).await
    }

    async fn apply_scheduled(&self, id: i64, change: &Change) -> Result<Result<NewAudit, Refusal>, StoreError> {
        self.apply_in(change, Some(id)).await
    }

    async fn create_schedule(&self, s: &NewSchedule) -> Result<i64, StoreError> {
        self.same_file()?;
        let (kind, value) = s.action.parts();
        let row = sqlx::query(
            "INSERT INTO schedules (flag, at, kind, value, reason, created_by, created_at, status)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&s.flag)
        .bind(s.at.timestamp_millis())
        .bind(kind)
        .bind(value)
        .bind(&s.reason)
        .bind(&s.created_by)
        .bind(s.created_at.timestamp_millis())
        .bind(if s.requested { "requested" } else { "pending" })
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    async fn schedules(&self, flag: Option<&str>, limit: u32) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.same_file()?;
        let sql = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE (?1 IS NULL OR flag = ?1) ORDER BY id DESC LIMIT ?2"
        );
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(flag).bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.iter().map(schedule_of).collect()
    }

    async fn schedule(&self, id: i64) -> Result<Option<ScheduleRecord>, StoreError> {
        self.same_file()?;
        let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(schedule_of).transpose()
    }

    async fn due_schedules(&self, now: DateTime<Utc>) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.same_file()?;
        let sql =
            format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE status = 'pending' AND at <= ? ORDER BY at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now.timestamp_millis()).fetch_all(&self.pool).await?;
        rows.iter().map(schedule_of).collect()
    }

    async fn decide_request(
        &self,
        id: i64,
        approve: bool,
        by: &str,
        result: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.same_file()?;
        let sql = if approve {
            "UPDATE schedules SET status = 'pending', result = ?1, at = MAX(at, ?2)
             WHERE id = ?3 AND status = 'requested' AND created_by <> ?4"
        } else {
            "UPDATE schedules SET status = 'rejected', result = ?1, ran_at = ?2 WHERE id = ?3 AND status = 'requested' AND ?4 IS NOT NULL"
        };
        let done =
            sqlx::query(sql).bind(result).bind(now.timestamp_millis()).bind(id).bind(by).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn expire_requests(&self, before: DateTime<Utc>, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.same_file()?;
        let done = sqlx::query(
            "UPDATE schedules SET status = 'expired', result = 'not approved in time', ran_at = ?
             WHERE status = 'requested' AND created_at < ?",
        )
        .bind(now.timestamp_millis())
        .bind(before.timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn finish_schedule(
        &self,
        id: i64,
        status: &str,
        result: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.same_file()?;
        let done =
            sqlx::query("UPDATE schedules SET status = ?, result = ?, ran_at = ? WHERE id = ? AND status = 'pending'")
                .bind(status)
                .bind(result)
                .bind(at.timestamp_millis())
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn audit(&self, flag: Option<&str>, actor: Option<&str>, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit WHERE (?1 IS NULL OR flag = ?1)
             AND (?2 IS NULL OR substr(actor, 1, length(?2)) = ?2) ORDER BY id DESC LIMIT ?3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(flag)
            .bind(actor)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(audit_of).collect()
    }

    async fn touch_evaluated(&self, batch: &[(String, i64)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (flag, at) in batch {
            sqlx::query(
                "INSERT INTO last_evaluated (flag, at) VALUES (?, ?)
                 ON CONFLICT (flag) DO UPDATE SET at = max(at, excluded.at)",
            )
            .bind(flag)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn last_evaluated(&self) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        let rows = sqlx::query("SELECT flag, at FROM last_evaluated").fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|row| Ok((row.try_get::<String, _>("flag")?, millis_to_time(row.try_get("at")?))))
            .collect()
    }
}
