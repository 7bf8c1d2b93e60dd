//! Release automation over HTTP: the order of a release train, a rolled-back release killing the
//! flags it ships, a rolled-back flag marking its release, and notifications from the outbox.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{PATIENCE, Server, WebhookSink, Workdir, eventually};

const FLAGS: &str = "feature_flags:\n  new_checkout:\n    default_value: false\n    rollout_strategy: {type: percentage, percentage: 100}\n";

fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    server.admin(Method::POST, path, Some(body))
}

/// Dependencies first, independent services together; stored releases by id; a cycle is a 409
/// naming it; a planned version that misses a requirement is a 409 too.
#[test]
fn a_release_train_is_ordered_dependencies_first() {
    let dir = Workdir::new(FLAGS);
    let server = Server::start(&dir, &[]);
    let train = json!({"releases": [
        {"service": "web", "version": "3.0.0", "dependencies": [{"service": "api", "requirement": ">=2.1.0"}, {"service": "auth", "requirement": "^1.4"}]},
        {"service": "api", "version": "2.1.0", "dependencies": [{"service": "db-schema", "requirement": ">=7.0.0"}]},
        {"service": "auth", "version": "1.4.2", "dependencies": [{"service": "db-schema", "requirement": ">=7"}]},
        {"service": "db-schema", "version": "7.0.0"}
    ]});
    let (status, got) = post(&server, "/releases/order", train);
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got,
        json!({"order": ["db-schema", "api", "auth", "web"], "stages": [["db-schema"], ["api", "auth"], ["web"]]})
    );

    // Stored releases by id, mixed with a planned one (web's plan needs api >= 2 deployed).
    crate::releases::ship(&server, "api", "2.0.0", "major", json!(["feat!: v2"]));
    let (status, api) =
        post(&server, "/releases", json!({"service": "api", "version": "2.1.0", "commits": ["feat: more"]}));
    assert_eq!(status, 201, "{api}");
    let web = json!({"service": "web", "version": "3.0.0", "commits": ["feat: x"], "dependencies": [{"service": "api", "requirement": ">=2.0.0"}]});
    let (status, web) = post(&server, "/releases", web);
    assert_eq!(status, 201, "{web}");
    let (status, got) = post(
        &server,
        "/releases/order",
        json!({"releases": [web["id"], api["id"], {"service": "docs", "version": "1.0.0"}]}),
    );
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["stages"], json!([["api", "docs"], ["web"]]));

    let cycle = json!({"releases": [
        {"service": "a", "version": "1.0.0", "dependencies": [{"service": "b", "requirement": "*"}]},
        {"service": "b", "version": "1.0.0", "dependencies": [{"service": "a", "requirement": "*"}]}
    ]});
    let (status, err) = post(&server, "/releases/order", cycle);
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["code"], "dependency_cycle");
    assert_eq!(err["error"]["message"], "dependency cycle: a -> b -> a");
    let short = json!({"releases": [
        {"service": "a", "version": "1.0.0", "dependencies": [{"service": "b", "requirement": ">=2.0.0"}]},
        {"service": "b", "version": "1.9.0"}
    ]});
    let (status, err) = post(&server, "/releases/order", short);
    assert_eq!((status, err["error"]["code"].as_str()), (409, Some("requirement_unsatisfied")), "{err}");
    let (status, err) = post(&server, "/releases/order", json!({"releases": [999]}));
    assert_eq!((status, err["error"]["code"].as_str()), (404, Some("release_not_found")), "{err}");
    // Bad input: each refused with its code, and nothing is stored by an order request.
    let before = server.admin(Method::GET, "/releases", None).1["releases"].as_array().map(Vec::len);
    for (train, code) in [
        (
            json!({"releases": [{"service": "a", "version": "1.0.0"}, {"service": "a", "version": "1.0.1"}]}),
            "invalid_release",
        ),
        (json!({"releases": [{"service": "a", "version": "one"}]}), "invalid_version"),
        (
            json!({"releases": [{"service": "a", "version": "1.0.0", "dependencies": [{"service": "b", "requirement": "1 || 2"}]}]}),
            "invalid_requirement",
        ),
        (json!({"releases": "a"}), "invalid_release"),
    ] {
        let (status, err) = post(&server, "/releases/order", train);
        assert_eq!((status, err["error"]["code"].as_str()), (422, Some(code)), "{err}");
    }
    assert_eq!(server.admin(Method::GET, "/releases", None).1["releases"].as_array().map(Vec::len), before);
}

const TWO_FLAGS: &str = "feature_flags:\n  new_checkout:\n    default_value: false\n    rollout_strategy: {type: percentage, percentage: 100}\n  smart_search:\n    default_value: false\n    rollout_strategy: {type: percentage, percentage: 100}\n";

