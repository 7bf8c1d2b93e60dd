//! Task: watch the flag file's directory -> read -> compile -> publish; the last good file keeps
//! serving when a new one is invalid.
//!
//! The parent directory is watched, not the file: editors write a temporary file and rename it
//! over the original, Kubernetes swaps a `..data` symlink, and some tools delete and recreate.
//! Only events that can change the content trigger a reload — create, a data or name change,
//! remove — and only when they name the file, a `..`-prefixed ConfigMap entry, or ask for a
//! rescan. Reads never do (inotify reports every open and close, including the reload's own
//! read of the file: reacting to those made an idle server reload itself in a loop). A reload
//! whose content hash is unchanged is a no-op. A slow periodic
//! re-check covers filesystems that send no events, and `SIGHUP` forces a reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode};
use tokio::sync::mpsc;

use chrono::Utc;

use arc_swap::ArcSwap;
use chrono::DateTime;
use serde::Serialize;

use crate::flags::{self, CompileError, compile::MAX_FILE_BYTES};
use crate::serving::Serving;

/// The outcome of the last real reload (a new file applied, or new content rejected), shown
/// on `/ready` and `/flags`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReloadStatus {
    pub ok: bool,
    pub at: DateTime<Utc>,
    pub trigger: String,
    /// The revision being served.
    pub revision: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<CompileError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Loads the flag file into the served state: one per process, shared by the watcher, the
/// periodic re-check, `SIGHUP`, `POST /reload` and Edge mode.
#[derive(Debug)]
pub struct Reloader {
    serving: Arc<Serving>,
    path: PathBuf,
    status: ArcSwap<ReloadStatus>,
    /// Serialises reloads (read, compile, install) and remembers the revision of the last
    /// rejected content, so the same broken file is reported once.
    last_rejected: tokio::sync::Mutex<Option<String>>,
}

impl Reloader {
    /// Nothing loaded yet: `/ready` says so until the first reload.
    pub fn new(serving: Arc<Serving>, path: PathBuf) -> Self {
        let status = ReloadStatus {
            ok: false,
            at: Utc::now(),
            trigger: "startup".to_owned(),
            revision: None,
            errors: Vec::new(),
            message: Some("no flag file loaded yet".to_owned()),
        };
        Self { serving, path, status: ArcSwap::from_pointee(status), last_rejected: tokio::sync::Mutex::new(None) }
    }

    /// The outcome of the last real reload.
    pub fn status(&self) -> Arc<ReloadStatus> {
        self.status.load_full()
    }

    /// The flag file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state it loads into.
    pub fn serving(&self) -> &Arc<Serving> {
        &self.serving
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq)]
pub enum ReloadOutcome {
    Applied { revision: String },
    Unchanged { revision: String },
    Rejected { errors: Vec<CompileError>, message: String },
}

impl ReloadOutcome {
    pub fn label(&self) -> &'static str {
        match self {
            ReloadOutcome::Applied { .. } => "applied",
            ReloadOutcome::Unchanged { .. } => "unchanged",
            ReloadOutcome::Rejected { .. } => "rejected",
        }
    }
}

/// Reads a flag file as UTF-8 text, refusing files over the size limit. A missing file says
/// what to do about it.
pub fn read_flag_file(path: &Path) -> anyhow::Result<String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "flag file {} does not exist: create it (or point --flags / TOGGLED_FLAGS at one); it is picked up when it appears",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("failed to read flag file {}", path.display())),
    };
    if meta.len() > MAX_FILE_BYTES as u64 {
        anyhow::bail!("flag file {} is {} bytes; the limit is {MAX_FILE_BYTES}", path.display(), meta.len());
    }
    std::fs::read_to_string(path).with_context(|| format!("failed to read flag file {}", path.display()))
}

/// Refuses to serve a flag file whose directory does not exist: nothing could ever appear there
/// to be watched.
pub fn check_directory(path: &Path) -> anyhow::Result<()> {
    let absolute = std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    let dir = absolute.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        anyhow::bail!(
            "the flag file's directory {} does not exist: create it, or point --flags (TOGGLED_FLAGS) at a file in an existing directory",
            dir.display()
        );
    }
    Ok(())
}

