//! The served flags projected into Unleash's client features document (version 2), as Unleash's
//! server SDKs poll it from `GET /api/client/features` and accept as a bootstrap file. Pure: the
//! snapshot, each flag's persisted state and the time in; the document and what it cannot
//! express out.
//!
//! Each flag becomes one feature whose **ordered strategies** reproduce toggled's precedence: the
//! SDK enables a feature when any strategy does and takes the variant of the first one that does,
//! which is toggled's "first match decides". Every strategy is a `flexibleRollout` with toggled's
//! own stickiness and group id, so the SDK's murmur3 gives the bucket toggled gives:
//! - an override or kill switch, `enabled: false` and a sunset shutdown serve one value to
//!   everyone; variant pins, `rules`, `constraints` and the rollout strategy become strategies in
//!   that order; a gradual rollout becomes one strategy per stage reached (with the stage's
//!   criteria), an A/B split the strategy's variants with its weights, a scheduled rollout its
//!   current step; `requires` become `dependencies`;
//! - an answer becomes an Unleash answer as on the frontend API: a boolean flag is enabled where
//!   it answers `true`; a variant flag is enabled where the context gets a live variant (reason
//!   `STATIC`, `TARGETING_MATCH`, `SPLIT`, `OVERRIDE`), with that variant and its value as payload.
//!
//! What Unleash cannot express is named in the notes, per flag, with how it is served: a
//! constraint on a nested attribute, which Unleash's context has no field for (the strategy is left
//! out), a boolean step serving `false` before one serving `true` or on a flag whose safe value is
//! `true` (left out: Unleash enables a feature when any strategy does) — except a flag on for
//! everyone but the contexts its constraints admit, which becomes one strategy per constraint,
//! inverted — a prerequisite on a value, a sunset rate limit (not applied by SDKs).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::steps::{Gate, Serve, Step, steps};
use crate::eval::{FlagState, Override};
use crate::flags::Snapshot;
use crate::flags::snapshot::{
    Constraint, Expect, Flag, FlagKind, NumOp, Operator, RuleAction, Stickiness, Strategy, SunsetAction, VariantIdx,
};

/// The name Unleash gives the answer of a feature without a variant. A toggled variant of that
/// name is served as that answer: `{name: "disabled", enabled: false}`, no payload.
pub const DISABLED: &str = "disabled";

/// The document and, per flag, what it could not express exactly.
#[derive(Debug)]
pub struct Projection {
    pub document: Value,
    pub notes: Vec<(String, String)>,
}

/// A variant's value as Unleash's payload: strings as they are, numbers as their JSON text,
/// anything else as JSON.
pub fn payload(value: &Value) -> Value {
    match value {
        Value::String(s) => json!({"type": "string", "value": s}),
        Value::Number(n) => json!({"type": "number", "value": n.to_string()}),
        other => json!({"type": "json", "value": other.to_string()}),
    }
}

/// What Unleash cannot express in `snapshot`, per flag, as of `now` with no persisted state
/// (`toggled validate` and every load report these).
pub fn notes(snapshot: &Snapshot, now: DateTime<Utc>) -> Vec<(String, String)> {
    let mut notes = Vec::new();
    for flag in &snapshot.flags {
        let mut note = |what: String| notes.push((flag.key.clone(), what));
        // Each feature is dropped at once: no document of every flag is held.
        drop(feature(snapshot, flag, &FlagState::default(), now, &mut note));
    }
    notes
}

/// Projects every flag of `snapshot` at `now`; `state(i)` is flag `i`'s persisted state.
pub fn project<'a>(snapshot: &'a Snapshot, state: impl Fn(usize) -> FlagState<'a>, now: DateTime<Utc>) -> Projection {
    let mut notes = Vec::new();
    let features: Vec<Value> = snapshot
        .flags
        .iter()
        .enumerate()
        .map(|(i, flag)| {
            let mut note = |what: String| notes.push((flag.key.clone(), what));
            feature(snapshot, flag, &state(i), now, &mut note)
        })
        .collect();
    let document = json!({
        "version": 2,
        "features": features,
        "segments": [],
        "query": {"environment": "default", "inlineSegmentConstraints": true},
        "meta": {"revisionId": revision_id(&snapshot.revision)},
    });
    Projection { document, notes }
}

/// Unleash's `meta.revisionId` is a number (Unleash Edge refuses anything else): the served
/// revision's first 52 bits, within what a JavaScript number holds exactly.
fn revision_id(revision: &str) -> u64 {
    let hex: String = revision.chars().filter(char::is_ascii_hexdigit).take(13).collect();
    u64::from_str_radix(&hex, 16).unwrap_or_default()
}

