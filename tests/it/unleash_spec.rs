//! Unleash's published client specification (`@unleash/client-specification`, installed from
//! npm by `.ci/deps`), every file and every case, three ways: each file's state goes through
//! `toggled import unleash` (which must express all of it), a server serves the translation,
//! and each case is asked through toggled's own `/evaluate`, through Unleash's Node.js SDK
//! evaluating `/api/client/features` locally, and through Unleash's browser SDK on
//! `/api/frontend` (`tests/unleash/spec.mjs`). Every answer must be the specification's.

use serde_json::{Value, json};

use crate::support::{ADMIN, Workdir};
use crate::unleash::{CLIENT_TOKEN, FRONTEND, run_sdk_with, with_sdk_tokens};

fn specification_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/js/node_modules/@unleash/client-specification/specifications");
    assert!(dir.join("index.json").is_file(), ".ci/deps installs @unleash/client-specification in target/js");
    dir
}

/// `toggled import unleash` on a document: the flag file, and what it said on standard error.
fn import(document: &Value) -> (String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("features.json");
    std::fs::write(&path, document.to_string()).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_toggled"))
        .args(["import", "unleash"])
        .arg(&path)
        .output()
        .expect("toggled runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the import expresses every feature:\n{stderr}");
    (String::from_utf8(out.stdout).expect("utf-8"), stderr)
}

#[test]
fn every_case_of_the_client_specification_answers_as_specified_three_ways() {
    let dir = specification_dir();
    let index: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).expect("index")).expect("JSON");
    assert!(index.len() >= 22, "the specification lists its files: {index:?}");
    let mut total = 0;
    let mut failures = Vec::new();
    for file in &index {
        let spec: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).expect("spec file")).expect("JSON");
        let cases = spec["tests"].as_array().map_or(0, Vec::len) + spec["variantTests"].as_array().map_or(0, Vec::len);
        let (yaml, stderr) = import(&spec["state"]);
        assert!(!stderr.contains("unsupported"), "{file}: {stderr}");
        let work = Workdir::new(&yaml);
        let server = with_sdk_tokens(&work);
        let backups = tempfile::tempdir().expect("temp dir");
        let input = json!({
            "url": server.base, "admin": ADMIN, "client": CLIENT_TOKEN, "frontend": FRONTEND,
            "spec": dir.join(file), "backup": backups.path(),
        });
        let out = run_sdk_with("spec.mjs", "@unleash/client-specification", &input, &[]);
        let out = &out[0];
        assert_eq!(out["cases"], json!(cases), "{file}: every case was asked");
        total += cases;
        for f in out["failures"].as_array().expect("failures") {
            failures.push(format!("{file}: {f}"));
        }
    }
    assert!(total >= 250, "the specification's cases were all found ({total})");
    assert!(failures.is_empty(), "{} answers differ from the specification:\n{}", failures.len(), failures.join("\n"));
}
