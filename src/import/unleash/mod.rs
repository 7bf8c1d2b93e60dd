//! Unleash's client API document (`GET /api/client/features`: features, strategies with their
//! parameters, constraints, segments and variants, feature variants with payloads and
//! overrides, dependencies; or the delta API's events) into a toggled flag file that answers
//! what Unleash's SDKs answer for the same context. toggled hashes exactly like Unleash
//! (murmur3, seeds 0 and 86028157, `group:stickiness`), so users keep their buckets.
//!
//! - A feature without variants (its own or its strategies') is a boolean flag; each active
//!   strategy becomes a rule (Unleash enables a feature when any strategy does); no strategies
//!   at all means on for everyone.
//! - A feature with variants is a variant flag whose rules are its strategies in order, each
//!   serving what Unleash serves when that strategy is the first to enable the feature: the
//!   strategy's own variants (an A/B split in the strategy's group, gated by its rollout), else
//!   the feature's variants (their overrides, then their split grouped by the feature name),
//!   else the variant `disabled` (Unleash's answer of an enabled feature without variants).
//!   Contexts no strategy admits get `disabled` too, as the flag's default. Payloads keep
//!   their type: strings, numbers, JSON.
//! - Custom context fields are read from `properties.<name>`, as Unleash's context holds them.
//! - Dependencies become `requires`, with Unleash's rules: a dependency on a feature that is
//!   missing or has dependencies of its own never holds (the feature is off); a dependency on
//!   variants holds when the parent is enabled with one of them.
//! - Values Unleash tolerates are translated with Unleash's answer (`constraint.rs`).

mod constraint;

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ImportError, Translation, ordered};
use constraint::{ConstraintIn, attribute, nobody};

/// The name of Unleash's answer without a variant (and toggled's safe variant for it).
const DISABLED: &str = crate::export::unleash::DISABLED;

#[derive(Debug, Default, Deserialize)]
struct Document {
    #[serde(default)]
    features: Vec<Feature>,
    #[serde(default)]
    segments: Vec<Segment>,
    /// The delta API's form: a hydration, then changes.
    events: Option<Vec<Event>>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
enum Event {
    Hydration {
        #[serde(default)]
        features: Vec<Feature>,
        #[serde(default)]
        segments: Vec<Segment>,
    },
    FeatureUpdated {
        feature: Feature,
    },
    FeatureRemoved {
        #[serde(rename = "featureName")]
        feature_name: String,
    },
    SegmentUpdated {
        segment: Segment,
    },
    SegmentRemoved {
        #[serde(rename = "segmentId")]
        segment_id: i64,
    },
}

#[derive(Debug, Deserialize)]
struct Feature {
    name: String,
    #[serde(default = "yes")]
    enabled: bool,
    description: Option<String>,
    #[serde(default)]
    strategies: Vec<StrategyIn>,
    #[serde(default)]
    variants: Vec<VariantIn>,
    #[serde(default)]
    dependencies: Vec<DependencyIn>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct StrategyIn {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    #[serde(default)]
    constraints: Vec<ConstraintIn>,
    #[serde(default)]
    segments: Vec<i64>,
    #[serde(default)]
    variants: Vec<VariantIn>,
    #[serde(default)]
    disabled: bool,
}

#[derive(Debug, Deserialize)]
struct VariantIn {
    name: String,
    #[serde(default)]
    weight: u64,
    payload: Option<PayloadIn>,
    stickiness: Option<String>,
    #[serde(default)]
    overrides: Vec<OverrideIn>,
}

#[derive(Debug, Deserialize)]
struct PayloadIn {
    #[serde(rename = "type", default)]
    kind: String,
    value: Value,
}

#[derive(Debug, Deserialize)]
struct OverrideIn {
    #[serde(rename = "contextName")]
    context_name: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct DependencyIn {
    feature: String,
    enabled: Option<bool>,
    variants: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct Segment {
    id: i64,
    #[serde(default)]
    constraints: Vec<ConstraintIn>,
}

impl Document {
    /// The features and segments after the delta API's events, in order.
    fn resolved(mut self) -> Self {
        for event in self.events.take().unwrap_or_default() {
            match event {
                Event::Hydration { features, segments } => {
                    self.features = features;
                    self.segments = segments;
                }
                Event::FeatureUpdated { feature } => {
                    self.features.retain(|f| f.name != feature.name);
                    self.features.push(feature);
                }
                Event::FeatureRemoved { feature_name } => self.features.retain(|f| f.name != feature_name),
                Event::SegmentUpdated { segment } => {
                    self.segments.retain(|s| s.id != segment.id);
                    self.segments.push(segment);
                }
                Event::SegmentRemoved { segment_id } => self.segments.retain(|s| s.id != segment_id),
            }
        }
        self
    }
}

fn segment_name(id: i64) -> String {
    format!("segment_{}", id.unsigned_abs())
}

/// Collects, for one feature, what cannot be expressed and what Unleash's tolerance decided.
struct Report<'a> {
    flag: &'a str,
    unsupported: &'a mut Vec<(String, String)>,
    notes: &'a mut Vec<String>,
}

impl Report<'_> {
    fn add(&mut self, what: impl Into<String>) {
        self.unsupported.push((self.flag.to_owned(), what.into()));
    }

