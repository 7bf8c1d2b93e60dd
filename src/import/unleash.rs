//! Unleash's client API document (`GET /api/client/features`: features, strategies with their
//! parameters, constraints, segments, variants with payloads and overrides, dependencies) into a
//! toggled flag file that answers the same for the same context. toggled hashes exactly like
//! Unleash (murmur3, seeds 0 and 86028157, `group:stickiness`), so users keep their buckets.
//!
//! - A feature without variants is a boolean flag; each active strategy becomes a rule (Unleash
//!   enables a feature when any strategy does); no strategies at all means on for everyone.
//! - A feature with variants is a variant flag (payload values are strings, as Unleash delivers
//!   them; no payload serves the variant's name; `disabled` is the safe variant) that requires a
//!   boolean `<name>.enabled` flag holding the strategies when any strategy could leave someone
//!   out; variant overrides become rules; the weights become an A/B split grouped by the feature
//!   name.
//! - Custom context fields are read from `properties.<name>`, as Unleash's context holds them.
//! - Dependencies become `requires`.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ImportError, Translation, ordered, to_yaml};

#[derive(Debug, Deserialize)]
struct Document {
    #[serde(default)]
    features: Vec<Feature>,
    #[serde(default)]
    segments: Vec<Segment>,
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
struct ConstraintIn {
    #[serde(rename = "contextName")]
    context_name: String,
    operator: String,
    #[serde(default)]
    values: Vec<Value>,
    value: Option<Value>,
    #[serde(default, rename = "caseInsensitive")]
    case_insensitive: bool,
    #[serde(default)]
    inverted: bool,
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

/// Context fields Unleash keeps at the top level; every other field is a property.
const STANDARD_FIELDS: [&str; 6] = ["userId", "sessionId", "remoteAddress", "environment", "appName", "currentTime"];

const OPERATORS: [&str; 16] = [
    "IN",
    "NOT_IN",
    "STR_CONTAINS",
    "STR_STARTS_WITH",
    "STR_ENDS_WITH",
    "NUM_EQ",
    "NUM_GT",
    "NUM_GTE",
    "NUM_LT",
    "NUM_LTE",
    "DATE_AFTER",
    "DATE_BEFORE",
    "SEMVER_EQ",
    "SEMVER_GT",
    "SEMVER_LT",
    "IN_CIDR",
];

fn attribute(field: &str) -> String {
    if STANDARD_FIELDS.contains(&field) { field.to_owned() } else { format!("properties.{field}") }
}

fn segment_name(id: i64) -> String {
    format!("segment_{}", id.unsigned_abs())
}

/// Collects what a feature cannot express.
struct Report<'a> {
    flag: &'a str,
    unsupported: &'a mut Vec<(String, String)>,
}

impl Report<'_> {
    fn add(&mut self, what: impl Into<String>) {
        self.unsupported.push((self.flag.to_owned(), what.into()));
    }
}

fn constraint(c: &ConstraintIn, report: &mut Report<'_>) -> Option<Value> {
    if !OPERATORS.contains(&c.operator.as_str()) {
        report.add(format!("constraint operator {} on {}", c.operator, c.context_name));
        return None;
    }
    let mut out = json!({"attribute": attribute(&c.context_name), "operator": c.operator});
    match &c.value {
        Some(v) if c.values.is_empty() => out["value"] = scalar(v),
        _ => out["values"] = Value::Array(c.values.iter().map(scalar).collect()),
    }
    if c.case_insensitive {
        out["case_insensitive"] = json!(true);
    }
    if c.inverted {
        out["inverted"] = json!(true);
    }
    Some(out)
}

/// Unleash sends values as strings; numbers and booleans are kept as their text.
fn scalar(v: &Value) -> Value {
    match v {
        Value::String(_) | Value::Number(_) => v.clone(),
        other => Value::String(other.to_string()),
    }
}

fn param(p: &Map<String, Value>, name: &str) -> Option<String> {
    p.get(name).map(|v| match v {
        Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    })
}

/// A comma-separated parameter (`userIds`, `IPs`) as a list.
fn list_param(p: &Map<String, Value>, name: &str) -> Vec<Value> {
    param(p, name).unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| json!(s)).collect()
}

fn percentage(p: &Map<String, Value>, name: &str) -> Option<u64> {
    param(p, name)?.parse::<f64>().ok().map(|n| n.clamp(0.0, 100.0).round() as u64)
}

