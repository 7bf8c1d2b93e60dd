//! Release routes (admin): plans with conflict checks, status transitions gated by approvals
//! and test reports, notes and plan documents (quality metrics and stale flags: `quality.rs`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::error::{ApiError, Code};
use super::release_views::{ReleaseList, ReleaseView};
use super::{ApiJson, ApiQuery, AppState};
use crate::release::notes;
use crate::release::plan::{self, Dependency, OtherRelease};
use crate::release::proposal::{self, Proposal, Refusal};
use crate::release::record::{Approval, ReleaseData, ReleaseStatus, StoredCommit, TestReport};
use crate::release::version::{CommitInput, split_tag};
use crate::releasing;
use crate::store::{AuditAction, ReleasePage, ReleaseRecord, ReleaseSummary};

pub use crate::release::ReleaseSettings;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum CommitIn {
    Message(String),
    Full { message: String, sha: Option<String>, date: Option<DateTime<Utc>> },
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRelease {
    service: String,
    version: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    commits: Vec<CommitIn>,
    #[serde(default)]
    dependencies: Vec<Dependency>,
    scheduled_at: Option<DateTime<Utc>>,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    timeline: plan::Timeline,
}

/// The answer to a refused plan (conflicts are answered by the handler, which audits them).
fn refused(service: &str, refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::InvalidRequirement(e) => ApiError::new(Code::InvalidRequirement, e),
        Refusal::InvalidVersion(e) => ApiError::new(Code::InvalidVersion, e),
        Refusal::InvalidType { given, known } => {
            ApiError::new(Code::InvalidType, format!("type {given:?}: expected one of {}", known.join(", ")))
        }
        Refusal::TypeMismatch { kind, offending } => {
            let names: Vec<String> = offending.iter().map(|c| format!("{}: {}", c.kind, c.description)).collect();
            ApiError::new(
                Code::TypeMismatch,
                format!("a {kind} release cannot contain these commits: {}", names.join("; ")),
            )
            .with_details(json!({"offending": offending}))
        }
        Refusal::VersionNotNewer { version, latest } => ApiError::new(
            Code::VersionNotNewer,
            format!("{version} is not newer than {service}'s latest release {latest}"),
        ),
        Refusal::NothingToRelease { current } => ApiError::new(
            Code::NothingToRelease,
            format!("no commit bumps {service} {current}; give `version` to release anyway"),
        ),
        Refusal::Conflicts { found, .. } => {
            ApiError::new(Code::ReleaseConflicts, format!("{} conflict(s) with this release plan", found.len()))
                .with_details(json!({"conflicts": found}))
        }
    }
}

fn store_err(e: &crate::store::StoreError) -> ApiError {
    ApiError::store(e)
}

fn others_of(releases: &[ReleaseSummary]) -> Vec<OtherRelease> {
    releases
        .iter()
        .filter_map(|r| {
            let (_, version) = split_tag(&r.version).ok()?;
            Some(OtherRelease {
                id: r.id,
                service: r.service.clone(),
                version,
                status: r.status.clone(),
                scheduled_at: r.scheduled_at,
            })
        })
        .collect()
}

fn required(state: &AppState, r: &ReleaseRecord) -> (String, Vec<String>) {
    let t = state.releases.strategy.types.get(&r.kind);
    (
        t.map_or_else(String::new, |t| t.approval_required.clone()),
        t.map(|t| t.testing_requirements.clone()).unwrap_or_default(),
    )
}

/// What still blocks `deployed`: the required approval and every testing requirement.
fn missing(state: &AppState, r: &ReleaseRecord) -> Vec<String> {
    let (approval, tests) = required(state, r);
    let mut out = Vec::new();
    if !approval.is_empty() && !r.data.approved_as(&approval) {
        out.push(format!("approval by {approval}"));
    }
    for t in tests {
        if !r.data.passed(&t) {
            out.push(format!("{t} passed"));
        }
    }
    out
}

fn view(state: &AppState, r: &ReleaseRecord) -> ReleaseView {
    let (approval, tests) = required(state, r);
    ReleaseView::of(r, approval, tests, missing(state, r))
}

pub(super) async fn load(state: &AppState, id: i64) -> Result<ReleaseRecord, ApiError> {
    state
        .serving
        .store
        .release(id)
        .await
        .map_err(|e| store_err(&e))?
        .ok_or_else(|| ApiError::new(Code::ReleaseNotFound, format!("no release #{id}")))
}

