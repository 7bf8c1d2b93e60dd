//! What the flag routes answer: a flag's live state, its summary (`GET /flags`) and its
//! definition (`GET /flags/{key}`), as typed answers that OpenAPI describes field by field.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::eval::rollout::gradual_progress;
use crate::flags::snapshot::{Flag, Strategy};
use crate::serving::{FlagRuntime, Served};
use crate::store::{OverrideKind, OverrideRecord};

fn seconds(d: chrono::Duration) -> i64 {
    d.num_seconds()
}

/// A flag's live state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlagStateView {
    /// `file` (as the file says), `disabled`, `killed`, `forced_on`, `forced` (a variant or
    /// value override) or `rolled_back`.
    pub effective: &'static str,
    /// The operator override or automatic rollback in force.
    #[serde(rename = "override")]
    #[schema(value_type = Option<Object>)]
    pub override_: Option<OverrideRecord>,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_evaluated: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub gradual: Option<GradualState>,
    #[serde(flatten)]
    pub ab_test: Option<AbTestState>,
    #[serde(flatten)]
    pub sunset: Option<SunsetState>,
    /// The monitor's last verdict per alert (`GET /flags/{key}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Value>,
}

/// A gradual rollout's progress.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GradualState {
    /// 1-based; none before the first stage starts.
    pub stage: Option<usize>,
    pub stages: usize,
    pub stage_percentage: Option<u32>,
    pub next_stage_at: Option<DateTime<Utc>>,
    pub paused: bool,
    pub paused_since: Option<DateTime<Utc>>,
    pub paused_seconds: i64,
}

/// An A/B test's window.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AbTestState {
    pub window_start: DateTime<Utc>,
    pub window_ends_at: Option<DateTime<Utc>>,
    pub window_over: bool,
    pub winner: Option<String>,
}

/// Where a flag is in its sunset plan.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SunsetState {
    pub sunset_phase: Option<&'static str>,
    pub shutdown_at: Option<DateTime<Utc>>,
}

/// A flag in `GET /flags`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlagSummary {
    pub key: String,
    /// `boolean` or `variant`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub enabled: bool,
    /// The rollout strategy's type.
    pub strategy: Option<&'static str>,
    pub state: FlagStateView,
}

