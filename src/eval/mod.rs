//! Pure evaluation: `evaluate(&Flag, &Context, now, &FlagState) -> Evaluation`.
//!
//! Total (every input gives an answer), deterministic, no IO, no clock (time is a parameter),
//! and no heap allocation on the common path: the result borrows from the flag.
//!
//! Precedence (the contract, section 2): operator override / rollback, `enabled: false`, sunset
//! shutdown (`api_disabled`), then `constraints`, variant `overrides`, `rollout_strategy`.
//! A flag with no targeting at all is static. The planned `rules` and `requires` slot in
//! between the sunset check and the flag's own targeting: `decide` is the place.

pub mod body;
pub mod bucket;
pub mod constraint;
pub mod context;
pub mod explain;
pub mod rollout;
pub mod sunset;
pub mod variant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use explain::{Silent, Step, Tracer};

use crate::flags::snapshot::{
    Expect, Flag, HashSpec, Rule, RuleAction, Stickiness, Strategy, SunsetAction, VariantIdx,
};
pub use constraint::Scalar;
pub use rollout::{Pause, Progress};
pub use sunset::{SunsetBody, SunsetStatus};

pub use body::EvaluationBody;
pub use context::{Attr, Context};

/// Why a value was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
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
    PrerequisiteFailed,
}

impl Reason {
    pub const ALL: [Reason; 10] = [
        Reason::Static,
        Reason::TargetingMatch,
        Reason::Split,
        Reason::Default,
        Reason::Disabled,
        Reason::Override,
        Reason::RolledBack,
        Reason::Sunset,
        Reason::RateLimited,
        Reason::PrerequisiteFailed,
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
            Reason::PrerequisiteFailed => "PREREQUISITE_FAILED",
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
    /// The name of the rule that decided, if one did.
    pub rule: Option<&'a str>,
}

/// The other flags of the snapshot a flag's prerequisites name, with their persisted state.
pub trait Prerequisites {
    /// Flag `index` of the snapshot and its state; `None` when it is not there.
    fn prerequisite(&self, index: usize) -> Option<(&Flag, FlagState<'_>)>;
}

/// For evaluating one flag alone: every prerequisite is missing, so a flag that has any
/// answers `PREREQUISITE_FAILED`. Evaluate through a snapshot to see them.
#[derive(Debug, Clone, Copy)]
pub struct Alone;

impl Prerequisites for Alone {
    fn prerequisite(&self, _: usize) -> Option<(&Flag, FlagState<'_>)> {
        None
    }
}

/// A snapshot evaluated without persisted state (the CLI, tests): prerequisites as the file
/// says.
impl Prerequisites for crate::flags::Snapshot {
    fn prerequisite(&self, index: usize) -> Option<(&Flag, FlagState<'_>)> {
        self.flags.get(index).map(|f| (f, FlagState::default()))
    }
}

impl<'a> Evaluation<'a> {
    /// The answer when the sunset `rate_limiting` limit is exceeded: the safe value.
    #[must_use]
    pub fn rate_limited(self, flag: &'a Flag) -> Self {
        let v = &flag.variants[flag.default];
        Self { value: &v.value, variant: &v.name, enabled: false, reason: Reason::RateLimited, rule: None, ..self }
    }
}

/// What was decided, before it is turned into an [`Evaluation`].
enum Served<'a> {
    Variant(VariantIdx),
    Value(&'a Value),
}

/// Evaluates `flag` alone for `ctx` at `now` (a flag with prerequisites needs its snapshot:
/// see [`evaluate_in`]).
pub fn evaluate<'a>(flag: &'a Flag, ctx: &Context, now: DateTime<Utc>, state: &FlagState<'a>) -> Evaluation<'a> {
    evaluate_traced(flag, ctx, now, state, &Alone, &mut Silent)
}

/// Evaluates `flag` with its prerequisites looked up in `others` (the snapshot it belongs to).
pub fn evaluate_in<'a, P: Prerequisites>(
    flag: &'a Flag,
    ctx: &Context,
    now: DateTime<Utc>,
    state: &FlagState<'a>,
    others: &P,
) -> Evaluation<'a> {
    evaluate_traced(flag, ctx, now, state, others, &mut Silent)
}

/// Evaluates and returns the ordered steps the evaluator took (`explain`).
pub fn evaluate_explained<'a, P: Prerequisites>(
    flag: &'a Flag,
    ctx: &Context,
    now: DateTime<Utc>,
    state: &FlagState<'a>,
    others: &P,
) -> (Evaluation<'a>, Vec<Step>) {
    let mut steps = Vec::new();
    let e = evaluate_traced(flag, ctx, now, state, others, &mut steps);
    (e, steps)
}

