//! Flag routes (admin): `GET /flags`, `GET /flags/{key}`, `PUT /flags/{key}` (kill switch and
//! overrides), `DELETE /flags/{key}/override`, `POST /flags/{key}/rollout` (pause/resume).

use super::KeyPath;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Identity;
use super::error::{ApiError, Code};
use super::flag_views::{Cleared, FlagDetail, FlagList, FlagStateView, FlagSummary};
use super::schedules;
use super::{ApiJson, AppState};
use crate::changes;
use crate::flags::snapshot::{Flag, FlagKind, Strategy};
use crate::serving::{FlagRuntime, Served};
use crate::store::{Action, Change, OverrideKind, Refusal, ScheduledAction};
use axum::response::{IntoResponse, Response};

const MAX_REASON: usize = 1_000;

pub(super) fn find<'a>(served: &'a Served, key: &str) -> Result<(&'a Flag, &'a FlagRuntime), ApiError> {
    let idx = served.index(key).ok_or_else(|| ApiError::flag_not_found(key))?;
    Ok((&served.snapshot.flags[idx], &served.flags[idx]))
}

#[utoipa::path(
    operation_id = "flags_list",
    get,
    path = "/flags",
    tag = "flags",
    security(("admin" = [])),
    responses(
        (status = 200, description = "every flag with its live state and the last reload", body = FlagList),
        crate::http::error::answers::AdminAuth,
    )
)]
pub async fn list(State(state): State<AppState>) -> Json<FlagList> {
    let served = state.serving.load();
    let now = Utc::now();
    Json(FlagList {
        revision: served.ready.then(|| served.snapshot.revision.clone()),
        last_reload: (*state.boards.reloader.status()).clone(),
        flags: served
            .snapshot
            .flags
            .iter()
            .zip(&served.flags)
            .map(|(f, rt)| FlagSummary::of(f, rt, &served, now))
            .collect(),
    })
}

#[utoipa::path(
    operation_id = "flags_show",
    get,
    path = "/flags/{key}",
    tag = "flags",
    security(("admin" = [])),
    params(("key" = String, Path, description = "the flag key")),
    responses(
        (status = 200, description = "definition and live state", body = FlagDetail),
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::NotFound,
    )
)]
pub async fn show(State(state): State<AppState>, KeyPath(key): KeyPath) -> Result<Json<FlagDetail>, ApiError> {
    let served = state.serving.load();
    let (flag, rt) = find(&served, &key)?;
    let mut detail = FlagDetail::of(flag, rt, &served, Utc::now());
    let board = state.boards.alerts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    detail.summary.state.alerts = Some(board.get(&key).map_or(Value::Null, |statuses| json!(statuses)));
    Ok(Json(detail))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    pub(super) enabled: Option<bool>,
    pub(super) variant: Option<String>,
    pub(super) value: Option<Value>,
    pub(super) reason: Option<String>,
}

pub(super) fn reason_of(reason: Option<String>) -> Result<String, ApiError> {
    let reason = reason.unwrap_or_default();
    if reason.chars().count() > MAX_REASON {
        return Err(ApiError::new(Code::InvalidReason, format!("`reason` is over {MAX_REASON} characters")));
    }
    Ok(reason)
}

