//! Four-eyes (the contract, section 8): under `--require-approval` (or a flag's `change_control:
//! approval`) an operator's change waits as a change request until another admin approves it;
//! the requester cannot approve their own; the kill switch and pauses go through at once,
//! audited as emergencies; requests can be rejected and expire; every step is audited.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{PATIENCE, Server, Workdir, eventually, http};

const FLAGS: &str = r##"feature_flags:
  banner:
    type: variant
    variants: {red: "#f00", blue: "#00f"}
    default_variant: red
  checkout:
    default_value: false
    rollout_strategy:
      type: gradual
      stages: [{percentage: 10, duration: 1h}, {percentage: 100}]
  guarded:
    default_value: false
    change_control: approval
  free: {default_value: false}
"##;

const ALICE: &str = "secret-alice-1";
const BOB: &str = "secret-bob-22";

fn call(server: &Server, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = http().request(method, server.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().expect("request");
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

fn start(dir: &Workdir, extra: &[&str]) -> Server {
    let tokens = format!("alice:{ALICE},bob:{BOB}");
    let mut args = vec!["--admin-tokens", tokens.as_str()];
    args.extend_from_slice(extra);
    Server::start(dir, &args)
}

fn override_of(server: &Server, flag: &str) -> Value {
    call(server, ALICE, Method::GET, &format!("/flags/{flag}"), None).1["state"]["override"].clone()
}

fn audit_actions(server: &Server, flag: &str) -> Vec<(String, String, String)> {
    let (_, audit) = call(server, ALICE, Method::GET, &format!("/audit?flag={flag}"), None);
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    entries
        .iter()
        .rev()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("action"), s("actor"), s("reason"))
        })
        .collect()
}

#[test]
fn a_change_waits_for_another_admin_and_the_kill_switch_never_waits() {
    let dir = Workdir::new(FLAGS);
    let server = start(&dir, &["--require-approval"]);
    let (status, held) =
        call(&server, ALICE, Method::PUT, "/flags/banner", Some(json!({"variant": "blue", "reason": "campaign"})));
    assert_eq!(status, 202, "{held}");
    let request = &held["change_request"];
    assert_eq!((&request["status"], &request["created_by"]), (&json!("requested"), &json!("alice")));
    assert_eq!(override_of(&server, "banner"), Value::Null, "nothing applied yet");
    let (_, waiting) = call(&server, BOB, Method::GET, "/change-requests", None);
    assert_eq!(waiting["change_requests"].as_array().map(Vec::len), Some(1), "{waiting}");
    let id = request["id"].as_i64().expect("id");

    // The requester cannot approve their own request; another admin can.
    let (status, own) = call(&server, ALICE, Method::POST, &format!("/change-requests/{id}/approve"), Some(json!({})));
    assert_eq!((status, &own["error"]["code"]), (403, &json!("forbidden")), "{own}");
    let (status, approved) =
        call(&server, BOB, Method::POST, &format!("/change-requests/{id}/approve"), Some(json!({"reason": "ok"})));
    assert_eq!((status, &approved["status"]), (200, &json!("done")), "{approved}");
    assert_eq!(override_of(&server, "banner")["value"], json!("blue"));
    let (status, again) = call(&server, BOB, Method::POST, &format!("/change-requests/{id}/approve"), Some(json!({})));
    assert_eq!((status, &again["error"]["code"]), (409, &json!("invalid_transition")));

    // The kill switch and a pause apply at once, audited as emergencies.
    let (status, _) =
        call(&server, ALICE, Method::PUT, "/flags/checkout", Some(json!({"enabled": false, "reason": "incident"})));
    assert_eq!(status, 200);
    assert_eq!(override_of(&server, "checkout")["kind"], json!("kill"));
    let (status, _) = call(&server, ALICE, Method::POST, "/flags/checkout/rollout", Some(json!({"action": "pause"})));
    assert_eq!(status, 200);
    // Clearing the kill waits; a rejection keeps the kill in force.
    let (status, clear) =
        call(&server, ALICE, Method::DELETE, "/flags/checkout/override", Some(json!({"reason": "fixed"})));
    assert_eq!(status, 202, "{clear}");
    let clear_id = clear["change_request"]["id"].as_i64().expect("id");
    let (status, rejected) = call(
        &server,
        BOB,
        Method::POST,
        &format!("/change-requests/{clear_id}/reject"),
        Some(json!({"reason": "not yet"})),
    );
    assert_eq!(
        (status, &rejected["status"], &rejected["result"]),
        (200, &json!("rejected"), &json!("rejected by bob: not yet"))
    );
    assert_eq!(override_of(&server, "checkout")["kind"], json!("kill"));

    // Every step is audited, with the names of both people.
    let banner = audit_actions(&server, "banner");
    assert_eq!(banner[0], ("change_requested".into(), "alice".into(), "campaign".into()), "{banner:?}");
    assert_eq!(banner[1], ("change_approved".into(), "bob".into(), "ok".into()), "{banner:?}");
    assert_eq!(banner[2].0, "override_set", "{banner:?}");
    assert_eq!(banner[2].1, "alice");
    assert!(banner[2].2.contains("approved by bob: ok"), "{banner:?}");
    let checkout = audit_actions(&server, "checkout");
    assert!(
        checkout.iter().any(|(a, who, r)| a == "override_set" && who == "alice" && r.contains("emergency")),
        "{checkout:?}"
    );
    assert!(checkout.iter().any(|(a, _, r)| a == "rollout_paused" && r.contains("emergency")), "{checkout:?}");
    assert!(checkout.iter().any(|(a, who, _)| a == "change_rejected" && who == "bob"), "{checkout:?}");
}

