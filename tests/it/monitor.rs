//! Guarded rollouts against a real Prometheus: a metric this test controls is scraped every
//! second; the flag file's alerts point at it. Also the Alertmanager receiver, the generated
//! alerting rules (promtool) and the change stream.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    ADMIN, CLIENT, MetricSource, PATIENCE, Prometheus, Server, WebhookSink, Workdir, eventually, http,
};

const GUARDED: &str = r#"
feature_flags:
  checkout:
    default_value: false
    rollout_strategy:
      type: gradual
      stages: [{percentage: 90, duration: 1d}, {percentage: 100}]
    monitoring:
      interval: 1s
      alerts:
        - {condition: "success_rate < 0.95", for: 2, action: rollback}
  search:
    default_value: false
    rollout_strategy:
      type: gradual
      stages: [{percentage: 50, duration: 1h}, {percentage: 100}]
    monitoring:
      interval: 1s
      alerts:
        - {condition: "latency > 2s", action: pause}
        - {condition: "latency > 4s", action: alert_team}
  quiet:
    default_value: false
    rollout_strategy: {type: percentage, percentage: 10}
    monitoring:
      interval: 1s
      alerts:
        - {condition: "never_scraped > 1", action: rollback}
metrics:
  success_rate: {query: 'toggled_test_success_rate'}
  latency: {query: 'toggled_test_latency_seconds'}
  never_scraped: {query: 'toggled_test_absent_metric'}
"#;

fn audit(server: &Server, flag: &str) -> Vec<Value> {
    let (status, body) = server.admin(Method::GET, &format!("/audit?flag={flag}"), None);
    assert_eq!(status, 200, "{body}");
    body["entries"].as_array().cloned().expect("entries")
}

fn metrics(server: &Server) -> String {
    http().get(server.url("/metrics")).send().expect("request").text().expect("text")
}

