//! Several replicas on one PostgreSQL (a throwaway cluster from Debian's `postgresql`): changes
//! reach every replica (by NOTIFY, and by polling when a notification is lost), an outage never
//! fails an evaluation or acknowledges an uncommitted write, and acknowledged overrides survive
//! `kill -9`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN, PATIENCE, Postgres, Server, Workdir, eventually, http};

const SEED: &str = include_str!("../../flags/feature-flags.yaml");

fn replica(url: &str, extra: &[&str]) -> (Workdir, Server) {
    let dir = Workdir::new(SEED);
    let mut args = vec!["--database", url];
    args.extend_from_slice(extra);
    let server = Server::start(&dir, &args);
    (dir, server)
}

fn reason(server: &Server, user: &Value) -> Value {
    server.evaluate("new_payment_flow", user)["reason"].clone()
}

#[test]
fn a_kill_switch_on_one_replica_is_answered_by_the_others_by_notification() {
    let pg = Postgres::start();
    let url = pg.database("replicas");
    // A poll interval of a minute: within the 2 s only a notification can carry the change.
    let slow = ["--poll-interval", "60s"];
    let (_a_dir, a) = replica(&url, &slow);
    let (_b_dir, b) = replica(&url, &slow);
    let (_c_dir, c) = replica(&url, &slow);
    let user = json!({"targetingKey": "user-4", "email": "dev@example.com"});
    let (status, _) =
        a.admin(Method::PUT, "/flags/new_payment_flow", Some(json!({"enabled": false, "reason": "drill"})));
    assert_eq!(status, 200);
    for other in [&b, &c] {
        eventually(Duration::from_secs(2), || (reason(other, &user) == json!("DISABLED")).then_some(()));
    }
    // The audit log is shared: the change is there once, by the token's name, on every replica.
    let (_, audit) = c.admin(Method::GET, "/audit?flag=new_payment_flow", None);
    let rows = audit["entries"].as_array().expect("entries");
    assert_eq!((rows.len(), &rows[0]["actor"], &rows[0]["reason"]), (1, &json!("ops"), &json!("drill")));
    // Every replica recorded the same first-seen time.
    let first_seen =
        |s: &Server| s.admin(Method::GET, "/flags/new_payment_flow", None).1["state"]["first_seen"].clone();
    assert_eq!(first_seen(&a), first_seen(&b));
    assert_eq!(first_seen(&b), first_seen(&c));
    let ready: Value = http().get(b.url("/ready")).send().expect("ready").json().expect("JSON");
    assert_eq!(ready["store"]["up"], json!(true), "{ready}");
}

