//! Release notes from an [`Analysis`]: the project's markdown notes and a Keep a Changelog
//! section. Pure.

use std::fmt::Write as _;

use super::version::{Analysis, Change};

fn entry(c: &Change) -> String {
    let mut line = String::from("- ");
    if let Some(scope) = &c.scope {
        let _ = write!(line, "**{scope}:** ");
    }
    line += &c.description;
    let refs: Vec<&str> = c.issues.iter().map(String::as_str).filter(|i| !c.description.contains(*i)).collect();
    if !refs.is_empty() {
        let _ = write!(line, " ({})", refs.join(", "));
    }
    if let Some(sha) = &c.sha {
        let _ = write!(line, " ({})", &sha[..sha.len().min(7)]);
    }
    line
}

/// Markdown notes: Breaking Changes (with migration notes), New Features, Bug Fixes, Performance.
pub fn markdown(a: &Analysis, title: &str) -> String {
    let mut out = format!("# {title}\n");
    let sections: [(&str, &[Change]); 4] = [
        ("⚠ Breaking Changes", &a.breaking),
        ("✨ New Features", &a.features),
        ("🐛 Bug Fixes", &a.fixes),
        ("⚡ Performance", &a.performance),
    ];
    let mut empty = true;
    for (heading, changes) in sections {
        let breaking_section = heading.contains("Breaking");
        // A breaking change is listed once, under Breaking Changes.
        let shown: Vec<&Change> = changes.iter().filter(|c| breaking_section || !c.breaking).collect();
        if shown.is_empty() {
            continue;
        }
        empty = false;
        let _ = write!(out, "\n## {heading}\n\n");
        for c in shown {
            out += &entry(c);
            out += "\n";
            // A migration note only when the commit wrote one that says more than its title.
            if breaking_section
                && let Some(note) = c.breaking_note.as_deref().filter(|n| n.trim() != c.description.trim())
            {
                let _ = writeln!(out, "  - **Migration:** {}", note.replace('\n', " "));
            }
        }
    }
    if empty {
        out += "\nNo user-facing changes.\n";
    }
    out
}

/// A Keep a Changelog section (`## [2.0.0] - date` or `## [Unreleased]`): the bare version,
/// without the tag's prefix (`v2.0.0` is headed `[2.0.0]`).
pub fn keep_a_changelog(a: &Analysis, version: Option<&str>, date: Option<&str>) -> String {
    let bare = version.map(|v| super::version::split_tag(v).map_or_else(|_| v.to_owned(), |(_, v)| v.to_string()));
    let mut out = match (bare.as_deref(), date) {
        (Some(v), Some(d)) => format!("## [{v}] - {d}\n"),
        (Some(v), None) => format!("## [{v}]\n"),
        _ => "## [Unreleased]\n".to_owned(),
    };
    let security = |c: &&Change| c.kind == "security" || c.scope.as_deref() == Some("security");
    let mut groups: [(&str, Vec<String>); 5] =
        [("Added", vec![]), ("Changed", vec![]), ("Removed", vec![]), ("Fixed", vec![]), ("Security", vec![])];
    let all = a
        .features
        .iter()
        .chain(&a.fixes)
        .chain(&a.performance)
        .chain(&a.other)
        .chain(a.breaking.iter().filter(|c| !matches!(c.kind.as_str(), "feat" | "fix" | "perf")));
    for c in all {
        let text = if c.breaking { format!("{} **(breaking)**", entry(c)) } else { entry(c) };
        let group = if security(&c) {
            4
        } else if c.breaking && c.kind != "feat" && c.kind != "fix" {
            1
        } else {
            match c.kind.as_str() {
                "feat" => 0,
                "fix" => 3,
                "perf" | "refactor" => 1,
                "revert" | "remove" => 2,
                _ => continue,
            }
        };
        groups[group].1.push(text);
    }
    for (name, lines) in groups {
        if !lines.is_empty() {
            let _ = write!(out, "\n### {name}\n\n{}\n", lines.join("\n"));
        }
    }
    out
}