/// Evaluates, reporting each step to `t` ([`Silent`] reports nothing and costs nothing).
pub fn evaluate_traced<'a, P: Prerequisites, T: Tracer>(
    flag: &'a Flag,
    ctx: &Context,
    now: DateTime<Utc>,
    state: &FlagState<'a>,
    others: &P,
    t: &mut T,
) -> Evaluation<'a> {
    let sunset = flag.sunset.as_ref().map(|plan| SunsetStatus::at(plan, now));
    let Decision { served, reason, stage, rule } = decide(flag, ctx, now, state, sunset, others, t);
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
    Evaluation { value, variant, enabled, reason, stage, sunset, rule }
}

/// What was decided, and by which rule.
struct Decision<'a> {
    served: Served<'a>,
    reason: Reason,
    stage: Option<u32>,
    rule: Option<&'a str>,
}

/// The evaluator's steps in precedence order (the contract, section 2): override, master switch,
/// sunset shutdown, prerequisites, constraints, variant pins, rules in order, the rollout
/// strategy as the fall-through.
fn decide<'a, P: Prerequisites, T: Tracer>(
    flag: &'a Flag,
    ctx: &Context,
    now: DateTime<Utc>,
    state: &FlagState<'a>,
    sunset: Option<SunsetStatus<'a>>,
    others: &P,
    t: &mut T,
) -> Decision<'a> {
    let mut rule = None;
    let (served, reason, stage) = decide_inner(flag, ctx, now, state, sunset, others, t, &mut rule);
    Decision { served, reason, stage, rule }
}

/// Whether every prerequisite gives what it expects, evaluated for the same context from the
/// same snapshot (its own overrides and kill switch included).
fn prerequisites_met<P: Prerequisites, T: Tracer>(
    flag: &Flag,
    ctx: &Context,
    now: DateTime<Utc>,
    others: &P,
    t: &mut T,
) -> bool {
    flag.requires.iter().all(|r| {
        let met = others.prerequisite(r.index).is_some_and(|(other, state)| {
            let e = evaluate_traced(other, ctx, now, &state, others, &mut Silent);
            match &r.expect {
                Expect::Enabled(on) => e.enabled == *on,
                Expect::Variant(name) => e.variant == name,
                Expect::AnyVariant(names) => names.iter().any(|n| n == e.variant),
                Expect::Value(v) => e.value == v,
            }
        });
        if T::ON {
            t.push(
                "prerequisite",
                if met { "met" } else { "unmet" },
                json!({ "flag": r.key, "expect": format!("{:?}", r.expect) }),
            );
        }
        met
    })
}

/// What a rule decides, or `None` to try the next one.
fn rule_decision<'a, T: Tracer>(
    flag: &'a Flag,
    rule: &'a Rule,
    ctx: &Context,
    now: DateTime<Utc>,
    state: &FlagState<'a>,
    t: &mut T,
) -> Option<(Served<'a>, Reason, Option<u32>)> {
    let holds = explain::all_hold(&rule.constraints, ctx, now, "rule", t);
    let decided =
        if !holds {
            None
        } else {
            match &rule.action {
                RuleAction::Serve(idx) => Some((Served::Variant(*idx), Reason::TargetingMatch, None)),
                RuleAction::Percentage { percentage, serve, hash } => inside_share(*percentage, hash, ctx, t)
                    .then_some((Served::Variant(*serve), Reason::TargetingMatch, None)),
                RuleAction::Strategy(strategy, gate) => {
                    if gate.as_ref().is_some_and(|g| !inside_share(g.percentage, &g.hash, ctx, t)) {
                        None
                    } else {
                        let decided = strategy_decision(flag, strategy, ctx, now, state, t);
                        (decided.1 != Reason::Default).then_some(decided)
                    }
                }
            }
        };
    if T::ON {
        t.push("rule", if decided.is_some() { "matched" } else { "no_match" }, json!({ "name": rule.name }));
    }
    decided
}

/// Whether the context's bucket is within a rule's `percentage` (none without a stickiness
/// value).
fn inside_share<T: Tracer>(percentage: u32, hash: &HashSpec, ctx: &Context, t: &mut T) -> bool {
    let key = stickiness_value(&hash.stickiness, ctx);
    let b = key.as_ref().map(|s| bucket::bucket(&hash.group, s.as_str()));
    let inside = percentage > 0 && b.is_some_and(|b| b <= percentage);
    if T::ON {
        t.push(
            "rule_percentage",
            if inside { "inside" } else { "outside" },
            json!({ "percentage": percentage, "bucket": b }),
        );
    }
    inside
}

