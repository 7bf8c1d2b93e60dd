//! flagd's JSONLogic conditions as toggled constraints, in disjunctive normal form: a condition
//! becomes alternatives (any may hold), each a list of constraints (all must hold). `and`, `or`
//! and `!` nest freely (a negated constraint is the same constraint `inverted`, which keeps
//! JSONLogic's answer for a missing attribute). What has no exact translation is refused with
//! the construct's name, never dropped.

use serde_json::{Map, Value, json};

/// Alternatives, each a conjunction of constraints. `vec![]` holds for nobody, `vec![vec![]]`
/// for everybody.
pub(super) type Dnf = Vec<Vec<Value>>;

/// The most alternatives one condition may expand to (a negated `and` of `or`s multiplies).
const MAX_ALTERNATIVES: usize = 256;

/// The longest fixed text an attribute may be looked for in (its substrings become a list).
const MAX_HAYSTACK: usize = 64;

pub(super) fn always() -> Dnf {
    vec![Vec::new()]
}

fn never() -> Dnf {
    Vec::new()
}

/// What the translation knows beyond the condition: the flag's key (`$flagd.flagKey`) and the
/// shared evaluators (`$ref`).
pub(super) struct Scope<'a> {
    pub flag: &'a str,
    pub evaluators: &'a Map<String, Value>,
    /// Notes on answers that differ at the edges (filled once per flag).
    pub notes: Vec<String>,
}

/// Both: `a` and `b`.
pub(super) fn and(a: &Dnf, b: &Dnf) -> Result<Dnf, String> {
    if a.len() * b.len() > MAX_ALTERNATIVES {
        return Err(format!("a condition of more than {MAX_ALTERNATIVES} alternatives"));
    }
    Ok(a.iter().flat_map(|x| b.iter().map(move |y| x.iter().chain(y).cloned().collect())).collect())
}

/// Not `a`: every alternative fails, so one negated constraint of each holds.
pub(super) fn not(a: &Dnf) -> Result<Dnf, String> {
    let mut out = always();
    for conjunction in a {
        let negated: Dnf = conjunction.iter().map(|c| vec![invert(c)]).collect();
        out = and(&out, &negated)?;
    }
    Ok(out)
}

fn invert(c: &Value) -> Value {
    let mut c = c.clone();
    let inverted = c.get("inverted").and_then(Value::as_bool).unwrap_or(false);
    c["inverted"] = json!(!inverted);
    c
}

/// A `{"var": name}` reference: `Some(name)` for a context attribute.
fn var_name(v: &Value) -> Result<Option<String>, String> {
    let Some(name) = v.get("var") else { return Ok(None) };
    let name = match name {
        Value::String(s) => s.clone(),
        Value::Array(list) if list.len() == 1 => list[0].as_str().ok_or("var of a non-string")?.to_owned(),
        Value::Array(_) => return Err("var with a default".into()),
        _ => return Err("var of a non-string".into()),
    };
    if name.is_empty() {
        return Err("var \"\" (the whole data)".into());
    }
    Ok(Some(name))
}

/// One side of a comparison.
enum Side {
    Attr(String),
    FlagKey,
    Timestamp,
    Lit(Value),
}

fn side(v: &Value) -> Result<Side, String> {
    if let Some(name) = var_name(v)? {
        return Ok(match name.as_str() {
            "$flagd.flagKey" => Side::FlagKey,
            "$flagd.timestamp" => Side::Timestamp,
            _ => Side::Attr(name),
        });
    }
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(Side::Lit(v.clone())),
        Value::Object(o) => Err(o.keys().next().map_or("{}".to_owned(), |op| format!("{op} as an operand"))),
        Value::Null => Err("null as an operand".into()),
        Value::Array(_) => Err("a list as an operand".into()),
    }
}

fn text(v: &Value) -> Value {
    match v {
        Value::Bool(b) => json!(b.to_string()),
        other => other.clone(),
    }
}

