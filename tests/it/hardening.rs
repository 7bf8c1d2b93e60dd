//! One misbehaving client must not take the server down: per-client rate limits.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{CLIENT, PATIENCE, Server, Workdir, eventually, http};

const SEED: &str = include_str!("../../flags/feature-flags.yaml");

fn evaluate(server: &Server, token: Option<&str>) -> reqwest::blocking::Response {
    let mut req = http()
        .post(server.url("/evaluate"))
        .json(&json!({"flag": "enhanced_search", "context": {"targetingKey": "u"}}));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().expect("request")
}

/// Limits are per hour so that no token returns while the test runs, however slow the machine:
/// the counts below do not depend on how long 70 requests take.
#[test]
fn a_flooding_client_is_limited_while_another_is_served() {
    let dir = Workdir::new(SEED);
    let tokens = format!("web:{CLIENT},mobile:mobile-secret-1");
    let server = Server::start(&dir, &["--client-tokens", &tokens, "--rate-limit", "20/h:20"]);
    let (mut refused, mut served_other) = (0, 0);
    for i in 0..60 {
        let r = evaluate(&server, Some(CLIENT));
        if r.status() == 429 {
            refused += 1;
            let retry: u64 = r.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
            assert!((1..=180).contains(&retry), "Retry-After {retry}");
            let body: Value = r.json().expect("JSON");
            assert_eq!(body["error"]["code"], json!("rate_limited"));
        } else {
            assert_eq!(r.status(), 200);
        }
        if i % 6 == 0 {
            served_other += usize::from(evaluate(&server, Some("mobile-secret-1")).status() == 200);
        }
    }
    assert_eq!(refused, 40, "20 allowed (the burst), the rest refused");
    assert_eq!(served_other, 10, "the other client was never refused");
    // OFREP is limited the same way (a provider backs off on 429 + Retry-After).
    let r = http()
        .post(server.url("/ofrep/v1/evaluate/flags/enhanced_search"))
        .bearer_auth(CLIENT)
        .json(&json!({"context": {}}))
        .send()
        .expect("request");
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(server.metric(r#"toggled_rate_limited_total{scope="evaluation",client="web"}"#), 41.0);
    assert_eq!(server.metric(r#"toggled_rate_limited_total{scope="evaluation",client="mobile"}"#), 0.0);
    let metrics = http().get(server.url("/metrics")).send().expect("metrics").text().expect("text");
    assert!(!metrics.contains(CLIENT), "never a secret on /metrics");
}

#[test]
fn open_evaluation_is_limited_by_address_and_admin_routes_by_token() {
    let dir = Workdir::new(SEED);
    let server = Server::start(&dir, &["--rate-limit", "5/h", "--admin-rate-limit", "3/h"]);
    let statuses: Vec<u16> = (0..7).map(|_| evaluate(&server, None).status().as_u16()).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    assert_eq!(server.metric(r#"toggled_rate_limited_total{scope="evaluation",client="anonymous"}"#), 2.0);
    let admin: Vec<u16> = (0..4).map(|_| server.admin(Method::GET, "/flags", None).0).collect();
    assert_eq!(admin, [200, 200, 200, 429]);
    // Open routes are never limited.
    assert_eq!(http().get(server.url("/ready")).send().expect("ready").status(), 200);
}

#[test]
fn a_bad_rate_is_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_toggled"))
        .args(["serve", "--rate-limit", "fast"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rate-limit: \"fast\": expected a rate like 100/s"));
}

/// Requests beyond `--max-concurrent-requests` in flight are shed at once (503 `overloaded`,
/// `Retry-After`), not queued; once the slow ones finish, requests are served again.
#[test]
fn requests_beyond_the_bound_are_shed_at_once() {
    use std::io::{Read, Write};
    let dir = Workdir::new(SEED);
    // The request timeout is far beyond the test, so the slow two stay in flight however long a
    // loaded machine takes to get through it (at 10 s they would be answered 408 and the bound freed).
    let server = Server::start(&dir, &["--max-concurrent-requests", "2", "--request-timeout", "10m"]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    // Two requests that promise a body and send half of it: in flight until they finish.
    let (head, rest) = (r#"{"flag":"#, r#""enhanced_search","context":{}}"#);
    let request =
        format!("POST /evaluate HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{head}", head.len() + rest.len());
    let open_slow = || {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        s.write_all(request.as_bytes()).expect("write");
        s
    };
    let mut slow: Vec<std::net::TcpStream> = (0..2).map(|_| open_slow()).collect();
    // A probe may be in flight when a slow one arrives, and then the slow one is shed (answered,
    // no longer in flight): it is opened again. A probe is answered 503 only while both are held.
    let shed = eventually(PATIENCE, || {
        for s in &mut slow {
            if answered(s) {
                *s = open_slow();
            }
        }
        let r = evaluate(&server, None);
        (r.status() == 503).then_some(r)
    });
    assert!(shed.headers().contains_key("retry-after"));
    let body: Value = shed.json().expect("JSON");
    assert_eq!(body["error"]["code"], json!("overloaded"));
    // The bound is over all routes, not per route.
    let other = http().post(server.url("/evaluate/all")).json(&json!({"context": {}})).send().expect("request");
    assert_eq!(other.status(), 503);
    // Probes and scrapes are never shed: a failed liveness probe restarts the pod.
    for path in ["/health", "/ready", "/metrics"] {
        assert_eq!(http().get(server.url(path)).send().expect("request").status(), 200, "{path} while shedding");
    }
    // Finish the slow ones: both are answered, and the server serves again.
    for s in &mut slow {
        s.write_all(rest.as_bytes()).expect("write");
        let mut answer = [0u8; 12];
        s.read_exact(&mut answer).expect("an answer");
        assert_eq!(&answer, b"HTTP/1.1 200");
    }
    drop(slow);
    eventually(PATIENCE, || (evaluate(&server, None).status() == 200).then_some(()));
}

/// Whether the server has answered (or closed) `s`, without waiting.
fn answered(s: &std::net::TcpStream) -> bool {
    s.set_nonblocking(true).expect("non-blocking");
    let answered = !matches!(s.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).expect("blocking");
    answered
}

/// 500 idle connections and 50 slowloris ones (headers trickling in) do not keep a fresh client
/// from being answered, and the server closes what does not send its headers in time.
#[test]
fn slow_and_idle_connections_do_not_hold_the_server() {
    use std::io::{Read, Write};
    let dir = Workdir::new(SEED);
    let server = Server::start(&dir, &["--header-read-timeout", "1s"]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let idle: Vec<std::net::TcpStream> =
        (0..500).map(|_| std::net::TcpStream::connect(&addr).expect("connect")).collect();
    let mut slow: Vec<std::net::TcpStream> = (0..50)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).expect("connect");
            s.write_all(b"POST /evaluate HTTP/1.1\r\nHost: x\r\n").expect("write");
            s
        })
        .collect();
    // A fresh client is answered while all of them are open.
    assert_eq!(evaluate(&server, None).status(), 200);
    // The slowloris connections keep trickling, but get closed once their headers are late.
    let started = std::time::Instant::now();
    let mut closed = 0;
    for s in &mut slow {
        s.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
        let _ = s.write_all(b"X-Slow: 1\r\n");
        let mut buf = [0u8; 64];
        // The server closes the connection (EOF or reset), possibly after a 408.
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        closed += 1;
    }
    assert_eq!(closed, 50);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "closed by the header timeout, not by ours");
    assert_eq!(evaluate(&server, None).status(), 200);
    // Connections that never send anything are closed by the same timeout.
    for s in idle.iter().take(5) {
        s.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
        let mut buf = [0u8; 16];
        assert!(matches!((&*s).read(&mut buf), Ok(0) | Err(_)));
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// Beyond `--max-connections`, a new connection is closed as it is accepted.
#[test]
fn connections_beyond_the_bound_are_closed() {
    use std::io::{Read, Write};
    let dir = Workdir::new(SEED);
    let server = Server::start(&dir, &["--max-connections", "3"]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let held: Vec<std::net::TcpStream> =
        (0..3).map(|_| std::net::TcpStream::connect(&addr).expect("connect")).collect();
    let mut extra = std::net::TcpStream::connect(&addr).expect("the kernel accepts");
    let _ = extra.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    extra.set_read_timeout(Some(std::time::Duration::from_secs(5))).expect("timeout");
    let mut buf = [0u8; 32];
    assert!(matches!(extra.read(&mut buf), Ok(0) | Err(_)), "closed without an answer");
    drop(held);
    eventually(PATIENCE, || (http().get(server.url("/health")).send().ok()?.status() == 200).then_some(()));
}

/// A request whose body stalls is answered 408 `request_timeout` once `--request-timeout`
/// passes, and its duration is recorded; a request that keeps its connection busy is not cut
/// by the (shorter) header timeout meanwhile.
#[test]
fn a_stalled_body_is_answered_408_after_the_request_timeout() {
    use std::io::{Read, Write};
    let dir = Workdir::new(SEED);
    let server = Server::start(&dir, &["--request-timeout", "1500ms", "--header-read-timeout", "1s"]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    s.write_all(b"POST /evaluate HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n{\"flag\":").expect("write");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let waited = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    assert!(waited >= std::time::Duration::from_millis(1400), "answered after {waited:?}");
    let metrics = http().get(server.url("/metrics")).send().expect("metrics").text().expect("text");
    assert!(
        metrics.lines().any(|l| l.starts_with("toggled_http_request_duration_seconds_count")
            && l.contains("route=\"/evaluate\"")
            && l.contains("status=\"408\"")
            && l.ends_with(" 1")),
        "{metrics}"
    );
}

/// The body limit holds for a chunked body too (no `Content-Length` to refuse up front).
#[test]
fn a_chunked_body_over_the_limit_is_refused() {
    use std::io::{Read, Write};
    let dir = Workdir::new(SEED);
    let server = Server::start(&dir, &[]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    let mut request =
        b"POST /evaluate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    let chunk = "x".repeat(8 * 1024);
    for _ in 0..10 {
        request.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let _ = s.write_all(&request);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");
}
