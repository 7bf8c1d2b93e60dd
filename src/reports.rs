//! Release quality and stale-flag reports: the store's release history and last-evaluated
//! times with the served snapshot, through the pure `release::quality`. The release gauges on
//! `/metrics` are refreshed here by a background task, never inside a scrape.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::metrics::{GateLabels, QualityLabels};
use crate::release::ReleaseSettings;
use crate::release::quality::{self, ReleaseFacts};
use crate::release::record::ReleaseStatus;
use crate::release::version::split_tag;
use crate::serving::Serving;
use crate::store::{AuditAction, ReleasePage, ReleaseSummary, StoreError};

/// Quality metrics and gates over a window, and the stale flags that feed flag cleanup.
pub async fn quality(
    serving: &Serving,
    settings: &ReleaseSettings,
    service: Option<&str>,
    window: chrono::Duration,
) -> Result<(quality::Quality, Vec<quality::StaleFlag>), StoreError> {
    let releases = serving.store.release_summaries(ReleasePage::default()).await?;
    let facts: Vec<ReleaseFacts> = releases.iter().filter_map(facts_of).collect();
    let stale = stale(serving, settings, &releases).await?;
    let served = serving.load_full();
    let deprecated = served
        .snapshot
        .flags
        .iter()
        .filter(|f| f.deprecated_in.is_some())
        .filter(|f| service.is_none_or(|s| f.service.as_deref().or(settings.default_service.as_deref()) == Some(s)))
        .count();
    let overdue = stale
        .iter()
        .filter(|s| s.reasons.iter().any(|r| r.starts_with("deprecated")))
        .filter(|s| service.is_none_or(|x| s.service.as_deref() == Some(x)))
        .count();
    let now = Utc::now();
    let since = now.checked_sub_signed(window).unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    let prefix = service.map_or_else(|| "release:".to_owned(), |s| format!("release:{s}@"));
    let conflicts = serving.store.count_audit(AuditAction::ReleaseConflict.as_str(), &prefix, since).await?;
    let counts =
        quality::Counts { deprecated, overdue, planning_conflicts: usize::try_from(conflicts).unwrap_or_default() };
    Ok((quality::quality(&settings.gates, &facts, service, window, now, counts), stale))
}

/// What the quality report reads from a stored release.
fn facts_of(r: &ReleaseSummary) -> Option<ReleaseFacts> {
    let failed = matches!(r.status.as_str(), "failed" | "rolled_back");
    let reason = r.brief.status_reason.as_deref().unwrap_or_default().to_lowercase();
    Some(ReleaseFacts {
        service: r.service.clone(),
        version: split_tag(&r.version).ok()?.1,
        status: r.status.clone(),
        status_at: r.status_at,
        deployed_at: r.deployed_at,
        first_commit_at: r.first_commit_at,
        features: r.brief.features,
        flagged_features: r.brief.flagged_features,
        dependency_failure: failed && reason.contains("dependenc"),
    })
}

/// The versions each service deployed (and did not fail): what stale-flag checks compare a
/// flag's `deprecated_in` against.
pub fn deployed_versions(releases: &[ReleaseSummary]) -> Vec<(String, semver::Version)> {
    releases
        .iter()
        .filter(|r| r.deployed_at.is_some() && r.status != ReleaseStatus::Failed)
        .filter_map(|r| Some((r.service.clone(), split_tag(&r.version).ok()?.1)))
        .collect()
}

/// Stale flags: deprecated ones whose service has moved on, and ones nobody evaluates.
pub async fn stale(
    serving: &Serving,
    settings: &ReleaseSettings,
    releases: &[ReleaseSummary],
) -> Result<Vec<quality::StaleFlag>, StoreError> {
    let deployed = deployed_versions(releases);
    let mut last = serving.store.last_evaluated().await?;
    let served = serving.load_full();
    for (flag, rt) in served.snapshot.flags.iter().zip(&served.flags) {
        if let Some(at) = rt.last_evaluated() {
            let e = last.entry(flag.key.clone()).or_insert(at);
            *e = (*e).max(at);
        }
    }
    Ok(quality::stale_flags(
        &served.snapshot,
        &deployed,
        settings.default_service.as_deref(),
        &last,
        &served.persisted.first_seen,
        Utc::now(),
    ))
}

/// Sets the release gauges (30-day quality over all services, gates, stale flags).
pub async fn refresh_gauges(serving: &Serving, settings: &ReleaseSettings) -> Result<(), StoreError> {
    let (q, stale) = quality(serving, settings, None, chrono::Duration::days(30)).await?;
    let m = &serving.metrics;
    m.flags_stale.set(stale.len() as i64);
    for (name, value) in [
        ("success_rate", q.success_rate),
        ("rollback_rate", q.rollback_rate),
        ("median_lead_time_hours", q.median_lead_time_hours),
        ("releases_per_week", Some(q.releases_per_week)),
        ("flag_cleanup", q.flag_cleanup),
        ("change_failure_rate", q.change_failure_rate),
        ("median_time_to_restore_hours", q.median_time_to_restore_hours),
        ("feature_flag_coverage", q.feature_flag_coverage),
        ("release_coordination", Some(q.release_coordination as f64)),
    ] {
        let labels = QualityLabels { metric: name.to_owned() };
        match value {
            Some(v) => {
                m.release_quality.get_or_create(&labels).set(v);
            }
            None => {
                m.release_quality.remove(&labels);
            }
        }
    }
    for g in &q.gates {
        let labels = GateLabels { gate: g.name.clone() };
        match g.passed {
            Some(p) => {
                m.quality_gates.get_or_create(&labels).set(i64::from(p));
            }
            None => {
                m.quality_gates.remove(&labels);
            }
        }
    }
    Ok(())
}

/// Refreshes the release gauges every `every` until shutdown.
pub async fn run(
    serving: Arc<Serving>,
    settings: Arc<ReleaseSettings>,
    every: Duration,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = refresh_gauges(&serving, &settings).await {
            tracing::warn!("could not refresh the release gauges: {e}");
        }
    }
}
