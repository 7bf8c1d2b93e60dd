//! Flag routes (admin): `GET /flags`, `GET /flags/{key}`, `PUT /flags/{key}` (kill switch and
//! overrides), `DELETE /flags/{key}/override`, `POST /flags/{key}/rollout` (pause/resume).

use super::KeyPath;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Identity;
use super::error::{ApiError, Code};
use super::schedules;
use super::{ApiJson, AppState};
use crate::changes;
use crate::eval::rollout::gradual_progress;
use crate::flags::snapshot::{Flag, FlagKind, Strategy};
use crate::serving::{FlagRuntime, Served};
use crate::store::{Action, Change, OverrideKind, Refusal, ScheduledAction};
use axum::response::{IntoResponse, Response};

const MAX_REASON: usize = 1_000;

fn seconds(d: chrono::Duration) -> i64 {
    d.num_seconds()
}

fn strategy_view(flag: &Flag, s: &Strategy) -> Value {
    let name = |i: usize| flag.variants[i].name.as_str();
    let hash = s.hash();
    let stickiness = match &hash.stickiness {
        crate::flags::snapshot::Stickiness::Default => "default".to_owned(),
        crate::flags::snapshot::Stickiness::Attribute(a) => a.name.clone(),
    };
    let mut v = json!({"type": s.kind(), "stickiness": stickiness, "group_id": hash.group});
    match s {
        Strategy::Percentage { percentage, .. } => v["percentage"] = json!(percentage),
        Strategy::Gradual { stages, start, .. } => {
            v["start"] = json!(start);
            v["stages"] = stages
                .iter()
                .map(|st| json!({"percentage": st.percentage, "duration_seconds": st.duration.map(seconds), "criteria": st.criteria}))
                .collect();
        }
        Strategy::AbTest { split, duration, start, winner, .. } => {
            v["traffic_split"] =
                split.iter().map(|(i, w)| (name(*i).to_owned(), json!(w))).collect::<serde_json::Map<_, _>>().into();
            v["duration_seconds"] = json!(duration.map(seconds));
            v["start"] = json!(start);
            v["winner"] = json!(winner.map(name));
        }
        Strategy::Scheduled { steps, .. } => {
            v["steps"] = steps.iter().map(|(at, p)| json!({"at": at, "percentage": p})).collect();
        }
    }
    v
}

/// The live state of a flag: override, stage, pause, sunset phase, last evaluated.
fn state_view(flag: &Flag, rt: &FlagRuntime, served: &Served, now: DateTime<Utc>) -> Value {
    let record = served.persisted.overrides.get(&flag.key);
    let effective = match record.map(|r| &r.kind) {
        None if !flag.enabled => "disabled",
        None => "file",
        Some(OverrideKind::Kill) => "killed",
        Some(OverrideKind::Enable) => "forced_on",
        Some(OverrideKind::Variant(_) | OverrideKind::Value(_)) => "forced",
        Some(OverrideKind::RolledBack) => "rolled_back",
    };
    let mut v = json!({
        "effective": effective,
        "override": record,
        "first_seen": rt.first_seen,
        "last_evaluated": rt.last_evaluated(),
    });
    if let Some(Strategy::Gradual { stages, start, .. }) = &flag.strategy {
        let start = crate::eval::rollout::schedule_start(*start, rt.first_seen, now);
        let progress = gradual_progress(stages, start, now, rt.pause);
        v["stage"] = json!(progress.map(|p| p.stage + 1));
        v["stages"] = json!(stages.len());
        v["stage_percentage"] = json!(progress.map(|p| stages[p.stage].percentage));
        v["next_stage_at"] = json!(progress.and_then(|p| p.next_stage_at));
        v["paused"] = json!(rt.pause.paused_since.is_some());
        v["paused_since"] = json!(rt.pause.paused_since);
        v["paused_seconds"] = json!(rt.pause.paused_total.num_seconds());
    }
    if let Some(Strategy::AbTest { start, duration, winner, .. }) = &flag.strategy {
        let start = crate::eval::rollout::schedule_start(*start, rt.first_seen, now);
        v["window_start"] = json!(start);
        v["window_ends_at"] = json!(duration.and_then(|d| start.checked_add_signed(d)));
        v["window_over"] = json!(crate::eval::rollout::window_over(start, *duration, now));
        v["winner"] = json!(winner.map(|i| flag.variants[i].name.as_str()));
    }
    if let Some(plan) = &flag.sunset {
        v["sunset_phase"] = json!(plan.phase_at(now).map(|p| p.kind.as_str()));
        v["shutdown_at"] = json!(plan.shutdown_at);
    }
    v
}

