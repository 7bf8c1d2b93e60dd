//! Faults an operator meets in production: a full disk and the space coming back, a database
//! file deleted under the server. Each answer is what `/ready`, `/metrics` and a write say.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{PATIENCE, Server, Workdir, eventually, http, rss_kib};

const SEED: &str = include_str!("../../flags/feature-flags.yaml");

/// A small tmpfs the test can fill (the suite runs as root, as CI does). Unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs needs root (CI runs the suite as root)");
        Self(at.to_path_buf())
    }

    /// Writes a file until the filesystem is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let one = [0u8; 1];
        while file.write_all(&one).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn kill(server: &Server, reason: &str) -> u16 {
    server.admin(Method::PUT, "/flags/new_payment_flow", Some(json!({"enabled": false, "reason": reason}))).0
}

fn store(server: &Server) -> Value {
    let r: Value = http().get(server.url("/ready")).send().expect("ready").json().expect("JSON");
    r["store"].clone()
}

#[test]
fn after_a_full_disk_the_first_write_once_space_returns_succeeds() {
    let dir = Workdir::new(SEED);
    let disk = Tmpfs::mount(&dir.path().join("disk"), "3m");
    let database = format!("sqlite://{}", disk.0.join("toggled.db").display());
    let server = Server::start(&dir, &["--database", &database]);
    assert_eq!(kill(&server, "before"), 200);
    assert_eq!(server.admin(Method::DELETE, "/flags/new_payment_flow/override", None).0, 200);

    let filler = disk.fill();
    // More failed writes than the pool has connections: each connection fails once.
    for i in 0..6 {
        let (status, body) =
            server.admin(Method::PUT, "/flags/new_payment_flow", Some(json!({"enabled": false, "reason": "full"})));
        assert_eq!(status, 503, "write {i} on a full disk: {body}");
        assert_eq!(body["error"]["code"], json!("store_unavailable"));
        assert!(!body.to_string().contains("database or disk is full"), "no driver text to clients: {body}");
    }
    let down = store(&server);
    assert_eq!(down["up"], json!(false), "/ready says writes fail: {down}");
    assert!(down["error"].as_str().is_some_and(|e| e.contains("writes fail")), "{down}");
    assert_eq!(server.metric("toggled_store_up"), 0.0);
    // The flag still answers from memory.
    assert!(server.evaluate("new_payment_flow", &json!({"targetingKey": "u1"}))["reason"].is_string());

    std::fs::remove_file(filler).expect("space returns");
    // The very first write after the space returns commits, and so does every later one
    // (no pooled connection is left inside a failed transaction).
    assert_eq!(kill(&server, "space is back"), 200);
    for _ in 0..6 {
        assert_eq!(server.admin(Method::DELETE, "/flags/new_payment_flow/override", None).0, 200);
        assert_eq!(kill(&server, "again"), 200);
    }
    eventually(PATIENCE, || (store(&server)["up"] == json!(true)).then_some(()));
    assert_eq!(server.metric("toggled_store_up"), 1.0);
    let evaluation = server.evaluate("new_payment_flow", &json!({"targetingKey": "u1"}));
    assert_eq!(
        evaluation["reason"],
        json!("DISABLED"),
        "the kill switch written after the disk was full: {evaluation}"
    );
}

