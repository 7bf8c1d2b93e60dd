//! Release quality over a window and the standards' quality gates; stale flags. Pure.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use semver::Version;
use serde::{Deserialize, Serialize};

use super::record::ReleaseStatus;

use crate::flags::Snapshot;

/// What quality metrics need to know about one release.
#[derive(Debug, Clone)]
pub struct ReleaseFacts {
    pub service: String,
    pub version: Version,
    pub status: ReleaseStatus,
    /// When it reached its current status.
    pub status_at: DateTime<Utc>,
    pub deployed_at: Option<DateTime<Utc>>,
    /// The earliest commit time given for it (else its creation time).
    pub first_commit_at: DateTime<Utc>,
    /// Its `feat` commits, and how many of them ship behind a flag ([`flag_coverage`]).
    pub features: usize,
    pub flagged_features: usize,
    /// Failed or rolled back for a dependency (its status reason names one).
    pub dependency_failure: bool,
}

/// `(feat commits, those behind a flag)` of a release: a `feat` commit is behind a flag when
/// the release lists at least one flag or the commit names one in a `Flag: <key>` footer.
pub fn flag_coverage<'a>(messages: impl IntoIterator<Item = &'a str>, release_lists_flags: bool) -> (usize, usize) {
    let mut features = 0;
    let mut flagged = 0;
    for message in messages {
        let Ok(commit) = git_conventional::Commit::parse(message.trim()) else { continue };
        if commit.type_() != git_conventional::Type::FEAT {
            continue;
        }
        features += 1;
        let footer = commit
            .footers()
            .iter()
            .any(|f| f.token().as_str().eq_ignore_ascii_case("flag") && !f.value().trim().is_empty());
        if release_lists_flags || footer {
            flagged += 1;
        }
    }
    (features, flagged)
}

/// Counts the quality report needs besides the releases.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Deprecated flags, and the overdue ones among them.
    pub deprecated: usize,
    pub overdue: usize,
    /// Release plans refused for conflicts in the window.
    pub planning_conflicts: usize,
}

/// The standards' quality gates (`release_quality_gates:`), used without `--quality-gates`.
pub const DEFAULT_GATES: &str = r#"
release_quality_gates:
  release_success_rate:
    description: "Percentage of releases that complete without rollback"
    metric: "successful_releases / total_releases * 100"
    threshold: 95
    blocking: true
  release_lead_time:
    description: "Time from code merge to production deployment"
    metric: "production_deployment_time - code_merge_time"
    threshold: 24  # hours
    blocking: false
  feature_flag_cleanup:
    description: "Feature flags removed within 2 release cycles"
    metric: "cleaned_feature_flags / total_deprecated_flags * 100"
    threshold: 90
    blocking: false
  release_frequency:
    description: "Number of releases per week"
    metric: "releases_per_week"
    threshold: 2
    blocking: false
  rollback_frequency:
    description: "Percentage of releases requiring rollback"
    metric: "rollbacks / total_releases * 100"
    threshold: 5
    blocking: true
"#;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatesFile {
    release_quality_gates: crate::flags::file::KeyedMap<GateConfig>,
}

/// One gate as configured.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    pub description: String,
    pub metric: String,
    pub threshold: f64,
    pub blocking: bool,
}

/// The Four Keys' other two and the standards' success metrics, added to the defaults (the
/// shipped `flags/examples/quality-gates.yaml` lists them too).
pub const FOUR_KEYS_GATES: &str = r#"
release_quality_gates:
  change_failure_rate:
    description: "Percentage of deployments that failed or were rolled back"
    metric: "(failed + rolled_back) / finished_releases * 100"
    threshold: 15
    blocking: false
  time_to_restore:
    description: "Median hours from a failed or rolled-back deployment to the next successful one of the same service"
    metric: "next_successful_deployment_time - failure_time"
    threshold: 24  # hours
    blocking: false
  feature_flag_coverage:
    description: "Percentage of feat commits in deployed releases that ship behind a flag"
    metric: "flagged_features / features * 100"
    threshold: 100
    blocking: false
  release_coordination:
    description: "Conflicts found at planning plus deployments failed or rolled back for a dependency"
    metric: "planning_conflicts + dependency_failures"
    threshold: 0
    blocking: false