#[utoipa::path(
    operation_id = "releases_create",
    post,
    path = "/releases",
    tag = "releases",
    security(("admin" = [])),
    request_body = CreateRelease,
    responses(
        (status = 201, description = "the release plan", body = ReleaseView),
        crate::http::error::answers::Malformed,
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::Conflict,
        crate::http::error::answers::Invalid,
        crate::http::error::answers::NotChanged,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    axum::Extension(who): axum::Extension<super::auth::Identity>,
    ApiJson(req): ApiJson<CreateRelease>,
) -> Result<Response, ApiError> {
    let service = req.service.trim().to_owned();
    if service.is_empty() {
        return Err(ApiError::new(Code::InvalidRelease, "`service` is required"));
    }
    let served = state.serving.load_full();
    let unknown: Vec<&str> =
        req.flags.iter().map(String::as_str).filter(|f| served.snapshot.get(f).is_none()).collect();
    if !unknown.is_empty() {
        return Err(ApiError::new(Code::UnknownFlag, format!("no such flags: {}", unknown.join(", "))));
    }
    // What the plan is checked against: this service's releases and its dependencies'.
    let store = &state.serving.store;
    let mut related = Vec::new();
    for s in std::iter::once(service.as_str()).chain(req.dependencies.iter().map(|d| d.service.as_str())) {
        let page = ReleasePage { service: Some(s), ..ReleasePage::default() };
        related.extend(store.release_summaries(page).await.map_err(|e| store_err(&e))?);
    }
    let commits: Vec<CommitInput> = req
        .commits
        .iter()
        .map(|c| match c {
            CommitIn::Message(m) => CommitInput { message: m.clone(), sha: None },
            CommitIn::Full { message, sha, .. } => CommitInput { message: message.clone(), sha: sha.clone() },
        })
        .collect();
    let proposal = Proposal {
        service: &service,
        commits: &commits,
        kind: req.kind.as_deref(),
        version: req.version.as_deref(),
        when: req.scheduled_at.unwrap_or_else(Utc::now),
        dependencies: &req.dependencies,
    };
    let decided =
        match proposal::decide(&proposal, &others_of(&related), &state.releases.strategy, &state.releases.windows) {
            Ok(decided) => decided,
            Err(Refusal::Conflicts { version, found }) => {
                releasing::refused(&state.serving, &service, &version.to_string(), &json!(found), &who.name)
                    .await
                    .map_err(|e| store_err(&e))?;
                return Err(ApiError::new(
                    Code::ReleaseConflicts,
                    format!("{} conflict(s) with this release plan", found.len()),
                )
                .with_details(json!({"conflicts": found})));
            }
            Err(refusal) => return Err(refused(&service, refusal)),
        };
    let (kind, analysis) = (decided.kind, decided.analysis);
    let version = decided.version.to_string();
    let latest_per_service = store.latest_release_summaries().await.map_err(|e| store_err(&e))?;
    let dependents = proposal::dependents(
        &service,
        &decided.version,
        latest_per_service.iter().map(|r| (r.service.as_str(), r.brief.dependencies.as_slice())),
    );
    let now = Utc::now();
    let first_commit_at = req
        .commits
        .iter()
        .filter_map(|c| match c {
            CommitIn::Full { date, .. } => *date,
            CommitIn::Message(_) => None,
        })
        .min()
        .unwrap_or(now);
    let title = format!("{service} {version}");
    let plan_document = plan::plan_markdown(&plan::PlanInput {
        service: &service,
        version: &version,
        kind: &kind,
        target: req.scheduled_at,
        analysis: &analysis,
        dependencies: &req.dependencies,
        dependents: &dependents,
        strategy: &state.releases.strategy,
        flags: &req.flags,
        timeline: &req.timeline,
    });
    let record = ReleaseRecord {
        id: 0,
        service: service.clone(),
        version: version.clone(),
        kind: kind.clone(),
        status: if req.scheduled_at.is_some() { ReleaseStatus::Scheduled } else { ReleaseStatus::Planned },
        scheduled_at: req.scheduled_at,
        created_at: now,
        status_at: now,
        deployed_at: None,
        first_commit_at,
        data: ReleaseData {
            commits: req
                .commits
                .iter()
                .map(|c| match c {
                    CommitIn::Message(m) => StoredCommit { message: m.clone(), sha: None, date: None },
                    CommitIn::Full { message, sha, date } => {
                        StoredCommit { message: message.clone(), sha: sha.clone(), date: *date }
                    }
                })
                .collect(),
            analysis: json!(analysis),
            dependencies: req.dependencies.clone(),
            dependents,
            flags: req.flags.clone(),
            notes: notes::markdown(&analysis, &format!("Release {title}")),
            plan: plan_document,
            planned_by: Some(who.name.clone()),
            ..ReleaseData::default()
        },
    };
    let id = releasing::create(&state.serving, &record, &who.name).await.map_err(|e| store_err(&e))?;
    let record = ReleaseRecord { id, ..record };
    Ok((StatusCode::CREATED, Json(view(&state, &record))).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    service: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<i64>,
    /// Releases per page: 1 to 500, default 50.
    limit: Option<u32>,
}

#[utoipa::path(
    operation_id = "releases_list",
    get,
    path = "/releases",
    tag = "releases",
    security(("admin" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "summaries, newest first, a page at a time", body = ReleaseList),
        crate::http::error::answers::Malformed,
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::NotChanged,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ReleaseList>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(Code::InvalidQuery, format!("limit {limit}: expected 1 to 500")));
    }
    let page = ReleasePage { service: q.service.as_deref(), before: q.cursor, limit: Some(limit) };
    let releases = state.serving.store.release_summaries(page).await.map_err(|e| store_err(&e))?;
    let next = (releases.len() == limit as usize).then(|| releases.last().map(|r| r.id)).flatten();
    Ok(Json(ReleaseList { releases, next_cursor: next }))
}

