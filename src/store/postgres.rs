//! The PostgreSQL store, for several replicas on different hosts. The same tables as SQLite
//! (times as unix milliseconds, JSON as text); migrations in `migrations/postgres/`, run at start
//! under an advisory lock so replicas may start at once. Every change takes a transaction-level
//! advisory lock, reads, decides (`change::decide`), writes state + audit row + version, and
//! `NOTIFY`s the other replicas in the same transaction (delivered on commit).

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};

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
     created_at, status_at, deployed_at, first_commit_at, summary) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     ON CONFLICT (id) DO UPDATE SET status = excluded.status, status_at = excluded.status_at,
     deployed_at = excluded.deployed_at, summary = excluded.summary";

/// Ordered schema migrations (`migrations/postgres/`), each run once in a transaction.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_initial.sql")),
    (2, include_str!("../../migrations/postgres/0002_notify.sql")),
    (3, include_str!("../../migrations/postgres/0003_leases.sql")),
    (4, include_str!("../../migrations/postgres/0004_store_identity.sql")),
    (5, include_str!("../../migrations/postgres/0005_release_summary.sql")),
    (6, include_str!("../../migrations/postgres/0006_schedules.sql")),
];

/// The advisory lock key migrations run under (any fixed number; "toggled" in ASCII).
const MIGRATION_LOCK: i64 = 0x0074_6f67_676c_6564;
/// The advisory lock every change takes, so what it read is what it replaces.
const CHANGE_LOCK: i64 = MIGRATION_LOCK + 1;
/// The channel replicas `LISTEN` on; the payload is the new change version.
pub const CHANNEL: &str = "toggled_changes";

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
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
        let store = Self { pool };
        store.migrate().await?;
        store.summarise_old_releases().await?;
        Ok(store)
    }

    /// The pool, for `LISTEN`.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Writes (or rewrites) release `id`'s summary row.
    async fn write_summary(tx: &mut Transaction<'_, Postgres>, id: i64, r: &ReleaseRecord) -> Result<(), StoreError> {
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
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *tx).await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
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
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(Utc::now().timestamp_millis())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn write_audit(tx: &mut Transaction<'_, Postgres>, a: &NewAudit) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit (at, actor, flag, action, before, after, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
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

impl PostgresStore {
    /// One change in one transaction; with a schedule, only while it is pending, marking it done.
    async fn apply_in(&self, change: &Change, schedule: Option<i64>) -> Result<Result<NewAudit, Refusal>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHANGE_LOCK).execute(&mut *tx).await?;
        if let Some(id) = schedule {
            let done = sqlx::query(
                "UPDATE schedules SET status = 'done', result = 'applied', ran_at = $1 WHERE id = $2 AND status = 'pending'",
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
        let current = sqlx::query("SELECT flag, kind, value, reason, actor, created_at FROM overrides WHERE flag = $1")
            .bind(&change.flag)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| override_of(&row))
            .transpose()?;
        let pause =
            sqlx::query("SELECT flag, paused_total_ms, paused_since, paused_by FROM rollout_pauses WHERE flag = $1")
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
                    "INSERT INTO overrides (flag, kind, value, reason, actor, created_at) VALUES ($1, $2, $3, $4, $5, $6)
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
                sqlx::query("DELETE FROM overrides WHERE flag = $1").bind(&change.flag).execute(&mut *tx).await?;
            }
            Write::Pause(p) => {
                sqlx::query(
                    "INSERT INTO rollout_pauses (flag, paused_total_ms, paused_since, paused_by) VALUES ($1, $2, $3, $4)
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
            let version: i64 =
                sqlx::query_scalar("UPDATE state_version SET version = version + 1 WHERE id = 1 RETURNING version")
                    .fetch_one(&mut *tx)
                    .await?;
            sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(version.to_string()).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Ok(decision.audit))
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn load(&self) -> Result<PersistedState, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let version: i64 =
            sqlx::query_scalar("SELECT version FROM state_version WHERE id = 1").fetch_one(&mut *tx).await?;
        let mut overrides = HashMap::new();
        for row in sqlx::query("SELECT flag, kind, value, reason, actor, created_at FROM overrides")
            .fetch_all(&mut *tx)
            .await?
        {
            let record = override_of(&row)?;
            overrides.insert(record.flag.clone(), record);
        }
        let mut first_seen = HashMap::new();
        for row in sqlx::query("SELECT flag, first_seen FROM flag_first_seen").fetch_all(&mut *tx).await? {
            first_seen.insert(row.try_get::<String, _>("flag")?, millis_to_time(row.try_get("first_seen")?));
        }
        let mut pauses = HashMap::new();
        for row in sqlx::query("SELECT flag, paused_total_ms, paused_since, paused_by FROM rollout_pauses")
            .fetch_all(&mut *tx)
            .await?
        {
            pauses.insert(row.try_get::<String, _>("flag")?, pause_of(&row)?);
        }
        tx.commit().await?;
        Ok(PersistedState { version, overrides, first_seen, pauses })
    }

    async fn version(&self) -> Result<i64, StoreError> {
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
        sqlx::query("UPDATE state_version SET version = version WHERE id = 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn listen(&self, wake: &tokio::sync::Notify) -> Result<(), StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANNEL).await?;
        wake.notify_one();
        loop {
            // `None`: the connection was lost; the next call reconnects. Either way the
            // poller checks the version, so a lost notification only costs latency.
            listener.try_recv().await?;
            wake.notify_one();
        }
    }

    async fn record_first_seen(&self, flags: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO flag_first_seen (flag, first_seen) SELECT unnest($1::TEXT[]), $2 ON CONFLICT (flag) DO NOTHING",
        )
        .bind(flags)
        .bind(now.timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn apply(&self, change: &Change) -> Result<Result<NewAudit, Refusal>, StoreError> {
        self.apply_in(change, None).await
    }

    async fn apply_scheduled(&self, id: i64, change: &Change) -> Result<Result<NewAudit, Refusal>, StoreError> {
        self.apply_in(change, Some(id)).await
    }

    async fn create_schedule(&self, s: &NewSchedule) -> Result<i64, StoreError> {
        let (kind, value) = s.action.parts();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO schedules (flag, at, kind, value, reason, created_by, created_at, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
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
        Ok(id)
    }

    async fn schedules(&self, flag: Option<&str>, limit: u32) -> Result<Vec<ScheduleRecord>, StoreError> {
        let sql = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE ($1::TEXT IS NULL OR flag = $1) ORDER BY id DESC LIMIT $2"
        );
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(flag).bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.iter().map(schedule_of).collect()
    }

    async fn schedule(&self, id: i64) -> Result<Option<ScheduleRecord>, StoreError> {
        let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(schedule_of).transpose()
    }

    async fn due_schedules(&self, now: DateTime<Utc>) -> Result<Vec<ScheduleRecord>, StoreError> {
        let sql =
            format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE status = 'pending' AND at <= $1 ORDER BY at, id");
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
        let sql = if approve {
            "UPDATE schedules SET status = 'pending', result = $1, at = GREATEST(at, $2)
             WHERE id = $3 AND status = 'requested' AND created_by <> $4"
        } else {
            "UPDATE schedules SET status = 'rejected', result = $1, ran_at = $2 WHERE id = $3 AND status = 'requested' AND $4::TEXT IS NOT NULL"
        };
        let done =
            sqlx::query(sql).bind(result).bind(now.timestamp_millis()).bind(id).bind(by).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn expire_requests(&self, before: DateTime<Utc>, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE schedules SET status = 'expired', result = 'not approved in time', ran_at = $1
             WHERE status = 'requested' AND created_at < $2",
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
        let done = sqlx::query(
            "UPDATE schedules SET status = $1, result = $2, ran_at = $3 WHERE id = $4 AND status = 'pending'",
        )
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
            "SELECT {AUDIT_COLUMNS} FROM audit WHERE ($1::TEXT IS NULL OR flag = $1)
             AND ($2::TEXT IS NULL OR substr(actor, 1, length($2)) = $2) ORDER BY id DESC LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(flag)
            .bind(actor)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(audit_of).collect()
    }

    async fn record(&self, audit: &NewAudit) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHANGE_LOCK).execute(&mut *tx).await?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_after(&self, id: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE id > $1 ORDER BY id LIMIT $2");
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
        let current: String = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
             WHERE leases.holder = excluded.holder OR leases.until_ms < $4
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now.timestamp_millis().saturating_add(ttl.num_milliseconds()))
        .bind(now.timestamp_millis())
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or_default();
        Ok(current == holder)
    }

    async fn count_audit(&self, action: &str, prefix: &str, since: DateTime<Utc>) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*)::BIGINT FROM audit WHERE action = $1 AND substr(flag, 1, length($2)) = $2 AND at >= $3",
        )
        .bind(action)
        .bind(prefix)
        .bind(since.timestamp_millis())
        .fetch_one(&self.pool)
        .await?)
    }

    async fn last_audit_id(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0)::BIGINT FROM audit").fetch_one(&self.pool).await?)
    }

    async fn notify_cursor(&self, url: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT last_id FROM notify_cursors WHERE url = $1")
            .bind(url)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_notify_cursor(&self, url: &str, id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO notify_cursors (url, last_id) VALUES ($1, $2)
             ON CONFLICT (url) DO UPDATE SET last_id = GREATEST(notify_cursors.last_id, excluded.last_id)",
        )
        .bind(url)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn touch_evaluated(&self, batch: &[(String, i64)]) -> Result<(), StoreError> {
        let (flags, times): (Vec<String>, Vec<i64>) = batch.iter().cloned().unzip();
        sqlx::query(
            "INSERT INTO last_evaluated (flag, at) SELECT * FROM unnest($1::TEXT[], $2::BIGINT[])
             ON CONFLICT (flag) DO UPDATE SET at = GREATEST(last_evaluated.at, excluded.at)",
        )
        .bind(&flags)
        .bind(&times)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn last_evaluated(&self) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        let rows = sqlx::query("SELECT flag, at FROM last_evaluated").fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|row| Ok((row.try_get::<String, _>("flag")?, millis_to_time(row.try_get("at")?))))
            .collect()
    }

    async fn create_release(&self, r: &ReleaseRecord, audit: &NewAudit) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHANGE_LOCK).execute(&mut *tx).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO releases (service, version, kind, status, scheduled_at, created_at, status_at, deployed_at,
             first_commit_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
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
        .fetch_one(&mut *tx)
        .await?;
        Self::write_summary(&mut tx, id, r).await?;
        Self::write_audit(&mut tx, &NewAudit { flag: release_subject(id), ..audit.clone() }).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn releases(&self, service: Option<&str>) -> Result<Vec<ReleaseRecord>, StoreError> {
        let sql =
            format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE ($1::TEXT IS NULL OR service = $1) ORDER BY id DESC");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(service).fetch_all(&self.pool).await?;
        rows.iter().map(release_of).collect()
    }

    async fn release_summaries(&self, page: ReleasePage<'_>) -> Result<Vec<ReleaseSummary>, StoreError> {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM release_summaries WHERE ($1::TEXT IS NULL OR service = $1)
             AND ($2::BIGINT IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        );
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(page.service)
            .bind(page.before)
            .bind(page.limit.map(i64::from))
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
        let sql = format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(release_of).transpose()
    }

    async fn update_release(&self, r: &ReleaseRecord, audit: &NewAudit) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHANGE_LOCK).execute(&mut *tx).await?;
        Self::write_summary(&mut tx, r.id, r).await?;
        sqlx::query("UPDATE releases SET status = $1, status_at = $2, deployed_at = $3, data = $4 WHERE id = $5")
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
}
