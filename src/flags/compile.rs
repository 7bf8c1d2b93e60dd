//! `FlagFile -> Snapshot`: every check on a flag file lives here.
//!
//! Shape errors (bad YAML, unknown fields, duplicate keys, wrong types) stop the parse at the
//! first one, because a YAML document that does not match the schema cannot be read further.
//! Every *semantic* problem (unknown names, ranges, dates, regexes, orderings) is collected,
//! so one run of `toggled validate` shows all of them, each with path, line and column.

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::Duration;
use regex::RegexBuilder;
use serde::Serialize;
use serde_json::Value;

use super::duration::{Span, parse_date, parse_duration, parse_span, parse_timestamp};
use super::file::{
    ConstraintEntry, FlagEntry, FlagFile, KeyedMap, MonitoringEntry, PhaseEntry, Spanned, StrategyEntry,
    SunsetPlanEntry,
};
use super::snapshot::{
    Alert, AlertAction, AttrPath, CondOp, Condition, Constraint, Flag, FlagKind, HashSpec, Metric, Monitoring, NumOp,
    Operator, Phase, PhaseKind, RateLimit, Snapshot, Stage, Stickiness, Strategy, SuccessMetrics, SunsetAction,
    SunsetPlan, VariantDef, VariantIdx,
};

/// Largest flag file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
/// Largest sum of `traffic_split` weights.
const MAX_TOTAL_WEIGHT: u64 = 1_000_000;
/// Largest compiled regex program, in bytes (guards against pathological patterns).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Default `sunset_plan` rate limit when `rate_limiting` is listed without `rate_limit`.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit { requests: 100, per: Duration::minutes(1) };
/// Default monitoring interval.
pub const DEFAULT_INTERVAL: Duration = Duration::seconds(30);

/// One problem in a flag file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    let file = parse(text)?;
    compile_file(&file, revision_of(text))
}

/// The revision of a file's content: the same bytes give the same revision everywhere.
pub fn revision_of(text: &str) -> String {
    let (high, low) = mur3::murmurhash3_x64_128(text.as_bytes(), 0);
    format!("{:016x}", high ^ low)
}

/// Reads the YAML into the lax mirror. Stops at the first shape error.
pub fn parse(text: &str) -> Result<FlagFile, CompileErrors> {
    let single = |line, column, message: String| {
        CompileErrors(vec![CompileError { line, column, path: String::new(), message }])
    };
    if text.len() > MAX_FILE_BYTES {
        return Err(single(0, 0, format!("the file is {} bytes; the limit is {MAX_FILE_BYTES}", text.len())));
    }
    let content = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#') && *l != "---");
    if content.count() == 0 {
        return Err(single(1, 1, "the file is empty: expected a `feature_flags:` mapping".to_owned()));
    }
    if let Some(e) = both_flag_sections(text) {
        return Err(CompileErrors(vec![e]));
    }
    // Path tracking costs ~40% of parse time, so only a failed parse is repeated with it.
    let result = serde_saphyr::from_str_with_options::<FlagFile>(text, parse_options());
    let path_of_error = || {
        let mut path = String::new();
        let _ = serde_saphyr::with_deserializer_from_str_with_options(text, parse_options(), |de| {
            serde_path_to_error::deserialize::<_, FlagFile>(de).map_err(|e| {
                path = e.path().to_string();
                e.into_inner()
            })
        });
        path
    };
    result.map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let text_err = e.without_snippet().to_string();
        let message = match text_err.split_once(" at line ") {
            Some((m, _)) => m.to_owned(),
            None => text_err,
        };
        let message = message.replace(", set DuplicateKeyPolicy in Options if acceptable", "");
        let message = if message.contains("budget breached") || message.contains("limit exceeded") {
            format!("the document exceeds a safety limit on YAML size, nesting or aliases ({message})")
        } else {
            message
        };
        let path = display_path(&path_of_error(), text, (line, column));
        CompileErrors(vec![CompileError { line, column, path, message }])
    })
}

fn parse_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        budget: serde_saphyr::budget! {
            max_depth: 64,
            max_nodes: 4_000_000,
            max_total_scalar_bytes: MAX_FILE_BYTES,
            max_aliases: 10_000,
            max_anchors: 10_000,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
            max_replay_stack_depth: 16,
            max_alias_expansions_per_anchor: 1_000,
        },
    }
}

/// `feature_flags:` and its alias `flags:` both at the top level: serde would report it
/// without a position, so it is found here.
fn both_flag_sections(text: &str) -> Option<CompileError> {
    let mut seen = None;
    for (i, line) in text.lines().enumerate() {
        let key = line.split(':').next().unwrap_or_default().trim_end();
        if line.starts_with(|c: char| !c.is_whitespace()) && matches!(key, "feature_flags" | "flags") {
            match seen {
                None => seen = Some(key),
                Some(first) => {
                    return Some(CompileError {
                        line: i as u64 + 1,
                        column: 1,
                        path: key.to_owned(),
                        message: format!("`{key}` repeats `{first}` (an alias of it): keep one flag section"),
                    });
                }
            }
        }
    }
    None
}

