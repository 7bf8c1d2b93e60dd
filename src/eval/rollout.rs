//! Where a rollout stands at a given time: gradual stages (with pauses) and scheduled steps.

use chrono::{DateTime, Duration, Utc};

use crate::flags::snapshot::Stage;

/// Operator or alert pauses of a gradual rollout. Paused time does not count toward a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    /// Total time spent paused in earlier, finished pauses.
    pub paused_total: Duration,
    /// Set while paused: when the current pause began.
    pub paused_since: Option<DateTime<Utc>>,
}

impl Default for Pause {
    fn default() -> Self {
        Self { paused_total: Duration::zero(), paused_since: None }
    }
}

/// Where a gradual rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// 0-based index of the active stage.
    pub stage: usize,
    /// When the next stage begins, if there is one and the rollout is not paused.
    pub next_stage_at: Option<DateTime<Utc>>,
}

/// The active stage at `now`, or `None` before `start`.
pub fn gradual_progress(stages: &[Stage], start: DateTime<Utc>, now: DateTime<Utc>, pause: Pause) -> Option<Progress> {
    if now < start || stages.is_empty() {
        return None;
    }
    let clock = pause.paused_since.map_or(now, |p| p.min(now));
    let elapsed = (clock - start - pause.paused_total).max(Duration::zero());
    let mut boundary = Duration::zero();
    for (i, stage) in stages.iter().enumerate() {
        let Some(d) = stage.duration else {
            return Some(Progress { stage: i, next_stage_at: None });
        };
        boundary += d;
        if elapsed < boundary {
            let last = i + 1 == stages.len();
            let next = (!last && pause.paused_since.is_none()).then(|| now + (boundary - elapsed));
            return Some(Progress { stage: i, next_stage_at: next });
        }
    }
    Some(Progress { stage: stages.len() - 1, next_stage_at: None })
}

/// The percentage of a scheduled rollout at `now`: the latest step in the past, else 0.
pub fn scheduled_percentage(steps: &[(DateTime<Utc>, u32)], now: DateTime<Utc>) -> u32 {
    steps.iter().rev().find(|(at, _)| *at <= now).map_or(0, |(_, p)| *p)
}
