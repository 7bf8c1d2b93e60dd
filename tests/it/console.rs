//! The web console (`/ui`): its files and headers over HTTP, then the operator's path in a real
//! browser (Debian's Chromium driven by playwright-core from `tests/ui/console.mjs`; `.ci/deps`
//! installs both): sign in, find a flag, kill it with a reason, see it live in a second tab and
//! after a file edit, the XSS case, and the API's own record of what the console did.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN, Server, Workdir, http};

const FLAGS: &str = r#"metrics:
  payment_success_rate:
    query: 'sum(rate(payments_ok_total[5m])) / sum(rate(payments_total[5m]))'
feature_flags:
  new_payment_flow:
    description: New checkout flow
    default_value: false
    rollout_strategy:
      type: gradual
      stages:
        - {percentage: 5, duration: 24h}
        - {percentage: 50, duration: 48h}
        - {percentage: 100}
    monitoring:
      metrics: [payment_success_rate]
      alerts:
        - {condition: "payment_success_rate < 0.95", action: rollback}
  html_description:
    description: "<img src=x onerror=alert(1)>"
    default_value: false
  guarded:
    default_value: false
    change_control: approval
"#;

/// The page and its two files are served with a policy that forbids inline script, with
/// validators, and without a token; anything else under `/ui/` is a JSON 404.
#[test]
fn the_console_is_served_with_a_strict_content_security_policy() {
    let dir = Workdir::new(FLAGS);
    let server = Server::start(&dir, &[]);
    for (path, kind) in [("/ui", "text/html"), ("/ui/app.js", "text/javascript"), ("/ui/app.css", "text/css")] {
        let r = http().get(server.url(path)).send().expect("GET");
        assert_eq!(r.status(), 200, "{path}");
        let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(header("content-type").starts_with(kind), "{path}: {}", header("content-type"));
        let csp = header("content-security-policy");
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(header("x-content-type-options"), "nosniff");
        let etag = header("etag");
        let again = http().get(server.url(path)).header("if-none-match", &etag).send().expect("GET");
        assert_eq!(again.status(), 304, "{path} with its ETag");
        let body = r.text().expect("body");
        if path == "/ui" {
            assert!(!body.contains("<script>") && !body.contains(" on"), "no inline script or handler: {body}");
        }
    }
    let missing = http().get(server.url("/ui/secrets.txt")).send().expect("GET");
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().expect("JSON error");
    assert_eq!(body["error"]["code"], "not_found");
}