    fn note(&mut self, what: impl Into<String>) {
        self.notes.push(format!("{}: {}", self.flag, what.into()));
    }
}

fn param(p: &Map<String, Value>, name: &str) -> Option<String> {
    p.get(name).map(|v| match v {
        Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    })
}

/// A comma-separated parameter (`userIds`, `IPs`) as a list.
fn list_param(p: &Map<String, Value>, name: &str) -> Vec<String> {
    param(p, name).unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn percentage(p: &Map<String, Value>, name: &str) -> Option<u64> {
    param(p, name)?.parse::<f64>().ok().map(|n| n.clamp(0.0, 100.0).round() as u64)
}

/// One strategy as toggled sees it: the rule's name, its constraints and its share (`None`:
/// everyone the constraints admit; else `percentage`, `stickiness`, `group_id` of a rule).
struct Admits {
    name: String,
    constraints: Vec<Value>,
    share: Option<Map<String, Value>>,
}

impl Admits {
    /// The rule serving `what` (`serve`, `variant` or `rollout_strategy`) to those admitted.
    fn rule(&self, suffix: &str, extra: Vec<Value>, what: (&str, Value)) -> Value {
        let mut r = Map::new();
        r.insert("name".into(), json!(format!("{}{suffix}", self.name)));
        let constraints: Vec<Value> = self.constraints.iter().cloned().chain(extra).collect();
        if !constraints.is_empty() {
            r.insert("constraints".into(), Value::Array(constraints));
        }
        if let Some(share) = &self.share {
            r.extend(share.clone());
        }
        r.insert(what.0.into(), what.1);
        Value::Object(r)
    }
}

/// Who strategy `index` admits, or `None` when it admits nobody or cannot be expressed.
fn admits(index: usize, s: &StrategyIn, segments: &[i64], report: &mut Report<'_>) -> Option<Admits> {
    if s.disabled {
        return None;
    }
    let name = format!("{}-{}", s.name, index + 1);
    let mut constraints = Vec::new();
    for id in &s.segments {
        if segments.contains(id) {
            constraints.push(json!({"segment": segment_name(*id)}));
        } else {
            // Unleash's SDKs read a missing segment as a constraint that fails.
            report.note(format!("{name} names segment {id}, which the document does not hold: it enables nobody"));
            constraints.push(nobody("userId", false));
        }
    }
    for c in &s.constraints {
        let (value, note) = constraint::translate(c);
        if let Some(n) = note {
            report.note(format!("{name}: {n}"));
        }
        constraints.push(value);
    }
    let p = &s.parameters;
    let share = |pct: Option<u64>, stickiness: &str, group: Option<String>, report: &mut Report<'_>| {
        let pct = pct.unwrap_or(0);
        match (pct, stickiness) {
            (0, _) => return Err(()),
            // Unleash's default stickiness falls back to a random value, so 100% is everyone.
            (100, "default" | "" | "random") => return Ok(None),
            (_, "random") => {
                report.add(format!("{name}: random stickiness at {pct}% (every request would roll again)"));
                return Err(());
            }
            _ => {}
        }
        let mut m = Map::new();
        m.insert("percentage".into(), json!(pct));
        if !matches!(stickiness, "default" | "") {
            m.insert("stickiness".into(), json!(attribute(stickiness)));
        }
        if let Some(g) = group.filter(|g| !g.is_empty()) {
            m.insert("group_id".into(), json!(g));
        }
        Ok(Some(m))
    };
    let share = match s.name.as_str() {
        "default" => Ok(None),
        "userWithId" => {
            constraints.push(json!({"attribute": "userId", "operator": "IN", "values": list_param(p, "userIds")}));
            Ok(None)
        }
        "remoteAddress" => {
            let ips = ConstraintIn {
                context_name: "remoteAddress".into(),
                operator: "IN_CIDR".into(),
                values: list_param(p, "IPs").into_iter().map(Value::String).collect(),
                value: None,
                case_insensitive: false,
                inverted: false,
            };
            let (value, note) = constraint::translate(&ips);
            if let Some(n) = note {
                report.note(format!("{name}: {n}"));
            }
            constraints.push(value);
            Ok(None)
        }
        "flexibleRollout" => share(
            percentage(p, "rollout"),
            &param(p, "stickiness").unwrap_or_else(|| "default".into()),
            param(p, "groupId"),
            report,
        ),
        "gradualRolloutUserId" => share(percentage(p, "percentage"), "userId", param(p, "groupId"), report),
        "gradualRolloutSessionId" => share(percentage(p, "percentage"), "sessionId", param(p, "groupId"), report),
        "gradualRolloutRandom" => share(percentage(p, "percentage"), "random", None, report),
        "applicationHostname" => {
            report.add(format!("{name}: applicationHostname depends on the SDK's host, not the context"));
            Err(())
        }
        other => {
            report.add(format!("{name}: custom strategy {other:?}"));
            Err(())
        }
    };
    Some(Admits { name, constraints, share: share.ok()? })
}

/// A payload as a toggled value: strings as they are, numbers and JSON parsed when they give
/// back the same text, so the SDKs get the payload Unleash would send.
fn payload_value(v: &VariantIn, report: &mut Report<'_>) -> Value {
    let Some(p) = &v.payload else { return json!(v.name) };
    let text = match &p.value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match p.kind.as_str() {
        "number" => match serde_json::from_str::<serde_json::Number>(text.trim()) {
            Ok(n) if n.to_string() == text => Value::Number(n),
            _ => {
                report.note(format!("variant {}: number payload {text:?} is served as a string", v.name));
                Value::String(text)
            }
        },
        "json" => match serde_json::from_str::<Value>(&text) {
            Ok(value) if !value.is_string() && !value.is_number() => value,
            _ => {
                report.note(format!("variant {}: JSON payload {text:?} is served as a string", v.name));
                Value::String(text)
            }
        },
        _ => Value::String(text),
    }
}

/// The A/B split of `variants` (weights out of 1000), or `None` when no weight is positive.
fn split(variants: &[VariantIn], group: &str, stickiness: Option<&str>, report: &mut Report<'_>) -> Option<Value> {
    let weights: Vec<(String, Value)> =
        variants.iter().filter(|v| v.weight > 0).map(|v| (v.name.clone(), json!(v.weight))).collect();
    if weights.is_empty() {
        return None;
    }
    let mut s = json!({"type": "ab_test", "traffic_split": ordered(weights), "group_id": group});
    match stickiness.unwrap_or("default") {
        "default" | "" => {}
        "random" => report.add("variant stickiness random (every request would pick again)"),
        field => s["stickiness"] = json!(attribute(field)),
    }
    Some(s)
}

/// What the SDK answers for a parent when every one of `features` is known.
struct Parents<'a> {
    features: HashMap<&'a str, &'a Feature>,
}

impl Parents<'_> {
    fn has_variants(f: &Feature) -> bool {
        !f.variants.is_empty() || f.strategies.iter().any(|s| !s.disabled && !s.variants.is_empty())
    }

