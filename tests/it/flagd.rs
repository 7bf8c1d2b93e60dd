//! flagd's targeting grammar through `toggled import flagd`, judged by flagd's own evaluator
//! (`@openfeature/flagd-core`, installed from npm by `.ci/deps`, run by
//! `tests/flagd/reference.mjs`): for every construct of `tests/import/flagd-constructs.json`
//! (comparisons with the literal on either side, the between form, `in` on lists and strings,
//! nested `and`/`or`/`!`, `if` with many and nested branches, `$flagd` properties, every
//! `sem_ver` operator, a bare condition, `$ref` chains, `fractional` with weightless and zero
//! buckets and computed keys) and many contexts, toggled's `/evaluate` serves the value and
//! variant flagd serves, buckets included.

use serde_json::{Value, json};

use crate::support::{ADMIN, Server, Workdir, http};
use crate::unleash::run_sdk_with;

/// Contexts over the fixture's attributes: some missing, numbers as numbers and as text.
fn contexts() -> Vec<Value> {
    let tiers = ["gold", "silver", "free", "bronze"];
    let plans = ["pro", "team", "free"];
    let locales = ["de", "at", "fr", "it", "en", "ch"];
    let emails =
        ["admin@example.com", "admin@else.org", "test1@example.com", "dev@example.com", "x@y.z", "tester@corp.io"];
    let versions = ["1.2.0", "1.3.7", "2.0.0", "2.9.1", "0.4.9", "1.0.0", "3.3.3", "4.1.0", "5.0.1", "0.9.0", "1.1.0"];
    (0..400u32)
        .map(|i| {
            let mut c = serde_json::Map::new();
            // Every few contexts leave an attribute out.
            if i % 7 != 0 {
                c.insert("targetingKey".into(), json!(format!("user-{i}")));
            }
            if i % 5 != 1 {
                c.insert("tier".into(), json!(tiers[(i as usize) % tiers.len()]));
            }
            if i % 6 != 2 {
                c.insert("plan".into(), json!(plans[(i as usize / 2) % plans.len()]));
            }
            if i % 4 != 3 {
                c.insert("locale".into(), json!(locales[(i as usize / 3) % locales.len()]));
            }
            if i % 9 != 4 {
                c.insert("email".into(), json!(emails[(i as usize * 7) % emails.len()]));
            }
            match i % 11 {
                0 => {}
                1 => {
                    c.insert("age".into(), json!(format!("{}", 10 + i % 70)));
                }
                _ => {
                    c.insert("age".into(), json!(5 + (i * 13) % 75));
                }
            }
            if i % 8 != 5 {
                c.insert("version".into(), json!(versions[(i as usize * 3) % versions.len()]));
            }
            Value::Object(c)
        })
        .collect()
}

/// flagd-core's answers for `contexts` on the flagd document `text`.
fn flagd_answers(text: &str, contexts: &[Value]) -> Vec<Value> {
    let input = json!({"definitions": text, "contexts": contexts});
    run_sdk_with("../flagd/reference.mjs", "@openfeature/flagd-core", &input, &[])
}

/// toggled's `/evaluate/all` answers for `context`: `{flag: answer}`.
fn toggled_answers(client: &reqwest::blocking::Client, server: &Server, context: &Value) -> Value {
    let all: Value = client
        .post(server.url("/evaluate/all"))
        .bearer_auth(ADMIN)
        .json(&json!({"context": context}))
        .send()
        .expect("request")
        .json()
        .expect("JSON");
    all["flags"].clone()
}

#[test]
fn every_construct_answers_what_flagds_evaluator_answers() {
    let root = env!("CARGO_MANIFEST_DIR");
    let path = format!("{root}/tests/import/flagd-constructs.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_toggled"))
        .args(["import", "flagd", &path])
        .output()
        .expect("toggled runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "every construct of the fixture is translated:\n{stderr}");
    let yaml = String::from_utf8(out.stdout).expect("utf-8");
    let text = std::fs::read_to_string(&path).expect("fixture");
    let definitions: Value = serde_json::from_str(&text).expect("JSON");
    let contexts = contexts();
    let flagd = flagd_answers(&text, &contexts);
    let dir = Workdir::new(&yaml);
    let server = Server::start(&dir, &[]);
    let client = http();
    let flags = definitions["flags"].as_object().expect("flags");
    let mut compared = 0;
    let mut differences = Vec::new();
    for (context, want) in contexts.iter().zip(&flagd) {
        let got = toggled_answers(&client, &server, context);
        for (flag, definition) in flags {
            let g = &got[flag];
            compared += 1;
            match want.get(flag) {
                Some(w) if (&g["value"], &g["variant"]) == (&w["value"], &w["variant"]) => {}
                // flagd leaves out a flag without a default variant that nothing matched: the
                // caller's default, which toggled's `fallback: caller` gives (reason DEFAULT).
                None if definition.get("defaultVariant").is_none() && g["reason"] == json!("DEFAULT") => {}
                w => differences.push(format!("{flag} {context}: flagd {w:?}, toggled {g}")),
            }
        }
    }
    assert_eq!(compared, flags.len() * contexts.len());
    assert!(differences.is_empty(), "{} of {compared} answers differ:\n{}", differences.len(), differences.join("\n"));
    // The flag set's and the flag's metadata reach OFREP's answer, merged as flagd merges them.
    let want = &flagd[0]["eq-either-side"]["metadata"];
    assert_eq!(want, &json!({"flagSetId": "checkout", "owner": "payments", "version": 4}), "flagd's merge");
    let ofrep: Value = client
        .post(server.url("/ofrep/v1/evaluate/flags/eq-either-side"))
        .bearer_auth(ADMIN)
        .json(&json!({"context": {"targetingKey": "u1"}}))
        .send()
        .expect("request")
        .json()
        .expect("JSON");
    for (k, v) in want.as_object().expect("metadata") {
        assert_eq!(&ofrep["metadata"][k], v, "{ofrep}");
    }
    assert_eq!(&toggled_answers(&client, &server, &json!({}))["eq-either-side"]["metadata"], want, "/evaluate too");
    let flags = definitions["flags"].as_object().expect("flags");
    let mut omitted = Vec::new();
    for (context, want) in contexts.iter().zip(&flagd) {
        omitted.extend(flags.keys().filter(|k| want.get(k.as_str()).is_none()).map(|k| format!("{k} {context}")));
    }
    assert_eq!(compared, flags.len() * contexts.len(), "flagd answered every flag for every context: {omitted:#?}");
}