fn feature(
    snapshot: &Snapshot,
    flag: &Flag,
    state: &FlagState<'_>,
    now: DateTime<Utc>,
    note: &mut impl FnMut(String),
) -> Value {
    let mut forced_on = false;
    match state.override_ {
        Some(Override::Kill | Override::RolledBack) => return everyone(flag, flag.default, false),
        Some(Override::Variant(name)) => return everyone(flag, flag.variant_index(name).unwrap_or(flag.default), true),
        Some(Override::Value(v)) => return everyone_value(flag, v),
        Some(Override::Enable) => forced_on = true,
        None => {}
    }
    if !flag.enabled && !forced_on {
        return everyone(flag, flag.default, false);
    }
    let phase = flag.sunset.as_ref().and_then(|plan| plan.phase_at(now));
    if let Some(phase) = phase {
        if phase.actions.contains(&SunsetAction::ApiDisabled) {
            return everyone(flag, phase.shutdown, false);
        }
        if phase.actions.contains(&SunsetAction::RateLimiting) {
            note("its sunset rate limit is not applied by SDKs evaluating locally".to_owned());
        }
    }
    let dependencies = dependencies(snapshot, flag, note);
    let flagd_split =
        |s: &Strategy| matches!(s, Strategy::AbTest { hashing: crate::flags::snapshot::Hashing::Flagd, .. });
    if flag.strategy.as_ref().is_some_and(flagd_split)
        || flag.rules.iter().any(|r| matches!(&r.action, RuleAction::Strategy(s, _) if flagd_split(s)))
    {
        note(
            "an A/B split with `hashing: flagd`: Unleash's SDKs pick with Unleash's hash, so the split is left out"
                .to_owned(),
        );
    }
    if flag.is_static() {
        return with_dependencies(everyone(flag, flag.default, true), dependencies);
    }
    let steps = steps(flag, state, now);
    let safe_on = flag.kind == FlagKind::Boolean && flag.variants[flag.default].value == Value::Bool(true);
    if safe_on
        && flag.requires.is_empty()
        && let Some(strategies) = on_except(flag, &steps)
    {
        return with_dependencies(base(flag, !strategies.is_empty(), strategies), dependencies);
    }
    let mut strategies = Vec::new();
    let mut dropped_false = false;
    for step in &steps {
        if flag.kind == FlagKind::Boolean {
            let serves_true = match step.serve {
                Serve::Variant(i) => flag.variants[i].value == Value::Bool(true),
                Serve::Split(..) => false,
            };
            if !serves_true {
                dropped_false = true;
                continue;
            }
            if dropped_false {
                note("a step serving false comes before one serving true: Unleash enables a feature when any strategy does, so the false one is left out".to_owned());
                dropped_false = false;
            }
        }
        if let Some(s) = strategy(flag, step, note) {
            strategies.push(s);
        }
    }
    if safe_on {
        if dropped_false {
            note("its safe value is true and some contexts get false: Unleash cannot serve false to them (the feature is on for everyone)".to_owned());
        }
        if !flag.requires.is_empty() {
            note(
                "an unmet prerequisite serves its safe value true here, but disables the feature in Unleash".to_owned(),
            );
        }
        strategies.push(json!({"name": "default", "parameters": {}, "constraints": []}));
    }
    let enabled = !strategies.is_empty();
    with_dependencies(base(flag, enabled, strategies), dependencies)
}

