//! Persistence behind one trait: overrides, the audit log, first-seen times, rollout pauses,
//! last-evaluated times, and a change counter that replicas poll.
//!
//! Every change that affects serving (override, pause) is written in one transaction together
//! with its audit row and a bump of the change counter, so a replica that sees the new counter
//! sees the change, and an acknowledged change survives a crash.

pub mod change;
mod dialect;
mod health;
mod postgres;
mod rows;
pub mod schedule;
mod sql;
mod sqlite;

pub use change::{Action, Change, Refusal};
pub use health::{HealthBoard, StoreHealth};
pub use schedule::{NewSchedule, ScheduleRecord, ScheduledAction};

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::eval::Override;

/// A persisted operator override (or automatic rollback).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverrideRecord {
    pub flag: String,
    #[serde(flatten)]
    pub kind: OverrideKind,
    pub reason: String,
    pub actor: String,
    pub created_at: DateTime<Utc>,
}

/// What an override does; stored as `kind` plus an optional JSON `value`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum OverrideKind {
    Kill,
    Enable,
    Variant(String),
    Value(Value),
    RolledBack,
}

impl OverrideKind {
    pub fn to_override(&self) -> Override {
        match self {
            OverrideKind::Kill => Override::Kill,
            OverrideKind::Enable => Override::Enable,
            OverrideKind::Variant(v) => Override::Variant(v.clone()),
            OverrideKind::Value(v) => Override::Value(v.clone()),
            OverrideKind::RolledBack => Override::RolledBack,
        }
    }

    fn parts(&self) -> (&'static str, Option<String>) {
        match self {
            OverrideKind::Kill => ("kill", None),
            OverrideKind::Enable => ("enable", None),
            OverrideKind::Variant(v) => ("variant", Some(Value::String(v.clone()).to_string())),
            OverrideKind::Value(v) => ("value", Some(v.to_string())),
            OverrideKind::RolledBack => ("rolled_back", None),
        }
    }

    fn from_parts(kind: &str, value: Option<&str>) -> Option<Self> {
        let json = || value.and_then(|v| serde_json::from_str::<Value>(v).ok());
        Some(match kind {
            "kill" => OverrideKind::Kill,
            "enable" => OverrideKind::Enable,
            "variant" => OverrideKind::Variant(json()?.as_str()?.to_owned()),
            "value" => OverrideKind::Value(json()?),
            "rolled_back" => OverrideKind::RolledBack,
            _ => return None,
        })
    }
}

/// Pause bookkeeping of a gradual rollout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PauseRecord {
    pub paused_total_ms: i64,
    pub paused_since: Option<DateTime<Utc>>,
    /// Who paused it (an operator's token name, `auto-pause`): only the monitor's own pauses
    /// are resumed automatically.
    pub paused_by: Option<String>,
}

words! {
    /// What an audit row records. The row keeps the word as text ([`NewAudit::action`]): a row
    /// another version wrote is kept and shown as it is; code names actions through this type.
    pub enum AuditAction {
        OverrideSet = "override_set",
        OverrideCleared = "override_cleared",
        AutoRollback = "auto_rollback",
        RolloutPaused = "rollout_paused",
        RolloutResumed = "rollout_resumed",
        /// A new flag file was loaded.
        Reload = "reload",
        /// A monitor alert called the team's webhook.
        AlertTeam = "alert_team",
        ChangeScheduled = "change_scheduled",
        ScheduleCancelled = "schedule_cancelled",
        ChangeRequested = "change_requested",
        ChangeApproved = "change_approved",
        ChangeRejected = "change_rejected",
        ReleasePlanned = "release_planned",
        ReleaseApproved = "release_approved",
        ReleaseTestReported = "release_test_reported",
        ReleaseStatus = "release_status",
        /// A release plan refused for conflicts.
        ReleaseConflict = "release_conflict",
        ReleaseRollbackRecommended = "release_rollback_recommended",
        ReleaseReminder = "release_reminder",
    }
}

/// One stored audit row: its id and what was written.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(flatten)]
    pub entry: NewAudit,
}

/// An audit row: who changed what, when and why (the store assigns the id).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NewAudit {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub flag: String,
    /// An [`AuditAction`]'s word.
    pub action: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub reason: String,
}

/// A release plan as stored. `data` holds the commits, analysis, dependencies, dependents,
/// flags, notes, approvals and test reports (a JSON column, typed here).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseRecord {
    pub id: i64,
    pub service: String,
    pub version: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: crate::release::record::ReleaseStatus,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub status_at: DateTime<Utc>,
    pub deployed_at: Option<DateTime<Utc>>,
    pub first_commit_at: DateTime<Utc>,
    pub data: crate::release::record::ReleaseData,
}

