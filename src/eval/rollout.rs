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

/// When a gradual or A/B schedule starts: the file's `start`, else when the flag was first
/// seen, else now (never recorded). The one place this rule lives.
pub fn schedule_start(
    start: Option<DateTime<Utc>>,
    first_seen: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    start.or(first_seen).unwrap_or(now)
}

/// Whether an A/B window that began at `start` and lasts `duration` (none: forever) is over at
/// `now`. A window whose end lies past the calendar's range never ends.
pub fn window_over(start: DateTime<Utc>, duration: Option<Duration>, now: DateTime<Utc>) -> bool {
    duration.and_then(|d| start.checked_add_signed(d)).is_some_and(|end| now >= end)
}

/// The active stage at `now`, or `None` before `start`. Checked arithmetic throughout: a
/// boundary past the calendar's range is a stage that never ends.
pub fn gradual_progress(stages: &[Stage], start: DateTime<Utc>, now: DateTime<Utc>, pause: Pause) -> Option<Progress> {
    if now < start || stages.is_empty() {
        return None;
    }
    let clock = pause.paused_since.map_or(now, |p| p.min(now));
    let elapsed =
        clock.signed_duration_since(start).checked_sub(&pause.paused_total).unwrap_or_default().max(Duration::zero());
    let mut boundary = Duration::zero();
    for (i, stage) in stages.iter().enumerate() {
        let Some(d) = stage.duration else {
            return Some(Progress { stage: i, next_stage_at: None });
        };
        let Some(end) = boundary.checked_add(&d) else {
            return Some(Progress { stage: i, next_stage_at: None });
        };
        boundary = end;
        if elapsed < boundary {
            let last = i + 1 == stages.len();
            let next = (!last && pause.paused_since.is_none())
                .then(|| boundary.checked_sub(&elapsed).and_then(|left| now.checked_add_signed(left)))
                .flatten();
            return Some(Progress { stage: i, next_stage_at: next });
        }
    }
    Some(Progress { stage: stages.len() - 1, next_stage_at: None })
}

/// The percentage of a scheduled rollout at `now`: the latest step in the past, else 0.
pub fn scheduled_percentage(steps: &[(DateTime<Utc>, u32)], now: DateTime<Utc>) -> u32 {
    steps.iter().rev().find(|(at, _)| *at <= now).map_or(0, |(_, p)| *p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(percentage: u32, duration: Option<Duration>) -> Stage {
        Stage { percentage, duration, criteria: None, constraints: Vec::new() }
    }

    #[test]
    fn boundaries_past_the_calendar_never_overflow() {
        let start = DateTime::<Utc>::MAX_UTC - Duration::days(1);
        let now = DateTime::<Utc>::MAX_UTC;
        let stages = [stage(5, Some(Duration::MAX)), stage(50, Some(Duration::MAX)), stage(100, None)];
        let p = gradual_progress(&stages, start, now, Pause::default()).expect("started");
        assert_eq!(p, Progress { stage: 0, next_stage_at: None }, "the next stage lies past the calendar");
        let early = DateTime::<Utc>::MIN_UTC;
        let paused = Pause { paused_total: Duration::MAX, paused_since: Some(early) };
        assert_eq!(gradual_progress(&stages, early, now, paused).map(|p| p.stage), Some(0));
        assert!(!window_over(start, Some(Duration::MAX), now), "a window ending past the calendar never ends");
        assert!(window_over(start, Some(Duration::hours(1)), now));
        assert_eq!(scheduled_percentage(&[(now, 10)], now), 10);
    }
}
