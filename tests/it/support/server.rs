//! The real server, spawned on port 0 against a real SQLite file in a temporary directory, and
//! the HTTP client and polling helpers tests drive it with.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

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
        eventually(PATIENCE, || self.child.try_wait().ok().flatten())
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

/// How long a test waits for something that must happen but has no deadline of its own (a
/// reload, a delivery, a retry): long enough for a CI machine running the whole suite on two busy
/// cores, and costing nothing when the machine is fast (`eventually` returns as soon as it holds).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `f` until it returns `Some`, failing after `deadline`. No fixed sleeps. Use
/// [`PATIENCE`] unless the deadline is itself what is asserted (a contract's latency).
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
