//! Unleash's browser SDK (`unleash-proxy-client`, installed from npm by `.ci/deps`) against
//! toggled's frontend API: for many contexts, every flag answers through the SDK what it answers
//! through `/evaluate` (gradual stages, A/B splits, rules, prerequisites, typed payloads), also
//! after a kill switch; frontend tokens get answers and never definitions.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, Workdir, http};

const FLAGS: &str = r#"feature_flags:
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
segments:
  internal:
    - {attribute: email, operator: STR_ENDS_WITH, values: ["@example.com"]}
"#;

const FRONTEND: &str = "*:development.5a3c1f0e9b";

/// The SDK's answers for each context: `[{flag: {enabled, variant, payload}}]`.
fn through_sdk(server: &Server, flags: &[&str], contexts: &[Value], post: bool) -> Vec<Value> {
    use std::io::Write as _;
    let root = env!("CARGO_MANIFEST_DIR");
    let js = format!("{root}/target/js");
    assert!(
        std::path::Path::new(&format!("{js}/node_modules/unleash-proxy-client")).is_dir(),
        ".ci/deps installs unleash-proxy-client in target/js"
    );
    let input = json!({"url": server.base, "token": FRONTEND, "flags": flags, "contexts": contexts, "post": post});
    let mut child = std::process::Command::new("node")
        .arg(format!("{root}/tests/unleash/frontend.mjs"))
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

/// What the SDK must say, from toggled's own `/evaluate` for the same context.
fn expected(server: &Server, flag: &str, context: &Value) -> Value {
    let mut ctx = context.clone();
    if let Some(props) = context["properties"].as_object() {
        for (k, v) in props {
            ctx[k] = v.clone();
        }
    }
    let e = server.evaluate(flag, &ctx);
    let reason = e["reason"].as_str().expect("reason");
    if e["value"].is_boolean() {
        return json!({"enabled": e["value"] == json!(true), "variant": "disabled", "payload": null});
    }
    if ["STATIC", "TARGETING_MATCH", "SPLIT", "OVERRIDE"].contains(&reason) {
        let payload = match &e["value"] {
            Value::String(s) => json!({"type": "string", "value": s}),
            Value::Number(n) => json!({"type": "number", "value": n.to_string()}),
            other => json!({"type": "json", "value": other.to_string()}),
        };
        json!({"enabled": true, "variant": e["variant"], "payload": payload})
    } else {
        json!({"enabled": false, "variant": "disabled", "payload": null})
    }
}

fn contexts() -> Vec<Value> {
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
    let server = Server::start(&dir, &["--frontend-tokens", &format!("web:{FRONTEND}")]);
    let flags = ["checkout", "layout", "beta_banner", "new_checkout_copy", "static_on", "price_tier", "killed_later"];
    let contexts = contexts();
    let check = |post: bool| {
        let answers = through_sdk(&server, &flags, &contexts, post);
        assert_eq!(answers.len(), contexts.len());
        let mut on = 0;
        for (context, answer) in contexts.iter().zip(&answers) {
            for flag in flags {
                let want = expected(&server, flag, context);
                on += usize::from(want["enabled"] == json!(true));
                assert_eq!(answer[flag], want, "{flag} for {context}");
            }
        }
        assert!(on > 40 && on < 40 * flags.len(), "a mix of on and off answers: {on}");
    };
    check(false);
    check(true);
    // A kill switch reaches the SDK on its next fetch.
    let (status, _) =
        server.admin(Method::PUT, "/flags/killed_later", Some(json!({"enabled": false, "reason": "incident"})));
    assert_eq!(status, 200);
    let answers = through_sdk(&server, &["killed_later"], &contexts[..3], false);
    assert!(answers.iter().all(|a| a["killed_later"]["enabled"] == json!(false)), "{answers:?}");
    check(false);
}

#[test]
fn the_frontend_api_has_etags_single_features_and_accepts_sdk_posts() {
    let dir = Workdir::new(FLAGS);
    let server = Server::start(&dir, &["--frontend-tokens", &format!("web:{FRONTEND}")]);
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
}
