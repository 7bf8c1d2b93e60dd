//! `POST /releases/order` (admin): the deploy order of a multi-service release. Each entry is a
//! planned release `{service, version, dependencies}` or the id of a stored one; the decision is
//! `release::order`'s.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;

use super::error::{ApiError, Code};
use super::{ApiJson, AppState};
use crate::release::order::{self, OrderError, Planned};
use crate::release::plan::Dependency;
use crate::release::version::split_tag;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum TrainEntry {
    /// A stored release, by id.
    Id(i64),
    /// A release as planned.
    Planned {
        service: String,
        version: String,
        #[serde(default)]
        dependencies: Vec<Dependency>,
    },
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    releases: Vec<TrainEntry>,
}

fn planned(service: String, version: &str, dependencies: Vec<Dependency>) -> Result<Planned, ApiError> {
    let (_, version) = split_tag(version)
        .map_err(|e| ApiError::new(Code::InvalidVersion, format!("{service}: version {version:?}: {e}")))?;
    Ok(Planned { service, version, dependencies })
}

#[utoipa::path(
    operation_id = "releases_order",
    post,
    path = "/releases/order",
    tag = "releases",
    security(("admin" = [])),
    request_body = OrderRequest,
    responses(
        (status = 200, description = "the deploy order, dependencies first, and its stages", body = order::Order),
        (status = 400, description = "malformed JSON", body = crate::http::error::ErrorBody),
        crate::http::error::answers::AdminAuth,
        (status = 404, description = "no such release", body = crate::http::error::ErrorBody),
        (status = 409, description = "dependency_cycle (naming it) or requirement_unsatisfied", body = crate::http::error::ErrorBody),
        (status = 422, description = "a service twice, a version or requirement that does not parse", body = crate::http::error::ErrorBody),
        crate::http::error::answers::StoreFailed,
    )
)]

pub async fn order_of(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<OrderRequest>,
) -> Result<Json<order::Order>, ApiError> {
    let mut train = Vec::with_capacity(req.releases.len());
    for entry in req.releases {
        train.push(match entry {
            TrainEntry::Planned { service, version, dependencies } => planned(service, &version, dependencies)?,
            TrainEntry::Id(id) => {
                let r = super::releases::load(&state, id).await?;
                planned(r.service, &r.version, r.data.dependencies)?
            }
        });
    }
    let decided = order::order(&train).map_err(|e| {
        let code = match &e {
            OrderError::Cycle(_) => Code::DependencyCycle,
            OrderError::Unsatisfied { .. } => Code::RequirementUnsatisfied,
            OrderError::InvalidRequirement { .. } => Code::InvalidRequirement,
            OrderError::Duplicate(_) => Code::InvalidRelease,
        };
        let error = ApiError::new(code, e.to_string());
        match e {
            OrderError::Cycle(services) => error.with_details(json!({ "cycle": services })),
            _ => error,
        }
    })?;
    Ok(Json(decided))
}
impl super::RequestBody for OrderRequest {
    const INVALID: Code = Code::InvalidRelease;
}