/// Which store this is (made when it was created): notification ids carry `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreIdentity {
    pub id: String,
    pub created_at: DateTime<Utc>,
}

/// A release as lists and reports read it: its columns and its brief, never its commits.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReleaseSummary {
    pub id: i64,
    pub service: String,
    pub version: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: crate::release::record::ReleaseStatus,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub status_at: DateTime<Utc>,
    pub deployed_at: Option<DateTime<Utc>>,
    pub first_commit_at: DateTime<Utc>,
    #[serde(flatten)]
    pub brief: crate::release::record::ReleaseBrief,
}

/// Which release summaries to read: newest first, of one service or all, with ids below
/// `before` (a page's cursor), at most `limit`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReleasePage<'a> {
    pub service: Option<&'a str>,
    pub before: Option<i64>,
    pub limit: Option<u32>,
}

/// Everything serving needs from the store.
#[derive(Debug, Clone, Default)]
pub struct PersistedState {
    pub version: i64,
    pub overrides: HashMap<String, OverrideRecord>,
    pub first_seen: HashMap<String, DateTime<Utc>>,
    pub pauses: HashMap<String, PauseRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error(
        "the database {0} does not exist: this command only reads the store a server keeps (point --database at it)"
    )]
    Missing(String),
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("the database file {0} was deleted or replaced while the server had it open; restart to use the new one")]
    Replaced(String),
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
}