/// Plans, approves, tests and deploys a release of `kind` shipping `flags`; returns its id.
pub fn deploy(server: &Server, service: &str, kind: &str, commit: &str, flags: &[&str]) -> i64 {
    let plan = json!({"service": service, "type": kind, "commits": [commit], "flags": flags});
    crate::releases::deploy_plan(server, plan)["id"].as_i64().expect("id")
}

fn override_of(server: &Server, flag: &str) -> Value {
    let (status, f) = server.admin(Method::GET, &format!("/flags/{flag}"), None);
    assert_eq!(status, 200, "{f}");
    f["state"]["override"].clone()
}

/// An Alertmanager notification that rolls `flag` back.
pub fn firing_rollback(flag: &str) -> Value {
    json!({
        "version": "4", "status": "firing", "receiver": "toggled", "groupKey": "g", "truncatedAlerts": 0,
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
        "alerts": [{"status": "firing", "labels": {"alertname": "ErrorRate", "flag": flag, "action": "rollback"},
                    "annotations": {}, "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://p", "fingerprint": "f"}]
    })
}

/// A patch release (rollback plan `automatic`) kills its flags the moment it is rolled back; a
/// minor release (`manual_approval`) waits for a recorded rollback approval.
#[test]
fn a_rolled_back_release_kills_the_flags_it_ships() {
    let dir = Workdir::new(TWO_FLAGS);
    let server = Server::start(&dir, &[]);
    let patch = deploy(&server, "shop", "patch", "fix: totals", &["new_checkout"]);
    let (status, r) =
        post(&server, &format!("/releases/{patch}/status"), json!({"status": "rolled_back", "reason": "bad totals"}));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["flags_killed"], json!(["new_checkout"]));
    let o = override_of(&server, "new_checkout");
    assert_eq!((&o["kind"], &o["actor"]), (&json!("kill"), &json!(format!("release-rollback:{patch}"))), "{o}");
    assert_eq!(server.evaluate("new_checkout", &json!({"targetingKey": "u1"}))["value"], json!(false));

    let minor = deploy(&server, "search", "minor", "feat: smarter", &["smart_search"]);
    let (status, r) = post(&server, &format!("/releases/{minor}/status"), json!({"status": "rolled_back"}));
    assert_eq!(status, 200, "{r}");
    assert_eq!((&r["rollback_awaits_approval"], &r["flags_killed"]), (&json!(true), &Value::Null), "{r}");
    assert_eq!(override_of(&server, "smart_search"), Value::Null, "not before the approval");
    let (status, r) =
        post(&server, &format!("/releases/{minor}/approvals"), json!({"role": "rollback", "approver": "pm"}));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["flags_killed"], json!(["smart_search"]));
    assert_eq!(override_of(&server, "smart_search")["actor"], json!(format!("release-rollback:{minor}")));
    // Both are audited under the release's subject and the flag's.
    let (_, audit) = server.admin(Method::GET, &format!("/audit?flag=release:{minor}"), None);
    let actions: Vec<&str> =
        audit["entries"].as_array().expect("entries").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions[..3], ["release_approved", "release_status", "release_status"], "{actions:?}");
}

/// A flag rolled back by Alertmanager marks the deployed release that ships it: `rolled_back`
/// (and its other flags killed) for an automatic type, `rollback_recommended` for a manual one;
/// the rollback rate counts it.
#[test]
fn a_rolled_back_flag_marks_the_release_that_ships_it() {
    let dir = Workdir::new(TWO_FLAGS);
    let server = Server::start(&dir, &[]);
    let patch = deploy(&server, "shop", "patch", "fix: totals", &["new_checkout", "smart_search"]);
    let minor = deploy(&server, "search", "minor", "feat: smarter", &["smart_search"]);
    let (status, body) = post(&server, "/alerts", firing_rollback("new_checkout"));
    assert_eq!(status, 200, "{body}");
    let shop = eventually(PATIENCE, || {
        let (_, r) = server.admin(Method::GET, &format!("/releases/{patch}"), None);
        (r["status"] == "rolled_back").then_some(r)
    });
    assert_eq!(shop["rolled_back_by"]["flag"], "new_checkout");
    assert_eq!(
        shop["flags_killed"],
        json!(["smart_search"]),
        "the release's other flag is killed; the rolled-back one stays rolled back"
    );
    assert_eq!(override_of(&server, "new_checkout")["kind"], "rolled_back");
    let (_, search) = server.admin(Method::GET, &format!("/releases/{minor}"), None);
    assert_eq!(search["status"], "deployed", "smart_search was killed, not rolled back by the monitor");
    let (_, metrics) = server.admin(Method::GET, "/releases/metrics?service=shop", None);
    assert_eq!(metrics["rolled_back"], 1, "{metrics}");

    // A manual release is only flagged.
    let dir = Workdir::new(TWO_FLAGS);
    let server = Server::start(&dir, &[]);
    let minor = deploy(&server, "search", "minor", "feat: smarter", &["smart_search"]);
    post(&server, "/alerts", firing_rollback("smart_search"));
    let r = eventually(PATIENCE, || {
        let (_, r) = server.admin(Method::GET, &format!("/releases/{minor}"), None);
        r["rollback_recommended"].is_object().then_some(r)
    });
    assert_eq!((&r["status"], &r["rollback_recommended"]["flag"]), (&json!("deployed"), &json!("smart_search")));
}

