//! The command line, run as a real process: `validate` and `evaluate`.

use std::process::{Command, Output};

use serde_json::{Value, json};

/// Runs the binary to completion, killing it (and failing) if it has not exited within 60 s:
/// a `serve` that starts when it should refuse must fail the test, not hang it.
fn toggled(args: &[&str]) -> Output {
    use std::io::Read as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_toggled"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let (mut out, mut err) = (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
    let stdout = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let stderr = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("toggled {args:?} did not exit within 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Output { status, stdout: stdout.join().expect("stdout"), stderr: stderr.join().expect("stderr") }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn validate_accepts_every_shipped_flag_file() {
    let out = toggled(&[
        "validate",
        "flags/feature-flags.yaml",
        "flags/examples/strategies.yaml",
        "flags/examples/constraints.yaml",
        "flags/examples/sunset.yaml",
        "flags/examples/monitoring.yaml",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("flags/feature-flags.yaml: ok: 3 flags"), "{stdout}");
    assert_eq!(stdout.lines().count(), 5);
}

#[test]
fn validate_reports_file_line_column_path_and_exits_one() {
    let out = toggled(&["validate", "flags/feature-flags.yaml", "tests/broken/unknown_names.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    assert_eq!(
        lines[0],
        "tests/broken/unknown_names.yaml:8:52: new_payment_flow.rollout_strategy.stages[0].criteria: unknown segment \"staff_only\"; defined segments: internal_users"
    );
    assert!(text(&out.stdout).contains("feature-flags.yaml: ok"), "good files are still reported");
}

#[test]
fn validate_reports_a_missing_file() {
    let out = toggled(&["validate", "flags/nope.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("flag file flags/nope.yaml does not exist"), "{}", text(&out.stderr));
}

#[test]
fn evaluate_prints_the_evaluation_as_json() {
    let out = toggled(&[
        "evaluate",
        "flags/feature-flags.yaml",
        "legacy_api_deprecation",
        "--context",
        r#"{"targetingKey":"user-42"}"#,
        "--at",
        "2024-02-01T00:00:00Z",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(body["value"], json!(true));
    assert_eq!(body["reason"], json!("STATIC"));
    assert_eq!(body["sunset"]["phase"], json!("warning"));
    assert_eq!(body["sunset"]["shutdown_at"], json!("2024-06-01T00:00:00Z"));
}

#[test]
fn evaluate_uses_first_seen_for_gradual_rollouts() {
    let run = |first_seen: &str| {
        let out = toggled(&[
            "evaluate",
            "flags/feature-flags.yaml",
            "new_payment_flow",
            "--context",
            r#"{"targetingKey":"user-42"}"#,
            "--at",
            "2025-01-10T00:00:00Z",
            "--first-seen",
            first_seen,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON")
    };
    assert_eq!(run("2025-01-01T00:00:00Z")["stage"], json!(4));
    assert_eq!(run("2025-01-09T12:00:00Z")["stage"], json!(1));
}

#[test]
fn evaluate_explains_bad_input() {
    let cases: &[(&[&str], &str)] = &[
        (&["evaluate", "flags/feature-flags.yaml", "no_such_flag"], "no flag \"no_such_flag\""),
        (
            &["evaluate", "flags/feature-flags.yaml", "new_payment_flow", "--context", "[1]"],
            "--context must be a JSON object",
        ),
        (
            &["evaluate", "flags/feature-flags.yaml", "new_payment_flow", "--context", "{"],
            "--context must be a JSON object",
        ),
        (&["evaluate", "flags/feature-flags.yaml", "new_payment_flow", "--at", "yesterday"], "--at: invalid timestamp"),
        (&["evaluate", "tests/broken/bad_stages.yaml", "decreasing"], "bad_stages.yaml:7:24:"),
    ];
    for (args, expected) in cases {
        let out = toggled(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// The answers docs/flag-file.md's table states for the example file.
#[test]
fn readme_examples_answer_as_documented() {
    let run = |args: &[&str]| -> Value {
        let mut all = vec!["evaluate", "flags/feature-flags.yaml"];
        all.extend_from_slice(args);
        let out = toggled(&all);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    for (key, variant, value) in [
        ("232", "treatment_b", "ai_search_v2"),
        ("607", "control", "legacy_search"),
        ("656", "treatment_a", "ai_search_v1"),
    ] {
        let context = format!(r#"{{"targetingKey":"{key}"}}"#);
        let body = run(&["enhanced_search", "--context", &context]);
        assert_eq!(
            (&body["variant"], &body["value"], &body["reason"]),
            (&json!(variant), &json!(value), &json!("SPLIT"))
        );
    }
    let stage_one = |user: &str| {
        let context = format!(r#"{{"targetingKey":"{user}","email":"dev@example.com"}}"#);
        run(&[
            "new_payment_flow",
            "--context",
            &context,
            "--first-seen",
            "2026-01-01T00:00:00Z",
            "--at",
            "2026-01-01T06:00:00Z",
        ])
    };
    let inside = stage_one("user-4");
    assert_eq!(
        (&inside["value"], &inside["reason"], &inside["stage"]),
        (&json!(true), &json!("TARGETING_MATCH"), &json!(1))
    );
    let outside = stage_one("user-42");
    assert_eq!(
        (&outside["value"], &outside["reason"], &outside["stage"]),
        (&json!(false), &json!("DEFAULT"), &json!(1))
    );
    let restricted = run(&["legacy_api_deprecation", "--at", "2024-04-15T00:00:00Z"]);
    assert_eq!((&restricted["value"], &restricted["reason"]), (&json!(true), &json!("STATIC")));
    assert_eq!(restricted["sunset"]["phase"], json!("restricted"));
    assert!(restricted["notice"].as_str().is_some_and(|n| n.contains("2024-06-01")));
    let shutdown = run(&["legacy_api_deprecation", "--at", "2024-06-01T00:00:00Z"]);
    assert_eq!((&shutdown["value"], &shutdown["reason"]), (&json!(false), &json!("SUNSET")));
}

/// `serve` refuses bad configuration with a message naming the option, and exit 1 (no panic).
#[test]
fn serve_explains_bad_configuration() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let bad_strategy = write(
        "strategy.yaml",
        "release_strategy:\n  types:\n    patch: {description: x, cadence: y, approval_required: z, rollback_plan: w}\n",
    );
    let bad_gates = write(
        "gates.yaml",
        "release_quality_gates:\n  happiness: {description: x, metric: y, threshold: 1, blocking: true}\n",
    );
    let bad_windows =
        write("windows.yaml", "- {start: 2030-01-02T00:00:00Z, end: 2030-01-01T00:00:00Z, description: backwards}\n");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--admin-tokens", "zq9xnocolon"], "--admin-tokens: token #1 must be name:secret"),
        (vec!["--client-tokens", "web:zq9x"], "--client-tokens: token #1"),
        (vec!["--prometheus-url", "localhost:9090"], "--prometheus-url must be an http(s) URL"),
        (vec!["--request-timeout", "soon"], "--request-timeout: invalid duration"),
        (vec!["--database", "mysql://x"], "unsupported database URL"),
        (vec!["--release-strategy", &bad_strategy], "release_strategy.types needs `hotfix`"),
        (vec!["--quality-gates", &bad_gates], "unknown quality gate \"happiness\""),
        (vec!["--maintenance-windows", &bad_windows], "ends before it starts"),
        (vec!["--body-limit", "10"], "--body-limit must be at least 1024"),
        (vec!["--notify-url", "ftp://hooks.example.com/x"], "--notify-url must be an http(s) URL"),
        (vec!["--notify-url", "http://127.0.0.1:9/x", "--notify-interval", "0s"], "--notify-interval must be positive"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend(args.iter().copied());
        let out = toggled(&all);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!stderr.contains("zq9x"), "never echo a token: {stderr}");
    }
}
