//! Operations routes: `/health`, `/ready`, `/metrics` (open), `/audit` and `/reload` (admin).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, Code};
use super::{ApiQuery, AppState, Boards};
use crate::reload::ReloadOutcome;
use crate::serving::Serving;

/// The JSON Schema of the flag file (the same as `toggled schema`).
#[utoipa::path(
    operation_id = "ops_flag_schema",
    get,
    path = "/schema/flags.json",
    tag = "operations",
    responses(
        (status = 200, description = "the flag file's JSON Schema (2020-12)", content_type = "application/schema+json", body = serde_json::Value),
    )
)]
pub async fn flag_schema() -> Response {
    let schema = serde_json::to_vec(&crate::flags::file::schema()).expect("a schema serialises");
    ([(CONTENT_TYPE, "application/schema+json")], schema).into_response()
}

/// The OpenAPI 3.1 document of every route, generated from the handlers when the router is built.
#[utoipa::path(
    operation_id = "ops_openapi",
    get,
    path = "/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "this document", body = serde_json::Value),
    )
)]
pub async fn openapi(State(state): State<AppState>) -> Response {
    ([(CONTENT_TYPE, "application/json")], state.openapi.get().cloned().unwrap_or_default()).into_response()
}

#[utoipa::path(
    operation_id = "ops_health",
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "alive", body = serde_json::Value),
    )
)]
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// 200 while a valid flag file is served (even if the latest reload failed), else 503.
#[utoipa::path(
    operation_id = "ops_ready",
    get,
    path = "/ready",
    tag = "operations",
    responses(
        (status = 200, description = "a valid flag file is served; the last reload and background tasks", body = serde_json::Value),
        (status = 503, description = "no valid flag file yet", body = crate::http::error::ErrorBody),
    )
)]
pub async fn ready(State(serving): State<Arc<Serving>>, State(boards): State<Boards>) -> Result<Json<Value>, ApiError> {
    let served = serving.load();
    let status = boards.reloader.status();
    let body = json!({
        "ready": served.ready,
        "revision": served.ready.then_some(&served.snapshot.revision),
        "flags": served.snapshot.flags.len(),
        "last_reload": *status,
        "tasks": boards.tasks.snapshot(),
        "store": serving.store_health.get(),
    });
    let mut body = body;
    if let Some(upstream) = boards.upstream.status() {
        body["upstream"] = json!(upstream);
    }
    if served.ready { Ok(Json(body)) } else { Err(ApiError::not_ready().with_details(body)) }
}

/// Prometheus text format 0.0.4, or OpenMetrics when the scraper asks for it.
#[utoipa::path(
    operation_id = "ops_metrics",
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text 0.0.4, or OpenMetrics on Accept", content_type = "text/plain"),
    )
)]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let wants_openmetrics =
        headers.get(ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("application/openmetrics-text"));
    state.serving.update_gauges(chrono::Utc::now());
    if wants_openmetrics {
        (
            [(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            state.serving.metrics.render_openmetrics(),
        )
            .into_response()
    } else {
        ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.serving.metrics.render_text())
            .into_response()
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// One subject: a flag key, `*` (file reloads) or `release:<id>`.
    flag: Option<String>,
    /// Actors whose name starts with this (`ops`, `auto-rollback`, `reload`, `release-rollback`).
    actor: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(
    operation_id = "ops_audit",
    get,
    path = "/audit",
    tag = "operations",
    security(("admin" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "`{entries}`, newest first", body = serde_json::Value),
        crate::http::error::answers::Malformed,
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::NotChanged,
    )
)]
pub async fn audit(State(state): State<AppState>, ApiQuery(q): ApiQuery<AuditQuery>) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(Code::InvalidQuery, "limit must be from 1 to 1000"));
    }
    let actor = q.actor.as_deref().filter(|a| !a.is_empty());
    let entries = state.serving.store.audit(q.flag.as_deref(), actor, limit).await.map_err(|e| ApiError::store(&e))?;
    Ok(Json(json!({ "entries": entries })))
}

/// Forces a reload: 200 when applied or unchanged, 422 with every error when the file is invalid.
#[utoipa::path(
    operation_id = "ops_reload",
    post,
    path = "/reload",
    tag = "operations",
    security(("admin" = [])),
    responses(
        (status = 200, description = "`{outcome: applied|unchanged, revision}`", body = serde_json::Value),
        crate::http::error::answers::AdminAuth,
        (status = 422, description = "invalid_flag_file, with every error", body = crate::http::error::ErrorBody),
    )
)]
pub async fn reload(State(boards): State<Boards>) -> Result<Json<Value>, ApiError> {
    match crate::reload::reload(&boards.reloader, "api").await {
        ReloadOutcome::Applied { revision } => Ok(Json(json!({"outcome": "applied", "revision": revision}))),
        ReloadOutcome::Unchanged { revision } => Ok(Json(json!({"outcome": "unchanged", "revision": revision}))),
        ReloadOutcome::Rejected { errors, message } => Err(ApiError::new(Code::InvalidFlagFile, message)
            .with_details(json!({"errors": errors, "revision": boards.reloader.serving().load().snapshot.revision}))),
    }
}