#[allow(clippy::too_many_arguments)]
fn decide_inner<'a, P: Prerequisites, T: Tracer>(
    flag: &'a Flag,
    ctx: &Context,
    now: DateTime<Utc>,
    state: &FlagState<'a>,
    sunset: Option<SunsetStatus<'a>>,
    others: &P,
    t: &mut T,
    rule_out: &mut Option<&'a str>,
) -> (Served<'a>, Reason, Option<u32>) {
    let safe = Served::Variant(flag.default);
    let mut forced_on = false;
    if T::ON {
        let (outcome, detail) = match state.override_ {
            None => ("none", Value::Null),
            Some(Override::Kill) => ("kill", json!("the kill switch is on: everyone gets the safe value")),
            Some(Override::RolledBack) => ("rolled_back", json!("rolled back automatically: the safe value")),
            Some(Override::Variant(name)) => ("variant", json!({ "variant": name })),
            Some(Override::Value(v)) => ("value", json!({ "value": v })),
            Some(Override::Enable) => ("forced_on", json!("the master switch is forced on; targeting applies")),
        };
        t.push("override", outcome, detail);
    }
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
    if T::ON {
        let outcome = match (flag.enabled, forced_on) {
            (true, _) => "on",
            (false, true) => "forced_on",
            (false, false) => "off",
        };
        t.push("master_switch", outcome, json!({ "enabled_in_file": flag.enabled }));
    }
    if !flag.enabled && !forced_on {
        return (safe, Reason::Disabled, None);
    }
    if T::ON
        && let Some(status) = sunset
    {
        let phase = status.phase.map(|p| p.kind.as_str());
        t.push("sunset", phase.unwrap_or("none"), json!({ "phase": phase, "actions": status.body().actions }));
    }
    if let Some(phase) = sunset.and_then(|s| s.phase).filter(|p| p.has(SunsetAction::ApiDisabled)) {
        return (Served::Variant(phase.shutdown), Reason::Sunset, None);
    }
    if !prerequisites_met(flag, ctx, now, others, t) {
        return (safe, Reason::PrerequisiteFailed, None);
    }
    if !explain::all_hold(&flag.constraints, ctx, now, "constraints", t) {
        return (safe, Reason::Default, None);
    }
    if !flag.overrides.is_empty() {
        let pinned = stickiness_value(&flag.override_stickiness, ctx)
            .and_then(|s| flag.overrides.get(s.as_str()).map(|&idx| (s, idx)));
        if T::ON {
            let detail = pinned.as_ref().map_or(
                Value::Null,
                |(s, idx)| json!({ "stickiness": s.as_str(), "variant": flag.variants[*idx].name }),
            );
            t.push("variant_pin", if pinned.is_some() { "pinned" } else { "none" }, detail);
        }
        if let Some((_, idx)) = pinned {
            return (Served::Variant(idx), Reason::TargetingMatch, None);
        }
    }
    for rule in &flag.rules {
        if let Some(decided) = rule_decision(flag, rule, ctx, now, state, t) {
            *rule_out = Some(rule.name.as_str());
            return decided;
        }
    }
    let rollout = Served::Variant(flag.rollout);
    let Some(strategy) = &flag.strategy else {
        let (served, reason) = if !flag.constraints.is_empty() && flag.rules.is_empty() {
            (rollout, Reason::TargetingMatch)
        } else if flag.is_static() {
            (safe, Reason::Static)
        } else {
            (safe, Reason::Default)
        };
        if T::ON {
            t.push("strategy", "none", json!("no rollout strategy: the constraints decide, or the value is static"));
        }
        return (served, reason, None);
    };
    strategy_decision(flag, strategy, ctx, now, state, t)
}

