//! Scheduled changes: `POST /flags/{key}/schedule` (`at`, `reason`, and one of `override` (the
//! body `PUT /flags/{key}` takes), `clear: true`, `rollout: "pause"|"resume"`), `GET /schedules`
//! and `DELETE /schedules/{id}`. The change is checked as its immediate form would be (the flag
//! exists, the override fits it, a pause needs a gradual rollout) when it is scheduled, and runs
//! through the one change path when due ([`crate::schedules`]).

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Identity;
use super::error::{ApiError, Code};
use super::flags::{OverrideRequest, find, override_kind, reason_of};
use super::{ApiJson, AppState, KeyPath};
use crate::flags::snapshot::Strategy;
use crate::store::{NewSchedule, ScheduledAction};

/// The most schedules one `GET /schedules` lists.
const MAX_LIST: u32 = 1_000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// When (RFC 3339); a time in the past runs at once.
    at: String,
    reason: Option<String>,
    /// What `PUT /flags/{key}` takes: `{"enabled": false}`, `{"variant": "..."}`, `{"value": ...}`.
    #[serde(rename = "override")]
    override_: Option<OverrideRequest>,
    /// Clear the override.
    clear: Option<bool>,
    /// `pause` or `resume` the gradual rollout.
    rollout: Option<String>,
}

impl super::RequestBody for ScheduleRequest {
    const INVALID: Code = Code::InvalidSchedule;
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(Code::InvalidSchedule, message)
}

#[utoipa::path(
    operation_id = "schedules_create",
    post,
    path = "/flags/{key}/schedule",
    tag = "flags",
    security(("admin" = [])),
    request_body = ScheduleRequest,
    params(("key" = String, Path, description = "the flag key")),
    responses(
        (status = 201, description = "scheduled: `{id, flag, at, action, reason, created_by, status: pending, ...}`", body = serde_json::Value),
        (status = 400, description = "malformed JSON", body = crate::http::error::ErrorBody),
        (status = 401, description = "no or unknown token", body = crate::http::error::ErrorBody),
        (status = 403, description = "a token of the wrong role", body = crate::http::error::ErrorBody),
        (status = 404, description = "no such flag", body = crate::http::error::ErrorBody),
        (status = 409, description = "a pause or resume of a flag without a gradual rollout", body = crate::http::error::ErrorBody),
        (status = 422, description = "invalid schedule, naming the field", body = crate::http::error::ErrorBody),
        (status = 503, description = "not ready, or the store failed (nothing stored)", body = crate::http::error::ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(who): Extension<Identity>,
    KeyPath(key): KeyPath,
    ApiJson(req): ApiJson<ScheduleRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let at = DateTime::parse_from_rfc3339(req.at.trim())
        .map_err(|e| invalid(format!("`at` must be an RFC 3339 time: {e}")))?
        .with_timezone(&Utc);
    let reason = reason_of(req.reason)?;
    let action = {
        let served = state.serving.load();
        let (flag, _) = find(&served, &key)?;
        match (req.override_, req.clear, req.rollout.as_deref()) {
            (Some(o), None, None) => ScheduledAction::Override(override_kind(flag, &o)?),
            (None, Some(true), None) => ScheduledAction::Clear,
            (None, None, Some(r @ ("pause" | "resume"))) => {
                if !matches!(flag.strategy, Some(Strategy::Gradual { .. })) {
                    return Err(ApiError::new(
                        Code::NotGradual,
                        format!("{key} is not a gradual rollout; only those pause"),
                    ));
                }
                if r == "pause" { ScheduledAction::Pause } else { ScheduledAction::Resume }
            }
            (None, None, Some(other)) => {
                return Err(invalid(format!("rollout {other:?}: expected \"pause\" or \"resume\"")));
            }
            _ => return Err(invalid("give exactly one of `override`, `clear: true`, `rollout`")),
        }
    };
    let schedule = NewSchedule { flag: key, at, action, reason, created_by: who.name, created_at: Utc::now() };
    let id = state.serving.store.create_schedule(&schedule).await?;
    tracing::info!(schedule = id, flag = %schedule.flag, at = %schedule.at, by = %schedule.created_by, "change scheduled");
    let record = state
        .serving
        .store
        .schedule(id)
        .await?
        .ok_or_else(|| ApiError::new(Code::ScheduleNotFound, format!("schedule {id} vanished")))?;
    Ok((StatusCode::CREATED, Json(record.to_json())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScheduleQuery {
    /// One flag's schedules.
    flag: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(
    operation_id = "schedules_list",
    get,
    path = "/schedules",
    tag = "flags",
    security(("admin" = [])),
    params(ScheduleQuery),
    responses(
        (status = 200, description = "`{schedules: [...]}`, newest first", body = serde_json::Value),
        (status = 401, description = "no or unknown token", body = crate::http::error::ErrorBody),
        (status = 403, description = "a token of the wrong role", body = crate::http::error::ErrorBody),
        (status = 503, description = "the store failed", body = crate::http::error::ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>, Query(q): Query<ScheduleQuery>) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_LIST);
    let list = state.serving.store.schedules(q.flag.as_deref(), limit).await?;
    Ok(Json(json!({"schedules": list.iter().map(crate::store::ScheduleRecord::to_json).collect::<Vec<_>>()})))
}

#[utoipa::path(
    operation_id = "schedules_cancel",
    delete,
    path = "/schedules/{id}",
    tag = "flags",
    security(("admin" = [])),
    params(("id" = i64, Path, description = "the schedule's id")),
    responses(
        (status = 200, description = "cancelled: the schedule, `status: cancelled`", body = serde_json::Value),
        (status = 401, description = "no or unknown token", body = crate::http::error::ErrorBody),
        (status = 403, description = "a token of the wrong role", body = crate::http::error::ErrorBody),
        (status = 404, description = "no such schedule", body = crate::http::error::ErrorBody),
        (status = 409, description = "it already ran, was skipped or cancelled", body = crate::http::error::ErrorBody),
        (status = 503, description = "the store failed", body = crate::http::error::ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(who): Extension<Identity>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let store = &state.serving.store;
    let cancelled = store.finish_schedule(id, "cancelled", &format!("cancelled by {}", who.name), Utc::now()).await?;
    let record =
        store.schedule(id).await?.ok_or_else(|| ApiError::new(Code::ScheduleNotFound, format!("no schedule {id}")))?;
    if !cancelled {
        return Err(ApiError::new(Code::InvalidTransition, format!("schedule {id} is {}, not pending", record.status)));
    }
    tracing::info!(schedule = id, flag = %record.flag, by = %who.name, "schedule cancelled");
    Ok(Json(record.to_json()))
}