/// The operator's path in Chromium. The browser script asserts what the page shows; this test
/// then asserts what the server recorded and that the token reached no log line.
#[test]
fn an_operator_kills_a_flag_from_the_console_and_every_tab_sees_it() {
    let root = env!("CARGO_MANIFEST_DIR");
    let js = format!("{root}/target/js");
    std::fs::copy(format!("{root}/tests/ui/console.mjs"), format!("{js}/console.mjs"))
        .expect("target/js exists (.ci/deps installs playwright-core there)");
    let dir = Workdir::new(FLAGS);
    let token = format!("ops:{ADMIN},alice:secret-alice-1");
    let server = Server::start_with_env(&dir, &[("TOGGLED_ADMIN_TOKENS", &token), ("TOGGLED_LOG", "debug")]);
    // A change another admin asked for, waiting for approval (`change_control: approval`).
    let asked = http()
        .put(server.url("/flags/guarded"))
        .bearer_auth("secret-alice-1")
        .json(&json!({"enabled": true, "reason": "<b>launch</b>"}))
        .send()
        .expect("request");
    assert_eq!(asked.status(), 202);
    let asked: Value = asked.json().expect("JSON");
    for user in ["u1", "u2", "u3"] {
        server.evaluate("new_payment_flow", &json!({"targetingKey": user}));
    }
    let release = json!({"service": "checkout", "commits": ["feat(api): render <b>bold</b> safely #7"]});
    let (status, created) = server.admin(Method::POST, "/releases", Some(release));
    assert_eq!(status, 201, "{created}");
    let registration =
        json!({"appName": "<b>shop</b>", "instanceId": "i-1", "sdkVersion": "unleash-client-node:6.12.1"});
    let r =
        http().post(server.url("/api/client/register")).bearer_auth(ADMIN).json(&registration).send().expect("post");
    assert_eq!(r.status(), 202);
    let body = json!({"at": "2099-01-01T00:00:00Z", "reason": "<i>later</i>", "override": {"enabled": false}});
    let (status, schedule) = server.admin(Method::POST, "/flags/new_payment_flow/schedule", Some(body));
    assert_eq!(status, 201, "{schedule}");
    let mut browser = std::process::Command::new("node");
    browser
        .arg("console.mjs")
        .current_dir(&js)
        .env("TOGGLED_URL", &server.base)
        .env("TOGGLED_TOKEN", ADMIN)
        .env("TOGGLED_FLAG", "new_payment_flow")
        .env("TOGGLED_XSS_FLAG", "html_description")
        .env("TOGGLED_FLAG_FILE", &server.flags)
        .env("TOGGLED_RELEASE", created["id"].to_string())
        .env("TOGGLED_SDK_APP", "<b>shop</b>")
        .env("TOGGLED_SCHEDULE", schedule["id"].to_string())
        .env("TOGGLED_REQUEST", asked["change_request"]["id"].to_string());
    if let Ok(shots) = std::env::var("TOGGLED_SCREENSHOTS") {
        browser.env("TOGGLED_SCREENSHOTS", shots);
    }
    let out = browser.output().expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "browser run failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_str(stdout.lines().last().expect("a result line")).expect("JSON");
    assert_eq!(seen["wrongToken"], "That token was refused: unknown token");
    assert_eq!(seen["xssText"], "<img src=x onerror=alert(1)>", "{seen}");
    assert_eq!(seen["afterKill"], "killed by ops");
    assert!(
        seen["sdkRow"].as_str().is_some_and(|r| r.contains("<b>shop</b>i-1unleash-client-node:6.12.1server")),
        "{seen}"
    );
    assert_eq!(seen["sdkHtml"], json!(0), "an SDK's app name is text: {seen}");
    assert!(
        seen["scheduleRow"]
            .as_str()
            .is_some_and(|r| r.contains("kill") && r.contains("<i>later</i>") && r.contains("pending")),
        "{seen}"
    );
    assert_eq!(seen["scheduleHtml"], json!(0), "a schedule's reason is text: {seen}");
    assert!(seen["requestRow"].as_str().is_some_and(|r| r.contains("alice") && r.contains("<b>launch</b>")), "{seen}");
    let (_, guarded) = server.admin(Method::GET, "/flags/guarded", None);
    assert_eq!(guarded["state"]["override"]["kind"], json!("enable"), "approved from the console: {guarded}");
    let (_, audit) = server.admin(Method::GET, "/audit?flag=guarded", None);
    let approved = audit["entries"].as_array().expect("entries").iter().any(|e| {
        e["action"] == json!("change_approved")
            && e["actor"] == json!("ops")
            && e["reason"] == json!("browser test: looks right")
    });
    assert!(approved, "{audit}");
    assert!(seen["counts"].as_str().is_some_and(|c| c.contains("DEFAULT") || c.contains("TARGETING_MATCH")), "{seen}");
    assert!(seen["secondTabMs"].as_u64().is_some_and(|ms| ms <= 2_000), "{seen}");
    assert!(seen["explain"].as_str().is_some_and(|s| s.contains("reason DISABLED")), "{seen}");
    assert!(seen.get("consoleErrors").is_none(), "the browser logged errors: {seen}");
    assert_eq!(seen["darkBackground"], "rgb(15, 20, 25)", "the dark scheme applies: {seen}");
    assert!(seen["zoomOverflow"].as_i64().is_some_and(|px| px <= 0), "at 400% zoom the page reflows: {seen}");

    // What the console did went through the API: the kill and the clear, each with its reason.
    let (status, audit) = server.admin(Method::GET, "/audit?flag=new_payment_flow", None);
    assert_eq!(status, 200);
    let entries: Vec<(Value, Value, Value)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["action"].clone(), e["actor"].clone(), e["reason"].clone()))
        .collect();
    assert_eq!(
        entries,
        [
            (json!("override_cleared"), json!("ops"), json!("browser test: resolved")),
            (json!("override_set"), json!("ops"), json!("browser test: incident 42")),
            // The schedule this test made before the browser ran.
            (json!("change_scheduled"), json!("ops"), json!("<i>later</i>")),
        ]
    );
    assert_eq!(seen["releaseHtml"], 0, "release notes are text: {seen}");
    let (_, shown) = server.admin(Method::GET, &format!("/releases/{}", created["id"]), None);
    assert_eq!(shown["approvals"][0]["approver"], "pat", "{shown}");
    let (_, flags) = server.admin(Method::GET, "/flags", None);
    let keys: Vec<&str> = flags["flags"].as_array().expect("flags").iter().filter_map(|f| f["key"].as_str()).collect();
    assert!(keys.contains(&"added_live"), "the file edit was applied: {keys:?}");
    assert!(server.log_lines(ADMIN).is_empty(), "the token reached a log line");
}