#[test]
fn an_outage_fails_no_evaluation_and_acknowledges_no_write() {
    let pg = Postgres::start();
    let url = pg.database("outage");
    let (_a_dir, a) = replica(&url, &[]);
    let (_b_dir, b) = replica(&url, &[]);
    let user = json!({"targetingKey": "user-4", "email": "dev@example.com"});
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = [a.url("/evaluate"), b.url("/evaluate")]
        .into_iter()
        .map(|url| {
            let (stop, served, failed, user) = (stop.clone(), served.clone(), failed.clone(), user.clone());
            std::thread::spawn(move || {
                let client = http();
                while !stop.load(Ordering::Relaxed) {
                    let body = json!({"flag": "new_payment_flow", "context": user});
                    let ok = client.post(&url).json(&body).send().is_ok_and(|r| r.status() == 200);
                    if ok { &served } else { &failed }.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    pg.stop();
    // Writes are refused with 503, never acknowledged.
    let (status, body) = a.admin(Method::PUT, "/flags/new_payment_flow", Some(json!({"enabled": false})));
    assert_eq!((status, &body["error"]["code"]), (503, &json!("store_unavailable")), "{body}");
    // Both replicas notice and say so on /ready (still 200: they serve from memory) and /metrics.
    for s in [&a, &b] {
        eventually(PATIENCE, || {
            let r: Value = http().get(s.url("/ready")).send().ok()?.json().ok()?;
            (r["store"]["up"] == json!(false)).then_some(())
        });
        assert_eq!(s.metric("toggled_store_up"), 0.0);
    }
    assert_eq!(reason(&b, &user), json!("TARGETING_MATCH"), "nothing changed");

    pg.restart();
    // After reconnecting a write goes through and reaches the other replica.
    eventually(PATIENCE, || {
        let (status, _) = a.admin(Method::PUT, "/flags/new_payment_flow", Some(json!({"enabled": false})));
        (status == 200).then_some(())
    });
    eventually(PATIENCE, || (reason(&b, &user) == json!("DISABLED")).then_some(()));
    eventually(PATIENCE, || (b.metric("toggled_store_up") == 1.0).then_some(()));
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().expect("load thread");
    }
    assert!(served.load(Ordering::Relaxed) > 100, "the load ran: {}", served.load(Ordering::Relaxed));
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no evaluation failed during the outage");
}

#[test]
fn acknowledged_overrides_survive_kill_9_of_the_replica_that_took_them() {
    let pg = Postgres::start();
    let url = pg.database("durable");
    let mut flags = String::from("feature_flags:\n");
    for i in 0..100 {
        flags.push_str(&format!(
            "  f{i:03}: {{default_value: false, rollout_strategy: {{type: percentage, percentage: 100}}}}\n"
        ));
    }
    let a_dir = Workdir::new(&flags);
    let mut a = Server::start(&a_dir, &["--database", &url]);
    let b_dir = Workdir::new(&flags);
    let b = Server::start(&b_dir, &["--database", &url]);
    // A client retries what was not acknowledged (a 503 from a pool that could not connect in
    // time on a loaded machine); only a 200 is an acknowledgement, and every one must survive.
    let put = |f: &str| a.admin(Method::PUT, &format!("/flags/{f}"), Some(json!({"enabled": false}))).0 == 200;
    let acknowledged: Vec<String> = (0..100).map(|i| format!("f{i:03}")).filter(|f| (0..5).any(|_| put(f))).collect();
    assert_eq!(acknowledged.len(), 100, "every override was acknowledged within five attempts");
    a.kill9();
    let r = http().get(b.url("/audit?limit=1000")).bearer_auth(ADMIN).send().expect("audit");
    let audit: Value = r.json().expect("JSON");
    let sets = audit["entries"].as_array().expect("entries").iter().filter(|e| e["action"] == "override_set").count();
    assert!(sets >= 100, "every acknowledged change is audited (a retried one may be twice): {sets}");
    eventually(PATIENCE, || {
        (0..100)
            .all(|i| b.evaluate(&format!("f{i:03}"), &json!({"targetingKey": "u"}))["reason"] == "DISABLED")
            .then_some(())
    });
}

/// Two replicas notify the same URL: one delivers (a lease in the store), every event arrives
/// once; when that replica dies, the other takes over from the stored cursor.
#[test]
fn replicas_take_turns_delivering_notifications() {
    let pg = Postgres::start();
    let url = pg.database("notify");
    let sink = crate::support::WebhookSink::failing_first(0);
    let notify = ["--notify-url", sink.url.as_str(), "--notify-interval", "100ms"];
    let (_a_dir, mut a) = replica(&url, &notify);
    let (_b_dir, b) = replica(&url, &notify);
    let types = |sink: &crate::support::WebhookSink| -> Vec<(String, String)> {
        let received = sink.received.lock().expect("lock");
        received
            .iter()
            .filter_map(|(_, body)| serde_json::from_str::<Value>(body).ok())
            .map(|e| {
                (e["id"].as_str().unwrap_or_default().to_owned(), e["type"].as_str().unwrap_or_default().to_owned())
            })
            .filter(|(_, t)| t.starts_with("flag.override"))
            .collect()
    };
    for (server, reason) in [(&a, "one"), (&b, "two")] {
        let (status, _) =
            server.admin(Method::PUT, "/flags/new_payment_flow", Some(json!({"enabled": false, "reason": reason})));
        assert_eq!(status, 200);
    }
    // Deadlines far beyond the 3 s lease: on a loaded 2-core machine a replica's passes slow
    // down (CI once took over 10 s here); what is asserted is once-only delivery, not speed.
    eventually(PATIENCE, || (types(&sink).len() >= 2).then_some(()));
    std::thread::sleep(Duration::from_millis(1500));
    let got = types(&sink);
    assert_eq!(got.len(), 2, "each event once, not once per replica: {got:?}");
    assert!(got.iter().all(|(_, t)| t == "flag.override_set"), "{got:?}");
    // Whichever replica delivered, stopping a leaves b to deliver (at once, or within the lease).
    a.kill9();
    // A store stalled by a loaded machine answers 503, or the request deadline 408 (a CI run saw
    // PostgreSQL take 9 s for a one-row SELECT here): the client retries, as a client would. A
    // retry after a write that did commit clears nothing and writes no audit row.
    eventually(PATIENCE, || {
        let (status, _) = b.admin(Method::DELETE, "/flags/new_payment_flow/override", Some(json!({"reason": "three"})));
        assert!(matches!(status, 200 | 408 | 503), "{status}");
        (status == 200).then_some(())
    });
    let got = eventually(PATIENCE, || {
        let got = types(&sink);
        (got.len() >= 3).then_some(got)
    });
    assert_eq!(got[2].1, "flag.override_cleared");
    std::thread::sleep(Duration::from_millis(1500));
    let got = types(&sink);
    let ids: std::collections::BTreeSet<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!((ids.len(), got.len()), (3, 3), "no event twice: {got:?}");
}

/// A flag rolled back on one replica marks its release once: the replica that made the rollback
/// acts, the one that hears of it from the store does not (one audit row, one notification).
#[test]
fn a_rollback_marks_its_release_once_across_replicas() {
    let pg = Postgres::start();
    let url = pg.database("links");
    let (_a_dir, a) = replica(&url, &[]);
    let (_b_dir, b) = replica(&url, &[]);
    // Ten releases ship the flag: marking them takes a while, so a second replica that acted too
    // would mark some of them again.
    let releases: Vec<i64> = (0..10)
        .map(|i| crate::automation::deploy(&a, &format!("search-{i}"), "minor", "feat: smarter", &["enhanced_search"]))
        .collect();
    let (status, body) = a.admin(Method::POST, "/alerts", Some(crate::automation::firing_rollback("enhanced_search")));
    assert_eq!(status, 200, "{body}");
    let recommended = |s: &Server| -> usize {
        releases
            .iter()
            .map(|release| {
                let (_, audit) = s.admin(Method::GET, &format!("/audit?flag=release:{release}"), None);
                audit["entries"]
                    .as_array()
                    .expect("entries")
                    .iter()
                    .filter(|e| e["action"] == json!("release_rollback_recommended"))
                    .count()
            })
            .sum()
    };
    eventually(PATIENCE, || (recommended(&a) == 10).then_some(()));
    // Replica b has heard of the rollback (it serves it) ...
    eventually(PATIENCE, || {
        let (_, f) = b.admin(Method::GET, "/flags/enhanced_search", None);
        (f["state"]["override"]["kind"] == json!("rolled_back")).then_some(())
    });
    // ... and for a second after, no second mark appears.
    let until = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < until {
        assert_eq!(recommended(&b), 10, "each release was marked once");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// toggled's PostgreSQL connections killed (`pg_terminate_backend`): the next write commits on
/// a fresh connection, never on a broken one, and the store shows up.
#[test]
fn a_terminated_connection_is_never_reused() {
    use sqlx::Connection as _;
    let pg = Postgres::start();
    let url = pg.database("terminated");
    let (_dir, a) = replica(&url, &[]);
    assert_eq!(a.admin(Method::PUT, "/flags/new_payment_flow", Some(json!({"enabled": false}))).0, 200);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let killed: i64 = runtime.block_on(async {
        let mut admin = sqlx::PgConnection::connect(&url).await.expect("connect");
        sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut admin)
        .await
        .expect("terminate")
    });
    assert!(killed > 0, "toggled's connections were terminated");
    let (status, body) = a.admin(Method::DELETE, "/flags/new_payment_flow/override", Some(json!({"reason": "after"})));
    assert_eq!(status, 200, "the first write after the termination commits: {body}");
    let (_, audit) = a.admin(Method::GET, "/audit?flag=new_payment_flow", None);
    assert_eq!(audit["entries"][0]["reason"], json!("after"));
    eventually(PATIENCE, || {
        let r: Value = http().get(a.url("/ready")).send().ok()?.json().ok()?;
        (r["store"]["up"] == json!(true)).then_some(())
    });
}
