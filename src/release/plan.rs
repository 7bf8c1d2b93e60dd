//! Release plans: the release strategy (types, approvals, testing requirements), the type check
//! against the commits, coordination conflicts, dependents, and the plan document. Pure.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use super::record::ReleaseStatus;
use super::version::{Analysis, Bump, Change};

/// The standards' `release-strategy.yaml`, used when no `--release-strategy` file is given.
pub const DEFAULT_STRATEGY: &str = r#"
release_strategy:
  types:
    hotfix:
      description: "Critical bug fixes requiring immediate deployment"
      cadence: "as_needed"
      approval_required: "engineering_lead"
      testing_requirements: ["smoke_tests"]
      rollback_plan: "automatic"
    patch:
      description: "Bug fixes and minor improvements"
      cadence: "weekly"
      approval_required: "team_lead"
      testing_requirements: ["unit_tests", "integration_tests", "smoke_tests"]
      rollback_plan: "automatic"
    minor:
      description: "New features and non-breaking changes"
      cadence: "bi_weekly"
      approval_required: "product_manager"
      testing_requirements: ["full_test_suite", "performance_tests", "security_scans"]
      rollback_plan: "manual_approval"
    major:
      description: "Breaking changes and major feature releases"
      cadence: "quarterly"
      approval_required: "architecture_committee"
      testing_requirements: ["full_test_suite", "performance_tests", "security_scans", "user_acceptance_tests"]
      rollback_plan: "manual_approval"
  coordination:
    dependency_check: true
    cross_team_notification: true
    release_train_alignment: true
    maintenance_window_scheduling: true
"#;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyFile {
    pub release_strategy: ReleaseStrategy,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseStrategy {
    pub types: BTreeMap<String, ReleaseType>,
    #[serde(default)]
    pub coordination: Coordination,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseType {
    pub description: String,
    pub cadence: String,
    pub approval_required: String,
    #[serde(default)]
    pub testing_requirements: Vec<String>,
    pub rollback_plan: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Coordination {
    #[serde(default = "yes")]
    pub dependency_check: bool,
    #[serde(default = "yes")]
    pub cross_team_notification: bool,
    #[serde(default = "yes")]
    pub release_train_alignment: bool,
    #[serde(default = "yes")]
    pub maintenance_window_scheduling: bool,
}

fn yes() -> bool {
    true
}

impl Default for Coordination {
    fn default() -> Self {
        Self {
            dependency_check: true,
            cross_team_notification: true,
            release_train_alignment: true,
            maintenance_window_scheduling: true,
        }
    }
}

/// Parses a release strategy file (the standards' format).
pub fn parse_strategy(text: &str) -> Result<ReleaseStrategy, String> {
    let options = serde_saphyr::options! { strict_booleans: true };
    let file: StrategyFile = serde_saphyr::from_str_with_options(text, options).map_err(|e| e.to_string())?;
    for needed in ["hotfix", "patch", "minor", "major"] {
        if !file.release_strategy.types.contains_key(needed) {
            return Err(format!("release_strategy.types needs `{needed}`"));
        }
    }
    Ok(file.release_strategy)
}

pub fn default_strategy() -> ReleaseStrategy {
    parse_strategy(DEFAULT_STRATEGY).expect("the built-in release strategy parses")
}

/// A maintenance window (`--maintenance-windows FILE`: a YAML list of these).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub service: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub description: String,
}

pub fn parse_windows(text: &str) -> Result<Vec<MaintenanceWindow>, String> {
    let windows: Vec<MaintenanceWindow> = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    if let Some(w) = windows.iter().find(|w| w.end <= w.start) {
        return Err(format!("maintenance window {:?} ends before it starts", w.description));
    }
    Ok(windows)
}

/// A dependency requirement, Cargo-style (`^1.2`, `>=1.2, <2`, `~1.4`, `1.*`).
pub fn parse_requirement(text: &str) -> Result<VersionReq, String> {
    if text.contains("||") || text.split_whitespace().any(|p| p == "-") {
        return Err(format!(
            "requirement {text:?}: npm-style `||` and hyphen ranges are not supported; write Cargo-style comparators like \">=1.2, <2\""
        ));
    }
    VersionReq::parse(text).map_err(|e| format!("requirement {text:?}: {e}"))
}

/// The release type a bump calls for.
pub fn type_for(bump: Bump) -> &'static str {
    match bump {
        Bump::Major => "major",
        Bump::Minor => "minor",
        Bump::Patch | Bump::None => "patch",
    }
}

