//! Unleash's browser SDK (`unleash-proxy-client`, installed from npm by `.ci/deps`) against
//! toggled's frontend API: for many contexts, every flag answers through the SDK what it answers
//! through `/evaluate` (gradual stages, A/B splits, rules, prerequisites, typed payloads), also
//! after a kill switch; frontend tokens get answers and never definitions.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, Workdir, http};

pub(crate) const FLAGS: &str = r#"feature_flags:
  checkout:
    default_value: false
    rollout_strategy:
      type: gradual
      start: "2020-01-01T00:00:00Z"
      stages:
        - {percentage: 10, duration: 24h, criteria: internal}
        - {percentage: 40, duration: permanent}
  layout:
    type: variant
    variants: {classic: {columns: 2}, grid: {columns: 3}, list: {rows: true}}
    default_variant: classic
    rollout_strategy: {type: ab_test, traffic_split: {classic: 34, grid: 33, list: 33}}
  beta_banner:
    default_value: false
    rules:
      - {name: staff, segment: internal, serve: true}
      - {name: some_pros, constraints: [{attribute: plan, operator: IN, values: [pro]}], percentage: 50}
  new_checkout_copy:
    default_value: false
    requires: [{flag: checkout, enabled: true}]
    rollout_strategy: {type: percentage, percentage: 100}
  static_on:
    default_value: true
  price_tier:
    type: variant
    variants: {low: 9.5, high: 19}
    default_variant: low
    rollout_strategy: {type: percentage, percentage: 50}
    rollout_variant: high
  killed_later:
    default_value: false
    rollout_strategy: {type: percentage, percentage: 100}
  except_pro_staff:
    default_value: true
    constraints: [{attribute: plan, operator: IN, values: [pro]}, {segment: internal}]
segments:
  internal:
    - {attribute: email, operator: STR_ENDS_WITH, values: ["@example.com"]}
"#;

pub(crate) const FRONTEND: &str = "*:development.5a3c1f0e9b";
pub(crate) const CLIENT_TOKEN: &str = "default:development.9d8e7f6a5b";

/// A server with a frontend token and a client token, as the SDKs are given.
pub(crate) fn with_sdk_tokens(dir: &Workdir) -> Server {
    let frontend = format!("web:{FRONTEND}");
    let client = format!("service:{CLIENT_TOKEN}");
    Server::start(dir, &["--frontend-tokens", &frontend, "--client-tokens", &client])
}

/// The browser SDK's answers for each context: `[{flag: {enabled, variant, payload}}]`.
fn through_sdk(server: &Server, flags: &[&str], contexts: &[Value], post: bool) -> Vec<Value> {
    let input = json!({"url": server.base, "token": FRONTEND, "flags": flags, "contexts": contexts, "post": post});
    run_sdk("frontend.mjs", "unleash-proxy-client", &input)
}

/// The Node.js server SDK's answers (it polls /api/client/features and evaluates locally).
fn through_server_sdk(server: &Server, flags: &[&str], contexts: &[Value]) -> Vec<Value> {
    let backups = tempfile::tempdir().expect("temp dir");
    let input = json!({"url": server.base, "token": CLIENT_TOKEN, "flags": flags, "contexts": contexts});
    run_sdk_with("server.mjs", "unleash-client", &input, &[("BACKUP_DIR", backups.path().to_str().expect("utf-8"))])
}

