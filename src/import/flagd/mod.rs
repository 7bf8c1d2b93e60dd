//! flagd's flag definition JSON (`flags` with `state`, `variants`, `defaultVariant` and
//! `targeting` in flagd's JSONLogic, `$evaluators` for `$ref`) into a toggled flag file.
//!
//! `targeting` becomes ordered `rules`, each serving what flagd's expression returns for the
//! contexts it admits: an `if` (any number of branches, nested anywhere) gives each branch's
//! result under its condition, conditions (`and`, `or`, `!`, comparisons, `in`, `starts_with`,
//! `ends_with`, `sem_ver`, `$ref`; see `logic.rs`) become constraints, a bare condition as the
//! whole targeting serves the variant named `"true"` or `"false"`, `null` serves the default
//! variant, and `fractional` becomes an A/B split with `hashing: flagd`, bucketing exactly as flagd
//! does (its key is `flagKey + targetingKey`, or the `var` / `cat` given). What has no exact
//! translation is refused with the construct's name.

mod logic;

use serde_json::{Map, Value, json};

use super::{ImportError, Translation, ordered};
use logic::{Dnf, Scope, and, condition};

/// The most rules one flag's targeting may become.
const MAX_RULES: usize = 1_000;

/// What one flag's targeting becomes: ordered rules.
struct Rules<'a> {
    variants: &'a [String],
    default: &'a str,
    out: Vec<Value>,
    /// Per rule: whether it stands for a `null` result (the default variant, reason DEFAULT).
    nulls: Vec<bool>,
}

