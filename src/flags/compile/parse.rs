//! Reading the YAML into the lax mirror: parser options (strict booleans, duplicate keys refused,
//! a budget against YAML bombs) and, on the error path only, naming where a shape error is.

use super::*;

/// Reads the YAML into the lax mirror. Stops at the first shape error.
/// Reads a flag file written as a JSON object with serde_json, without locations; `None` when it
/// is not one (or is over the size limit, or repeats a key): the YAML parser reads it then.
pub fn parse_json(text: &str) -> Option<FlagFile> {
    let start = text.trim_start_matches('\u{feff}').trim_start();
    if !start.starts_with('{') || text.len() > MAX_FILE_BYTES {
        return None;
    }
    crate::flags::file::without_spans(|| serde_json::from_str::<FlagFile>(start).ok())
}

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

pub(super) fn parse_options() -> serde_saphyr::Options {
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
pub(super) fn both_flag_sections(text: &str) -> Option<CompileError> {
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
pub(super) fn display_path(raw: &str, text: &str, at: (u64, u64)) -> String {
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
pub(super) fn enclosing_key_by_indent(text: &str, line: u64, section: &str) -> Option<String> {
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
pub(super) fn enclosing_key(text: &str, at: (u64, u64), section: &str) -> String {
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
