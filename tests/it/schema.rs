//! The flag file's JSON Schema: generated from the loader's types, served over HTTP, and checked
//! with a real validator (Python `jsonschema`) against every shipped file and broken ones.

use std::process::Command;

use serde_json::Value;

use crate::support::{Server, Workdir, http};

fn python() -> String {
    std::env::var("TOGGLED_OFREP_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/ofrep-venv/bin/python").to_owned())
}

/// Samples for the release settings, not flag files.
const RELEASE_SAMPLES: [&str; 3] = ["release-strategy.yaml", "quality-gates.yaml", "maintenance-windows.yaml"];

fn shipped_flag_files() -> Vec<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files = vec![format!("{root}/flags/feature-flags.yaml")];
    let mut examples: Vec<String> = std::fs::read_dir(format!("{root}/flags/examples"))
        .expect("flags/examples")
        .filter_map(|e| e.ok().map(|e| e.path().display().to_string()))
        .filter(|p| p.ends_with(".yaml") && !RELEASE_SAMPLES.iter().any(|r| p.ends_with(r)))
        .collect();
    examples.sort();
    files.extend(examples);
    files
}

#[test]
fn every_shipped_file_validates_and_broken_ones_do_not() {
    let out = Command::new(env!("CARGO_BIN_EXE_toggled")).arg("schema").output().expect("runs");
    assert!(out.status.success());
    let schema: Value = serde_json::from_slice(&out.stdout).expect("the schema is JSON");
    assert_eq!(schema["$schema"], Value::from("https://json-schema.org/draft/2020-12/schema"));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("flags.schema.json");
    std::fs::write(&path, &out.stdout).expect("write");

    let root = env!("CARGO_MANIFEST_DIR");
    let shipped = shipped_flag_files();
    let broken = ["unknown_field.yaml", "bad_percentages.yaml"].map(|f| format!("{root}/tests/broken/{f}"));
    let check = Command::new(python())
        .arg(format!("{root}/tests/schema/check.py"))
        .arg(&path)
        .args(&shipped)
        .args(&broken)
        .output()
        .expect("python runs (.ci/deps installs jsonschema in target/ofrep-venv)");
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{report}{}", String::from_utf8_lossy(&check.stderr));
    for file in &shipped {
        assert!(report.contains(&format!("{file}: valid")), "{file} should validate:\n{report}");
        toggled::flags::compile(&std::fs::read_to_string(file).expect("read")).expect("and load");
    }
    for file in &broken {
        assert!(report.contains(&format!("{file}: invalid")), "{file} should not validate:\n{report}");
    }
}

#[test]
fn the_schema_is_served_and_a_schema_key_is_accepted() {
    let yaml = "$schema: http://127.0.0.1/schema/flags.json\nfeature_flags:\n  a: {default_value: true}\n";
    toggled::flags::compile(yaml).expect("a top-level $schema key loads");
    let dir = Workdir::new(yaml);
    let server = Server::start(&dir, &[]);
    let r = http().get(server.url("/schema/flags.json")).send().expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/schema+json");
    let served: Value = r.json().expect("JSON");
    let printed = Command::new(env!("CARGO_BIN_EXE_toggled")).arg("schema").output().expect("runs");
    let printed: Value = serde_json::from_slice(&printed.stdout).expect("JSON");
    assert_eq!(served, printed, "the server serves what `toggled schema` prints");
    let flag = &served["$defs"]["FlagEntry"]["properties"];
    assert!(flag["rollout_strategy"].is_object() && flag["sunset_plan"].is_object(), "{flag}");
}