#[test]
fn a_flag_may_ask_for_approval_alone_and_requests_expire() {
    let dir = Workdir::new(FLAGS);
    let server = start(&dir, &["--approval-expiry", "1s"]);
    let (status, _) = call(&server, ALICE, Method::PUT, "/flags/free", Some(json!({"enabled": true})));
    assert_eq!(status, 200, "a flag without change_control changes at once");
    let (status, held) = call(&server, ALICE, Method::PUT, "/flags/guarded", Some(json!({"enabled": true})));
    assert_eq!(status, 202, "{held}");
    let id = held["change_request"]["id"].clone();
    // A scheduled change to a guarded flag is a request too.
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (status, scheduled) =
        call(&server, ALICE, Method::POST, "/flags/guarded/schedule", Some(json!({"at": at, "clear": true})));
    assert_eq!((status, &scheduled["change_request"]["status"]), (202, &json!("requested")), "{scheduled}");
    eventually(PATIENCE, || {
        let (_, list) = call(&server, BOB, Method::GET, "/schedules?flag=guarded", None);
        let s = list["schedules"].as_array().cloned().unwrap_or_default();
        s.iter().all(|r| r["status"] == json!("expired")).then_some(())
    });
    let (status, late) = call(&server, BOB, Method::POST, &format!("/change-requests/{id}/approve"), Some(json!({})));
    assert_eq!((status, &late["error"]["code"]), (409, &json!("invalid_transition")), "{late}");
    assert_eq!(override_of(&server, "guarded"), Value::Null, "an expired request never applies");
}

/// A release approval recorded by the token that planned the release is shown as such.
#[test]
fn a_release_approved_by_its_planner_says_so() {
    let dir = Workdir::new(FLAGS);
    let server = start(&dir, &[]);
    let plan = json!({"service": "checkout", "commits": ["feat: one click"]});
    let (status, created) = call(&server, ALICE, Method::POST, "/releases", Some(plan));
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().expect("id");
    for (token, role) in [(ALICE, "team_lead"), (BOB, "product_manager")] {
        let (status, body) =
            call(&server, token, Method::POST, &format!("/releases/{id}/approvals"), Some(json!({"role": role})));
        assert_eq!(status, 200, "{body}");
    }
    let (_, release) = call(&server, BOB, Method::GET, &format!("/releases/{id}"), None);
    let approvals =
        release["approvals"].as_array().or(release["data"]["approvals"].as_array()).cloned().unwrap_or_default();
    let of = |role: &str| approvals.iter().find(|a| a["role"] == json!(role)).cloned().unwrap_or_default();
    assert_eq!(
        (&of("team_lead")["recorded_by"], &of("team_lead")["by_planner"]),
        (&json!("alice"), &json!(true)),
        "{release}"
    );
    assert_eq!(of("product_manager")["recorded_by"], json!("bob"), "{release}");
    assert!(of("product_manager").get("by_planner").is_none(), "{release}");
}
