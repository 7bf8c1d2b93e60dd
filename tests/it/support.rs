//! Shared helpers: compile YAML, build contexts, evaluate at a given time.

use chrono::{DateTime, Utc};
use serde_json::Value;
use toggled::eval::{self, Context, FlagState, Reason};
use toggled::flags::{self, Snapshot};

pub fn compile(yaml: &str) -> Snapshot {
    flags::compile(yaml).unwrap_or_else(|e| panic!("flag file should compile:\n{e}"))
}

pub fn example(name: &str) -> Snapshot {
    let path = format!("{}/flags/{name}", env!("CARGO_MANIFEST_DIR"));
    compile(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

pub fn at(ts: &str) -> DateTime<Utc> {
    flags::duration::parse_date(ts).unwrap_or_else(|e| panic!("{e}"))
}

pub fn ctx(v: Value) -> Context<'static> {
    match v {
        Value::Object(m) => Context::from(m),
        other => panic!("a context is a JSON object, not {other}"),
    }
}

/// What an evaluation answered, owned, for comparisons.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub value: Value,
    pub variant: String,
    pub reason: Reason,
    pub enabled: bool,
    pub stage: Option<u32>,
}

pub fn eval_with(snapshot: &Snapshot, key: &str, context: Value, now: &str, state: &FlagState<'_>) -> Outcome {
    let flag = snapshot.get(key).unwrap_or_else(|| panic!("no flag {key}"));
    let e = eval::evaluate(flag, &ctx(context), at(now), state);
    Outcome {
        value: e.value.clone(),
        variant: e.variant.to_owned(),
        reason: e.reason,
        enabled: e.enabled,
        stage: e.stage,
    }
}

pub fn eval(snapshot: &Snapshot, key: &str, context: Value, now: &str) -> Outcome {
    eval_with(snapshot, key, context, now, &FlagState::default())
}

/// One table row: (context, time, expected value, expected reason).
pub type Case<'a> = (Value, &'a str, Value, Reason);

