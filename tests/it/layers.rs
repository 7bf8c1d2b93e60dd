//! The layer table of ARCHITECTURE.md, checked: every `crate::<module>` path in `src/` names a
//! module on a lower row than its own, and every module is on exactly one row.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Module -> row (0 is the top) from the ```text block under `## Layers`.
fn table() -> BTreeMap<String, usize> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md");
    let section = doc.split("## Layers").nth(1).expect("a Layers section");
    let block = section.split("```text").nth(1).and_then(|b| b.split("```").next()).expect("a text block");
    let mut rows = BTreeMap::new();
    for (row, line) in block.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let names = line.split("  ").next().expect("a names column");
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            assert!(rows.insert(name.to_owned(), row).is_none(), "{name} is on two rows");
        }
    }
    rows
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file's code (not its comments) names through `crate::`.
fn imports(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        assert!(!line.contains("crate::{"), "import each module by its path, not `crate::{{..}}`: {line}");
        for (at, _) in line.match_indices("crate::") {
            let rest = &line[at + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

#[test]
fn no_module_imports_from_its_own_row_or_above() {
    let rows = table();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut modules = std::collections::BTreeSet::new();
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let first = relative.components().next().expect("a component").as_os_str().to_string_lossy().into_owned();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "main" || module == "lib" {
            continue;
        }
        modules.insert(module.clone());
        let Some(&own) = rows.get(&module) else { continue };
        let text = std::fs::read_to_string(file).expect("a source file");
        for dep in imports(&text) {
            if dep == module {
                continue;
            }
            match rows.get(&dep) {
                Some(&row) if row > own => {}
                Some(_) => wrong.push(format!("{} imports {dep}, which is not below {module}", relative.display())),
                None => wrong.push(format!("{} imports {dep}, which the table does not list", relative.display())),
            }
        }
    }
    let listed: std::collections::BTreeSet<String> = rows.keys().cloned().collect();
    assert_eq!(listed, modules, "the table lists exactly the modules under src/");
    assert!(wrong.is_empty(), "imports the layer table forbids:\n{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_an_import_that_goes_up() {
    // What the check reads: code lines, not comments, every `crate::` path on a line.
    let text = "//! see [`crate::app`]\nuse crate::serving::Serving;\nlet x = crate::store::open(crate::http::X);";
    assert_eq!(imports(text), ["serving", "store", "http"]);
    let rows = table();
    assert!(rows["serving"] < rows["store"] && rows["http"] < rows["serving"], "the table orders them");
}