const EXPORTABLE: &str = r##"segments:
  staff: [{attribute: email, operator: STR_ENDS_WITH, values: ["@example.com"]}]
feature_flags:
  checkout_v2:
    default_value: false
    rules:
      - {name: staff, segment: staff, serve: true}
      - name: adults-in-dach
        constraints: [{attribute: age, operator: NUM_GTE, value: 18}, {attribute: locale, operator: IN, values: [de, at]}]
        serve: true
      - name: paying-on-v2
        constraints: [{attribute: plan, operator: NOT_IN, values: [free]}, {attribute: version, operator: SEMVER_GTE, value: "2.0.0"}]
        serve: true
  theme:
    type: variant
    variants: {light: "#fff", dark: "#000", blue: "#00f"}
    default_variant: light
    overrides: {dark: [user-3, user-5]}
    rules:
      - {name: testers, constraints: [{attribute: email, operator: STR_STARTS_WITH, values: [test]}], variant: blue}
    rollout_strategy: {type: ab_test, traffic_split: {light: 50, dark: 30, blue: 20}, hashing: flagd, stickiness: targetingKey}
  limit:
    type: variant
    variants: {low: 10, high: 100}
    default_variant: low
    constraints: [{attribute: tier, operator: IN, values: [gold, "1"]}]
    rollout_variant: high
  launch:
    default_value: false
    constraints:
      - {attribute: currentTime, operator: DATE_AFTER, value: "2025-01-01T00:00:00Z"}
      - {attribute: currentTime, operator: DATE_BEFORE, value: "2099-01-01T00:00:00Z"}
  no_spam:
    default_value: false
    constraints: [{attribute: email, operator: STR_CONTAINS, values: [spam], inverted: true}, {attribute: age, operator: NUM_LT, value: 65}]
  static_on: {default_value: true}
"##;

/// A toggled file exported to flagd answers the same in flagd's own evaluator, and imported
/// back into toggled, for many contexts; nothing in it needed a note.
#[test]
fn a_file_exported_to_flagd_answers_the_same_there_and_imported_back() {
    let dir = Workdir::new(EXPORTABLE);
    let exported = dir.path().join("flagd.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_toggled"))
        .args(["export", "flagd"])
        .arg(&exported)
        .arg("--flags")
        .arg(dir.path().join("flags/feature-flags.yaml"))
        .output()
        .expect("toggled runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("note:"), "exported exactly:\n{stderr}");
    let text = std::fs::read_to_string(&exported).expect("written");
    let contexts = contexts();
    let flagd = flagd_answers(&text, &contexts);
    let back = std::process::Command::new(env!("CARGO_BIN_EXE_toggled"))
        .args(["import", "flagd"])
        .arg(&exported)
        .output()
        .expect("toggled runs");
    assert!(back.status.success(), "{}", String::from_utf8_lossy(&back.stderr));
    let reimported = crate::support::compile(&String::from_utf8(back.stdout).expect("utf-8"));
    let server = Server::start(&dir, &[]);
    let client = http();
    let mut differences = Vec::new();
    for (context, want) in contexts.iter().zip(&flagd) {
        let got = toggled_answers(&client, &server, context);
        let got = got.as_object().expect("flags");
        assert_eq!(want.as_object().map(serde_json::Map::len), Some(got.len()), "flagd answers every flag");
        for (flag, g) in got {
            let w = &want[flag];
            if (&g["value"], &g["variant"]) != (&w["value"], &w["variant"]) {
                differences.push(format!("flagd: {flag} {context}: flagd {w}, toggled {g}"));
            }
            let f = reimported.get(flag).expect("imported back");
            let e = toggled::eval::evaluate_in(
                f,
                &crate::support::ctx(context.clone()),
                chrono::Utc::now(),
                &toggled::eval::FlagState::default(),
                &reimported,
            );
            if (e.value, e.variant) != (&g["value"], g["variant"].as_str().expect("variant")) {
                differences.push(format!("imported back: {flag} {context}: {} {}, toggled {g}", e.value, e.variant));
            }
        }
    }
    assert!(differences.is_empty(), "{} differences:\n{}", differences.len(), differences.join("\n"));
}
