//! The real server over loopback HTTP: every route and error code, auth, the kill switch and
//! its durability, replicas sharing a store, metrics, graceful shutdown.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN, CLIENT, Server, Workdir, eventually, http};

const SEED: &str = include_str!("../../flags/feature-flags.yaml");

/// A file whose sunset warning phase is in force now (deprecation headers).
const DEPRECATING: &str = r#"
feature_flags:
  old_api:
    default_value: true
    sunset_plan:
      warning_phase:
        start_date: "2020-01-01"
        actions: [deprecation_headers, warning_logs, forced_migration_notices]
        link: "https://docs.example.com/migrate"
        notice: "move to /v2"
      shutdown_phase:
        start_date: "2099-01-01"
        actions: [api_disabled]
  throttled:
    default_value: true
    rollout_strategy: {type: percentage, percentage: 100}
    sunset_plan:
      restricted_phase:
        start_date: "2020-01-01"
        actions: [rate_limiting]
        rate_limit: {requests: 3, per: 1h}
"#;

#[test]
fn evaluation_routes_answer_from_one_snapshot() {
    let dir = Workdir::new(SEED);
    let server = Server::start(&dir, &[]);
    let inside = server.evaluate("new_payment_flow", &json!({"targetingKey": "user-4", "email": "dev@example.com"}));
    assert_eq!(
        (&inside["value"], &inside["reason"], &inside["stage"]),
        (&json!(true), &json!("TARGETING_MATCH"), &json!(1))
    );
    let revision = inside["revision"].as_str().expect("revision").to_owned();
    assert_eq!(revision, toggled::flags::revision_of(SEED));

    let get: Value = http()
        .get(server.url("/evaluate/enhanced_search?targetingKey=607&plan=pro"))
        .send()
        .expect("request")
        .json()
        .expect("JSON");
    assert_eq!((&get["variant"], &get["reason"]), (&json!("control"), &json!("SPLIT")));

    let all: Value = http()
        .post(server.url("/evaluate/all"))
        .json(&json!({"context": {"targetingKey": "656"}}))
        .send()
        .expect("request")
        .json()
        .expect("JSON");
    let flags = all["flags"].as_object().expect("flags object");
    assert_eq!(flags.len(), 3);
    assert_eq!(all["revision"], json!(revision));
    assert!(flags.values().all(|f| f["revision"] == json!(revision)));
    assert_eq!(flags["legacy_api_deprecation"]["reason"], json!("SUNSET"));
    assert_eq!(flags["enhanced_search"]["variant"], json!("treatment_a"));

    let empty_body = http().post(server.url("/evaluate/all")).send().expect("request");
    assert_eq!(empty_body.status(), 200, "an empty body is an empty context");
}

