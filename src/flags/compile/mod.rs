//! `FlagFile -> Snapshot`: every check on a flag file lives here.
//!
//! Shape errors (bad YAML, unknown fields, duplicate keys, wrong types) stop the parse at the
//! first one, because a YAML document that does not match the schema cannot be read further.
//! Every *semantic* problem (unknown names, ranges, dates, regexes, orderings) is collected,
//! so one run of `toggled validate` shows all of them, each with path, line and column.

mod monitoring;
mod parse;
mod rules;
mod strategy;
mod sunset;
mod targeting;
pub(crate) use targeting::parse_network;
mod values;

pub use monitoring::parse_condition;
pub use parse::{parse, parse_json};

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::Duration;
use regex::RegexBuilder;
use serde::Serialize;
use serde_json::Value;

use crate::flags::duration::{Span, parse_date, parse_duration, parse_span, parse_timestamp};
use crate::flags::file::{
    ConstraintEntry, FlagEntry, FlagFile, KeyedMap, MonitoringEntry, PhaseEntry, Spanned, StrategyEntry,
    SunsetPlanEntry,
};
use crate::flags::snapshot::{
    Alert, AlertAction, AttrPath, CondOp, Condition, Constraint, Flag, FlagKind, HashSpec, Hashing, Metric, Monitoring,
    NumOp, Operator, Phase, PhaseKind, RateLimit, Snapshot, Stage, Stickiness, Strategy, SuccessMetrics, SunsetAction,
    SunsetPlan, VariantDef, VariantIdx,
};

/// Largest flag file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
/// Largest sum of `traffic_split` weights.
const MAX_TOTAL_WEIGHT: u64 = 1_000_000;
/// Largest compiled regex program, in bytes (guards against pathological patterns).
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Default `sunset_plan` rate limit when `rate_limiting` is listed without `rate_limit`.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit { requests: 100, per: Duration::minutes(1) };
/// Default monitoring interval.
pub const DEFAULT_INTERVAL: Duration = Duration::seconds(30);

/// One problem in a flag file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CompileError {
    /// 1-based; 0 when the position is unknown.
    pub line: u64,
    pub column: u64,
    /// Where in the document: `flag_key.field[index].field`, `segments.name[0]`, ...
    pub path: String,
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a flag file, in document order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CompileErrors(pub Vec<CompileError>);

impl fmt::Display for CompileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl CompileErrors {
    /// Renders every error as `prefix:line:col: path: message`, one per line (for `validate`).
    pub fn render(&self, prefix: &str) -> String {
        self.0.iter().map(|e| format!("{prefix}:{e}\n")).collect()
    }
}

/// Parses and compiles a flag file.
pub fn compile(text: &str) -> Result<Snapshot, CompileErrors> {
    // A file in JSON (what `import` and `export` can write; JSON is YAML) is read by serde_json,
    // several times faster than the YAML parser. A file it cannot read, or that does not
    // compile, goes the YAML way, which reports every problem with its line and column.
    if let Some(file) = parse::parse_json(text)
        && let Ok(snapshot) = compile_file(&file, revision_of(text))
    {
        return Ok(snapshot);
    }
    let file = parse(text)?;
    compile_file(&file, revision_of(text))
}

/// The revision of a file's content: the same bytes give the same revision everywhere.
pub fn revision_of(text: &str) -> String {
    let (high, low) = mur3::murmurhash3_x64_128(text.as_bytes(), 0);
    format!("{:016x}", high ^ low)
}

/// Compiles a parsed file.
pub fn compile_file(file: &FlagFile, revision: String) -> Result<Snapshot, CompileErrors> {
    let mut c = Compiler::default();
    c.collect_metrics(&file.metrics);
    c.collect_segments(&file.segments);
    let mut flags = Vec::with_capacity(file.feature_flags.len());
    let mut pending = Vec::new();
    for (key, entry) in file.feature_flags.iter() {
        if let Some(mut flag) = c.flag(key, entry) {
            if let Some(list) = &entry.value.requires {
                flag.requires = c.requires(&flag.key, flags.len(), list, &mut pending);
            }
            flags.push(flag);
        }
    }
    if c.errors.is_empty() {
        c.resolve_requires(&mut flags, pending);
    }
    if c.errors.is_empty() {
        let metrics = file
            .metrics
            .iter()
            .map(|(k, m)| Metric {
                name: k.value.clone(),
                query: m.value.query.value.clone(),
                description: m.value.description.clone(),
            })
            .collect();
        let segments = file.segments.iter().map(|(k, _)| k.value.clone()).collect();
        Ok(Snapshot::new(flags, metrics, segments, revision))
    } else {
        c.errors.sort_by_key(|e| (e.line, e.column));
        Err(CompileErrors(c.errors))
    }
}