/// The constraints of a strategy: its segments' (by reference), then its own.
fn strategy_constraints(s: &StrategyIn, known: &[i64], report: &mut Report<'_>) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    for id in &s.segments {
        if !known.contains(id) {
            report.add(format!("strategy {} names segment {id}, which the document does not hold", s.name));
            return None;
        }
        out.push(json!({"segment": segment_name(*id)}));
    }
    for c in &s.constraints {
        out.push(constraint(c, report)?);
    }
    Some(out)
}

/// One strategy as a rule (`None` when it cannot be expressed or can never enable anyone).
fn rule(index: usize, s: &StrategyIn, known: &[i64], report: &mut Report<'_>) -> Option<Value> {
    if s.disabled {
        return None;
    }
    let mut constraints = strategy_constraints(s, known, report)?;
    let name = format!("{}-{}", s.name, index + 1);
    let p = &s.parameters;
    let rollout = |pct: Option<u64>, stickiness: &str, group: Option<String>, report: &mut Report<'_>| {
        let pct = pct.unwrap_or(0);
        let mut r = json!({"name": name, "percentage": pct});
        match stickiness {
            "default" | "" => {}
            "random" if pct == 0 || pct == 100 => {}
            "random" => {
                report.add(format!("{name}: random stickiness at {pct}% (every request would roll again)"));
                return None;
            }
            field => r["stickiness"] = json!(attribute(field)),
        }
        if let Some(g) = group.filter(|g| !g.is_empty()) {
            r["group_id"] = json!(g);
        }
        Some(r)
    };
    let mut r = match s.name.as_str() {
        "default" => json!({"name": name, "serve": true}),
        "userWithId" => {
            constraints.push(json!({"attribute": "userId", "operator": "IN", "values": list_param(p, "userIds")}));
            json!({"name": name, "serve": true})
        }
        "flexibleRollout" => rollout(
            percentage(p, "rollout"),
            &param(p, "stickiness").unwrap_or_else(|| "default".into()),
            param(p, "groupId"),
            report,
        )?,
        "gradualRolloutUserId" => rollout(percentage(p, "percentage"), "userId", param(p, "groupId"), report)?,
        "gradualRolloutSessionId" => rollout(percentage(p, "percentage"), "sessionId", param(p, "groupId"), report)?,
        "gradualRolloutRandom" => rollout(percentage(p, "percentage"), "random", None, report)?,
        "remoteAddress" => {
            constraints
                .push(json!({"attribute": "remoteAddress", "operator": "IN_CIDR", "values": list_param(p, "IPs")}));
            json!({"name": name, "serve": true})
        }
        "applicationHostname" => {
            report.add(format!("{name}: applicationHostname depends on the SDK's host, not the context"));
            return None;
        }
        other => {
            report.add(format!("{name}: custom strategy {other:?}"));
            return None;
        }
    };
    if !s.variants.is_empty() {
        report.add(format!("{name}: strategy variants (the feature's variants are used instead)"));
    }
    // A random rollout at 100% serves everyone; at 0% it is no rule at all.
    if r.get("percentage") == Some(&json!(0)) {
        return None;
    }
    if r.get("percentage") == Some(&json!(100)) && r.get("stickiness").is_none() && s.name == "gradualRolloutRandom" {
        r = json!({"name": name, "serve": true});
    }
    if !constraints.is_empty() {
        r["constraints"] = Value::Array(constraints);
    }
    Some(r)
}

/// Whether the strategies enable everyone (so a variant feature needs no `.enabled` helper).
fn everyone(feature: &Feature) -> bool {
    feature.strategies.is_empty()
        || feature.strategies.iter().any(|s| {
            !s.disabled
                && s.constraints.is_empty()
                && s.segments.is_empty()
                && (s.name == "default"
                    || (s.name == "flexibleRollout" && percentage(&s.parameters, "rollout") == Some(100)))
        })
}

fn requires(feature: &Feature, report: &mut Report<'_>) -> Vec<Value> {
    let mut out = Vec::new();
    for d in &feature.dependencies {
        match (d.enabled, d.variants.as_deref()) {
            (Some(false), _) => out.push(json!({"flag": d.feature, "enabled": false})),
            (_, Some([one])) => out.push(json!({"flag": d.feature, "variant": one})),
            (_, Some(many)) if many.len() > 1 => {
                report.add(format!("dependency on {} with any of {} variants", d.feature, many.len()));
            }
            _ => out.push(json!({"flag": d.feature, "enabled": true})),
        }
    }
    out
}