/// What a rollout strategy (the flag's, or a rule's) decides for a context.
fn strategy_decision<'a, T: Tracer>(
    flag: &'a Flag,
    strategy: &'a Strategy,
    ctx: &Context,
    now: DateTime<Utc>,
    state: &FlagState<'a>,
    t: &mut T,
) -> (Served<'a>, Reason, Option<u32>) {
    let safe = Served::Variant(flag.default);
    let rollout = Served::Variant(flag.rollout);
    let hash = strategy.hash();
    let key = stickiness_value(&hash.stickiness, ctx);
    explain::stickiness(key.as_ref(), &hash.group, t);
    let key = key.as_ref().map(Scalar::as_str);
    let bucket = |t: &mut T| {
        let b = key.map(|s| bucket::bucket(&hash.group, s));
        if T::ON
            && let Some(b) = b
        {
            t.push("bucket", "computed", json!({ "bucket": b, "range": "1..=100" }));
        }
        b
    };
    let percentage_step = |t: &mut T, percentage: u32, b: Option<u32>| {
        let inside = percentage > 0 && b.is_some_and(|b| b <= percentage);
        if T::ON {
            t.push(
                "percentage",
                if inside { "inside" } else { "outside" },
                json!({ "percentage": percentage, "bucket": b }),
            );
        }
        inside
    };
    match strategy {
        Strategy::Percentage { percentage, .. } => {
            let b = bucket(t);
            if percentage_step(t, *percentage, b) {
                (rollout, Reason::TargetingMatch, None)
            } else {
                (safe, Reason::Default, None)
            }
        }
        Strategy::Scheduled { steps, .. } => {
            let percentage = rollout::scheduled_percentage(steps, now);
            if T::ON {
                t.push("schedule", "step", json!({ "percentage": percentage }));
            }
            let b = bucket(t);
            if percentage_step(t, percentage, b) {
                (rollout, Reason::TargetingMatch, None)
            } else {
                (safe, Reason::Default, None)
            }
        }
        Strategy::Gradual { stages, start, .. } => {
            let start = rollout::schedule_start(*start, state.first_seen, now);
            let Some(progress) = rollout::gradual_progress(stages, start, now, state.pause) else {
                if T::ON {
                    t.push("stage", "not_started", json!({ "start": start }));
                }
                return (safe, Reason::Default, None);
            };
            let stage = Some(progress.stage as u32 + 1);
            if T::ON {
                let active = &stages[progress.stage];
                let detail = json!({
                    "stage": progress.stage + 1,
                    "of": stages.len(),
                    "percentage": active.percentage,
                    "criteria": active.criteria,
                    "start": start,
                    "next_stage_at": progress.next_stage_at,
                    "paused": state.pause.paused_since.is_some(),
                });
                t.push("stage", "active", detail);
            }
            // Monotone: inside iff some stage j <= k admits the context. The bucket is computed
            // at most once.
            let b = bucket(t);
            let admitted = b.is_some_and(|b| {
                stages[..=progress.stage].iter().enumerate().any(|(j, st)| {
                    let inside = st.percentage > 0 && b <= st.percentage;
                    let admits = inside && explain::all_hold(&st.constraints, ctx, now, "stage_criteria", t);
                    if T::ON {
                        let detail = json!({
                            "stage": j + 1,
                            "percentage": st.percentage,
                            "bucket": b,
                            "criteria": st.criteria,
                            "inside_percentage": inside,
                        });
                        t.push("stage_admission", if admits { "admitted" } else { "not_admitted" }, detail);
                    }
                    admits
                })
            });
            if admitted { (rollout, Reason::TargetingMatch, stage) } else { (safe, Reason::Default, stage) }
        }
        Strategy::AbTest { split, hashing, total_weight, duration, start, winner, .. } => {
            let start = rollout::schedule_start(*start, state.first_seen, now);
            let over = rollout::window_over(start, *duration, now);
            if T::ON {
                let end = duration.and_then(|d| start.checked_add_signed(d));
                let outcome = if now < start {
                    "not_started"
                } else if over {
                    "over"
                } else {
                    "open"
                };
                t.push("window", outcome, json!({ "start": start, "end": end }));
            }
            if now < start {
                return (safe, Reason::Default, None);
            }
            if over {
                return match winner {
                    Some(w) => (Served::Variant(*w), Reason::TargetingMatch, None),
                    None => (safe, Reason::Default, None),
                };
            }
            let picked = key.and_then(|s| variant::pick(split, *total_weight, *hashing, &hash.group, s));
            if T::ON {
                let weights: Vec<Value> =
                    split.iter().map(|(idx, w)| json!({ "variant": flag.variants[*idx].name, "weight": w })).collect();
                let target = key.map(|s| match hashing {
                    crate::flags::snapshot::Hashing::Unleash => bucket::variant_target(&hash.group, s, *total_weight),
                    crate::flags::snapshot::Hashing::Flagd => bucket::flagd_bucket(&hash.group, s, *total_weight),
                });
                let detail = json!({
                    "target": target,
                    "total_weight": total_weight,
                    "weights": weights,
                    "variant": picked.map(|i| &flag.variants[i].name),
                });
                t.push("variant_pick", if picked.is_some() { "picked" } else { "none" }, detail);
            }
            match picked {
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
        Stickiness::Attribute(path) => context::lookup(ctx, path).and_then(Scalar::of),
    };
    found.filter(|s| !s.as_str().is_empty())
}

/// The stickiness value a flag's strategy (or its variant pins) would hash, for per-user
/// rate limiting of sunset flags.
pub fn flag_stickiness<'c>(flag: &Flag, ctx: &'c Context) -> Option<Scalar<'c>> {
    let st = flag.strategy.as_ref().map_or(&flag.override_stickiness, |s| &s.hash().stickiness);
    stickiness_value(st, ctx)
}
