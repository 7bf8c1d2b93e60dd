//! What an operator sees of a running server: an idle server stays idle, a broken file is
//! reported once, a missing file or directory says what to do, and no file that validates can
//! crash a route or a background task.

use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{PATIENCE, Server, Workdir, eventually, http};

const SEED: &str = include_str!("../../flags/feature-flags.yaml");

fn reload_counters(server: &Server) -> [f64; 3] {
    ["applied", "unchanged", "rejected"].map(|o| server.metric(&format!("toggled_reloads_total{{outcome=\"{o}\"}}")))
}

/// Times the process's threads went to sleep so far (voluntary context switches, Linux):
/// each is one wakeup. (Preemptions are not counted: they depend on the machine's load.)
fn wakeups(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server's threads");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.starts_with("voluntary_ctxt_switches"))
                .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

#[test]
fn an_idle_server_does_not_reload_itself() {
    let dir = Workdir::new(SEED);
    // The default store poll and flush intervals (the suite's servers poll faster).
    let server = Server::start(&dir, &["--poll-interval", "1s", "--flush-interval", "10s"]);
    let before = reload_counters(&server);
    assert_eq!(before, [1.0, 0.0, 0.0], "one startup load, nothing else");
    // Observing idleness takes time: nothing may happen during these seconds, and the process
    // barely wakes (the periodic tasks tick a few times a second; a file-event debouncer that
    // ticked every 5 ms made ~200 wakeups a second).
    let woken = wakeups(server.pid());
    std::thread::sleep(Duration::from_secs(3));
    let woken = wakeups(server.pid()) - woken;
    assert_eq!(reload_counters(&server), before, "an idle server's reload counters do not move");
    // Wakeups follow the timers, not the machine's speed: a few ticks a second here, where the
    // debouncer that ticked every 5 ms made ~600 in 3 s. The bound sits well between the two.
    assert!(woken < 300, "an idle server's threads woke {woken} times in 3 s");
    let status = server.ready();
    assert_eq!(status["last_reload"]["trigger"], json!("startup"), "{status}");
    // Reading the file, touching it or changing its mode is not a change either.
    std::fs::read_to_string(&server.flags).expect("read");
    let perms = std::fs::metadata(&server.flags).expect("meta").permissions();
    std::fs::set_permissions(&server.flags, perms).expect("chmod");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(reload_counters(&server), before, "reads and metadata changes do not reload");
    // A real change does, once.
    server.write_flags(&SEED.replace("default_value: false", "default_value: true"));
    eventually(PATIENCE, || (reload_counters(&server)[0] == 2.0).then_some(()));
    let status = server.ready();
    assert_eq!(status["last_reload"]["trigger"], json!("watch"), "{status}");
}

#[test]
fn a_broken_file_is_reported_once_and_a_fix_is_picked_up() {
    let dir = Workdir::new(SEED);
    let server = Server::start(&dir, &[]);
    server.write_flags("feature_flags:\n  broken:\n    default_value: maybe\n");
    eventually(PATIENCE, || (server.ready()["last_reload"]["ok"] == json!(false)).then_some(()));
    std::thread::sleep(Duration::from_secs(2));
    let summaries = server.log_lines("error(s) in");
    assert_eq!(summaries.len(), 1, "one report of one broken content: {summaries:#?}");
    assert_eq!(reload_counters(&server)[2], 1.0, "rejected once");
    // SIGHUP re-reads the same broken content: still one report.
    let pid = server.pid().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().expect("kill").success());
    eventually(PATIENCE, || (reload_counters(&server)[2] == 2.0).then_some(()));
    assert_eq!(server.log_lines("error(s) in").len(), 1, "the same content is not reported again");
    // A different broken content is reported.
    server.write_flags("feature_flags:\n  broken:\n    default_value: perhaps\n");
    eventually(PATIENCE, || (server.log_lines("error(s) in").len() == 2).then_some(()));
    server.write_flags(SEED);
    eventually(PATIENCE, || (server.ready()["last_reload"]["ok"] == json!(true)).then_some(()));
}

