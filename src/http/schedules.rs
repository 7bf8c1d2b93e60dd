//! Scheduled changes: `POST /flags/{key}/schedule` (`at`, `reason`, and one of `override` (the
//! body `PUT /flags/{key}` takes), `clear: true`, `rollout: "pause"|"resume"`), `GET /schedules`
//! and `DELETE /schedules/{id}`. The change is checked as its immediate form would be (the flag
//! exists, the override fits it, a pause needs a gradual rollout) when it is scheduled, and runs
//! through the one change path when due ([`crate::schedules`]).

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::Identity;
use super::error::{ApiError, Code};
use super::flags::{OverrideRequest, find, override_kind, reason_of};
use super::{ApiJson, AppState, KeyPath};
use crate::flags::snapshot::Strategy;
use crate::store::{AuditAction, NewSchedule, OverrideKind, ScheduledAction};

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
        (status = 202, description = "held for a second admin's approval (four-eyes)", body = ChangeRequested),
        (status = 201, description = "scheduled: `status: pending`", body = ScheduleView),
        (status = 400, description = "malformed JSON", body = crate::http::error::ErrorBody),
        crate::http::error::answers::AdminAuth,
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
) -> Result<Response, ApiError> {
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
    if held(&state, &key, &action) {
        return Ok(request(&state, &who, key, action, reason, at).await?.into_response());
    }
    let schedule =
        NewSchedule { flag: key, at, action, reason, created_by: who.name, created_at: Utc::now(), requested: false };
    let id = state.serving.store.create_schedule(&schedule).await?;
    tracing::info!(schedule = id, flag = %schedule.flag, at = %schedule.at, by = %schedule.created_by, "change scheduled");
    let record = state
        .serving
        .store
        .schedule(id)
        .await?
        .ok_or_else(|| ApiError::new(Code::ScheduleNotFound, format!("schedule {id} vanished")))?;
    audit(&state, &record, &record.created_by, AuditAction::ChangeScheduled, &record.reason).await?;
    Ok((StatusCode::CREATED, Json(ScheduleView::from(&record))).into_response())
}

/// Whether an operator's `action` on `flag` waits for a second person (four-eyes): with
/// `--require-approval` or the flag's `change_control: approval`, but never the kill switch or a
/// pause, which stop something and must stay one step.
pub(super) fn held(state: &AppState, flag: &str, action: &ScheduledAction) -> bool {
    let stops = matches!(action, ScheduledAction::Override(OverrideKind::Kill) | ScheduledAction::Pause);
    !stops && under_approval(state, flag)
}

/// Whether changes to `flag` are under four-eyes.
pub(super) fn under_approval(state: &AppState, flag: &str) -> bool {
    state.require_approval || state.serving.load().snapshot.get(flag).is_some_and(|f| f.needs_approval)
}

/// Stores `action` as a change request (a schedule awaiting approval, due at `at`), audited:
/// 202 `{"change_request": {...}}`.
pub(super) async fn request(
    state: &AppState,
    who: &Identity,
    flag: String,
    action: ScheduledAction,
    reason: String,
    at: DateTime<Utc>,
) -> Result<(StatusCode, Json<ChangeRequested>), ApiError> {
    let now = Utc::now();
    let schedule =
        NewSchedule { flag, at, action, reason, created_by: who.name.clone(), created_at: now, requested: true };
    let store = &state.serving.store;
    let id = store.create_schedule(&schedule).await?;
    let record = store
        .schedule(id)
        .await?
        .ok_or_else(|| ApiError::new(Code::ScheduleNotFound, format!("request {id} vanished")))?;
    audit(state, &record, &who.name, AuditAction::ChangeRequested, &record.reason).await?;
    tracing::info!(request = id, flag = %record.flag, by = %who.name, "change held for approval");
    Ok((StatusCode::ACCEPTED, Json(ChangeRequested { change_request: ScheduleView::from(&record) })))
}