/// The persistence operations toggled needs; SQLite now, PostgreSQL next.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Overrides, first-seen times and pauses, with the change counter they were read at.
    async fn load(&self) -> Result<PersistedState, StoreError>;
    /// The change counter: bumped by every override or pause change.
    async fn version(&self) -> Result<i64, StoreError>;
    /// Which store this is: its random id and when it was created.
    async fn identity(&self) -> Result<StoreIdentity, StoreError>;
    /// Writes and commits a row without changing anything (the change counter set to itself):
    /// whether a write can commit now (a full disk, a read-only file or a lock held elsewhere
    /// fail it while reads still answer).
    async fn probe_write(&self) -> Result<(), StoreError>;
    /// Wakes `wake` whenever another replica may have changed something (PostgreSQL's
    /// `LISTEN`), and once after every (re)connection; returns only on an error. Backends
    /// without notifications never return: replicas then rely on polling [`Store::version`].
    async fn listen(&self, wake: &tokio::sync::Notify) -> Result<(), StoreError> {
        let _ = wake;
        std::future::pending().await
    }
    /// Records `now` as the first-seen time of any of `flags` not seen before.
    async fn record_first_seen(&self, flags: &[String], now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Applies one change in one transaction: reads the flag's override and pause, decides with
    /// [`change::decide`], writes the state, its audit row and (for state changes) a bump of the
    /// change counter, and commits. The audit row written, or why nothing was.
    async fn apply(&self, change: &Change) -> Result<Result<NewAudit, Refusal>, StoreError>;
    /// Applies a scheduled change in the transaction that marks schedule `id` done: refused with
    /// [`Refusal::NotPending`] when it is no longer pending (another replica ran it, or it was
    /// cancelled); a refused change leaves it pending.
    async fn apply_scheduled(&self, id: i64, change: &Change) -> Result<Result<NewAudit, Refusal>, StoreError>;
    async fn create_schedule(&self, schedule: &NewSchedule) -> Result<i64, StoreError>;
    /// Schedules, newest first (one flag's, or all), at most `limit`.
    async fn schedules(&self, flag: Option<&str>, limit: u32) -> Result<Vec<ScheduleRecord>, StoreError>;
    async fn schedule(&self, id: i64) -> Result<Option<ScheduleRecord>, StoreError>;
    /// Pending schedules due at `now`, oldest first.
    async fn due_schedules(&self, now: DateTime<Utc>) -> Result<Vec<ScheduleRecord>, StoreError>;
    /// Decides a `requested` schedule: approved (by someone other than its requester) it becomes
    /// `pending`, due at its time or `now`, whichever is later; rejected, `rejected`. `result`
    /// says who and why. False when it was not `requested` (or the approver asked for it).
    async fn decide_request(
        &self,
        id: i64,
        approve: bool,
        by: &str,
        result: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Requests not decided since before `before` become `expired`; how many did.
    async fn expire_requests(&self, before: DateTime<Utc>, now: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Ends a pending schedule as `status` (`skipped`, `cancelled`) with `result`; false when it
    /// was not pending.
    async fn finish_schedule(&self, id: i64, status: &str, result: &str, at: DateTime<Utc>)
    -> Result<bool, StoreError>;
    /// Audit rows, newest first, of one subject (`flag`) and/or by actors whose name starts with
    /// `actor`.
    async fn audit(&self, flag: Option<&str>, actor: Option<&str>, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
    /// Batched last-evaluated times (unix milliseconds), keeping the later of old and new.
    async fn touch_evaluated(&self, batch: &[(String, i64)]) -> Result<(), StoreError>;
    async fn last_evaluated(&self) -> Result<HashMap<String, DateTime<Utc>>, StoreError>;
    /// Stores a new release (its `id` is assigned) and its audit row (whose subject becomes
    /// [`release_subject`] of that id) in one transaction; returns the id.
    async fn create_release(&self, release: &ReleaseRecord, audit: &NewAudit) -> Result<i64, StoreError>;
    /// Releases, newest first, of one service or all.
    async fn releases(&self, service: Option<&str>) -> Result<Vec<ReleaseRecord>, StoreError>;
    async fn release(&self, id: i64) -> Result<Option<ReleaseRecord>, StoreError>;
    /// Release summaries, newest first (see [`ReleasePage`]): what lists and reports read.
    async fn release_summaries(&self, page: ReleasePage<'_>) -> Result<Vec<ReleaseSummary>, StoreError>;
    /// The newest release summary of every service, newest first.
    async fn latest_release_summaries(&self) -> Result<Vec<ReleaseSummary>, StoreError>;
    /// Writes a release's status, times and data with its audit row, in one transaction.
    async fn update_release(&self, release: &ReleaseRecord, audit: &NewAudit) -> Result<(), StoreError>;
    /// Writes an audit row that changes no state (a refused release plan, a reminder).
    async fn record(&self, audit: &NewAudit) -> Result<(), StoreError>;
    /// Audit rows after `id`, oldest first: the notification outbox reads these.
    async fn audit_after(&self, id: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
    /// How many audit rows of `action` whose subject starts with `prefix` were written at or
    /// after `since` (refused release plans for the quality report).
    async fn count_audit(&self, action: &str, prefix: &str, since: DateTime<Utc>) -> Result<i64, StoreError>;
    /// The newest audit row's id (0 when there is none).
    async fn last_audit_id(&self) -> Result<i64, StoreError>;
    /// The last audit row delivered to a notification URL, if it was ever set.
    async fn notify_cursor(&self, url: &str) -> Result<Option<i64>, StoreError>;
    async fn set_notify_cursor(&self, url: &str, id: i64) -> Result<(), StoreError>;
    /// Takes or renews the lease `name` for `holder` until `now + ttl`: true when `holder` has
    /// it (it was free, expired, or already `holder`'s), false while another holder's runs.
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<bool, StoreError>;
}

/// Opens the store a database URL names, creating and migrating it when needed.
pub async fn open(url: &str) -> Result<Box<dyn Store>, StoreError> {
    open_as(url, true).await
}

/// Opens an existing store for a command that only reads: a missing database is an error, never
/// an empty one created on the spot.
pub async fn open_existing(url: &str) -> Result<Box<dyn Store>, StoreError> {
    open_as(url, false).await
}

async fn open_as(url: &str, create: bool) -> Result<Box<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Box::new(sqlite::SqliteStore::open(url, create).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(postgres::PostgresStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}

/// The pool's check on every connection it gets back: one that is still inside a transaction
/// (the database ended it on an error, e.g. a full disk, so the driver could not roll it back)
/// is closed instead of being handed to the next caller, whose `BEGIN` would fail on it forever.
pub(crate) fn close_if_half_open<DB: sqlx::Database>(
    conn: &mut DB::Connection,
    _: sqlx::pool::PoolConnectionMetadata,
) -> futures_util::future::BoxFuture<'_, Result<bool, sqlx::Error>> {
    use sqlx::Connection as _;
    let keep = !conn.is_in_transaction();
    if !keep {
        tracing::warn!("a store connection came back inside a failed transaction; closing it");
    }
    Box::pin(std::future::ready(Ok(keep)))
}

/// The audit subject of a release: `release:<id>` (flag keys cannot contain `:`).
pub fn release_subject(id: i64) -> String {
    format!("release:{id}")
}

pub(crate) fn millis_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
