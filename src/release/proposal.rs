//! A release plan request decided (`POST /releases`): the version and type it gets, the
//! releases that will depend on it, or the rule that refuses it. Pure: the handler reads the
//! store and the clock, this decides.

use chrono::{DateTime, Utc};
use semver::Version;

use super::plan::{self, Conflict, Dependency, MaintenanceWindow, OtherRelease, ReleaseStrategy};
use super::record::ReleaseStatus;
use super::version::{Analysis, Change, CommitInput, PreMajor, next_version};

/// What a plan asks for.
#[derive(Debug, Clone, Copy)]
pub struct Proposal<'a> {
    pub service: &'a str,
    pub commits: &'a [CommitInput],
    /// The release type asked for (else the one the commits' bump calls for).
    pub kind: Option<&'a str>,
    /// The version asked for (else the next one from the commits).
    pub version: Option<&'a str>,
    /// When it is to be deployed.
    pub when: DateTime<Utc>,
    pub dependencies: &'a [Dependency],
}

/// What the plan gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub version: Version,
    pub kind: String,
    /// The commits analysed from the service's latest release (or 0.0.0).
    pub analysis: Analysis,
}

/// Why a plan is refused, in the order the rules are checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// A dependency's requirement does not parse.
    InvalidRequirement(String),
    InvalidVersion(String),
    InvalidType {
        given: String,
        known: Vec<String>,
    },
    /// The commits hold changes the type does not allow (a `feat` in a patch).
    TypeMismatch {
        kind: String,
        offending: Vec<Change>,
    },
    VersionNotNewer {
        version: Version,
        latest: String,
    },
    /// No commit bumps the version and none was given.
    NothingToRelease {
        current: String,
    },
    /// The version it would get conflicts with other releases or maintenance windows.
    Conflicts {
        version: Version,
        found: Vec<Conflict>,
    },
}

/// Decides `p` against the releases of its service and of its dependencies (`others`).
pub fn decide(
    p: &Proposal<'_>,
    others: &[OtherRelease],
    strategy: &ReleaseStrategy,
    windows: &[MaintenanceWindow],
) -> Result<Decided, Refusal> {
    for d in p.dependencies {
        plan::parse_requirement(&d.requirement).map_err(Refusal::InvalidRequirement)?;
    }
    let last = others
        .iter()
        .filter(|o| o.service == p.service && !matches!(o.status, ReleaseStatus::Failed | ReleaseStatus::Cancelled))
        .max_by(|a, b| a.version.cmp_precedence(&b.version));
    let current = last.map_or_else(|| "0.0.0".to_owned(), |l| l.version.to_string());
    let analysis =
        next_version(&current, p.commits, PreMajor::Major, None).map_err(|e| Refusal::InvalidVersion(e.to_string()))?;
    let kind = match p.kind {
        None => plan::type_for(analysis.bump).to_owned(),
        Some(k) if strategy.types.contains_key(k) => k.to_owned(),
        Some(k) => {
            let known = strategy.types.keys().cloned().collect();
            return Err(Refusal::InvalidType { given: k.to_owned(), known });
        }
    };
    let offending = plan::offending_commits(&kind, &analysis);
    if !offending.is_empty() {
        return Err(Refusal::TypeMismatch { kind, offending: offending.into_iter().cloned().collect() });
    }
    let version = match p.version {
        Some(v) => {
            let (_, parsed) = super::version::split_tag(v).map_err(|e| Refusal::InvalidVersion(e.to_string()))?;
            if last.is_some_and(|l| parsed.cmp_precedence(&l.version) != std::cmp::Ordering::Greater) {
                return Err(Refusal::VersionNotNewer { version: parsed, latest: current });
            }
            parsed
        }
        None if last.is_some() && analysis.next == current => return Err(Refusal::NothingToRelease { current }),
        None => Version::parse(&analysis.next).map_err(|e| Refusal::InvalidVersion(e.to_string()))?,
    };
    let found = plan::conflicts(p.service, p.when, p.dependencies, others, windows);
    if !found.is_empty() {
        return Err(Refusal::Conflicts { version, found });
    }
    Ok(Decided { version, kind, analysis })
}