impl Rules<'_> {
    /// One rule per alternative of `when`, each serving `what` (`variant` or `rollout_strategy`).
    fn serve(&mut self, when: &Dnf, what: (&str, Value)) -> Result<(), String> {
        for conjunction in when {
            if self.out.len() >= MAX_RULES {
                return Err(format!("targeting of more than {MAX_RULES} rules"));
            }
            let mut r = Map::new();
            r.insert("name".into(), json!(format!("rule-{}", self.out.len() + 1)));
            if !conjunction.is_empty() {
                r.insert("constraints".into(), Value::Array(conjunction.clone()));
            }
            r.insert(what.0.into(), what.1.clone());
            self.out.push(Value::Object(r));
            self.nulls.push(false);
        }
        Ok(())
    }

    fn variant(&mut self, when: &Dnf, name: &str) -> Result<(), String> {
        if !self.variants.iter().any(|v| v == name) {
            return Err(format!("targeting result {name:?}, which is not a variant (flagd answers an error)"));
        }
        self.serve(when, ("variant", json!(name)))
    }

    /// The rules for value expression `t` under `when`; they admit every context `when` admits,
    /// so later rules only see contexts outside `when`.
    fn branches(&mut self, t: &Value, when: &Dnf, scope: &mut Scope<'_>) -> Result<(), String> {
        match t {
            Value::String(name) => self.variant(when, name),
            Value::Bool(b) => self.variant(when, if *b { "true" } else { "false" }),
            // flagd serves the default variant when targeting answers null.
            Value::Null => {
                let default = self.default.to_owned();
                let from = self.out.len();
                self.variant(when, &default)?;
                self.nulls[from..].iter_mut().for_each(|n| *n = true);
                Ok(())
            }
            Value::Number(n) => Err(format!("the number {n} as the targeting result")),
            Value::Array(_) => Err("a list as the targeting result".into()),
            Value::Object(o) => {
                if let Some(args) = o.get("if").filter(|_| o.len() == 1) {
                    let args = args.as_array().ok_or("if without a list")?;
                    let mut pairs = args.chunks(2);
                    for pair in &mut pairs {
                        match pair {
                            [c, then] => {
                                let holds = condition(c, scope)?;
                                self.branches(then, &and(when, &holds)?, scope)?;
                            }
                            [otherwise] => return self.branches(otherwise, when, scope),
                            _ => {}
                        }
                    }
                    // No else: JSONLogic's `if` answers null.
                    return self.branches(&Value::Null, when, scope);
                }
                if let Some(args) = o.get("fractional").filter(|_| o.len() == 1) {
                    return self.fractional(args, when, scope);
                }
                if let Some(name) = o.get("$ref").and_then(Value::as_str).filter(|_| o.len() == 1) {
                    let inner =
                        scope.evaluators.get(name).ok_or_else(|| format!("$ref to unknown evaluator {name:?}"))?;
                    return self.branches(&inner.clone(), when, scope);
                }
                // A bare condition: its boolean result names the variant.
                let holds = condition(t, scope)?;
                self.variant(&and(when, &holds)?, "true")?;
                self.variant(when, "false")
            }
        }
    }

    /// `fractional`: an A/B split hashed as flagd hashes, then the default variant for a
    /// context without the bucketing value (flagd answers null for it).
    fn fractional(&mut self, args: &Value, when: &Dnf, scope: &mut Scope<'_>) -> Result<(), String> {
        let args = args.as_array().ok_or("fractional without a list")?;
        let (key, buckets) = match args.first() {
            Some(first) if !first.is_array() => (Some(first), &args[1..]),
            _ => (None, &args[..]),
        };
        let mut strategy = Map::new();
        strategy.insert("type".into(), json!("ab_test"));
        strategy.insert("hashing".into(), json!("flagd"));
        let (group, stickiness) = match key {
            None => (None, "targetingKey".to_owned()),
            Some(k) => bucketing_key(k, scope.flag)?,
        };
        let mut split = Vec::new();
        for b in buckets {
            let b = b.as_array().ok_or("a fractional bucket that is not a list")?;
            let (name, weight) = match b.as_slice() {
                [name] => (name, 1),
                [name, w] => (name, w.as_u64().ok_or("a fractional weight that is not a whole number")?),
                _ => return Err("a fractional bucket of more than 2 entries".into()),
            };
            let name = name.as_str().ok_or("a fractional bucket naming a variant by an expression")?;
            if !self.variants.iter().any(|v| v == name) {
                return Err(format!("fractional bucket {name:?}, which is not a variant (flagd answers an error)"));
            }
            // A weight of 0 is never picked.
            if weight > 0 {
                split.push((name.to_owned(), json!(weight)));
            }
        }
        if split.is_empty() {
            return self.branches(&Value::Null, when, scope);
        }
        // A `cat` with its attribute missing still hashes its fixed part: that bucket is known now.
        let fixed_pick = match (key, &group) {
            (Some(k), Some(g)) if k.get("cat").is_some() => {
                let total: u64 = split.iter().filter_map(|(_, w)| w.as_u64()).sum();
                let bucket = crate::eval::bucket::flagd_bucket(g, "", u32::try_from(total).unwrap_or(u32::MAX));
                let mut sum = 0u64;
                split
                    .iter()
                    .find(|(_, w)| {
                        sum += w.as_u64().unwrap_or_default();
                        u64::from(bucket) < sum
                    })
                    .map(|(name, _)| name.clone())
            }
            _ => None,
        };
        strategy.insert("traffic_split".into(), ordered(split));
        if let Some(g) = group {
            strategy.insert("group_id".into(), json!(g));
        }
        strategy.insert("stickiness".into(), json!(&stickiness));
        self.serve(when, ("rollout_strategy", Value::Object(strategy)))?;
        if let Some(name) = fixed_pick {
            let absent = logic::and(when, &vec![vec![logic::missing(&stickiness)]])?;
            self.variant(&absent, &name)?;
        }
        self.branches(&Value::Null, when, scope)
    }
}

/// A computed bucketing key: `{"var": x}` (flagd hashes the value alone) or a `cat` of fixed
/// text and `$flagd.flagKey` ending in one `var` (the fixed part is the group).
fn bucketing_key(k: &Value, flag: &str) -> Result<(Option<String>, String), String> {
    let attribute = |v: &Value| -> Option<String> {
        let name = v.get("var")?.as_str()?;
        (!name.starts_with("$flagd.") && !name.is_empty()).then(|| name.to_owned())
    };
    if let Some(name) = attribute(k) {
        return Ok((Some(String::new()), name));
    }
    let parts = k.get("cat").and_then(Value::as_array).ok_or("a fractional bucketing value other than var or cat")?;
    let (last, fixed) = parts.split_last().ok_or("an empty cat")?;
    let name = attribute(last).ok_or("a cat that does not end in one var")?;
    let mut group = String::new();
    for p in fixed {
        match p {
            Value::String(s) => group.push_str(s),
            Value::Number(n) => group.push_str(&n.to_string()),
            _ if p.get("var").and_then(Value::as_str) == Some("$flagd.flagKey") => group.push_str(flag),
            _ => return Err("a cat with more than one attribute".into()),
        }
    }
    Ok((Some(group), name))
}