/// Unleash's Python server SDK (`UnleashClient`, in the venv `.ci/deps` makes), the same way.
fn through_python_sdk(server: &Server, flags: &[&str], contexts: &[Value]) -> Vec<Value> {
    use std::io::Write as _;
    let root = env!("CARGO_MANIFEST_DIR");
    let python = format!("{root}/target/ofrep-venv/bin/python");
    let mut child = std::process::Command::new(&python)
        .arg(format!("{root}/tests/unleash/server.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python} runs (.ci/deps makes it): {e}"));
    let input = json!({"url": server.base, "token": CLIENT_TOKEN, "flags": flags, "contexts": contexts});
    child.stdin.take().expect("stdin").write_all(input.to_string().as_bytes()).expect("write");
    let out = child.wait_with_output().expect("python ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).expect("JSON")
}

fn run_sdk(script: &str, package: &str, input: &Value) -> Vec<Value> {
    run_sdk_with(script, package, input, &[])
}

pub(crate) fn run_sdk_with(script: &str, package: &str, input: &Value, env: &[(&str, &str)]) -> Vec<Value> {
    use std::io::Write as _;
    let root = env!("CARGO_MANIFEST_DIR");
    let js = format!("{root}/target/js");
    assert!(
        std::path::Path::new(&format!("{js}/node_modules/{package}")).is_dir(),
        ".ci/deps installs {package} in target/js"
    );
    let mut child = std::process::Command::new("node")
        .arg(format!("{root}/tests/unleash/{script}"))
        .envs(env.iter().copied())
        .current_dir(&js)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs");
    child.stdin.take().expect("stdin").write_all(input.to_string().as_bytes()).expect("write");
    let out = child.wait_with_output().expect("node ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).expect("JSON")
}

/// What the SDKs must say for `context`, from toggled's own `/evaluate/all` (one snapshot):
/// `{flag: {enabled, variant, payload}}`.
fn expected(client: &reqwest::blocking::Client, server: &Server, context: &Value) -> Value {
    let mut ctx = context.clone();
    if let Some(props) = context["properties"].as_object() {
        for (k, v) in props {
            ctx[k] = v.clone();
        }
    }
    let all: Value = client
        .post(server.url("/evaluate/all"))
        .bearer_auth(crate::support::ADMIN)
        .json(&json!({"context": ctx}))
        .send()
        .expect("request")
        .json()
        .expect("JSON");
    let mut out = serde_json::Map::new();
    for (flag, e) in all["flags"].as_object().expect("flags") {
        let reason = e["reason"].as_str().expect("reason");
        let want = if e["value"].is_boolean() {
            json!({"enabled": e["value"] == json!(true), "variant": "disabled", "payload": null})
        } else if ["STATIC", "TARGETING_MATCH", "SPLIT", "OVERRIDE"].contains(&reason) {
            let payload = match &e["value"] {
                Value::String(s) => json!({"type": "string", "value": s}),
                Value::Number(n) => json!({"type": "number", "value": n.to_string()}),
                other => json!({"type": "json", "value": other.to_string()}),
            };
            json!({"enabled": true, "variant": e["variant"], "payload": payload})
        } else {
            json!({"enabled": false, "variant": "disabled", "payload": null})
        };
        out.insert(flag.clone(), want);
    }
    Value::Object(out)
}

pub(crate) fn contexts() -> Vec<Value> {
    (0..40)
        .map(|i| {
            let mut properties = json!({"plan": if i % 3 == 0 { "pro" } else { "free" }});
            if i % 5 == 0 {
                properties["email"] = json!(format!("dev{i}@example.com"));
            }
            json!({"userId": format!("user-{i}"), "properties": properties})
        })
        .collect()
}

#[test]
fn the_browser_sdk_answers_what_evaluate_answers() {
    let dir = Workdir::new(FLAGS);
    let server = with_sdk_tokens(&dir);
    let flags = [
        "checkout",
        "layout",
        "beta_banner",
        "new_checkout_copy",
        "static_on",
        "price_tier",
        "killed_later",
        "except_pro_staff",
    ];
    let contexts = contexts();
    // `sdk`: 0 the browser SDK by GET, 1 by POST, 2 the Node.js server SDK evaluating locally.
    let check = |sdk: u8| {
        let answers = match sdk {
            0 | 1 => through_sdk(&server, &flags, &contexts, sdk == 1),
            _ => through_server_sdk(&server, &flags, &contexts),
        };
        assert_eq!(answers.len(), contexts.len());
        let mut on = 0;
        let client = http();
        for (context, answer) in contexts.iter().zip(&answers) {
            let wanted = expected(&client, &server, context);
            for flag in flags {
                let want = &wanted[flag];
                on += usize::from(want["enabled"] == json!(true));
                assert_eq!(&answer[flag], want, "SDK {sdk}: {flag} for {context}");
            }
        }
        assert!(on > 40 && on < 40 * flags.len(), "a mix of on and off answers: {on}");
    };
    for sdk in 0..3 {
        check(sdk);
    }
    // A kill switch reaches the SDK on its next fetch.
    let (status, _) =
        server.admin(Method::PUT, "/flags/killed_later", Some(json!({"enabled": false, "reason": "incident"})));
    assert_eq!(status, 200);
    let answers = through_sdk(&server, &["killed_later"], &contexts[..3], false);
    assert!(answers.iter().all(|a| a["killed_later"]["enabled"] == json!(false)), "{answers:?}");
    check(0);
    check(2);
}

/// The example flags (a gradual rollout in its first stage, an A/B split, a flag past its
/// sunset) answer through both SDKs as through `/evaluate`.
#[test]
fn the_example_flags_answer_the_same_through_every_sdk() {
    let dir = Workdir::new(include_str!("../../flags/feature-flags.yaml"));
    let server = with_sdk_tokens(&dir);
    let flags = ["new_payment_flow", "enhanced_search", "legacy_api_deprecation"];
    let contexts: Vec<Value> = (0..60)
        .map(|i| json!({"userId": format!("u{i}"), "properties": {"email": if i % 2 == 0 { "a@example.com" } else { "a@other.org" }}}))
        .collect();
    let client = http();
    let sdks = [
        through_sdk(&server, &flags, &contexts, false),
        through_server_sdk(&server, &flags, &contexts),
        through_python_sdk(&server, &flags, &contexts),
    ];
    for answers in sdks {
        let mut on = 0;
        for (context, answer) in contexts.iter().zip(&answers) {
            let wanted = expected(&client, &server, context);
            for flag in flags {
                on += usize::from(wanted[flag]["enabled"] == json!(true));
                assert_eq!(&answer[flag], &wanted[flag], "{flag} for {context}");
            }
        }
        assert!(on > 0, "some answers are on");
    }
    // The server SDK registered and reported what it evaluated: counted per flag and app, and
    // the instance is listed.
    let yes = server.metric(r#"toggled_sdk_evaluations_total{flag="enhanced_search",result="yes",app="toggled-test"}"#);
    assert!(yes > 0.0, "the SDK's counts arrived");
    let (_, instances) = server.admin(Method::GET, "/sdk-instances", None);
    let list = instances["instances"].as_array().expect("instances");
    assert!(list.iter().any(|i| i["app"] == json!("toggled-test") && i["kind"] == json!("server")), "{instances}");
    assert!(list.iter().any(|i| i["sdk"].as_str().is_some_and(|s| s.starts_with("unleash-node-sdk"))), "{instances}");
    // The Python SDK too: registered, and its counts (flushed as it stops) arrived.
    let python = r#"toggled_sdk_evaluations_total{flag="enhanced_search",result="yes",app="toggled-test-python"}"#;
    assert!(server.metric(python) > 0.0, "the Python SDK's counts arrived");
    assert!(
        list.iter().any(|i| i["app"] == json!("toggled-test-python")
            && i["kind"] == json!("server")
            && i["sdk"].as_str().is_some_and(|s| s.starts_with("unleash-python-sdk:"))),
        "{instances}"
    );
}

#[test]
fn the_frontend_api_has_etags_single_features_and_accepts_sdk_posts() {
    let dir = Workdir::new(FLAGS);
    let server = with_sdk_tokens(&dir);
    let get = |path: &str, etag: Option<&str>| {
        let mut req = http().get(server.url(path)).header("authorization", FRONTEND);
        if let Some(tag) = etag {
            req = req.header("if-none-match", tag);
        }
        req.send().expect("request")
    };
    let first = get("/api/frontend?userId=user-3&properties%5Bplan%5D=pro", None);
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().expect("ascii").to_owned();
    let body: Value = first.json().expect("JSON");
    let names: Vec<&str> =
        body["toggles"].as_array().expect("toggles").iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"static_on") && names.contains(&"layout"), "a static flag and a split: {body}");
    assert!(body["toggles"].as_array().expect("toggles").iter().all(|t| t["enabled"] == json!(true)), "enabled only");
    assert_eq!(get("/api/frontend?userId=user-3&properties%5Bplan%5D=pro", Some(&etag)).status(), 304);
    assert_eq!(get("/api/frontend?userId=user-4", Some(&etag)).status(), 200, "another context, another body");

    let one = get("/api/frontend/features/static_on?userId=u", None);
    assert_eq!(one.status(), 200);
    let toggle: Value = one.json().expect("JSON");
    assert_eq!(
        toggle["variant"],
        json!({"name": "disabled", "enabled": false, "feature_enabled": true, "featureEnabled": true})
    );
    assert_eq!(get("/api/frontend/features/no_such_flag", None).status(), 404);

    for path in ["/api/frontend/client/metrics", "/api/frontend/client/register"] {
        let r = http().post(server.url(path)).header("authorization", FRONTEND).json(&json!({"appName": "web"})).send();
        assert_eq!(r.expect("request").status(), 202, "{path}");
    }
    // A frontend token gets answers (OFREP and /evaluate too) and never definitions.
    let r = http().get(server.url("/flags")).header("authorization", FRONTEND).send().expect("request");
    assert_eq!(r.status(), 403);
    let r = http()
        .post(server.url("/evaluate"))
        .header("authorization", FRONTEND)
        .json(&json!({"flag": "static_on", "context": {}}))
        .send()
        .expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(http().get(server.url("/api/frontend")).send().expect("request").status(), 401, "a token is needed");

    // Definitions: client tokens only; the document is rendered once per change, with an ETag.
    assert_eq!(get("/api/client/features", None).status(), 403, "a frontend token never reads definitions");
    let features = |etag: Option<&str>| {
        let mut req = http().get(server.url("/api/client/features")).header("authorization", CLIENT_TOKEN);
        if let Some(tag) = etag {
            req = req.header("if-none-match", tag);
        }
        req.send().expect("request")
    };
    let r = features(None);
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().expect("ascii").to_owned();
    let doc: Value = r.json().expect("JSON");
    assert_eq!(doc["version"], json!(2));
    assert_eq!(doc["features"].as_array().map(Vec::len), Some(8));
    assert_eq!(features(Some(&etag)).status(), 304);
    let (status, _) = server.admin(Method::PUT, "/flags/killed_later", Some(json!({"enabled": false, "reason": "x"})));
    assert_eq!(status, 200);
    let r = features(Some(&etag));
    assert_eq!(r.status(), 200, "a kill switch is a new document");
    let doc: Value = r.json().expect("JSON");
    let killed = doc["features"].as_array().expect("features").iter().find(|f| f["name"] == "killed_later").cloned();
    assert_eq!(killed.expect("killed_later")["enabled"], json!(false));
    for path in ["/api/client/register", "/api/client/metrics"] {
        let r =
            http().post(server.url(path)).header("authorization", CLIENT_TOKEN).json(&json!({"appName": "svc"})).send();
        assert_eq!(r.expect("request").status(), 202, "{path}");
    }
    // Counts of unknown flags and variants are dropped; app names beyond 50 count as `other`.
    let report = |app: &str| {
        json!({"appName": app, "instanceId": "i-1", "bucket": {"start": "2026-01-01T00:00:00Z",
            "stop": "2026-01-01T00:01:00Z", "toggles": {
                "layout": {"yes": 3, "no": 1, "variants": {"grid": 2, "nonsense": 5}},
                "no_such_flag": {"yes": 9}}}})
    };
    for i in 0..60 {
        let r = http()
            .post(server.url("/api/client/metrics"))
            .header("authorization", CLIENT_TOKEN)
            .json(&report(&format!("app-{i}")))
            .send();
        assert_eq!(r.expect("request").status(), 202);
    }
    assert_eq!(server.metric(r#"toggled_sdk_evaluations_total{flag="layout",result="yes",app="app-0"}"#), 3.0);
    assert_eq!(server.metric(r#"toggled_sdk_evaluations_total{flag="layout",result="variant:grid",app="app-0"}"#), 2.0);
    let text = http().get(server.url("/metrics")).send().expect("metrics").text().expect("text");
    assert!(!text.contains("no_such_flag") && !text.contains("nonsense"), "unknown names are dropped");
    assert!(!text.contains(r#"app="app-59""#) && text.contains(r#"app="other""#), "app names are capped");
    // Bad input gets our error shape and changes nothing.
    for (path, token) in [
        ("/api/frontend", FRONTEND),
        ("/api/frontend/client/metrics", FRONTEND),
        ("/api/client/metrics", CLIENT_TOKEN),
        ("/api/client/register", CLIENT_TOKEN),
    ] {
        let r = http().post(server.url(path)).header("authorization", token).body("{not json").send().expect("request");
        assert_eq!(r.status(), 400, "{path}");
        let body: Value = r.json().expect("a JSON error");
        assert_eq!(body["error"]["code"], json!("invalid_json"), "{path}: {body}");
    }
    let r = http()
        .post(server.url("/api/frontend"))
        .header("authorization", FRONTEND)
        .json(&json!({"context": {"properties": "not an object"}}))
        .send()
        .expect("request");
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().expect("JSON")["error"]["code"], json!("invalid_context"));
    assert_eq!(server.metric(r#"toggled_sdk_evaluations_total{flag="layout",result="yes",app="app-0"}"#), 3.0);
}

/// `toggled export unleash` writes the document `/api/client/features` serves (without a store's
/// overrides) and names what Unleash cannot express.
#[test]
fn export_writes_the_projection_and_names_what_unleash_cannot_express() {
    let dir = Workdir::new(FLAGS);
    let extra = "  office_only:\n    default_value: false\n    constraints: [{attribute: ip, operator: IN_CIDR, values: [10.0.0.0/8, 192.168.1.7]}]\n  on_ios:\n    default_value: false\n    constraints: [{attribute: device.os, operator: IN, values: [ios]}]\n  old_api:\n    default_value: true\n    sunset_plan:\n      restricted_phase: {start_date: 2020-01-01, actions: [rate_limiting], rate_limit: {requests: 2, per: 1h}}\n";
    let text = FLAGS.replacen("segments:", &format!("{extra}segments:"), 1);
    std::fs::write(dir.path().join("flags/feature-flags.yaml"), &text).expect("write");
    let out_file = dir.path().join("unleash.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_toggled"))
        .args(["export", "unleash"])
        .arg(&out_file)
        .arg("--flags")
        .arg(dir.path().join("flags/feature-flags.yaml"))
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("note: on_ios: the nested attribute \"device.os\" has no Unleash context field"),
        "{stderr}"
    );
    assert!(stderr.contains("note: old_api: its sunset rate limit is not applied"), "{stderr}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out_file).expect("written")).expect("JSON");
    assert_eq!(doc["version"], json!(2));
    let names: Vec<&str> =
        doc["features"].as_array().expect("features").iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(names.len(), 11, "{names:?}");
    let feature = |name: &str| {
        doc["features"].as_array().expect("features").iter().find(|f| f["name"] == name).expect("there").clone()
    };
    let ios = feature("on_ios");
    assert_eq!(ios["enabled"], json!(false), "its only strategy is left out (and named above): {ios}");
    let office = feature("office_only");
    assert_eq!(
        office["strategies"][0]["constraints"][0],
        json!({"contextName": "ip", "operator": "IN_CIDR", "values": ["10.0.0.0/8", "192.168.1.7"], "inverted": false, "caseInsensitive": false}),
        "{office}"
    );
}