pub(super) fn override_kind(flag: &Flag, req: &OverrideRequest) -> Result<OverrideKind, ApiError> {
    let given = [req.enabled.is_some(), req.variant.is_some(), req.value.is_some()].iter().filter(|x| **x).count();
    if given != 1 {
        return Err(ApiError::new(
            Code::InvalidOverride,
            "give exactly one of `enabled` (kill switch), `variant` or `value`, plus an optional `reason`",
        ));
    }
    if let Some(enabled) = req.enabled {
        return Ok(if enabled { OverrideKind::Enable } else { OverrideKind::Kill });
    }
    if let Some(variant) = &req.variant {
        if flag.variant_index(variant).is_none() {
            let names: Vec<&str> = flag.variants.iter().map(|v| v.name.as_str()).collect();
            return Err(ApiError::new(
                Code::UnknownVariant,
                format!("{variant:?} is not a variant of {} (variants: {})", flag.key, names.join(", ")),
            ));
        }
        return Ok(OverrideKind::Variant(variant.clone()));
    }
    let value = req.value.clone().unwrap_or(Value::Null);
    let same_kind = |a: &Value, b: &Value| std::mem::discriminant(a) == std::mem::discriminant(b);
    let fits = match flag.kind {
        FlagKind::Boolean => value.is_boolean(),
        FlagKind::Variant => flag.variants.first().is_some_and(|v| same_kind(&v.value, &value)),
    };
    if !fits {
        return Err(ApiError::new(
            Code::InvalidValue,
            format!(
                "{value} does not fit {}: its values are {}",
                flag.key,
                kind_name(&flag.variants[flag.default].value)
            ),
        ));
    }
    Ok(OverrideKind::Value(value))
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "booleans",
        Value::Number(_) => "numbers",
        Value::String(_) => "strings",
        Value::Array(_) => "arrays",
        Value::Object(_) => "objects",
        Value::Null => "null",
    }
}

#[utoipa::path(
    operation_id = "flags_put_override",
    put,
    path = "/flags/{key}",
    tag = "flags",
    security(("admin" = [])),
    request_body = OverrideRequest,
    params(("key" = String, Path, description = "the flag key")),
    responses(
        (status = 202, description = "held for a second admin's approval (four-eyes)", body = schedules::ChangeRequested),
        (status = 200, description = "persisted and audited; the flag with its new live state", body = FlagDetail),
        crate::http::error::answers::Malformed,
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::NotFound,
        crate::http::error::answers::TooLarge,
        crate::http::error::answers::Invalid,
        crate::http::error::answers::NotChanged,
    )
)]
pub async fn put_override(
    State(state): State<AppState>,
    Extension(who): Extension<Identity>,
    KeyPath(key): KeyPath,
    ApiJson(req): ApiJson<OverrideRequest>,
) -> Result<Response, ApiError> {
    let served = state.serving.load();
    let (flag, _) = find(&served, &key)?;
    let kind = override_kind(flag, &req)?;
    let reason = reason_of(req.reason)?;
    drop(served);
    let action = ScheduledAction::Override(kind.clone());
    if schedules::held(&state, &key, &action) {
        return Ok(schedules::request(&state, &who, key, action, reason, Utc::now()).await?.into_response());
    }
    let reason = emergency_reason(&state, &key, reason);
    let change =
        Change { flag: key.clone(), actor: who.name, reason, at: Utc::now(), action: Action::SetOverride(kind) };
    changes::apply(&state.serving, change).await?.map_err(refused)?;
    Ok(show(State(state), KeyPath(key)).await?.into_response())
}

/// Under four-eyes, a change that stops something goes through at once and is audited as an
/// emergency.
fn emergency_reason(state: &AppState, key: &str, reason: String) -> String {
    match (schedules::under_approval(state, key), reason.is_empty()) {
        (false, _) => reason,
        (true, true) => "(emergency: not held for approval)".to_owned(),
        (true, false) => format!("{reason} (emergency: not held for approval)"),
    }
}