/// Every `$ref` in `v` names an evaluator of the document.
fn check_refs(v: &Value, evaluators: &Map<String, Value>) -> Result<(), ImportError> {
    match v {
        Value::Object(o) => {
            if let Some(name) = o.get("$ref") {
                let name = name.as_str().unwrap_or_default();
                if !evaluators.contains_key(name) {
                    return Err(ImportError(format!("$ref to unknown evaluator {name:?}")));
                }
            }
            o.values().try_for_each(|x| check_refs(x, evaluators))
        }
        Value::Array(list) => list.iter().try_for_each(|x| check_refs(x, evaluators)),
        _ => Ok(()),
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
    check_refs(&doc["flags"], &evaluators)?;
    check_refs(&Value::Object(evaluators.clone()), &evaluators)?;
    let mut unsupported = Vec::new();
    let mut notes = Vec::new();
    let mut flags = Vec::new();
    for (key, f) in flags_in {
        let variants: Vec<(String, Value)> = f
            .get("variants")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let names: Vec<String> = variants.iter().map(|(n, _)| n.clone()).collect();
        // Without `defaultVariant`, flagd answers the caller's default where no rule matches:
        // `fallback: caller` does, and the first variant stands in as the file's default.
        let (default, callers) = match f.get("defaultVariant").and_then(Value::as_str) {
            Some(d) => (d.to_owned(), false),
            None => match names.first() {
                Some(first) => (first.clone(), true),
                None => {
                    unsupported.push((key.clone(), "no variants".to_owned()));
                    continue;
                }
            },
        };
        let default = default.as_str();
        let mut flag = Map::new();
        // The flag set's metadata, then the flag's own (which wins), as flagd merges them.
        let mut metadata = doc.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
        metadata.extend(f.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default());
        if !metadata.is_empty() {
            flag.insert("metadata".into(), Value::Object(metadata));
        }
        flag.insert("type".into(), json!("variant"));
        flag.insert("variants".into(), ordered(variants));
        flag.insert("default_variant".into(), json!(default));
        let disabled = f.get("state").and_then(Value::as_str) == Some("DISABLED");
        if disabled {
            flag.insert("enabled".into(), json!(false));
        }
        if disabled || callers {
            // flagd answers the caller's default when the flag is off (or has no default).
            flag.insert("fallback".into(), json!("caller"));
        }
        if let Some(targeting) = f.get("targeting").filter(|t| t.as_object().is_some_and(|o| !o.is_empty())) {
            let mut scope = Scope { flag: key, evaluators: &evaluators, notes: Vec::new() };
            let mut rules = Rules { variants: &names, default, out: Vec::new(), nulls: Vec::new() };
            match rules.branches(targeting, &logic::always(), &mut scope) {
                Ok(()) => {
                    // Rules at the end serving the default variant change no value; without them
                    // the answer's reason is DEFAULT, as flagd's for a null targeting result.
                    while rules.nulls.last() == Some(&true) {
                        rules.out.pop();
                        rules.nulls.pop();
                    }
                    if !rules.out.is_empty() {
                        flag.insert("rules".into(), Value::Array(rules.out));
                    }
                    scope.notes.sort();
                    scope.notes.dedup();
                    notes.extend(scope.notes.into_iter().map(|n| format!("{key}: {n}")));
                }
                // Left out whole (the flag serves its default variant), and named.
                Err(what) => unsupported.push((key.clone(), format!("targeting: {what}"))),
            }
        }
        if callers && !flag.contains_key("rules") {
            // Nothing ever matches: every answer is DEFAULT, the caller's default.
            flag.insert("constraints".into(), json!([{"attribute": "targetingKey", "operator": "IN", "values": []}]));
        }
        flags.push((key.clone(), Value::Object(flag)));
    }
    let mut file = Map::new();
    file.insert("feature_flags".into(), ordered(flags));
    let header = "# Imported from a flagd flag definition by `toggled import flagd`.\n";
    Ok(Translation::new(header, Value::Object(file), unsupported, notes))
}
