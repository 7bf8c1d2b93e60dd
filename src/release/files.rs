//! Setting the version in a repository's version files, as text edits that keep everything
//! else (comments, order, formatting) as it was. Pure.

/// The version files `toggled release` updates when present.
pub const KNOWN: [&str; 4] = ["Cargo.toml", "package.json", "pyproject.toml", "VERSION"];

/// `text` with its version set to `version`, or `None` when the file holds no version to set.
pub fn set_version(file_name: &str, text: &str, version: &str) -> Option<String> {
    match file_name {
        "Cargo.toml" => toml_version(text, version, &["[package]", "[workspace.package]"]),
        "pyproject.toml" => toml_version(text, version, &["[project]", "[tool.poetry]"]),
        "package.json" => json_version(text, version),
        "VERSION" => Some(format!("{version}\n")),
        _ => None,
    }
}

/// Any other file: its first mention of the `previous` version becomes `version`.
pub fn replace_version(text: &str, previous: &str, version: &str) -> Option<String> {
    text.find(previous).map(|at| format!("{}{version}{}", &text[..at], &text[at + previous.len()..]))
}

/// The first `version = "..."` line directly inside one of `sections`.
fn toml_version(text: &str, version: &str, sections: &[&str]) -> Option<String> {
    let mut in_section = false;
    let mut done = false;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_section = sections.contains(&trimmed);
        }
        let is_version = trimmed.starts_with("version") && trimmed["version".len()..].trim_start().starts_with('=');
        if in_section && !done && is_version && !trimmed.contains(".workspace") {
            // Only the quoted value changes: spacing and a trailing comment stay.
            let open = line.find('"')?;
            let close = open + 1 + line[open + 1..].find('"')?;
            out.push_str(&format!("{}{version}{}", &line[..=open], &line[close..]));
            done = true;
        } else {
            out.push_str(line);
        }
    }
    done.then_some(out)
}

/// The top-level `"version": "..."` of a package.json (the first one, at depth 1).
fn json_version(text: &str, version: &str) -> Option<String> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else {
            match c {
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth = depth.saturating_sub(1),
                b'"' if depth == 1 && text[i..].starts_with("\"version\"") => {
                    let after = &text[i + 9..];
                    let colon = after.find(':')?;
                    let rest = &after[colon + 1..];
                    let open = rest.find('"')?;
                    let close = rest[open + 1..].find('"')?;
                    let start = i + 9 + colon + 1 + open + 1;
                    let end = start + close;
                    return Some(format!("{}{version}{}", &text[..start], &text[end..]));
                }
                b'"' => in_string = true,
                _ => {}
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_set_where_each_file_keeps_them() {
        let cargo = "[package]\nname = \"x\" # the name\nversion = \"1.0.0\"\n\n[dependencies]\nversion = \"9\"\n";
        assert_eq!(
            set_version("Cargo.toml", cargo, "1.1.0").as_deref(),
            Some("[package]\nname = \"x\" # the name\nversion = \"1.1.0\"\n\n[dependencies]\nversion = \"9\"\n")
        );
        let workspace = "[workspace]\nmembers = []\n[workspace.package]\nversion = \"0.1.0\"\n";
        assert!(set_version("Cargo.toml", workspace, "0.2.0").is_some_and(|t| t.contains("version = \"0.2.0\"")));
        assert_eq!(set_version("Cargo.toml", "[package]\nversion.workspace = true\n", "2.0.0"), None);
        let json = "{\n  \"name\": \"x\",\n  \"deps\": {\"version\": \"9\"},\n  \"version\": \"1.0.0\"\n}\n";
        assert_eq!(
            set_version("package.json", json, "1.0.1").as_deref(),
            Some("{\n  \"name\": \"x\",\n  \"deps\": {\"version\": \"9\"},\n  \"version\": \"1.0.1\"\n}\n")
        );
        let py = "[project]\nname = \"x\"\nversion = \"0.3.0\"\n";
        assert!(set_version("pyproject.toml", py, "0.4.0").is_some_and(|t| t.contains("version = \"0.4.0\"")));
        assert_eq!(set_version("VERSION", "1.0.0\n", "2.0.0").as_deref(), Some("2.0.0\n"));
        assert_eq!(set_version("chart.yaml", "version: 1.0.0\n", "2.0.0"), None);
        assert_eq!(replace_version("appVersion: 1.0.0\n", "1.0.0", "2.0.0").as_deref(), Some("appVersion: 2.0.0\n"));
    }
}