/// Table test: evaluates every row and compares value and reason.
pub fn check(snapshot: &Snapshot, key: &str, cases: &[Case<'_>]) {
    for (i, (context, now, value, reason)) in cases.iter().enumerate() {
        let got = eval(snapshot, key, context.clone(), now);
        assert_eq!(
            (&got.value, got.reason),
            (value, *reason),
            "{key} case {i}: context {context} at {now} gave {got:?}"
        );
    }
}

/// The first targeting keys `user-N` whose rollout bucket for `group` satisfies `pred`.
pub fn keys_where(group: &str, count: usize, pred: impl Fn(u32) -> bool) -> Vec<String> {
    (0..100_000).map(|i| format!("user-{i}")).filter(|k| pred(eval::bucket::bucket(group, k))).take(count).collect()
}

// ---------------------------------------------------------------------------------------------
// The real server, spawned on port 0 against a real SQLite file in a temporary directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN: &str = "admin-secret-1";
pub const CLIENT: &str = "client-secret-1";

/// A running `toggled serve`. Killed when dropped.
pub struct Server {
    child: Child,
    /// Every line the process wrote to standard error (also echoed to the test's).
    pub logs: Arc<Mutex<Vec<String>>>,
    pub base: String,
    pub dir: PathBuf,
    pub flags: PathBuf,
    args: Vec<String>,
}

/// A temporary directory kept for the whole test (and removed after).
pub struct Workdir(pub tempfile::TempDir);

impl Workdir {
    pub fn new(flags_yaml: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("flags")).expect("flags dir");
        std::fs::write(dir.path().join("flags/feature-flags.yaml"), flags_yaml).expect("write flags");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Server {
    /// Starts a server in `dir` with admin token `ops:ADMIN` and any extra arguments.
    pub fn start(dir: &Workdir, extra: &[&str]) -> Self {
        let admin = format!("ops:{ADMIN}");
        let defaults =
            [("--admin-tokens", admin.as_str()), ("--poll-interval", "200ms"), ("--flush-interval", "200ms")];
        let mut args: Vec<String> = vec!["serve".into(), "--listen".into(), "127.0.0.1:0".into()];
        for (name, value) in defaults {
            if !extra.contains(&name) {
                args.extend([name.to_owned(), value.to_owned()]);
            }
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Self::spawn(dir.path(), args)
    }

    /// Starts a server with no admin token configured.
    pub fn start_without_admin(dir: &Workdir) -> Self {
        Self::spawn(dir.path(), vec!["serve".into(), "--listen".into(), "127.0.0.1:0".into()])
    }

    /// Starts a server configured by environment variables as a user would set them (no
    /// `--admin-tokens` flag).
    pub fn start_with_env(dir: &Workdir, env: &[(&str, &str)]) -> Self {
        let args = vec!["serve".into(), "--listen".into(), "127.0.0.1:0".into()];
        Self::spawn_with(dir.path(), args, env)
    }

    fn spawn(dir: &Path, args: Vec<String>) -> Self {
        Self::spawn_with(dir, args, &[])
    }

    fn spawn_with(dir: &Path, args: Vec<String>, env: &[(&str, &str)]) -> Self {
        let flags = dir.join("flags/feature-flags.yaml");
        let mut child = Command::new(env!("CARGO_BIN_EXE_toggled"))
            .args(&args)
            .arg("--flags")
            .arg(&flags)
            .args(if args.iter().any(|a| a == "--database") {
                Vec::new()
            } else {
                vec!["--database".to_owned(), format!("sqlite://{}", dir.join("toggled.db").display())]
            })
            .env("TOGGLED_LOG", std::env::var("TEST_TOGGLED_LOG").unwrap_or_else(|_| "warn".to_owned()))
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let logs: Arc<Mutex<Vec<String>>> = Arc::default();
        let kept = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                kept.lock().expect("log lines").push(line);
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let base = rx.recv_timeout(Duration::from_secs(30)).expect("the server prints its address");
        Self { child, logs, base, dir: dir.to_path_buf(), flags, args }
    }

    /// Starts the same server again (same directory, same arguments).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let next = Self::spawn(&self.dir, self.args.clone());
        drop(std::mem::replace(self, next));
    }

    /// The log lines so far that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.logs.lock().expect("log lines").iter().filter(|l| l.contains(needle)).cloned().collect()
    }

    /// One sample of a metric from `/metrics` (`name{labels}` as written there), 0 if absent.
    pub fn metric(&self, series: &str) -> f64 {
        let text = http().get(self.url("/metrics")).send().expect("metrics").text().expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .map_or(0.0, |v| v.trim().parse().expect("a number"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /ready`'s body (200 or 503).
    pub fn ready(&self) -> serde_json::Value {
        http().get(self.url("/ready")).send().expect("ready").json().expect("JSON")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("sh").args(["-c", &format!("kill -TERM {}", self.pid())]).status().expect("sh runs");
        assert!(status.success());
        eventually(Duration::from_secs(20), || self.child.try_wait().ok().flatten())
    }

    pub fn write_flags(&self, yaml: &str) {
        std::fs::write(&self.flags, yaml).expect("write flags");
    }

    /// Evaluates with an admin token (accepted on evaluation routes with or without client tokens).
    pub fn evaluate(&self, flag: &str, context: &Value) -> Value {
        let r = http()
            .post(self.url("/evaluate"))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({"flag": flag, "context": context}))
            .send()
            .expect("request");
        assert_eq!(r.status(), 200, "evaluate {flag}");
        r.json().expect("JSON")
    }

    pub fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = http().request(method, self.url(path)).bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().expect("request");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http() -> reqwest::blocking::Client {
    http_with_timeout(Duration::from_secs(30))
}

/// A test client (with the TLS provider the server's own clients use).
pub fn http_with_timeout(timeout: Duration) -> reqwest::blocking::Client {
    toggled::outbound::install_tls_provider();
    reqwest::blocking::Client::builder().timeout(timeout).build().expect("client")
}

/// The resident set of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Polls `f` until it returns `Some`, failing after `deadline`. No fixed sleeps.
pub fn eventually<T>(deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < deadline, "condition not reached within {deadline:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// A metrics endpoint the test controls, a real Prometheus scraping it, and a webhook sink.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

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

fn free_port() -> u16 {
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

// ---------------------------------------------------------------------------------------------
// A throwaway PostgreSQL cluster (Debian package `postgresql`: initdb + pg_ctl), on a free port
// of 127.0.0.1 in a temporary directory, run as the `postgres` user when the tests run as root.

/// A running PostgreSQL cluster. Stopped (immediately) when dropped.
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Postgres {
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed (Debian package postgresql; .ci/deps installs it)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("initdb").exists())
            .expect("initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().expect("temp dir");
        Command::new("chmod").arg("755").arg(dir.path()).status().expect("chmod");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        let pg = Self { bin, dir, port: free_port() };
        pg.as_postgres(&["chown", "-R", "postgres", &data.display().to_string()], true);
        pg.run("initdb", &["-D", &data.display().to_string(), "-U", "toggled", "--auth=trust", "-E", "UTF8"]);
        pg.start_server();
        pg
    }

    fn root() -> bool {
        Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
    }

    /// Runs a command as `postgres` when we are root (PostgreSQL refuses to run as root).
    fn as_postgres(&self, argv: &[&str], only_as_root: bool) {
        if only_as_root && !Self::root() {
            return;
        }
        let status = if Self::root() && !only_as_root {
            Command::new("runuser").args(["-u", "postgres", "--"]).args(argv).output()
        } else {
            Command::new(argv[0]).args(&argv[1..]).output()
        }
        .expect("runs");
        assert!(status.status.success(), "{argv:?}: {}", String::from_utf8_lossy(&status.stderr));
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let path = self.bin.join(tool).display().to_string();
        let mut argv = vec![path.as_str()];
        argv.extend_from_slice(args);
        self.as_postgres(&argv, false);
    }

    fn start_server(&self) {
        let data = self.dir.path().join("data").display().to_string();
        let log = self.dir.path().join("data/server.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().join("data").display()
        );
        self.run("pg_ctl", &["-D", &data, "-o", &options, "-l", &log, "-w", "start"]);
    }

    /// Stops the server at once (as a crash or an outage would).
    pub fn stop(&self) {
        let data = self.dir.path().join("data").display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }

    /// Starts it again on the same port and data.
    pub fn restart(&self) {
        self.start_server();
    }

    /// A fresh database in this cluster and its URL.
    pub fn database(&self, name: &str) -> String {
        let port = format!("-p{}", self.port);
        self.run("createdb", &["-h127.0.0.1", &port, "-U", "toggled", name]);
        format!("postgres://toggled@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").display().to_string();
        let path = self.bin.join("pg_ctl").display().to_string();
        let argv = [path.as_str(), "-D", &data, "-m", "immediate", "stop"];
        let _ = if Self::root() {
            Command::new("runuser").args(["-u", "postgres", "--"]).args(argv).output()
        } else {
            Command::new(argv[0]).args(&argv[1..]).output()
        };
    }
}
