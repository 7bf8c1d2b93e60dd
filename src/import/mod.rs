//! Translating a peer's flags into a toggled flag file: `toggled import unleash FILE`. Pure: a
//! document in, the flag file (as YAML or as JSON) and a report of what could not be expressed
//! out.

pub mod flagd;
pub mod unleash;

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// What a translation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    /// Where the file came from, as YAML comment lines.
    header: &'static str,
    /// The flag file, its mappings [`ordered`] as written.
    document: Value,
    /// Per flag, what could not be expressed (and was left out).
    pub unsupported: Vec<(String, String)>,
    /// Notes the user should read (differences that are expressed but behave differently).
    pub notes: Vec<String>,
}

impl Translation {
    fn new(header: &'static str, document: Value, unsupported: Vec<(String, String)>, notes: Vec<String>) -> Self {
        Self { header, document, unsupported, notes }
    }

    /// The flag file as YAML, with a comment saying where it came from: for people to read and edit.
    pub fn yaml(&self) -> String {
        format!("{}{}", self.header, to_yaml(&self.document))
    }

    /// The same flag file as JSON (the same order, no comment): what a program writes for a
    /// server to load, read several times faster than YAML.
    pub fn json(&self) -> String {
        let mut out = serde_json::to_string_pretty(&InOrder(&self.document)).unwrap_or_default();
        out.push('\n');
        out
    }

    /// Unsupported items grouped per flag, for the report.
    pub fn unsupported_by_flag(&self) -> std::collections::BTreeMap<&str, Vec<&str>> {
        let mut out: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
        for (flag, what) in &self.unsupported {
            out.entry(flag.as_str()).or_default().push(what.as_str());
        }
        out
    }
}

/// A document the importer could not read at all.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ImportError(pub String);

/// A mapping whose entries must keep their order (a JSON object would sort its keys): written by
/// [`to_yaml`] as a mapping in this order.
pub fn ordered(entries: Vec<(String, Value)>) -> Value {
    let pairs = entries.into_iter().map(|(k, v)| Value::Array(vec![Value::String(k), v])).collect();
    let mut m = Map::new();
    m.insert(ORDERED.to_owned(), Value::Array(pairs));
    Value::Object(m)
}

const ORDERED: &str = "$ordered";

/// The entries of a mapping, in order: an [`ordered`] one as built, a plain object sorted.
fn entries(map: &Map<String, Value>) -> Vec<(&str, &Value)> {
    match (map.len(), map.get(ORDERED)) {
        (1, Some(Value::Array(pairs))) => pairs
            .iter()
            .filter_map(|p| match p.as_array().map(Vec::as_slice) {
                Some([Value::String(k), v]) => Some((k.as_str(), v)),
                _ => None,
            })
            .collect(),
        _ => map.iter().map(|(k, v)| (k.as_str(), v)).collect(),
    }
}

/// A value serialised with its [`ordered`] mappings in their order (a JSON object would sort
/// its keys).
struct InOrder<'a>(&'a Value);

impl serde::Serialize for InOrder<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap as _, SerializeSeq as _};
        match self.0 {
            Value::Object(m) => {
                let entries = entries(m);
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, &InOrder(v))?;
                }
                map.end()
            }
            Value::Array(a) => {
                let mut seq = serializer.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(&InOrder(v))?;
                }
                seq.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// Writes `value` as block-style YAML (strings double-quoted, so nothing is reinterpreted).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0, false);
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        other => other.to_string(),
    }
}

/// A key as YAML writes it: plain when it is a simple name YAML reads back as the same string.
fn key(k: &str) -> String {
    let simple = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if simple { k.to_owned() } else { serde_json::to_string(k).unwrap_or_default() }
}

fn write_map(out: &mut String, map: &Map<String, Value>, indent: usize) {
    let pad = " ".repeat(indent);
    for (k, v) in entries(map) {
        let key = key(k);
        match v {
            Value::Object(m) if !m.is_empty() => {
                let _ = writeln!(out, "{pad}{key}:");
                write_map(out, m, indent + 2);
            }
            Value::Array(a) if !a.is_empty() => {
                let _ = writeln!(out, "{pad}{key}:");
                write_list(out, a, indent + 2);
            }
            Value::Object(_) => {
                let _ = writeln!(out, "{pad}{key}: {{}}");
            }
            Value::Array(_) => {
                let _ = writeln!(out, "{pad}{key}: []");
            }
            other => {
                let _ = writeln!(out, "{pad}{key}: {}", scalar(other));
            }
        }
    }
}

fn write_list(out: &mut String, list: &[Value], indent: usize) {
    let pad = " ".repeat(indent);
    for v in list {
        match v {
            Value::Object(m) if !m.is_empty() => {
                // The first entry on the dash's line, the rest indented under it.
                let mut first = String::new();
                write_map(&mut first, m, indent + 2);
                let trimmed = first.trim_start_matches(' ');
                let _ = write!(out, "{pad}- {trimmed}");
            }
            Value::Array(a) if !a.is_empty() => {
                let _ = writeln!(out, "{pad}-");
                write_list(out, a, indent + 2);
            }
            other => {
                let _ = writeln!(out, "{pad}- {}", if other.is_object() { "{}".to_owned() } else { scalar(other) });
            }
        }
    }
}

fn write_value(out: &mut String, value: &Value, indent: usize, _in_list: bool) {
    match value {
        Value::Object(m) => write_map(out, m, indent),
        Value::Array(a) => write_list(out, a, indent),
        other => {
            let _ = writeln!(out, "{}", scalar(other));
        }
    }
}