fn constraint(attr: &str, operator: &str, values: Vec<Value>) -> Dnf {
    vec![vec![json!({"attribute": attr, "operator": operator, "values": values})]]
}

/// A fixed answer (JSONLogic evaluated at import time).
fn fixed(holds: bool) -> Dnf {
    if holds { always() } else { never() }
}

/// JSONLogic's loose equality of two literals (the cases a flag file can hold).
fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::String(y)) | (Value::String(y), Value::Number(x)) => {
            y.trim().parse::<f64>().ok() == x.as_f64()
        }
        _ => a == b,
    }
}

/// `$flagd.timestamp` (whole seconds) against `n`, as a constraint on the evaluation time.
fn timestamp(op: &str, n: f64) -> Result<Dnf, String> {
    let at = |secs: f64| {
        chrono::DateTime::from_timestamp_millis((secs * 1000.0) as i64)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .ok_or_else(|| format!("$flagd.timestamp against {n}"))
    };
    // floor(now) > n  <=>  now >= n + 1;  floor(now) >= n  <=>  now >= n;  < and <= likewise.
    let (operator, value) = match op {
        ">" => ("DATE_AFTER", at(n.floor() + 1.0 - 0.001)?),
        ">=" => ("DATE_AFTER", at(n.ceil() - 0.001)?),
        "<" => ("DATE_BEFORE", at(n.ceil())?),
        "<=" => ("DATE_BEFORE", at(n.floor() + 1.0)?),
        _ => return Err(format!("{op} on $flagd.timestamp")),
    };
    Ok(vec![vec![json!({"attribute": "currentTime", "operator": operator, "value": value})]])
}

/// flagd's version reading: a `v` prefix is dropped, `1` and `1.2` are `1.0.0` and `1.2.0`.
fn version(v: &Value) -> Option<semver::Version> {
    let t = match v {
        Value::String(s) => s.trim().trim_start_matches(['v', 'V']).to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let parts = t.split('.').count();
    let full = if parts < 3 && t.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
        format!("{t}{}", ".0".repeat(3 - parts))
    } else {
        t
    };
    semver::Version::parse(&full).ok()
}

fn sem_ver(args: &[Value], scope: &mut Scope<'_>) -> Result<Dnf, String> {
    let [a, op, b] = args else { return Err("sem_ver without 3 arguments".into()) };
    let op = op.as_str().ok_or("sem_ver with a non-string operator")?;
    let (attr, lit, op) = match (side(a)?, side(b)?) {
        (Side::Attr(x), Side::Lit(v)) => (x, v, op.to_owned()),
        (Side::Lit(v), Side::Attr(x)) => {
            let flipped = match op {
                "<" => ">",
                "<=" => ">=",
                ">" => "<",
                ">=" => "<=",
                "=" | "!=" => op,
                _ => return Err(format!("sem_ver {op} with the version first")),
            };
            (x, v, flipped.to_owned())
        }
        _ => return Err("sem_ver on two literals or on $flagd".into()),
    };
    let Some(v) = version(&lit) else {
        // flagd answers null (false) for a version it cannot read.
        return Ok(never());
    };
    scope.notes.push(format!(
        "sem_ver on {attr}: a context version with a `v` prefix or missing parts (`1.2`) is not read (flagd coerces it)"
    ));
    let one =
        |operator: &str, v: &semver::Version| json!({"attribute": attr, "operator": operator, "value": v.to_string()});
    Ok(match op.as_str() {
        "=" => vec![vec![one("SEMVER_EQ", &v)]],
        // flagd answers null (false) for a missing version, also for `!=`.
        "!=" => vec![vec![one("SEMVER_GTE", &semver::Version::new(0, 0, 0)), invert(&one("SEMVER_EQ", &v))]],
        "<" => vec![vec![one("SEMVER_LT", &v)]],
        "<=" => vec![vec![one("SEMVER_LTE", &v)]],
        ">" => vec![vec![one("SEMVER_GT", &v)]],
        ">=" => vec![vec![one("SEMVER_GTE", &v)]],
        "^" | "~" => {
            // flagd: the same major (`^`), the same major and minor (`~`).
            let (low, high) = if op == "^" {
                (semver::Version::new(v.major, 0, 0), semver::Version::new(v.major + 1, 0, 0))
            } else {
                (semver::Version::new(v.major, v.minor, 0), semver::Version::new(v.major, v.minor + 1, 0))
            };
            scope.notes.push(format!("sem_ver {op} on {attr}: a pre-release of the lowest version is outside"));
            vec![vec![one("SEMVER_GTE", &low), one("SEMVER_LT", &high)]]
        }
        other => return Err(format!("sem_ver operator {other:?}")),
    })
}

