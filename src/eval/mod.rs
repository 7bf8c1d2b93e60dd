//! Pure evaluation: `evaluate(&Flag, &Context, now, &FlagState) -> Evaluation`.
//!
//! Total (every input gives an answer), deterministic, no IO, no clock (time is a parameter),
//! and no heap allocation on the common path: the result borrows from the flag.
//!
//! Precedence (DESIGN.md section 2): operator override / rollback, `enabled: false`, sunset
//! shutdown (`api_disabled`), then `constraints`, variant `overrides`, `rollout_strategy`.
//! A flag with no targeting at all is static. The planned `rules` and `requires` slot in
//! between the sunset check and the flag's own targeting: `decide` is the place.

pub mod bucket;
pub mod constraint;
pub mod rollout;
pub mod sunset;
pub mod variant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::flags::snapshot::{Flag, Stickiness, Strategy, SunsetAction, VariantIdx};
pub use constraint::Scalar;
pub use rollout::{Pause, Progress};
pub use sunset::{SunsetBody, SunsetStatus};

/// An evaluation context: the JSON object a client sends.
pub type Context = serde_json::Map<String, Value>;

/// Why a value was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    Static,
    TargetingMatch,
    Split,
    Default,
    Disabled,
    Override,
    RolledBack,
    Sunset,
    RateLimited,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::Static,
        Reason::TargetingMatch,
        Reason::Split,
        Reason::Default,
        Reason::Disabled,
        Reason::Override,
        Reason::RolledBack,
        Reason::Sunset,
        Reason::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Split => "SPLIT",
            Reason::Default => "DEFAULT",
            Reason::Disabled => "DISABLED",
            Reason::Override => "OVERRIDE",
            Reason::RolledBack => "ROLLED_BACK",
            Reason::Sunset => "SUNSET",
            Reason::RateLimited => "RATE_LIMITED",
        }
    }
}

/// An operator's override of a flag (from the store), or an automatic rollback.
#[derive(Debug, Clone, PartialEq)]
pub enum Override {
    /// Kill switch: everyone gets the safe value (reason `DISABLED`).
    Kill,
    /// Master switch forced on: the file's `enabled: false` is ignored; targeting applies.
    Enable,
    /// Everyone gets this variant (reason `OVERRIDE`); an unknown name serves the safe value.
    Variant(String),
    /// Everyone gets this value (reason `OVERRIDE`).
    Value(Value),
    /// Automatic rollback: everyone gets the safe value (reason `ROLLED_BACK`).
    RolledBack,
}

/// The persisted state of one flag that evaluation depends on.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlagState<'a> {
    pub override_: Option<&'a Override>,
    /// When the server first saw the flag: the start of a gradual or ab_test schedule that has
    /// no `start` in the file. `None` (never recorded) means "starting now".
    pub first_seen: Option<DateTime<Utc>>,
    pub pause: Pause,
}

/// The outcome of evaluating one flag for one context. Borrows from the flag and its state.
#[derive(Debug, Clone, Copy)]
pub struct Evaluation<'a> {
    pub value: &'a Value,
    pub variant: &'a str,
    /// True iff the context got the rollout value (`TARGETING_MATCH`, `SPLIT`, or an override
    /// forcing a non-safe value).
    pub enabled: bool,
    pub reason: Reason,
    /// 1-based stage of a gradual rollout, once started.
    pub stage: Option<u32>,
    pub sunset: Option<SunsetStatus<'a>>,
}

impl<'a> Evaluation<'a> {
    /// The answer when the sunset `rate_limiting` limit is exceeded: the safe value.
    #[must_use]
    pub fn rate_limited(self, flag: &'a Flag) -> Self {
        let v = &flag.variants[flag.default];
        Self { value: &v.value, variant: &v.name, enabled: false, reason: Reason::RateLimited, ..self }
    }

    /// The JSON body of an evaluation response.
    pub fn body(&self, flag: &'a str, revision: &'a str) -> EvaluationBody<'a> {
        EvaluationBody {
            flag,
            value: self.value,
            variant: self.variant,
            enabled: self.enabled,
            reason: self.reason,
            stage: self.stage,
            sunset: self.sunset.map(|s| s.body()),
            notice: self.sunset.and_then(|s| s.notice()),
            redirect: self.sunset.and_then(|s| s.redirect()),
            revision,
        }
    }
}

/// `{"flag","value","variant","enabled","reason","stage"?,"sunset"?,"notice"?,"redirect"?,"revision"}`.
#[derive(Debug, Serialize)]
pub struct EvaluationBody<'a> {
    pub flag: &'a str,
    pub value: &'a Value,
    pub variant: &'a str,
    pub enabled: bool,
    pub reason: Reason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sunset: Option<SunsetBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect: Option<&'a str>,
    pub revision: &'a str,
}

/// What was decided, before it is turned into an [`Evaluation`].
enum Served<'a> {
    Variant(VariantIdx),
    Value(&'a Value),
}

/// Evaluates `flag` for `ctx` at `now`.
pub fn evaluate<'a>(flag: &'a Flag, ctx: &Context, now: DateTime<Utc>, state: &FlagState<'a>) -> Evaluation<'a> {
    let sunset = flag.sunset.as_ref().map(|plan| SunsetStatus::at(plan, now));
    let (served, reason, stage) = decide(flag, ctx, now, state, sunset);
    let (value, variant) = match served {
        Served::Variant(i) => {
            let v = &flag.variants[i];
            (&v.value, v.name.as_str())
        }
        Served::Value(value) => {
            let name = flag.variants.iter().find(|v| v.value == *value).map_or("override", |v| v.name.as_str());
            (value, name)
        }
    };
    let enabled = match reason {
        Reason::TargetingMatch | Reason::Split => true,
        Reason::Override => *value != flag.variants[flag.default].value,
        _ => false,
    };
    Evaluation { value, variant, enabled, reason, stage, sunset }
}

