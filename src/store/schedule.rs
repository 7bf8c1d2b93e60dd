//! Scheduled changes as the store keeps them (table `schedules`): a state change toggled already
//! has (an override set or cleared, a pause, a resume), when to make it, who asked and why, and
//! what became of it (`pending`, `done`, `skipped` with a reason, `cancelled`). A change held for
//! approval is a schedule too, `requested` until a second person approves it (then `pending`,
//! due at once or at its time) or rejects it, or it expires. A schedule runs
//! in the transaction that marks it `done` ([`super::Store::apply_scheduled`]), so it runs once
//! whichever replica gets there first.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{ColumnIndex, Row};

use super::rows::Decodes;
use super::{Action, OverrideKind, StoreError, millis_to_time};

/// What a scheduled change does.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduledAction {
    Override(OverrideKind),
    Clear,
    Pause,
    Resume,
}

impl ScheduledAction {
    /// As stored: `kind` (`kill`, `enable`, `variant`, `value`, `clear`, `pause`, `resume`) and
    /// the override's value as JSON text.
    pub fn parts(&self) -> (&'static str, Option<String>) {
        match self {
            ScheduledAction::Override(kind) => kind.parts(),
            ScheduledAction::Clear => ("clear", None),
            ScheduledAction::Pause => ("pause", None),
            ScheduledAction::Resume => ("resume", None),
        }
    }

    fn from_parts(kind: &str, value: Option<&str>) -> Option<Self> {
        Some(match kind {
            "clear" => ScheduledAction::Clear,
            "pause" => ScheduledAction::Pause,
            "resume" => ScheduledAction::Resume,
            other => ScheduledAction::Override(OverrideKind::from_parts(other, value)?),
        })
    }

    /// The change it makes.
    pub fn action(&self) -> Action {
        match self {
            ScheduledAction::Override(kind) => Action::SetOverride(kind.clone()),
            ScheduledAction::Clear => Action::ClearOverride,
            ScheduledAction::Pause => Action::Pause,
            ScheduledAction::Resume => Action::Resume { only_paused_by: None },
        }
    }

    /// As the API shows it: `{"kind", "value"?}`.
    pub fn to_json(&self) -> Value {
        let (kind, value) = self.parts();
        match value.and_then(|v| serde_json::from_str::<Value>(&v).ok()) {
            Some(v) => json!({"kind": kind, "value": v}),
            None => json!({"kind": kind}),
        }
    }
}

/// A schedule to store.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub flag: String,
    pub at: DateTime<Utc>,
    pub action: ScheduledAction,
    pub reason: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// Held for a second person's approval (four-eyes): stored `requested`, not `pending`.
    pub requested: bool,
}

/// A stored schedule.
#[derive(Debug, Clone)]
pub struct ScheduleRecord {
    pub id: i64,
    pub flag: String,
    pub at: DateTime<Utc>,
    pub action: ScheduledAction,
    pub reason: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// `requested` (awaiting approval), `pending`, `done`, `skipped`, `cancelled`, `rejected` or
    /// `expired`.
    pub status: String,
    /// Why it was skipped or cancelled, or how late it ran.
    pub result: Option<String>,
    pub ran_at: Option<DateTime<Utc>>,
}

pub(super) const SCHEDULE_COLUMNS: &str =
    "id, flag, at, kind, value, reason, created_by, created_at, status, result, ran_at";

pub(super) fn schedule_of<R: Row>(row: &R) -> Result<ScheduleRecord, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
    String: Decodes<R::Database>,
    Option<String>: Decodes<R::Database>,
    Option<i64>: Decodes<R::Database>,
    i64: Decodes<R::Database>,
{
    let id: i64 = row.try_get("id")?;
    let kind: String = row.try_get("kind")?;
    let value: Option<String> = row.try_get("value")?;
    let action = ScheduledAction::from_parts(&kind, value.as_deref()).ok_or_else(|| StoreError::Corrupt {
        table: "schedules",
        detail: format!("schedule {id}: kind {kind:?} with value {value:?}"),
    })?;
    Ok(ScheduleRecord {
        id,
        flag: row.try_get("flag")?,
        at: millis_to_time(row.try_get("at")?),
        action,
        reason: row.try_get("reason")?,
        created_by: row.try_get("created_by")?,
        created_at: millis_to_time(row.try_get("created_at")?),
        status: row.try_get("status")?,
        result: row.try_get("result")?,
        ran_at: row.try_get::<Option<i64>, _>("ran_at")?.map(millis_to_time),
    })
}