/// `x op n`. JSONLogic reads a missing attribute as null, which compares as 0: where `0 op n`
/// holds, a context without `x` is admitted too.
fn numeric_or_missing(x: &str, op: &str, n: &serde_json::Number, operator: &str) -> Dnf {
    let mut out = vec![vec![json!({"attribute": x, "operator": operator, "value": n})]];
    let n = n.as_f64().unwrap_or_default();
    let zero_holds = match op {
        "<" => 0.0 < n,
        "<=" => 0.0 <= n,
        ">" => 0.0 > n,
        _ => 0.0 >= n,
    };
    if zero_holds {
        out.push(vec![missing(x)]);
    }
    out
}

/// Holds for a context without `x`: no scalar value contains the empty text.
pub(super) fn missing(x: &str) -> Value {
    json!({"attribute": x, "operator": "STR_CONTAINS", "values": [""], "inverted": true})
}

fn compare(op: &str, args: &[Value]) -> Result<Dnf, String> {
    let numeric = |op: &str| match op {
        "<" => "NUM_LT",
        "<=" => "NUM_LTE",
        ">" => "NUM_GT",
        _ => "NUM_GTE",
    };
    let flip = |op: &str| match op {
        "<" => ">",
        "<=" => ">=",
        ">" => "<",
        _ => "<=",
    };
    match args {
        // The between form: a < x < b.
        [a, x, b] => {
            let low = compare(op, &[a.clone(), x.clone()])?;
            let high = compare(op, &[x.clone(), b.clone()])?;
            and(&low, &high)
        }
        [a, b] => match (side(a)?, side(b)?) {
            (Side::Attr(x), Side::Lit(Value::Number(n))) => Ok(numeric_or_missing(&x, op, &n, numeric(op))),
            (Side::Lit(Value::Number(n)), Side::Attr(x)) => Ok(numeric_or_missing(&x, flip(op), &n, numeric(flip(op)))),
            (Side::Timestamp, Side::Lit(Value::Number(n))) => timestamp(op, n.as_f64().unwrap_or_default()),
            (Side::Lit(Value::Number(n)), Side::Timestamp) => timestamp(flip(op), n.as_f64().unwrap_or_default()),
            (Side::Lit(Value::Number(x)), Side::Lit(Value::Number(y))) => {
                let (x, y) = (x.as_f64().unwrap_or_default(), y.as_f64().unwrap_or_default());
                Ok(fixed(match op {
                    "<" => x < y,
                    "<=" => x <= y,
                    ">" => x > y,
                    _ => x >= y,
                }))
            }
            _ => Err(format!("{op} on anything but a number")),
        },
        _ => Err(format!("{op} without 2 or 3 arguments")),
    }
}