#[test]
fn a_database_file_deleted_under_the_server_is_reported_and_never_written_unseen() {
    let dir = Workdir::new(SEED);
    let mut server = Server::start(&dir, &[]);
    let first = store(&server);
    assert!(first["id"].is_string() && first["created_at"].is_string(), "{first}");
    assert_eq!(kill(&server, "before"), 200);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("toggled.db{suffix}")));
    }
    let (status, body) =
        server.admin(Method::PUT, "/flags/new_payment_flow", Some(json!({"enabled": true, "reason": "after"})));
    assert_eq!(status, 503, "{body}");
    let down = eventually(PATIENCE, || {
        let s = store(&server);
        (s["up"] == json!(false)).then_some(s)
    });
    assert!(down["error"].as_str().is_some_and(|e| e.contains("deleted or replaced")), "{down}");
    assert_eq!(server.metric("toggled_store_up"), 0.0);
    // Alertmanager retries a delivery answered 5xx, never one answered 200: a rollback that
    // could not be stored is a 503.
    let alert = json!({"version": "4", "alerts": [
        {"status": "firing", "labels": {"flag": "enhanced_search", "action": "rollback"}}]});
    let (status, body) = server.admin(Method::POST, "/alerts", Some(alert));
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["details"]["results"][0]["outcome"], json!("store_failed"), "{body}");

    // A restart creates a new store: said at WARN with its path, and shown on /ready (a new id,
    // which notification ids carry, so receivers that de-duplicate see new events as new).
    server.restart();
    let warned = server.log_lines("creating a new, empty one");
    assert!(warned.iter().any(|l| l.contains("toggled.db")), "{warned:?}");
    let second = store(&server);
    assert_ne!(second["id"], first["id"], "{first} {second}");
}

/// A stream is answered once and then lives as long as the client holds it: the header timeout
/// (1 s here) is for connections waiting for a request, not for an answer still being sent.
#[test]
fn an_event_stream_outlives_the_header_timeout_and_idle_connections_still_close() {
    use std::io::{Read as _, Write as _};
    let dir = Workdir::new(SEED);
    let server = Server::start(&dir, &["--header-read-timeout", "1s"]);
    let client = crate::support::http_with_timeout(Duration::from_secs(60));
    let stream = client.get(server.url("/events")).bearer_auth(crate::support::ADMIN).send().expect("subscribe");
    assert_eq!(stream.status(), 200);
    // Held idle for five header timeouts (a duration under test, not a synchronisation).
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(kill(&server, "late change"), 200);
    let events = crate::monitor::read_events(stream, 1);
    assert_eq!(events.len(), 1, "the stream was cut before the change");
    assert_eq!(events[0].1, "override");

    // A keep-alive connection that was answered and then sends nothing is still closed.
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut idle = std::net::TcpStream::connect(&addr).expect("connect");
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    idle.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    let ended = loop {
        match idle.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e.kind()),
        }
    };
    assert!(
        !matches!(ended, Err(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the server closed the idle connection: {ended:?}"
    );
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "answered, then closed when idle");
}

/// A flag in a sunset `rate_limiting` phase counts clients by their stickiness value. Whatever
/// values clients send (1,000 of 60 KB, then 10,000 short ones), the server's memory stays
/// bounded: each value was once kept as a string (1,000 x 60 KB alone is 60 MB, three times the
/// bound asserted). The table's own bound (131,072 values over its shards, whatever arrives) is
/// tested in-process with 300,000 values (`serving::tests`).
#[test]
fn a_rate_limited_sunset_flag_holds_bounded_memory_whatever_keys_arrive() {
    let file = "feature_flags:\n  old_api:\n    default_value: true\n    sunset_plan:\n      restricted_phase: {start_date: 2020-01-01, actions: [rate_limiting], rate_limit: {requests: 2, per: 1h}}\n";
    let dir = Workdir::new(file);
    let server = Server::start(&dir, &[]);
    let url = server.url("/evaluate");
    let client = http();
    let send = |key: &str| -> Value {
        client
            .post(&url)
            .json(&json!({"flag": "old_api", "context": {"targetingKey": key}}))
            .send()
            .expect("request")
            .json()
            .expect("JSON")
    };
    for _ in 0..2 {
        assert_eq!(send("warm")["reason"], json!("STATIC"));
    }
    assert_eq!(send("warm")["reason"], json!("RATE_LIMITED"));
    let before = rss_kib(server.pid());
    let long = "x".repeat(60_000);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (long, send) = (&long, &send);
            scope.spawn(move || {
                for i in (t..1_000).step_by(4) {
                    send(&format!("{long}{i}"));
                }
                for i in (t..10_000).step_by(4) {
                    send(&format!("user-{i}"));
                }
            });
        }
    });
    let after = rss_kib(server.pid());
    assert!(after.saturating_sub(before) < 20 * 1024, "RSS grew from {before} to {after} KiB");
    // Still counting: a value seen twice this window is over the limit of 2 on its third.
    assert_eq!(send("warm")["reason"], json!("RATE_LIMITED"));
}