/// Pure: the commits a release type cannot contain (`hotfix` is a patch).
pub fn offending_commits<'a>(kind: &str, analysis: &'a Analysis) -> Vec<&'a Change> {
    let allowed = match kind {
        "major" => Bump::Major,
        "minor" => Bump::Minor,
        _ => Bump::Patch,
    };
    let all = analysis.breaking.iter().chain(&analysis.features).chain(&analysis.fixes).chain(&analysis.performance);
    let mut out: Vec<&Change> = Vec::new();
    for c in all {
        let bump = if c.breaking {
            Bump::Major
        } else if c.kind == "feat" {
            Bump::Minor
        } else {
            Bump::Patch
        };
        if bump > allowed && !out.iter().any(|o| std::ptr::eq(*o, c) || *o == c) {
            out.push(c);
        }
    }
    out
}

/// What the conflict check needs to know about another release.
#[derive(Debug, Clone)]
pub struct OtherRelease {
    pub id: i64,
    pub service: String,
    pub version: Version,
    pub status: ReleaseStatus,
    pub scheduled_at: Option<DateTime<Utc>>,
}

/// A dependency as planned: `{service, requirement}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Dependency {
    pub service: String,
    pub requirement: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Conflict {
    pub kind: &'static str,
    pub message: String,
}

/// How long a release occupies around its scheduled time, for overlap checks.
pub const RELEASE_WINDOW: Duration = Duration::hours(2);

/// Pure: coordination conflicts of a release planned for `service` at `when`.
pub fn conflicts(
    service: &str,
    when: DateTime<Utc>,
    dependencies: &[Dependency],
    others: &[OtherRelease],
    windows: &[MaintenanceWindow],
) -> Vec<Conflict> {
    let mut out = Vec::new();
    for dep in dependencies {
        for o in others.iter().filter(|o| o.service == dep.service) {
            let overlapping = match o.status {
                ReleaseStatus::InProgress => true,
                ReleaseStatus::Scheduled | ReleaseStatus::Planned => {
                    o.scheduled_at.is_some_and(|t| (t - when).abs() < RELEASE_WINDOW)
                }
                _ => false,
            };
            if overlapping {
                out.push(Conflict {
                    kind: "concurrent_release",
                    message: format!(
                        "dependency {} has release #{} ({}) {} in the same window",
                        o.service, o.id, o.version, o.status
                    ),
                });
            }
        }
        let deployed = others
            .iter()
            .filter(|o| o.service == dep.service && o.status == ReleaseStatus::Deployed)
            .max_by(|a, b| a.version.cmp_precedence(&b.version));
        let requirement = parse_requirement(&dep.requirement).ok();
        match (deployed, requirement) {
            (None, _) => out.push(Conflict {
                kind: "unknown_dependency_version",
                message: format!(
                    "no deployed release of dependency {} is known; it must satisfy {}",
                    dep.service, dep.requirement
                ),
            }),
            (Some(d), Some(req)) if !req.matches(&d.version) => out.push(Conflict {
                kind: "incompatible_dependency",
                message: format!(
                    "dependency {} is deployed at {}, which does not satisfy {}",
                    dep.service, d.version, dep.requirement
                ),
            }),
            _ => {}
        }
    }
    for w in windows {
        let applies = w.service.as_deref().is_none_or(|s| s == service);
        if applies && w.start <= when && when < w.end {
            out.push(Conflict {
                kind: "maintenance_window",
                message: format!(
                    "{} falls in the maintenance window {:?} ({} to {})",
                    when.to_rfc3339(),
                    w.description,
                    w.start.to_rfc3339(),
                    w.end.to_rfc3339()
                ),
            });
        }
    }
    out
}

/// A release's milestones (the standards' "Timeline"), each optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeline {
    pub code_freeze: Option<DateTime<Utc>>,
    pub qa_start: Option<DateTime<Utc>>,
    pub qa_end: Option<DateTime<Utc>>,
    pub staging: Option<DateTime<Utc>>,
    pub production: Option<DateTime<Utc>>,
    pub go_live: Option<DateTime<Utc>>,
}

impl Timeline {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What the plan document is made from.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub service: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
    pub target: Option<DateTime<Utc>>,
    pub analysis: &'a Analysis,
    pub dependencies: &'a [Dependency],
    pub dependents: &'a [Dependency],
    pub strategy: &'a ReleaseStrategy,
    pub flags: &'a [String],
    pub timeline: &'a Timeline,
}

