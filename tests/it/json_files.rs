//! Flag files written as JSON are read by serde_json (the fast path) and compile to what the
//! YAML parser makes of the same text; a JSON file with a problem is reported as the YAML
//! parser reports it, with line and column.

use serde_json::Value;

/// The same document as JSON text.
fn as_json(yaml: &str) -> String {
    let value: Value = serde_saphyr::from_str(yaml).expect("the YAML reads as JSON values");
    serde_json::to_string_pretty(&value).expect("JSON")
}

/// Flags in their debug form, with each flag's pins (a hash map) in key order.
fn described(flags: &[toggled::flags::Flag]) -> String {
    flags
        .iter()
        .map(|f| {
            let pins: std::collections::BTreeMap<_, _> = f.overrides.iter().collect();
            let debug = format!("{f:?}");
            let start = debug.find("overrides: {").expect("a pins field");
            let end = start + debug[start..].find("}, override_stickiness").expect("the next field");
            format!("{}{}{pins:?}", &debug[..start], &debug[end..])
        })
        .collect()
}

/// What `compile` makes of a text (for JSON: the fast path).
fn compiled(text: &str) -> String {
    described(&toggled::flags::compile(text).expect("compiles").flags)
}

/// What the YAML parser makes of the same text.
fn compiled_as_yaml(text: &str) -> String {
    let file = toggled::flags::compile::parse(text).expect("the YAML parser reads it");
    let snapshot = toggled::flags::compile::compile_file(&file, String::new()).expect("compiles");
    described(&snapshot.flags)
}

#[test]
fn a_json_flag_file_compiles_to_what_its_yaml_compiles_to() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("flags/feature-flags.yaml")];
    for entry in std::fs::read_dir(root.join("flags/examples")).expect("examples") {
        files.push(entry.expect("an entry").path());
    }
    let mut compared = 0;
    for file in &files {
        let yaml = std::fs::read_to_string(file).expect("read");
        if toggled::flags::compile(&yaml).is_err() {
            continue; // a release strategy or quality gates file, not flags
        }
        let json = as_json(&yaml);
        assert!(toggled::flags::compile::parse_json(&json).is_some(), "{}: the fast path reads it", file.display());
        // The same text through either reader; and the same flags as the YAML file (the JSON
        // document lists keys in order, the YAML file as written: compared by key).
        assert_eq!(compiled(&json), compiled_as_yaml(&json), "{}", file.display());
        let keys = |text: &str| {
            let mut k: Vec<String> =
                toggled::flags::compile(text).expect("compiles").flags.iter().map(|f| f.key.clone()).collect();
            k.sort();
            k
        };
        assert_eq!(keys(&json), keys(&yaml), "{}", file.display());
        compared += 1;
    }
    assert!(compared >= 6, "{compared} files compared");
}

#[test]
fn a_json_file_with_a_problem_is_reported_with_line_and_column() {
    // An unknown field, a duplicate key, a bad value: the YAML parser reads JSON and says where.
    let cases = [
        ("{\n  \"feature_flags\": {\n    \"a\": {\"default_value\": true, \"colour\": 1}\n  }\n}\n", 3, "colour"),
        (
            "{\n  \"feature_flags\": {\n    \"a\": {\"default_value\": true},\n    \"a\": {\"default_value\": false}\n  }\n}\n",
            4,
            "duplicate",
        ),
        (
            "{\n  \"feature_flags\": {\n    \"a\": {\"default_value\": true,\n      \"rollout_strategy\": {\"type\": \"percentage\", \"percentage\": 140}}\n  }\n}\n",
            4,
            "percentage",
        ),
    ];
    for (text, line, word) in cases {
        let errors = toggled::flags::compile(text).expect_err("refused").0;
        let e = &errors[0];
        assert!(e.line == line && e.column > 0, "{text}: {e:?}");
        assert!(format!("{} {}", e.path, e.message).contains(word), "{e:?}");
    }
}
