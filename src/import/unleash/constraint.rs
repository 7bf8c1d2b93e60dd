//! Unleash's constraints into toggled's, tolerant as Unleash's SDKs are: a value Unleash takes
//! and treats as matching nobody (an invalid address in an `IN_CIDR` list, a `v`-prefixed or
//! partial version, a regular expression it cannot compile, an operator it does not know) is
//! translated into a constraint with the same answer, never into a file error.

use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
pub(super) struct ConstraintIn {
    #[serde(rename = "contextName")]
    pub context_name: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<Value>,
    pub value: Option<Value>,
    #[serde(default, rename = "caseInsensitive")]
    pub case_insensitive: bool,
    #[serde(default)]
    pub inverted: bool,
}

/// Context fields Unleash keeps at the top level; every other field is a property.
const STANDARD_FIELDS: [&str; 6] = ["userId", "sessionId", "remoteAddress", "environment", "appName", "currentTime"];

const LIST_OPERATORS: [&str; 6] = ["IN", "NOT_IN", "STR_CONTAINS", "STR_STARTS_WITH", "STR_ENDS_WITH", "IN_CIDR"];

/// The attribute a context field is read from: custom fields live in `properties`.
pub(super) fn attribute(field: &str) -> String {
    if STANDARD_FIELDS.contains(&field) { field.to_owned() } else { format!("properties.{field}") }
}

/// A constraint that holds for nobody (`IN` an empty list); `inverted` flips it, as Unleash's SDKs
/// flip an operator that answered false.
pub(super) fn nobody(field: &str, inverted: bool) -> Value {
    let mut out = json!({"attribute": attribute(field), "operator": "IN", "values": []});
    if inverted {
        out["inverted"] = json!(true);
    }
    out
}

/// Unleash sends values as strings; numbers and booleans are kept as their text.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One constraint, and a note when Unleash's tolerance decided its meaning.
pub(super) fn translate(c: &ConstraintIn) -> (Value, Option<String>) {
    let field = &c.context_name;
    let op = c.operator.as_str();
    let mut out = json!({"attribute": attribute(field), "operator": op});
    if c.case_insensitive {
        out["case_insensitive"] = json!(true);
    }
    if c.inverted {
        out["inverted"] = json!(true);
    }
    if LIST_OPERATORS.contains(&op) {
        let mut values: Vec<String> = c.values.iter().map(text).collect();
        if values.is_empty()
            && let Some(v) = &c.value
        {
            values.push(text(v));
        }
        let mut note = None;
        if op == "IN_CIDR" {
            let (good, bad): (Vec<String>, Vec<String>) =
                values.into_iter().partition(|v| crate::flags::compile::parse_network(v).is_some());
            if !bad.is_empty() {
                note = Some(format!("IN_CIDR on {field}: {bad:?} are not networks and match nothing, as in Unleash"));
            }
            values = good;
        }
        out["values"] = json!(values);
        return (out, note);
    }
    // A single-value operator reads `value` (older documents put it in `values`).
    let Some(value) = c.value.as_ref().or(c.values.first()).map(text) else {
        return (nobody(field, c.inverted), Some(format!("{op} on {field} has no value: it matches nobody")));
    };
    let valid = match op {
        "REGEX" => regex::RegexBuilder::new(&value)
            .case_insensitive(c.case_insensitive)
            .size_limit(crate::flags::compile::REGEX_SIZE_LIMIT)
            .build()
            .is_ok(),
        "NUM_EQ" | "NUM_GT" | "NUM_GTE" | "NUM_LT" | "NUM_LTE" => value.trim().parse::<f64>().is_ok_and(f64::is_finite),
        "DATE_AFTER" | "DATE_BEFORE" => crate::flags::duration::parse_date(&value).is_ok(),
        "SEMVER_EQ" | "SEMVER_GT" | "SEMVER_GTE" | "SEMVER_LT" | "SEMVER_LTE" => {
            semver::Version::parse(value.trim()).is_ok()
        }
        _ => {
            // Unleash's SDKs answer false for an operator they do not know, inverted or not.
            let note = format!("unknown operator {op} on {field}: it matches nobody, as in Unleash");
            return (nobody(field, false), Some(note));
        }
    };
    if !valid {
        let note = format!("{op} on {field}: {value:?} is not valid for it and matches nobody, as in Unleash");
        return (nobody(field, c.inverted), Some(note));
    }
    out["value"] = json!(value);
    (out, None)
}