#[test]
fn a_missing_file_is_not_ready_until_it_appears() {
    let dir = Workdir::new(SEED);
    std::fs::remove_file(dir.path().join("flags/feature-flags.yaml")).expect("remove");
    let server = Server::start(&dir, &[]);
    let r = http().get(server.url("/ready")).send().expect("ready");
    assert_eq!(r.status(), 503);
    let body: Value = r.json().expect("JSON");
    let message = body["error"]["details"]["last_reload"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("does not exist") && message.contains("feature-flags.yaml"), "{body}");
    let lines = server.log_lines("does not exist");
    assert_eq!(lines.len(), 1, "one clear line: {lines:#?}");
    assert!(lines[0].contains("create it"), "it says what to do: {}", lines[0]);
    server.write_flags(SEED);
    eventually(PATIENCE, || (http().get(server.url("/ready")).send().ok()?.status() == 200).then_some(()));
}

#[test]
fn a_missing_directory_exits_one_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_toggled"))
        .args(["serve", "--listen", "127.0.0.1:0", "--flags"])
        .arg(dir.path().join("nowhere/flags.yaml"))
        .arg("--database")
        .arg(format!("sqlite://{}", dir.path().join("t.db").display()))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nowhere") && stderr.contains("does not exist"), "{stderr}");
}

/// Durations as long as the format allows, on every kind of schedule: no route may fail.
const LONGEST: &str = r#"
feature_flags:
  slow_gradual:
    rollout_strategy:
      type: gradual
      start: "9999-01-01T00:00:00Z"
      stages: [{percentage: 5, duration: 36500d}, {percentage: 50, duration: 36500d}, {percentage: 100}]
  started_gradual:
    rollout_strategy:
      type: gradual
      start: "2020-01-01T00:00:00Z"
      stages: [{percentage: 5, duration: 36500d}, {percentage: 50, duration: 36500d}, {percentage: 100}]
  long_test:
    type: variant
    variants: {a: 1, b: 2}
    default_variant: a
    rollout_strategy: {type: ab_test, traffic_split: {a: 50, b: 50}, duration: 36500d, start: "9999-12-31T00:00:00Z"}
"#;

