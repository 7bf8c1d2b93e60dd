//! A metrics endpoint the test controls, a real Prometheus scraping it, and a webhook sink.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http;

/// Serves `/metrics` with gauges whose values the test sets. Stops when dropped.
pub struct MetricSource {
    pub addr: String,
    values: Arc<Mutex<HashMap<String, f64>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl MetricSource {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let values: Arc<Mutex<HashMap<String, f64>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (v, s) = (values.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let body: String =
                    v.lock().expect("lock").iter().map(|(k, x)| format!("# TYPE {k} gauge\n{k} {x}\n")).collect();
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { addr, values, stop }
    }

    pub fn set(&self, name: &str, value: f64) {
        self.values.lock().expect("lock").insert(name.to_owned(), value);
    }
}

impl Drop for MetricSource {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = std::net::TcpStream::connect(&self.addr);
    }
}

pub(super) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A real Prometheus (Debian package `prometheus`) scraping `target` every second.
pub struct Prometheus {
    child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start(target: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: test\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write config");
        // A free port can be taken between choosing and binding it: if Prometheus exits, its log
        // says why, and it is started again on another port.
        let log = dir.path().join("prometheus.log");
        for attempt in 1..=3 {
            let port = free_port();
            let mut child = Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log file"))
                .spawn()
                .expect("prometheus is installed (Debian package prometheus; .ci/deps installs it)");
            let base = format!("http://127.0.0.1:{port}");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                if http().get(format!("{base}/-/ready")).send().is_ok_and(|r| r.status().is_success()) {
                    return Self { child, base, _dir: dir };
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            eprintln!("prometheus attempt {attempt} on port {port} failed:\n{text}");
        }
        panic!("prometheus did not start; its log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    }

    /// The current value of an instant query, once Prometheus has one.
    pub fn value(&self, promql: &str) -> Option<f64> {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.base), &[("query", promql)]).ok()?;
        let r: Value = http().get(url).send().ok()?.json().ok()?;
        r["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests a sink received: (lower-cased headers, body).
pub type Received = Arc<Mutex<Vec<(HashMap<String, String>, String)>>>;

/// Records every POST it receives (headers and body).
pub struct WebhookSink {
    pub url: String,
    pub received: Received,
}

impl WebhookSink {
    /// A sink that answers 503 to its first `failures` requests (and records them all).
    pub fn failing_first(failures: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let received: Received = Arc::default();
        let r = received.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut headers = HashMap::new();
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        headers.insert(k.trim().to_lowercase(), v.trim().to_owned());
                    }
                }
                let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let mut got = r.lock().expect("lock");
                got.push((headers, String::from_utf8_lossy(&body).into_owned()));
                let answer: &[u8] = if got.len() <= failures {
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                } else {
                    b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                };
                drop(got);
                let _ = conn.write_all(answer);
            }
        });
        Self { url, received }
    }
}