    /// The `requires` of `feature`, or `None` when a dependency can never hold.
    fn requires(&self, feature: &Feature, report: &mut Report<'_>) -> Option<Vec<Value>> {
        let mut out = Vec::new();
        for d in &feature.dependencies {
            let Some(parent) = self.features.get(d.feature.as_str()) else {
                report.note(format!("depends on {}, which the document does not hold: off, as in Unleash", d.feature));
                return None;
            };
            if !parent.dependencies.is_empty() {
                report.note(format!(
                    "depends on {}, which has dependencies of its own: off, as in Unleash (one level only)",
                    d.feature
                ));
                return None;
            }
            let wanted = d.variants.as_deref().unwrap_or_default();
            if d.enabled == Some(false) {
                out.push(json!({"flag": d.feature, "enabled": false}));
            } else if wanted.is_empty() {
                out.push(json!({"flag": d.feature, "enabled": true}));
            } else if Self::has_variants(parent) {
                // Unleash: the parent is enabled and answers one of these variants.
                out.push(json!({"flag": d.feature, "enabled": true}));
                let names = variant_names(parent);
                let known: Vec<&String> = wanted.iter().filter(|w| names.contains(&w.as_str())).collect();
                if known.is_empty() {
                    report.note(format!("depends on variants {wanted:?} {} never answers: off", d.feature));
                    return None;
                }
                out.push(json!({"flag": d.feature, "variants": known}));
            } else if wanted.iter().any(|w| w == DISABLED) {
                // A parent without variants answers `disabled` whenever it is enabled.
                out.push(json!({"flag": d.feature, "enabled": true}));
            } else {
                report.note(format!("depends on variants {wanted:?} of {}, which has none: off", d.feature));
                return None;
            }
        }
        Some(out)
    }
}

