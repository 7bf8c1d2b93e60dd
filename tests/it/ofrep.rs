//! OFREP: the shapes, statuses and headers OpenFeature providers rely on, and a real
//! OpenFeature SDK (Python `openfeature-sdk` + `openfeature-provider-ofrep`) evaluating every
//! flag type against the server.

use reqwest::Method;
use reqwest::blocking::Response;
use serde_json::{Value, json};

use crate::support::{ADMIN, CLIENT, Server, Workdir, http};

const FLAGS: &str = include_str!("../../flags/examples/openfeature.yaml");

fn ofrep(server: &Server, key: &str, body: &str) -> Response {
    http()
        .post(server.url(&format!("/ofrep/v1/evaluate/flags/{key}")))
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_owned())
        .send()
        .expect("request")
}

fn json_of(r: Response) -> (u16, Option<String>, Value) {
    let status = r.status().as_u16();
    let ctype = r.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, ctype, r.json().unwrap_or(Value::Null))
}

#[test]
fn single_flag_answers_have_every_field_providers_need() {
    let dir = Workdir::new(FLAGS);
    let server = Server::start(&dir, &[]);
    let ctx = r#"{"context": {"targetingKey": "u1", "country": "US", "plan": "pro"}}"#;
    let (status, ctype, body) = json_of(ofrep(&server, "dark_mode", ctx));
    assert_eq!((status, ctype.as_deref()), (200, Some("application/json")));
    assert_eq!(
        (&body["key"], &body["value"], &body["reason"], &body["variant"]),
        (&json!("dark_mode"), &json!(true), &json!("TARGETING_MATCH"), &json!("on"))
    );
    let metadata = body["metadata"].as_object().expect("metadata object");
    assert!(metadata.values().all(|v| v.is_string() || v.is_number() || v.is_boolean()), "{metadata:?}");
    assert_eq!(
        (&metadata["ticket"], &metadata["risk"], &metadata["experimental"]),
        (&json!("WEB-42"), &json!(2), &json!(true))
    );
    assert_eq!((&metadata["owner"], &metadata["description"]), (&json!("web-team"), &json!("Dark theme")));
    assert!(metadata["revision"].is_string() && !metadata.contains_key("nested"));

    // `fallback: caller`: no value and no variant when off or unmatched; a match has both.
    let (_, _, off) = json_of(ofrep(&server, "beta_footer", ctx));
    assert_eq!(
        off,
        json!({"key": "beta_footer", "reason": "DISABLED", "variant": null, "metadata": off["metadata"]}),
        "{off}"
    );
    let (_, _, unmatched) = json_of(ofrep(&server, "region_promo", ctx));
    assert!(unmatched.get("value").is_none() && unmatched["variant"].is_null(), "{unmatched}");
    assert_eq!(unmatched["reason"], json!("DEFAULT"));
    let de = r#"{"context": {"targetingKey": "u1", "country": "DE"}}"#;
    let (_, _, matched) = json_of(ofrep(&server, "region_promo", de));
    assert_eq!((&matched["value"], &matched["variant"]), (&json!("Spring sale"), &json!("spring")), "{matched}");

    // Typed values keep their JSON form: integers stay integers, floats keep a decimal point.
    let raw = |key: &str, body: &str| ofrep(&server, key, body).text().expect("text");
    assert!(raw("max_items", ctx).contains(r#""value":25"#));
    assert!(raw("discount_rate", ctx).contains(r#""value":1.5"#));
    assert!(raw("discount_rate", r#"{"context": {}}"#).contains(r#""value":1.0"#), "1.0 stays a float");
    let (_, _, theme) = json_of(ofrep(&server, "theme", ctx));
    assert_eq!(theme["value"], json!({"background": "#000000", "foreground": "#ffffff", "sizes": [12, 14]}));

    // Disabled, sunset and overridden flags answer 200 with their value and a mapped reason.
    let (_, _, off) = json_of(ofrep(&server, "checkout_v1", ctx));
    assert_eq!((&off["value"], &off["reason"], &off["variant"]), (&json!(true), &json!("DISABLED"), &json!("on")));
    let (_, _, sunset) = json_of(ofrep(&server, "legacy_export", ctx));
    assert_eq!(
        (&sunset["value"], &sunset["reason"], &sunset["metadata"]["toggledReason"]),
        (&json!(false), &json!("DISABLED"), &json!("SUNSET"))
    );
    let (status, _) = server.admin(Method::PUT, "/flags/max_items", Some(json!({"variant": "small"})));
    assert_eq!(status, 200);
    let (_, _, forced) = json_of(ofrep(&server, "max_items", ctx));
    assert_eq!(
        (&forced["value"], &forced["reason"], &forced["metadata"]["toggledReason"]),
        (&json!(10), &json!("STATIC"), &json!("OVERRIDE"))
    );

    // An empty body, a missing context and a missing targetingKey are not errors.
    for body in ["", "{}", r#"{"context": {}}"#, r#"{"context": null}"#] {
        let (status, _, answer) = json_of(ofrep(&server, "welcome_text", body));
        assert_eq!(
            (status, &answer["value"], &answer["reason"]),
            (200, &json!("Good day"), &json!("DEFAULT")),
            "{body:?}"
        );
    }
    let r = http().post(server.url("/ofrep/v1/evaluate/flags/dark_mode/")).send().expect("request");
    assert_eq!(r.status(), 200, "a trailing slash is tolerated");
}

#[test]
fn errors_are_shaped_the_way_providers_parse_them() {
    let dir = Workdir::new(FLAGS);
    let server = Server::start(&dir, &[]);
    let (status, ctype, body) = json_of(ofrep(&server, "nope", "{}"));
    assert_eq!((status, ctype.as_deref()), (404, Some("application/json")));
    assert_eq!((&body["key"], &body["errorCode"]), (&json!("nope"), &json!("FLAG_NOT_FOUND")));
    assert!(body["errorDetails"].as_str().is_some_and(|d| d.contains("nope")));
    for bad in ["not json", r#"{"context": 5}"#, r#"{"context": [1]}"#, "[]"] {
        let (status, _, body) = json_of(ofrep(&server, "dark_mode", bad));
        assert_eq!(
            (status, &body["key"], &body["errorCode"]),
            (400, &json!("dark_mode"), &json!("INVALID_CONTEXT")),
            "{bad}"
        );
        assert!(body["errorDetails"].as_str().is_some_and(|d| !d.is_empty()));
    }
    let r = http().post(server.url("/ofrep/v1/evaluate/flags")).body(r#"{"context": "x"}"#).send().expect("request");
    let (status, _, body) = json_of(r);
    assert_eq!(
        (status, &body["errorCode"], body.get("key")),
        (400, &json!("INVALID_CONTEXT"), None),
        "bulk errors have no key"
    );
    let big = format!(r#"{{"context": {{"pad": "{}"}}}}"#, "x".repeat(70 * 1024));
    let (status, _, body) = json_of(ofrep(&server, "dark_mode", &big));
    assert_eq!((status, &body["errorCode"]), (400, &json!("INVALID_CONTEXT")), "OFREP allows only 400/404/500");
}

#[test]
fn bulk_answers_with_an_etag_and_honours_if_none_match() {
    let dir = Workdir::new(FLAGS);
    let server = Server::start(&dir, &[]);
    let bulk = |etag: Option<&str>| {
        let mut r = http()
            .post(server.url("/ofrep/v1/evaluate/flags"))
            .json(&json!({"context": {"targetingKey": "u1", "country": "US"}}));
        if let Some(e) = etag {
            r = r.header("if-none-match", e);
        }
        r.send().expect("request")
    };
    let first = bulk(None);
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().expect("ascii").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    let body: Value = first.json().expect("JSON");
    let flags = body["flags"].as_array().expect("flags array");
    assert_eq!(flags.len(), 9);
    // Every answer has its value and variant, but those of `fallback: caller` flags off or unmatched.
    let callers = ["beta_footer", "region_promo"];
    assert!(flags.iter().all(|f| f["key"].is_string()
        && f["reason"].is_string()
        && (f.get("value").is_some() && f["variant"].is_string()
            || callers.contains(&f["key"].as_str().unwrap_or_default()) && f["variant"].is_null())));
    assert!(
        flags.iter().any(|f| f["key"] == json!("checkout_v1") && f["reason"] == json!("DISABLED")),
        "disabled flags are listed"
    );

    let cached = bulk(Some(&etag));
    assert_eq!(cached.status(), 304);
    assert_eq!(cached.headers()["etag"].to_str().expect("ascii"), etag);
    assert!(cached.bytes().expect("body").is_empty());

    // An answer that changes for the same client changes the ETag (same file revision).
    server.admin(Method::PUT, "/flags/dark_mode", Some(json!({"enabled": false})));
    let changed = bulk(Some(&etag));
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().expect("ascii"), etag);
    let slash = http().post(server.url("/ofrep/v1/evaluate/flags/")).send().expect("request");
    assert_eq!(slash.status(), 200, "a trailing slash is tolerated");
}

#[test]
fn client_tokens_may_come_as_bearer_or_x_api_key() {
    let dir = Workdir::new(FLAGS);
    let server =
        Server::start(&dir, &["--client-tokens", &format!("web:{CLIENT}"), "--cors-origin", "https://app.example.com"]);
    let post = |header: Option<(&str, String)>| {
        let mut r = http().post(server.url("/ofrep/v1/evaluate/flags/dark_mode")).body("{}");
        if let Some((name, value)) = header {
            r = r.header(name, value);
        }
        r.send().expect("request").status().as_u16()
    };
    assert_eq!(post(None), 401);
    assert_eq!(post(Some(("x-api-key", "wrong-key-123".into()))), 401);
    assert_eq!(post(Some(("x-api-key", CLIENT.into()))), 200);
    assert_eq!(post(Some(("authorization", format!("Bearer {CLIENT}")))), 200);
    assert_eq!(post(Some(("authorization", format!("Bearer {ADMIN}")))), 200);

    // CORS for browser providers: preflight allowed for the configured origin, ETag exposed.
    let preflight = http()
        .request(Method::OPTIONS, server.url("/ofrep/v1/evaluate/flags"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-api-key,if-none-match,content-type")
        .send()
        .expect("request");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    let allowed = h["access-control-allow-headers"].to_str().expect("ascii").to_lowercase();
    assert!(allowed.contains("x-api-key") && allowed.contains("if-none-match"), "{allowed}");
    let actual = http()
        .post(server.url("/ofrep/v1/evaluate/flags"))
        .header("origin", "https://app.example.com")
        .header("x-api-key", CLIENT)
        .send()
        .expect("request");
    assert_eq!(
        actual.headers()["access-control-expose-headers"].to_str().map(str::to_lowercase).ok(),
        Some("etag".into())
    );
    let other = http()
        .request(Method::OPTIONS, server.url("/ofrep/v1/evaluate/flags"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .expect("request");
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn a_server_without_a_valid_file_answers_general() {
    let dir = Workdir::new("feature_flags: [");
    let server = Server::start(&dir, &[]);
    let (status, _, body) = json_of(ofrep(&server, "dark_mode", "{}"));
    assert_eq!((status, &body["errorCode"], &body["key"]), (500, &json!("GENERAL"), &json!("dark_mode")));
}

/// The Python interpreter with `openfeature-sdk` and `openfeature-provider-ofrep` installed
/// (`.ci/run` creates `target/ofrep-venv`; `TOGGLED_OFREP_PYTHON` overrides).
fn sdk_python() -> String {
    std::env::var("TOGGLED_OFREP_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/ofrep-venv/bin/python").to_owned())
}

#[test]
fn the_official_python_provider_evaluates_every_type() {
    let dir = Workdir::new(FLAGS);
    let server = Server::start(&dir, &["--client-tokens", &format!("sdk:{CLIENT}")]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openfeature/check.py");
    let python = sdk_python();
    let out = std::process::Command::new(&python)
        .args([script, &server.base, CLIENT])
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e} (run .ci/run, or set TOGGLED_OFREP_PYTHON)"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON from check.py");
    let expect = |name: &str, value: Value, reason: &str| {
        assert_eq!(
            (&r[name]["value"], &r[name]["reason"], &r[name]["error_code"]),
            (&value, &json!(reason), &Value::Null),
            "{name}: {}",
            r[name]
        );
    };
    expect("boolean", json!(true), "TARGETING_MATCH");
    expect("string", json!("Hey there"), "TARGETING_MATCH");
    expect("integer", json!(25), "TARGETING_MATCH");
    expect("float", json!(1.5), "TARGETING_MATCH");
    expect("object", json!({"background": "#000000", "foreground": "#ffffff", "sizes": [12, 14]}), "TARGETING_MATCH");
    expect("disabled", json!(true), "DISABLED");
    expect("sunset", json!(false), "DISABLED");
    expect("no_targeting_key", json!("Hey there"), "TARGETING_MATCH");
    // `fallback: caller`: off or unmatched, the caller's default, with toggled's reason.
    expect("caller_disabled", json!(true), "DISABLED");
    expect("caller_default", json!("caller's text"), "DEFAULT");
    expect("caller_matched", json!("Spring sale"), "TARGETING_MATCH");
    assert_eq!(r["boolean"]["variant"], json!("on"));
    assert_eq!(r["boolean"]["metadata"]["owner"], json!("web-team"));
    assert_eq!(r["sunset"]["metadata"]["toggledReason"], json!("SUNSET"));
    assert_eq!((&r["missing"]["value"], &r["missing"]["error_code"]), (&json!(true), &json!("FLAG_NOT_FOUND")));
    assert_eq!((&r["mismatch"]["value"], &r["mismatch"]["error_code"]), (&json!(7), &json!("TYPE_MISMATCH")));
    let text = r.to_string();
    assert!(!text.contains("GENERAL"), "no GENERAL errors: {text}");
}

/// `fallback: caller` through the official Node.js OFREP provider (0.1.3): it requires `value`,
/// so off or unmatched it returns the caller's default with reason `ERROR` (the Python provider
/// gives `DISABLED` / `DEFAULT`, above); a match is served as usual.
#[test]
fn the_javascript_provider_returns_the_callers_default_for_a_caller_fallback() {
    let dir = Workdir::new(FLAGS);
    let server = Server::start(&dir, &[]);
    let out = crate::unleash::run_sdk_with(
        "../openfeature/fallback.mjs",
        "@openfeature/ofrep-provider",
        &json!({"url": server.base}),
        &[],
    );
    assert_eq!((&out[0]["value"], &out[0]["reason"]), (&json!(true), &json!("ERROR")), "{}", out[0]);
    assert_eq!((&out[1]["value"], &out[1]["reason"]), (&json!("caller's text"), &json!("ERROR")), "{}", out[1]);
    assert_eq!((&out[2]["value"], &out[2]["reason"]), (&json!("Spring sale"), &json!("TARGETING_MATCH")), "{}", out[2]);
}

/// docs/openfeature.md's JavaScript example (`examples/openfeature.mjs`) runs as written with the
/// official Node.js SDK and OFREP provider (`.ci/deps` installs them in `target/js`).
#[test]
fn the_javascript_example_runs_as_written() {
    let root = env!("CARGO_MANIFEST_DIR");
    let js = format!("{root}/target/js");
    std::fs::copy(format!("{root}/examples/openfeature.mjs"), format!("{js}/openfeature.mjs"))
        .expect("target/js exists (.ci/deps installs the OpenFeature Node.js SDK there)");
    let dir = Workdir::new(include_str!("../../flags/feature-flags.yaml"));
    let server = Server::start(&dir, &[]);
    let out = std::process::Command::new("node")
        .arg("openfeature.mjs")
        .current_dir(&js)
        .env("TOGGLED_URL", &server.base)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!((&lines[0]["value"], &lines[0]["reason"]), (&json!(true), &json!("TARGETING_MATCH")));
    assert_eq!((&lines[1]["value"], &lines[1]["variant"]), (&json!("legacy_search"), &json!("control")));
}

/// Our reasons that OpenFeature lacks reach providers mapped, with ours in metadata: a rollback
/// is `DISABLED`, a sunset rate limit is a 200 `DEFAULT` with the safe value (never a 429).
#[test]
fn rolled_back_and_rate_limited_answers_map_to_openfeature_reasons() {
    let file = "feature_flags:\n  guarded:\n    default_value: false\n    rollout_strategy: {type: percentage, percentage: 100}\n  throttled:\n    default_value: false\n    rollout_strategy: {type: percentage, percentage: 100}\n    sunset_plan:\n      restricted_phase: {start_date: 2020-01-01, actions: [rate_limiting], rate_limit: {requests: 1, per: 1h}}\n";
    let dir = Workdir::new(file);
    let server = Server::start(&dir, &[]);
    let ctx = r#"{"context": {"targetingKey": "u1"}}"#;
    let (_, _, before) = json_of(ofrep(&server, "guarded", ctx));
    assert_eq!((&before["value"], &before["reason"]), (&json!(true), &json!("TARGETING_MATCH")));
    let alert = json!({
        "version": "4", "status": "firing", "receiver": "toggled", "groupKey": "g", "truncatedAlerts": 0,
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
        "alerts": [{"status": "firing", "labels": {"alertname": "A", "flag": "guarded", "action": "rollback"},
                    "annotations": {}, "startsAt": "2025-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://p", "fingerprint": "f"}]
    });
    let (status, _) = server.admin(Method::POST, "/alerts", Some(alert));
    assert_eq!(status, 200);
    let (status, _, rolled) = json_of(ofrep(&server, "guarded", ctx));
    assert_eq!(status, 200);
    assert_eq!(
        (&rolled["value"], &rolled["reason"], &rolled["variant"]),
        (&json!(false), &json!("DISABLED"), &json!("off"))
    );
    assert_eq!(rolled["metadata"]["toggledReason"], json!("ROLLED_BACK"), "{rolled}");

    let (_, _, first) = json_of(ofrep(&server, "throttled", ctx));
    assert_eq!((&first["value"], &first["reason"]), (&json!(true), &json!("TARGETING_MATCH")), "{first}");
    let (status, _, limited) = json_of(ofrep(&server, "throttled", ctx));
    assert_eq!(status, 200, "never a 429: it would pause the provider for every flag");
    assert_eq!((&limited["value"], &limited["reason"]), (&json!(false), &json!("DEFAULT")), "{limited}");
    assert_eq!(limited["metadata"]["toggledReason"], json!("RATE_LIMITED"), "{limited}");
}