fn equality(op: &str, args: &[Value], flag: &str) -> Result<Dnf, String> {
    let [a, b] = args else { return Err(format!("{op} without 2 arguments")) };
    let negated = op.starts_with('!');
    // Against null: whether the attribute is missing (JSONLogic reads a missing one as null).
    let null_test = match (a, b) {
        (Value::Null, other) | (other, Value::Null) => Some(other),
        _ => None,
    };
    if let Some(other) = null_test {
        let dnf = match side(other)? {
            Side::Attr(x) => vec![vec![missing(&x)]],
            Side::Lit(_) | Side::FlagKey | Side::Timestamp => never(),
        };
        return if negated { not(&dnf) } else { Ok(dnf) };
    }
    let dnf = match (side(a)?, side(b)?) {
        (Side::Attr(x), Side::Lit(v)) | (Side::Lit(v), Side::Attr(x)) => {
            if op.len() == 3 && v.is_number() {
                return Err(format!("{op} on a number (toggled compares a number's text)"));
            }
            constraint(&x, "IN", vec![text(&v)])
        }
        // The flag's own key is known here: the comparison is answered now.
        (Side::FlagKey, Side::Lit(v)) | (Side::Lit(v), Side::FlagKey) => fixed(v.as_str() == Some(flag)),
        (Side::Lit(x), Side::Lit(y)) => fixed(if op.len() == 3 { x == y } else { loose_eq(&x, &y) }),
        _ => return Err(format!("{op} between two attributes or on $flagd.timestamp")),
    };
    if negated { not(&dnf) } else { Ok(dnf) }
}

/// JSONLogic's truthiness of an attribute: present and not empty, `0` or `false`.
fn truthy(v: &Value, scope: &mut Scope<'_>) -> Result<Dnf, String> {
    match side(v)? {
        Side::Attr(x) => {
            scope.notes.push(format!(
                "the truthiness of {x} reads the texts \"0\" and \"false\" as false (JSONLogic: only the number 0 and \
                 false) and a non-empty list as false"
            ));
            let present = invert(&missing(&x));
            Ok(vec![vec![present, json!({"attribute": x, "operator": "NOT_IN", "values": ["", "0", "false"]})]])
        }
        Side::Lit(l) => condition(&l, scope),
        Side::FlagKey | Side::Timestamp => Ok(always()),
    }
}

/// A `var` with a default: the comparison holds for a context without the attribute when it
/// holds for the default. `None` when `c` holds no such `var`.
fn with_default(c: &Value, scope: &mut Scope<'_>) -> Result<Option<Dnf>, String> {
    let Some((op, Value::Array(args))) = c.as_object().filter(|o| o.len() == 1).and_then(|o| o.iter().next()) else {
        return Ok(None);
    };
    const COMPARISONS: [&str; 12] =
        ["==", "===", "!=", "!==", "<", "<=", ">", ">=", "in", "starts_with", "ends_with", "sem_ver"];
    if !COMPARISONS.contains(&op.as_str()) {
        return Ok(None);
    }
    let defaulted = args.iter().find_map(|a| match a.get("var") {
        Some(Value::Array(l)) if l.len() == 2 => Some((l[0].as_str()?.to_owned(), l[1].clone())),
        _ => None,
    });
    let Some((name, default)) = defaulted else { return Ok(None) };
    let strip = |with: &Value| -> Vec<Value> {
        args.iter()
            .map(|a| match a.get("var") {
                Some(Value::Array(l)) if l.len() == 2 && l[0].as_str() == Some(name.as_str()) => with.clone(),
                _ => a.clone(),
            })
            .collect()
    };
    let plain = json!({op: strip(&json!({"var": name}))});
    let on_default = json!({op: strip(&default)});
    // A missing attribute reads as the default, never as null.
    let absent = vec![missing(&name)];
    let mut out: Dnf = condition(&plain, scope)?.into_iter().filter(|conj| *conj != absent).collect();
    if condition(&on_default, scope)? == always() {
        out.push(absent);
    }
    Ok(Some(out))
}