/// Tokens as Unleash's SDKs send them (the raw secret in `Authorization`, with `:`, `*` and
/// `.`); `X-API-Key` is for clients only; a path that is not UTF-8 gets our JSON error.
#[test]
fn raw_and_unleash_shaped_tokens_are_read_and_admin_routes_want_authorization() {
    let dir = Workdir::new(SEED);
    let unleash = "*:production.2f0c1a2b3c4d";
    let server = Server::start(&dir, &["--client-tokens", &format!("sdk:{unleash}")]);
    let evaluate = |header: &str, value: &str| {
        http()
            .post(server.url("/evaluate"))
            .header(header, value)
            .json(&json!({"flag": "enhanced_search", "context": {}}))
            .send()
            .expect("request")
            .status()
    };
    assert_eq!(evaluate("authorization", unleash), 200, "the raw secret");
    assert_eq!(evaluate("authorization", &format!("Bearer {unleash}")), 200);
    assert_eq!(evaluate("x-api-key", unleash), 200);
    assert_eq!(evaluate("authorization", "*:production.wrong"), 401);
    assert_eq!(evaluate("authorization", &format!("Basic {unleash}")), 401, "another scheme is not a token");
    let flags = |header: &str, value: &str| {
        http().get(server.url("/flags")).header(header, value).send().expect("request").status()
    };
    assert_eq!(flags("authorization", crate::support::ADMIN), 200, "a raw admin token");
    assert_eq!(flags("x-api-key", crate::support::ADMIN), 401, "admin routes read Authorization only");

    let r = http().get(server.url("/evaluate/%ff%fe")).bearer_auth(unleash).send().expect("request");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().expect("a JSON error");
    assert_eq!(body["error"]["code"], json!("invalid_request"), "{body}");
}

/// Secrets never reach help, logs or answers, and a newline in an annotation cannot forge a log
/// line.
#[test]
fn secrets_stay_out_of_help_logs_and_answers_and_log_lines_cannot_be_forged() {
    let help = Command::new(env!("CARGO_BIN_EXE_toggled"))
        .args(["serve", "--help"])
        .env("TOGGLED_DATABASE", "postgres://toggled:DBSECRET@db/toggled")
        .env("TOGGLED_NOTIFY_URLS", "https://hooks.example/services/HOOKSECRET")
        .env("TOGGLED_PROMETHEUS_URL", "http://prom:PROMSECRET@prom:9090")
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    for secret in ["DBSECRET", "HOOKSECRET", "PROMSECRET"] {
        assert!(!help.contains(secret), "{secret} in serve --help");
    }
    let dir = Workdir::new(SEED);
    // Nothing listens on port 1: every delivery and query fails, and is logged.
    let server = Server::start(
        &dir,
        &[
            "--notify-url",
            "http://127.0.0.1:1/services/HOOKSECRET",
            "--prometheus-url",
            "http://prom:PROMSECRET@127.0.0.1:1",
        ],
    );
    let alert = json!({"version": "4", "alerts": [{"status": "firing",
        "labels": {"flag": "new_payment_flow", "action": "rollback"},
        "annotations": {"summary": "error rate\nERROR forged line"}}]});
    assert_eq!(server.admin(Method::POST, "/alerts", Some(alert)).0, 200);
    eventually(PATIENCE, || (!server.log_lines("notification not delivered").is_empty()).then_some(()));
    let logs = server.logs.lock().expect("logs").clone();
    assert!(logs.iter().any(|l| l.contains("rolled back")), "{logs:?}");
    for line in &logs {
        for secret in ["HOOKSECRET", "PROMSECRET"] {
            assert!(!line.contains(secret), "{secret} logged: {line}");
        }
        assert!(!line.starts_with("ERROR forged"), "a forged line: {logs:?}");
    }
}