/// What the sink received: (signature header, parsed body) per request, failed ones included.
fn deliveries(sink: &WebhookSink) -> Vec<(String, Value)> {
    sink.received
        .lock()
        .expect("lock")
        .iter()
        .map(|(headers, body)| {
            (
                headers.get("x-signature-256").cloned().unwrap_or_default(),
                serde_json::from_str(body).expect("JSON body"),
            )
        })
        .collect()
}

fn signed(secret: &str, body: &Value) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(&serde_json::to_vec(body).expect("bytes"));
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The whole path, notified: a release planned, approved, tested, deployed; its flag rolled back
/// by Alertmanager; the release rolled back with it. The sink refuses the first two deliveries:
/// they are retried with the same id, every body is signed, nothing is lost or reordered.
#[test]
fn every_release_and_flag_change_is_notified_signed_and_retried() {
    let sink = WebhookSink::failing_first(2);
    let dir = Workdir::new(TWO_FLAGS);
    let server = Server::start(
        &dir,
        &["--notify-url", &sink.url, "--notify-secret", "hook-secret-1", "--notify-interval", "100ms"],
    );
    let patch = deploy(&server, "shop", "patch", "fix: totals", &["new_checkout"]);
    post(&server, "/alerts", firing_rollback("new_checkout"));
    let wanted = [
        "release.planned",
        "release.approved",
        "release.test_reported",
        "release.test_reported",
        "release.test_reported",
        "release.status_changed",
        "flag.rolled_back",
        "release.status_changed",
    ];
    let got = eventually(PATIENCE, || {
        let got = deliveries(&sink);
        (got.len() >= wanted.len() + 2).then_some(got)
    });
    for (signature, body) in &got {
        assert_eq!(signature, &signed("hook-secret-1", body), "{body}");
    }
    // The two refused attempts carried the first event, with the id it was delivered with.
    assert_eq!(got[0].1, got[2].1);
    assert_eq!(got[1].1, got[2].1);
    let delivered: Vec<&Value> = got[2..].iter().map(|(_, b)| b).collect();
    let types: Vec<&str> = delivered.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, wanted, "in order: {delivered:#?}");
    let ids: std::collections::BTreeSet<&str> = delivered.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), wanted.len(), "one id per event");
    let last = delivered[wanted.len() - 1];
    assert_eq!(last["subject"], format!("release:{patch}"));
    assert_eq!(last["actor"], "flag-rollback:new_checkout");
    assert_eq!(last["detail"]["after"]["status"], "rolled_back");
    assert_eq!(server.metric("toggled_notifications_total{outcome=\"failed\"}"), 2.0);
    assert_eq!(server.metric("toggled_notifications_total{outcome=\"delivered\"}"), wanted.len() as f64);
}

