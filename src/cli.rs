//! Command-line definitions (clap). Parsing only; [`crate::app`] runs the commands.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// toggled: feature flags with staged rollouts, kill switches and sunset phases.
#[derive(Debug, Parser)]
#[command(name = "toggled", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve flag evaluations over HTTP, reloading the flag file when it changes.
    Serve(Box<ServeArgs>),
    /// Check flag files; prints `ok: N flags` or every error as `file:line:col: path: message`.
    /// Exits 1 when any file has an error.
    Validate {
        /// Flag files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print Prometheus alerting rules (`groups:` YAML) equivalent to every flag's alerts,
    /// labelled `flag` and `action`, for Prometheus + Alertmanager (whose webhook calls /alerts).
    Rules {
        /// The flag file.
        file: PathBuf,
    },
    /// Translate another flag server's flags into a toggled flag file (YAML on standard output).
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// Write toggled's flags in another flag server's format (standard output, or FILE).
    Export {
        #[command(subcommand)]
        target: ExportTarget,
    },
    /// Print the JSON Schema (2020-12) of the flag file, for editors and CI validators (also
    /// served at `GET /schema/flags.json`).
    Schema,
    /// Report stale flags: deprecated flags whose service has shipped two minor-or-major
    /// releases since, and flags not evaluated for 30 days (from the store). Exits 1 if any.
    Lint {
        /// The flag file.
        file: PathBuf,
        /// The store holding releases and evaluation times.
        #[arg(long, env = "TOGGLED_DATABASE", hide_env_values = true, default_value = "sqlite://toggled.db")]
        database: String,
        /// The service of flags that do not name one.
        #[arg(long)]
        service: Option<String>,
    },
    /// Versions from git: `version next` prints the next version and its release notes.
    Version {
        #[command(subcommand)]
        command: VersionCommand,
    },
    /// Print (or, with --write, prepend to CHANGELOG.md) a Keep a Changelog section for the
    /// commits since the latest SemVer tag.
    Changelog {
        /// The git repository.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Title the section with the next version and today's date instead of `[Unreleased]`.
        #[arg(long)]
        release: bool,
        /// Prepend the section to CHANGELOG.md in the repository.
        #[arg(long)]
        write: bool,
    },
    /// Cut the next release from git: version files, CHANGELOG.md, a `chore(release)` commit and
    /// an annotated tag (never pushes). No commit that bumps the version: no release, exit 0.
    Release {
        /// The git repository.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Change nothing; print what would be done.
        #[arg(long)]
        dry_run: bool,
        /// Print `{released, version, previous, tag, notes, files}` as JSON (for CI pipelines).
        #[arg(long)]
        json: bool,
        /// Do not create the tag.
        #[arg(long)]
        no_tag: bool,
        /// Another file whose version to set (besides Cargo.toml, package.json, pyproject.toml,
        /// VERSION); repeatable.
        #[arg(long)]
        version_file: Vec<PathBuf>,
        /// Register the release with a running toggled (`POST /releases`) after cutting it.
        #[arg(long, requires = "token")]
        server: Option<String>,
        /// An admin token of that server.
        #[arg(long, env = "TOGGLED_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The service the release is of (default: the repository directory's name).
        #[arg(long)]
        service: Option<String>,
    },
    /// Ask a running server whether it is alive (`GET /health`); exit 0 when it answers 200,
    /// 1 otherwise. The container image's HEALTHCHECK (the image has no curl).
    Probe {
        /// The server's health URL.
        #[arg(long, default_value = "http://127.0.0.1:8080/health")]
        url: String,
    },
    /// Evaluate one flag for one context and print the result as JSON.
    Evaluate {
        /// The flag file.
        file: PathBuf,
        /// The flag key.
        flag: String,
        /// The evaluation context, a JSON object (e.g. '{"targetingKey":"u1"}').
        #[arg(long, default_value = "{}")]
        context: String,
        /// Evaluate as of this time (RFC 3339); default now.
        #[arg(long)]
        at: Option<String>,
        /// When the rollout started, for gradual/ab_test flags without `start` (RFC 3339);
        /// default: the evaluation time (the first stage).
        #[arg(long)]
        first_seen: Option<String>,
        /// Add `explain`: the ordered steps the evaluator took.
        #[arg(long)]
        explain: bool,
    },
}

