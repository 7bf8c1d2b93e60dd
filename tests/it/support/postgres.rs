//! A throwaway PostgreSQL cluster (Debian package `postgresql`: initdb + pg_ctl), on a free port
//! of 127.0.0.1 in a temporary directory, run as the `postgres` user when the tests run as root.

use std::path::PathBuf;
use std::process::Command;

use super::observe::free_port;

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
