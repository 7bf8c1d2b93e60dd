//! `POST /alerts`: an Alertmanager webhook receiver (payload version 4). Firing alerts whose
//! labels carry `flag` and `action` (`rollback` | `pause`) act on that flag; a resolved `pause`
//! resumes a rollout that Alertmanager paused. Deliveries are idempotent: a rolled-back flag is
//! not rolled back again, a paused rollout is not paused again.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{ApiError, Code};
use super::{AppState, RawBody};
use crate::monitor;

/// The trigger label of rollbacks that Alertmanager asked for.
pub const TRIGGER: &str = "alertmanager";

#[derive(Debug, Deserialize)]
struct Notification {
    version: String,
    alerts: Vec<AlertmanagerAlert>,
}

#[derive(Debug, Deserialize)]
struct AlertmanagerAlert {
    status: String,
    #[serde(default)]
    labels: HashMap<String, String>,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

#[utoipa::path(
    operation_id = "alerts_receive",
    post,
    path = "/alerts",
    tag = "operations",
    security(("admin" = []), ("receiver" = [])),
    request_body(content = serde_json::Value, description = "Alertmanager webhook payload, version 4"),
    responses(
        (status = 200, description = "what each alert did", body = AlertResults),
        (status = 400, description = "not an Alertmanager v4 payload", body = crate::http::error::ErrorBody),
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::NotChanged,
    )
)]
pub async fn receive(State(state): State<AppState>, RawBody(body): RawBody) -> Result<Json<AlertResults>, ApiError> {
    let n: Notification = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(Code::InvalidPayload, format!("not an Alertmanager webhook payload: {e}")))?;
    if n.version != "4" {
        return Err(ApiError::new(
            Code::InvalidPayload,
            format!("Alertmanager webhook payload version {:?}; this receiver speaks version 4", n.version),
        ));
    }
    let mut results = Vec::with_capacity(n.alerts.len());
    for alert in &n.alerts {
        let (Some(key), Some(action)) = (alert.labels.get("flag"), alert.labels.get("action")) else {
            let alertname = alert.labels.get("alertname").cloned();
            results.push(AlertResult {
                alertname,
                outcome: "ignored: no flag/action labels",
                ..AlertResult::default()
            });
            continue;
        };
        let served = state.serving.load_full();
        let Some(flag) = served.snapshot.get(key) else {
            results.push(AlertResult {
                flag: Some(key.clone()),
                action: Some(action.clone()),
                outcome: "unknown_flag",
                ..AlertResult::default()
            });
            continue;
        };
        let why = alert
            .annotations
            .get("summary")
            .or_else(|| alert.annotations.get("condition"))
            .or_else(|| alert.labels.get("alertname"))
            .map_or_else(|| format!("Alertmanager: {action}"), |s| format!("Alertmanager: {s}"));
        let outcome = match (action.as_str(), alert.status.as_str()) {
            ("rollback", "firing") => monitor::rollback(&state.serving, key, &why, TRIGGER).await,
            ("pause", "firing") => monitor::pause(&state.serving, flag, &why, TRIGGER).await,
            ("pause", "resolved") => monitor::resume_if_paused_by(&state.serving, key, &why, TRIGGER).await,
            ("rollback", "resolved") => "kept: a rollback is cleared only by an operator",
            (_, "firing" | "resolved") => "ignored: action is rollback or pause",
            _ => "ignored: status is firing or resolved",
        };
        results.push(AlertResult {
            flag: Some(key.clone()),
            action: Some(action.clone()),
            status: Some(alert.status.clone()),
            outcome,
            ..AlertResult::default()
        });
    }
    // Alertmanager retries a delivery answered 5xx: an action that could not be stored must be
    // retried (the others are idempotent).
    if results.iter().any(|r| r.outcome == monitor::STORE_FAILED) {
        return Err(ApiError::new(Code::StoreUnavailable, "an alert's action could not be stored; retry the delivery")
            .with_details(json!({ "results": results })));
    }
    Ok(Json(AlertResults { results }))
}

/// `POST /alerts`: what each alert of the notification did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertResults {
    pub results: Vec<AlertResult>,
}

#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct AlertResult {
    /// Only for an alert without `flag` and `action` labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alertname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
    /// `rollback` or `pause`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// `firing` or `resolved`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// What toggled did (`rolled_back`, `paused`, `unknown_flag`, `ignored: ...`).
    pub outcome: &'static str,
}
