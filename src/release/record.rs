//! What a stored release holds besides its columns, typed: the rules read approvals, test
//! reports, shipped flags and dependencies from here, never from JSON by key. The analysis is
//! kept as the JSON document it was computed as (it is shown, not decided on).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::plan::Dependency;

words! {
    /// Where a release is: `planned` (or `scheduled`, with a time) until it moves on through
    /// `POST /releases/{id}/status` ([`ReleaseStatus::can_move_to`]).
    pub enum ReleaseStatus {
        Planned = "planned",
        Scheduled = "scheduled",
        InProgress = "in_progress",
        Deployed = "deployed",
        Failed = "failed",
        RolledBack = "rolled_back",
        Cancelled = "cancelled",
    }
}

impl ReleaseStatus {
    /// The statuses a release can be moved to by `POST /releases/{id}/status`.
    pub const TARGETS: [ReleaseStatus; 5] = [
        ReleaseStatus::InProgress,
        ReleaseStatus::Deployed,
        ReleaseStatus::Failed,
        ReleaseStatus::RolledBack,
        ReleaseStatus::Cancelled,
    ];

    /// Whether a release may go from this status to `to`.
    pub fn can_move_to(&self, to: &ReleaseStatus) -> bool {
        use ReleaseStatus::{Cancelled, Deployed, Failed, InProgress, Planned, RolledBack, Scheduled};
        matches!(
            (self, to),
            (Planned | Scheduled, InProgress | Deployed | Failed | Cancelled)
                | (InProgress, Deployed | Failed | RolledBack)
                | (Deployed, RolledBack)
        )
    }

    /// Whether a release in this status still takes approvals and test reports.
    pub fn accepts_approvals(&self) -> bool {
        matches!(self, ReleaseStatus::Planned | ReleaseStatus::Scheduled | ReleaseStatus::InProgress)
    }

    /// Not yet deployed or ended: `planned` or `scheduled`.
    pub fn is_upcoming(&self) -> bool {
        matches!(self, ReleaseStatus::Planned | ReleaseStatus::Scheduled)
    }

    /// Ended badly: `failed` or `rolled_back` (the change failure rate counts these).
    pub fn is_failure(&self) -> bool {
        matches!(self, ReleaseStatus::Failed | ReleaseStatus::RolledBack)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReleaseData {
    #[serde(default)]
    pub commits: Vec<StoredCommit>,
    #[serde(default)]
    pub analysis: Value,
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    #[serde(default)]
    pub dependents: Vec<Dependency>,
    /// The flags the release ships.
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub plan: String,
    #[serde(default)]
    pub approvals: Vec<Approval>,
    /// Test reports by test name.
    #[serde(default)]
    pub tests: BTreeMap<String, TestReport>,
    /// Why the release reached its status (audited; read by the release coordination metric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// The flags its rollback killed (set once the rollback acted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags_killed: Option<Vec<String>>,
    /// Rolled back, with a `manual_approval` plan and no `rollback` approval yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback_awaits_approval: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_recommended: Option<RollbackCause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_by: Option<RollbackCause>,
    /// The admin token (its name) that planned the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_by: Option<String>,
    /// Reminders sent, in days before `scheduled_at`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reminders_sent: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCommit {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Approval {
    pub role: String,
    pub approver: String,
    pub at: DateTime<Utc>,
    /// The admin token (its name) that recorded the approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_by: Option<String>,
    /// Recorded by the token that planned the release: one person planning and approving.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_planner: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TestReport {
    pub passed: bool,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// A flag rollback that touched a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RollbackCause {
    pub flag: String,
    pub trigger: String,
    pub at: DateTime<Utc>,
}

impl ReleaseData {
    /// Whether an approval in `role` is recorded.
    pub fn approved_as(&self, role: &str) -> bool {
        self.approvals.iter().any(|a| a.role == role)
    }

    /// Whether `test` was reported passed (the last report counts).
    pub fn passed(&self, test: &str) -> bool {
        self.tests.get(test).is_some_and(|t| t.passed)
    }

    pub fn ships(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// What lists and reports read of a release, kept beside its data so that they never parse
/// its commits, notes and plan (a release with 140 commits is ~140 KB of data, ~100 B of this).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleaseBrief {
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    /// `feat` commits, and those of them covered by a flag (the quality report's coverage).
    #[serde(default)]
    pub features: usize,
    #[serde(default)]
    pub flagged_features: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
}

impl ReleaseData {
    pub fn brief(&self) -> ReleaseBrief {
        let messages = self.commits.iter().map(|c| c.message.as_str());
        let (features, flagged_features) = super::quality::flag_coverage(messages, !self.flags.is_empty());
        ReleaseBrief {
            flags: self.flags.clone(),
            dependencies: self.dependencies.clone(),
            features,
            flagged_features,
            status_reason: self.status_reason.clone(),
        }
    }
}
