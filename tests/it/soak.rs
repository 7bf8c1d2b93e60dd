//! Soak and crash: flag-file rewrites (a third of them invalid) under continuous evaluation load,
//! and `kill -9` during a storm of overrides. Bounded for CI; the full runs are the same tests
//! with `TOGGLED_SOAK_REWRITES=1000 TOGGLED_CRASH_CYCLES=100` (figures in docs/benchmarks.md).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN, Server, Workdir, http};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn file(value: bool) -> String {
    format!("feature_flags:\n  switch:\n    default_value: {value}\n")
}

#[test]
fn rewrites_a_third_invalid_under_load_drop_nothing() {
    let rewrites = setting("TOGGLED_SOAK_REWRITES", 120);
    let (a, b) = (file(true), file(false));
    let broken = "feature_flags:\n  switch:\n    default_value: maybe\n";
    let (rev_a, rev_b) = (toggled::flags::revision_of(&a), toggled::flags::revision_of(&b));
    let dir = Workdir::new(&a);
    let server = Arc::new(Server::start(&dir, &["--reload-debounce", "5ms"]));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (server, stop, rev_a, rev_b) = (server.clone(), stop.clone(), rev_a.clone(), rev_b.clone());
            std::thread::spawn(move || {
                let client = http();
                let mut answers = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let r = client
                        .post(server.url("/evaluate"))
                        .json(&json!({"flag": "switch", "context": {"targetingKey": "u"}}))
                        .send()
                        .expect("request");
                    assert!(r.status().is_success(), "status {}", r.status());
                    let body: Value = r.json().expect("JSON");
                    let consistent = match (body["value"].as_bool(), body["revision"].as_str()) {
                        (Some(true), Some(r)) => r == rev_a,
                        (Some(false), Some(r)) => r == rev_b,
                        _ => false,
                    };
                    assert!(consistent, "an answer from neither file: {body}");
                    answers += 1;
                }
                answers
            })
        })
        .collect();
    for i in 0..rewrites {
        let text = match i % 3 {
            0 => b.as_str(),
            1 => broken,
            _ => a.as_str(),
        };
        let tmp = server.flags.with_extension(format!("tmp{i}"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, &server.flags).expect("rename");
        std::thread::sleep(Duration::from_millis(12));
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let answers: usize = readers.into_iter().map(|t| t.join().expect("reader")).sum();
    assert!(answers > rewrites, "{answers} answers");
    assert!(server.metric(r#"toggled_reloads_total{outcome="rejected"}"#) >= 1.0, "the broken files were rejected");
    eprintln!("soak: {rewrites} rewrites ({} invalid), {answers} answers, all 2xx and consistent", rewrites / 3);
}

/// Per flag: the last acknowledged value, and the one in flight when the process died (if any).
type Seen = HashMap<String, (Option<bool>, Option<bool>)>;

/// One override storm: 4 writers over 40 flags until `kill -9`.
fn storm(server: &Server, ms: u64) -> Seen {
    let state: Arc<Mutex<Seen>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (url, state, stop) = (server.base.clone(), state.clone(), stop.clone());
            std::thread::spawn(move || {
                let client = crate::support::http_with_timeout(Duration::from_secs(5));
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let flag = format!("f{:02}", w * 10 + n % 10);
                    let on = n.is_multiple_of(2);
                    state.lock().expect("state").entry(flag.clone()).or_default().1 = Some(on);
                    let r = client
                        .put(format!("{url}/flags/{flag}"))
                        .bearer_auth(ADMIN)
                        .json(&json!({"enabled": on}))
                        .send();
                    let mut s = state.lock().expect("state");
                    let entry = s.entry(flag).or_default();
                    match r {
                        Ok(r) if r.status() == 200 => *entry = (Some(on), None),
                        // Not acknowledged: it may or may not have committed.
                        _ => {}
                    }
                    n += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(ms));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    std::mem::take(&mut *state.lock().expect("state"))
}

#[test]
fn kill_9_during_a_storm_of_overrides_loses_no_acknowledged_write() {
    let cycles = setting("TOGGLED_CRASH_CYCLES", 4);
    let mut flags = String::from("feature_flags:\n");
    for i in 0..40 {
        flags.push_str(&format!("  f{i:02}: {{default_value: false}}\n"));
    }
    let dir = Workdir::new(&flags);
    let mut server = Server::start(&dir, &[]);
    let mut acknowledged_total = 0;
    for cycle in 0..cycles {
        // The storm runs while the process is killed under it.
        let killer = {
            let pid = server.pid();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(150 + (cycle as u64 * 37) % 200));
                let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
            })
        };
        let seen = storm(&server, 450);
        killer.join().expect("killer");
        server.restart();
        for (flag, (acked, in_flight)) in &seen {
            let Some(acked) = acked else { continue };
            acknowledged_total += 1;
            let (status, body) = server.admin(Method::GET, &format!("/flags/{flag}"), None);
            assert_eq!(status, 200);
            let kind = body["state"]["override"]["kind"].as_str().unwrap_or("none").to_owned();
            let now = match kind.as_str() {
                "kill" => false,
                "enable" => true,
                other => panic!("cycle {cycle}: {flag} lost its acknowledged override ({other}): {body}"),
            };
            assert!(now == *acked || Some(now) == *in_flight, "cycle {cycle}: {flag} is {now}, acknowledged {acked}");
        }
        // Nothing half-written: every override in force has its audit row.
        let (_, audit) = server.admin(Method::GET, "/audit?limit=1000", None);
        let rows = audit["entries"].as_array().expect("entries");
        let (_, listing) = server.admin(Method::GET, "/flags", None);
        for f in listing["flags"].as_array().expect("flags") {
            if let Some(o) = f["state"]["override"].as_object() {
                let flag = f["key"].as_str().expect("key");
                let audited = rows.iter().any(|r| r["flag"] == flag && r["after"]["created_at"] == o["created_at"]);
                assert!(audited, "cycle {cycle}: {flag}'s override has no audit row");
            }
        }
    }
    assert!(acknowledged_total > 0);
    eprintln!("crash: {cycles} kill -9 cycles, {acknowledged_total} acknowledged overrides checked, none lost");
}
