//! An owned Prometheus registry with typed handles (no global statics).
//!
//! Evaluation counters are resolved once per (flag, variant, reason) slot and kept by the
//! serving state, so counting an evaluation is one atomic load and one atomic add.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EvalLabels {
    pub flag: String,
    pub variant: String,
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RevisionLabels {
    pub revision: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlagLabels {
    pub flag: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RateLimitLabels {
    pub scope: String,
    pub client: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub task: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RollbackLabels {
    pub flag: String,
    pub trigger: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub flag: String,
    pub phase: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QualityLabels {
    pub metric: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GateLabels {
    pub gate: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: String,
}

type HistogramFamily = Family<HttpLabels, Histogram, fn() -> Histogram>;

fn http_histogram() -> Histogram {
    // 100 µs .. ~3.3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Every metric toggled serves. Names are part of the contract (DESIGN.md section 4).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub evaluations: Family<EvalLabels, Counter>,
    pub reloads: Family<OutcomeLabels, Counter>,
    pub revision_info: Family<RevisionLabels, Gauge>,
    pub overrides_active: Gauge,
    pub rollbacks: Family<RollbackLabels, Counter>,
    pub rollout_stage: Family<FlagLabels, Gauge>,
    pub sunset_phase: Family<PhaseLabels, Gauge>,
    pub sunset_warnings: Family<FlagLabels, Counter>,
    pub monitor_inconclusive: Family<FlagLabels, Counter>,
    pub flags_stale: Gauge,
    /// Release quality over the last 30 days, all services: success_rate, rollback_rate (%),
    /// median_lead_time_hours, releases_per_week, flag_cleanup (%). Absent when undefined.
    pub release_quality: Family<QualityLabels, Gauge<f64, AtomicU64>>,
    pub quality_gates: Family<GateLabels, Gauge>,
    pub http_duration: HistogramFamily,
    pub task_restarts: Family<TaskLabels, Counter>,
    /// 1 while the store answers, 0 while it does not (evaluations go on from memory).
    pub store_up: Gauge,
    pub rate_limited: Family<RateLimitLabels, Counter>,
    /// Notification deliveries by outcome (`delivered`, `failed`).
    pub notifications: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let evaluations = Family::<EvalLabels, Counter>::default();
        let reloads = Family::<OutcomeLabels, Counter>::default();
        let revision_info = Family::<RevisionLabels, Gauge>::default();
        let overrides_active = Gauge::default();
        let rollbacks = Family::<RollbackLabels, Counter>::default();
        let rollout_stage = Family::<FlagLabels, Gauge>::default();
        let sunset_phase = Family::<PhaseLabels, Gauge>::default();
        let sunset_warnings = Family::<FlagLabels, Counter>::default();
        let monitor_inconclusive = Family::<FlagLabels, Counter>::default();
        let flags_stale = Gauge::default();
        let release_quality = Family::<QualityLabels, Gauge<f64, AtomicU64>>::default();
        let quality_gates = Family::<GateLabels, Gauge>::default();
        let http_duration: HistogramFamily = Family::new_with_constructor(http_histogram);
        let task_restarts = Family::<TaskLabels, Counter>::default();
        let store_up = Gauge::default();
        let rate_limited = Family::<RateLimitLabels, Counter>::default();
        let notifications = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "toggled_notifications",
            "Notification deliveries (--notify-url) by outcome",
            notifications.clone(),
        );
        registry.register(
            "toggled_rate_limited",
            "Requests refused over a client's rate limit, by scope and client (token name or anonymous)",
            rate_limited.clone(),
        );
        registry.register("toggled_store_up", "Whether the store answers (1) or not (0)", store_up.clone());
        registry.register(
            "toggled_task_restarts",
            "Background tasks that failed and were restarted",
            task_restarts.clone(),
        );
        registry.register("toggled_evaluations", "Flag evaluations by flag, variant and reason", evaluations.clone());
        registry.register("toggled_reloads", "Flag file reloads by outcome", reloads.clone());
        registry.register(
            "toggled_flag_revision_info",
            "Revision of the flag file being served",
            revision_info.clone(),
        );
        registry.register(
            "toggled_overrides_active",
            "Operator overrides and rollbacks in force",
            overrides_active.clone(),
        );
        registry.register("toggled_rollbacks", "Automatic and alert-driven rollbacks", rollbacks.clone());
        registry.register("toggled_rollout_stage", "Active stage (1-based) of gradual rollouts", rollout_stage.clone());
        registry.register("toggled_sunset_phase", "Sunset phase in force (1) per flag", sunset_phase.clone());
        registry.register(
            "toggled_sunset_warnings",
            "Evaluations of flags in a warning_logs phase",
            sunset_warnings.clone(),
        );
        registry.register(
            "toggled_monitor_inconclusive",
            "Monitor samples that were empty, NaN or failed (no action taken)",
            monitor_inconclusive.clone(),
        );
        registry.register(
            "toggled_flags_stale",
            "Flags overdue for cleanup or unused for 30 days",
            flags_stale.clone(),
        );
        registry.register(
            "toggled_release_quality",
            "Release quality over the last 30 days (all services)",
            release_quality.clone(),
        );
        registry.register(
            "toggled_quality_gate_passing",
            "Release quality gates: 1 passing, 0 failing",
            quality_gates.clone(),
        );
        registry.register(
            "toggled_http_request_duration_seconds",
            "HTTP request duration by matched route",
            http_duration.clone(),
        );
        Self {
            registry,
            evaluations,
            reloads,
            revision_info,
            overrides_active,
            rollbacks,
            rollout_stage,
            sunset_phase,
            sunset_warnings,
            monitor_inconclusive,
            flags_stale,
            release_quality,
            quality_gates,
            http_duration,
            task_restarts,
            store_up,
            rate_limited,
            notifications,
        }
    }

    pub fn count_reload(&self, outcome: &str) {
        self.reloads.get_or_create(&OutcomeLabels { outcome: outcome.to_owned() }).inc();
    }

    /// The Prometheus text format 0.0.4.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// The OpenMetrics text format.
    pub fn render_openmetrics(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