#[utoipa::path(
    operation_id = "releases_show",
    get,
    path = "/releases/{id}",
    tag = "releases",
    security(("admin" = [])),
    params(("id" = i64, Path, description = "the release id")),
    responses(
        (status = 200, description = "one release", body = ReleaseView),
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::NotFound,
        crate::http::error::answers::NotChanged,
    )
)]
pub async fn show(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Json<ReleaseView>, ApiError> {
    let r = load(&state, id).await?;
    Ok(Json(view(&state, &r)))
}

fn markdown(text: &str) -> Response {
    ([(CONTENT_TYPE, "text/markdown; charset=utf-8")], text.to_owned()).into_response()
}

#[utoipa::path(
    operation_id = "releases_notes_of",
    get,
    path = "/releases/{id}/notes",
    tag = "releases",
    security(("admin" = [])),
    params(("id" = i64, Path, description = "the release id")),
    responses(
        (status = 200, description = "release notes", content_type = "text/markdown"),
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::NotFound,
    )
)]
pub async fn notes_of(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let r = load(&state, id).await?;
    Ok(markdown(&r.data.notes))
}

#[utoipa::path(
    operation_id = "releases_plan_of",
    get,
    path = "/releases/{id}/plan",
    tag = "releases",
    security(("admin" = [])),
    params(("id" = i64, Path, description = "the release id")),
    responses(
        (status = 200, description = "the release plan document", content_type = "text/markdown"),
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::NotFound,
    )
)]
pub async fn plan_of(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let r = load(&state, id).await?;
    Ok(markdown(&r.data.plan))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    status: ReleaseStatus,
    /// Why (audited and notified).
    reason: Option<String>,
}