/// A notification URL that is slow to answer delays only itself. The slow receiver answers
/// only once the other URL has the event: delivered one after the other, the slow request would
/// wait for the other, which waits for it, until the 10 s timeout fails it; delivered at once,
/// both succeed and nothing fails.
#[test]
fn a_slow_notify_url_delays_no_other_url() {
    use std::io::{BufRead as _, Read as _, Write as _};
    let sink = crate::support::WebhookSink::failing_first(0);
    let slow = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let slow_url = format!("http://{}/hook", slow.local_addr().expect("addr"));
    let other = sink.received.clone();
    std::thread::spawn(move || {
        for conn in slow.incoming().flatten() {
            let other = other.clone();
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(conn.try_clone().expect("clone"));
                let (mut line, mut len) = (String::new(), 0usize);
                while reader.read_line(&mut line).unwrap_or(0) > 0 && !line.trim().is_empty() {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let _ = reader.read_exact(&mut vec![0; len]);
                let until = std::time::Instant::now() + Duration::from_secs(60);
                while other.lock().expect("lock").is_empty() && std::time::Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = (&conn).write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            });
        }
    });
    let dir = Workdir::new(SEED);
    let urls = format!("{slow_url},{}", sink.url);
    let server = Server::start(&dir, &["--notify-url", &urls]);
    assert_eq!(kill(&server, "drill"), 200);
    eventually(PATIENCE, || {
        (server.metric(r#"toggled_notifications_total{outcome="delivered"}"#) >= 2.0).then_some(())
    });
    assert_eq!(server.metric(r#"toggled_notifications_total{outcome="failed"}"#), 0.0, "no URL waited for another");
}

/// Another process holding the database's write lock: writes wait out the busy timeout and
/// answer 503 (the store shows down); once the lock is released the next write commits.
#[test]
fn a_write_lock_held_elsewhere_fails_writes_until_it_is_released() {
    use sqlx::Connection as _;
    let dir = Workdir::new(SEED);
    let server = Server::start(&dir, &[]);
    assert_eq!(kill(&server, "before"), 200);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let url = format!("sqlite://{}", dir.path().join("toggled.db").display());
    let mut other = runtime.block_on(sqlx::SqliteConnection::connect(&url)).expect("another connection");
    runtime.block_on(sqlx::query("BEGIN IMMEDIATE").execute(&mut other)).expect("the write lock");
    let (status, body) =
        server.admin(Method::DELETE, "/flags/new_payment_flow/override", Some(json!({"reason": "locked"})));
    assert_eq!(status, 503, "{body}");
    assert_eq!(store(&server)["up"], json!(false));
    runtime.block_on(sqlx::query("ROLLBACK").execute(&mut other)).expect("released");
    assert_eq!(server.admin(Method::DELETE, "/flags/new_payment_flow/override", None).0, 200);
    eventually(PATIENCE, || (store(&server)["up"] == json!(true)).then_some(()));
}

/// One client token cannot take every `/events` slot: it holds at most a quarter of the ones
/// open to clients; another token, and an admin, still connect.
#[test]
fn one_client_token_holds_a_bounded_share_of_event_streams() {
    let dir = Workdir::new(SEED);
    let server = Server::start(
        &dir,
        &["--client-tokens", "web:web-secret-12,mobile:mobile-secret-12", "--max-subscribers", "8"],
    );
    let client = crate::support::http_with_timeout(Duration::from_secs(60));
    let open = |token: &str| client.get(server.url("/events")).bearer_auth(token).send().expect("request");
    let first = open("web-secret-12");
    assert_eq!(first.status(), 200);
    let second = open("web-secret-12");
    assert_eq!(second.status(), 503);
    let body: Value = second.json().expect("JSON");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("per client token")), "{body}");
    let other = open("mobile-secret-12");
    assert_eq!(other.status(), 200, "another token is not held back");
    let admin = open(crate::support::ADMIN);
    assert_eq!(admin.status(), 200);
    drop(first);
    eventually(PATIENCE, || (open("web-secret-12").status() == 200).then_some(()));
}