/// Every variant name a feature can answer, `disabled` first.
fn variant_names(f: &Feature) -> Vec<&str> {
    let mut names = vec![DISABLED];
    for v in f.strategies.iter().filter(|s| !s.disabled).flat_map(|s| &s.variants).chain(&f.variants) {
        if !names.contains(&v.name.as_str()) {
            names.push(&v.name);
        }
    }
    names
}

/// The rules of a feature with variants: per strategy, what Unleash serves when it decides.
fn variant_rules(f: &Feature, admitted: &[(usize, Admits)], report: &mut Report<'_>) -> Vec<Value> {
    let mut rules = Vec::new();
    for (i, a) in admitted {
        // `usize::MAX`: no strategies at all, the feature's variants decide.
        let (variants, group, stickiness) = match f.strategies.get(*i).filter(|s| !s.variants.is_empty()) {
            Some(s) => (
                &s.variants,
                param(&s.parameters, "groupId").unwrap_or_else(|| f.name.clone()),
                s.variants[0].stickiness.clone().or_else(|| param(&s.parameters, "stickiness")),
            ),
            None => (&f.variants, f.name.clone(), f.variants.first().and_then(|v| v.stickiness.clone())),
        };
        for v in variants {
            for o in &v.overrides {
                let on = json!({"attribute": attribute(&o.context_name), "operator": "IN", "values": o.values});
                let suffix = format!("-override-{}-{}", v.name, o.context_name);
                rules.push(a.rule(&suffix, vec![on], ("variant", json!(v.name))));
            }
        }
        match split(variants, &group, stickiness.as_deref(), report) {
            Some(strategy) => {
                rules.push(a.rule("", Vec::new(), ("rollout_strategy", strategy)));
                // Unleash picks at random when the context lacks the stickiness value; the
                // feature is enabled either way: here the first variant is served.
                let first = variants.iter().find(|v| v.weight > 0).map_or(DISABLED, |v| v.name.as_str());
                rules.push(a.rule("-unhashable", Vec::new(), ("variant", json!(first))));
            }
            None => rules.push(a.rule("", Vec::new(), ("variant", json!(DISABLED)))),
        }
    }
    if rules.iter().any(|r| r.get("rollout_strategy").is_some()) {
        report.note(
            "a context without the variants' stickiness value gets the first variant (Unleash picks one at random)",
        );
    }
    rules
}

/// The variants of a variant flag: `disabled` and every name once, with its payload.
fn variant_values(f: &Feature, report: &mut Report<'_>) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    for v in f.strategies.iter().filter(|s| !s.disabled).flat_map(|s| &s.variants).chain(&f.variants) {
        let value = payload_value(v, report);
        match out.iter().find(|(name, _)| *name == v.name) {
            None => out.push((v.name.clone(), value)),
            Some((_, known)) if *known == value => {}
            Some(_) => report.add(format!("variant {} has two payloads (the first is served)", v.name)),
        }
    }
    // A flag's values share one type: mixed payloads are served as their text.
    let kind = |v: &Value| std::mem::discriminant(v);
    if out.windows(2).any(|w| kind(&w[0].1) != kind(&w[1].1)) {
        report.note("payloads of different types are all served as strings");
        for (_, v) in &mut out {
            if !v.is_string() {
                *v = Value::String(v.to_string());
            }
        }
    }
    // `disabled` is never sent as a payload; its value only has to share the type.
    let zero = match out.first().map(|(_, v)| v) {
        Some(Value::Number(_)) => json!(0),
        Some(Value::Object(_)) => json!({}),
        Some(Value::Array(_)) => json!([]),
        Some(Value::Bool(_)) => json!(false),
        _ => json!(""),
    };
    out.retain(|(name, _)| name != DISABLED);
    out.insert(0, (DISABLED.to_owned(), zero));
    out
}