"#;

/// The gates toggled can compute, each with its comparison.
const KNOWN_GATES: [(&str, &str); 9] = [
    ("release_success_rate", ">="),
    ("release_lead_time", "<="),
    ("feature_flag_cleanup", ">="),
    ("release_frequency", ">="),
    ("rollback_frequency", "<="),
    ("change_failure_rate", "<="),
    ("time_to_restore", "<="),
    ("feature_flag_coverage", ">="),
    ("release_coordination", "<="),
];

/// Parses quality gates in the standards' format. Every gate must be one toggled computes.
pub fn parse_gates(text: &str) -> Result<Vec<(String, GateConfig)>, String> {
    let options = serde_saphyr::options! { strict_booleans: true };
    let file: GatesFile = serde_saphyr::from_str_with_options(text, options).map_err(|e| e.to_string())?;
    let mut gates = Vec::new();
    for (name, config) in file.release_quality_gates.0 {
        let name = name.value;
        if !KNOWN_GATES.iter().any(|(n, _)| *n == name) {
            let known: Vec<&str> = KNOWN_GATES.iter().map(|(n, _)| *n).collect();
            return Err(format!("unknown quality gate {name:?}; toggled computes {}", known.join(", ")));
        }
        gates.push((name, config));
    }
    Ok(gates)
}

/// The standards' gates, then the Four Keys' and success metrics' gates.
pub fn default_gates() -> Vec<(String, GateConfig)> {
    let mut gates = parse_gates(DEFAULT_GATES).expect("the built-in quality gates parse");
    gates.extend(parse_gates(FOUR_KEYS_GATES).expect("the built-in Four Keys gates parse"));
    gates
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Gate {
    pub name: String,
    pub description: String,
    /// `>=` or `<=`.
    pub comparison: &'static str,
    pub threshold: f64,
    pub blocking: bool,
    pub value: Option<f64>,
    /// `null` when there is no data in the window.
    pub passed: Option<bool>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Quality {
    pub service: Option<String>,
    pub window_days: i64,
    pub finished: usize,
    pub deployed: usize,
    pub failed: usize,
    pub rolled_back: usize,
    /// Percentages and hours; `null` for an empty window, never NaN.
    pub success_rate: Option<f64>,
    pub rollback_rate: Option<f64>,
    pub median_lead_time_hours: Option<f64>,
    pub releases_per_week: f64,
    pub flag_cleanup: Option<f64>,
    /// The Four Keys: deployment frequency is `releases_per_week`, lead time for changes
    /// `median_lead_time_hours`; these are the other two (percent, hours).
    pub change_failure_rate: Option<f64>,
    pub median_time_to_restore_hours: Option<f64>,
    /// The standards' success metrics: feat commits behind a flag (percent of `features`), and
    /// coordination issues (planning conflicts + dependency failures; goal zero).
    pub features: usize,
    pub feature_flag_coverage: Option<f64>,
    pub planning_conflicts: usize,
    pub dependency_failures: usize,
    pub release_coordination: usize,
    pub gates: Vec<Gate>,
    /// False when a blocking gate fails.
    pub passing: bool,
}

fn gate(name: &str, config: &GateConfig, value: Option<f64>) -> Gate {
    let comparison = KNOWN_GATES.iter().find(|(n, _)| *n == name).map_or(">=", |(_, c)| *c);
    let threshold = config.threshold;
    let passed = value.map(|v| if comparison == ">=" { v >= threshold } else { v <= threshold });
    Gate {
        name: name.to_owned(),
        description: config.description.clone(),
        comparison,
        threshold,
        blocking: config.blocking,
        value,
        passed,
    }
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 })
}