#[utoipa::path(
    operation_id = "flags_clear_override",
    delete,
    path = "/flags/{key}/override",
    tag = "flags",
    security(("admin" = [])),
    request_body(content = ReasonRequest, description = "optional reason"),
    params(("key" = String, Path, description = "the flag key")),
    responses(
        (status = 202, description = "held for a second admin's approval (four-eyes)", body = schedules::ChangeRequested),
        (status = 200, description = "whether an override was cleared, and the live state", body = Cleared),
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::NotFound,
        crate::http::error::answers::Invalid,
        crate::http::error::answers::NotChanged,
    )
)]
pub async fn clear_override(
    State(state): State<AppState>,
    Extension(who): Extension<Identity>,
    KeyPath(key): KeyPath,
    ApiJson(body): ApiJson<ReasonRequest>,
) -> Result<Response, ApiError> {
    let served = state.serving.load();
    if !served.persisted.overrides.contains_key(&key) && served.index(&key).is_none() {
        return Err(ApiError::flag_not_found(&key));
    }
    drop(served);
    let reason = reason_of(body.reason)?;
    if schedules::held(&state, &key, &ScheduledAction::Clear) {
        let requested = schedules::request(&state, &who, key, ScheduledAction::Clear, reason, Utc::now()).await?;
        return Ok(requested.into_response());
    }
    let change = Change { flag: key.clone(), actor: who.name, reason, at: Utc::now(), action: Action::ClearOverride };
    let cleared = changes::apply(&state.serving, change).await?.is_ok();
    let served = state.serving.load();
    let state = served
        .index(&key)
        .map(|idx| FlagStateView::of(&served.snapshot.flags[idx], &served.flags[idx], &served, Utc::now()));
    Ok(Json(Cleared { flag: key, cleared, state }).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ReasonRequest {
    reason: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    action: String,
    reason: Option<String>,
}

#[utoipa::path(
    operation_id = "flags_rollout",
    post,
    path = "/flags/{key}/rollout",
    tag = "flags",
    security(("admin" = [])),
    request_body = RolloutRequest,
    params(("key" = String, Path, description = "the flag key")),
    responses(
        (status = 202, description = "held for a second admin's approval (four-eyes)", body = schedules::ChangeRequested),
        (status = 200, description = "paused or resumed: the flag with its live state", body = FlagDetail),
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::NotFound,
        crate::http::error::answers::Conflict,
        crate::http::error::answers::Invalid,
        crate::http::error::answers::NotChanged,
    )
)]
pub async fn rollout(
    State(state): State<AppState>,
    Extension(who): Extension<Identity>,
    KeyPath(key): KeyPath,
    ApiJson(req): ApiJson<RolloutRequest>,
) -> Result<Response, ApiError> {
    let served = state.serving.load();
    let (flag, _) = find(&served, &key)?;
    if !matches!(flag.strategy, Some(Strategy::Gradual { .. })) {
        return Err(ApiError::new(Code::NotGradual, format!("{key} is not a gradual rollout; only those pause")));
    }
    drop(served);
    let reason = reason_of(req.reason)?;
    let action = match req.action.as_str() {
        "pause" => Action::Pause,
        "resume" => Action::Resume { only_paused_by: None },
        other => {
            return Err(ApiError::new(
                Code::InvalidAction,
                format!("action {other:?}: expected \"pause\" or \"resume\""),
            ));
        }
    };
    let scheduled = if action == Action::Pause { ScheduledAction::Pause } else { ScheduledAction::Resume };
    if schedules::held(&state, &key, &scheduled) {
        return Ok(schedules::request(&state, &who, key, scheduled, reason, Utc::now()).await?.into_response());
    }
    let reason = if action == Action::Pause { emergency_reason(&state, &key, reason) } else { reason };
    let change = Change { flag: key.clone(), actor: who.name, reason, at: Utc::now(), action };
    changes::apply(&state.serving, change).await?.map_err(|r| match r {
        Refusal::AlreadyPaused => ApiError::new(Code::InvalidTransition, format!("{key} is already paused")),
        _ => ApiError::new(Code::InvalidTransition, format!("{key} is not paused")),
    })?;
    Ok(show(State(state), KeyPath(key)).await?.into_response())
}

/// A refusal of an operator's change (an override is always written, so none is expected).
fn refused(r: Refusal) -> ApiError {
    ApiError::new(Code::InvalidTransition, format!("refused: {r:?}"))
}

impl super::RequestBody for OverrideRequest {
    const INVALID: Code = Code::InvalidOverride;
}

impl super::RequestBody for ReasonRequest {
    const INVALID: Code = Code::InvalidReason;
}

impl super::RequestBody for RolloutRequest {
    const INVALID: Code = Code::InvalidAction;
}