/// Translates an Unleash client features document.
pub fn translate(text: &str) -> Result<Translation, ImportError> {
    let doc: Document =
        serde_json::from_str(text).map_err(|e| ImportError(format!("not an Unleash client features document: {e}")))?;
    let known: Vec<i64> = doc.segments.iter().map(|s| s.id).collect();
    let mut unsupported = Vec::new();
    let mut notes = Vec::new();
    let mut segments = Map::new();
    for s in &doc.segments {
        let mut report = Report { flag: "(segments)", unsupported: &mut unsupported };
        let list: Option<Vec<Value>> = s.constraints.iter().map(|c| constraint(c, &mut report)).collect();
        segments.insert(segment_name(s.id), Value::Array(list.unwrap_or_default()));
    }
    let mut flags: Vec<(String, Value)> = Vec::new();
    for f in &doc.features {
        let mut report = Report { flag: &f.name, unsupported: &mut unsupported };
        let rules: Vec<Value> =
            f.strategies.iter().enumerate().filter_map(|(i, s)| rule(i, s, &known, &mut report)).collect();
        let requires = requires(f, &mut report);
        let mut flag = Map::new();
        if let Some(d) = &f.description {
            flag.insert("description".into(), json!(d));
        }
        if !f.enabled {
            flag.insert("enabled".into(), json!(false));
        }
        if f.variants.is_empty() {
            flag.insert("default_value".into(), json!(false));
            if !requires.is_empty() {
                flag.insert("requires".into(), Value::Array(requires));
            }
            if f.strategies.is_empty() {
                // No strategies: on for every context, whatever it holds.
                flag.insert("rules".into(), json!([{"name": "everyone", "serve": true}]));
            } else {
                flag.insert("rules".into(), Value::Array(rules));
            }
            flags.push((f.name.clone(), Value::Object(flag)));
            continue;
        }
        // A variant feature.
        let mut variants = vec![("disabled".to_owned(), json!(""))];
        let mut split = Vec::new();
        for v in &f.variants {
            let value = match &v.payload {
                Some(p) => Value::String(match &p.value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
                None => json!(v.name),
            };
            variants.push((v.name.clone(), value));
            if v.weight > 0 {
                split.push((v.name.clone(), json!(v.weight)));
            }
        }
        flag.insert("type".into(), json!("variant"));
        flag.insert("variants".into(), ordered(variants));
        flag.insert("default_variant".into(), json!("disabled"));
        let mut all_requires = requires;
        if !everyone(f) {
            let helper = format!("{}.enabled", f.name);
            let mut h = Map::new();
            h.insert("description".into(), json!(format!("Whether {} is enabled (its Unleash strategies)", f.name)));
            h.insert("default_value".into(), json!(false));
            h.insert("rules".into(), Value::Array(rules));
            flags.push((helper.clone(), Value::Object(h)));
            all_requires.insert(0, json!({"flag": helper, "enabled": true}));
        }
        if !all_requires.is_empty() {
            flag.insert("requires".into(), Value::Array(all_requires));
        }
        let overrides: Vec<Value> = f
            .variants
            .iter()
            .flat_map(|v| {
                v.overrides.iter().map(move |o| {
                    json!({
                        "name": format!("override-{}-{}", v.name, o.context_name),
                        "constraints": [{"attribute": attribute(&o.context_name), "operator": "IN", "values": o.values}],
                        "variant": v.name,
                    })
                })
            })
            .collect();
        if !overrides.is_empty() {
            flag.insert("rules".into(), Value::Array(overrides));
        }
        let stickiness = f.variants.first().and_then(|v| v.stickiness.clone()).unwrap_or_else(|| "default".into());
        let mut strategy = json!({"type": "ab_test", "traffic_split": ordered(split), "group_id": f.name});
        match stickiness.as_str() {
            "default" => {}
            "random" => report.add("variant stickiness random (every request would pick again)"),
            field => strategy["stickiness"] = json!(attribute(field)),
        }
        flag.insert("rollout_strategy".into(), strategy);
        flags.push((f.name.clone(), Value::Object(flag)));
    }
    if doc.features.iter().any(|f| f.strategies.iter().any(|s| s.name == "flexibleRollout")) {
        notes.push(
            "Unleash's default stickiness falls back to a random value when a context has neither userId nor \
             sessionId; toggled (targetingKey, userId, sessionId) leaves such a context outside instead."
                .to_owned(),
        );
    }
    let mut file = Map::new();
    file.insert("feature_flags".into(), ordered(flags));
    if !segments.is_empty() {
        file.insert("segments".into(), Value::Object(segments));
    }
    let header = "# Imported from an Unleash client features document by `toggled import unleash`.\n";
    Ok(Translation { yaml: format!("{header}{}", to_yaml(&Value::Object(file))), unsupported, notes })
}
