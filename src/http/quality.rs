//! Release quality routes (admin): quality metrics and gates, flags overdue for cleanup. The
//! reports themselves are computed in `reports` (never inside a scrape).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::error::{ApiError, Code};
use super::{ApiQuery, AppState};
use crate::reports;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    service: Option<String>,
    window: Option<String>,
}

#[utoipa::path(
    operation_id = "releases_metrics",
    get,
    path = "/releases/metrics",
    tag = "releases",
    security(("admin" = [])),
    params(MetricsQuery),
    responses(
        (status = 200, description = "quality metrics and gates", body = crate::release::quality::Quality),
        crate::http::error::answers::Malformed,
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::NotChanged,
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<MetricsQuery>,
) -> Result<Json<crate::release::quality::Quality>, ApiError> {
    let window = match q.window.as_deref() {
        None => chrono::Duration::days(30),
        Some(w) => crate::flags::duration::parse_duration(w)
            .ok()
            .filter(|d| *d > chrono::Duration::zero())
            .ok_or_else(|| {
                ApiError::new(Code::InvalidQuery, format!("window {w:?}: expected a duration like 30d or \"2 weeks\""))
            })?,
    };
    let (q, _) = reports::quality(&state.serving, &state.releases, q.service.as_deref(), window).await?;
    Ok(Json(q))
}

#[utoipa::path(
    operation_id = "releases_stale_flags",
    get,
    path = "/flags/stale",
    tag = "flags",
    security(("admin" = [])),
    responses(
        (status = 200, description = "flags overdue for cleanup", body = StaleFlags),
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::NotChanged,
    )
)]
pub async fn stale_flags(State(state): State<AppState>) -> Result<Json<StaleFlags>, ApiError> {
    let releases = state.serving.store.release_summaries(crate::store::ReleasePage::default()).await?;
    let flags = reports::stale(&state.serving, &state.releases, &releases).await?;
    state.serving.metrics.flags_stale.set(flags.len() as i64);
    Ok(Json(StaleFlags { flags }))
}

/// `GET /flags/stale`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StaleFlags {
    pub flags: Vec<crate::release::quality::StaleFlag>,
}
