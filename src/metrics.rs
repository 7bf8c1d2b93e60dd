//! An owned Prometheus registry with typed handles (no global statics).
//!
//! Evaluation counters are resolved once per (flag, variant, reason) slot and kept by the
//! serving state, so counting an evaluation is one atomic load and one atomic add.

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EvalLabels {
    pub flag: String,
    pub variant: String,
    pub reason: String,
}

/// Evaluations Unleash SDKs made themselves and reported (`/api/client/metrics`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SdkEvalLabels {
    pub flag: String,
    /// `yes`, `no`, or `variant:<name>`.
    pub result: String,
    /// The SDK's `appName` (at most [`crate::metrics::SDK_APPS`] names; the rest are `other`).
    pub app: String,
}

/// Most distinct SDK app names counted by name.
pub const SDK_APPS: usize = 50;

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

/// `toggled_http_request_duration_seconds` by route, method and status.
pub type HttpTimings = Family<HttpLabels, Timing>;

/// Upper bounds of [`Timing`]'s finite buckets: 100 µs doubling to ~3.3 s.
const TIMING_BUCKETS: usize = 16;
const FIRST_BOUND_NANOS: u64 = 100_000;

/// A duration histogram recorded with two relaxed atomic adds and no lock (the library's
/// histogram takes a mutex per observation). Buckets: 100 µs doubling to ~3.3 s, then +Inf;
/// exposed as a Prometheus histogram in seconds.
#[derive(Debug, Clone, Default)]
pub struct Timing(Arc<TimingCells>);

#[derive(Debug, Default)]
struct TimingCells {
    /// Per-bucket (not cumulative) counts; the last is +Inf.
    buckets: [AtomicU64; TIMING_BUCKETS + 1],
    sum_nanos: AtomicU64,
}

impl Timing {
    pub fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.0.buckets[timing_bucket(nanos)].fetch_add(1, Ordering::Relaxed);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// The bucket of a duration: bucket `i` holds (100 µs * 2^(i-1), 100 µs * 2^i].
fn timing_bucket(nanos: u64) -> usize {
    let steps = nanos.saturating_sub(1) / FIRST_BOUND_NANOS;
    (u64::BITS - steps.leading_zeros()).min(TIMING_BUCKETS as u32) as usize
}

impl TypedMetric for Timing {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Timing {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut buckets = [(f64::INFINITY, 0u64); TIMING_BUCKETS + 1];
        let mut bound = FIRST_BOUND_NANOS as f64 / 1e9;
        for (slot, cell) in buckets.iter_mut().zip(&self.0.buckets) {
            slot.1 = cell.load(Ordering::Relaxed);
        }
        for slot in &mut buckets[..TIMING_BUCKETS] {
            slot.0 = bound;
            bound *= 2.0;
        }
        let count = buckets.iter().map(|b| b.1).sum();
        let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Every metric toggled serves. Names are part of the contract (the contract, section 4).
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
    pub http_duration: HttpTimings,
    pub task_restarts: Family<TaskLabels, Counter>,
    /// 1 while the store answers, 0 while it does not (evaluations go on from memory).
    pub store_up: Gauge,
    pub rate_limited: Family<RateLimitLabels, Counter>,
    /// Notification deliveries by outcome (`delivered`, `failed`).
    pub notifications: Family<OutcomeLabels, Counter>,
    pub sdk_evaluations: Family<SdkEvalLabels, Counter>,
    /// Edge mode: 1 while the upstream's last poll succeeded, 0 after a failed one.
    pub upstream_up: Gauge,
    /// Edge mode: polls of the upstream by outcome (`changed`, `unchanged`, `failed`).
    pub upstream_polls: Family<OutcomeLabels, Counter>,
    /// Edge mode: SDK reports forwarded to the upstream by outcome (`forwarded`, `failed`, `dropped`).
    pub upstream_forwards: Family<OutcomeLabels, Counter>,
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
        let http_duration = HttpTimings::default();
        let task_restarts = Family::<TaskLabels, Counter>::default();
        let store_up = Gauge::default();
        let rate_limited = Family::<RateLimitLabels, Counter>::default();
        let notifications = Family::<OutcomeLabels, Counter>::default();
        let sdk_evaluations = Family::<SdkEvalLabels, Counter>::default();
        registry.register(
            "toggled_sdk_evaluations",
            "Evaluations Unleash SDKs made locally and reported, by flag, result and app",
            sdk_evaluations.clone(),
        );
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
        let upstream_up = Gauge::default();
        let upstream_polls = Family::<OutcomeLabels, Counter>::default();
        let upstream_forwards = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "toggled_upstream_up",
            "Edge mode: whether the upstream's last poll succeeded (1) or failed (0)",
            upstream_up.clone(),
        );
        registry.register(
            "toggled_upstream_polls",
            "Edge mode: polls of the upstream by outcome",
            upstream_polls.clone(),
        );
        registry.register(
            "toggled_upstream_forwards",
            "Edge mode: SDK reports forwarded to the upstream by outcome",
            upstream_forwards.clone(),
        );
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
            sdk_evaluations,
            upstream_up,
            upstream_polls,
            upstream_forwards,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_buckets_match_their_upper_bounds() {
        let us = |n: u64| timing_bucket(n * 1_000);
        assert_eq!([us(0), us(1), us(100), us(101), us(200), us(201), us(400)], [0, 0, 0, 1, 1, 2, 2]);
        assert_eq!(timing_bucket(3_276_800_000), 15);
        assert_eq!(timing_bucket(3_276_800_001), 16);
        assert_eq!(timing_bucket(u64::MAX), 16);
    }

    #[test]
    fn timing_is_exposed_as_a_histogram_in_seconds() {
        let metrics = Metrics::new();
        let labels = HttpLabels { route: "/x".into(), method: "GET".into(), status: "200".into() };
        let timing = metrics.http_duration.get_or_create(&labels).clone();
        timing.observe(Duration::from_micros(150));
        timing.observe(Duration::from_secs(5));
        let text = metrics.render_text();
        let lines: Vec<&str> =
            text.lines().filter(|l| l.starts_with("toggled_http_request_duration_seconds")).collect();
        let labels = r#"route="/x",method="GET",status="200""#;
        for wanted in [
            format!("toggled_http_request_duration_seconds_sum{{{labels}}} 5.00015"),
            format!("toggled_http_request_duration_seconds_count{{{labels}}} 2"),
            format!("toggled_http_request_duration_seconds_bucket{{{labels},le=\"0.0001\"}} 0"),
            format!("toggled_http_request_duration_seconds_bucket{{{labels},le=\"0.0002\"}} 1"),
            format!("toggled_http_request_duration_seconds_bucket{{{labels},le=\"3.2768\"}} 1"),
            format!("toggled_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 2"),
        ] {
            assert!(lines.contains(&wanted.as_str()), "{wanted} not in {lines:#?}");
        }
    }
}