/// Source position of a spanned node.
#[derive(Clone, Copy)]
struct At(u64, u64);

impl<T> From<&Spanned<T>> for At {
    fn from(s: &Spanned<T>) -> Self {
        At(s.referenced.line(), s.referenced.column())
    }
}

#[derive(Default)]
struct Compiler {
    errors: Vec<CompileError>,
    metrics: HashSet<String>,
    segments: HashMap<String, Vec<Constraint>>,
}

/// 1-200 letters, digits and symbols (Unicode, as Unleash allows: emoji too) and `. _ - ~`; `.` and `..` alone
/// cannot be addressed in a URL path, so they are not keys.
fn is_flag_key(key: &str) -> bool {
    (1..=200).contains(&key.chars().count())
        && key.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '~') || is_key_symbol(c))
        && key != "."
        && key != ".."
}

/// Beyond ASCII, a key may hold any visible symbol Unleash accepts in a name (emoji with their
/// joiners and selectors), but no space, control or text-direction character.
fn is_key_symbol(c: char) -> bool {
    !c.is_ascii()
        && !c.is_whitespace()
        && !c.is_control()
        && !matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// An absolute http(s) URL or a path, safe to put in a header: visible ASCII only, and none of
/// `<`, `>`, `"`, `\`, which would let a value close the `Link` header's `<...>` and add links.
fn is_header_url(url: &str) -> bool {
    // `//host/x` is a protocol-relative URL to another host, not a path.
    let absolute = url.starts_with("http://")
        || url.starts_with("https://")
        || (url.starts_with('/') && !url.starts_with("//") && !url.starts_with("/\\"));
    let rest = url.trim_start_matches("https://").trim_start_matches("http://");
    absolute
        && !rest.is_empty()
        && url.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b'\\'))
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// JSON kind, for "variant values of mixed types".
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A constraint value as text: strings as they are, numbers and booleans by their JSON text.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Compiler {
    fn error(&mut self, at: At, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(CompileError { line: at.0, column: at.1, path: path.into(), message: message.into() });
    }

    fn flag(&mut self, key: &Spanned<String>, entry: &Spanned<FlagEntry>) -> Option<Flag> {
        let k = key.value.as_str();
        let errors_before = self.errors.len();
        if !is_flag_key(k) {
            self.error(key.into(), k, "flag keys are 1-200 letters, digits, symbols such as emoji and . _ - ~ (no spaces; not \".\" or \"..\" alone)");
        }
        let e = &entry.value;
        let kind = match e.kind.as_ref().map(|s| s.value.as_str()) {
            None | Some("boolean") => FlagKind::Boolean,
            Some("variant") => FlagKind::Variant,
            Some(other) => {
                let at = e.kind.as_ref().map_or(At::from(key), At::from);
                self.error(at, format!("{k}.type"), format!("unknown type {other:?}; expected boolean or variant"));
                return None;
            }
        };
        let (variants, default, rollout) = match kind {
            FlagKind::Boolean => self.boolean_values(key, e)?,
            FlagKind::Variant => self.variant_values(key, e)?,
        };
        let constraints = match &e.constraints {
            Some(list) => self.constraints(list, &format!("{k}.constraints")),
            None => Vec::new(),
        };
        let strategy = e.rollout_strategy.as_ref().and_then(|s| self.strategy(k, kind, &variants, s));
        let override_stickiness = strategy.as_ref().map_or(Stickiness::Default, |s| s.hash().stickiness.clone());
        let overrides = self.overrides(k, kind, &variants, e);
        let sunset = e.sunset_plan.as_ref().and_then(|p| self.sunset(k, kind, &variants, default, p));
        let monitoring = e.monitoring.as_ref().and_then(|m| self.monitoring(k, m));
        let success_metrics = e.success_metrics.as_ref().map(|s| {
            let path = format!("{k}.success_metrics");
            if let Some(p) = &s.primary {
                self.metric_ref(p, &format!("{path}.primary"));
            }
            for (i, m) in s.secondary.iter().flatten().enumerate() {
                self.metric_ref(m, &format!("{path}.secondary[{i}]"));
            }
            SuccessMetrics {
                primary: s.primary.as_ref().map(|p| p.value.clone()),
                secondary: s.secondary.iter().flatten().map(|m| m.value.clone()).collect(),
            }
        });
        let rules = match &e.rules {
            Some(list) => self.rules(k, kind, &variants, rollout, list),
            None => Vec::new(),
        };
        let deprecated_in = self.version(e.deprecated_in.as_ref(), &format!("{k}.deprecated_in"));
        let introduced_in = self.version(e.introduced_in.as_ref(), &format!("{k}.introduced_in"));
        let caller_fallback = self.switch(k, "fallback", e.fallback.as_ref(), ("default_variant", "caller"));
        let needs_approval = self.switch(k, "change_control", e.change_control.as_ref(), ("none", "approval"));
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Flag {
            key: k.to_owned(),
            kind,
            description: e.description.clone(),
            owner: e.owner.clone(),
            service: e.service.clone(),
            metadata: e.metadata.clone().unwrap_or_default(),
            enabled: e.enabled.unwrap_or(true),
            variants,
            default,
            rollout,
            constraints,
            overrides,
            override_stickiness,
            strategy,
            sunset,
            monitoring,
            success_metrics,
            deprecated_in,
            introduced_in,
            caller_fallback,
            needs_approval,
            rules,
            requires: Vec::new(),
        })
    }

    /// A field of two words: `false` for the first (or none), `true` for the second.
    fn switch(&mut self, k: &str, field: &str, value: Option<&Spanned<String>>, words: (&str, &str)) -> bool {
        let Some(v) = value else { return false };
        if v.value == words.0 || v.value == words.1 {
            return v.value == words.1;
        }
        let message = format!("{field} {:?}: expected {} or {}", v.value, words.0, words.1);
        self.error(v.into(), format!("{k}.{field}"), message);
        false
    }

    fn version(&mut self, v: Option<&Spanned<String>>, path: &str) -> Option<semver::Version> {
        let v = v?;
        let text = v.value.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        match semver::Version::parse(text) {
            Ok(ver) => Some(ver),
            Err(err) => {
                self.error(v.into(), path, format!("{:?} is not a SemVer version: {err}", v.value));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_normalise_units() {
        let c = parse_condition("payment_success_rate < 0.95").expect("valid");
        assert_eq!((c.metric.as_str(), c.op, c.threshold), ("payment_success_rate", CondOp::Lt, 0.95));
        let c = parse_condition("checkout_completion_time > 30s").expect("valid");
        assert_eq!((c.op, c.threshold), (CondOp::Gt, 30.0));
        let c = parse_condition("p99_latency>=3000ms").expect("valid");
        assert_eq!((c.op, c.threshold), (CondOp::Gte, 3.0));
        let c = parse_condition("error_rate != 2%").expect("valid");
        assert_eq!((c.op, c.threshold), (CondOp::Ne, 0.02));
        for bad in ["", "< 3", "x = 3", "x < abc", "x <", "9x < 1", "x < 1e999"] {
            assert!(parse_condition(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flag_keys_are_url_safe() {
        assert!(is_flag_key("new_payment_flow"));
        assert!(is_flag_key("Feature.flexibleRollout-10~x"));
        assert!(!is_flag_key(""));
        assert!(!is_flag_key("has space"));
        assert!(!is_flag_key("slash/no"));
        assert!(!is_flag_key(&"a".repeat(201)));
        assert!(is_flag_key("Feature.UTF-8.😊_φriend_你好_🌍"));
        assert!(is_flag_key("👩\u{200D}💻-flag\u{FE0F}"));
        assert!(!is_flag_key("evil\u{202E}txt"));
        assert!(!is_flag_key("no\u{00A0}break"));
    }

    #[test]
    fn revision_depends_only_on_content() {
        assert_eq!(revision_of("a: 1\n"), revision_of("a: 1\n"));
        assert_ne!(revision_of("a: 1\n"), revision_of("a: 2\n"));
        assert_eq!(revision_of("").len(), 16);
    }
}
