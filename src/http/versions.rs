//! `POST /versions/next`: commits -> the next version, the changes by kind, and release notes.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, Code};
use super::{ApiJson, AppState};
use crate::release::{CommitInput, PreMajor, next_version, notes};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum CommitIn {
    Message(String),
    Full { message: String, sha: Option<String> },
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NextRequest {
    current: String,
    #[serde(default)]
    commits: Vec<CommitIn>,
    pre_major: Option<String>,
    pre_release: Option<String>,
}

#[utoipa::path(
    operation_id = "versions_next",
    post,
    path = "/versions/next",
    tag = "releases",
    security(("admin" = [])),
    request_body = NextRequest,
    responses(
        (status = 200, description = "next version, bump, changes by kind, notes", body = NextVersion),
        crate::http::error::answers::Malformed,
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::Invalid,
    )
)]
pub async fn next(
    State(_state): State<AppState>,
    ApiJson(req): ApiJson<NextRequest>,
) -> Result<Json<NextVersion>, ApiError> {
    let pre_major = match req.pre_major.as_deref() {
        None | Some("major") => PreMajor::Major,
        Some("minor") => PreMajor::Minor,
        Some(other) => {
            return Err(ApiError::new(
                Code::InvalidOption,
                format!("pre_major {other:?}: expected \"major\" or \"minor\""),
            ));
        }
    };
    let commits: Vec<CommitInput> = req
        .commits
        .into_iter()
        .map(|c| match c {
            CommitIn::Message(message) => CommitInput { message, sha: None },
            CommitIn::Full { message, sha } => CommitInput { message, sha },
        })
        .collect();
    let analysis = next_version(&req.current, &commits, pre_major, req.pre_release.as_deref())
        .map_err(|e| ApiError::new(Code::InvalidVersion, e.to_string()))?;
    let notes = notes::markdown(&analysis, &format!("Release {}", analysis.next));
    Ok(Json(NextVersion { analysis, notes }))
}

/// `POST /versions/next`: the analysis of the commits and the release notes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NextVersion {
    #[serde(flatten)]
    pub analysis: crate::release::version::Analysis,
    /// Markdown release notes.
    pub notes: String,
}

impl super::RequestBody for NextRequest {
    const INVALID: Code = Code::InvalidVersion;
}