/// The services whose latest release depends on `service` with a requirement `version` does
/// not meet: they will need a release of their own. `latest` is each service's latest
/// release: its service and dependencies.
pub fn dependents<'a>(
    service: &str,
    version: &Version,
    latest: impl IntoIterator<Item = (&'a str, &'a [Dependency])>,
) -> Vec<Dependency> {
    latest
        .into_iter()
        .filter(|(s, _)| *s != service)
        .flat_map(|(s, deps)| {
            deps.iter()
                .filter(|d| d.service == service)
                .filter(|d| plan::parse_requirement(&d.requirement).is_ok_and(|req| !req.matches(version)))
                .map(move |d| Dependency { service: s.to_owned(), requirement: d.requirement.clone() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Proposal, Refusal, decide, dependents};
    use crate::release::plan::{Dependency, OtherRelease, default_strategy};
    use crate::release::record::ReleaseStatus;
    use crate::release::version::CommitInput;
    use chrono::{TimeZone as _, Utc};
    use semver::Version;

    fn commits(messages: &[&str]) -> Vec<CommitInput> {
        messages.iter().map(|m| CommitInput { message: (*m).to_owned(), sha: None }).collect()
    }

    fn released(service: &str, version: &str, status: ReleaseStatus) -> OtherRelease {
        OtherRelease {
            id: 1,
            service: service.to_owned(),
            version: Version::parse(version).expect("a version"),
            status,
            scheduled_at: None,
        }
    }

    #[test]
    fn a_plan_gets_the_next_version_and_the_type_its_bump_calls_for() {
        let when = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).single().expect("a time");
        let strategy = default_strategy();
        let c = commits(&["feat(cart): saved carts", "fix: totals"]);
        let p = Proposal { service: "shop", commits: &c, kind: None, version: None, when, dependencies: &[] };
        let first = decide(&p, &[], &strategy, &[]).expect("decided");
        assert_eq!((first.version.to_string(), first.kind.as_str()), ("0.1.0".to_owned(), "minor"));
        // A failed release does not count as the latest.
        let others =
            [released("shop", "1.2.0", ReleaseStatus::Deployed), released("shop", "1.3.0", ReleaseStatus::Failed)];
        assert_eq!(decide(&p, &others, &strategy, &[]).expect("decided").version.to_string(), "1.3.0");
        let patch = Proposal { kind: Some("patch"), ..p };
        assert!(matches!(decide(&patch, &others, &strategy, &[]), Err(Refusal::TypeMismatch { .. })));
        let old = Proposal { version: Some("v1.1.0"), ..p };
        assert!(matches!(decide(&old, &others, &strategy, &[]), Err(Refusal::VersionNotNewer { .. })));
        let chores = commits(&["chore: tidy"]);
        let idle = Proposal { commits: &chores, ..p };
        assert!(matches!(decide(&idle, &others, &strategy, &[]), Err(Refusal::NothingToRelease { .. })));
        let unknown = Proposal { kind: Some("giant"), ..p };
        assert!(matches!(decide(&unknown, &others, &strategy, &[]), Err(Refusal::InvalidType { .. })));
    }

    #[test]
    fn dependents_are_the_latest_releases_whose_requirement_the_new_version_breaks() {
        let web = [Dependency { service: "api".into(), requirement: "^1".into() }];
        let batch = [Dependency { service: "api".into(), requirement: ">=1".into() }];
        let latest = [("web", &web[..]), ("batch", &batch[..]), ("api", &[][..])];
        let found = dependents("api", &Version::new(2, 0, 0), latest);
        assert_eq!(found, [Dependency { service: "web".into(), requirement: "^1".into() }]);
    }
}
