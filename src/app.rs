//! Runs the commands: file IO and the clock live here, around the pure `flags` and `eval`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use chrono::Utc;

use std::sync::Arc;
use std::time::Duration;

use crate::cli::{Cli, Command, ExportTarget, ImportSource, LogFormat, VersionCommand};
use crate::config::Config;
use crate::eval::{self, Context, FlagState};
use crate::flags;
use crate::http::{AppState, app};
use crate::metrics::Metrics;
use crate::reload::read_flag_file;
use crate::serving::Serving;
use crate::store::Store;

/// `toggled probe`: one GET with a short timeout; the status decides the exit code.
fn probe(url: &str) -> anyhow::Result<ExitCode> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")?;
    let client = crate::outbound::client().timeout(Duration::from_secs(3)).build().context("cannot build a client")?;
    match runtime.block_on(async { client.get(url).send().await }) {
        Ok(r) if r.status().is_success() => Ok(ExitCode::SUCCESS),
        Ok(r) => {
            eprintln!("{url}: {}", r.status());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Runs one command; `Ok(ExitCode::FAILURE)` means the command ran and found problems.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            // Logging first, so that even a bad configuration is reported in the chosen format.
            init_tracing(args.log_format);
            let served = Config::from_args(*args).and_then(|config| {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .context("cannot start the runtime")?;
                runtime.block_on(serve(config))
            });
            Ok(served.unwrap_or_else(|err| {
                tracing::error!("{err:#}");
                ExitCode::FAILURE
            }))
        }
        Command::Validate { files } => Ok(validate(&files)),
        Command::Version { command: VersionCommand::Next { repo, pre_major, pre_release } } => {
            let pre_major = match pre_major.as_str() {
                "major" => crate::release::PreMajor::Major,
                "minor" => crate::release::PreMajor::Minor,
                other => bail!("--pre-major {other:?}: expected major or minor"),
            };
            let analysis = crate::repo::analysis(&repo, pre_major, pre_release.as_deref())?;
            println!("{}", analysis.next);
            println!();
            print!("{}", crate::release::notes::markdown(&analysis, &format!("Release {}", analysis.next)));
            for i in &analysis.ignored {
                eprintln!("ignored (not a Conventional Commit): {}", i.message);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Changelog { repo, release, write } => {
            let analysis = crate::repo::analysis(&repo, crate::release::PreMajor::Major, None)?;
            let today = Utc::now().format("%Y-%m-%d").to_string();
            let section = if release {
                crate::release::notes::keep_a_changelog(&analysis, Some(&analysis.next), Some(&today))
            } else {
                crate::release::notes::keep_a_changelog(&analysis, None, None)
            };
            if write {
                let path = crate::repo::prepend_changelog(&repo, &section)?;
                println!("wrote {}", path.display());
            } else {
                print!("{section}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Release { repo, dry_run, json, no_tag, version_file, server, token, service } => {
            let options = crate::repo::CutOptions { dry_run, tag: !no_tag, extra_files: version_file };
            // The commits are read before the release commit and tag hide them.
            let commits = match &server {
                Some(_) => crate::repo::commits_since_last_tag(&repo)?.1,
                None => Vec::new(),
            };
            let cut = crate::repo::cut(&repo, &options)?;
            let registered = match (&server, cut.released && !dry_run) {
                (Some(url), true) => {
                    let service = match service {
                        Some(s) => s,
                        None => std::fs::canonicalize(&repo)
                            .ok()
                            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                            .ok_or_else(|| anyhow!("give --service: the repository directory has no name"))?,
                    };
                    let registration = Registration { service: &service, version: &cut.version, commits: &commits };
                    Some(register(url, token.as_deref().unwrap_or_default(), &registration).with_context(|| {
                        format!("release {} was cut locally but not registered with {url}", cut.version)
                    })?)
                }
                _ => None,
            };
            if json {
                let mut out = serde_json::to_value(&cut).context("failed to render the release")?;
                out["registered"] = registered.unwrap_or(serde_json::Value::Null);
                println!("{}", serde_json::to_string_pretty(&out).context("failed to render the release")?);
            } else if !cut.released {
                println!("no release: no commit since {} bumps the version", cut.previous);
            } else {
                let verb = if dry_run { "would release" } else { "released" };
                println!("{verb} {} (from {}): {}", cut.version, cut.previous, cut.files.join(", "));
                if let Some(tag) = &cut.tag {
                    println!("tag {tag}");
                }
                if let Some(r) = &registered {
                    println!("registered as release #{} ({})", r["id"], r["status"].as_str().unwrap_or_default());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Lint { file, database, service } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the runtime")?;
            runtime.block_on(lint(&file, &database, service.as_deref()))
        }
        Command::Rules { file } => {
            let text = read_flag_file(&file)?;
            let snapshot = flags::compile(&text).map_err(|e| anyhow!("{}", e.render(&file.display().to_string())))?;
            print!("{}", crate::monitor::alerting_rules(&snapshot));
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { source: ImportSource::Unleash { file, output, skip_unsupported } } => {
            import(&file, output.as_deref(), skip_unsupported, crate::import::unleash::translate)
        }
        Command::Import { source: ImportSource::Flagd { file, output, skip_unsupported } } => {
            import(&file, output.as_deref(), skip_unsupported, crate::import::flagd::translate)
        }
        Command::Schema => {
            use std::io::Write as _;
            let schema = serde_json::to_string_pretty(&flags::file::schema()).context("failed to render the schema")?;
            // A closed pipe (`toggled schema | head`) is not an error worth a panic.
            let _ = writeln!(std::io::stdout(), "{schema}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Probe { url } => probe(&url),
        Command::Export { target: ExportTarget::Unleash { file, flags: path } } => {
            export(&path, file.as_deref(), |s| {
                let p = crate::export::unleash::project(s, |_| FlagState::default(), Utc::now());
                (p.document, p.notes)
            })
        }
        Command::Export { target: ExportTarget::Flagd { file, flags: path } } => export(&path, file.as_deref(), |s| {
            let p = crate::export::flagd::project(s, Utc::now());
            (p.document, p.notes)
        }),
        Command::Evaluate { file, flag, context, at, first_seen, explain } => {
            evaluate(&file, &flag, &context, at.as_deref(), first_seen.as_deref(), explain)
        }
    }
}

/// `toggled export unleash|flagd`: the document on standard output (or `FILE`), what it cannot
/// express on standard error.
fn export(
    path: &Path,
    file: Option<&Path>,
    project: impl FnOnce(&flags::Snapshot) -> (serde_json::Value, Vec<(String, String)>),
) -> anyhow::Result<ExitCode> {
    let text = read_flag_file(path)?;
    let snapshot = flags::compile(&text).map_err(|e| anyhow!("{}", e.render(&path.display().to_string())))?;
    let (document, notes) = project(&snapshot);
    for (flag, what) in &notes {
        eprintln!("note: {flag}: {what}");
    }
    let out = serde_json::to_string_pretty(&document).context("failed to render the document")?;
    match file {
        Some(file) => std::fs::write(file, out + "\n").with_context(|| format!("cannot write {}", file.display()))?,
        None => println!("{out}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `toggled import unleash|flagd`: the flag file on standard output (or `--output`), what could
/// not be expressed on standard error; exit 1 if anything was left out, unless told to skip it.
fn import(
    file: &Path,
    output: Option<&Path>,
    skip_unsupported: bool,
    translate: fn(&str) -> Result<crate::import::Translation, crate::import::ImportError>,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let t = translate(&text).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    // A file named `*.json` gets JSON (loaded several times faster), anything else YAML.
    let json = output.is_some_and(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")));
    let text = if json { t.json() } else { t.yaml() };
    // The output must load: an importer bug must not reach a server.
    if let Err(errors) = flags::compile(&text) {
        bail!("the translation does not load (a bug in the importer):\n{}", errors.render("import"));
    }
    match output {
        Some(path) => std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    for note in &t.notes {
        eprintln!("note: {note}");
    }
    for (flag, items) in t.unsupported_by_flag() {
        for item in items {
            eprintln!("unsupported: {flag}: {item}");
        }
    }
    Ok(if t.unsupported.is_empty() || skip_unsupported { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn validate(files: &[std::path::PathBuf]) -> ExitCode {
    let mut failed = false;
    for path in files {
        let shown = path.display().to_string();
        match read_flag_file(path) {
            Err(err) => {
                failed = true;
                eprintln!("{shown}: {err:#}");
            }
            Ok(text) => match flags::compile(&text) {
                Ok(snapshot) => {
                    println!("{shown}: ok: {} flags", snapshot.flags.len());
                    for (flag, what) in crate::export::unleash::notes(&snapshot, Utc::now()) {
                        eprintln!("{shown}: note: {flag}: Unleash's SDKs: {what}");
                    }
                }
                Err(errors) => {
                    failed = true;
                    eprint!("{}", errors.render(&shown));
                }
            },
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn evaluate(
    path: &Path,
    key: &str,
    context: &str,
    at: Option<&str>,
    first_seen: Option<&str>,
    explain: bool,
) -> anyhow::Result<ExitCode> {
    let text = read_flag_file(path)?;
    let snapshot = flags::compile(&text).map_err(|e| anyhow!("{}", e.render(&path.display().to_string())))?;
    let flag = snapshot.get(key).ok_or_else(|| anyhow!("no flag {key:?} in {}", path.display()))?;
    let ctx: Context = serde_json::from_str(context).context("--context must be a JSON object")?;
    let time = |t: Option<&str>, what: &str| -> anyhow::Result<Option<chrono::DateTime<Utc>>> {
        t.map(|t| flags::duration::parse_timestamp(t).map_err(|e| anyhow!("--{what}: {e}"))).transpose()
    };
    let now = time(at, "at")?.unwrap_or_else(Utc::now);
    let state = FlagState { first_seen: time(first_seen, "first-seen")?, ..FlagState::default() };
    let (evaluation, steps) = eval::evaluate_explained(flag, &ctx, now, &state, &snapshot);
    let mut body = evaluation.body(flag, &snapshot.revision);
    if explain {
        body.explain = Some(&steps);
    }
    println!("{}", serde_json::to_string_pretty(&body).context("failed to render the evaluation")?);
    Ok(ExitCode::SUCCESS)
}

/// Logs go to standard error: colour only on a terminal and without `NO_COLOR`; with
/// `--log-format json` every line is a JSON object, panics included.
fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOGGLED_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    match format {
        LogFormat::Json => {
            builder.json().init();
            std::panic::set_hook(Box::new(|info| {
                let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
                tracing::error!(panic = true, location = %at, "{}", panic_text(info.payload()));
            }));
        }
        LogFormat::Text => builder.init(),
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic")
}

/// Runs the server until SIGTERM or Ctrl-C, then finishes in-flight requests.
async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    crate::reload::check_directory(&config.flags)?;
    let shutdown = shutdown_signal();
    let store: Arc<dyn Store> = Arc::from(
        crate::store::open(&config.database)
            .await
            .with_context(|| format!("cannot open the store {}", crate::config::redacted(&config.database)))?,
    );
    let identity = store.identity().await.context("cannot read the store")?;
    tracing::info!(store = %identity.id, created_at = %identity.created_at, "store opened");
    let metrics = Arc::new(Metrics::new());
    let serving = Arc::new(Serving::new(store, metrics).await.context("cannot read the store")?);
    serving.store_health.set_identity(identity);
    let reloader = Arc::new(crate::reload::Reloader::new(serving.clone(), config.flags.clone()));
    // Watch first, then load: a change between the two cannot be missed.
    let watcher = crate::reload::Watcher::start(reloader.clone(), config.reload_debounce)
        .map_err(|e| tracing::error!("{e:#}; falling back to periodic re-checks and SIGHUP"))
        .ok();
    // A rejected or missing file is logged once by the reload itself; the server is not ready
    // until a valid file appears.
    crate::reload::reload(&reloader, "startup").await;
    if let Some(n) = &config.notify
        && let Err(e) = crate::notify::init_cursors(serving.store.as_ref(), n).await
    {
        tracing::warn!("notification cursors not set yet ({e}); delivery starts when the store answers");
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr().context("no local address")?;
    match config.log_format {
        LogFormat::Text => println!("listening on http://{addr}"),
        LogFormat::Json => {
            println!("{}", serde_json::json!({"message": format!("listening on http://{addr}"), "address": addr}));
        }
    }
    tracing::info!(%addr, flags = %config.flags.display(), database = %crate::config::redacted(&config.database), "toggled serving");

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tasks = crate::tasks::TaskBoard::default();
    let supervise = crate::tasks::Supervisor::new(&tasks, &serving.metrics, &stopped);
    // The first watcher was started before the first load; a restarted loop starts a new one.
    let first_watcher = std::sync::Mutex::new(watcher);
    let watcher = supervise.spawn("reload", {
        let (reloader, stopped, recheck, debounce) =
            (reloader.clone(), stopped.clone(), config.recheck_interval, config.reload_debounce);
        move || {
            let taken = first_watcher.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            let watcher = taken.or_else(|| crate::reload::Watcher::start(reloader.clone(), debounce).ok());
            let (reloader, stopped) = (reloader.clone(), stopped.clone());
            async move {
                match watcher {
                    Some(w) => w.run(recheck, stopped).await,
                    None => crate::reload::poll_only(reloader, recheck, stopped).await,
                }
            }
        }
    });
    let wake = Arc::new(tokio::sync::Notify::new());
    let poller = supervise.spawn("store_poll", {
        let (serving, every, wake, stopped) = (serving.clone(), config.poll_interval, wake.clone(), stopped.clone());
        move || crate::sync::poll(serving.clone(), every, wake.clone(), stopped.clone())
    });
    let notifications = supervise.spawn("store_listen", {
        let (serving, wake, stopped) = (serving.clone(), wake.clone(), stopped.clone());
        move || crate::sync::listen(serving.clone(), wake.clone(), stopped.clone())
    });
    let flusher = supervise.spawn("flush_evaluated", {
        let (serving, every, stopped) = (serving.clone(), config.flush_interval, stopped.clone());
        move || flush_evaluated(serving.clone(), every, stopped.clone())
    });
    let reports = supervise.spawn("release_gauges", {
        let (serving, every, stopped) = (serving.clone(), config.report_interval, stopped.clone());
        let settings = Arc::new(config.releases.clone());
        move || crate::reports::run(serving.clone(), settings.clone(), every, stopped.clone())
    });

    let links = supervise.spawn("release_links", {
        let (serving, stopped) = (serving.clone(), stopped.clone());
        let strategy = Arc::new(config.releases.strategy.clone());
        move || crate::releasing::follow_rollbacks(serving.clone(), strategy.clone(), stopped.clone())
    });
    let schedules = supervise.spawn("schedules", {
        let (serving, every, expiry, stopped) =
            (serving.clone(), config.poll_interval, config.approval_expiry, stopped.clone());
        move || crate::schedules::run(serving.clone(), every, expiry, stopped.clone())
    });
    let upstream_board = Arc::new(crate::upstream::UpstreamBoard::default());
    let upstream = match config.upstream.clone() {
        Some(u) => {
            tracing::info!(upstream = %crate::outbound::redact(&u.url), every = ?u.interval, "edge mode: following the upstream");
            supervise.spawn("upstream", {
                let (reloader, board, stopped) = (reloader.clone(), upstream_board.clone(), stopped.clone());
                move || crate::upstream::run(reloader.clone(), board.clone(), u.clone(), stopped.clone())
            })
        }
        None => tokio::spawn(async {}),
    };
    let notifier = match config.notify.clone() {
        Some(n) => {
            tracing::info!(urls = n.urls.len(), "notifications on");
            let n = Arc::new(n);
            supervise.spawn("notify", {
                let (store, metrics, health) =
                    (serving.store.clone(), serving.metrics.clone(), serving.store_health.clone());
                let stopped = stopped.clone();
                move || crate::notify::run(store.clone(), metrics.clone(), health.clone(), n.clone(), stopped.clone())
            })
        }
        None => tokio::spawn(async {}),
    };
    let board = crate::monitor::AlertBoard::default();
    let monitor = match config.monitor.clone() {
        Some(m) => {
            tracing::info!(prometheus = %crate::outbound::redact(&m.prometheus_url), "guarded rollouts: monitor started");
            supervise.spawn("monitor", {
                let (serving, board, stopped) = (serving.clone(), board.clone(), stopped.clone());
                move || crate::monitor::run(serving.clone(), m.clone(), board.clone(), stopped.clone())
            })
        }
        None => tokio::spawn(async {}),
    };
    let boards = crate::http::Boards { reloader, tasks, upstream: upstream_board, alerts: board };
    let state = AppState::new(serving.clone(), boards, config.tokens, config.body_limit, stopped.clone())
        .with_releases(config.releases)
        .with_max_subscribers(config.max_subscribers)
        .with_approval(config.require_approval)
        .with_max_concurrent_requests(config.max_concurrent_requests)
        .with_rate_limits(config.rate_limit, config.admin_rate_limit);
    let peer_addresses = state.uses_peer_addresses();
    let router = app(state, config.request_timeout, &config.cors_origins);
    // The signal also ends event streams, so graceful shutdown does not wait on them.
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    };
    let limits = crate::http::listen::Limits {
        header_read_timeout: config.header_read_timeout,
        max_connections: config.max_connections,
        peer_addresses,
    };
    crate::http::listen::serve(listener, router, limits, graceful).await;
    let _ =
        tokio::join!(watcher, poller, notifications, flusher, reports, monitor, links, notifier, upstream, schedules);
    Ok(ExitCode::SUCCESS)
}

/// Writes last-evaluated times in batches (never a write per request), and once more at shutdown.
async fn flush_evaluated(serving: Arc<Serving>, every: Duration, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let mut flushed = std::collections::HashMap::new();
    let mut tick = tokio::time::interval(every);
    loop {
        let last = tokio::select! {
            _ = stopped.changed() => true,
            _ = tick.tick() => false,
        };
        let batch = serving.evaluated_since(&flushed);
        if !batch.is_empty() {
            match serving.store.touch_evaluated(&batch).await {
                Ok(()) => flushed.extend(batch),
                Err(e) => tracing::warn!("could not record last-evaluated times: {e}"),
            }
        }
        if last {
            return;
        }
    }
}

/// SIGTERM or Ctrl-C. The handlers are installed when this is called (before the address is
/// printed), so a signal sent as soon as the server says it listens is never missed.
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        async move {
            let next = |s: &mut Option<tokio::signal::unix::Signal>| {
                let s = s.take();
                async move {
                    match s {
                        Some(mut s) => {
                            s.recv().await;
                        }
                        None => std::future::pending().await,
                    }
                }
            };
            tokio::select! {
                () = next(&mut term) => {},
                () = next(&mut int) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `toggled lint`: stale flags from the flag file and the store.
async fn lint(file: &Path, database: &str, service: Option<&str>) -> anyhow::Result<ExitCode> {
    let text = read_flag_file(file)?;
    let snapshot = flags::compile(&text).map_err(|e| anyhow!("{}", e.render(&file.display().to_string())))?;
    let store = crate::store::open_existing(database)
        .await
        .with_context(|| format!("cannot open the store {}", crate::config::redacted(database)))?;
    let releases = store.release_summaries(crate::store::ReleasePage::default()).await?;
    let deployed = crate::reports::deployed_versions(&releases);
    let state = store.load().await?;
    let last = store.last_evaluated().await?;
    let stale =
        crate::release::quality::stale_flags(&snapshot, &deployed, service, &last, &state.first_seen, Utc::now());
    if stale.is_empty() {
        println!("{}: no stale flags", file.display());
        return Ok(ExitCode::SUCCESS);
    }
    for s in &stale {
        println!("{}: {}: {}", file.display(), s.flag, s.reasons.join("; "));
    }
    Ok(ExitCode::FAILURE)
}

/// What `toggled release --server` sends.
struct Registration<'a> {
    service: &'a str,
    version: &'a str,
    commits: &'a [crate::release::CommitInput],
}

/// Registers a cut release with a running toggled (`POST /releases`); the release as stored.
fn register(server: &str, token: &str, r: &Registration<'_>) -> anyhow::Result<serde_json::Value> {
    let url = format!("{}/releases", server.trim_end_matches('/'));
    let commits: Vec<serde_json::Value> =
        r.commits.iter().map(|c| serde_json::json!({"message": c.message, "sha": c.sha})).collect();
    let body = serde_json::json!({"service": r.service, "version": r.version, "commits": commits});
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async {
        let client = crate::outbound::client().timeout(Duration::from_secs(30)).build().context("HTTP client")?;
        let response =
            client.post(&url).bearer_auth(token).json(&body).send().await.with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let answer: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
        if status.is_success() {
            Ok(serde_json::json!({"id": answer["id"], "status": answer["status"], "type": answer["type"]}))
        } else {
            let code = answer["error"]["code"].as_str().unwrap_or("error");
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            Err(anyhow!("{url} answered {status}: {code}: {message}"))
        }
    })
}
