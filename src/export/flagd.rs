//! The served flags as a flagd flag definition file (`toggled export flagd`), for flagd's
//! in-process providers in file mode and for teams that run both. Pure: the snapshot and the
//! time in; the document and, per flag, what it cannot express exactly out.
//!
//! Each flag keeps its variants and default variant; `enabled: false` is `DISABLED`. Its
//! `targeting` is one JSONLogic `if` over toggled's steps in order (variant pins, rules, the
//! strategy; see `export::steps`), ending in `null` (flagd's default variant): each step's
//! constraints become a condition (a numeric comparison also checks the attribute is there,
//! since JSONLogic reads a missing one as 0; a date on `currentTime` becomes a bound on
//! `$flagd.timestamp`), and what it serves a variant name or a `fractional` split. A split
//! hashed `flagd` is exact; everything flagd computes differently is named in the notes and
//! exported as close as flagd allows: a percentage or an Unleash-hashed split as `fractional`
//! (other users fall inside), a share that does not end the targeting (flagd cannot fall through
//! after a split), prerequisites and sunset plans (flagd has neither), `REGEX`, `IN_CIDR` and
//! case-insensitive constraints and dates on other attributes (no such operators: the step is
//! left out), `DISABLED` (flagd answers the caller's default, toggled its default variant).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::steps::{Gate, Serve, Step, steps};
use crate::eval::FlagState;
use crate::flags::Snapshot;
use crate::flags::snapshot::{Constraint, Flag, HashSpec, Hashing, NumOp, Operator, Stickiness, VariantIdx};

/// The document and, per flag, what it could not express exactly.
#[derive(Debug)]
pub struct Projection {
    pub document: Value,
    pub notes: Vec<(String, String)>,
}

/// Projects every flag of `snapshot` at `now` (without a store's overrides).
pub fn project(snapshot: &Snapshot, now: DateTime<Utc>) -> Projection {
    let mut notes = Vec::new();
    let mut flags = Map::new();
    for flag in &snapshot.flags {
        let mut note = |what: String| {
            let entry = (flag.key.clone(), what);
            if !notes.contains(&entry) {
                notes.push(entry);
            }
        };
        flags.insert(flag.key.clone(), definition(flag, now, &mut note));
    }
    Projection { document: json!({"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": flags}), notes }
}

fn definition(flag: &Flag, now: DateTime<Utc>, note: &mut impl FnMut(String)) -> Value {
    let variants: Map<String, Value> = flag.variants.iter().map(|v| (v.name.clone(), v.value.clone())).collect();
    let mut out = json!({
        "state": if flag.enabled { "ENABLED" } else { "DISABLED" },
        "variants": variants,
        "defaultVariant": flag.variants[flag.default].name,
    });
    if flag.caller_fallback {
        // flagd answers the caller's default where no rule matches when there is no default.
        out["defaultVariant"] = Value::Null;
    } else if !flag.enabled {
        note("DISABLED: flagd answers the caller's default, toggled its default variant (`fallback: caller` answers as flagd)".to_owned());
    }
    if !flag.requires.is_empty() {
        note("prerequisites are left out: flagd has none".to_owned());
    }
    if flag.sunset.is_some() {
        note("its sunset plan is left out: flagd has none".to_owned());
    }
    let metadata: Map<String, Value> = flag
        .metadata
        .iter()
        .filter(|(_, v)| v.is_string() || v.is_number() || v.is_boolean())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !metadata.is_empty() {
        out["metadata"] = Value::Object(metadata);
    }
    let all = steps(flag, &FlagState::default(), now);
    let mut branches = Vec::new();
    let last = all.len().saturating_sub(1);
    for (i, step) in all.iter().enumerate() {
        let Some(condition) = condition(flag, step, note) else { continue };
        let Some(result) = result(flag, step, i == last, note) else { continue };
        branches.push(condition);
        branches.push(result);
    }
    if !branches.is_empty() {
        branches.push(Value::Null);
        out["targeting"] = json!({"if": branches});
    }
    out
}

/// What a step serves: a variant name or a `fractional` split.
fn result(flag: &Flag, step: &Step<'_>, last: bool, note: &mut impl FnMut(String)) -> Option<Value> {
    let name = |idx: VariantIdx| json!(flag.variants[idx].name);
    match (&step.gate, &step.serve) {
        (Gate::All, Serve::Variant(idx)) => Some(name(*idx)),
        (Gate::All, Serve::Split(split, hash, hashing)) => {
            if *hashing != Hashing::Flagd {
                note(
                    "an A/B split hashed as Unleash hashes becomes a fractional split: users change variants"
                        .to_owned(),
                );
            }
            let buckets: Vec<Value> = split.iter().map(|(i, w)| json!([flag.variants[*i].name, w])).collect();
            Some(fractional(flag, hash, buckets, note))
        }
        (Gate::Percentage(p, hash), serve) => {
            let Serve::Variant(idx) = serve else {
                note("a share in front of a split is left out: flagd's fractional cannot nest".to_owned());
                return None;
            };
            if !last {
                note(format!(
                    "a {p}% share before other steps: flagd cannot fall through after a split, so contexts outside it get the default variant"
                ));
            }
            note(format!("a {p}% share becomes a fractional split: flagd hashes differently, other users fall inside"));
            let buckets =
                vec![json!([flag.variants[*idx].name, p]), json!([flag.variants[flag.default].name, 100 - p])];
            Some(fractional(flag, hash, buckets, note))
        }
    }
}

