//! What the release routes answer, typed so that OpenAPI describes every field.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::release::plan::Dependency;
use crate::release::record::{Approval, ReleaseStatus, RollbackCause, TestReport};
use crate::store::{ReleaseRecord, ReleaseSummary};

/// A release: its columns, what it ships and needs, and what happened to it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReleaseView {
    pub id: i64,
    pub service: String,
    pub version: String,
    /// The release type (`major`, `minor`, `patch`, `hotfix`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    pub status: ReleaseStatus,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub status_at: DateTime<Utc>,
    pub deployed_at: Option<DateTime<Utc>>,
    pub first_commit_at: DateTime<Utc>,
    pub dependencies: Vec<Dependency>,
    /// Releases of other services that depend on this one.
    pub dependents: Vec<Dependency>,
    /// The flags it ships.
    pub flags: Vec<String>,
    pub approvals: Vec<Approval>,
    /// Test reports by test name.
    pub tests: BTreeMap<String, TestReport>,
    /// The commits as analysed (next version, bump, changes by kind).
    #[schema(value_type = Object)]
    pub analysis: Value,
    /// The flags its rollback killed (once it acted).
    pub flags_killed: Option<Vec<String>>,
    /// Rolled back with a `manual_approval` plan and no `rollback` approval yet.
    pub rollback_awaits_approval: bool,
    pub rollback_recommended: Option<RollbackCause>,
    pub rolled_back_by: Option<RollbackCause>,
    /// Reminders sent, in days before `scheduled_at`.
    pub reminders_sent: Vec<i64>,
    /// Whether a commit is a breaking change.
    pub breaking: bool,
    /// What its type requires before `deployed`.
    pub requires: Requirements,
    /// What still blocks `deployed`.
    pub missing: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Requirements {
    /// The role whose approval it needs (empty: none).
    pub approval: String,
    /// The tests that must be reported passed.
    pub tests: Vec<String>,
}

impl ReleaseView {
    /// `r` with what its type requires (`approval`, `tests`) and what is still `missing`.
    pub fn of(r: &ReleaseRecord, approval: String, tests: Vec<String>, missing: Vec<String>) -> Self {
        let d = &r.data;
        Self {
            id: r.id,
            service: r.service.clone(),
            version: r.version.clone(),
            kind: r.kind.clone(),
            status: r.status.clone(),
            scheduled_at: r.scheduled_at,
            created_at: r.created_at,
            status_at: r.status_at,
            deployed_at: r.deployed_at,
            first_commit_at: r.first_commit_at,
            dependencies: d.dependencies.clone(),
            dependents: d.dependents.clone(),
            flags: d.flags.clone(),
            approvals: d.approvals.clone(),
            tests: d.tests.clone(),
            analysis: d.analysis.clone(),
            flags_killed: d.flags_killed.clone(),
            rollback_awaits_approval: d.rollback_awaits_approval,
            rollback_recommended: d.rollback_recommended.clone(),
            rolled_back_by: d.rolled_back_by.clone(),
            reminders_sent: d.reminders_sent.clone(),
            breaking: d.analysis["breaking"].as_array().is_some_and(|b| !b.is_empty()),
            requires: Requirements { approval, tests },
            missing,
        }
    }
}

/// `GET /releases`: a page of summaries, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReleaseList {
    pub releases: Vec<ReleaseSummary>,
    /// Pass as `cursor` for the next page; none on the last.
    pub next_cursor: Option<i64>,
}
