//! The one SQL store: every [`Store`] method written once, for any sqlx database, in SQL both
//! SQLite and PostgreSQL run (`$N` parameters, `CAST`, `ON CONFLICT`, `RETURNING`, `CASE` for
//! the larger of two values). What really differs is the small [`Dialect`] trait, implemented in
//! `dialect.rs` and implemented in `sqlite.rs` (the write lock is `BEGIN IMMEDIATE`; the database
//! file must still be the one opened) and `postgres.rs` (an advisory lock; `NOTIFY` on every
//! change; `LISTEN`).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type};

use super::change::{Change, Refusal, Write, decide};
use super::dialect::{Binds, Dialect};
use super::rows::{
    AUDIT_COLUMNS, Decodes, RELEASE_COLUMNS, SUMMARY_COLUMNS, audit_of, data_text, override_of, pause_of, release_of,
    summary_of, summary_text,
};
use super::schedule::{NewSchedule, SCHEDULE_COLUMNS, ScheduleRecord, schedule_of};
use super::{
    AuditEntry, NewAudit, PersistedState, ReleasePage, ReleaseRecord, ReleaseSummary, Store, StoreError, StoreIdentity,
    millis_to_time, release_subject,
};

/// The store over one pool of `D`'s database.
#[derive(Debug, Clone)]
pub struct SqlStore<D: Dialect> {
    pub(super) pool: Pool<D::Db>,
    pub(super) dialect: D,
}

/// Rows a batched upsert writes per statement (two parameters each: under SQLite's and
/// PostgreSQL's parameter limits).
const BATCH: usize = 500;

/// Writes a release's summary (in the transaction that writes the release).
const SUMMARY_UPSERT: &str = "INSERT INTO release_summaries (id, service, version, kind, status, scheduled_at,
     created_at, status_at, deployed_at, first_commit_at, summary) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     ON CONFLICT (id) DO UPDATE SET status = excluded.status, status_at = excluded.status_at,
     deployed_at = excluded.deployed_at, summary = excluded.summary";

const OVERRIDE_COLUMNS: &str = "flag, kind, value, reason, actor, created_at";
const PAUSE_COLUMNS: &str = "flag, paused_total_ms, paused_since, paused_by";