fn decide<'a>(
    flag: &'a Flag,
    ctx: &Context,
    now: DateTime<Utc>,
    state: &FlagState<'a>,
    sunset: Option<SunsetStatus<'a>>,
) -> (Served<'a>, Reason, Option<u32>) {
    let safe = Served::Variant(flag.default);
    let mut forced_on = false;
    match state.override_ {
        Some(Override::Kill) => return (safe, Reason::Disabled, None),
        Some(Override::RolledBack) => return (safe, Reason::RolledBack, None),
        Some(Override::Variant(name)) => {
            let served = flag.variant_index(name).map_or(safe, Served::Variant);
            return (served, Reason::Override, None);
        }
        Some(Override::Value(v)) => return (Served::Value(v), Reason::Override, None),
        Some(Override::Enable) => forced_on = true,
        None => {}
    }
    if !flag.enabled && !forced_on {
        return (safe, Reason::Disabled, None);
    }
    if let Some(phase) = sunset.and_then(|s| s.phase).filter(|p| p.has(SunsetAction::ApiDisabled)) {
        return (Served::Variant(phase.shutdown), Reason::Sunset, None);
    }
    if !constraint::all_hold(&flag.constraints, ctx, now) {
        return (safe, Reason::Default, None);
    }
    if !flag.overrides.is_empty()
        && let Some(s) = stickiness_value(&flag.override_stickiness, ctx)
        && let Some(&idx) = flag.overrides.get(s.as_str())
    {
        return (Served::Variant(idx), Reason::TargetingMatch, None);
    }
    let rollout = Served::Variant(flag.rollout);
    let Some(strategy) = &flag.strategy else {
        return if !flag.constraints.is_empty() {
            (rollout, Reason::TargetingMatch, None)
        } else if flag.is_static() {
            (safe, Reason::Static, None)
        } else {
            (safe, Reason::Default, None)
        };
    };
    let hash = strategy.hash();
    let key = stickiness_value(&hash.stickiness, ctx);
    let key = key.as_ref().map(Scalar::as_str);
    let inside = |percentage: u32| percentage > 0 && key.is_some_and(|s| bucket::bucket(&hash.group, s) <= percentage);
    match strategy {
        Strategy::Percentage { percentage, .. } => {
            if inside(*percentage) {
                (rollout, Reason::TargetingMatch, None)
            } else {
                (safe, Reason::Default, None)
            }
        }
        Strategy::Scheduled { steps, .. } => {
            if inside(rollout::scheduled_percentage(steps, now)) {
                (rollout, Reason::TargetingMatch, None)
            } else {
                (safe, Reason::Default, None)
            }
        }
        Strategy::Gradual { stages, start, .. } => {
            let start = rollout::schedule_start(*start, state.first_seen, now);
            let Some(progress) = rollout::gradual_progress(stages, start, now, state.pause) else {
                return (safe, Reason::Default, None);
            };
            let stage = Some(progress.stage as u32 + 1);
            // Monotone: inside iff some stage j <= k admits the context. The bucket is computed
            // at most once.
            let bucket = key.map(|s| bucket::bucket(&hash.group, s));
            let admitted = bucket.is_some_and(|b| {
                stages[..=progress.stage].iter().any(|st| {
                    st.percentage > 0 && b <= st.percentage && constraint::all_hold(&st.constraints, ctx, now)
                })
            });
            if admitted { (rollout, Reason::TargetingMatch, stage) } else { (safe, Reason::Default, stage) }
        }
        Strategy::AbTest { split, total_weight, duration, start, winner, .. } => {
            let start = rollout::schedule_start(*start, state.first_seen, now);
            if now < start {
                return (safe, Reason::Default, None);
            }
            if rollout::window_over(start, *duration, now) {
                return match winner {
                    Some(w) => (Served::Variant(*w), Reason::TargetingMatch, None),
                    None => (safe, Reason::Default, None),
                };
            }
            match key.and_then(|s| variant::pick(split, *total_weight, &hash.group, s)) {
                Some(idx) => (Served::Variant(idx), Reason::Split, None),
                None => (safe, Reason::Default, None),
            }
        }
    }
}

/// The stickiness value of a context: the named attribute, or `targetingKey`, then `userId`,
/// then `sessionId`. Empty strings count as missing.
pub fn stickiness_value<'c>(stickiness: &Stickiness, ctx: &'c Context) -> Option<Scalar<'c>> {
    let found = match stickiness {
        Stickiness::Default => ["targetingKey", "userId", "sessionId"]
            .into_iter()
            .find_map(|k| ctx.get(k).and_then(Scalar::of).filter(|s| !s.as_str().is_empty())),
        Stickiness::Attribute(path) => constraint::lookup(ctx, path).and_then(Scalar::of),
    };
    found.filter(|s| !s.as_str().is_empty())
}

/// The stickiness value a flag's strategy (or its variant pins) would hash, for per-user
/// rate limiting of sunset flags.
pub fn flag_stickiness<'c>(flag: &Flag, ctx: &'c Context) -> Option<Scalar<'c>> {
    let st = flag.strategy.as_ref().map_or(&flag.override_stickiness, |s| &s.hash().stickiness);
    stickiness_value(st, ctx)
}