/// One condition.
pub(super) fn condition(c: &Value, scope: &mut Scope<'_>) -> Result<Dnf, String> {
    match c {
        Value::Bool(b) => return Ok(fixed(*b)),
        Value::Null => return Ok(never()),
        Value::String(s) => return Ok(fixed(!s.is_empty())),
        Value::Number(n) => return Ok(fixed(n.as_f64().is_some_and(|n| n != 0.0))),
        Value::Array(_) => return Err("a list as a condition".into()),
        Value::Object(_) => {}
    }
    let Some((op, raw)) = c.as_object().filter(|o| o.len() == 1).and_then(|o| o.iter().next()) else {
        return Err(format!("an object of {} keys as a condition", c.as_object().map_or(0, Map::len)));
    };
    if op != "var"
        && let Some(dnf) = with_default(c, scope)?
    {
        return Ok(dnf);
    }
    // JSONLogic takes a single argument without its list.
    let args: Vec<Value> = match raw {
        Value::Array(list) => list.clone(),
        other => vec![other.clone()],
    };
    match op.as_str() {
        "$ref" => {
            let name = raw.as_str().ok_or("$ref to a non-string")?;
            let inner =
                scope.evaluators.get(name).ok_or_else(|| format!("$ref to unknown evaluator {name:?}"))?.clone();
            condition(&inner, scope)
        }
        "and" => args.iter().try_fold(always(), |acc, a| and(&acc, &condition(a, scope)?)),
        "or" => {
            let mut out = never();
            for a in &args {
                out.extend(condition(a, scope)?);
                if out.len() > MAX_ALTERNATIVES {
                    return Err(format!("a condition of more than {MAX_ALTERNATIVES} alternatives"));
                }
            }
            Ok(out)
        }
        "!" => match args.as_slice() {
            [a] => not(&condition(a, scope)?),
            _ => Err("! without 1 argument".into()),
        },
        "==" | "===" | "!=" | "!==" => equality(op, &args, scope.flag),
        "<" | "<=" | ">" | ">=" => compare(op, &args),
        "in" => match args.as_slice() {
            [a, Value::Array(list)] => match side(a)? {
                Side::Attr(x) => {
                    let values: Option<Vec<Value>> = list
                        .iter()
                        .map(|v| (!v.is_object() && !v.is_array() && !v.is_null()).then(|| text(v)))
                        .collect();
                    Ok(constraint(&x, "IN", values.ok_or("in a list of non-literals")?))
                }
                Side::Lit(v) => Ok(fixed(list.contains(&v))),
                _ => Err("in on $flagd".into()),
            },
            [a, b] => match (side(a)?, side(b)?) {
                (Side::Lit(needle), Side::Attr(x)) => Ok(constraint(&x, "STR_CONTAINS", vec![text(&needle)])),
                // The attribute is part of a fixed text: it is one of the text's substrings.
                (Side::Attr(x), Side::Lit(Value::String(h))) if h.chars().count() <= MAX_HAYSTACK => {
                    let chars: Vec<char> = h.chars().collect();
                    let mut parts: Vec<String> = vec![String::new()];
                    for i in 0..chars.len() {
                        for j in i + 1..=chars.len() {
                            parts.push(chars[i..j].iter().collect());
                        }
                    }
                    parts.sort();
                    parts.dedup();
                    Ok(constraint(&x, "IN", parts.into_iter().map(Value::String).collect()))
                }
                (Side::Attr(_), Side::Lit(_)) => {
                    Err(format!("in of an attribute inside a fixed string over {MAX_HAYSTACK} characters"))
                }
                (Side::Lit(Value::String(n)), Side::Lit(Value::String(h))) => Ok(fixed(h.contains(n.as_str()))),
                _ => Err("in on these operands".into()),
            },
            _ => Err("in without 2 arguments".into()),
        },
        "starts_with" | "ends_with" => match args.as_slice() {
            [a, b] => match (side(a)?, side(b)?) {
                (Side::Attr(x), Side::Lit(v @ Value::String(_))) => {
                    let operator = if op == "starts_with" { "STR_STARTS_WITH" } else { "STR_ENDS_WITH" };
                    Ok(constraint(&x, operator, vec![v]))
                }
                (Side::Lit(Value::String(h)), Side::Lit(Value::String(n))) => {
                    Ok(fixed(if op == "starts_with" { h.starts_with(n.as_str()) } else { h.ends_with(n.as_str()) }))
                }
                _ => Err(format!("{op} on anything but an attribute and a string")),
            },
            _ => Err(format!("{op} without 2 arguments")),
        },
        "sem_ver" => sem_ver(&args, scope),
        "!!" => match args.as_slice() {
            [a] => truthy(a, scope),
            _ => Err("!! without 1 argument".into()),
        },
        "var" => truthy(c, scope),
        other => Err(other.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope<'a>(evaluators: &'a Map<String, Value>) -> Scope<'a> {
        Scope { flag: "f", evaluators, notes: Vec::new() }
    }

    #[test]
    fn nested_and_or_not_expand_to_alternatives() {
        let ev = Map::new();
        let c = json!({"and": [{"or": [{"==": [{"var": "a"}, "1"]}, {"==": ["2", {"var": "b"}]}]}, {"!": {"<": [{"var": "n"}, 5]}}]});
        let dnf = condition(&c, &mut scope(&ev)).expect("translated");
        // (a or b) and not (n < 5 or n missing): n present and not below 5.
        assert_eq!(dnf.len(), 2);
        assert_eq!(dnf[0][1], json!({"attribute": "n", "operator": "NUM_LT", "value": 5, "inverted": true}));
        assert_eq!(dnf[0][2], json!({"attribute": "n", "operator": "STR_CONTAINS", "values": [""], "inverted": false}));
        assert_eq!(dnf[1][0], json!({"attribute": "b", "operator": "IN", "values": ["2"]}));
        let between = condition(&json!({"<=": [1, {"var": "n"}, 3]}), &mut scope(&ev)).expect("translated");
        assert_eq!(between[0][0]["operator"], json!("NUM_GTE"));
        assert_eq!(between[0][1]["operator"], json!("NUM_LTE"));
    }

    #[test]
    fn what_has_no_exact_translation_is_refused_by_name() {
        let ev = Map::new();
        for (c, name) in [
            (json!({"some": [{"var": "l"}, true]}), "some"),
            (json!({"and": [{"var": ["x", true]}]}), "var with a default"),
            (json!({"$ref": "nope"}), "$ref to unknown evaluator \"nope\""),
            (json!({"==": [{"cat": ["a", {"var": "x"}]}, "ab"]}), "cat as an operand"),
        ] {
            assert_eq!(condition(&c, &mut scope(&ev)).expect_err("refused"), name);
        }
    }

    #[test]
    fn a_default_holds_where_the_attribute_is_missing() {
        let ev = Map::new();
        let eq = condition(&json!({"==": [{"var": ["plan", "free"]}, "free"]}), &mut scope(&ev)).expect("translated");
        assert_eq!(
            eq,
            vec![vec![json!({"attribute": "plan", "operator": "IN", "values": ["free"]})], vec![missing("plan")]]
        );
        // null would read as 0 (admitted by `< 5`), the default 9 does not.
        let lt = condition(&json!({"<": [{"var": ["n", 9]}, 5]}), &mut scope(&ev)).expect("translated");
        assert_eq!(lt, vec![vec![json!({"attribute": "n", "operator": "NUM_LT", "value": 5})]]);
        let inside = condition(&json!({"in": [{"var": "c"}, "ab"]}), &mut scope(&ev)).expect("translated");
        assert_eq!(inside, vec![vec![json!({"attribute": "c", "operator": "IN", "values": ["", "a", "ab", "b"]})]]);
    }

    #[test]
    fn versions_read_as_flagd_reads_them() {
        assert_eq!(version(&json!("v1.2")), Some(semver::Version::new(1, 2, 0)));
        assert_eq!(version(&json!("1")), Some(semver::Version::new(1, 0, 0)));
        assert_eq!(version(&json!("1.2.3.4")), None);
        let ev = Map::new();
        let caret = condition(&json!({"sem_ver": [{"var": "v"}, "^", "v2.3"]}), &mut scope(&ev)).expect("translated");
        assert_eq!(caret[0][0]["value"], json!("2.0.0"));
        assert_eq!(caret[0][1]["value"], json!("3.0.0"));
    }
}
