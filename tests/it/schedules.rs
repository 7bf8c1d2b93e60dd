//! Scheduled changes (the contract, section 8): a change runs when due through the one change path,
//! audited as the schedule; it runs late but once after the server was down, once across
//! replicas, can be cancelled, is skipped with a reason when its flag left the file, and every
//! bad request gets its code.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{PATIENCE, Postgres, Server, Workdir, eventually};

const FLAGS: &str = r##"feature_flags:
  checkout:
    default_value: false
    rollout_strategy:
      type: gradual
      stages: [{percentage: 10, duration: 1h}, {percentage: 100}]
  banner:
    type: variant
    variants: {red: "#f00", blue: "#00f"}
    default_variant: red
  later_removed: {default_value: false}
"##;

/// An RFC 3339 time `ms` milliseconds from now.
fn in_ms(ms: i64) -> String {
    (Utc::now() + chrono::Duration::milliseconds(ms)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn schedule(server: &Server, flag: &str, body: Value) -> (u16, Value) {
    server.admin(Method::POST, &format!("/flags/{flag}/schedule"), Some(body))
}

fn status_of(server: &Server, id: &Value) -> Value {
    let (_, list) = server.admin(Method::GET, "/schedules", None);
    list["schedules"].as_array().expect("list").iter().find(|s| &s["id"] == id).cloned().unwrap_or(Value::Null)
}

/// The audit rows a schedule wrote for `flag`.
fn scheduled_rows(server: &Server, flag: &str) -> Vec<Value> {
    let (_, audit) = server.admin(Method::GET, &format!("/audit?flag={flag}&actor=schedule:"), None);
    audit["entries"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_scheduled_change_runs_when_due_audited_as_the_schedule() {
    let dir = Workdir::new(FLAGS);
    let server = Server::start(&dir, &[]);
    let (status, created) = schedule(
        &server,
        "checkout",
        json!({"at": in_ms(1_200), "reason": "night freeze", "override": {"enabled": false}}),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!((&created["status"], &created["action"]), (&json!("pending"), &json!({"kind": "kill"})));
    assert_eq!(created["created_by"], json!("ops"));
    let (status, pause) = schedule(&server, "checkout", json!({"at": in_ms(1_200), "rollout": "pause"}));
    assert_eq!(status, 201, "{pause}");
    let (status, pin) = schedule(&server, "banner", json!({"at": in_ms(1_200), "override": {"variant": "blue"}}));
    assert_eq!(status, 201, "{pin}");
    eventually(PATIENCE, || (status_of(&server, &created["id"])["status"] == json!("done")).then_some(()));
    eventually(PATIENCE, || (status_of(&server, &pin["id"])["status"] == json!("done")).then_some(()));
    let (_, flag) = server.admin(Method::GET, "/flags/checkout", None);
    assert_eq!(flag["state"]["override"]["kind"], json!("kill"), "{flag}");
    let (_, banner) = server.admin(Method::GET, "/flags/banner", None);
    assert_eq!(banner["state"]["override"]["value"], json!("blue"), "{banner}");
    let rows = scheduled_rows(&server, "checkout");
    let id = created["id"].as_i64().expect("id");
    let kill: Vec<&Value> =
        rows.iter().filter(|r| r["reason"].as_str().is_some_and(|t| t.contains(&format!("schedule #{id} ")))).collect();
    assert_eq!(kill.len(), 1, "one audit row for the schedule: {rows:?}");
    assert_eq!(kill[0]["actor"], json!("schedule:ops"));
    assert!(kill[0]["reason"].as_str().is_some_and(|r| r.starts_with("night freeze (schedule #")), "{}", kill[0]);
    // Cancelling what already ran is refused; a pending one is cancelled and never runs.
    let (status, body) = server.admin(Method::DELETE, &format!("/schedules/{id}"), None);
    assert_eq!((status, &body["error"]["code"]), (409, &json!("invalid_transition")), "{body}");
    let (_, far) = schedule(&server, "banner", json!({"at": in_ms(3_600_000), "clear": true, "reason": "end of sale"}));
    let (status, cancelled) = server.admin(Method::DELETE, &format!("/schedules/{}", far["id"]), None);
    assert_eq!(
        (status, &cancelled["status"], &cancelled["result"]),
        (200, &json!("cancelled"), &json!("cancelled by ops"))
    );
    let (status, body) = server.admin(Method::DELETE, "/schedules/999999", None);
    assert_eq!((status, &body["error"]["code"]), (404, &json!("schedule_not_found")));
}

#[test]
fn bad_schedules_are_refused_with_their_code() {
    let dir = Workdir::new(FLAGS);
    let server = Server::start(&dir, &[]);
    let at = in_ms(60_000);
    for (flag, body, code, status) in [
        ("checkout", json!({"override": {"enabled": false}}), "invalid_schedule", 422),
        ("checkout", json!({"at": "tomorrow", "clear": true}), "invalid_schedule", 422),
        ("checkout", json!({"at": at, "clear": true, "rollout": "pause"}), "invalid_schedule", 422),
        ("checkout", json!({"at": at}), "invalid_schedule", 422),
        ("checkout", json!({"at": at, "rollout": "stop"}), "invalid_schedule", 422),
        ("checkout", json!({"at": at, "clear": true, "extra": 1}), "invalid_schedule", 422),
        ("banner", json!({"at": at, "rollout": "pause"}), "not_gradual", 409),
        ("banner", json!({"at": at, "override": {"variant": "green"}}), "unknown_variant", 422),
        ("nope", json!({"at": at, "clear": true}), "flag_not_found", 404),
    ] {
        let (got, answer) = schedule(&server, flag, body.clone());
        assert_eq!((got, &answer["error"]["code"]), (status, &json!(code)), "{flag} {body}: {answer}");
    }
    let (_, list) = server.admin(Method::GET, "/schedules", None);
    assert_eq!(list["schedules"], json!([]), "nothing stored");
}

#[test]
fn a_schedule_due_while_the_server_was_down_runs_late_but_once() {
    let dir = Workdir::new(FLAGS);
    let mut server = Server::start(&dir, &[]);
    // Due 3 s from now: the server is gone long before, even on a slow machine.
    let (status, created) =
        schedule(&server, "banner", json!({"at": in_ms(3_000), "override": {"value": "#00f"}, "reason": "promo"}));
    server.kill9();
    assert_eq!((status, &created["status"]), (201, &json!("pending")), "{created}");
    // Wall-clock time must pass the schedule's time while no server runs.
    std::thread::sleep(Duration::from_millis(3_600));
    server.restart();
    eventually(PATIENCE, || (status_of(&server, &created["id"])["status"] == json!("done")).then_some(()));
    let rows = scheduled_rows(&server, "banner");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let reason = rows[0]["reason"].as_str().expect("reason");
    let late: f64 = reason
        .rsplit("run ")
        .next()
        .and_then(|t| t.strip_suffix("s after)"))
        .and_then(|t| t.parse().ok())
        .expect(reason);
    assert!(late >= 0.5, "the delay is in the audit row: {reason}");
    // A restart later does not run it again.
    server.restart();
    let (_, audit) = server.admin(Method::GET, "/audit?flag=banner", None);
    assert_eq!(scheduled_rows(&server, "banner").len(), 1, "{audit}");
}

#[test]
fn a_schedule_whose_flag_left_the_file_is_skipped_with_the_reason() {
    let dir = Workdir::new(FLAGS);
    let server = Server::start(&dir, &[]);
    // The flag must leave the served file before its schedule is due. A loaded machine may take
    // longer than the lead to reload; then the schedule ran as it should, and the test tries again
    // with a longer lead rather than assert on the machine's speed.
    let without = FLAGS.replace("  later_removed: {default_value: false}\n", "");
    let (created, ran_before) = [4_000, 20_000, 60_000]
        .into_iter()
        .find_map(|lead| {
            server.write_flags(FLAGS);
            eventually(PATIENCE, || (server.admin(Method::GET, "/flags/later_removed", None).0 == 200).then_some(()));
            let (_, created) =
                schedule(&server, "later_removed", json!({"at": in_ms(lead), "override": {"enabled": true}}));
            server.write_flags(&without);
            eventually(PATIENCE, || (server.admin(Method::GET, "/flags/later_removed", None).0 == 404).then_some(()));
            let ran_before = scheduled_rows(&server, "later_removed").len();
            (status_of(&server, &created["id"])["status"] == json!("pending")).then_some((created, ran_before))
        })
        .expect("the file change was served before the schedule was due within a minute's lead");
    eventually(PATIENCE, || {
        let s = status_of(&server, &created["id"]);
        (s["status"] == json!("skipped")).then_some(s)
    });
    let s = status_of(&server, &created["id"]);
    assert_eq!(s["result"], json!("the flag is no longer in the flag file"), "{s}");
    assert_eq!(scheduled_rows(&server, "later_removed").len(), ran_before, "a skipped schedule writes no audit row");
}

#[test]
fn two_replicas_run_a_schedule_once() {
    let pg = Postgres::start();
    let url = pg.database("schedules");
    let (a_dir, b_dir) = (Workdir::new(FLAGS), Workdir::new(FLAGS));
    let a = Server::start(&a_dir, &["--database", &url, "--poll-interval", "50ms"]);
    let b = Server::start(&b_dir, &["--database", &url, "--poll-interval", "50ms"]);
    let mut ids = Vec::new();
    for i in 0..5 {
        let (status, created) = schedule(
            &a,
            "banner",
            json!({"at": in_ms(1_000 + i * 100), "override": {"variant": if i % 2 == 0 { "blue" } else { "red" }}}),
        );
        assert_eq!(status, 201, "{created}");
        ids.push(created["id"].clone());
    }
    for id in &ids {
        eventually(PATIENCE, || (status_of(&b, id)["status"] == json!("done")).then_some(()));
    }
    let rows = scheduled_rows(&b, "banner");
    assert_eq!(rows.len(), 5, "each schedule ran once, on one replica or the other: {rows:?}");
}