/// An audit row for a step of a schedule or change request (scheduled, cancelled, asked,
/// approved, rejected).
async fn audit(
    state: &AppState,
    r: &crate::store::ScheduleRecord,
    actor: &str,
    action: AuditAction,
    reason: &str,
) -> Result<(), ApiError> {
    let detail = json!({"change_request": r.id, "change": r.action.to_json(), "at": r.at});
    let change = crate::store::Change {
        flag: r.flag.clone(),
        actor: actor.to_owned(),
        reason: reason.to_owned(),
        at: Utc::now(),
        action: crate::store::Action::ChangeRequest { step: action, detail },
    };
    // Audit-only: never refused.
    let _ = crate::changes::apply(&state.serving, change).await?;
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    reason: Option<String>,
}

impl super::RequestBody for DecisionRequest {
    const INVALID: Code = Code::InvalidReason;
}

#[utoipa::path(
    operation_id = "change_requests_list",
    get,
    path = "/change-requests",
    tag = "flags",
    security(("admin" = [])),
    responses(
        (status = 200, description = "changes awaiting approval, newest first", body = ChangeRequests),
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::StoreFailed,
    )
)]
pub async fn requests(State(state): State<AppState>) -> Result<Json<ChangeRequests>, ApiError> {
    let list = state.serving.store.schedules(None, MAX_LIST).await?;
    let change_requests = list.iter().filter(|s| s.status == "requested").map(ScheduleView::from).collect();
    Ok(Json(ChangeRequests { change_requests }))
}

/// A scheduled change or change request as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    pub id: i64,
    pub flag: String,
    /// When it runs (an approved request: then, or at once if that has passed).
    pub at: DateTime<Utc>,
    pub action: ScheduledChange,
    pub reason: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// `requested` (awaiting approval), `pending`, `done`, `skipped`, `cancelled`, `rejected`
    /// or `expired`.
    pub status: String,
    /// Why it was skipped or cancelled, who decided a request, or how late it ran.
    pub result: Option<String>,
    pub ran_at: Option<DateTime<Utc>>,
}

/// The change a schedule makes: `kill`, `enable`, `variant`, `value` (with `value`), `clear`,
/// `pause` or `resume`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduledChange {
    pub kind: &'static str,
    /// The variant name or value of a `variant` or `value` override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl From<&crate::store::ScheduleRecord> for ScheduleView {
    fn from(r: &crate::store::ScheduleRecord) -> Self {
        let (kind, value) = r.action.parts();
        Self {
            id: r.id,
            flag: r.flag.clone(),
            at: r.at,
            action: ScheduledChange { kind, value: value.and_then(|v| serde_json::from_str(&v).ok()) },
            reason: r.reason.clone(),
            created_by: r.created_by.clone(),
            created_at: r.created_at,
            status: r.status.clone(),
            result: r.result.clone(),
            ran_at: r.ran_at,
        }
    }
}

/// 202: the change waits for a second admin's approval.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChangeRequested {
    pub change_request: ScheduleView,
}

/// `GET /change-requests`: changes awaiting approval, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChangeRequests {
    pub change_requests: Vec<ScheduleView>,
}

/// `GET /schedules`: newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Schedules {
    pub schedules: Vec<ScheduleView>,
}

/// Approves or rejects change request `id` as `who`.
async fn decide(
    state: &AppState,
    who: &Identity,
    id: i64,
    approve: bool,
    reason: Option<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let reason = reason_of(reason)?;
    let verb = if approve { "approved" } else { "rejected" };
    let result =
        if reason.is_empty() { format!("{verb} by {}", who.name) } else { format!("{verb} by {}: {reason}", who.name) };
    let store = &state.serving.store;
    let decided = store.decide_request(id, approve, &who.name, &result, Utc::now()).await?;
    let record = store
        .schedule(id)
        .await?
        .ok_or_else(|| ApiError::new(Code::ScheduleNotFound, format!("no change request {id}")))?;
    if !decided {
        if record.status == "requested" && record.created_by == who.name {
            return Err(ApiError::new(
                Code::Forbidden,
                format!("change request {id} is yours: another admin approves it"),
            ));
        }
        return Err(ApiError::new(
            Code::InvalidTransition,
            format!("change request {id} is {}, not awaiting approval", record.status),
        ));
    }
    let action = if approve { AuditAction::ChangeApproved } else { AuditAction::ChangeRejected };
    audit(state, &record, &who.name, action, &reason).await?;
    tracing::info!(request = id, flag = %record.flag, by = %who.name, "change request {verb}");
    if approve {
        // Due now (unless scheduled later): applied before the answer.
        crate::schedules::run_due(&state.serving, Utc::now()).await;
    }
    let record = store.schedule(id).await?.unwrap_or(record);
    Ok(Json(ScheduleView::from(&record)))
}