/// A `fractional` over `buckets`, bucketing as `hash` says.
fn fractional(flag: &Flag, hash: &HashSpec, buckets: Vec<Value>, note: &mut impl FnMut(String)) -> Value {
    let attribute = match &hash.stickiness {
        Stickiness::Default => {
            note(
                "the default stickiness buckets by targetingKey only (toggled falls back to userId, sessionId)"
                    .to_owned(),
            );
            "targetingKey"
        }
        Stickiness::Attribute(path) => path.name.as_str(),
    };
    let mut args = Vec::with_capacity(buckets.len() + 1);
    if hash.group != flag.key || attribute != "targetingKey" {
        let key = if hash.group.is_empty() {
            json!({"var": attribute})
        } else {
            json!({"cat": [hash.group, {"var": attribute}]})
        };
        args.push(key);
    }
    args.extend(buckets);
    json!({"fractional": args})
}

/// A step's condition: its constraints and pin, all of which must hold.
fn condition(flag: &Flag, step: &Step<'_>, note: &mut impl FnMut(String)) -> Option<Value> {
    let mut all = Vec::new();
    if let Some((attribute, values)) = &step.pin {
        let list: Vec<Value> = values.iter().flat_map(|v| texts(v)).collect();
        all.push(json!({"in": [{"var": attribute.unwrap_or("targetingKey")}, list]}));
        if attribute.is_none() {
            note("variant pins match targetingKey only (toggled falls back to userId, sessionId)".to_owned());
        }
    }
    for c in &step.constraints {
        match constraint(c) {
            Ok(v) => all.push(v),
            Err(why) => {
                note(format!("{why}: the step holding it is left out"));
                return None;
            }
        }
    }
    let _ = flag;
    Some(match all.len() {
        0 => json!(true),
        1 => all.remove(0),
        _ => json!({"and": all}),
    })
}

/// A value as JSONLogic may meet it in a context: its text, and the number it spells (toggled
/// compares a number by its text).
fn texts(v: &str) -> Vec<Value> {
    let mut out = vec![json!(v)];
    if let Ok(n) = v.parse::<serde_json::Number>()
        && n.to_string() == v
    {
        out.push(Value::Number(n));
    }
    if v == "true" || v == "false" {
        out.push(json!(v == "true"));
    }
    out
}

/// JSONLogic's symbol for a comparison (`eq` is `==` for numbers, `=` in `sem_ver`).
fn symbol(op: NumOp, eq: &'static str) -> &'static str {
    match op {
        NumOp::Eq => eq,
        NumOp::Gt => ">",
        NumOp::Gte => ">=",
        NumOp::Lt => "<",
        NumOp::Lte => "<=",
    }
}

fn constraint(c: &Constraint) -> Result<Value, String> {
    let attr = c.attribute.name.as_str();
    let var = json!({"var": attr});
    let any = |op: &str, values: &[String]| {
        let list: Vec<Value> = values.iter().map(|v| json!({op: [var, v]})).collect();
        if list.len() == 1 { list.into_iter().next().unwrap_or_default() } else { json!({"or": list}) }
    };
    if c.case_insensitive && !matches!(c.operator, Operator::Num(..) | Operator::Semver(..)) {
        return Err(format!("a case-insensitive constraint on {attr}"));
    }
    let present = json!({"!==": [var, null]});
    let base = match &c.operator {
        Operator::In(values) => json!({"in": [var, values.iter().flat_map(|v| texts(v)).collect::<Vec<_>>()]}),
        Operator::NotIn(values) => {
            json!({"!": {"in": [var, values.iter().flat_map(|v| texts(v)).collect::<Vec<_>>()]}})
        }
        Operator::StrContains(values) => {
            let list: Vec<Value> = values.iter().map(|v| json!({"in": [v, var]})).collect();
            json!({"and": [present, {"or": list}]})
        }
        Operator::StrStartsWith(values) => any("starts_with", values),
        Operator::StrEndsWith(values) => any("ends_with", values),
        Operator::Num(op, n) => json!({"and": [present, {symbol(*op, "=="): [var, n]}]}),
        Operator::Semver(op, v) => {
            json!({"sem_ver": [var, symbol(*op, "="), v.to_string()]})
        }
        Operator::DateAfter(d) | Operator::DateBefore(d) if attr == "currentTime" => {
            // toggled: now > d (or <); flagd's timestamp is whole seconds.
            let after = matches!(c.operator, Operator::DateAfter(_));
            let secs = d.timestamp();
            let whole = d.timestamp_subsec_nanos() == 0;
            let ts = json!({"var": "$flagd.timestamp"});
            match (after, whole) {
                (true, true) => json!({">=": [ts, secs]}),
                (true, false) => json!({">=": [ts, secs + 1]}),
                (false, true) => json!({"<": [ts, secs]}),
                (false, false) => json!({"<=": [ts, secs]}),
            }
        }
        Operator::DateAfter(_) | Operator::DateBefore(_) => {
            return Err(format!("a date on {attr} (flagd compares only $flagd.timestamp as a time)"));
        }
        Operator::Regex(_) => return Err(format!("REGEX on {attr} (flagd has no such operator)")),
        Operator::InCidr(_) => return Err(format!("IN_CIDR on {attr} (flagd has no such operator)")),
    };
    Ok(if c.inverted { json!({"!": base}) } else { base })
}
