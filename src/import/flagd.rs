//! flagd's flag definition JSON (`flags` with `state`, `variants`, `defaultVariant` and
//! `targeting` in flagd's JSONLogic, `$evaluators` for `$ref`) into a toggled flag file.
//!
//! `targeting` becomes ordered `rules`: each branch of an `if` is a rule serving its variant
//! (`and` joins constraints in one rule, `or` gives a rule per alternative), a final `else`
//! serves everyone left; `fractional` becomes an A/B split. flagd hashes `fractional` with its
//! own scheme, so those buckets move (the report says so); everything else answers the same.

use serde_json::{Map, Value, json};

use super::{ImportError, Translation, ordered, to_yaml};

/// What could not be expressed, per flag.
struct Report<'a> {
    flag: &'a str,
    unsupported: &'a mut Vec<(String, String)>,
    notes: &'a mut Vec<String>,
}

impl Report<'_> {
    fn add(&mut self, what: impl Into<String>) {
        self.unsupported.push((self.flag.to_owned(), what.into()));
    }
}

/// The context attribute a `{"var": ...}` names (`targetingKey`, `email`, `a.b`).
fn var(v: &Value) -> Option<String> {
    let name = v.get("var")?;
    let name = name.as_str().or_else(|| name.as_array()?.first()?.as_str())?;
    (!name.starts_with("$flagd")).then(|| name.to_owned())
}

fn text(v: &Value) -> Option<Value> {
    match v {
        Value::String(_) | Value::Number(_) => Some(v.clone()),
        Value::Bool(b) => Some(json!(b.to_string())),
        _ => None,
    }
}

/// One condition as constraints that must all hold; `None` when it cannot be expressed.
fn condition(c: &Value, evaluators: &Map<String, Value>, report: &mut Report<'_>) -> Option<Vec<Value>> {
    let Some((op, args)) = c.as_object().and_then(|o| o.iter().next()) else {
        report.add(format!("condition {c}"));
        return None;
    };
    let args = args.as_array().map(Vec::as_slice).unwrap_or_default();
    let constraint = |attr: String, operator: &str, values: Vec<Value>| {
        Some(vec![json!({"attribute": attr, "operator": operator, "values": values})])
    };
    match (op.as_str(), args) {
        ("$ref", _) => {
            let name = c["$ref"].as_str().unwrap_or_default();
            match evaluators.get(name) {
                Some(inner) => condition(inner, evaluators, report),
                None => {
                    report.add(format!("$ref to unknown evaluator {name:?}"));
                    None
                }
            }
        }
        ("and", list) => {
            let mut out = Vec::new();
            for c in list {
                out.extend(condition(c, evaluators, report)?);
            }
            Some(out)
        }
        ("==" | "===", [a, b]) => match (var(a), text(b)) {
            (Some(attr), Some(v)) => constraint(attr, "IN", vec![v]),
            _ => unsupported(c, report),
        },
        ("!=" | "!==", [a, b]) => match (var(a), text(b)) {
            (Some(attr), Some(v)) => constraint(attr, "NOT_IN", vec![v]),
            _ => unsupported(c, report),
        },
        // `in` is a list membership (`{"in": [{"var": x}, [..]]}`) or a substring test
        // (`{"in": ["needle", {"var": x}]}`).
        ("in", [a, Value::Array(list)]) => match (var(a), list.iter().map(text).collect::<Option<Vec<_>>>()) {
            (Some(attr), Some(values)) => constraint(attr, "IN", values),
            _ => unsupported(c, report),
        },
        ("in", [needle, b]) => match (text(needle), var(b)) {
            (Some(v), Some(attr)) => constraint(attr, "STR_CONTAINS", vec![v]),
            _ => unsupported(c, report),
        },
        ("starts_with" | "ends_with", [a, b]) => match (var(a), text(b)) {
            (Some(attr), Some(v)) => {
                let operator = if op == "starts_with" { "STR_STARTS_WITH" } else { "STR_ENDS_WITH" };
                constraint(attr, operator, vec![v])
            }
            _ => unsupported(c, report),
        },
        ("sem_ver", [a, cmp, b]) => {
            let operator = match cmp.as_str() {
                Some("=") => "SEMVER_EQ",
                Some(">") => "SEMVER_GT",
                Some(">=") => "SEMVER_GTE",
                Some("<") => "SEMVER_LT",
                Some("<=") => "SEMVER_LTE",
                _ => return unsupported(c, report),
            };
            match (var(a), text(b)) {
                (Some(attr), Some(v)) => Some(vec![json!({"attribute": attr, "operator": operator, "value": v})]),
                _ => unsupported(c, report),
            }
        }
        (">" | ">=" | "<" | "<=", [a, b]) => {
            let operator = match op.as_str() {
                ">" => "NUM_GT",
                ">=" => "NUM_GTE",
                "<" => "NUM_LT",
                _ => "NUM_LTE",
            };
            match (var(a), b.as_f64()) {
                (Some(attr), Some(n)) => Some(vec![json!({"attribute": attr, "operator": operator, "value": n})]),
                _ => unsupported(c, report),
            }
        }
        _ => unsupported(c, report),
    }
}