#[utoipa::path(
    operation_id = "change_requests_approve",
    post,
    path = "/change-requests/{id}/approve",
    tag = "flags",
    security(("admin" = [])),
    request_body = DecisionRequest,
    params(("id" = i64, Path, description = "the change request's id")),
    responses(
        (status = 200, description = "approved: the request, `done` once applied (or `pending` until its time)", body = ScheduleView),
        crate::http::error::answers::Unauthenticated,
        (status = 403, description = "the requester's own token, or a token of the wrong role", body = crate::http::error::ErrorBody),
        (status = 404, description = "no such change request", body = crate::http::error::ErrorBody),
        (status = 409, description = "not awaiting approval (decided, expired)", body = crate::http::error::ErrorBody),
        crate::http::error::answers::StoreFailed,
    )
)]
pub async fn approve(
    State(state): State<AppState>,
    Extension(who): Extension<Identity>,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<DecisionRequest>,
) -> Result<Json<ScheduleView>, ApiError> {
    decide(&state, &who, id, true, body.reason).await
}

#[utoipa::path(
    operation_id = "change_requests_reject",
    post,
    path = "/change-requests/{id}/reject",
    tag = "flags",
    security(("admin" = [])),
    request_body = DecisionRequest,
    params(("id" = i64, Path, description = "the change request's id")),
    responses(
        (status = 200, description = "rejected (the requester may withdraw their own)", body = ScheduleView),
        crate::http::error::answers::AdminAuth,
        (status = 404, description = "no such change request", body = crate::http::error::ErrorBody),
        (status = 409, description = "not awaiting approval (decided, expired)", body = crate::http::error::ErrorBody),
        crate::http::error::answers::StoreFailed,
    )
)]
pub async fn reject(
    State(state): State<AppState>,
    Extension(who): Extension<Identity>,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<DecisionRequest>,
) -> Result<Json<ScheduleView>, ApiError> {
    decide(&state, &who, id, false, body.reason).await
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
        (status = 200, description = "schedules, newest first", body = Schedules),
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::StoreFailed,
    )
)]
pub async fn list(State(state): State<AppState>, Query(q): Query<ScheduleQuery>) -> Result<Json<Schedules>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_LIST);
    let list = state.serving.store.schedules(q.flag.as_deref(), limit).await?;
    Ok(Json(Schedules { schedules: list.iter().map(ScheduleView::from).collect() }))
}

#[utoipa::path(
    operation_id = "schedules_cancel",
    delete,
    path = "/schedules/{id}",
    tag = "flags",
    security(("admin" = [])),
    params(("id" = i64, Path, description = "the schedule's id")),
    responses(
        (status = 200, description = "cancelled: the schedule, `status: cancelled`", body = ScheduleView),
        crate::http::error::answers::AdminAuth,
        (status = 404, description = "no such schedule", body = crate::http::error::ErrorBody),
        (status = 409, description = "it already ran, was skipped or cancelled", body = crate::http::error::ErrorBody),
        crate::http::error::answers::StoreFailed,
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(who): Extension<Identity>,
    Path(id): Path<i64>,
) -> Result<Json<ScheduleView>, ApiError> {
    let store = &state.serving.store;
    let cancelled = store.finish_schedule(id, "cancelled", &format!("cancelled by {}", who.name), Utc::now()).await?;
    let record =
        store.schedule(id).await?.ok_or_else(|| ApiError::new(Code::ScheduleNotFound, format!("no schedule {id}")))?;
    if !cancelled {
        return Err(ApiError::new(Code::InvalidTransition, format!("schedule {id} is {}, not pending", record.status)));
    }
    tracing::info!(schedule = id, flag = %record.flag, by = %who.name, "schedule cancelled");
    audit(&state, &record, &who.name, AuditAction::ScheduleCancelled, "").await?;
    Ok(Json(ScheduleView::from(&record)))
}