/// Reads, validates and (if it changed) swaps in the flag file. An invalid or unreadable file
/// never replaces the one being served. Content already served, or already rejected, is not
/// reported again: `/ready`'s `last_reload` and the logs change only on a real reload.
pub async fn reload(reloader: &Reloader, trigger: &str) -> ReloadOutcome {
    let serving = &*reloader.serving;
    let mut last_rejected = reloader.last_rejected.lock().await;
    let path = reloader.path.clone();
    let current = serving.load_full();
    let read = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || read_flag_file(&path).map(|text| (flags::revision_of(&text), text)))
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("reading the flag file failed: {e}")))
    };
    // What identifies this content: its hash, or the read error.
    let (identity, text) = match read {
        Ok((revision, text)) => (revision, Some(text)),
        Err(e) => (format!("{e:#}"), None),
    };
    if current.ready && current.snapshot.revision == identity {
        let outcome = ReloadOutcome::Unchanged { revision: identity };
        if last_rejected.take().is_some() {
            // The file is back to what is served: the rejection shown on `/ready` is over.
            tracing::info!(trigger, "the flag file is valid again (the content being served)");
            record(reloader, trigger, &outcome);
        }
        return counted(serving, outcome);
    }
    if last_rejected.as_deref() == Some(identity.as_str()) {
        let status = reloader.status();
        tracing::debug!(trigger, "the flag file is still the rejected one");
        let outcome = ReloadOutcome::Rejected {
            errors: status.errors.clone(),
            message: status.message.clone().unwrap_or_default(),
        };
        return counted(serving, outcome);
    }
    let consequence =
        if current.ready { "still serving the last good file" } else { "no flags are served until it is valid" };
    let compiled = match text {
        None => Err((Vec::new(), format!("{identity}; {consequence}"))),
        // Compiled off the async workers, with what Unleash's SDKs will be served differently
        // (a projection of every flag: tens of milliseconds for 10,000 flags).
        Some(text) => match tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            flags::compile(&text).map(|snapshot| {
                let took = started.elapsed();
                let notes = crate::export::unleash::notes(&snapshot, Utc::now());
                (snapshot, took, notes)
            })
        })
        .await
        {
            Ok(Ok(compiled)) => Ok(compiled),
            Ok(Err(e)) => {
                let message = format!("{} error(s) in {}; {consequence}", e.0.len(), path.display());
                Err((e.0, message))
            }
            Err(e) => Err((Vec::new(), format!("compiling the flag file failed: {e}; {consequence}"))),
        },
    };
    let outcome = match compiled {
        Ok((snapshot, took, notes)) => {
            *last_rejected = None;
            let revision = snapshot.revision.clone();
            let old: std::collections::BTreeSet<&str> = current.snapshot.flags.iter().map(|f| f.key.as_str()).collect();
            let new: std::collections::BTreeSet<&str> = snapshot.flags.iter().map(|f| f.key.as_str()).collect();
            let change = serde_json::json!({
                "revision": revision,
                "added": new.difference(&old).collect::<Vec<_>>(),
                "removed": old.difference(&new).collect::<Vec<_>>(),
            });
            let before = current.ready.then(|| serde_json::json!({"revision": current.snapshot.revision}));
            let audit = crate::store::Change {
                flag: "*".to_owned(),
                actor: format!("reload:{trigger}"),
                reason: format!("flag file {}", path.display()),
                at: Utc::now(),
                action: crate::store::Action::Reload(serde_json::json!({"before": before, "after": change})),
            };
            let flags = snapshot.flags.len();
            for (flag, what) in notes {
                tracing::info!(flag = %flag, "served to Unleash's SDKs with a difference: {what}");
            }
            crate::changes::install(serving, snapshot, audit).await;
            serving.publish(
                crate::events::EventKind::Reload,
                None,
                serde_json::json!({"trigger": trigger, "change": change}),
            );
            let compile_ms = took.as_secs_f64() * 1000.0;
            tracing::info!(revision = %revision, flags, trigger, compile_ms, "flag file loaded");
            ReloadOutcome::Applied { revision }
        }
        Err((errors, message)) => {
            *last_rejected = Some(identity);
            for e in &errors {
                tracing::error!(file = %path.display(), line = e.line, column = e.column, path = %e.path, "{}", e.message);
            }
            tracing::error!(trigger, "{message}");
            ReloadOutcome::Rejected { errors, message }
        }
    };
    record(reloader, trigger, &outcome);
    counted(serving, outcome)
}

/// Shows a real reload on `/ready` and `/flags`.
fn record(reloader: &Reloader, trigger: &str, outcome: &ReloadOutcome) {
    let served = reloader.serving.load();
    let (errors, message) = match outcome {
        ReloadOutcome::Rejected { errors, message } => (errors.clone(), Some(message.clone())),
        _ => (Vec::new(), None),
    };
    reloader.status.store(Arc::new(ReloadStatus {
        ok: message.is_none(),
        at: Utc::now(),
        trigger: trigger.to_owned(),
        revision: served.ready.then(|| served.snapshot.revision.clone()),
        errors,
        message,
    }));
}