#[test]
fn a_breaching_metric_rolls_the_flag_back_and_an_empty_one_does_nothing() {
    let source = MetricSource::start();
    source.set("toggled_test_success_rate", 0.99);
    source.set("toggled_test_latency_seconds", 0.1);
    let prometheus = Prometheus::start(&source.addr);
    eventually(PATIENCE, || prometheus.value("toggled_test_success_rate"));
    let dir = Workdir::new(GUARDED);
    let server = Server::start(&dir, &["--prometheus-url", &prometheus.base]);
    let inside = crate::support::keys_where("checkout", 1, |b| b <= 90).remove(0);
    let user = json!({"targetingKey": inside});
    assert_eq!(server.evaluate("checkout", &user)["reason"], json!("TARGETING_MATCH"));

    // Healthy: the monitor samples and says clear; nothing happens.
    eventually(PATIENCE, || {
        let (_, d) = server.admin(Method::GET, "/flags/checkout", None);
        (d["state"]["alerts"][0]["verdict"] == json!("clear")).then_some(())
    });
    assert!(audit(&server, "checkout").is_empty());
    // A patch release (rollback plan: automatic) ships the flag.
    let release = crate::automation::deploy(&server, "shop", "patch", "fix: totals", &["checkout"]);

    // Break it: rolled back within a scrape plus `for` monitor intervals.
    let breach = Instant::now();
    source.set("toggled_test_success_rate", 0.5);
    eventually(PATIENCE, || (server.evaluate("checkout", &user)["reason"] == json!("ROLLED_BACK")).then_some(()));
    let took = breach.elapsed();
    eprintln!("breach -> rollback: {took:?} (scrape 1s, monitor interval 1s, for: 2)");
    let answer = server.evaluate("checkout", &user);
    assert_eq!((&answer["value"], &answer["enabled"]), (&json!(false), &json!(false)));
    let rows = audit(&server, "checkout");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((&rows[0]["actor"], &rows[0]["action"]), (&json!("auto-rollback"), &json!("auto_rollback")));
    let reason = rows[0]["reason"].as_str().expect("reason");
    assert!(reason.contains("success_rate < 0.95") && reason.contains("observed 0.5"), "{reason}");
    assert!(metrics(&server).contains(r#"toggled_rollbacks_total{flag="checkout",trigger="monitor"} 1"#));
    let (_, detail) = server.admin(Method::GET, "/flags/checkout", None);
    assert_eq!(detail["state"]["effective"], json!("rolled_back"));
    // The release that ships it is rolled back with it.
    let shipped = eventually(PATIENCE, || {
        let (_, r) = server.admin(Method::GET, &format!("/releases/{release}"), None);
        (r["status"] == "rolled_back").then_some(r)
    });
    assert_eq!(
        (&shipped["rolled_back_by"]["flag"], &shipped["rolled_back_by"]["trigger"]),
        (&json!("checkout"), &json!("monitor"))
    );

    // Still breaching: no second rollback (idempotent); the empty metric never acted.
    let seen = detail["state"]["alerts"][0]["at"].clone();
    eventually(PATIENCE, || {
        let (_, d) = server.admin(Method::GET, "/flags/quiet", None);
        let (_, c) = server.admin(Method::GET, "/flags/checkout", None);
        (c["state"]["alerts"][0]["at"] != seen && d["state"]["alerts"][0]["verdict"] == json!("inconclusive"))
            .then_some(())
    });
    assert_eq!(audit(&server, "checkout").len(), 1);
    assert!(audit(&server, "quiet").is_empty(), "an empty result is inconclusive: no action");
    assert_eq!(server.evaluate("quiet", &user)["reason"], json!("DEFAULT"));
    assert!(metrics(&server).contains(r#"toggled_monitor_inconclusive_total{flag="quiet"}"#));

    // Only an operator clears a rollback: a recovered metric does not.
    source.set("toggled_test_success_rate", 0.99);
    eventually(PATIENCE, || {
        let (_, d) = server.admin(Method::GET, "/flags/checkout", None);
        (d["state"]["alerts"][0]["verdict"] == json!("clear")).then_some(())
    });
    let (_, d) = server.admin(Method::GET, "/flags/checkout", None);
    let seen = d["state"]["alerts"][0]["at"].clone();
    eventually(PATIENCE, || {
        let (_, d) = server.admin(Method::GET, "/flags/checkout", None);
        (d["state"]["alerts"][0]["at"] != seen).then_some(())
    });
    assert_eq!(server.evaluate("checkout", &user)["reason"], json!("ROLLED_BACK"), "still rolled back after recovery");
    assert_eq!(audit(&server, "checkout").len(), 1, "the monitor changed nothing");
    let (status, cleared) = server.admin(Method::DELETE, "/flags/checkout/override", Some(json!({"reason": "fixed"})));
    assert_eq!((status, &cleared["cleared"]), (200, &json!(true)), "{cleared}");
    assert_eq!(server.evaluate("checkout", &user)["reason"], json!("TARGETING_MATCH"));
    let rows = audit(&server, "checkout");
    assert_eq!((rows.len(), &rows[0]["actor"], &rows[0]["reason"]), (2, &json!("ops"), &json!("fixed")), "{rows:?}");
}

/// A server started without any alert picks up the alerts a reload adds.
#[test]
fn alerts_added_by_a_reload_are_monitored() {
    let source = MetricSource::start();
    source.set("toggled_test_success_rate", 0.99);
    let prometheus = Prometheus::start(&source.addr);
    eventually(PATIENCE, || prometheus.value("toggled_test_success_rate"));
    let dir = Workdir::new("feature_flags:\n  checkout:\n    default_value: false\n");
    let server = Server::start(&dir, &["--prometheus-url", &prometheus.base]);
    // The monitor runs (with nothing to watch) before the file gains its alerts.
    eventually(PATIENCE, || (server.ready()["tasks"]["monitor"]["running"] == json!(true)).then_some(()));
    server.write_flags(GUARDED);
    eventually(PATIENCE, || {
        let (_, d) = server.admin(Method::GET, "/flags/checkout", None);
        (d["state"]["alerts"][0]["verdict"] == json!("clear")).then_some(())
    });
}

#[test]
fn a_pause_alert_freezes_and_resumes_a_gradual_rollout_and_alert_team_posts_a_signed_webhook() {
    let source = MetricSource::start();
    source.set("toggled_test_success_rate", 0.99);
    source.set("toggled_test_latency_seconds", 0.1);
    let prometheus = Prometheus::start(&source.addr);
    eventually(PATIENCE, || prometheus.value("toggled_test_latency_seconds"));
    let sink = WebhookSink::failing_first(2);
    let dir = Workdir::new(GUARDED);
    let server = Server::start(
        &dir,
        &["--prometheus-url", &prometheus.base, "--webhook-url", &sink.url, "--webhook-secret", "hook-secret"],
    );
    let paused = |want: bool| {
        eventually(PATIENCE, || {
            let (_, d) = server.admin(Method::GET, "/flags/search", None);
            (d["state"]["paused"] == json!(want)).then_some(d)
        })
    };
    source.set("toggled_test_latency_seconds", 5.0);
    let d = paused(true);
    assert_eq!(d["state"]["next_stage_at"], Value::Null, "a paused schedule has no next stage time");
    source.set("toggled_test_latency_seconds", 1.0);
    paused(false);
    let actions: Vec<(String, String)> = audit(&server, "search")
        .iter()
        .map(|r| {
            (r["actor"].as_str().unwrap_or_default().to_owned(), r["action"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    assert!(actions.contains(&("auto-pause".into(), "rollout_paused".into())), "{actions:?}");
    assert!(actions.contains(&("auto-pause".into(), "rollout_resumed".into())), "{actions:?}");
    assert!(actions.contains(&("auto-alert".into(), "alert_team".into())), "{actions:?}");

    // The sink refuses the first two deliveries: the third attempt (after backoff) gets through,
    // the same signed body each time.
    let attempts = eventually(PATIENCE, || {
        let got = sink.received.lock().expect("lock").clone();
        (got.len() >= 3).then_some(got)
    });
    let (headers, body) = attempts[0].clone();
    let payload: Value = serde_json::from_str(&body).expect("JSON webhook");
    assert_eq!((&payload["flag"], &payload["action"]), (&json!("search"), &json!("alert_team")));
    assert_eq!(headers.get("x-signature-256"), Some(&toggled::monitor::signature("hook-secret", body.as_bytes())));
    assert!(attempts[..3].iter().all(|(h, b)| *b == body && h == &headers), "retries resend the same delivery");
}

/// Alertmanager's documented webhook payload (version 4).
fn alertmanager(status: &str, flag: &str, action: &str) -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"ToggledCheckoutRollback1\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "toggled",
        "groupLabels": {"alertname": "ToggledCheckoutRollback1"},
        "commonLabels": {"alertname": "ToggledCheckoutRollback1", "flag": flag, "action": action},
        "commonAnnotations": {"summary": "checkout: success_rate < 0.95"},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [{
            "status": status,
            "labels": {"alertname": "ToggledCheckoutRollback1", "flag": flag, "action": action},
            "annotations": {"summary": format!("{flag}: success_rate < 0.95")},
            "startsAt": "2025-01-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example/graph",
            "fingerprint": "c0ffee"
        }]
    })
}

#[test]
fn alertmanager_webhooks_act_idempotently() {
    let dir = Workdir::new(GUARDED);
    let server =
        Server::start(&dir, &["--receiver-tokens", "am:receiver-secret", "--client-tokens", &format!("web:{CLIENT}")]);
    let post = |token: &str, body: Value| {
        let r = http().post(server.url("/alerts")).bearer_auth(token).json(&body).send().expect("request");
        let status = r.status().as_u16();
        (status, r.json::<Value>().unwrap_or(Value::Null))
    };
    let (status, first) = post("receiver-secret", alertmanager("firing", "checkout", "rollback"));
    assert_eq!((status, &first["results"][0]["outcome"]), (200, &json!("rolled_back")), "{first}");
    let (_, again) = post("receiver-secret", alertmanager("firing", "checkout", "rollback"));
    assert_eq!(again["results"][0]["outcome"], json!("already_overridden"));
    assert_eq!(server.evaluate("checkout", &json!({"targetingKey": "u"}))["reason"], json!("ROLLED_BACK"));
    let r = http()
        .post(server.url("/evaluate"))
        .bearer_auth(CLIENT)
        .json(&json!({"flag": "checkout"}))
        .send()
        .expect("request");
    assert_eq!(r.status(), 200);
    assert!(metrics(&server).contains(r#"toggled_rollbacks_total{flag="checkout",trigger="alertmanager"} 1"#));
    let (_, resolved) = post(ADMIN, alertmanager("resolved", "checkout", "rollback"));
    assert!(resolved["results"][0]["outcome"].as_str().is_some_and(|o| o.starts_with("kept")));

    let (_, paused) = post(ADMIN, alertmanager("firing", "search", "pause"));
    assert_eq!(paused["results"][0]["outcome"], json!("paused"));
    let (_, twice) = post(ADMIN, alertmanager("firing", "search", "pause"));
    assert_eq!(twice["results"][0]["outcome"], json!("already_paused"));
    let (_, resumed) = post(ADMIN, alertmanager("resolved", "search", "pause"));
    assert_eq!(resumed["results"][0]["outcome"], json!("resumed"));
    let (_, unknown) = post(ADMIN, alertmanager("firing", "nope", "rollback"));
    assert_eq!(unknown["results"][0]["outcome"], json!("unknown_flag"));

    let (status, bad) = post(ADMIN, json!({"alerts": "x"}));
    assert_eq!((status, &bad["error"]["code"]), (400, &json!("invalid_payload")));
    let mut v3 = alertmanager("firing", "checkout", "rollback");
    v3["version"] = json!("3");
    assert_eq!(post(ADMIN, v3).0, 400);
    assert_eq!(post(CLIENT, alertmanager("firing", "checkout", "rollback")).0, 403);
    assert_eq!(post("wrong-token", alertmanager("firing", "checkout", "rollback")).0, 401);
    let (status, _) = server.admin(Method::GET, "/flags", None);
    assert_eq!(status, 200);
    let r = http().get(server.url("/flags")).bearer_auth("receiver-secret").send().expect("request");
    assert_eq!(r.status(), 403, "a receiver token only posts alerts");
}

#[test]
fn generated_alerting_rules_pass_promtool() {
    let dir = Workdir::new(GUARDED);
    for file in [
        dir.path().join("flags/feature-flags.yaml"),
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/flags/examples/monitoring.yaml")),
    ] {
        let out =
            std::process::Command::new(env!("CARGO_BIN_EXE_toggled")).arg("rules").arg(&file).output().expect("runs");
        assert!(out.status.success());
        let rules = String::from_utf8(out.stdout).expect("utf-8");
        assert!(rules.contains("action: \"rollback\"") || rules.contains("action: \"pause\""), "{rules}");
        let path = dir.path().join("rules.yml");
        std::fs::write(&path, &rules).expect("write");
        let check =
            std::process::Command::new("promtool").args(["check", "rules"]).arg(&path).output().expect("promtool runs");
        assert!(check.status.success(), "{}\n{rules}", String::from_utf8_lossy(&check.stdout));
    }
}

/// Reads SSE events (`(id, event, data)`) until `n` are collected.
pub fn read_events(response: reqwest::blocking::Response, n: usize) -> Vec<(Option<u64>, String, Value)> {
    let mut reader = BufReader::new(response);
    let mut events = Vec::new();
    let (mut id, mut name, mut data) = (None, String::new(), String::new());
    let mut line = String::new();
    while events.len() < n {
        line.clear();
        if reader.read_line(&mut line).expect("stream open") == 0 {
            break;
        }
        let l = line.trim_end();
        if l.is_empty() {
            if !data.is_empty() {
                events.push((id.take(), std::mem::take(&mut name), serde_json::from_str(&data).expect("JSON data")));
                data.clear();
            }
        } else if let Some(v) = l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")) {
            id = v.trim().parse().ok();
        } else if let Some(v) = l.strip_prefix("event: ").or_else(|| l.strip_prefix("event:")) {
            name = v.trim().to_owned();
        } else if let Some(v) = l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")) {
            data.push_str(v);
        }
    }
    events
}

#[test]
fn the_change_stream_resumes_from_last_event_id_and_ends_on_shutdown() {
    let dir = Workdir::new(GUARDED);
    let server = Server::start(&dir, &[]);
    let client = crate::support::http_with_timeout(Duration::from_secs(60));
    let stream = client.get(server.url("/events")).bearer_auth(ADMIN).send().expect("subscribe");
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    server.admin(Method::PUT, "/flags/checkout", Some(json!({"enabled": false, "reason": "drill"})));
    server.admin(Method::POST, "/flags/search/rollout", Some(json!({"action": "pause"})));
    let events = read_events(stream, 2);
    assert_eq!(events.iter().map(|e| e.1.as_str()).collect::<Vec<_>>(), ["override", "pause"]);
    assert_eq!(events[0].2["type"], json!("refetchEvaluation"));
    assert_eq!(events[0].2["detail"]["override"]["reason"], json!("drill"), "admins get the detail");
    let first = events[0].0.expect("id");

    // Resume after the first: the second is replayed, then a new one arrives.
    let resumed =
        client.get(server.url("/events")).header("last-event-id", first.to_string()).send().expect("subscribe");
    server.admin(Method::POST, "/flags/search/rollout", Some(json!({"action": "resume"})));
    let replay = read_events(resumed, 2);
    assert_eq!(replay.iter().map(|e| e.1.as_str()).collect::<Vec<_>>(), ["pause", "resume"]);
    assert!(replay[0].2.get("detail").is_none(), "open subscribers get no detail");
    // From the beginning: everything still buffered is replayed.
    let all = client.get(server.url("/events")).header("last-event-id", "0").send().expect("subscribe");
    let replay = read_events(all, 4);
    assert_eq!(replay.iter().map(|e| e.1.as_str()).collect::<Vec<_>>(), ["reload", "override", "pause", "resume"]);
    // An id this server never gave out (the client saw an earlier run): resync.
    let stale = client.get(server.url("/events")).header("last-event-id", "999999").send().expect("subscribe");
    let resync = read_events(stale, 1);
    assert_eq!((resync[0].1.as_str(), &resync[0].2["kind"]), ("resync", &json!("resync")));

    // The subscriber cap (`--max-subscribers`) is enforced over HTTP.
    drop(server);
    let dir = Workdir::new(GUARDED);
    let mut server = Server::start(&dir, &["--max-subscribers", "2"]);
    let _a = client.get(server.url("/events")).send().expect("subscribe");
    assert_eq!(_a.status(), 200);
    // The last slot is kept for admin tokens: anonymous clients cannot lock the console out.
    let r = client.get(server.url("/events")).send().expect("request");
    assert_eq!(r.status(), 503);
    let body: Value = r.json().expect("JSON");
    assert_eq!(body["error"]["code"], json!("too_many_subscribers"));
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("kept for admins")), "{body}");
    let _admin = client.get(server.url("/events")).bearer_auth(ADMIN).send().expect("subscribe");
    assert_eq!(_admin.status(), 200, "an admin gets the kept slot");
    let r = client.get(server.url("/events")).bearer_auth(ADMIN).send().expect("request");
    assert_eq!(r.status(), 503, "and then every slot is taken");
    // Slots come back when streams end (the kept one too).
    drop(_admin);
    drop(_a);
    eventually(PATIENCE, || (client.get(server.url("/events")).send().ok()?.status() == 200).then_some(()));

    // A connected subscriber does not hold up shutdown.
    let _open = client.get(server.url("/events")).send().expect("subscribe");
    let started = Instant::now();
    assert!(server.terminate().success());
    assert!(started.elapsed() < Duration::from_secs(10));
}