fn summary_view(flag: &Flag, rt: &FlagRuntime, served: &Served, now: DateTime<Utc>) -> Value {
    json!({
        "key": flag.key,
        "type": flag.kind.as_str(),
        "description": flag.description,
        "owner": flag.owner,
        "enabled": flag.enabled,
        "strategy": flag.strategy.as_ref().map(Strategy::kind),
        "state": state_view(flag, rt, served, now),
    })
}

fn detail_view(flag: &Flag, rt: &FlagRuntime, served: &Served, now: DateTime<Utc>) -> Value {
    let variants: serde_json::Map<String, Value> =
        flag.variants.iter().map(|v| (v.name.clone(), v.value.clone())).collect();
    let mut v = summary_view(flag, rt, served, now);
    v["service"] = json!(flag.service);
    v["metadata"] = Value::Object(flag.metadata.clone());
    v["variants"] = Value::Object(variants);
    v["default_variant"] = json!(flag.variants[flag.default].name);
    v["default_value"] = flag.variants[flag.default].value.clone();
    v["rollout_variant"] = json!(flag.variants[flag.rollout].name);
    v["rollout_value"] = flag.variants[flag.rollout].value.clone();
    v["constraints"] = json!(flag.constraints.len());
    v["variant_overrides"] = json!(flag.overrides.len());
    v["rollout_strategy"] = flag.strategy.as_ref().map_or(Value::Null, |s| strategy_view(flag, s));
    v["sunset_plan"] = flag.sunset.as_ref().map_or(Value::Null, |p| {
        p.phases
            .iter()
            .map(|ph| {
                json!({"phase": ph.kind.as_str(), "start": ph.start, "duration_seconds": ph.duration.map(seconds),
                       "actions": ph.actions, "notice": ph.notice, "redirect": ph.redirect})
            })
            .collect()
    });
    v["monitoring"] = flag.monitoring.as_ref().map_or(Value::Null, |m| {
        json!({
            "metrics": m.metrics,
            "interval_seconds": m.interval.num_seconds(),
            "alerts": m.alerts.iter().map(|a| json!({"condition": a.condition.text, "for": a.for_samples, "action": a.action.as_str()})).collect::<Vec<_>>(),
        })
    });
    v["success_metrics"] =
        flag.success_metrics.as_ref().map_or(Value::Null, |s| json!({"primary": s.primary, "secondary": s.secondary}));
    v["deprecated_in"] = json!(flag.deprecated_in.as_ref().map(ToString::to_string));
    v["introduced_in"] = json!(flag.introduced_in.as_ref().map(ToString::to_string));
    v
}

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
        (status = 200, description = "every flag with its live state and the last reload", body = serde_json::Value),
        crate::http::error::answers::AdminAuth,
    )
)]
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let served = state.serving.load();
    let now = Utc::now();
    let flags: Vec<Value> =
        served.snapshot.flags.iter().zip(&served.flags).map(|(f, rt)| summary_view(f, rt, &served, now)).collect();
    Json(json!({
        "revision": served.ready.then_some(&served.snapshot.revision),
        "last_reload": *state.boards.reloader.status(),
        "flags": flags,
    }))
}

#[utoipa::path(
    operation_id = "flags_show",
    get,
    path = "/flags/{key}",
    tag = "flags",
    security(("admin" = [])),
    params(("key" = String, Path, description = "the flag key")),
    responses(
        (status = 200, description = "definition and live state", body = serde_json::Value),
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::NotFound,
    )
)]
pub async fn show(State(state): State<AppState>, KeyPath(key): KeyPath) -> Result<Json<Value>, ApiError> {
    let served = state.serving.load();
    let (flag, rt) = find(&served, &key)?;
    let mut v = detail_view(flag, rt, &served, Utc::now());
    let board = state.boards.alerts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    v["state"]["alerts"] = board.get(&key).map_or(Value::Null, |statuses| json!(statuses));
    Ok(Json(v))
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
        (status = 202, description = "held for a second admin's approval (four-eyes): `{change_request: {...}}`", body = serde_json::Value),
        (status = 200, description = "persisted and audited; the new effective state", body = serde_json::Value),
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
        (status = 202, description = "held for a second admin's approval (four-eyes): `{change_request: {...}}`", body = serde_json::Value),
        (status = 200, description = "`{cleared}`", body = serde_json::Value),
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
    let state_view = match served.index(&key) {
        Some(idx) => state_view(&served.snapshot.flags[idx], &served.flags[idx], &served, Utc::now()),
        None => Value::Null,
    };
    Ok(Json(json!({"flag": key, "cleared": cleared, "state": state_view})).into_response())
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
        (status = 202, description = "held for a second admin's approval (four-eyes): `{change_request: {...}}`", body = serde_json::Value),
        (status = 200, description = "paused or resumed", body = serde_json::Value),
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