fn unsupported<T>(c: &Value, report: &mut Report<'_>) -> Option<T> {
    report.add(format!("condition {c}"));
    None
}

/// What a branch serves: a variant name, or a `fractional` split.
fn serve(v: &Value, report: &mut Report<'_>, name: &str) -> Option<Value> {
    if let Some(variant) = v.as_str() {
        return Some(json!({"name": name, "variant": variant}));
    }
    let args = v.get("fractional")?.as_array()?;
    let buckets = args.iter().filter_map(Value::as_array).filter(|b| b.len() == 2);
    let split: Vec<(String, Value)> =
        buckets.filter_map(|b| Some((b[0].as_str()?.to_owned(), json!(b[1].as_u64()?)))).collect();
    let mut strategy = json!({"type": "ab_test", "traffic_split": ordered(split)});
    // The first argument may name what to hash: `{"var": "email"}` or a `cat` of the flag key
    // and an attribute; the default is the targeting key.
    if let Some(attr) = args.first().and_then(|a| var(a).or_else(|| a.get("cat")?.as_array()?.iter().find_map(var))) {
        strategy["stickiness"] = json!(attr);
        report.notes.push(format!(
            "{}: {name}: a fractional split on a computed bucketing value becomes an A/B split with the same \
             weights on `{attr}`; flagd hashes that value its own way, so which user gets which variant changes",
            report.flag
        ));
    } else {
        // flagd's default bucketing value is flag key + targeting key: `hashing: flagd` with the
        // flag key as group computes the very same bucket.
        strategy["hashing"] = json!("flagd");
    }
    Some(json!({"name": name, "rollout_strategy": strategy}))
}

/// `if` branches as rules, in order.
fn rules(targeting: &Value, evaluators: &Map<String, Value>, report: &mut Report<'_>, out: &mut Vec<Value>) {
    let Some(args) = targeting.get("if").and_then(Value::as_array) else {
        // A targeting that is just a split or a variant applies to everyone.
        let name = format!("rule-{}", out.len() + 1);
        match serve(targeting, report, &name) {
            Some(r) => out.push(r),
            None => report.add(format!("targeting {targeting}")),
        }
        return;
    };
    let mut pairs = args.chunks(2);
    for pair in &mut pairs {
        match pair {
            [cond, then] => {
                let alternatives: Vec<&Value> = match cond.get("or").and_then(Value::as_array) {
                    Some(list) => list.iter().collect(),
                    None => vec![cond],
                };
                for alt in alternatives {
                    let name = format!("rule-{}", out.len() + 1);
                    if then.get("if").is_some() {
                        report.add(format!("{name}: a nested if under a condition"));
                        continue;
                    }
                    if let (Some(constraints), Some(mut rule)) =
                        (condition(alt, evaluators, report), serve(then, report, &name))
                    {
                        rule["constraints"] = Value::Array(constraints);
                        out.push(rule);
                    }
                }
            }
            [otherwise] if otherwise.get("if").is_some() => rules(otherwise, evaluators, report, out),
            [otherwise] if !otherwise.is_null() => {
                let name = format!("rule-{}", out.len() + 1);
                if let Some(rule) = serve(otherwise, report, &name) {
                    out.push(rule);
                }
            }
            _ => {}
        }
    }
}

/// Translates a flagd flag definition document.
pub fn translate(text: &str) -> Result<Translation, ImportError> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| ImportError(format!("not a flagd flag definition: {e}")))?;
    let flags_in = doc
        .get("flags")
        .and_then(Value::as_object)
        .ok_or_else(|| ImportError("not a flagd flag definition: no `flags` object".into()))?;
    let evaluators = doc.get("$evaluators").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut unsupported = Vec::new();
    let mut notes = Vec::new();
    let mut flags = Vec::new();
    for (key, f) in flags_in {
        let mut report = Report { flag: key, unsupported: &mut unsupported, notes: &mut notes };
        let variants: Vec<(String, Value)> = f
            .get("variants")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let Some(default) = f.get("defaultVariant").and_then(Value::as_str) else {
            report.add("no defaultVariant");
            continue;
        };
        let mut flag = Map::new();
        flag.insert("type".into(), json!("variant"));
        flag.insert("variants".into(), ordered(variants));
        flag.insert("default_variant".into(), json!(default));
        if f.get("state").and_then(Value::as_str) == Some("DISABLED") {
            flag.insert("enabled".into(), json!(false));
        }
        if let Some(targeting) = f.get("targeting").filter(|t| t.as_object().is_some_and(|o| !o.is_empty())) {
            let mut out = Vec::new();
            rules(targeting, &evaluators, &mut report, &mut out);
            if !out.is_empty() {
                flag.insert("rules".into(), Value::Array(out));
            }
        }
        flags.push((key.clone(), Value::Object(flag)));
    }
    let mut file = Map::new();
    file.insert("feature_flags".into(), ordered(flags));
    let header = "# Imported from a flagd flag definition by `toggled import flagd`.\n";
    Ok(Translation { yaml: format!("{header}{}", to_yaml(&Value::Object(file))), unsupported, notes })
}