/// A boolean flag that is on except where its one step serves `false` to everyone its
/// constraints admit: on where any of them fails, so one strategy per constraint, inverted (a
/// missing attribute fails a constraint in both, so it passes the inversion in both). `None` when
/// the flag is not of that shape or a constraint has no Unleash form.
fn on_except(flag: &Flag, steps: &[Step<'_>]) -> Option<Vec<Value>> {
    let [step] = steps else { return None };
    let off = matches!(step.serve, Serve::Variant(i) if flag.variants[i].value == Value::Bool(false));
    if !off || step.pin.is_some() || !matches!(step.gate, Gate::All) {
        return None;
    }
    step.constraints
        .iter()
        .map(|c| {
            let mut v = constraint(c).ok()?;
            v["inverted"] = json!(!c.inverted);
            Some(json!({"name": "default", "parameters": {}, "constraints": [v], "segments": [], "variants": []}))
        })
        .collect()
}

/// Unleash's name for a stickiness.
fn stickiness(s: &Stickiness) -> String {
    match s {
        Stickiness::Default => "default".to_owned(),
        Stickiness::Attribute(path) => context_name(&path.name).to_owned(),
    }
}

/// A context attribute as Unleash names it: custom fields live in `properties`, which Unleash
/// reads by the bare name.
fn context_name(attribute: &str) -> &str {
    attribute.strip_prefix("properties.").unwrap_or(attribute)
}

fn strategy(flag: &Flag, step: &Step<'_>, note: &mut impl FnMut(String)) -> Option<Value> {
    // A pin on toggled's default stickiness is matched on `userId`.
    let mut constraints: Vec<Value> = step
        .pin
        .iter()
        .map(|(attribute, values)| {
            let name = context_name(attribute.unwrap_or("userId"));
            json!({"contextName": name, "operator": "IN", "values": values, "inverted": false, "caseInsensitive": false})
        })
        .collect();
    for c in &step.constraints {
        match constraint(c) {
            Ok(v) => constraints.push(v),
            Err(why) => {
                note(format!("{why}: the strategy holding it is left out"));
                return None;
            }
        }
    }
    let (rollout, gate) = match step.gate {
        Gate::All => (100, None),
        Gate::Percentage(p, hash) => (p, Some(hash)),
    };
    let split = match &step.serve {
        // Unleash's SDKs pick with Unleash's hash: a flagd-hashed split is left out (and named).
        Serve::Split(_, _, crate::flags::snapshot::Hashing::Flagd) => return None,
        Serve::Split(_, hash, _) => Some(*hash),
        Serve::Variant(_) => None,
    };
    // The SDK hashes a strategy's share and its variants in the strategy's one group.
    if let (Some(g), Some(s)) = (gate, split)
        && g.group != s.group
    {
        note("a rule's share and its split hash in different groups: the strategy is left out".to_owned());
        return None;
    }
    let hash = gate.or(split);
    let group = hash.map_or(flag.key.as_str(), |h| h.group.as_str());
    let sticky = hash.map_or_else(|| "default".to_owned(), |h| stickiness(&h.stickiness));
    let split_sticky = split.map_or_else(|| sticky.clone(), |h| stickiness(&h.stickiness));
    let variants: Vec<Value> = match (&step.serve, flag.kind) {
        (_, FlagKind::Boolean) => Vec::new(),
        // The variant `disabled` is Unleash's answer without a variant.
        (Serve::Variant(i), FlagKind::Variant) if flag.variants[*i].name == DISABLED => Vec::new(),
        (Serve::Variant(i), FlagKind::Variant) => vec![variant(flag, *i, 1000, "fix", &sticky)],
        (Serve::Split(split, ..), FlagKind::Variant) => {
            split.iter().map(|(i, w)| variant(flag, *i, *w, "variable", &split_sticky)).collect()
        }
    };
    Some(json!({
        "name": "flexibleRollout",
        "parameters": {"rollout": rollout.to_string(), "stickiness": sticky, "groupId": group},
        "constraints": constraints,
        "variants": variants,
        "segments": [],
    }))
}

fn variant(flag: &Flag, idx: VariantIdx, weight: u32, weight_type: &str, stickiness: &str) -> Value {
    let v = &flag.variants[idx];
    json!({"name": v.name, "weight": weight, "weightType": weight_type, "stickiness": stickiness, "payload": payload(&v.value)})
}

/// A constraint in Unleash's shape, or why it has none.
fn constraint(c: &Constraint) -> Result<Value, String> {
    let name = context_name(&c.attribute.name);
    if name.contains('.') {
        return Err(format!("the nested attribute {:?} has no Unleash context field", c.attribute.name));
    }
    let number = |n: f64| if n.fract() == 0.0 && n.abs() < 1e15 { format!("{n:.0}") } else { n.to_string() };
    let ops = |op: NumOp, prefix: &str| {
        let suffix = match op {
            NumOp::Eq => "EQ",
            NumOp::Gt => "GT",
            NumOp::Gte => "GTE",
            NumOp::Lt => "LT",
            NumOp::Lte => "LTE",
        };
        format!("{prefix}_{suffix}")
    };
    let (operator, values, value) = match &c.operator {
        Operator::In(v) => ("IN".to_owned(), Some(v.clone()), None),
        Operator::NotIn(v) => ("NOT_IN".to_owned(), Some(v.clone()), None),
        Operator::StrContains(v) => ("STR_CONTAINS".to_owned(), Some(v.clone()), None),
        Operator::StrStartsWith(v) => ("STR_STARTS_WITH".to_owned(), Some(v.clone()), None),
        Operator::StrEndsWith(v) => ("STR_ENDS_WITH".to_owned(), Some(v.clone()), None),
        Operator::Regex(r) => ("REGEX".to_owned(), None, Some(r.as_str().to_owned())),
        Operator::Num(op, n) => (ops(*op, "NUM"), None, Some(number(*n))),
        Operator::DateAfter(d) => ("DATE_AFTER".to_owned(), None, Some(d.to_rfc3339())),
        Operator::DateBefore(d) => ("DATE_BEFORE".to_owned(), None, Some(d.to_rfc3339())),
        Operator::Semver(op, v) => (ops(*op, "SEMVER"), None, Some(v.to_string())),
        Operator::InCidr(nets) => {
            // One address as itself, a network as `address/prefix`.
            let texts = nets
                .iter()
                .map(|n| if n.prefix_len() == n.max_prefix_len() { n.addr().to_string() } else { n.to_string() })
                .collect();
            ("IN_CIDR".to_owned(), Some(texts), None)
        }
    };
    let mut out = Map::new();
    out.insert("contextName".into(), json!(name));
    out.insert("operator".into(), json!(operator));
    if let Some(values) = values {
        out.insert("values".into(), json!(values));
    }
    if let Some(value) = value {
        out.insert("value".into(), json!(value));
    }
    out.insert("inverted".into(), json!(c.inverted));
    out.insert("caseInsensitive".into(), json!(c.case_insensitive));
    Ok(Value::Object(out))
}

fn dependencies(snapshot: &Snapshot, flag: &Flag, note: &mut impl FnMut(String)) -> Vec<Value> {
    flag.requires
        .iter()
        .filter_map(|r| match &r.expect {
            Expect::Enabled(on) => Some(json!({"feature": r.key, "enabled": on})),
            Expect::Variant(name) => Some(json!({"feature": r.key, "enabled": true, "variants": [name]})),
            Expect::AnyVariant(names) => Some(json!({"feature": r.key, "enabled": true, "variants": names})),
            Expect::Value(v) => {
                let parent = snapshot.flags.get(r.index)?;
                match parent.variants.iter().find(|p| p.value == *v) {
                    Some(p) if parent.kind == FlagKind::Variant => {
                        Some(json!({"feature": r.key, "enabled": true, "variants": [p.name]}))
                    }
                    _ if *v == Value::Bool(true) => Some(json!({"feature": r.key, "enabled": true})),
                    _ if *v == Value::Bool(false) => Some(json!({"feature": r.key, "enabled": false})),
                    _ => {
                        note(format!(
                            "a prerequisite on the value {v} of {} has no Unleash dependency: left out",
                            r.key
                        ));
                        None
                    }
                }
            }
        })
        .collect()
}

fn base(flag: &Flag, enabled: bool, strategies: Vec<Value>) -> Value {
    json!({
        "name": flag.key,
        "type": "release",
        "description": flag.description,
        "project": "default",
        "enabled": enabled,
        "stale": false,
        "impressionData": false,
        "strategies": strategies,
        "variants": [],
        "dependencies": [],
    })
}

fn with_dependencies(mut feature: Value, dependencies: Vec<Value>) -> Value {
    feature["dependencies"] = Value::Array(dependencies);
    feature
}

/// One variant to everyone: `live` says whether it counts as on (toggled's reasons `STATIC`
/// and `OVERRIDE`) or as off (`DISABLED`, `ROLLED_BACK`, `SUNSET`).
fn everyone(flag: &Flag, idx: VariantIdx, live: bool) -> Value {
    let on = match flag.kind {
        FlagKind::Boolean => flag.variants[idx].value == Value::Bool(true),
        FlagKind::Variant => live,
    };
    if !on {
        return base(flag, false, Vec::new());
    }
    let variants = match flag.kind {
        FlagKind::Boolean => Vec::new(),
        FlagKind::Variant if flag.variants[idx].name == DISABLED => Vec::new(),
        FlagKind::Variant => vec![variant(flag, idx, 1000, "fix", "default")],
    };
    let strategy = json!({
        "name": "flexibleRollout",
        "parameters": {"rollout": "100", "stickiness": "default", "groupId": flag.key},
        "constraints": [],
        "variants": variants,
        "segments": [],
    });
    base(flag, true, vec![strategy])
}

/// A forced value to everyone (an override of `value`).
fn everyone_value(flag: &Flag, value: &Value) -> Value {
    match flag.kind {
        FlagKind::Boolean => {
            let on = *value == Value::Bool(true);
            let strategies =
                if on { vec![json!({"name": "default", "parameters": {}, "constraints": []})] } else { Vec::new() };
            base(flag, on, strategies)
        }
        FlagKind::Variant => {
            let name = flag.variants.iter().find(|v| v.value == *value).map_or("override", |v| v.name.as_str());
            let variant = json!({"name": name, "weight": 1000, "weightType": "fix", "stickiness": "default", "payload": payload(value)});
            let strategy = json!({
                "name": "flexibleRollout",
                "parameters": {"rollout": "100", "stickiness": "default", "groupId": flag.key},
                "constraints": [], "variants": [variant], "segments": [],
            });
            base(flag, true, vec![strategy])
        }
    }
}