/// Pure: the metrics and gates for `service` (or all services) over `window` ending at `now`.
/// `deprecated` and `overdue` count deprecated flags and the overdue ones among them.
pub fn quality(
    gates: &[(String, GateConfig)],
    releases: &[ReleaseFacts],
    service: Option<&str>,
    window: Duration,
    now: DateTime<Utc>,
    counts: Counts,
) -> Quality {
    let Counts { deprecated, overdue, planning_conflicts } = counts;
    let since = now.checked_sub_signed(window).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mine: Vec<&ReleaseFacts> = releases
        .iter()
        .filter(|r| service.is_none_or(|s| r.service == s) && r.status_at >= since && r.status_at <= now)
        .collect();
    let count = |status: ReleaseStatus| mine.iter().filter(|r| r.status == status).count();
    let (deployed, failed, rolled_back) =
        (count(ReleaseStatus::Deployed), count(ReleaseStatus::Failed), count(ReleaseStatus::RolledBack));
    let finished = deployed + failed + rolled_back;
    let pct = |n: usize| (finished > 0).then(|| n as f64 * 100.0 / finished as f64);
    let success_rate = pct(deployed);
    let rollback_rate = pct(rolled_back);
    let lead: Vec<f64> = mine
        .iter()
        .filter_map(|r| r.deployed_at.map(|d| (d - r.first_commit_at).num_seconds().max(0) as f64 / 3600.0))
        .collect();
    let median_lead_time_hours = median(lead);
    let ever_deployed = mine.iter().filter(|r| r.deployed_at.is_some()).count();
    let weeks = (window.num_seconds() as f64 / (7.0 * 86_400.0)).max(1.0 / 7.0);
    let releases_per_week = ever_deployed as f64 / weeks;
    let flag_cleanup =
        (deprecated > 0).then(|| (deprecated - overdue.min(deprecated)) as f64 * 100.0 / deprecated as f64);
    let change_failure_rate = pct(failed + rolled_back);
    // Time to restore: from each failure in the window to the service's next deployment after it.
    let restores: Vec<f64> = mine
        .iter()
        .filter(|r| r.status.is_failure())
        .filter_map(|f| {
            releases
                .iter()
                .filter(|r| r.service == f.service && r.status == ReleaseStatus::Deployed)
                .filter_map(|r| r.deployed_at)
                .filter(|d| *d > f.status_at)
                .min()
                .map(|d| (d - f.status_at).num_seconds() as f64 / 3600.0)
        })
        .collect();
    let median_time_to_restore_hours = median(restores);
    let shipped: Vec<&&ReleaseFacts> = mine.iter().filter(|r| r.deployed_at.is_some()).collect();
    let features: usize = shipped.iter().map(|r| r.features).sum();
    let flagged: usize = shipped.iter().map(|r| r.flagged_features).sum();
    let feature_flag_coverage = (features > 0).then(|| flagged as f64 * 100.0 / features as f64);
    let dependency_failures = mine.iter().filter(|r| r.dependency_failure).count();
    let release_coordination = planning_conflicts + dependency_failures;
    let gates: Vec<Gate> = gates
        .iter()
        .map(|(name, config)| {
            let value = match name.as_str() {
                "release_success_rate" => success_rate,
                "release_lead_time" => median_lead_time_hours,
                "feature_flag_cleanup" => flag_cleanup,
                "release_frequency" => Some(releases_per_week),
                "change_failure_rate" => change_failure_rate,
                "time_to_restore" => median_time_to_restore_hours,
                "feature_flag_coverage" => feature_flag_coverage,
                "release_coordination" => Some(release_coordination as f64),
                _ => rollback_rate,
            };
            gate(name, config, value)
        })
        .collect();
    let passing = gates.iter().all(|g| !g.blocking || g.passed != Some(false));
    Quality {
        service: service.map(str::to_owned),
        window_days: window.num_days(),
        finished,
        deployed,
        failed,
        rolled_back,
        success_rate,
        rollback_rate,
        median_lead_time_hours,
        releases_per_week,
        flag_cleanup,
        change_failure_rate,
        median_time_to_restore_hours,
        features,
        feature_flag_coverage,
        planning_conflicts,
        dependency_failures,
        release_coordination,
        gates,
        passing,
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct StaleFlag {
    pub flag: String,
    pub service: Option<String>,
    pub reasons: Vec<String>,
}

/// How long without an evaluation makes a flag stale.
pub const UNUSED_FOR: Duration = Duration::days(30);

/// Pure: flags overdue for cleanup. A flag with `deprecated_in: X` is overdue once its service
/// has deployed two minor-or-major releases after X; any flag is stale when it has not been
/// evaluated for 30 days (or never, 30 days after it was first seen).
pub fn stale_flags(
    snapshot: &Snapshot,
    deployed: &[(String, Version)],
    default_service: Option<&str>,
    last_evaluated: &HashMap<String, DateTime<Utc>>,
    first_seen: &HashMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<StaleFlag> {
    let mut out = Vec::new();
    for flag in &snapshot.flags {
        let service = flag.service.as_deref().or(default_service);
        let mut reasons = Vec::new();
        if let (Some(x), Some(service)) = (&flag.deprecated_in, service) {
            let after: BTreeSet<(u64, u64)> = deployed
                .iter()
                .filter(|(s, v)| {
                    s == service && v.pre.is_empty() && v.patch == 0 && (v.major, v.minor) > (x.major, x.minor)
                })
                .map(|(_, v)| (v.major, v.minor))
                .collect();
            if after.len() >= 2 {
                let shipped: Vec<String> = after.iter().map(|(a, b)| format!("{a}.{b}")).collect();
                reasons.push(format!("deprecated in {x}; {service} has since shipped {}", shipped.join(", ")));
            }
        }
        match (last_evaluated.get(&flag.key), first_seen.get(&flag.key)) {
            (Some(at), _) if now - *at > UNUSED_FOR => {
                reasons.push(format!("not evaluated since {}", at.format("%Y-%m-%d")));
            }
            (None, Some(seen)) if now - *seen > UNUSED_FOR => {
                reasons.push(format!("never evaluated since it appeared on {}", seen.format("%Y-%m-%d")));
            }
            _ => {}
        }
        if !reasons.is_empty() {
            out.push(StaleFlag { flag: flag.key.clone(), service: service.map(str::to_owned), reasons });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + h * 3600, 0).expect("time")
    }

    fn facts(service: &str, status: &str, status_h: i64, deployed_h: Option<i64>) -> ReleaseFacts {
        ReleaseFacts {
            service: service.into(),
            version: Version::new(1, 0, 0),
            status: status.into(),
            status_at: at(status_h),
            deployed_at: deployed_h.map(at),
            first_commit_at: at(0),
            features: 0,
            flagged_features: 0,
            dependency_failure: false,
        }
    }

    #[test]
    fn feat_commits_are_behind_a_flag_by_footer_or_by_the_release() {
        let commits = ["feat: a\n\nFlag: new_checkout", "feat(ui): b", "fix: c\n\nFlag: x", "not conventional"];
        assert_eq!(flag_coverage(commits, false), (2, 1));
        assert_eq!(flag_coverage(commits, true), (2, 2));
    }

    #[test]
    fn the_four_keys_and_the_success_metrics() {
        let mut shipped = facts("shop", "deployed", 10, Some(10));
        (shipped.features, shipped.flagged_features) = (4, 3);
        // A rollback at hour 20 restored by the deployment at hour 26; a failure for a
        // dependency at hour 30 restored at hour 32; another service's deployment does not count.
        let rolled = facts("shop", "rolled_back", 20, Some(12));
        let restored = facts("shop", "deployed", 26, Some(26));
        let mut failed = facts("shop", "failed", 30, None);
        failed.dependency_failure = true;
        let again = facts("shop", "deployed", 32, Some(32));
        let other = facts("cart", "deployed", 21, Some(21));
        let releases = [shipped, rolled, restored, failed, again, other];
        let counts = Counts { planning_conflicts: 2, ..Counts::default() };
        let q = quality(&default_gates(), &releases, Some("shop"), Duration::days(30), at(40), counts);
        assert_eq!(q.change_failure_rate, Some(40.0));
        assert_eq!(q.median_time_to_restore_hours, Some(4.0));
        assert_eq!((q.features, q.feature_flag_coverage), (4, Some(75.0)));
        assert_eq!((q.planning_conflicts, q.dependency_failures, q.release_coordination), (2, 1, 3));
        let gate = |name: &str| q.gates.iter().find(|g| g.name == name).and_then(|g| g.passed);
        assert_eq!(gate("change_failure_rate"), Some(false));
        assert_eq!(gate("time_to_restore"), Some(true));
        assert_eq!(gate("feature_flag_coverage"), Some(false));
        assert_eq!(gate("release_coordination"), Some(false));
    }
}