/// `GET /flags/{key}`: the definition as compiled, and the live state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlagDetail {
    #[serde(flatten)]
    pub summary: FlagSummary,
    pub service: Option<String>,
    pub metadata: serde_json::Map<String, Value>,
    /// Variant name -> value.
    pub variants: serde_json::Map<String, Value>,
    pub default_variant: String,
    pub default_value: Value,
    pub rollout_variant: String,
    pub rollout_value: Value,
    /// How many constraints and variant overrides (pins) the flag has.
    pub constraints: usize,
    pub variant_overrides: usize,
    /// The strategy with its parameters (`type`, `stickiness`, `group_id`, and per type:
    /// `percentage`; `start`, `stages`; `traffic_split`, `duration_seconds`, `winner`; `steps`).
    #[schema(value_type = Option<Object>)]
    pub rollout_strategy: Option<Value>,
    pub sunset_plan: Option<Vec<SunsetPhaseView>>,
    pub monitoring: Option<MonitoringView>,
    pub success_metrics: Option<SuccessMetricsView>,
    pub deprecated_in: Option<String>,
    pub introduced_in: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SunsetPhaseView {
    pub phase: &'static str,
    pub start: DateTime<Utc>,
    pub duration_seconds: Option<i64>,
    #[schema(value_type = Vec<String>)]
    pub actions: Vec<crate::flags::snapshot::SunsetAction>,
    pub notice: String,
    pub redirect: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MonitoringView {
    pub metrics: Vec<String>,
    pub interval_seconds: i64,
    pub alerts: Vec<AlertView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertView {
    pub condition: String,
    /// Consecutive samples the condition must hold.
    #[serde(rename = "for")]
    pub for_samples: u32,
    /// `rollback`, `pause` or `alert_team`.
    pub action: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SuccessMetricsView {
    pub primary: Option<String>,
    pub secondary: Vec<String>,
}

/// `GET /flags`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlagList {
    /// The revision served (none before the first valid file).
    pub revision: Option<String>,
    pub last_reload: crate::reload::ReloadStatus,
    pub flags: Vec<FlagSummary>,
}

/// `DELETE /flags/{key}/override`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Cleared {
    pub flag: String,
    /// False when there was no override to clear.
    pub cleared: bool,
    /// None when the flag is no longer in the file.
    pub state: Option<FlagStateView>,
}

impl FlagStateView {
    /// The live state of `flag` (with its runtime `rt`) in `served`, at `now`.
    pub fn of(flag: &Flag, rt: &FlagRuntime, served: &Served, now: DateTime<Utc>) -> Self {
        let record = served.persisted.overrides.get(&flag.key);
        let effective = match record.map(|r| &r.kind) {
            None if !flag.enabled => "disabled",
            None => "file",
            Some(OverrideKind::Kill) => "killed",
            Some(OverrideKind::Enable) => "forced_on",
            Some(OverrideKind::Variant(_) | OverrideKind::Value(_)) => "forced",
            Some(OverrideKind::RolledBack) => "rolled_back",
        };
        let gradual = match &flag.strategy {
            Some(Strategy::Gradual { stages, start, .. }) => {
                let start = crate::eval::rollout::schedule_start(*start, rt.first_seen, now);
                let progress = gradual_progress(stages, start, now, rt.pause);
                Some(GradualState {
                    stage: progress.map(|p| p.stage + 1),
                    stages: stages.len(),
                    stage_percentage: progress.map(|p| stages[p.stage].percentage),
                    next_stage_at: progress.and_then(|p| p.next_stage_at),
                    paused: rt.pause.paused_since.is_some(),
                    paused_since: rt.pause.paused_since,
                    paused_seconds: rt.pause.paused_total.num_seconds(),
                })
            }
            _ => None,
        };
        let ab_test = match &flag.strategy {
            Some(Strategy::AbTest { start, duration, winner, .. }) => {
                let start = crate::eval::rollout::schedule_start(*start, rt.first_seen, now);
                Some(AbTestState {
                    window_start: start,
                    window_ends_at: duration.and_then(|d| start.checked_add_signed(d)),
                    window_over: crate::eval::rollout::window_over(start, *duration, now),
                    winner: winner.map(|i| flag.variants[i].name.clone()),
                })
            }
            _ => None,
        };
        let sunset = flag.sunset.as_ref().map(|plan| SunsetState {
            sunset_phase: plan.phase_at(now).map(|p| p.kind.as_str()),
            shutdown_at: plan.shutdown_at,
        });
        Self {
            effective,
            override_: record.cloned(),
            first_seen: rt.first_seen,
            last_evaluated: rt.last_evaluated(),
            gradual,
            ab_test,
            sunset,
            alerts: None,
        }
    }
}

impl FlagSummary {
    pub fn of(flag: &Flag, rt: &FlagRuntime, served: &Served, now: DateTime<Utc>) -> Self {
        Self {
            key: flag.key.clone(),
            kind: flag.kind.as_str(),
            description: flag.description.clone(),
            owner: flag.owner.clone(),
            enabled: flag.enabled,
            strategy: flag.strategy.as_ref().map(Strategy::kind),
            state: FlagStateView::of(flag, rt, served, now),
        }
    }
}

impl FlagDetail {
    pub fn of(flag: &Flag, rt: &FlagRuntime, served: &Served, now: DateTime<Utc>) -> Self {
        Self {
            summary: FlagSummary::of(flag, rt, served, now),
            service: flag.service.clone(),
            metadata: flag.metadata.clone(),
            variants: flag.variants.iter().map(|v| (v.name.clone(), v.value.clone())).collect(),
            default_variant: flag.variants[flag.default].name.clone(),
            default_value: flag.variants[flag.default].value.clone(),
            rollout_variant: flag.variants[flag.rollout].name.clone(),
            rollout_value: flag.variants[flag.rollout].value.clone(),
            constraints: flag.constraints.len(),
            variant_overrides: flag.overrides.len(),
            rollout_strategy: flag.strategy.as_ref().map(|s| strategy_view(flag, s)),
            sunset_plan: flag.sunset.as_ref().map(|p| {
                p.phases
                    .iter()
                    .map(|ph| SunsetPhaseView {
                        phase: ph.kind.as_str(),
                        start: ph.start,
                        duration_seconds: ph.duration.map(seconds),
                        actions: ph.actions.clone(),
                        notice: ph.notice.clone(),
                        redirect: ph.redirect.clone(),
                    })
                    .collect()
            }),
            monitoring: flag.monitoring.as_ref().map(|m| MonitoringView {
                metrics: m.metrics.clone(),
                interval_seconds: m.interval.num_seconds(),
                alerts: m
                    .alerts
                    .iter()
                    .map(|a| AlertView {
                        condition: a.condition.text.clone(),
                        for_samples: a.for_samples,
                        action: a.action.as_str(),
                    })
                    .collect(),
            }),
            success_metrics: flag
                .success_metrics
                .as_ref()
                .map(|s| SuccessMetricsView { primary: s.primary.clone(), secondary: s.secondary.clone() }),
            deprecated_in: flag.deprecated_in.as_ref().map(ToString::to_string),
            introduced_in: flag.introduced_in.as_ref().map(ToString::to_string),
        }
    }
}

fn strategy_view(flag: &Flag, s: &Strategy) -> Value {
    let name = |i: usize| flag.variants[i].name.as_str();
    let hash = s.hash();
    let stickiness = match &hash.stickiness {
        crate::flags::snapshot::Stickiness::Default => "default".to_owned(),
        crate::flags::snapshot::Stickiness::Attribute(a) => a.name.clone(),
    };
    let mut v = json!({"type": s.kind(), "stickiness": stickiness, "group_id": hash.group});
    match s {
        Strategy::Percentage { percentage, .. } => v["percentage"] = json!(percentage),
        Strategy::Gradual { stages, start, .. } => {
            v["start"] = json!(start);
            v["stages"] = stages
                .iter()
                .map(|st| json!({"percentage": st.percentage, "duration_seconds": st.duration.map(seconds), "criteria": st.criteria}))
                .collect();
        }
        Strategy::AbTest { split, duration, start, winner, .. } => {
            v["traffic_split"] =
                split.iter().map(|(i, w)| (name(*i).to_owned(), json!(w))).collect::<serde_json::Map<_, _>>().into();
            v["duration_seconds"] = json!(duration.map(seconds));
            v["start"] = json!(start);
            v["winner"] = json!(winner.map(name));
        }
        Strategy::Scheduled { steps, .. } => {
            v["steps"] = steps.iter().map(|(at, p)| json!({"at": at, "percentage": p})).collect();
        }
    }
    v
}