#[test]
fn the_longest_durations_never_crash_a_route() {
    let dir = Workdir::new(LONGEST);
    let server = Server::start(&dir, &[]);
    for flag in ["slow_gradual", "started_gradual", "long_test"] {
        let v = server.evaluate(flag, &json!({"targetingKey": "u1"}));
        assert_eq!(v["flag"], json!(flag), "{v}");
        let (status, body) = server.admin(Method::GET, &format!("/flags/{flag}"), None);
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = server.admin(Method::GET, "/flags/started_gradual", None);
    assert_eq!((status, &body["state"]["stage"]), (200, &json!(1)), "{body}");
    assert!(body["state"]["next_stage_at"].as_str().is_some_and(|t| t.starts_with("2119")), "{body}");
    let all = http().post(server.url("/evaluate/all")).json(&json!({"context": {}})).send().expect("all");
    assert_eq!(all.status(), 200);
    let bulk = http().post(server.url("/ofrep/v1/evaluate/flags")).json(&json!({"context": {}})).send().expect("bulk");
    assert_eq!(bulk.status(), 200);
    assert_eq!(http().get(server.url("/metrics")).send().expect("metrics").status(), 200);
    let (status, body) =
        server.admin(Method::PUT, "/flags/slow_gradual", Some(json!({"enabled": false, "reason": "test"})));
    assert_eq!(status, 200, "{body}");
    // The reload task is alive: a change is still picked up.
    server.write_flags(&LONGEST.replace("percentage: 5,", "percentage: 6,"));
    eventually(PATIENCE, || {
        let (_, body) = server.admin(Method::GET, "/flags/started_gradual", None);
        (body["state"]["stage_percentage"] == json!(6)).then_some(())
    });
    let tasks = &server.ready()["tasks"];
    for task in ["reload", "store_poll", "flush_evaluated"] {
        assert_eq!(tasks[task]["running"], json!(true), "{tasks}");
        assert_eq!(tasks[task]["restarts"], json!(0), "{tasks}");
    }
}

#[test]
fn durations_and_windows_past_a_century_are_refused_clearly() {
    let too_long = LONGEST.replace("duration: 36500d, start", "duration: 100000000d, start");
    let errors = toggled::flags::compile(&too_long).expect_err("refused");
    let text = errors.render("f.yaml");
    assert!(text.contains("long_test.rollout_strategy.duration") && text.contains("at most 100 years"), "{text}");
    let dir = Workdir::new(SEED);
    let server = Server::start(&dir, &[]);
    let (status, body) = server.admin(Method::GET, "/releases/metrics?window=100000000d", None);
    assert_eq!((status, &body["error"]["code"]), (400, &json!("invalid_query")), "{body}");
    let (status, _) = server.admin(Method::GET, "/releases/metrics?window=36500d", None);
    assert_eq!(status, 200);
}

#[test]
fn dot_keys_and_header_injection_in_links_are_file_errors() {
    for key in [".", ".."] {
        let yaml = format!("feature_flags:\n  \"{key}\":\n    default_value: true\n");
        let text = toggled::flags::compile(&yaml).expect_err("refused").render("f.yaml");
        assert!(text.contains("not \".\" or \"..\" alone"), "{text}");
    }
    toggled::flags::compile("feature_flags:\n  ...:\n    default_value: true\n  fünf:\n    default_value: true\n")
        .expect("three dots and Unicode letters are keys");
    for link in [
        r#"'https://a/x>; rel="next", <https://evil/'"#,
        "'https://a/with space'",
        "\"https://a/\\u0007bell\"",
        "'https://'",
        "'ftp://a/'",
        "'//evil.example/x'",
        "'/\\evil.example/x'",
    ] {
        let yaml = format!(
            "feature_flags:\n  old:\n    sunset_plan:\n      warning_phase: {{start_date: 2024-01-01, actions: [deprecation_headers], link: {link}}}\n"
        );
        let text = toggled::flags::compile(&yaml).expect_err(link).render("f.yaml");
        assert!(text.contains("warning_phase.link"), "{link}: {text}");
    }
}

#[test]
fn wrong_methods_shapes_and_queries_get_our_errors() {
    let dir = Workdir::new(SEED);
    let server = Server::start(&dir, &[]);
    let r = http().delete(server.url("/flags")).bearer_auth(crate::support::ADMIN).send().expect("request");
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers().get("allow").and_then(|v| v.to_str().ok()), Some("GET,HEAD"));
    let body: Value = r.json().expect("JSON");
    assert_eq!(body["error"]["code"], json!("method_not_allowed"), "{body}");

    let put = |body: &str| {
        let r = http()
            .put(server.url("/flags/new_payment_flow"))
            .bearer_auth(crate::support::ADMIN)
            .body(body.to_owned())
            .send()
            .expect("request");
        (r.status().as_u16(), r.json::<Value>().expect("JSON"))
    };
    let (status, body) = put(r#"{"enabled":"false"}"#);
    assert_eq!((status, &body["error"]["code"]), (422, &json!("invalid_override")), "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("`enabled`: invalid type: string \"false\", expected a boolean"), "{message}");
    let (status, body) = put(r#"{"enabled":false,"reson":"x"}"#);
    assert_eq!((status, &body["error"]["code"]), (422, &json!("invalid_override")), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("unknown field `reson`")), "{body}");
    let (status, body) = put(r#"{"enabled":fals"#);
    assert_eq!((status, &body["error"]["code"]), (400, &json!("invalid_json")), "{body}");
    let (status, body) = server.admin(Method::POST, "/flags/new_payment_flow/rollout", Some(json!({"action": 3})));
    assert_eq!((status, &body["error"]["code"]), (422, &json!("invalid_action")), "{body}");
    let r = http().post(server.url("/evaluate")).body(r#"{"flag": ["x"]}"#).send().expect("request");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().expect("JSON");
    assert_eq!(body["error"]["code"], json!("invalid_request"), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.starts_with("`flag`: ")), "{body}");

    for path in ["/audit?limit=abc", "/releases/metrics?window=soon", "/audit?limit=0"] {
        let (status, body) = server.admin(Method::GET, path, None);
        assert_eq!((status, &body["error"]["code"]), (400, &json!("invalid_query")), "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.contains("Failed to deserialize"), "our own words, not the framework's: {message}");
    }
}

#[test]
fn the_api_page_lists_every_error_code_and_no_other() {
    let readme = include_str!("../../docs/api.md");
    let start = readme.find("<!-- error-codes -->").expect("docs/api.md's error table");
    let end = readme.find("<!-- /error-codes -->").expect("the end of the table");
    let mut documented = std::collections::BTreeMap::new();
    for row in readme[start..end].lines().filter(|l| l.starts_with("| 4") || l.starts_with("| 5")) {
        let status: u16 = row[2..5].parse().expect("a status");
        for code in row.split('`').skip(1).step_by(2).filter(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        {
            documented.insert(code.to_owned(), status);
        }
    }
    documented.remove("details");
    let actual: std::collections::BTreeMap<String, u16> =
        toggled::http::error::Code::all().map(|c| (c.as_str().to_owned(), c.status())).collect();
    assert_eq!(documented, actual, "docs/api.md's error table and src/http/error.rs disagree");
}

/// Runs `serve` on `flags` with `extra` arguments until it has printed its address and one
/// more stderr line, then SIGTERM; returns (stdout, stderr).
fn serve_briefly(flags: &str, extra: &[&str]) -> (String, String) {
    use std::io::{BufRead, BufReader};
    let dir = Workdir::new(flags);
    let mut child = Command::new(env!("CARGO_BIN_EXE_toggled"))
        .args(["serve", "--listen", "127.0.0.1:0", "--flags"])
        .arg(dir.path().join("flags/feature-flags.yaml"))
        .arg("--database")
        .arg(format!("sqlite://{}", dir.path().join("t.db").display()))
        .args(extra)
        .env("TOGGLED_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut out = String::new();
    BufReader::new(stdout).read_line(&mut out).expect("the address line");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let output = child.wait_with_output().expect("exits");
    assert!(output.status.success(), "SIGTERM exits 0");
    out.push_str(&String::from_utf8_lossy(&output.stdout));
    (out, String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn logs_have_no_colour_off_a_terminal_and_json_means_every_line() {
    let broken = "feature_flags:\n  broken:\n    default_value: maybe\n";
    let (out, err) = serve_briefly(broken, &[]);
    assert!(out.starts_with("listening on http://127.0.0.1:"), "{out}");
    assert!(err.contains("default_value"), "the broken file is logged: {err}");
    assert!(!err.contains('\u{1b}') && !out.contains('\u{1b}'), "no ANSI escapes off a terminal: {err:?}");

    let (out, err) = serve_briefly(broken, &["--log-format", "json"]);
    let lines: Vec<&str> = out.lines().chain(err.lines()).filter(|l| !l.is_empty()).collect();
    assert!(lines.len() >= 4, "address, errors, shutdown: {lines:#?}");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.is_object(), "{line}");
    }
    let first: Value = serde_json::from_str(lines[0]).expect("JSON");
    assert!(first["message"].as_str().is_some_and(|m| m.starts_with("listening on http://")), "{first}");

    let dir = tempfile::tempdir().expect("temp dir");
    let bad = Command::new(env!("CARGO_BIN_EXE_toggled"))
        .args(["serve", "--log-format", "json", "--admin-tokens", "nocolon", "--flags"])
        .arg(dir.path().join("f.yaml"))
        .output()
        .expect("runs");
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    for line in stderr.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["fields"]["message"].as_str().is_some_and(|m| m.contains("--admin-tokens")), "{v}");
    }
    assert!(!stderr.is_empty());
}
