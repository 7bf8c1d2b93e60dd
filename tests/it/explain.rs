//! `explain`: the ordered steps behind an answer, the same answer as without it, over the CLI
//! and HTTP.

use std::time::Duration;

use serde_json::{Value, json};
use toggled::eval::{self, FlagState};

use crate::support::{Server, Workdir, at, ctx, example, http};

fn steps(v: &Value) -> Vec<(String, String)> {
    v["explain"]
        .as_array()
        .expect("explain")
        .iter()
        .map(|s| {
            (s["step"].as_str().unwrap_or_default().to_owned(), s["outcome"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

#[test]
fn explaining_never_changes_the_answer() {
    let contexts = [
        json!({}),
        json!({"targetingKey": "user-4", "email": "dev@example.com"}),
        json!({"targetingKey": "user-42", "beta": "true", "plan": "pro", "country": "DE"}),
        json!({"userId": 17, "device": {"os": {"name": "ios"}}, "version": "2.1.0"}),
        json!({"targetingKey": "u9", "beta": "true", "country": "FR", "theme": "dark", "remoteAddress": "10.0.0.9"}),
    ];
    for file in ["feature-flags.yaml", "examples/strategies.yaml", "examples/constraints.yaml", "examples/sunset.yaml"]
    {
        let snapshot = example(file);
        for flag in &snapshot.flags {
            for c in &contexts {
                for now in ["2024-04-15T00:00:00Z", "2026-01-02T00:00:00Z", "2031-01-01T00:00:00Z"] {
                    let state = FlagState { first_seen: Some(at("2026-01-01T00:00:00Z")), ..FlagState::default() };
                    let context = ctx(c.clone());
                    let plain = eval::evaluate_in(flag, &context, at(now), &state, &snapshot);
                    let (explained, steps) = eval::evaluate_explained(flag, &context, at(now), &state, &snapshot);
                    assert_eq!(
                        (plain.value, plain.variant, plain.reason, plain.stage, plain.rule),
                        (explained.value, explained.variant, explained.reason, explained.stage, explained.rule),
                        "{file} {} {c} {now}",
                        flag.key
                    );
                    assert_eq!(steps.first().map(|s| s.step), Some("override"), "every explanation starts there");
                }
            }
        }
    }
}

#[test]
fn the_cli_tells_outside_the_percentage_from_not_in_the_segment() {
    let run = |context: &str| -> Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_toggled"))
            .args(["evaluate", "flags/feature-flags.yaml", "new_payment_flow", "--context", context])
            .args(["--first-seen", "2026-01-01T00:00:00Z", "--at", "2026-01-01T06:00:00Z", "--explain"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    // user-4 is in bucket <= 5 and internal: admitted by stage 1.
    let inside = run(r#"{"targetingKey":"user-4","email":"dev@example.com"}"#);
    assert_eq!(inside["reason"], json!("TARGETING_MATCH"));
    let explain = inside["explain"].as_array().expect("steps");
    let criteria = explain.iter().find(|s| s["step"] == json!("constraint")).expect("the stage's criteria");
    assert_eq!(criteria["outcome"], json!("pass"));
    assert_eq!(criteria["detail"]["segment"], json!("internal_users"));
    assert_eq!(criteria["detail"]["operator"], json!("STR_ENDS_WITH"));
    assert_eq!(criteria["detail"]["context_value"], json!("dev@example.com"));
    assert_eq!(steps(&inside).last(), Some(&("stage_admission".to_owned(), "admitted".to_owned())));

    // user-4 in bucket but not internal: not in the segment.
    let outsider = run(r#"{"targetingKey":"user-4","email":"dev@elsewhere.org"}"#);
    let explain = outsider["explain"].as_array().expect("steps");
    let criteria = explain.iter().find(|s| s["step"] == json!("constraint")).expect("criteria tested");
    assert_eq!((&criteria["outcome"], &criteria["detail"]["segment"]), (&json!("fail"), &json!("internal_users")));

    // user-42 is outside the 5%: the bucket says so, and the criteria are never tested.
    let outside = run(r#"{"targetingKey":"user-42","email":"dev@example.com"}"#);
    let admission =
        outside["explain"].as_array().expect("steps").iter().find(|s| s["step"] == json!("stage_admission"));
    let admission = admission.expect("admission step");
    assert_eq!(admission["detail"]["inside_percentage"], json!(false));
    assert!(admission["detail"]["bucket"].as_u64().is_some_and(|b| b > 5), "{admission}");
    assert!(!steps(&outside).iter().any(|(s, _)| s == "constraint"));
}

#[test]
fn explain_over_http_post_and_get() {
    let dir = Workdir::new(include_str!("../../flags/feature-flags.yaml"));
    let server = Server::start(&dir, &[]);
    let r = http()
        .post(server.url("/evaluate"))
        .json(&json!({"flag": "enhanced_search", "context": {"targetingKey": "607"}, "explain": true}))
        .timeout(Duration::from_secs(10))
        .send()
        .expect("request");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().expect("JSON");
    assert_eq!(body["variant"], json!("control"));
    assert_eq!(
        steps(&body),
        pairs(&[
            ("override", "none"),
            ("master_switch", "on"),
            ("stickiness", "found"),
            ("window", "open"),
            ("variant_pick", "picked")
        ])
    );
    let pick = &body["explain"][4]["detail"];
    assert_eq!(pick["total_weight"], json!(100));
    assert_eq!(pick["weights"][0], json!({"variant": "control", "weight": 50}));
    assert_eq!(pick["variant"], json!("control"));
    assert!(pick["target"].as_u64().is_some_and(|t| (1..=50).contains(&t)), "{pick}");

    let plain: Value = http()
        .post(server.url("/evaluate"))
        .json(&json!({"flag": "enhanced_search", "context": {"targetingKey": "607"}}))
        .send()
        .expect("request")
        .json()
        .expect("JSON");
    assert!(plain.get("explain").is_none(), "no explain unless asked: {plain}");

    let got: Value = http()
        .get(server.url("/evaluate/legacy_api_deprecation?targetingKey=u1&explain=true"))
        .send()
        .expect("request")
        .json()
        .expect("JSON");
    let names: Vec<String> = steps(&got).into_iter().map(|(s, _)| s).collect();
    assert!(names.contains(&"sunset".to_owned()), "{got}");
    let off: Value = http()
        .get(server.url("/evaluate/enhanced_search?targetingKey=607&explain=false"))
        .send()
        .expect("request")
        .json()
        .expect("JSON");
    assert!(off.get("explain").is_none(), "explain=false is not a context attribute either: {off}");
}