#[test]
fn sunset_actions_reach_the_response() {
    let dir = Workdir::new(DEPRECATING);
    let server = Server::start(&dir, &[]);
    let r =
        http().post(server.url("/evaluate")).json(&json!({"flag": "old_api", "context": {}})).send().expect("request");
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h.get("deprecation").and_then(|v| v.to_str().ok()), Some("@1577836800"));
    assert_eq!(h.get("sunset").and_then(|v| v.to_str().ok()), Some("Thu, 01 Jan 2099 00:00:00 GMT"));
    assert_eq!(
        h.get("link").and_then(|v| v.to_str().ok()),
        Some("<https://docs.example.com/migrate>; rel=\"deprecation\"")
    );
    let body: Value = r.json().expect("JSON");
    assert_eq!(
        (&body["value"], &body["notice"], &body["sunset"]["phase"]),
        (&json!(true), &json!("move to /v2"), &json!("warning"))
    );

    // rate_limiting: 3 per hour per stickiness value, then the safe value with RATE_LIMITED (a 200).
    let reasons: Vec<Value> =
        (0..5).map(|_| server.evaluate("throttled", &json!({"targetingKey": "u1"}))["reason"].clone()).collect();
    assert_eq!(reasons[..3], [json!("TARGETING_MATCH"), json!("TARGETING_MATCH"), json!("TARGETING_MATCH")]);
    assert_eq!(reasons[3..], [json!("RATE_LIMITED"), json!("RATE_LIMITED")]);
    assert_eq!(server.evaluate("throttled", &json!({"targetingKey": "u2"}))["reason"], json!("TARGETING_MATCH"));
    let metrics = http().get(server.url("/metrics")).send().expect("request").text().expect("text");
    assert!(metrics.contains(r#"toggled_sunset_warnings_total{flag="old_api"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"toggled_evaluations_total{flag="throttled",variant="on",reason="RATE_LIMITED"} 2"#));
}

/// Every bad input gets its status and stable code; none is a 500.
#[test]
fn bad_input_gets_a_clear_error() {
    let dir = Workdir::new(SEED);
    let server = Server::start(&dir, &[]);
    let post = |path: &str, body: &str| {
        let r = http().post(server.url(path)).body(body.to_owned()).send().expect("request");
        let status = r.status().as_u16();
        (status, r.json::<Value>().expect("JSON error body"))
    };
    let cases: &[(&str, &str, u16, &str)] = &[
        ("/evaluate", "{\"flag\": ", 400, "invalid_json"),
        ("/evaluate", r#"{"flag": "new_payment_flow", "context": [1]}"#, 400, "invalid_context"),
        ("/evaluate", r#"{"flag": "new_payment_flow", "context": "u1"}"#, 400, "invalid_context"),
        ("/evaluate", r#"{"context": {}}"#, 400, "invalid_request"),
        ("/evaluate", r#"{"flag": 12}"#, 400, "invalid_request"),
        ("/evaluate", r#"{"flag": "nope", "context": {}}"#, 404, "flag_not_found"),
        ("/evaluate/all", r#"{"context": 5}"#, 400, "invalid_context"),
        ("/nowhere", "{}", 404, "not_found"),
    ];
    for (path, body, status, code) in cases {
        let (got, json) = post(path, body);
        assert_eq!((got, json["error"]["code"].as_str()), (*status, Some(*code)), "{path} {body}: {json}");
        assert!(json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (_, parse) = post("/evaluate", "{\"flag\": ");
    assert!(parse["error"]["message"].as_str().is_some_and(|m| m.contains("line 1 column")), "{parse}");

    let big = format!(r#"{{"flag": "new_payment_flow", "context": {{"pad": "{}"}}}}"#, "x".repeat(70 * 1024));
    let (status, json) = post("/evaluate", &big);
    assert_eq!((status, json["error"]["code"].as_str()), (413, Some("payload_too_large")));

    let r = http().get(server.url("/evaluate/nope")).send().expect("request");
    assert_eq!(r.status(), 404);
    let r = http().get(server.url("/evaluate")).send().expect("request");
    assert_eq!(r.status(), 405, "wrong method on a known route");
    assert_eq!(r.headers().get("allow").and_then(|v| v.to_str().ok()), Some("POST"));
    let body: Value = r.json().expect("JSON");
    assert_eq!(body["error"]["code"], json!("method_not_allowed"), "{body}");

    let admin_cases: &[(Method, &str, Option<Value>, u16, &str)] = &[
        (Method::GET, "/audit?limit=0", None, 400, "invalid_query"),
        (Method::GET, "/audit?limit=abc", None, 400, "invalid_query"),
        (Method::GET, "/flags/nope", None, 404, "flag_not_found"),
        (Method::PUT, "/flags/nope", Some(json!({"enabled": false})), 404, "flag_not_found"),
        (Method::PUT, "/flags/new_payment_flow", Some(json!({})), 422, "invalid_override"),
        (
            Method::PUT,
            "/flags/new_payment_flow",
            Some(json!({"enabled": false, "value": true})),
            422,
            "invalid_override",
        ),
        (Method::PUT, "/flags/new_payment_flow", Some(json!({"value": "yes"})), 422, "invalid_value"),
        (Method::PUT, "/flags/enhanced_search", Some(json!({"variant": "treatment_z"})), 422, "unknown_variant"),
        (Method::PUT, "/flags/enhanced_search", Some(json!({"value": 5})), 422, "invalid_value"),
        (
            Method::PUT,
            "/flags/new_payment_flow",
            Some(json!({"enabled": false, "colour": "red"})),
            422,
            "invalid_override",
        ),
        (
            Method::PUT,
            "/flags/new_payment_flow",
            Some(json!({"enabled": false, "reason": "x".repeat(1001)})),
            422,
            "invalid_reason",
        ),
        (Method::POST, "/flags/enhanced_search/rollout", Some(json!({"action": "pause"})), 409, "not_gradual"),
        (Method::POST, "/flags/new_payment_flow/rollout", Some(json!({"action": "resume"})), 409, "invalid_transition"),
        (Method::POST, "/flags/new_payment_flow/rollout", Some(json!({"action": "stop"})), 422, "invalid_action"),
        (Method::DELETE, "/flags/nope/override", None, 404, "flag_not_found"),
    ];
    for (method, path, body, status, code) in admin_cases {
        let (got, json) = server.admin(method.clone(), path, body.clone());
        assert_eq!((got, json["error"]["code"].as_str()), (*status, Some(*code)), "{method} {path}: {json}");
    }
    // Nothing above changed anything: the only audit row is the startup load of the file.
    let (_, audit) = server.admin(Method::GET, "/audit", None);
    let actions: Vec<&str> =
        audit["entries"].as_array().expect("entries").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["reload"]);
}

#[test]
fn auth_matrix() {
    let dir = Workdir::new(SEED);
    let server = Server::start(&dir, &["--client-tokens", &format!("web:{CLIENT}")]);
    let eval = |token: Option<&str>| {
        let mut r = http().post(server.url("/evaluate")).json(&json!({"flag": "new_payment_flow", "context": {}}));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().expect("request").status().as_u16()
    };
    let admin_route = |token: Option<&str>| {
        let mut r = http().get(server.url("/flags"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().expect("request");
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().expect("JSON")["error"]["code"].clone())
    };
    assert_eq!([eval(None), eval(Some("wrong-token")), eval(Some(CLIENT)), eval(Some(ADMIN))], [401, 401, 200, 200]);
    assert_eq!(admin_route(None), (401, json!("unauthorized")));
    assert_eq!(admin_route(Some("wrong-token")), (401, json!("unauthorized")));
    assert_eq!(admin_route(Some(CLIENT)), (403, json!("forbidden")));
    assert_eq!(admin_route(Some(ADMIN)).0, 200);
    let r = http().get(server.url("/flags")).header("authorization", format!("Basic {ADMIN}")).send().expect("request");
    assert_eq!(r.status(), 401, "only bearer tokens count");
    for open in ["/health", "/ready", "/metrics"] {
        assert_eq!(http().get(server.url(open)).send().expect("request").status(), 200, "{open} needs no token");
    }

    // Without admin tokens, admin routes explain how to configure one.
    let bare = Workdir::new(SEED);
    let server = Server::start_without_admin(&bare);
    let r = http()
        .put(server.url("/flags/new_payment_flow"))
        .bearer_auth(ADMIN)
        .json(&json!({"enabled": false}))
        .send()
        .expect("request");
    assert_eq!(r.status(), 401);
    let body: Value = r.json().expect("JSON");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("--admin-tokens")), "{body}");
    assert_eq!(server.evaluate("new_payment_flow", &json!({}))["reason"], json!("DEFAULT"), "evaluation is open");
}

#[test]
fn kill_switch_is_immediate_audited_and_clearable() {
    let dir = Workdir::new(SEED);
    let server = Server::start(&dir, &[]);
    let user = json!({"targetingKey": "user-4", "email": "dev@example.com"});
    assert_eq!(server.evaluate("new_payment_flow", &user)["value"], json!(true));

    let (status, state) =
        server.admin(Method::PUT, "/flags/new_payment_flow", Some(json!({"enabled": false, "reason": "incident 123"})));
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["state"]["effective"], json!("killed"));
    assert_eq!(state["state"]["override"]["actor"], json!("ops"));
    let killed = server.evaluate("new_payment_flow", &user);
    assert_eq!(
        (&killed["value"], &killed["reason"], &killed["enabled"]),
        (&json!(false), &json!("DISABLED"), &json!(false))
    );

    let (status, _) =
        server.admin(Method::PUT, "/flags/enhanced_search", Some(json!({"variant": "treatment_b", "reason": "demo"})));
    assert_eq!(status, 200);
    let forced = server.evaluate("enhanced_search", &json!({"targetingKey": "607"}));
    assert_eq!(
        (&forced["variant"], &forced["reason"], &forced["enabled"]),
        (&json!("treatment_b"), &json!("OVERRIDE"), &json!(true))
    );

    let (_, audit) = server.admin(Method::GET, "/audit?flag=new_payment_flow", None);
    let entries = audit["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (&entries[0]["actor"], &entries[0]["action"], &entries[0]["reason"]),
        (&json!("ops"), &json!("override_set"), &json!("incident 123"))
    );
    assert_eq!((&entries[0]["before"], &entries[0]["after"]["kind"]), (&Value::Null, &json!("kill")));

    let metrics = http().get(server.url("/metrics")).send().expect("request").text().expect("text");
    assert!(metrics.contains("toggled_overrides_active 2"), "{metrics}");

    let (status, cleared) =
        server.admin(Method::DELETE, "/flags/new_payment_flow/override", Some(json!({"reason": "fixed"})));
    assert_eq!((status, &cleared["cleared"]), (200, &json!(true)));
    assert_eq!(server.evaluate("new_payment_flow", &user)["value"], json!(true));
    let (_, again) = server.admin(Method::DELETE, "/flags/new_payment_flow/override", None);
    assert_eq!(again["cleared"], json!(false), "clearing twice is harmless");
    let (_, audit) = server.admin(Method::GET, "/audit?limit=10", None);
    let actions: Vec<&str> =
        audit["entries"].as_array().expect("entries").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        ["override_cleared", "override_set", "override_set", "reload"],
        "the startup load is audited too"
    );
}

#[test]
fn an_acknowledged_kill_switch_survives_kill_9() {
    let dir = Workdir::new(SEED);
    let mut server = Server::start(&dir, &[]);
    let (status, _) =
        server.admin(Method::PUT, "/flags/new_payment_flow", Some(json!({"enabled": false, "reason": "outage"})));
    assert_eq!(status, 200);
    server.kill9();
    server.restart();
    let answer = server.evaluate("new_payment_flow", &json!({"targetingKey": "user-4", "email": "dev@example.com"}));
    assert_eq!((&answer["value"], &answer["reason"]), (&json!(false), &json!("DISABLED")));
    let (_, audit) = server.admin(Method::GET, "/audit?flag=new_payment_flow", None);
    assert_eq!(audit["entries"].as_array().map(Vec::len), Some(1));
}

#[test]
fn a_change_on_one_replica_reaches_another_sharing_the_store() {
    let dir = Workdir::new(SEED);
    let a = Server::start(&dir, &[]);
    let b = Server::start(&dir, &[]);
    let user = json!({"targetingKey": "user-4", "email": "dev@example.com"});
    assert_eq!(b.evaluate("new_payment_flow", &user)["value"], json!(true));
    let (status, _) = a.admin(Method::PUT, "/flags/new_payment_flow", Some(json!({"enabled": false})));
    assert_eq!(status, 200);
    // Within the contract's 2 s (the deadline is the assertion).
    eventually(Duration::from_secs(2), || {
        (b.evaluate("new_payment_flow", &user)["reason"] == json!("DISABLED")).then_some(())
    });
    // Both replicas recorded the same first-seen time for the gradual rollout.
    let first_seen =
        |s: &Server| s.admin(Method::GET, "/flags/new_payment_flow", None).1["state"]["first_seen"].clone();
    assert_eq!(first_seen(&a), first_seen(&b));
    assert!(first_seen(&a).is_string());
}

#[test]
fn pause_and_resume_a_gradual_rollout() {
    let dir = Workdir::new(SEED);
    let server = Server::start(&dir, &[]);
    let (status, paused) = server.admin(
        Method::POST,
        "/flags/new_payment_flow/rollout",
        Some(json!({"action": "pause", "reason": "checking dashboards"})),
    );
    assert_eq!(status, 200, "{paused}");
    assert_eq!((&paused["state"]["paused"], &paused["state"]["next_stage_at"]), (&json!(true), &Value::Null));
    let (status, _) = server.admin(Method::POST, "/flags/new_payment_flow/rollout", Some(json!({"action": "pause"})));
    assert_eq!(status, 409);
    let (status, resumed) =
        server.admin(Method::POST, "/flags/new_payment_flow/rollout", Some(json!({"action": "resume"})));
    assert_eq!(status, 200);
    assert_eq!(resumed["state"]["paused"], json!(false));
    assert!(resumed["state"]["next_stage_at"].is_string());
    let (_, audit) = server.admin(Method::GET, "/audit?flag=new_payment_flow", None);
    let actions: Vec<&str> =
        audit["entries"].as_array().expect("entries").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["rollout_resumed", "rollout_paused"]);
}

#[test]
fn flags_listing_and_detail() {
    let dir = Workdir::new(SEED);
    let server = Server::start(&dir, &[]);
    server.evaluate("enhanced_search", &json!({"targetingKey": "u"}));
    let (status, list) = server.admin(Method::GET, "/flags", None);
    assert_eq!(status, 200);
    assert_eq!(list["flags"].as_array().map(Vec::len), Some(3));
    assert_eq!(list["last_reload"]["ok"], json!(true));
    let (_, detail) = server.admin(Method::GET, "/flags/new_payment_flow", None);
    assert_eq!(detail["rollout_strategy"]["type"], json!("gradual"));
    assert_eq!(detail["rollout_strategy"]["stages"][0]["criteria"], json!("internal_users"));
    assert_eq!(detail["state"]["stage"], json!(1));
    assert_eq!(detail["monitoring"]["alerts"][0]["action"], json!("rollback"));
    let (_, search) = server.admin(Method::GET, "/flags/enhanced_search", None);
    assert_eq!(search["success_metrics"]["primary"], json!("search_click_through_rate"));
    assert!(search["state"]["last_evaluated"].is_string(), "{search}");
    let (_, legacy) = server.admin(Method::GET, "/flags/legacy_api_deprecation", None);
    assert_eq!(legacy["state"]["sunset_phase"], json!("shutdown"));
}

#[test]
fn metrics_pass_promtool() {
    let dir = Workdir::new(SEED);
    let server = Server::start(&dir, &[]);
    server.evaluate("new_payment_flow", &json!({"targetingKey": "u"}));
    let text = http().get(server.url("/metrics")).send().expect("request").text().expect("text");
    for name in [
        "toggled_evaluations_total",
        "toggled_reloads_total",
        "toggled_flag_revision_info",
        "toggled_overrides_active",
        "toggled_rollout_stage",
        "toggled_sunset_phase",
        "toggled_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(!text.contains("targetingKey") && !text.contains("\"u\""), "the targeting key is never a label");
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus; .ci/run installs it)");
    use std::io::Write as _;
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let om = http()
        .get(server.url("/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .expect("request");
    assert!(om.headers()["content-type"].to_str().is_ok_and(|c| c.starts_with("application/openmetrics-text")));
    assert!(om.text().expect("text").ends_with("# EOF\n"));
}

#[test]
fn sigterm_shuts_down_cleanly_and_flushes_last_evaluated() {
    let dir = Workdir::new(SEED);
    let mut server = Server::start(&dir, &["--flush-interval", "1h"]);
    server.evaluate("enhanced_search", &json!({"targetingKey": "u"}));
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    server.restart();
    let (_, detail) = server.admin(Method::GET, "/flags/enhanced_search", None);
    assert!(detail["state"]["last_evaluated"].is_string(), "flushed at shutdown: {detail}");
    let (_, other) = server.admin(Method::GET, "/flags/new_payment_flow", None);
    assert_eq!(other["state"]["last_evaluated"], Value::Null);
}

/// The README and the book's pages (in the order `docs/README.md` lists them), as read.
fn documents() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let index = read("docs/README.md");
    let mut docs = vec![("README.md".to_owned(), read("README.md"))];
    for page in index.split("](").skip(1).filter_map(|l| l.split(')').next()) {
        if !page.starts_with("..") {
            let path = format!("docs/{page}");
            docs.push((path.clone(), read(&path)));
        }
    }
    assert!(docs.len() >= 10, "the index lists the pages: {}", docs.len());
    docs
}

/// Every `curl` line in README.md and the book works as written against a live server started
/// the way the README's first command starts it (its environment variables, the test server's
/// address), and answers what the page says it answers; every `cargo run --release --` command
/// other than `serve` runs as written with the built binary.
#[test]
fn docs_curl_examples_work() {
    let docs = documents();
    let readme = &docs[0].1;
    let first = readme.lines().find(|l| l.contains("cargo run")).expect("README's first command");
    let env: Vec<(&str, &str)> =
        first.split_whitespace().take_while(|w| *w != "cargo").filter_map(|w| w.split_once('=')).collect();
    assert!(env.iter().any(|(k, _)| *k == "TOGGLED_ADMIN_TOKENS"), "{first}");
    let token = env
        .iter()
        .find_map(|(k, v)| (*k == "TOGGLED_ADMIN_TOKENS").then(|| v.split_once(':').map(|(_, t)| t)))
        .flatten()
        .expect("name:secret");
    let dir = Workdir::new(SEED);
    std::fs::create_dir_all(dir.path().join("flags")).expect("flags dir");
    std::fs::write(dir.path().join("flags/feature-flags.yaml"), SEED).expect("the example file");
    let server = Server::start_with_env(&dir, &env);
    let sh = |page: &str, command: &str| {
        let out =
            std::process::Command::new("sh").args(["-c", command]).current_dir(dir.path()).output().expect("sh runs");
        assert!(out.status.success(), "{page}: {command}\n{}", String::from_utf8_lossy(&out.stderr));
        out
    };
    let mut ran = 0;
    for (page, doc) in &docs {
        let lines: Vec<&str> = doc.lines().collect();
        for line in lines.iter().filter_map(|l| l.strip_prefix("cargo run --release -- ")) {
            if line.starts_with("serve") {
                continue;
            }
            sh(page, &format!("{} {line}", env!("CARGO_BIN_EXE_toggled")));
            ran += 1;
        }
        for (i, line) in lines.iter().enumerate().filter(|(_, l)| l.starts_with("curl ")) {
            let command = line.replace("http://127.0.0.1:8080", &server.base);
            let out = sh(page, &command);
            ran += 1;
            let stdout = String::from_utf8_lossy(&out.stdout);
            if command.contains("/releases/1/notes") {
                let shown =
                    doc.split("The notes of release 1:\n\n```markdown\n").nth(1).and_then(|r| r.split("```").next());
                assert_eq!(Some(stdout.as_ref()), shown, "{page} shows the notes as served");
                continue;
            }
            if command.contains("/metrics") && !command.contains("/releases/metrics") {
                assert!(stdout.contains("toggled_evaluations_total"), "{stdout}");
                continue;
            }
            if command.contains("/plan ") {
                assert!(stdout.starts_with("# Release Plan: checkout v0.1.0"), "{stdout}");
                continue;
            }
            if let Some((_, file)) = command.split_once(" > ") {
                let saved = std::fs::read_to_string(dir.path().join(file.trim())).expect("the command wrote its file");
                serde_json::from_str::<Value>(&saved).unwrap_or_else(|e| panic!("{command}: not JSON ({e})"));
                continue;
            }
            let body: Value =
                serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{command}: not JSON ({e}): {stdout}"));
            // `# -> [status] {...}` under a command is what it answers: every field shown must
            // match, but those shown as `...`.
            if let Some(shown) = lines.get(i + 1).and_then(|l| l.strip_prefix("# -> ")) {
                let shown = shown.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
                let shown = shown.replace("[...]", "\"...\"").replace(",...}", "}");
                let expected: Value = serde_json::from_str(&shown).expect("the page's shown answer is JSON");
                for (k, v) in expected.as_object().expect("an object") {
                    if v != "..." {
                        assert_eq!(&body[k], v, "{page}: {command}: `{k}` as shown");
                    }
                }
            }
        }
    }
    assert!(ran >= 20, "the docs have {ran} examples");
    // What the README's commands did is in the audit log, by the README's token's name.
    let r = http().get(server.url("/audit?flag=new_payment_flow")).bearer_auth(token).send().expect("audit");
    assert_eq!(r.status(), 200);
    let audit: Value = r.json().expect("JSON");
    let rows: Vec<(String, String)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (e["actor"].as_str().unwrap_or_default().to_owned(), e["action"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    assert!(rows.iter().all(|(actor, _)| actor == "ops"), "{rows:?}");
    assert!(rows.len() >= 4, "kill, clear, pause, resume: {rows:?}");
}

#[test]
fn forcing_the_master_switch_on_and_receiver_tokens_on_evaluation() {
    let file = "feature_flags:\n  dormant:\n    default_value: false\n    enabled: false\n    rollout_strategy: {type: percentage, percentage: 100}\n";
    let dir = Workdir::new(file);
    let server =
        Server::start(&dir, &["--client-tokens", &format!("web:{CLIENT}"), "--receiver-tokens", "am:receiver-secret"]);
    let user = json!({"targetingKey": "u1"});
    assert_eq!(server.evaluate("dormant", &user)["reason"], json!("DISABLED"));
    let (status, state) =
        server.admin(Method::PUT, "/flags/dormant", Some(json!({"enabled": true, "reason": "early access"})));
    assert_eq!((status, &state["state"]["effective"]), (200, &json!("forced_on")));
    let on = server.evaluate("dormant", &user);
    assert_eq!((&on["value"], &on["reason"]), (&json!(true), &json!("TARGETING_MATCH")), "targeting applies again");
    let r = http()
        .post(server.url("/evaluate"))
        .bearer_auth("receiver-secret")
        .json(&json!({"flag": "dormant"}))
        .send()
        .expect("request");
    assert_eq!(r.status(), 403, "a receiver token only posts alerts");
    let r = http()
        .post(server.url("/evaluate"))
        .bearer_auth(CLIENT)
        .json(&json!({"flag": "dormant"}))
        .send()
        .expect("request");
    assert_eq!(r.status(), 200);
}