/// An event refused before a crash is delivered after the restart, with the same id; a release
/// scheduled two days out is reminded (the three-day reminder) once.
#[test]
fn undelivered_events_survive_a_crash_and_scheduled_releases_are_reminded() {
    let sink = WebhookSink::failing_first(1);
    let dir = Workdir::new(TWO_FLAGS);
    let mut server =
        Server::start(&dir, &["--notify-url", &sink.url, "--notify-format", "json", "--notify-interval", "100ms"]);
    let (status, _) =
        server.admin(Method::PUT, "/flags/new_checkout", Some(json!({"enabled": false, "reason": "incident 9"})));
    assert_eq!(status, 200);
    eventually(PATIENCE, || (!deliveries(&sink).is_empty()).then_some(()));
    server.kill9();
    server.restart();
    let got = eventually(PATIENCE, || {
        let got = deliveries(&sink);
        (got.len() >= 2).then_some(got)
    });
    assert_eq!(got[0].1, got[1].1, "the same event, the same id, after the restart");
    assert_eq!(got[1].1["type"], "flag.override_set");
    assert_eq!(got[1].1["detail"]["reason"], "incident 9");

    let at = (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    let plan = json!({"service": "shop", "commits": ["feat: later"], "scheduled_at": at,
                      "timeline": {"code_freeze": at, "go_live": at}});
    let (status, r) = post(&server, "/releases", plan);
    assert_eq!(status, 201, "{r}");
    let got = eventually(PATIENCE, || {
        let got = deliveries(&sink);
        got.iter().any(|(_, e)| e["type"] == "release.reminder").then_some(got)
    });
    let reminders: Vec<&Value> = got.iter().map(|(_, e)| e).filter(|e| e["type"] == "release.reminder").collect();
    assert_eq!(reminders.len(), 1, "{reminders:#?}");
    assert!(reminders[0]["detail"]["reason"].as_str().is_some_and(|r| r.contains("3-day reminder")), "{reminders:#?}");
    let (_, shown) = server.admin(Method::GET, &format!("/releases/{}", r["id"]), None);
    assert_eq!(shown["reminders_sent"], json!([3, 7]));
    let plan = crate::support::http()
        .get(server.url(&format!("/releases/{}/plan", r["id"])))
        .bearer_auth(crate::support::ADMIN)
        .send()
        .expect("plan")
        .text()
        .expect("markdown");
    assert!(plan.contains("## 📅 Timeline\n- **Code Freeze**: "), "{plan}");
    assert!(plan.contains("## 🔔 Communication Plan\n- [ ] Engineering team notification (1 week prior: "), "{plan}");
}

/// The quality report names change failure rate and adds time to restore, feature flag
/// coverage (a `Flag:` footer or a listed flag) and release coordination (a refused plan, a
/// failure for a dependency), each with a gate and a gauge.
#[test]
fn the_quality_report_has_the_four_keys_and_the_success_metrics() {
    let dir = Workdir::new(TWO_FLAGS);
    let server = Server::start(&dir, &["--report-interval", "100ms"]);
    // Two feat commits, one behind a flag by its footer.
    let plan = json!({"service": "shop", "type": "minor", "commits": ["feat: a\n\nFlag: new_checkout", "feat: b"]});
    let (status, r) = post(&server, "/releases", plan);
    assert_eq!(status, 201, "{r}");
    let id = r["id"].as_i64().expect("id");
    post(&server, &format!("/releases/{id}/approvals"), json!({"role": "product_manager"}));
    for t in r["requires"]["tests"].as_array().expect("tests") {
        post(&server, &format!("/releases/{id}/approvals"), json!({"test": t, "passed": true}));
    }
    let (status, _) = post(&server, &format!("/releases/{id}/status"), json!({"status": "deployed"}));
    assert_eq!(status, 200);
    // A failure for a dependency, then the service deploys again.
    let (_, f) = post(&server, "/releases", json!({"service": "shop", "commits": ["fix: c"]}));
    let failed = f["id"].as_i64().expect("id");
    let reason = "the payments dependency was not ready";
    let (status, _) =
        post(&server, &format!("/releases/{failed}/status"), json!({"status": "failed", "reason": reason}));
    assert_eq!(status, 200);
    deploy(&server, "shop", "patch", "fix: d", &[]);
    // A plan refused for a conflict (its dependency has no deployed release).
    let refused =
        json!({"service": "web", "commits": ["feat: e"], "dependencies": [{"service": "api", "requirement": ">=1"}]});
    assert_eq!(post(&server, "/releases", refused).0, 409);

    let (status, q) = server.admin(Method::GET, "/releases/metrics", None);
    assert_eq!(status, 200, "{q}");
    assert_eq!(q["change_failure_rate"].as_f64().map(f64::round), Some(33.0), "{q}");
    assert!(q["median_time_to_restore_hours"].as_f64().is_some_and(|h| (0.0..0.1).contains(&h)), "{q}");
    assert_eq!((&q["features"], &q["feature_flag_coverage"]), (&json!(2), &json!(50.0)), "{q}");
    assert_eq!((&q["planning_conflicts"], &q["dependency_failures"]), (&json!(1), &json!(1)), "{q}");
    let gates: Vec<&str> = q["gates"].as_array().expect("gates").iter().filter_map(|g| g["name"].as_str()).collect();
    assert!(gates.ends_with(&[
        "change_failure_rate",
        "time_to_restore",
        "feature_flag_coverage",
        "release_coordination"
    ]));
    // The gauges follow within a refresh (every 100 ms here).
    eventually(PATIENCE, || {
        (server.metric("toggled_release_quality{metric=\"release_coordination\"}") == 2.0).then_some(())
    });
    assert_eq!(server.metric("toggled_release_quality{metric=\"feature_flag_coverage\"}"), 50.0);
    assert_eq!(server.metric("toggled_quality_gate_passing{gate=\"release_coordination\"}"), 0.0);
}