/// Where `toggled import` reads from.
#[derive(Debug, Subcommand)]
pub enum ExportTarget {
    /// Unleash's client features document (what `GET /api/client/features` serves), as of now
    /// and without a store's overrides: a bootstrap file Unleash's SDKs accept. What Unleash
    /// cannot express is listed on standard error (`note: FLAG: what`).
    Unleash {
        /// Write the document here instead of standard output.
        file: Option<PathBuf>,
        /// The flag file.
        #[arg(long, env = "TOGGLED_FLAGS", default_value = "flags/feature-flags.yaml")]
        flags: PathBuf,
    },
    /// A flagd flag definition file (for flagd's in-process providers in file mode), as of now and
    /// without a store's overrides. What flagd cannot express is listed on standard error
    /// (`note: FLAG: what`).
    Flagd {
        /// Write the document here instead of standard output.
        file: Option<PathBuf>,
        /// The flag file.
        #[arg(long, env = "TOGGLED_FLAGS", default_value = "flags/feature-flags.yaml")]
        flags: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportSource {
    /// An Unleash client features document (`GET /api/client/features`, JSON).
    Unleash {
        /// The document.
        file: PathBuf,
        /// Write the flag file here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Exit 0 even when something could not be expressed (it is still listed).
        #[arg(long)]
        skip_unsupported: bool,
    },
    /// A flagd flag definition (JSON: `flags`, `$evaluators`).
    Flagd {
        /// The document.
        file: PathBuf,
        /// Write the flag file here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Exit 0 even when something could not be expressed (it is still listed).
        #[arg(long)]
        skip_unsupported: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The flag file to serve (its directory is watched).
    #[arg(long, env = "TOGGLED_FLAGS", default_value = "flags/feature-flags.yaml")]
    pub flags: PathBuf,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "TOGGLED_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Store: sqlite://PATH (created on first start).
    #[arg(long, env = "TOGGLED_DATABASE", hide_env_values = true, default_value = "sqlite://toggled.db")]
    pub database: String,
    /// Admin tokens, `name:secret,...` (the name is the actor in the audit log).
    #[arg(long, env = "TOGGLED_ADMIN_TOKENS", hide_env_values = true)]
    pub admin_tokens: Option<String>,
    /// Client tokens for evaluation routes, `name:secret,...`; evaluation is open without any.
    #[arg(long, env = "TOGGLED_CLIENT_TOKENS", hide_env_values = true)]
    pub client_tokens: Option<String>,
    /// Frontend tokens, `name:secret,...`: answers only (the Unleash frontend API, OFREP,
    /// /evaluate), never flag definitions; what browser and mobile SDKs carry.
    #[arg(long, env = "TOGGLED_FRONTEND_TOKENS", hide_env_values = true)]
    pub frontend_tokens: Option<String>,
    /// Tokens that may only post Alertmanager notifications to /alerts, `name:secret,...`.
    #[arg(long, env = "TOGGLED_RECEIVER_TOKENS", hide_env_values = true)]
    pub receiver_tokens: Option<String>,
    /// Edge mode: follow this Unleash client API (an Unleash server, Unleash Edge or another
    /// toggled; `https://host` or `https://host/api`) instead of an edited file. `--flags` is then
    /// the backup the upstream's flags are written to and served from at start.
    #[arg(long, env = "TOGGLED_UPSTREAM", hide_env_values = true, requires = "upstream_token")]
    pub upstream: Option<String>,
    /// Edge mode: the token sent to the upstream (an Unleash client/backend token).
    #[arg(long, env = "TOGGLED_UPSTREAM_TOKEN", hide_env_values = true)]
    pub upstream_token: Option<String>,
    /// Edge mode: how often the upstream is polled.
    #[arg(long, env = "TOGGLED_UPSTREAM_INTERVAL", default_value = "10s")]
    pub upstream_interval: String,
    /// Prometheus to query for guarded rollouts (`monitoring:` alerts); no monitor without it.
    #[arg(long, env = "TOGGLED_PROMETHEUS_URL", hide_env_values = true)]
    pub prometheus_url: Option<String>,
    /// Where `alert_team` alerts POST their JSON notification.
    #[arg(long, env = "TOGGLED_WEBHOOK_URL", hide_env_values = true)]
    pub webhook_url: Option<String>,
    /// Signs webhook bodies: `X-Signature-256: sha256=<hex HMAC-SHA256>`.
    #[arg(long, env = "TOGGLED_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Where release and flag-change notifications are POSTed (repeatable; the environment
    /// variable takes a comma-separated list). Delivered at least once from the store.
    #[arg(long = "notify-url", env = "TOGGLED_NOTIFY_URLS", hide_env_values = true, value_delimiter = ',')]
    pub notify_urls: Vec<String>,
    /// Signs notification bodies: `X-Signature-256: sha256=<hex HMAC-SHA256>`.
    #[arg(long, env = "TOGGLED_NOTIFY_SECRET", hide_env_values = true)]
    pub notify_secret: Option<String>,
    /// `json` (the event itself) or `slack` (`{"text": ...}`).
    #[arg(long, value_enum, default_value = "json", env = "TOGGLED_NOTIFY_FORMAT")]
    pub notify_format: crate::notify::NotifyFormat,
    /// How often the notification outbox is read.
    #[arg(long, default_value = "1s")]
    pub notify_interval: String,
    /// Watch the alerts of every flag, not only of flags under rollout.
    #[arg(long)]
    pub monitor_all: bool,
    /// Four-eyes: every operator's change (but the kill switch and pauses) waits for a second
    /// admin's approval (`POST /change-requests/{id}/approve`); per flag, `change_control: approval`.
    #[arg(long, env = "TOGGLED_REQUIRE_APPROVAL")]
    pub require_approval: bool,
    /// How long a change request may wait for approval before it expires.
    #[arg(long, env = "TOGGLED_APPROVAL_EXPIRY", default_value = "24h")]
    pub approval_expiry: String,
    /// Release types, approvals and testing requirements (the standards' release-strategy.yaml
    /// format); built-in defaults equal the standards' example.
    #[arg(long, env = "TOGGLED_RELEASE_STRATEGY")]
    pub release_strategy: Option<PathBuf>,
    /// Release quality gates (the standards' `release_quality_gates:` format); built-in defaults
    /// equal its example.
    #[arg(long, env = "TOGGLED_QUALITY_GATES")]
    pub quality_gates: Option<PathBuf>,
    /// Maintenance windows: a YAML list of `{service?, start, end, description}`.
    #[arg(long, env = "TOGGLED_MAINTENANCE_WINDOWS")]
    pub maintenance_windows: Option<PathBuf>,
    /// The service of flags that do not name one (stale-flag checks).
    #[arg(long, env = "TOGGLED_SERVICE")]
    pub service: Option<String>,
    /// Origins allowed to call the API from a browser (CORS), comma-separated, or `*`.
    #[arg(long, env = "TOGGLED_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origin: Vec<String>,
    /// Log format.
    #[arg(long, env = "TOGGLED_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    pub body_limit: usize,
    /// How often the release gauges on `/metrics` (quality, gates, stale flags) are recomputed.
    #[arg(long, default_value = "30s")]
    pub report_interval: String,
    /// Per-client limit on evaluation routes, `N/s` or `N/m` with an optional `:burst` (a client is
    /// its token's name, or its address when evaluation is open); over it: 429 with `Retry-After`.
    #[arg(long, env = "TOGGLED_RATE_LIMIT")]
    pub rate_limit: Option<String>,
    /// Per-token limit on admin routes, as `--rate-limit`.
    #[arg(long, env = "TOGGLED_ADMIN_RATE_LIMIT")]
    pub admin_rate_limit: Option<String>,
    /// A client must send a request's headers within this time, or its connection is closed
    /// (slowloris).
    #[arg(long, default_value = "10s")]
    pub header_read_timeout: String,
    /// Most connections open at once; more are closed as they are accepted.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// Most requests in flight at once; beyond it requests are shed at once with 503 `overloaded`
    /// and `Retry-After` instead of queueing (0: no bound).
    #[arg(long, env = "TOGGLED_MAX_CONCURRENT_REQUESTS", default_value_t = 0)]
    pub max_concurrent_requests: usize,
    /// Most `/events` streams open at once; more are answered 503 `too_many_subscribers`.
    #[arg(long, default_value_t = 1_000)]
    pub max_subscribers: usize,
    /// Requests taking longer are answered 408.
    #[arg(long, default_value = "10s")]
    pub request_timeout: String,
    /// Slow periodic re-check of the flag file, for filesystems without change events.
    #[arg(long, default_value = "30s")]
    pub recheck_interval: String,
    /// How often the store is polled for changes made by other replicas (and for due scheduled
    /// changes).
    #[arg(long, default_value = "1s")]
    pub poll_interval: String,
    /// Quiet time after a file event before reloading.
    #[arg(long, default_value = "20ms")]
    pub reload_debounce: String,
    /// How often last-evaluated times are written to the store.
    #[arg(long, default_value = "10s")]
    pub flush_interval: String,
}

#[derive(Debug, Subcommand)]
pub enum VersionCommand {
    /// Read the latest SemVer tag and the commits since, print the next version and the notes.
    Next {
        /// The git repository.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// How breaking changes bump a 0.y.z version: major (-> 1.0.0) or minor.
        #[arg(long, default_value = "major")]
        pre_major: String,
        /// Start (or continue) a pre-release with this identifier (e.g. rc).
        #[arg(long)]
        pre_release: Option<String>,
    },
}
