//! Rows as both backends store them (times as unix milliseconds, JSON as text), decoded once for
//! any `sqlx` database.

use sqlx::{ColumnIndex, Database, Decode, Row, Type};

use super::{
    AuditEntry, NewAudit, OverrideKind, OverrideRecord, PauseRecord, ReleaseRecord, ReleaseSummary, StoreError,
    millis_to_time,
};

/// A column type both backends decode.
pub trait Decodes<DB: Database>: for<'r> Decode<'r, DB> + Type<DB> {}

impl<DB: Database, T: for<'r> Decode<'r, DB> + Type<DB>> Decodes<DB> for T {}

pub(super) const RELEASE_COLUMNS: &str =
    "id, service, version, kind, status, scheduled_at, created_at, status_at, deployed_at, first_commit_at, data";

/// A release summary's columns (table `release_summaries`).
pub(super) const SUMMARY_COLUMNS: &str = "id, service, version, kind, status, scheduled_at, created_at, status_at, \
     deployed_at, first_commit_at, summary";

pub(super) fn summary_of<R: Row>(row: &R) -> Result<ReleaseSummary, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
    String: Decodes<R::Database>,
    Option<String>: Decodes<R::Database>,
    Option<i64>: Decodes<R::Database>,
    i64: Decodes<R::Database>,
{
    let id: i64 = row.try_get("id")?;
    let corrupt =
        |e: serde_json::Error| StoreError::Corrupt { table: "releases", detail: format!("release {id}: {e}") };
    let brief = match row.try_get::<Option<String>, _>("summary")? {
        Some(text) => serde_json::from_str(&text).map_err(corrupt)?,
        None => {
            let data: Option<String> = row.try_get("data")?;
            let data: crate::release::record::ReleaseData =
                serde_json::from_str(data.as_deref().unwrap_or("{}")).map_err(corrupt)?;
            data.brief()
        }
    };
    Ok(ReleaseSummary {
        id,
        service: row.try_get("service")?,
        version: row.try_get("version")?,
        kind: row.try_get("kind")?,
        status: row.try_get::<String, _>("status")?.as_str().into(),
        scheduled_at: row.try_get::<Option<i64>, _>("scheduled_at")?.map(millis_to_time),
        created_at: millis_to_time(row.try_get("created_at")?),
        status_at: millis_to_time(row.try_get("status_at")?),
        deployed_at: row.try_get::<Option<i64>, _>("deployed_at")?.map(millis_to_time),
        first_commit_at: millis_to_time(row.try_get("first_commit_at")?),
        brief,
    })
}

/// A release's brief as stored beside its data.
pub(super) fn summary_text(r: &ReleaseRecord) -> Result<String, StoreError> {
    serde_json::to_string(&r.data.brief())
        .map_err(|e| StoreError::Corrupt { table: "releases", detail: format!("release {}: {e}", r.id) })
}

pub(super) fn override_of<R: Row>(row: &R) -> Result<OverrideRecord, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
    String: Decodes<R::Database>,
    Option<String>: Decodes<R::Database>,
    i64: Decodes<R::Database>,
{
    let flag: String = row.try_get("flag")?;
    let kind_text: String = row.try_get("kind")?;
    let value: Option<String> = row.try_get("value")?;
    let kind = OverrideKind::from_parts(&kind_text, value.as_deref()).ok_or_else(|| StoreError::Corrupt {
        table: "overrides",
        detail: format!("flag {flag}: kind {kind_text:?} with value {value:?}"),
    })?;
    Ok(OverrideRecord {
        flag,
        kind,
        reason: row.try_get("reason")?,
        actor: row.try_get("actor")?,
        created_at: millis_to_time(row.try_get("created_at")?),
    })
}

pub(super) fn pause_of<R: Row>(row: &R) -> Result<PauseRecord, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
    Option<String>: Decodes<R::Database>,
    Option<i64>: Decodes<R::Database>,
    i64: Decodes<R::Database>,
{
    let since: Option<i64> = row.try_get("paused_since")?;
    Ok(PauseRecord {
        paused_total_ms: row.try_get("paused_total_ms")?,
        paused_since: since.map(millis_to_time),
        paused_by: row.try_get("paused_by")?,
    })
}

pub(super) fn release_of<R: Row>(row: &R) -> Result<ReleaseRecord, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
    String: Decodes<R::Database>,
    Option<i64>: Decodes<R::Database>,
    i64: Decodes<R::Database>,
{
    let data: String = row.try_get("data")?;
    let id: i64 = row.try_get("id")?;
    Ok(ReleaseRecord {
        id,
        service: row.try_get("service")?,
        version: row.try_get("version")?,
        kind: row.try_get("kind")?,
        status: row.try_get::<String, _>("status")?.as_str().into(),
        scheduled_at: row.try_get::<Option<i64>, _>("scheduled_at")?.map(millis_to_time),
        created_at: millis_to_time(row.try_get("created_at")?),
        status_at: millis_to_time(row.try_get("status_at")?),
        deployed_at: row.try_get::<Option<i64>, _>("deployed_at")?.map(millis_to_time),
        first_commit_at: millis_to_time(row.try_get("first_commit_at")?),
        data: serde_json::from_str(&data)
            .map_err(|e| StoreError::Corrupt { table: "releases", detail: format!("release {id}: {e}") })?,
    })
}

pub(super) const AUDIT_COLUMNS: &str = "id, at, actor, flag, action, before, after, reason";

pub(super) fn audit_of<R: Row>(row: &R) -> Result<AuditEntry, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
    String: Decodes<R::Database>,
    Option<String>: Decodes<R::Database>,
    i64: Decodes<R::Database>,
{
    let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
    Ok(AuditEntry {
        id: row.try_get("id")?,
        entry: NewAudit {
            at: millis_to_time(row.try_get("at")?),
            actor: row.try_get("actor")?,
            flag: row.try_get("flag")?,
            action: row.try_get("action")?,
            before: json(row.try_get("before")?),
            after: json(row.try_get("after")?),
            reason: row.try_get("reason")?,
        },
    })
}

/// A release's data column as written.
pub(super) fn data_text(r: &ReleaseRecord) -> Result<String, StoreError> {
    serde_json::to_string(&r.data)
        .map_err(|e| StoreError::Corrupt { table: "releases", detail: format!("release {}: {e}", r.id) })
}