/// Turns serde's path into ours: the flag key first, without the `.value` segments that
/// `Spanned` wrappers add, and with map keys serde could not see (`?`) filled in from the file.
fn display_path(raw: &str, text: &str, at: (u64, u64)) -> String {
    let mut segments: Vec<String> = Vec::new();
    let mut run = 0;
    // Every field named `value` in the mirror is itself `Spanned`, so a run of n `value`
    // segments holds n / 2 real fields.
    let parts: Vec<&str> = raw.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if *part == "value" {
            run += 1;
            if parts.get(i + 1) == Some(&"value") {
                continue;
            }
            segments.extend(std::iter::repeat_n("value".to_owned(), run / 2));
            run = 0;
        } else {
            segments.push((*part).to_owned());
        }
    }
    if segments.len() > 1 && segments[1].starts_with('?') {
        let section = segments[0].clone();
        if matches!(section.as_str(), "feature_flags" | "flags" | "segments" | "metrics") {
            segments[1] = segments[1].replacen('?', &enclosing_key(text, at, &section), 1);
        }
    }
    let p = segments.join(".");
    let p = p.strip_prefix("feature_flags.").or_else(|| p.strip_prefix("flags.")).unwrap_or(&p);
    if p.len() > 120 {
        let cut = (0..=120).rev().find(|i| p.is_char_boundary(*i)).unwrap_or(0);
        return format!("{}...", &p[..cut]);
    }
    p.to_owned()
}

/// When even the lenient parse fails (broken YAML): the last key at the section's first
/// indentation above `line`, for block-style files.
fn enclosing_key_by_indent(text: &str, line: u64, section: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let is_content = |l: &str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    let header = lines.iter().position(|l| {
        let key = l.split(':').next().unwrap_or_default();
        indent(l) == 0 && (key == section || (section == "feature_flags" && key == "flags"))
    })?;
    let level = indent(lines.iter().skip(header + 1).find(|l| is_content(l))?);
    let upto = usize::try_from(line).ok()?.min(lines.len());
    lines[header + 1..upto].iter().rev().find(|l| is_content(l) && indent(l) == level).and_then(|l| {
        let key = l.trim().split(':').next()?.trim().trim_matches(|c| c == '"' || c == '\'');
        (!key.is_empty()).then(|| key.to_owned())
    })
}

/// The key, in the top-level `section`, whose entry holds position `at`: the last key
/// that starts at or before it. Found with a lenient second parse (only on the error path).
fn enclosing_key(text: &str, at: (u64, u64), section: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Keys {
        #[serde(alias = "flags")]
        feature_flags: Option<KeyedMap<serde::de::IgnoredAny>>,
        segments: Option<KeyedMap<serde::de::IgnoredAny>>,
        metrics: Option<KeyedMap<serde::de::IgnoredAny>>,
    }
    let mut options = parse_options();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
    let Ok(keys) = serde_saphyr::from_str_with_options::<Keys>(text, options) else {
        return enclosing_key_by_indent(text, at.0, section).unwrap_or_else(|| "?".to_owned());
    };
    let map = match section {
        "segments" => keys.segments,
        "metrics" => keys.metrics,
        _ => keys.feature_flags,
    };
    map.into_iter()
        .flat_map(|m| m.0)
        .map(|(k, _)| k)
        .filter(|k| (k.referenced.line(), k.referenced.column()) <= at)
        .max_by_key(|k| (k.referenced.line(), k.referenced.column()))
        .map_or_else(|| "?".to_owned(), |k| k.value)
}

/// Compiles a parsed file.
pub fn compile_file(file: &FlagFile, revision: String) -> Result<Snapshot, CompileErrors> {
    let mut c = Compiler::default();
    c.collect_metrics(&file.metrics);
    c.collect_segments(&file.segments);
    let mut flags = Vec::with_capacity(file.feature_flags.len());
    for (key, entry) in file.feature_flags.iter() {
        if let Some(flag) = c.flag(key, entry) {
            flags.push(flag);
        }
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

/// 1-200 letters and digits (Unicode, as Unleash allows) and `. _ - ~`; `.` and `..` alone
/// cannot be addressed in a URL path, so they are not keys.
fn is_flag_key(key: &str) -> bool {
    (1..=200).contains(&key.chars().count())
        && key.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '~'))
        && key != "."
        && key != ".."
}