/// The release-plan template of the standards, filled in.
pub fn plan_markdown(input: &PlanInput<'_>) -> String {
    use std::fmt::Write as _;
    let PlanInput { service, version, kind, target, analysis, dependencies, dependents, strategy, flags, timeline } =
        *input;
    let t = strategy.types.get(kind);
    let mut out =
        format!("# Release Plan: {service} v{}\n\n## 📋 Release Information\n", version.trim_start_matches('v'));
    let _ = writeln!(out, "- **Release Type**: {}{}", kind[..1].to_uppercase(), &kind[1..]);
    let _ = writeln!(
        out,
        "- **Target Date**: {}",
        target.map_or_else(|| "unscheduled".to_owned(), |d| d.format("%Y-%m-%d").to_string())
    );
    let _ = writeln!(out, "- **Approval Required**: {}", t.map_or("-", |t| t.approval_required.as_str()));
    let _ = writeln!(out, "- **Cadence**: {}", t.map_or("-", |t| t.cadence.as_str()));
    out += "\n## 🎯 Release Goals\n";
    for c in analysis.features.iter().filter(|c| !c.breaking).take(3) {
        let _ = writeln!(out, "- [ ] {}", c.description);
    }
    if analysis.features.is_empty() {
        out += "- [ ] Ship the fixes below safely\n";
    }
    out += "\n## 🚀 Features & Changes\n### New Features\n";
    let line = |c: &Change| {
        let refs = if c.issues.is_empty() { String::new() } else { format!(" (Issue {})", c.issues.join(", ")) };
        format!("- [ ] {}{}{}\n", c.scope.as_ref().map_or(String::new(), |s| format!("{s}: ")), c.description, refs)
    };
    analysis.features.iter().filter(|c| !c.breaking).for_each(|c| out += &line(c));
    out += "\n### Bug Fixes\n";
    analysis.fixes.iter().filter(|c| !c.breaking).for_each(|c| out += &line(c));
    out += "\n### Breaking Changes\n";
    for c in &analysis.breaking {
        let _ =
            writeln!(out, "- [ ] {}: {}", c.description, c.breaking_note.as_deref().unwrap_or("see the description"));
    }
    out += "\n## 🔗 Dependencies\n### Upstream Dependencies\n";
    for d in dependencies {
        let _ = writeln!(out, "- [ ] {} {} (required)", d.service, d.requirement);
    }
    out += "\n### Downstream Impact\n";
    for d in dependents {
        let _ = writeln!(out, "- [ ] {} (requires update: it requires {})", d.service, d.requirement);
    }
    out += "\n## 🧪 Testing Plan\n";
    for req in t.map(|t| t.testing_requirements.as_slice()).unwrap_or_default() {
        let _ = writeln!(out, "- [ ] {}", req.replace('_', " "));
    }
    out += "\n## 📊 Feature Flags\n";
    for f in flags {
        let _ = writeln!(out, "- [ ] `{f}`");
    }
    out += "\n## 🚨 Rollback Plan\n";
    let _ = writeln!(out, "- **Rollback**: {}", t.map_or("-", |t| t.rollback_plan.as_str()).replace('_', " "));
    out += "- **Manual Rollback**: `POST /releases/{id}/status {\"status\": \"rolled_back\"}`; flags: `PUT /flags/{key} {\"enabled\": false}`\n";
    if !timeline.is_empty() {
        let day = |d: Option<DateTime<Utc>>| d.map_or_else(|| "-".to_owned(), |d| d.format("%Y-%m-%d").to_string());
        out += "\n## 📅 Timeline\n";
        let _ = writeln!(out, "- **Code Freeze**: {}", day(timeline.code_freeze));
        let _ = writeln!(out, "- **QA Testing**: {} to {}", day(timeline.qa_start), day(timeline.qa_end));
        let _ = writeln!(out, "- **Staging Deployment**: {}", day(timeline.staging));
        let _ = writeln!(out, "- **Production Deployment**: {}", day(timeline.production));
        let _ = writeln!(out, "- **Go-Live**: {}", day(timeline.go_live));
    }
    if let Some(at) = target {
        let before = |days: i64| {
            at.checked_sub_signed(Duration::days(days)).map_or_else(String::new, |d| d.format("%Y-%m-%d").to_string())
        };
        out += "\n## 🔔 Communication Plan\n";
        let _ = writeln!(out, "- [ ] Engineering team notification (1 week prior: {})", before(7));
        let _ = writeln!(out, "- [ ] Stakeholder notification (3 days prior: {})", before(3));
        out += "- [ ] Customer communication (if user-facing changes)\n- [ ] Post-release summary\n";
    }
    out += "\n## ✅ Release Checklist\n- [ ] All tests passing\n- [ ] Security scans completed\n- [ ] Documentation updated\n- [ ] Release notes prepared\n- [ ] Rollback plan tested\n- [ ] Feature flags configured\n- [ ] Monitoring dashboards updated\n";
    out
}