#[utoipa::path(
    operation_id = "releases_set_status",
    post,
    path = "/releases/{id}/status",
    tag = "releases",
    security(("admin" = [])),
    request_body = StatusRequest,
    params(("id" = i64, Path, description = "the release id")),
    responses(
        (status = 200, description = "the release", body = ReleaseView),
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::NotFound,
        crate::http::error::answers::Conflict,
        crate::http::error::answers::Invalid,
        crate::http::error::answers::NotChanged,
    )
)]
pub async fn set_status(
    State(state): State<AppState>,
    axum::Extension(who): axum::Extension<super::auth::Identity>,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<StatusRequest>,
) -> Result<Json<ReleaseView>, ApiError> {
    if !ReleaseStatus::TARGETS.contains(&req.status) {
        let targets: Vec<&str> = ReleaseStatus::TARGETS.iter().map(ReleaseStatus::as_str).collect();
        return Err(ApiError::new(
            Code::InvalidStatus,
            format!("status {:?}: expected one of {}", req.status.as_str(), targets.join(", ")),
        ));
    }
    let mut r = load(&state, id).await?;
    if !r.status.can_move_to(&req.status) {
        return Err(ApiError::new(
            Code::InvalidTransition,
            format!("release #{id} is {}; it cannot become {}", r.status, req.status),
        ));
    }
    if req.status == ReleaseStatus::Deployed {
        let blocking = missing(&state, &r);
        if !blocking.is_empty() {
            return Err(ApiError::new(
                Code::ReleaseBlocked,
                format!("release #{id} still needs: {}", blocking.join(", ")),
            )
            .with_details(json!({"missing": blocking})));
        }
    }
    let now = Utc::now();
    let before = std::mem::replace(&mut r.status, req.status.clone());
    r.status_at = now;
    if r.status == ReleaseStatus::Deployed {
        r.deployed_at = Some(now);
    }
    // The flags go first: a failure here leaves the release as it was, and a retry kills the rest.
    releasing::kill_flags_if_due(&state.serving, &state.releases.strategy, &mut r).await.map_err(|e| store_err(&e))?;
    let reason = req.reason.unwrap_or_else(|| format!("{before} -> {}", r.status));
    r.data.status_reason = Some(reason.clone());
    releasing::update(state.serving.store.as_ref(), &r, &before, &who.name, AuditAction::ReleaseStatus, reason)
        .await
        .map_err(|e| store_err(&e))?;
    Ok(Json(view(&state, &r)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    role: Option<String>,
    approver: Option<String>,
    test: Option<String>,
    passed: Option<bool>,
}

/// Records an approval (`{"role", "approver"?}`) or a test report (`{"test", "passed"}`).
#[utoipa::path(
    operation_id = "releases_approve",
    post,
    path = "/releases/{id}/approvals",
    tag = "releases",
    security(("admin" = [])),
    request_body = ApprovalRequest,
    params(("id" = i64, Path, description = "the release id")),
    responses(
        (status = 200, description = "the release", body = ReleaseView),
        crate::http::error::answers::AdminAuth,
        crate::http::error::answers::NotFound,
        crate::http::error::answers::Conflict,
        crate::http::error::answers::Invalid,
        crate::http::error::answers::NotChanged,
    )
)]
pub async fn approve(
    State(state): State<AppState>,
    axum::Extension(who): axum::Extension<super::auth::Identity>,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<ApprovalRequest>,
) -> Result<Json<ReleaseView>, ApiError> {
    let mut r = load(&state, id).await?;
    // A rollback approval is for a release that shipped; the others close once it did.
    let rollback = req.role.as_deref() == Some(releasing::ROLLBACK_ROLE);
    let open = if rollback {
        matches!(r.status, ReleaseStatus::InProgress | ReleaseStatus::Deployed | ReleaseStatus::RolledBack)
    } else {
        r.status.accepts_approvals()
    };
    if !open {
        return Err(ApiError::new(
            Code::InvalidTransition,
            format!("release #{id} is {}; approvals are closed", r.status),
        ));
    }
    let now = Utc::now();
    let (action, reason) = match (req.role, req.test, req.passed) {
        (Some(role), None, None) => {
            let approver = req.approver.unwrap_or_else(|| who.name.clone());
            let reason = format!("approved as {role} by {approver}");
            let by_planner = r.data.planned_by.as_deref() == Some(who.name.as_str());
            if by_planner {
                tracing::warn!(release = r.id, token = %who.name, "a release approved by the token that planned it");
            }
            r.data.approvals.push(Approval {
                role,
                approver,
                at: now,
                recorded_by: Some(who.name.clone()),
                by_planner,
            });
            (AuditAction::ReleaseApproved, reason)
        }
        (None, Some(test), Some(passed)) => {
            let reason = format!("{test} {}", if passed { "passed" } else { "failed" });
            r.data.tests.insert(test, TestReport { passed, by: who.name.clone(), at: now });
            (AuditAction::ReleaseTestReported, reason)
        }
        _ => {
            return Err(ApiError::new(
                Code::InvalidApproval,
                "give {\"role\": \"team_lead\", \"approver\"?: \"name\"} or {\"test\": \"smoke_tests\", \"passed\": true}",
            ));
        }
    };
    if rollback {
        releasing::kill_flags_if_due(&state.serving, &state.releases.strategy, &mut r)
            .await
            .map_err(|e| store_err(&e))?;
    }
    let status = r.status.clone();
    releasing::update(state.serving.store.as_ref(), &r, &status, &who.name, action, reason)
        .await
        .map_err(|e| store_err(&e))?;
    Ok(Json(view(&state, &r)))
}

impl super::RequestBody for CreateRelease {
    const INVALID: Code = Code::InvalidRelease;
}

impl super::RequestBody for StatusRequest {
    const INVALID: Code = Code::InvalidStatus;
}

impl super::RequestBody for ApprovalRequest {
    const INVALID: Code = Code::InvalidApproval;
}