/// `$first, $first+1, ...` pairs for `rows` rows of two columns: `($1, $2), ($3, $4), ...`.
fn pairs(rows: usize) -> String {
    (0..rows).map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2)).collect::<Vec<_>>().join(", ")
}

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    <D::Db as Database>::Arguments: IntoArguments<D::Db>,
    for<'a> &'a str: ColumnIndex<<D::Db as Database>::Row>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db> + Type<D::Db>,
    i64: Binds<D::Db> + Decodes<D::Db>,
    Option<i64>: Binds<D::Db> + Decodes<D::Db>,
    String: Binds<D::Db> + Decodes<D::Db>,
    Option<String>: Binds<D::Db> + Decodes<D::Db>,
{
    /// Writes (or rewrites) release `id`'s summary row.
    async fn write_summary(tx: &mut Transaction<'static, D::Db>, id: i64, r: &ReleaseRecord) -> Result<(), StoreError> {
        sqlx::query(SUMMARY_UPSERT)
            .bind(id)
            .bind(&r.service)
            .bind(&r.version)
            .bind(&r.kind)
            .bind(r.status.as_str())
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
    pub(super) async fn summarise_old_releases(&self) -> Result<(), StoreError> {
        let rows =
            sqlx::query("SELECT id FROM releases WHERE id NOT IN (SELECT id FROM release_summaries) ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        for row in rows {
            let id: i64 = row.try_get("id")?;
            if let Some(r) = self.release(id).await? {
                let mut tx = self.dialect.begin_write(&self.pool).await?;
                Self::write_summary(&mut tx, id, &r).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    async fn write_audit(tx: &mut Transaction<'static, D::Db>, a: &NewAudit) -> Result<(), StoreError> {
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

    /// One change in one transaction; with a schedule, only while it is pending, marking it done.
    async fn apply_in(&self, change: &Change, schedule: Option<i64>) -> Result<Result<NewAudit, Refusal>, StoreError> {
        self.dialect.check()?;
        let mut tx = self.dialect.begin_write(&self.pool).await?;
        if let Some(id) = schedule {
            let done = sqlx::query(
                "UPDATE schedules SET status = 'done', result = 'applied', ran_at = $1
                 WHERE id = $2 AND status = 'pending' RETURNING id",
            )
            .bind(change.at.timestamp_millis())
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if done.is_none() {
                tx.rollback().await?;
                return Ok(Err(Refusal::NotPending));
            }
        }
        let current =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {OVERRIDE_COLUMNS} FROM overrides WHERE flag = $1")))
                .bind(&change.flag)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| override_of(&row))
                .transpose()?;
        let pause =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {PAUSE_COLUMNS} FROM rollout_pauses WHERE flag = $1")))
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
            let row = sqlx::query("UPDATE state_version SET version = version + 1 WHERE id = 1 RETURNING version")
                .fetch_one(&mut *tx)
                .await?;
            self.dialect.announce(&mut tx, row.try_get("version")?).await?;
        }
        tx.commit().await?;
        Ok(Ok(decision.audit))
    }

    /// Runs an `UPDATE ... RETURNING id` on the pool: how many rows it changed.
    async fn updated(
        &self,
        query: sqlx::query::Query<'_, D::Db, <D::Db as Database>::Arguments>,
    ) -> Result<usize, StoreError> {
        Ok(query.fetch_all(&self.pool).await?.len())
    }

    /// Upserts `(key, at)` rows: `sql` is the statement up to `VALUES `, `tail` the conflict
    /// clause after the rows. Nothing to write costs no round trip; one batch is one statement;
    /// more are one transaction. (These rows take no change lock: they never conflict with a
    /// change, and each upsert keeps the right value whatever order they run in.)
    async fn upsert_pairs(&self, sql: &str, tail: &str, rows: &[(&str, i64)]) -> Result<(), StoreError> {
        let statement = |chunk: &[(&str, i64)]| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(format!("{sql}{} {tail}", pairs(chunk.len()))));
            for (key, at) in chunk {
                query = query.bind(*key).bind(*at);
            }
            query
        };
        match rows.len() {
            0 => {}
            n if n <= BATCH => {
                statement(rows).execute(&self.pool).await?;
            }
            _ => {
                let mut tx = self.pool.begin().await?;
                for chunk in rows.chunks(BATCH) {
                    statement(chunk).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl<D: Dialect> Store for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    <D::Db as Database>::Arguments: IntoArguments<D::Db>,
    for<'a> &'a str: ColumnIndex<<D::Db as Database>::Row>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db> + Type<D::Db>,
    i64: Binds<D::Db> + Decodes<D::Db>,
    Option<i64>: Binds<D::Db> + Decodes<D::Db>,
    String: Binds<D::Db> + Decodes<D::Db>,
    Option<String>: Binds<D::Db> + Decodes<D::Db>,
{
    async fn load(&self) -> Result<PersistedState, StoreError> {
        let mut tx = self.dialect.begin_read(&self.pool).await?;
        let version: i64 = sqlx::query("SELECT version FROM state_version WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get("version")?;
        let mut overrides = HashMap::new();
        for row in sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {OVERRIDE_COLUMNS} FROM overrides")))
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
        for row in sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {PAUSE_COLUMNS} FROM rollout_pauses")))
            .fetch_all(&mut *tx)
            .await?
        {
            pauses.insert(row.try_get::<String, _>("flag")?, pause_of(&row)?);
        }
        tx.commit().await?;
        Ok(PersistedState { version, overrides, first_seen, pauses })
    }

    async fn version(&self) -> Result<i64, StoreError> {
        self.dialect.check()?;
        let row = sqlx::query("SELECT version FROM state_version WHERE id = 1").fetch_one(&self.pool).await?;
        Ok(row.try_get("version")?)
    }

    async fn identity(&self) -> Result<StoreIdentity, StoreError> {
        let row = sqlx::query("SELECT store_id, created_at_ms FROM store_identity WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(StoreIdentity { id: row.try_get("store_id")?, created_at: millis_to_time(row.try_get("created_at_ms")?) })
    }

    async fn probe_write(&self) -> Result<(), StoreError> {
        self.dialect.check()?;
        for sql in self.dialect.probe_sql() {
            sqlx::query(*sql).execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn listen(&self, wake: &tokio::sync::Notify) -> Result<(), StoreError> {
        self.dialect.listen(&self.pool, wake).await
    }

    async fn record_first_seen(&self, flags: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
        let rows: Vec<(&str, i64)> = flags.iter().map(|f| (f.as_str(), now.timestamp_millis())).collect();
        self.upsert_pairs(
            "INSERT INTO flag_first_seen (flag, first_seen) VALUES ",
            "ON CONFLICT (flag) DO NOTHING",
            &rows,
        )
        .await
    }

    async fn apply(&self, change: &Change) -> Result<Result<NewAudit, Refusal>, StoreError> {
        self.apply_in(change, None).await
    }

    async fn apply_scheduled(&self, id: i64, change: &Change) -> Result<Result<NewAudit, Refusal>, StoreError> {
        self.apply_in(change, Some(id)).await
    }

    async fn create_schedule(&self, s: &NewSchedule) -> Result<i64, StoreError> {
        self.dialect.check()?;
        let (kind, value) = s.action.parts();
        let row = sqlx::query(
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
        Ok(row.try_get("id")?)
    }

    async fn schedules(&self, flag: Option<&str>, limit: u32) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.dialect.check()?;
        let sql = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE (CAST($1 AS TEXT) IS NULL OR flag = $1)
             ORDER BY id DESC LIMIT $2"
        );
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(flag).bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.iter().map(schedule_of).collect()
    }

    async fn schedule(&self, id: i64) -> Result<Option<ScheduleRecord>, StoreError> {
        self.dialect.check()?;
        let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(schedule_of).transpose()
    }

    async fn due_schedules(&self, now: DateTime<Utc>) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.dialect.check()?;
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
        self.dialect.check()?;
        let sql = if approve {
            "UPDATE schedules SET status = 'pending', result = $1, at = CASE WHEN at > $2 THEN at ELSE $2 END
             WHERE id = $3 AND status = 'requested' AND created_by <> $4 RETURNING id"
        } else {
            "UPDATE schedules SET status = 'rejected', result = $1, ran_at = $2
             WHERE id = $3 AND status = 'requested' AND CAST($4 AS TEXT) IS NOT NULL RETURNING id"
        };
        let query = sqlx::query(sql).bind(result).bind(now.timestamp_millis()).bind(id).bind(by);
        Ok(self.updated(query).await? == 1)
    }

    async fn expire_requests(&self, before: DateTime<Utc>, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.dialect.check()?;
        let query = sqlx::query(
            "UPDATE schedules SET status = 'expired', result = 'not approved in time', ran_at = $1
             WHERE status = 'requested' AND created_at < $2 RETURNING id",
        )
        .bind(now.timestamp_millis())
        .bind(before.timestamp_millis());
        Ok(self.updated(query).await? as u64)
    }

    async fn finish_schedule(
        &self,
        id: i64,
        status: &str,
        result: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.dialect.check()?;
        let query = sqlx::query(
            "UPDATE schedules SET status = $1, result = $2, ran_at = $3 WHERE id = $4 AND status = 'pending' RETURNING id",
        )
        .bind(status)
        .bind(result)
        .bind(at.timestamp_millis())
        .bind(id);
        Ok(self.updated(query).await? == 1)
    }

    async fn audit(&self, flag: Option<&str>, actor: Option<&str>, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit WHERE (CAST($1 AS TEXT) IS NULL OR flag = $1)
             AND (CAST($2 AS TEXT) IS NULL OR substr(actor, 1, length($2)) = $2) ORDER BY id DESC LIMIT $3"
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
        let rows: Vec<(&str, i64)> = batch.iter().map(|(flag, at)| (flag.as_str(), *at)).collect();
        self.upsert_pairs(
            "INSERT INTO last_evaluated (flag, at) VALUES ",
            "ON CONFLICT (flag) DO UPDATE SET
             at = CASE WHEN excluded.at > last_evaluated.at THEN excluded.at ELSE last_evaluated.at END",
            &rows,
        )
        .await
    }

    async fn last_evaluated(&self) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        let rows = sqlx::query("SELECT flag, at FROM last_evaluated").fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|row| Ok((row.try_get::<String, _>("flag")?, millis_to_time(row.try_get("at")?))))
            .collect()
    }

    async fn create_release(&self, r: &ReleaseRecord, audit: &NewAudit) -> Result<i64, StoreError> {
        let mut tx = self.dialect.begin_write(&self.pool).await?;
        let row = sqlx::query(
            "INSERT INTO releases (service, version, kind, status, scheduled_at, created_at, status_at, deployed_at,
             first_commit_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(&r.service)
        .bind(&r.version)
        .bind(&r.kind)
        .bind(r.status.as_str())
        .bind(r.scheduled_at.map(|t| t.timestamp_millis()))
        .bind(r.created_at.timestamp_millis())
        .bind(r.status_at.timestamp_millis())
        .bind(r.deployed_at.map(|t| t.timestamp_millis()))
        .bind(r.first_commit_at.timestamp_millis())
        .bind(data_text(r)?)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        Self::write_summary(&mut tx, id, r).await?;
        Self::write_audit(&mut tx, &NewAudit { flag: release_subject(id), ..audit.clone() }).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn releases(&self, service: Option<&str>) -> Result<Vec<ReleaseRecord>, StoreError> {
        let sql = format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE (CAST($1 AS TEXT) IS NULL OR service = $1) ORDER BY id DESC"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(service).fetch_all(&self.pool).await?;
        rows.iter().map(release_of).collect()
    }

    async fn release(&self, id: i64) -> Result<Option<ReleaseRecord>, StoreError> {
        let sql = format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(release_of).transpose()
    }

    async fn release_summaries(&self, page: ReleasePage<'_>) -> Result<Vec<ReleaseSummary>, StoreError> {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM release_summaries WHERE (CAST($1 AS TEXT) IS NULL OR service = $1)
             AND (CAST($2 AS BIGINT) IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        );
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(page.service)
            .bind(page.before)
            .bind(page.limit.map_or(i64::MAX, i64::from))
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

    async fn update_release(&self, r: &ReleaseRecord, audit: &NewAudit) -> Result<(), StoreError> {
        let mut tx = self.dialect.begin_write(&self.pool).await?;
        Self::write_summary(&mut tx, r.id, r).await?;
        sqlx::query("UPDATE releases SET status = $1, status_at = $2, deployed_at = $3, data = $4 WHERE id = $5")
            .bind(r.status.as_str())
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
        let mut tx = self.dialect.begin_write(&self.pool).await?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_after(&self, id: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE id > $1 ORDER BY id LIMIT $2");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.iter().map(audit_of).collect()
    }

    async fn count_audit(&self, action: &str, prefix: &str, since: DateTime<Utc>) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM audit
             WHERE action = $1 AND substr(flag, 1, length($2)) = $2 AND at >= $3",
        )
        .bind(action)
        .bind(prefix)
        .bind(since.timestamp_millis())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    async fn last_audit_id(&self) -> Result<i64, StoreError> {
        let row =
            sqlx::query("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) AS id FROM audit").fetch_one(&self.pool).await?;
        Ok(row.try_get("id")?)
    }

    async fn notify_cursor(&self, url: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT last_id FROM notify_cursors WHERE url = $1")
            .bind(url)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("last_id")).transpose()?)
    }

    async fn set_notify_cursor(&self, url: &str, id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO notify_cursors (url, last_id) VALUES ($1, $2) ON CONFLICT (url) DO UPDATE SET last_id =
             CASE WHEN excluded.last_id > notify_cursors.last_id THEN excluded.last_id ELSE notify_cursors.last_id END",
        )
        .bind(url)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<bool, StoreError> {
        // Taken (inserted, or updated because it expired or is ours) returns the row; held by
        // another holder updates nothing and returns none.
        let row = sqlx::query(
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
        .await?;
        Ok(row.map(|r| r.try_get::<String, _>("holder")).transpose()?.is_some_and(|h| h == holder))
    }
}
