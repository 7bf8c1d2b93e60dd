//! Release order for a multi-service release (a release train): dependencies first, services
//! that do not depend on each other in the same stage. Pure.
//!
//! Dependencies on services outside the train are already deployed (the plan's conflict check
//! looks at those); inside the train, the planned version of a dependency must satisfy the
//! requirement, and a cycle is refused with the services that form it.

use std::collections::{BTreeMap, BTreeSet};

use semver::Version;
use serde::Serialize;

use super::plan::{Dependency, parse_requirement};

/// One release of the train.
#[derive(Debug, Clone)]
pub struct Planned {
    pub service: String,
    pub version: Version,
    pub dependencies: Vec<Dependency>,
}

/// The order to deploy in: `order` flattened, `stages` of independent services (sorted by name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Order {
    pub order: Vec<String>,
    pub stages: Vec<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("service {0:?} appears twice in the release train")]
    Duplicate(String),
    #[error("{service}: dependency {dependency:?}: {message}")]
    InvalidRequirement { service: String, dependency: String, message: String },
    #[error("{service} needs {dependency} {requirement}, but the train ships {dependency} {planned}")]
    Unsatisfied { service: String, dependency: String, requirement: String, planned: Version },
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

/// Kahn's algorithm by levels: stage k holds every service whose dependencies inside the train
/// are all in earlier stages.
pub fn order(train: &[Planned]) -> Result<Order, OrderError> {
    let mut by_service: BTreeMap<&str, &Planned> = BTreeMap::new();
    for p in train {
        if by_service.insert(p.service.as_str(), p).is_some() {
            return Err(OrderError::Duplicate(p.service.clone()));
        }
    }
    // service -> the services of the train it waits for.
    let mut waits: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for p in train {
        let mut mine = BTreeSet::new();
        for d in &p.dependencies {
            let requirement = parse_requirement(&d.requirement).map_err(|message| OrderError::InvalidRequirement {
                service: p.service.clone(),
                dependency: d.service.clone(),
                message,
            })?;
            let Some(dep) = by_service.get(d.service.as_str()) else { continue };
            if !requirement.matches(&dep.version) {
                return Err(OrderError::Unsatisfied {
                    service: p.service.clone(),
                    dependency: d.service.clone(),
                    requirement: d.requirement.clone(),
                    planned: dep.version.clone(),
                });
            }
            mine.insert(dep.service.as_str());
        }
        waits.insert(p.service.as_str(), mine);
    }
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut stages: Vec<Vec<String>> = Vec::new();
    while done.len() < waits.len() {
        let ready: Vec<&str> =
            waits.iter().filter(|(s, w)| !done.contains(*s) && w.is_subset(&done)).map(|(s, _)| *s).collect();
        if ready.is_empty() {
            return Err(OrderError::Cycle(cycle(&waits, &done)));
        }
        done.extend(ready.iter().copied());
        stages.push(ready.into_iter().map(str::to_owned).collect());
    }
    Ok(Order { order: stages.iter().flatten().cloned().collect(), stages })
}

/// A cycle among the services not yet ordered (each of them waits for another one of them):
/// walk "waits for" edges from the first until a service repeats.
fn cycle(waits: &BTreeMap<&str, BTreeSet<&str>>, done: &BTreeSet<&str>) -> Vec<String> {
    let left = |s: &str| waits[s].iter().copied().find(|d| !done.contains(d));
    let mut path: Vec<&str> = Vec::new();
    let mut at = waits.keys().copied().find(|s| !done.contains(s)).expect("a service is left");
    while !path.contains(&at) {
        path.push(at);
        at = left(at).expect("a service left in a cycle waits for another one left");
    }
    let from = path.iter().position(|s| *s == at).expect("the repeated service is on the path");
    let mut names: Vec<String> = path[from..].iter().map(|s| (*s).to_owned()).collect();
    names.push(at.to_owned());
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(service: &str, version: &str, deps: &[(&str, &str)]) -> Planned {
        Planned {
            service: service.to_owned(),
            version: Version::parse(version).expect("version"),
            dependencies: deps
                .iter()
                .map(|(s, r)| Dependency { service: (*s).to_owned(), requirement: (*r).to_owned() })
                .collect(),
        }
    }

    #[test]
    fn dependencies_go_first_and_independent_services_share_a_stage() {
        let train = [
            planned("web", "3.0.0", &[("api", ">=2.1.0"), ("auth", "^1.4")]),
            planned("api", "2.1.0", &[("db-schema", ">=7.0.0")]),
            planned("auth", "1.4.2", &[("db-schema", ">=7.0.0"), ("payments", ">=9.0.0")]),
            planned("db-schema", "7.0.0", &[]),
        ];
        let got = order(&train).expect("an order");
        assert_eq!(got.stages, vec![vec!["db-schema"], vec!["api", "auth"], vec!["web"]]);
        assert_eq!(got.order, ["db-schema", "api", "auth", "web"]);
    }

    #[test]
    fn a_cycle_is_named_and_an_unsatisfied_requirement_refused() {
        let train = [
            planned("a", "1.0.0", &[("b", "*")]),
            planned("b", "1.0.0", &[("c", "*")]),
            planned("c", "1.0.0", &[("b", "*")]),
        ];
        assert_eq!(order(&train), Err(OrderError::Cycle(vec!["b".into(), "c".into(), "b".into()])));
        let train = [planned("a", "1.0.0", &[("b", ">=2.0.0")]), planned("b", "1.9.0", &[])];
        let err = order(&train).expect_err("unsatisfied");
        assert_eq!(err.to_string(), "a needs b >=2.0.0, but the train ships b 1.9.0");
        let twice = [planned("a", "1.0.0", &[]), planned("a", "1.0.1", &[])];
        assert_eq!(order(&twice), Err(OrderError::Duplicate("a".into())));
    }
}
