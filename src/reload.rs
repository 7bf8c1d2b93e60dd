//! Task: watch the flag file's directory -> read -> compile -> publish; the last good file keeps
//! serving when a new one is invalid.
//!
//! The parent directory is watched, not the file: editors write a temporary file and rename it
//! over the original, Kubernetes swaps a `..data` symlink, and some tools delete and recreate.
//! Every event that names the file, a `..`-prefixed ConfigMap entry, or asks for a rescan
//! triggers a reload; a reload whose content hash is unchanged is a no-op. A slow periodic
//! re-check covers filesystems that send no events, and `SIGHUP` forces a reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use tokio::sync::mpsc;

use crate::serving::Serving;

/// Whether a filesystem event path concerns the flag file.
fn concerns(event_path: &Path, file_name: &std::ffi::OsStr) -> bool {
    event_path.file_name().is_some_and(|n| n == file_name || n.to_string_lossy().starts_with(".."))
}

/// A registered watch on the flag file's directory. Created before the first load, so no change
/// can fall between reading the file and watching it.
pub struct Watcher {
    serving: Arc<Serving>,
    events: mpsc::UnboundedReceiver<()>,
    _debouncer: Box<dyn std::any::Any + Send>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").field("flags", &self.serving.flags_path()).finish_non_exhaustive()
    }
}

impl Watcher {
    /// Starts watching. Fails only if the OS watcher cannot be set up.
    pub fn start(serving: Arc<Serving>, debounce: Duration) -> anyhow::Result<Self> {
        let path: PathBuf = serving.flags_path().to_path_buf();
        let absolute = std::path::absolute(&path).with_context(|| format!("cannot resolve {}", path.display()))?;
        let dir = absolute.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let file_name = absolute.file_name().map(ToOwned::to_owned).unwrap_or_default();
        let (tx, events) = mpsc::unbounded_channel::<()>();
        let mut debouncer = new_debouncer(debounce, None, move |result: DebounceEventResult| match result {
            Ok(events) => {
                for e in &events {
                    tracing::debug!(kind = ?e.kind, paths = ?e.paths, "file event");
                }
                let relevant =
                    events.iter().any(|e| e.need_rescan() || e.paths.iter().any(|p| concerns(p, &file_name)));
                if relevant {
                    let _ = tx.send(());
                }
            }
            Err(errors) => {
                for e in errors {
                    tracing::warn!("file watcher: {e}");
                }
                let _ = tx.send(());
            }
        })
        .context("cannot start the file watcher")?;
        debouncer
            .watch(&dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch {}", dir.display()))?;
        tracing::info!(dir = %dir.display(), "watching the flag file's directory");
        Ok(Self { serving, events, _debouncer: Box::new(debouncer) })
    }

    /// Reloads on file events, every `recheck`, and on `SIGHUP`, until `shutdown` fires.
    pub async fn run(self, recheck: Duration, shutdown: tokio::sync::watch::Receiver<bool>) {
        let serving = self.serving.clone();
        run_loop(serving, Some(self), recheck, shutdown).await;
    }
}

/// Without a file watcher: re-check periodically and on `SIGHUP` only.
pub async fn poll_only(serving: Arc<Serving>, recheck: Duration, shutdown: tokio::sync::watch::Receiver<bool>) {
    run_loop(serving, None, recheck, shutdown).await;
}

async fn next_event(watcher: &mut Option<Watcher>) -> Option<()> {
    match watcher {
        Some(w) => {
            let got = w.events.recv().await;
            while w.events.try_recv().is_ok() {}
            got
        }
        None => std::future::pending().await,
    }
}

async fn run_loop(
    serving: Arc<Serving>,
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
            Some(()) = next_event(&mut watcher) => { serving.reload("watch").await; }
            _ = recheck.tick() => { serving.reload("recheck").await; }
            Some(()) = next_hangup(&mut hangup) => { serving.reload("sighup").await; }
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