/// Translates an Unleash client features document (or the delta API's events).
pub fn translate(text: &str) -> Result<Translation, ImportError> {
    let doc: Document =
        serde_json::from_str(text).map_err(|e| ImportError(format!("not an Unleash client features document: {e}")))?;
    let doc = doc.resolved();
    let known: Vec<i64> = doc.segments.iter().map(|s| s.id).collect();
    let mut unsupported = Vec::new();
    let mut notes = Vec::new();
    let mut segments = Map::new();
    for s in &doc.segments {
        let mut report = Report { flag: "(segments)", unsupported: &mut unsupported, notes: &mut notes };
        let list: Vec<Value> = s
            .constraints
            .iter()
            .map(|c| {
                let (value, note) = constraint::translate(c);
                if let Some(n) = note {
                    report.note(format!("segment {}: {n}", s.id));
                }
                value
            })
            .collect();
        segments.insert(segment_name(s.id), Value::Array(list));
    }
    let parents = Parents { features: doc.features.iter().map(|f| (f.name.as_str(), f)).collect() };
    let mut flags: Vec<(String, Value)> = Vec::new();
    for f in &doc.features {
        let mut report = Report { flag: &f.name, unsupported: &mut unsupported, notes: &mut notes };
        let admitted: Vec<(usize, Admits)> = if f.strategies.is_empty() {
            // No strategies: on for every context, whatever it holds.
            vec![(usize::MAX, Admits { name: "everyone".into(), constraints: Vec::new(), share: None })]
        } else {
            f.strategies.iter().enumerate().filter_map(|(i, s)| Some((i, admits(i, s, &known, &mut report)?))).collect()
        };
        let requires = parents.requires(f, &mut report);
        let mut flag = Map::new();
        if let Some(d) = &f.description {
            flag.insert("description".into(), json!(d));
        }
        if !f.enabled || requires.is_none() {
            flag.insert("enabled".into(), json!(false));
        }
        let variant = Parents::has_variants(f);
        if variant {
            flag.insert("type".into(), json!("variant"));
            flag.insert("variants".into(), ordered(variant_values(f, &mut report)));
            flag.insert("default_variant".into(), json!(DISABLED));
        } else {
            flag.insert("default_value".into(), json!(false));
        }
        if let Some(list) = requires.filter(|r| !r.is_empty()) {
            flag.insert("requires".into(), Value::Array(list));
        }
        let rules = if variant {
            variant_rules(f, &admitted, &mut report)
        } else {
            admitted.iter().map(|(_, a)| a.rule("", Vec::new(), ("serve", json!(true)))).collect()
        };
        if rules.is_empty() && variant {
            // No strategy can enable it; a variant flag without rules would serve its default to
            // everyone as a live answer.
            flag.insert("enabled".into(), json!(false));
        }
        flag.insert("rules".into(), Value::Array(rules));
        flags.push((f.name.clone(), Value::Object(flag)));
    }
    if doc.features.iter().any(|f| f.strategies.iter().any(|s| s.name == "flexibleRollout")) {
        notes.push(
            "Unleash's default stickiness falls back to a random value when a context has neither userId nor \
             sessionId; toggled (targetingKey, userId, sessionId) leaves such a context outside a share below \
             100% instead."
                .to_owned(),
        );
    }
    let mut file = Map::new();
    file.insert("feature_flags".into(), ordered(flags));
    if !segments.is_empty() {
        file.insert("segments".into(), Value::Object(segments));
    }
    let header = "# Imported from an Unleash client features document by `toggled import unleash`.\n";
    Ok(Translation::new(header, Value::Object(file), unsupported, notes))
}