fn counted(serving: &Serving, outcome: ReloadOutcome) -> ReloadOutcome {
    serving.metrics.count_reload(outcome.label());
    outcome
}

/// Whether a filesystem event path concerns the flag file.
fn concerns(event_path: &Path, file_name: &std::ffi::OsStr) -> bool {
    event_path.file_name().is_some_and(|n| n == file_name || n.to_string_lossy().starts_with(".."))
}

/// Whether an event of this kind can change what the file holds. Opens, reads, closes without
/// writing and metadata changes (`touch`, `chmod`) cannot; closing after a write can.
fn can_change_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any | EventKind::Other => true,
    }
}

/// Whether a file event asks for a reload.
fn relevant(e: &notify::Event, file_name: &std::ffi::OsStr) -> bool {
    e.need_rescan() || (can_change_content(&e.kind) && e.paths.iter().any(|p| concerns(p, file_name)))
}

/// A registered watch on the flag file's directory. Created before the first load, so no change
/// can fall between reading the file and watching it.
///
/// Events are debounced here, in the reload task: after a relevant event, the reload waits until
/// `debounce` has passed without another. (A debouncing thread that ticks every quarter of the
/// quiet time woke an idle server 200 times a second.) Nothing runs while no file changes.
pub struct Watcher {
    reloader: Arc<Reloader>,
    events: mpsc::UnboundedReceiver<()>,
    debounce: Duration,
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").field("flags", &self.reloader.path()).finish_non_exhaustive()
    }
}

impl Watcher {
    /// Starts watching. Fails only if the OS watcher cannot be set up.
    pub fn start(reloader: Arc<Reloader>, debounce: Duration) -> anyhow::Result<Self> {
        let path: PathBuf = reloader.path().to_path_buf();
        let absolute = std::path::absolute(&path).with_context(|| format!("cannot resolve {}", path.display()))?;
        let dir = absolute.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let file_name = absolute.file_name().map(ToOwned::to_owned).unwrap_or_default();
        let (tx, events) = mpsc::unbounded_channel::<()>();
        let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| match result {
            Ok(e) => {
                tracing::debug!(kind = ?e.kind, paths = ?e.paths, "file event");
                if relevant(&e, &file_name) {
                    let _ = tx.send(());
                }
            }
            Err(e) => {
                tracing::warn!("file watcher: {e}");
                let _ = tx.send(());
            }
        })
        .context("cannot start the file watcher")?;
        notify::Watcher::watch(&mut watcher, &dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch {}", dir.display()))?;
        tracing::info!(dir = %dir.display(), "watching the flag file's directory");
        Ok(Self { reloader, events, debounce, _watcher: watcher })
    }

    /// Reloads on file events, every `recheck`, and on `SIGHUP`, until `shutdown` fires.
    pub async fn run(self, recheck: Duration, shutdown: tokio::sync::watch::Receiver<bool>) {
        let reloader = self.reloader.clone();
        run_loop(reloader, Some(self), recheck, shutdown).await;
    }
}

/// Without a file watcher: re-check periodically and on `SIGHUP` only.
pub async fn poll_only(reloader: Arc<Reloader>, recheck: Duration, shutdown: tokio::sync::watch::Receiver<bool>) {
    run_loop(reloader, None, recheck, shutdown).await;
}

/// The next relevant file change, once `debounce` has passed without another. (If another
/// branch of the reload loop wins meanwhile, the change is not lost: that branch reloads too, or
/// the server is stopping.)
async fn next_event(watcher: &mut Option<Watcher>) -> Option<()> {
    match watcher {
        Some(w) => {
            let got = w.events.recv().await;
            while let Ok(Some(())) = tokio::time::timeout(w.debounce, w.events.recv()).await {}
            got
        }
        None => std::future::pending().await,
    }
}

async fn run_loop(
    reloader: Arc<Reloader>,
    mut watcher: Option<Watcher>,
    recheck: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut recheck = tokio::time::interval(recheck);
    recheck.tick().await;
    let mut hangup = hangup_signal();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(()) = next_event(&mut watcher) => { reload(&reloader, "watch").await; }
            _ = recheck.tick() => { reload(&reloader, "recheck").await; }
            Some(()) = next_hangup(&mut hangup) => { reload(&reloader, "sighup").await; }
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

#[cfg(unix)]
async fn next_hangup(signal: &mut Hangup) -> Option<()> {
    match signal {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangup) -> Option<()> {
    std::future::pending().await
}
