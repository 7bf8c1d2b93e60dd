//! `toggled import unleash`: a document written from Unleash's documentation and its client
//! specification's cases, translated, loaded, and evaluated as Unleash would answer.

use std::process::Command;

use serde_json::{Value, json};
use toggled::eval::{self, FlagState, Reason};

use crate::support::{at, ctx};

fn import(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_toggled"))
        .args(["import", "unleash", "tests/import/unleash-features.json"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("runs")
}

#[test]
fn an_unleash_document_evaluates_as_unleash_answers() {
    let out = import(&["--skip-unsupported"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = String::from_utf8(out.stdout).expect("utf-8");
    let snapshot = toggled::flags::compile(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let ask = |flag: &str, context: Value| {
        let f = snapshot.get(flag).unwrap_or_else(|| panic!("{flag} imported"));
        let e = eval::evaluate_in(f, &ctx(context), at("2026-01-01T00:00:00Z"), &FlagState::default(), &snapshot);
        (e.value.clone(), e.reason)
    };
    // Unleash's client specification: the same buckets and variant picks.
    assert_eq!(ask("Feature.flexibleRollout.10", json!({"userId": "174"})).0, json!(true));
    assert_eq!(ask("Feature.flexibleRollout.10", json!({"userId": "499"})).0, json!(false));
    for (user, variant) in [("232", "val1"), ("607", "val2"), ("656", "val3")] {
        assert_eq!(ask("Feature.Variants.C", json!({"userId": user})).0, json!(variant), "user {user}");
    }
    // Names keep their spelling; a feature without strategies is on.
    assert_eq!(ask("Feature.UTF-8.Hellø_Wørld", json!({})).0, json!(true));
    // Strategies are ORed; segments and constraints hold within one; custom fields are properties.
    assert_eq!(ask("beta-users", json!({"userId": "456"})).0, json!(true));
    let pro = json!({"environment": "production", "properties": {"tier": "pro"}});
    assert_eq!(ask("beta-users", pro).0, json!(true));
    let free = json!({"environment": "production", "properties": {"tier": "free"}});
    assert_eq!(ask("beta-users", free).0, json!(false));
    assert_eq!(ask("office", json!({"remoteAddress": "10.9.8.7"})).0, json!(true));
    assert_eq!(ask("office", json!({"remoteAddress": "192.0.2.8"})).0, json!(false));
    assert_eq!(ask("paused", json!({"userId": "1"})), (json!(false), Reason::Disabled));
    // Dependencies are prerequisites.
    assert_eq!(ask("checkout.child", json!({"userId": "123"})).0, json!(true));
    assert_eq!(ask("checkout.child", json!({"userId": "999"})), (json!(false), Reason::PrerequisiteFailed));
    // Variants behind a strategy with constraints, with an override.
    assert_eq!(ask("theme", json!({"userId": "1", "properties": {"plan": "PRO"}})).0, json!("dark"));
    assert_eq!(ask("theme", json!({"userId": "1", "properties": {"plan": "free"}})).0, json!(""), "disabled");
    let picks: Vec<Value> =
        (2..40).map(|i| ask("theme", json!({"userId": i.to_string(), "properties": {"plan": "pro"}})).0).collect();
    assert!(picks.contains(&json!("dark")) && picks.contains(&json!("light")), "{picks:?}");
}

#[test]
fn what_cannot_be_expressed_is_listed_and_fails_unless_skipped() {
    let out = import(&[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unsupported: custom: myOwnStrategy-1: custom strategy \"myOwnStrategy\""), "{stderr}");
    assert!(stderr.contains("unsupported: custom: applicationHostname-2"), "{stderr}");
    assert!(stderr.contains("note: Unleash's default stickiness"), "{stderr}");
    // The output still loads, and `toggled validate` accepts it.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("flags.yaml");
    let written = import(&["--skip-unsupported", "--output", file.to_str().expect("utf-8 path")]);
    assert!(written.status.success());
    let validate = Command::new(env!("CARGO_BIN_EXE_toggled")).arg("validate").arg(&file).output().expect("runs");
    assert!(validate.status.success(), "{}", String::from_utf8_lossy(&validate.stderr));
    let bad = Command::new(env!("CARGO_BIN_EXE_toggled"))
        .args(["import", "unleash", "Cargo.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("runs");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not an Unleash client features document"));
}

/// `--output FILE.json` writes the same flag file as JSON (what a program writes for a server to
/// load: read several times faster): the same flags in the same order, answering alike.
#[test]
fn an_output_named_json_is_the_same_file_as_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let written = |name: &str| {
        let path = dir.path().join(name);
        let out = import(&["--skip-unsupported", "--output", path.to_str().expect("utf-8 path")]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read_to_string(path).expect("written")
    };
    let (yaml, json) = (written("flags.yaml"), written("flags.json"));
    assert!(yaml.starts_with("# Imported"), "YAML keeps its comment");
    let parsed: Value = serde_json::from_str(&json).expect("JSON");
    assert!(toggled::flags::compile::parse_json(&json).is_some(), "read by the JSON reader, not the YAML one");
    let (from_yaml, from_json) =
        (toggled::flags::compile(&yaml).expect("loads"), toggled::flags::compile(&json).expect("loads"));
    let keys = |s: &toggled::flags::Snapshot| s.flags.iter().map(|f| f.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&from_json), keys(&from_yaml), "the same flags in the same order");
    assert_eq!(parsed["feature_flags"].as_object().map(serde_json::Map::len), Some(from_yaml.flags.len()));
    let now = at("2026-01-01T00:00:00Z");
    for flag in &from_yaml.flags {
        let twin = from_json.get(&flag.key).expect("the same flag");
        for user in 0..50 {
            let c = ctx(json!({"userId": user.to_string(), "properties": {"plan": "pro", "tier": "pro"}}));
            let a = eval::evaluate_in(flag, &c, now, &FlagState::default(), &from_yaml);
            let b = eval::evaluate_in(twin, &c, now, &FlagState::default(), &from_json);
            assert_eq!(
                (&a.value, a.reason, a.variant),
                (&b.value, b.reason, b.variant),
                "{} for user {user}",
                flag.key
            );
        }
    }
}

#[test]
fn a_flagd_definition_evaluates_as_flagd_answers() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_toggled"))
            .args(["import", "flagd", "tests/import/flagd-flags.json"])
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("runs")
    };
    let strict = run(&[]);
    assert_eq!(strict.status.code(), Some(1), "the `some` operator cannot be expressed");
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert!(stderr.contains("unsupported: clever: targeting: some"), "{stderr}");
    assert!(!stderr.contains("note: split:"), "a default fractional split keeps flagd's buckets: {stderr}");
    let out = run(&["--skip-unsupported"]);
    assert!(out.status.success());
    let yaml = String::from_utf8(out.stdout).expect("utf-8");
    let snapshot = toggled::flags::compile(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let ask = |flag: &str, context: Value| {
        let f = snapshot.get(flag).unwrap_or_else(|| panic!("{flag} imported"));
        let e = eval::evaluate_in(f, &ctx(context), at("2026-01-01T00:00:00Z"), &FlagState::default(), &snapshot);
        (e.value.clone(), e.reason)
    };
    assert_eq!(ask("new-welcome-banner", json!({"email": "a@example.com"})).0, json!(true));
    assert_eq!(ask("new-welcome-banner", json!({"email": "a@elsewhere.org"})).0, json!(false));
    let cases = [
        (json!({"locale": "de"}), "#0000FF"),
        (json!({"company": "ACME"}), "#0000FF"),
        (json!({"email": "x@beta.example"}), "#FFFF00"),
        (json!({"version": "2.1.0"}), "#FFFF00"),
        (json!({"version": "1.9.0"}), "#FF0000"),
        (json!({}), "#FF0000"),
    ];
    for (context, color) in cases {
        assert_eq!(ask("header-color", context.clone()).0, json!(color), "{context}");
    }
    assert_eq!(ask("discount", json!({"age": 20, "plan": "premium-plus"})).0, json!(10));
    assert_eq!(ask("discount", json!({"age": 17, "plan": "premium"})).0, json!(0));
    let picks: Vec<Value> = (0..8).map(|i| ask("split", json!({"targetingKey": format!("u{i}")})).0).collect();
    // flagd's buckets (murmur3 of "split" + key, `(hash * 100) >> 32` < 50 is A), computed by a
    // separate implementation of flagd's algorithm.
    assert_eq!(picks, ["B", "A", "A", "A", "A", "A", "A", "A"].map(|v| json!(v)), "{picks:?}");
    assert_eq!(ask("retired", json!({})), (json!(false), Reason::Disabled));
    assert_eq!(ask("clever", json!({"items": [1]})).0, json!(false), "left out: the default variant");
}