/// An absolute http(s) URL or a path, safe to put in a header: visible ASCII only, and none of
/// `<`, `>`, `"`, `\`, which would let a value close the `Link` header's `<...>` and add links.
fn is_header_url(url: &str) -> bool {
    let absolute = url.starts_with("http://") || url.starts_with("https://") || url.starts_with('/');
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

    fn collect_metrics(&mut self, metrics: &KeyedMap<Spanned<super::file::MetricEntry>>) {
        for (name, m) in metrics.iter() {
            if !is_identifier(&name.value) {
                self.error(
                    name.into(),
                    format!("metrics.{}", name.value),
                    "metric names are letters, digits and underscores, starting with a letter",
                );
            }
            if m.value.query.value.trim().is_empty() {
                self.error((&m.value.query).into(), format!("metrics.{}.query", name.value), "query is empty");
            }
            self.metrics.insert(name.value.clone());
        }
    }

    fn collect_segments(&mut self, segments: &KeyedMap<Vec<Spanned<ConstraintEntry>>>) {
        for (name, list) in segments.iter() {
            let mut compiled = Vec::with_capacity(list.len());
            for (i, entry) in list.iter().enumerate() {
                let path = format!("segments.{}[{i}]", name.value);
                if let Some(seg) = &entry.value.segment {
                    self.error(seg.into(), path, "a segment cannot refer to another segment; list its constraints");
                    continue;
                }
                if let Some(c) = self.constraint(entry, &path) {
                    compiled.push(c);
                }
            }
            self.segments.insert(name.value.clone(), compiled);
        }
    }

    /// A segment's constraints, each marked with the segment's name.
    fn segment(&mut self, name: &Spanned<String>, path: &str) -> Option<Vec<Constraint>> {
        let found = self
            .segments
            .get(&name.value)
            .map(|cs| cs.iter().map(|c| Constraint { segment: Some(name.value.clone()), ..c.clone() }).collect());
        if found.is_none() {
            let known = self.known_segments();
            self.error(name.into(), path, format!("unknown segment {:?}; defined segments: {known}", name.value));
        }
        found
    }

    fn known_segments(&self) -> String {
        let mut names: Vec<&str> = self.segments.keys().map(String::as_str).collect();
        names.sort_unstable();
        if names.is_empty() { "none".to_owned() } else { names.join(", ") }
    }

    fn metric_ref(&mut self, name: &Spanned<String>, path: &str) {
        if !self.metrics.contains(&name.value) {
            let mut names: Vec<&str> = self.metrics.iter().map(String::as_str).collect();
            names.sort_unstable();
            let known = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
            self.error(
                name.into(),
                path,
                format!("unknown metric {:?}; define it under `metrics:` (defined: {known})", name.value),
            );
        }
    }

    /// A constraint list, with `{segment: name}` entries inlined.
    fn constraints(&mut self, list: &[Spanned<ConstraintEntry>], path: &str) -> Vec<Constraint> {
        let mut out = Vec::with_capacity(list.len());
        for (i, entry) in list.iter().enumerate() {
            let path = format!("{path}[{i}]");
            let e = &entry.value;
            if let Some(seg) = &e.segment {
                if e.attribute.is_some() || e.operator.is_some() || e.values.is_some() || e.value.is_some() {
                    self.error(
                        entry.into(),
                        &path,
                        "a constraint is either `segment: name` or an attribute test, not both",
                    );
                }
                if let Some(cs) = self.segment(seg, &format!("{path}.segment")) {
                    out.extend(cs);
                }
            } else if let Some(c) = self.constraint(entry, &path) {
                out.push(c);
            }
        }
        out
    }

    fn constraint(&mut self, entry: &Spanned<ConstraintEntry>, path: &str) -> Option<Constraint> {
        let e = &entry.value;
        let Some(attribute) = e.attribute.as_ref().filter(|a| !a.value.trim().is_empty()) else {
            self.error(entry.into(), path, "a constraint needs `attribute` (or `segment`)");
            return None;
        };
        let Some(op) = &e.operator else {
            self.error(entry.into(), path, "a constraint needs `operator`");
            return None;
        };
        let raw: Vec<&Spanned<Value>> = match (&e.values, &e.value) {
            (Some(_), Some(v)) => {
                self.error(v.into(), format!("{path}.value"), "give `values` or `value`, not both");
                return None;
            }
            (Some(vs), None) => vs.iter().collect(),
            (None, Some(v)) => vec![v],
            (None, None) => {
                self.error(entry.into(), path, format!("operator {} needs `values` (or `value`)", op.value));
                return None;
            }
        };
        let ci = e.case_insensitive.unwrap_or(false);
        let vpath = format!("{path}.values");
        let mut texts = Vec::with_capacity(raw.len());
        for v in &raw {
            match scalar_text(&v.value) {
                Some(t) => texts.push(if ci { t.to_lowercase() } else { t }),
                None => {
                    self.error((*v).into(), &vpath, "constraint values are strings or numbers");
                    return None;
                }
            }
        }
        if texts.is_empty() {
            self.error(entry.into(), &vpath, "needs at least one value");
            return None;
        }
        let operator = match op.value.as_str() {
            "IN" => Operator::In(texts),
            "NOT_IN" => Operator::NotIn(texts),
            "STR_CONTAINS" => Operator::StrContains(texts),
            "STR_STARTS_WITH" => Operator::StrStartsWith(texts),
            "STR_ENDS_WITH" => Operator::StrEndsWith(texts),
            other => {
                if texts.len() != 1 {
                    self.error(raw[1].into(), &vpath, format!("operator {other} takes exactly one value"));
                    return None;
                }
                let text = &texts[0];
                let at = At::from(raw[0]);
                let single = match other {
                    "REGEX" => RegexBuilder::new(text)
                        .case_insensitive(ci)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .map(Operator::Regex)
                        .map_err(|e| {
                            format!("invalid regex: {}", e.to_string().split_whitespace().collect::<Vec<_>>().join(" "))
                        }),
                    "NUM_EQ" | "NUM_GT" | "NUM_GTE" | "NUM_LT" | "NUM_LTE" => match text.trim().parse::<f64>() {
                        Ok(n) if n.is_finite() => Ok(Operator::Num(cmp_op(other), n)),
                        _ => Err(format!("{text:?} is not a number")),
                    },
                    "DATE_AFTER" => parse_date(text).map(Operator::DateAfter),
                    "DATE_BEFORE" => parse_date(text).map(Operator::DateBefore),
                    "SEMVER_EQ" | "SEMVER_GT" | "SEMVER_GTE" | "SEMVER_LT" | "SEMVER_LTE" => {
                        semver::Version::parse(text.trim())
                            .map(|v| Operator::Semver(cmp_op(other), v))
                            .map_err(|e| format!("{text:?} is not a SemVer version: {e}"))
                    }
                    _ => {
                        self.error(
                            op.into(),
                            format!("{path}.operator"),
                            format!(
                                "unknown operator {other:?}; expected one of IN, NOT_IN, STR_CONTAINS, STR_STARTS_WITH, \
                                 STR_ENDS_WITH, REGEX, NUM_EQ, NUM_GT, NUM_GTE, NUM_LT, NUM_LTE, DATE_AFTER, \
                                 DATE_BEFORE, SEMVER_EQ, SEMVER_GT, SEMVER_GTE, SEMVER_LT, SEMVER_LTE"
                            ),
                        );
                        return None;
                    }
                };
                match single {
                    Ok(op) => op,
                    Err(msg) => {
                        self.error(at, &vpath, msg);
                        return None;
                    }
                }
            }
        };
        Some(Constraint {
            attribute: AttrPath::new(attribute.value.trim()),
            operator,
            inverted: e.inverted.unwrap_or(false),
            case_insensitive: ci,
            segment: None,
        })
    }

    /// A positive duration, or `None` for `permanent` where `permanent_ok`; errors are recorded.
    fn positive_span(
        &mut self,
        d: &Spanned<String>,
        path: &str,
        permanent_ok: bool,
        what: &str,
    ) -> Result<Option<Duration>, ()> {
        match parse_span(&d.value) {
            Ok(Span::Permanent) if permanent_ok => Ok(None),
            Ok(Span::Permanent) => {
                self.error(d.into(), path, "only the last stage can be permanent");
                Err(())
            }
            Ok(Span::Finite(dur)) if dur > Duration::zero() => Ok(Some(dur)),
            Ok(Span::Finite(_)) => {
                self.error(d.into(), path, format!("{what} must be positive"));
                Err(())
            }
            Err(msg) => {
                self.error(d.into(), path, msg);
                Err(())
            }
        }
    }

    fn percentage(&mut self, v: &Spanned<Value>, path: &str) -> Option<u32> {
        let p = v.value.as_u64().filter(|p| *p <= 100);
        if p.is_none() {
            self.error(v.into(), path, format!("percentage must be a whole number from 0 to 100, not {}", v.value));
        }
        p.map(|p| p as u32)
    }

    fn flag(&mut self, key: &Spanned<String>, entry: &Spanned<FlagEntry>) -> Option<Flag> {
        let k = key.value.as_str();
        let errors_before = self.errors.len();
        if !is_flag_key(k) {
            self.error(key.into(), k, "flag keys are 1-200 letters, digits and . _ - ~ (not \".\" or \"..\" alone)");
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
        let deprecated_in = self.version(e.deprecated_in.as_ref(), &format!("{k}.deprecated_in"));
        let introduced_in = self.version(e.introduced_in.as_ref(), &format!("{k}.introduced_in"));
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
        })
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

    fn boolean_values(
        &mut self,
        key: &Spanned<String>,
        e: &FlagEntry,
    ) -> Option<(Vec<VariantDef>, VariantIdx, VariantIdx)> {
        let k = key.value.as_str();
        for (field, present) in [
            ("variants", e.variants.as_ref().map(|_| At::from(key))),
            ("default_variant", e.default_variant.as_ref().map(At::from)),
            ("rollout_variant", e.rollout_variant.as_ref().map(At::from)),
        ] {
            if let Some(at) = present {
                self.error(at, format!("{k}.{field}"), format!("`{field}` is for variant flags; add `type: variant`"));
            }
        }
        let default = match &e.default_value {
            None => false,
            Some(v) => match v.value {
                Value::Bool(b) => b,
                _ => {
                    self.error(
                        v.into(),
                        format!("{k}.default_value"),
                        "a boolean flag's default_value is true or false",
                    );
                    return None;
                }
            },
        };
        let rollout = match &e.rollout_value {
            None => !default,
            Some(v) => match v.value {
                Value::Bool(b) => b,
                _ => {
                    self.error(
                        v.into(),
                        format!("{k}.rollout_value"),
                        "a boolean flag's rollout_value is true or false",
                    );
                    return None;
                }
            },
        };
        let variants = vec![
            VariantDef { name: "off".to_owned(), value: Value::Bool(false) },
            VariantDef { name: "on".to_owned(), value: Value::Bool(true) },
        ];
        Some((variants, usize::from(default), usize::from(rollout)))
    }

    fn variant_values(
        &mut self,
        key: &Spanned<String>,
        e: &FlagEntry,
    ) -> Option<(Vec<VariantDef>, VariantIdx, VariantIdx)> {
        let k = key.value.as_str();
        for (field, present) in [
            ("default_value", e.default_value.as_ref().map(At::from)),
            ("rollout_value", e.rollout_value.as_ref().map(At::from)),
        ] {
            if let Some(at) = present {
                self.error(
                    at,
                    format!("{k}.{field}"),
                    format!("`{field}` is for boolean flags; variant flags use default_variant/rollout_variant"),
                );
            }
        }
        let Some(vs) = e.variants.as_ref().filter(|v| !v.is_empty()) else {
            self.error(key.into(), format!("{k}.variants"), "a variant flag needs at least one variant");
            return None;
        };
        let mut variants = Vec::with_capacity(vs.len());
        let mut first_kind: Option<&'static str> = None;
        for (name, value) in vs.iter() {
            let path = format!("{k}.variants.{}", name.value);
            if name.value.is_empty() {
                self.error(name.into(), &path, "variant names cannot be empty");
            }
            let kind = kind_of(&value.value);
            if kind == "null" {
                self.error(value.into(), &path, "a variant value cannot be null");
            }
            match first_kind {
                None => first_kind = Some(kind),
                Some(first) if first != kind => self.error(
                    value.into(),
                    &path,
                    format!("variant values must all have one type: this one is {kind}, the first is {first}"),
                ),
                Some(_) => {}
            }
            variants.push(VariantDef { name: name.value.clone(), value: value.value.clone() });
        }
        let find = |name: &str| variants.iter().position(|v| v.name == name);
        let names = || variants.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", ");
        let Some(dv) = &e.default_variant else {
            self.error(
                key.into(),
                format!("{k}.default_variant"),
                "a variant flag needs default_variant (its safe value)",
            );
            return None;
        };
        let Some(default) = find(&dv.value) else {
            self.error(
                dv.into(),
                format!("{k}.default_variant"),
                format!("{:?} is not a variant of this flag (variants: {})", dv.value, names()),
            );
            return None;
        };
        let rollout = match &e.rollout_variant {
            None => default,
            Some(rv) => {
                if let Some(i) = find(&rv.value) {
                    i
                } else {
                    self.error(
                        rv.into(),
                        format!("{k}.rollout_variant"),
                        format!("{:?} is not a variant of this flag (variants: {})", rv.value, names()),
                    );
                    return None;
                }
            }
        };
        Some((variants, default, rollout))
    }

    fn variant_ref(&mut self, name: &Spanned<String>, variants: &[VariantDef], path: &str) -> Option<VariantIdx> {
        let found = variants.iter().position(|v| v.name == name.value);
        if found.is_none() {
            let names = variants.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", ");
            self.error(
                name.into(),
                path,
                format!("{:?} is not a variant of this flag (variants: {names})", name.value),
            );
        }
        found
    }

    fn overrides(
        &mut self,
        k: &str,
        kind: FlagKind,
        variants: &[VariantDef],
        e: &FlagEntry,
    ) -> HashMap<String, VariantIdx> {
        let mut out = HashMap::new();
        let Some(map) = &e.overrides else { return out };
        if kind == FlagKind::Boolean {
            if let Some((first, _)) = map.0.first() {
                self.error(first.into(), format!("{k}.overrides"), "overrides pin variants; add `type: variant`");
            }
            return out;
        }
        for (name, values) in map.iter() {
            let path = format!("{k}.overrides.{}", name.value);
            let Some(idx) = self.variant_ref(name, variants, &path) else { continue };
            for v in values {
                match scalar_text(&v.value) {
                    Some(text) => {
                        if let Some(prev) = out.insert(text.clone(), idx) {
                            if prev != idx {
                                self.error(
                                    v.into(),
                                    &path,
                                    format!("{text:?} is already pinned to variant {:?}", variants[prev].name),
                                );
                            }
                        }
                    }
                    None => self.error(v.into(), &path, "override values are stickiness values (strings or numbers)"),
                }
            }
        }
        out
    }

    fn strategy(
        &mut self,
        k: &str,
        kind: FlagKind,
        variants: &[VariantDef],
        s: &Spanned<StrategyEntry>,
    ) -> Option<Strategy> {
        let e = &s.value;
        let path = format!("{k}.rollout_strategy");
        let strategy_kind = e.kind.value.as_str();
        let applies: &[&str] = match strategy_kind {
            "percentage" => &["percentage"],
            "gradual" => &["stages", "start"],
            "ab_test" => &["traffic_split", "duration", "start", "winner"],
            "scheduled" => &["steps"],
            other => {
                self.error(
                    (&e.kind).into(),
                    format!("{path}.type"),
                    format!("unknown strategy type {other:?}; expected percentage, gradual, ab_test or scheduled"),
                );
                return None;
            }
        };
        let fields: [(&str, Option<At>); 7] = [
            ("percentage", e.percentage.as_ref().map(At::from)),
            ("stages", e.stages.as_ref().map(|_| At::from(s))),
            ("start", e.start.as_ref().map(At::from)),
            ("traffic_split", e.traffic_split.as_ref().map(|_| At::from(s))),
            ("duration", e.duration.as_ref().map(At::from)),
            ("winner", e.winner.as_ref().map(At::from)),
            ("steps", e.steps.as_ref().map(|_| At::from(s))),
        ];
        let mut ok = true;
        for (field, at) in fields {
            if let Some(at) = at
                && !applies.contains(&field)
            {
                self.error(
                    at,
                    format!("{path}.{field}"),
                    format!("`{field}` does not apply to a {strategy_kind} rollout"),
                );
                ok = false;
            }
        }
        let stickiness = match &e.stickiness {
            None => Stickiness::Default,
            Some(st) if st.value == "default" => Stickiness::Default,
            Some(st) if st.value.trim().is_empty() => {
                self.error(st.into(), format!("{path}.stickiness"), "stickiness names a context attribute");
                ok = false;
                Stickiness::Default
            }
            Some(st) => Stickiness::Attribute(AttrPath::new(st.value.trim())),
        };
        let group = match &e.group_id {
            None => k.to_owned(),
            Some(g) if g.value.is_empty() => {
                self.error(g.into(), format!("{path}.group_id"), "group_id cannot be empty");
                ok = false;
                k.to_owned()
            }
            Some(g) => g.value.clone(),
        };
        let hash = HashSpec { stickiness, group };
        let start = match &e.start {
            Some(st) => match parse_timestamp(&st.value) {
                Ok(t) => Some(t),
                Err(msg) => {
                    self.error(st.into(), format!("{path}.start"), msg);
                    ok = false;
                    None
                }
            },
            None => None,
        };
        let strategy = match strategy_kind {
            "percentage" => {
                let Some(p) = &e.percentage else {
                    self.error(s.into(), &path, "a percentage rollout needs `percentage`");
                    return None;
                };
                Strategy::Percentage { percentage: self.percentage(p, &format!("{path}.percentage"))?, hash }
            }
            "gradual" => Strategy::Gradual { stages: self.stages(&path, s)?, start, hash },
            "ab_test" => self.ab_test(&path, kind, variants, s, start, hash)?,
            _ => Strategy::Scheduled { steps: self.steps(&path, s)?, hash },
        };
        ok.then_some(strategy)
    }

    fn stages(&mut self, path: &str, s: &Spanned<StrategyEntry>) -> Option<Vec<Stage>> {
        let Some(entries) = s.value.stages.as_ref().filter(|st| !st.is_empty()) else {
            self.error(s.into(), path, "a gradual rollout needs at least one stage");
            return None;
        };
        let mut stages = Vec::with_capacity(entries.len());
        let mut ok = true;
        let mut previous = 0;
        for (i, st) in entries.iter().enumerate() {
            let spath = format!("{path}.stages[{i}]");
            let last = i + 1 == entries.len();
            let percentage = self.percentage(&st.value.percentage, &format!("{spath}.percentage"));
            if let Some(p) = percentage {
                if p < previous {
                    self.error(
                        (&st.value.percentage).into(),
                        format!("{spath}.percentage"),
                        format!("stages must not decrease: {p}% follows {previous}%"),
                    );
                    ok = false;
                }
                previous = previous.max(p);
            }
            let duration = match &st.value.duration {
                None if last => None,
                None => {
                    self.error(st.into(), format!("{spath}.duration"), "every stage but the last needs a duration");
                    ok = false;
                    None
                }
                Some(d) => {
                    self.positive_span(d, &format!("{spath}.duration"), last, "a stage duration").unwrap_or_else(|()| {
                        ok = false;
                        None
                    })
                }
            };
            let (criteria, constraints) = match &st.value.criteria {
                None => (None, Vec::new()),
                Some(c) => match self.segment(c, &format!("{spath}.criteria")) {
                    Some(cs) => (Some(c.value.clone()), cs),
                    None => {
                        ok = false;
                        (None, Vec::new())
                    }
                },
            };
            if let Some(percentage) = percentage {
                stages.push(Stage { percentage, duration, criteria, constraints });
            } else {
                ok = false;
            }
        }
        ok.then_some(stages)
    }

    fn ab_test(
        &mut self,
        path: &str,
        kind: FlagKind,
        variants: &[VariantDef],
        s: &Spanned<StrategyEntry>,
        start: Option<chrono::DateTime<chrono::Utc>>,
        hash: HashSpec,
    ) -> Option<Strategy> {
        let e = &s.value;
        if kind == FlagKind::Boolean {
            self.error(s.into(), path, "an ab_test splits between variants; add `type: variant` and `variants`");
            return None;
        }
        let Some(split_entries) = e.traffic_split.as_ref().filter(|t| !t.is_empty()) else {
            self.error(s.into(), path, "an ab_test needs `traffic_split: {variant: weight, ...}`");
            return None;
        };
        let mut split = Vec::with_capacity(split_entries.len());
        let mut total: u64 = 0;
        let mut ok = true;
        for (name, weight) in split_entries.iter() {
            let wpath = format!("{path}.traffic_split.{}", name.value);
            let idx = self.variant_ref(name, variants, &wpath);
            let w = weight.value.as_u64().filter(|w| *w > 0);
            match (idx, w) {
                (Some(i), Some(w)) => {
                    total += w;
                    split.push((i, w as u32));
                }
                (_, None) => {
                    self.error(
                        weight.into(),
                        &wpath,
                        format!("a weight is a positive whole number, not {}", weight.value),
                    );
                    ok = false;
                }
                (None, _) => ok = false,
            }
        }
        if total > MAX_TOTAL_WEIGHT {
            self.error(
                s.into(),
                format!("{path}.traffic_split"),
                format!("weights sum to {total}; the limit is {MAX_TOTAL_WEIGHT}"),
            );
            ok = false;
        }
        let duration = match &e.duration {
            None => None,
            Some(d) => {
                self.positive_span(d, &format!("{path}.duration"), true, "the test's duration").unwrap_or_else(|()| {
                    ok = false;
                    None
                })
            }
        };
        let winner = match &e.winner {
            None => None,
            Some(w) => {
                let idx = self.variant_ref(w, variants, &format!("{path}.winner"));
                ok &= idx.is_some();
                idx
            }
        };
        ok.then_some(Strategy::AbTest { split, total_weight: total as u32, duration, start, winner, hash })
    }

    fn steps(&mut self, path: &str, s: &Spanned<StrategyEntry>) -> Option<Vec<(chrono::DateTime<chrono::Utc>, u32)>> {
        let Some(entries) = s.value.steps.as_ref().filter(|st| !st.is_empty()) else {
            self.error(s.into(), path, "a scheduled rollout needs at least one step");
            return None;
        };
        let mut steps = Vec::with_capacity(entries.len());
        let mut ok = true;
        for (i, st) in entries.iter().enumerate() {
            let spath = format!("{path}.steps[{i}]");
            let pct = self.percentage(&st.value.percentage, &format!("{spath}.percentage"));
            let at = match parse_timestamp(&st.value.at.value) {
                Ok(t) => Some(t),
                Err(msg) => {
                    self.error((&st.value.at).into(), format!("{spath}.at"), msg);
                    None
                }
            };
            match (at, pct) {
                (Some(at), Some(p)) => {
                    if let Some((prev, _)) = steps.last()
                        && at <= *prev
                    {
                        self.error(
                            (&st.value.at).into(),
                            format!("{spath}.at"),
                            "steps must be in chronological order",
                        );
                        ok = false;
                    }
                    steps.push((at, p));
                }
                _ => ok = false,
            }
        }
        ok.then_some(steps)
    }

    fn sunset(
        &mut self,
        k: &str,
        kind: FlagKind,
        variants: &[VariantDef],
        default: VariantIdx,
        plan: &Spanned<SunsetPlanEntry>,
    ) -> Option<SunsetPlan> {
        let path = format!("{k}.sunset_plan");
        let entries = [
            (PhaseKind::Warning, "warning_phase", &plan.value.warning_phase),
            (PhaseKind::Restricted, "restricted_phase", &plan.value.restricted_phase),
            (PhaseKind::Shutdown, "shutdown_phase", &plan.value.shutdown_phase),
        ];
        if entries.iter().all(|(_, _, e)| e.is_none()) {
            self.error(plan.into(), &path, "a sunset plan needs at least one phase");
            return None;
        }
        let shutdown_date = plan.value.shutdown_phase.as_ref().and_then(|p| parse_date(&p.value.start_date.value).ok());
        let mut phases: Vec<Phase> = Vec::new();
        let mut ok = true;
        for (phase_kind, field, entry) in entries {
            let Some(entry) = entry else { continue };
            let ppath = format!("{path}.{field}");
            match self.phase(k, kind, variants, default, phase_kind, &ppath, &entry.value, shutdown_date) {
                Some(phase) => {
                    if let Some(prev) = phases.last()
                        && phase.start <= prev.start
                    {
                        self.error(
                            (&entry.value.start_date).into(),
                            format!("{ppath}.start_date"),
                            format!(
                                "the {} phase must start after the {} phase",
                                phase_kind.as_str(),
                                prev.kind.as_str()
                            ),
                        );
                        ok = false;
                    }
                    phases.push(phase);
                }
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let deprecation_header = phases.first().map(|p| format!("@{}", p.start.timestamp()));
        let shutdown_at = phases.iter().find(|p| p.kind == PhaseKind::Shutdown).map(|p| p.start);
        let sunset_header = shutdown_at.map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string());
        Some(SunsetPlan { phases, deprecation_header, sunset_header, shutdown_at })
    }

    #[allow(clippy::too_many_arguments)]
    fn phase(
        &mut self,
        k: &str,
        kind: FlagKind,
        variants: &[VariantDef],
        default: VariantIdx,
        phase_kind: PhaseKind,
        path: &str,
        e: &PhaseEntry,
        shutdown_date: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Option<Phase> {
        let errors_before = self.errors.len();
        let start = parse_date(&e.start_date.value)
            .map_err(|msg| self.error((&e.start_date).into(), format!("{path}.start_date"), msg))
            .ok();
        let duration = match &e.duration {
            None => None,
            Some(d) => match parse_span(&d.value) {
                Ok(Span::Finite(dur)) => Some(dur),
                Ok(Span::Permanent) => None,
                Err(msg) => {
                    self.error(d.into(), format!("{path}.duration"), msg);
                    None
                }
            },
        };
        let mut actions = Vec::with_capacity(e.actions.len());
        for (i, a) in e.actions.iter().enumerate() {
            match SunsetAction::parse(&a.value) {
                Some(action) if !actions.contains(&action) => actions.push(action),
                Some(_) => {}
                None => {
                    let known = SunsetAction::ALL.map(SunsetAction::as_str).join(", ");
                    self.error(
                        a.into(),
                        format!("{path}.actions[{i}]"),
                        format!("unknown action {:?}; expected one of {known}", a.value),
                    );
                }
            }
        }
        let rate_limit = match &e.rate_limit {
            None => DEFAULT_RATE_LIMIT,
            Some(rl) => {
                let requests = rl.value.requests.value.as_u64().filter(|n| (1..=u64::from(u32::MAX)).contains(n));
                if requests.is_none() {
                    self.error(
                        (&rl.value.requests).into(),
                        format!("{path}.rate_limit.requests"),
                        "requests is a positive whole number",
                    );
                }
                let per = match parse_duration(&rl.value.per.value) {
                    Ok(d) if d > Duration::zero() => Some(d),
                    Ok(_) => {
                        self.error((&rl.value.per).into(), format!("{path}.rate_limit.per"), "per must be positive");
                        None
                    }
                    Err(msg) => {
                        self.error((&rl.value.per).into(), format!("{path}.rate_limit.per"), msg);
                        None
                    }
                };
                RateLimit { requests: requests.unwrap_or(1) as u32, per: per.unwrap_or(Duration::minutes(1)) }
            }
        };
        let shutdown = match (&e.shutdown_value, kind) {
            (None, FlagKind::Boolean) => 0,
            (None, FlagKind::Variant) => default,
            (Some(v), FlagKind::Boolean) => match v.value {
                Value::Bool(b) => usize::from(b),
                _ => {
                    self.error(
                        v.into(),
                        format!("{path}.shutdown_value"),
                        "a boolean flag's shutdown_value is true or false",
                    );
                    0
                }
            },
            (Some(v), FlagKind::Variant) => {
                let name = Spanned::new(v.value.as_str().unwrap_or_default().to_owned(), v.referenced, v.defined);
                self.variant_ref(&name, variants, &format!("{path}.shutdown_value")).unwrap_or(default)
            }
        };
        for (field, url) in [("redirect", &e.redirect), ("link", &e.link)] {
            if let Some(u) = url
                && !is_header_url(&u.value)
            {
                self.error(
                    u.into(),
                    format!("{path}.{field}"),
                    "expected an absolute http(s) URL or a path starting with /, without spaces, control characters, <, >, \" or \\",
                );
            }
        }
        if self.errors.len() > errors_before {
            return None;
        }
        let notice = e.notice.clone().unwrap_or_else(|| match shutdown_date {
            Some(d) => format!("Flag '{k}' is deprecated and will be shut down on {}.", d.format("%Y-%m-%d")),
            None => format!("Flag '{k}' is deprecated."),
        });
        Some(Phase {
            kind: phase_kind,
            start: start?,
            duration,
            actions,
            notice,
            redirect: e.redirect.as_ref().map(|r| r.value.clone()),
            link_header: e.link.as_ref().map(|l| format!("<{}>; rel=\"deprecation\"", l.value)),
            rate_limit,
            shutdown,
        })
    }

    fn monitoring(&mut self, k: &str, m: &Spanned<MonitoringEntry>) -> Option<Monitoring> {
        let path = format!("{k}.monitoring");
        let errors_before = self.errors.len();
        let e = &m.value;
        for (i, name) in e.metrics.iter().flatten().enumerate() {
            self.metric_ref(name, &format!("{path}.metrics[{i}]"));
        }
        let interval = match &e.interval {
            None => DEFAULT_INTERVAL,
            Some(d) => match parse_duration(&d.value) {
                Ok(dur) if dur >= Duration::seconds(1) => dur,
                Ok(_) => {
                    self.error(d.into(), format!("{path}.interval"), "the interval must be at least 1s");
                    DEFAULT_INTERVAL
                }
                Err(msg) => {
                    self.error(d.into(), format!("{path}.interval"), msg);
                    DEFAULT_INTERVAL
                }
            },
        };
        let mut alerts = Vec::new();
        for (i, a) in e.alerts.iter().flatten().enumerate() {
            let apath = format!("{path}.alerts[{i}]");
            let condition = match parse_condition(&a.value.condition.value) {
                Ok(c) => {
                    let name = Spanned::new(c.metric.clone(), a.value.condition.referenced, a.value.condition.defined);
                    self.metric_ref(&name, &format!("{apath}.condition"));
                    Some(c)
                }
                Err(msg) => {
                    self.error((&a.value.condition).into(), format!("{apath}.condition"), msg);
                    None
                }
            };
            let for_samples = match &a.value.for_samples {
                None => Some(1),
                Some(f) => {
                    let n = f.value.as_u64().filter(|n| (1..=10_000).contains(n));
                    if n.is_none() {
                        self.error(
                            f.into(),
                            format!("{apath}.for"),
                            "`for` counts consecutive samples: a whole number from 1",
                        );
                    }
                    n.map(|n| n as u32)
                }
            };
            let action = match a.value.action.value.as_str() {
                "rollback" => Some(AlertAction::Rollback),
                "pause" => Some(AlertAction::Pause),
                "alert_team" => Some(AlertAction::AlertTeam),
                other => {
                    self.error(
                        (&a.value.action).into(),
                        format!("{apath}.action"),
                        format!("unknown action {other:?}; expected rollback, pause or alert_team"),
                    );
                    None
                }
            };
            if let (Some(condition), Some(for_samples), Some(action)) = (condition, for_samples, action) {
                alerts.push(Alert { condition, for_samples, action });
            }
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Monitoring { metrics: e.metrics.iter().flatten().map(|m| m.value.clone()).collect(), interval, alerts })
    }
}

fn cmp_op(name: &str) -> NumOp {
    match name.rsplit('_').next() {
        Some("GT") => NumOp::Gt,
        Some("GTE") => NumOp::Gte,
        Some("LT") => NumOp::Lt,
        Some("LTE") => NumOp::Lte,
        _ => NumOp::Eq,
    }
}

/// Parses `<metric> <op> <number>[ms|s|%]`.
pub fn parse_condition(text: &str) -> Result<Condition, String> {
    let bad = |why: &str| {
        format!("invalid condition {text:?}: {why} (expected `<metric> <op> <number>[ms|s|%]`, like `error_rate > 2%`)")
    };
    let t = text.trim();
    let name_end = t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(t.len());
    let (metric, rest) = t.split_at(name_end);
    if !is_identifier(metric) {
        return Err(bad("it must start with a metric name"));
    }
    let rest = rest.trim_start();
    let ops = [
        ("<=", CondOp::Lte),
        (">=", CondOp::Gte),
        ("==", CondOp::Eq),
        ("!=", CondOp::Ne),
        ("<", CondOp::Lt),
        (">", CondOp::Gt),
    ];
    let Some((sym, op)) = ops.into_iter().find(|(sym, _)| rest.starts_with(sym)) else {
        return Err(bad("the operator must be one of < <= > >= == !="));
    };
    let rest = rest[sym.len()..].trim();
    let (number, scale) = if let Some(n) = rest.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = rest.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = rest.strip_suffix('%') {
        (n, 0.01)
    } else {
        (rest, 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| bad("the threshold must be a number"))?;
    if !value.is_finite() {
        return Err(bad("the threshold must be finite"));
    }
    Ok(Condition { metric: metric.to_owned(), op, threshold: value * scale, text: t.to_owned() })
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
    }

    #[test]
    fn revision_depends_only_on_content() {
        assert_eq!(revision_of("a: 1\n"), revision_of("a: 1\n"));
        assert_ne!(revision_of("a: 1\n"), revision_of("a: 2\n"));
        assert_eq!(revision_of("").len(), 16);
    }
}
