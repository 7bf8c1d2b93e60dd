//! Operations routes: `/health`, `/ready`, `/metrics` (open), `/audit` and `/reload` (admin).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
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
        (status = 200, description = "this document", body = OpenApiDocument),
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
        (status = 200, description = "alive", body = Health),
    )
)]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`: the process answers.
    pub status: &'static str,
}

/// The OpenAPI document's top level (`GET /openapi.json` serves the document rendered once
/// when the router is built; this type describes it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OpenApiDocument {
    /// `3.1.0`.
    pub openapi: String,
    pub info: Object,
    /// Every route, by path and method.
    pub paths: Object,
    /// Schemas and security schemes.
    pub components: Object,
    pub tags: Vec<Object>,
}

/// Any JSON object (a part of a document described elsewhere).
pub type Object = serde_json::Map<String, Value>;

/// `GET /ready`: whether a valid flag file is served, and the health of what serves it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ready {
    pub ready: bool,
    /// The revision served (none before the first valid file).
    pub revision: Option<String>,
    pub flags: usize,
    pub last_reload: crate::reload::ReloadStatus,
    /// Every supervised background task by name.
    pub tasks: std::collections::BTreeMap<&'static str, crate::tasks::TaskHealth>,
    pub store: crate::store::StoreHealth,
    /// Edge mode only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<crate::upstream::UpstreamStatus>,
}

/// 200 while a valid flag file is served (even if the latest reload failed), else 503.
#[utoipa::path(
    operation_id = "ops_ready",
    get,
    path = "/ready",
    tag = "operations",
    responses(
        (status = 200, description = "a valid flag file is served; the last reload and background tasks", body = Ready),
        (status = 503, description = "no valid flag file yet", body = crate::http::error::ErrorBody),
    )
)]
pub async fn ready(State(serving): State<Arc<Serving>>, State(boards): State<Boards>) -> Result<Json<Ready>, ApiError> {
    let served = serving.load();
    let body = Ready {
        ready: served.ready,
        revision: served.ready.then(|| served.snapshot.revision.clone()),
        flags: served.snapshot.flags.len(),
        last_reload: (*boards.reloader.status()).clone(),
        tasks: boards.tasks.snapshot(),
        store: serving.store_health.get(),
        upstream: boards.upstream.status(),
    };
    if served.ready { Ok(Json(body)) } else { Err(ApiError::not_ready().with_details(json!(body))) }
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
        (status = 200, description = "audit rows, newest first", body = AuditAnswer),
        crate::http::error::answers::Malformed,
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::NotChanged,
    )
)]
pub async fn audit(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditAnswer>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(Code::InvalidQuery, "limit must be from 1 to 1000"));
    }
    let actor = q.actor.as_deref().filter(|a| !a.is_empty());
    let entries = state.serving.store.audit(q.flag.as_deref(), actor, limit).await.map_err(|e| ApiError::store(&e))?;
    Ok(Json(AuditAnswer { entries }))
}

/// `GET /audit`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditAnswer {
    /// Newest first.
    pub entries: Vec<crate::store::AuditEntry>,
}

/// `POST /reload`, when the file was applied or is what is served.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Reloaded {
    /// `applied` or `unchanged`.
    pub outcome: &'static str,
    pub revision: String,
}

/// Forces a reload: 200 when applied or unchanged, 422 with every error when the file is invalid.
#[utoipa::path(
    operation_id = "ops_reload",
    post,
    path = "/reload",
    tag = "operations",
    security(("admin" = [])),
    responses(
        (status = 200, description = "the file was applied, or is what is served", body = Reloaded),
        crate::http::error::answers::AdminAuth,
        (status = 422, description = "invalid_flag_file, with every error", body = crate::http::error::ErrorBody),
    )
)]
pub async fn reload(State(boards): State<Boards>) -> Result<Json<Reloaded>, ApiError> {
    match crate::reload::reload(&boards.reloader, "api").await {
        ReloadOutcome::Applied { revision } => Ok(Json(Reloaded { outcome: "applied", revision })),
        ReloadOutcome::Unchanged { revision } => Ok(Json(Reloaded { outcome: "unchanged", revision })),
        ReloadOutcome::Rejected { errors, message } => Err(ApiError::new(Code::InvalidFlagFile, message)
            .with_details(json!({"errors": errors, "revision": boards.reloader.serving().load().snapshot.revision}))),
    }
}
