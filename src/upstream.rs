//! Edge mode (`toggled serve --upstream URL --upstream-token T`): the served flags follow a
//! server that speaks Unleash's client API (an Unleash server, Unleash Edge, another toggled)
//! instead of a file an operator edits.
//!
//! Every interval the upstream's `GET /api/client/features` is polled with `If-None-Match`; a new
//! document goes through the Unleash importer ([`crate::import::unleash`]) and, if the result
//! loads, is written atomically, as JSON, to the flag file (`--flags`, which is the backup: a restart
//! serves it before the upstream answers), then reloaded through the one path every file change
//! takes (validation, audit, events, metrics). Until then the last good flags stay served: an
//! upstream that is down, answers an error, or answers something that does not translate or
//! load changes nothing but `/ready`'s `upstream` and `toggled_upstream_up`. A change is applied
//! once it is persisted. What the importer cannot express is logged and shown on `/ready`.
//!
//! SDK reports (metrics and registrations, from server and frontend SDKs) are queued (at most
//! [`OUTBOX_LIMIT`], the oldest dropped first) and forwarded to the upstream's
//! `/api/client/metrics` and `/api/client/register` in a batch after each poll.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use serde::Serialize;

use crate::reload::Reloader;

/// SDK reports kept for the upstream while it is unreachable.
pub const OUTBOX_LIMIT: usize = 10_000;
/// Reports sent per poll.
const BATCH: usize = 1_000;
/// The largest document taken from the upstream.
const MAX_DOCUMENT: usize = 64 << 20;

/// Where the flags come from in Edge mode.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The upstream's base URL (`https://unleash.example.com/api` or `http://edge:3063`): the
    /// client API is at `{base}/api/client/...` unless `base` already ends in `/api`.
    pub url: String,
    pub token: String,
    pub interval: Duration,
}

impl UpstreamConfig {
    fn endpoint(&self, path: &str) -> String {
        let base = self.url.trim_end_matches('/');
        if base.ends_with("/api") { format!("{base}/{path}") } else { format!("{base}/api/{path}") }
    }
}

/// What an SDK reported, to forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    Metrics,
    Registration,
}

impl ReportKind {
    fn path(self) -> &'static str {
        match self {
            ReportKind::Metrics => "client/metrics",
            ReportKind::Registration => "client/register",
        }
    }
}

/// The upstream's health as `/ready` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UpstreamStatus {
    pub url: String,
    pub up: bool,
    pub last_success: Option<DateTime<Utc>>,
    pub last_change: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// What the last document held that toggled cannot express (`flag: what`).
    pub untranslated: Vec<String>,
    pub queued_reports: usize,
}

/// Edge mode's state: the status and the reports waiting to be forwarded. Inert (nothing
/// queued, nothing shown) unless Edge mode is configured.
#[derive(Debug, Default)]
pub struct UpstreamBoard {
    configured: AtomicBool,
    status: std::sync::Mutex<Option<UpstreamStatus>>,
    outbox: std::sync::Mutex<VecDeque<(ReportKind, Bytes)>>,
}

impl UpstreamBoard {
    fn lock_status(&self) -> std::sync::MutexGuard<'_, Option<UpstreamStatus>> {
        self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_outbox(&self) -> std::sync::MutexGuard<'_, VecDeque<(ReportKind, Bytes)>> {
        self.outbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn configure(&self, url: &str) {
        self.configured.store(true, Ordering::Release);
        *self.lock_status() = Some(UpstreamStatus {
            url: crate::outbound::redact(url),
            up: false,
            last_success: None,
            last_change: None,
            error: Some("not polled yet".to_owned()),
            untranslated: Vec::new(),
            queued_reports: 0,
        });
    }

    /// The status, or `None` outside Edge mode.
    pub fn status(&self) -> Option<UpstreamStatus> {
        let queued = self.lock_outbox().len();
        self.lock_status().clone().map(|s| UpstreamStatus { queued_reports: queued, ..s })
    }

    /// Queues an SDK report for the upstream (Edge mode only); returns whether the oldest
    /// report had to be dropped to make room.
    pub fn forward(&self, kind: ReportKind, body: Bytes) -> bool {
        if !self.configured.load(Ordering::Acquire) {
            return false;
        }
        let mut outbox = self.lock_outbox();
        let dropped = outbox.len() >= OUTBOX_LIMIT && outbox.pop_front().is_some();
        outbox.push_back((kind, body));
        dropped
    }

    fn update(&self, f: impl FnOnce(&mut UpstreamStatus)) {
        if let Some(s) = self.lock_status().as_mut() {
            f(s);
        }
    }
}

/// One poll's result.
#[derive(Debug)]
enum Polled {
    Unchanged,
    Changed,
    Failed(String),
}

/// Polls the upstream and forwards reports every `interval` until `stopped`.
pub async fn run(
    reloader: Arc<Reloader>,
    board: Arc<UpstreamBoard>,
    config: UpstreamConfig,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    board.configure(&config.url);
    let metrics = &reloader.serving().metrics;
    let client = match crate::outbound::client().timeout(Duration::from_secs(30)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot build the upstream's HTTP client: {e}");
            return;
        }
    };
    let mut etag: Option<String> = None;
    loop {
        let polled = poll(&reloader, &board, &client, &config, &mut etag).await;
        let label = match &polled {
            Polled::Unchanged => "unchanged",
            Polled::Changed => "changed",
            Polled::Failed(_) => "failed",
        };
        metrics.upstream_polls.get_or_create(&crate::metrics::OutcomeLabels { outcome: label.to_owned() }).inc();
        match polled {
            Polled::Failed(why) => {
                metrics.upstream_up.set(0);
                let was_up = board.status().is_some_and(|s| s.up);
                if was_up {
                    tracing::warn!("upstream: {why}; still serving the last good flags");
                } else {
                    tracing::debug!("upstream: {why}");
                }
                board.update(|s| {
                    s.up = false;
                    s.error = Some(why);
                });
            }
            ok => {
                metrics.upstream_up.set(1);
                let now = Utc::now();
                board.update(|s| {
                    s.up = true;
                    s.error = None;
                    s.last_success = Some(now);
                    if matches!(ok, Polled::Changed) {
                        s.last_change = Some(now);
                    }
                });
                forward(&board, metrics, &client, &config).await;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(config.interval) => {}
            _ = stopped.changed() => {}
        }
        if *stopped.borrow() {
            return;
        }
    }
}

async fn poll(
    reloader: &Reloader,
    board: &UpstreamBoard,
    client: &reqwest::Client,
    config: &UpstreamConfig,
    etag: &mut Option<String>,
) -> Polled {
    let mut request = client
        .get(config.endpoint("client/features"))
        .header(AUTHORIZATION, &config.token)
        .header("UNLEASH-APPNAME", "toggled")
        .header("UNLEASH-SDK", concat!("toggled:", env!("CARGO_PKG_VERSION")));
    if let Some(tag) = etag.as_deref() {
        request = request.header(IF_NONE_MATCH, tag);
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return Polled::Failed(format!("unreachable: {}", crate::outbound::error_text(e))),
    };
    match response.status() {
        StatusCode::NOT_MODIFIED => return Polled::Unchanged,
        StatusCode::OK => {}
        other => return Polled::Failed(format!("answered {other}")),
    }
    let tag = response.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if response.content_length().is_some_and(|n| n > MAX_DOCUMENT as u64) {
        return Polled::Failed(format!("a document over {} MiB", MAX_DOCUMENT >> 20));
    }
    let body = match response.bytes().await {
        Ok(b) if b.len() <= MAX_DOCUMENT => b,
        Ok(_) => return Polled::Failed(format!("a document over {} MiB", MAX_DOCUMENT >> 20)),
        Err(e) => return Polled::Failed(format!("the answer broke off: {}", crate::outbound::error_text(e))),
    };
    match apply(reloader, board, &body).await {
        Ok(changed) => {
            // Only a document that was applied (or is already served) is not asked for again.
            *etag = tag;
            if changed { Polled::Changed } else { Polled::Unchanged }
        }
        Err(why) => Polled::Failed(why),
    }
}

/// Translates, checks, persists and reloads one document; `Ok(false)` when it is what is
/// served already.
async fn apply(reloader: &Reloader, board: &UpstreamBoard, body: &[u8]) -> Result<bool, String> {
    let text = std::str::from_utf8(body).map_err(|_| "an answer that is not UTF-8".to_owned())?;
    let translation =
        crate::import::unleash::translate(text).map_err(|e| format!("an answer toggled cannot read: {e}"))?;
    // Written as JSON: the backup is for the server to load (a 10,000-flag file compiles in ~40 ms
    // from JSON, ~200 from YAML), and it is checked off the async workers.
    let text = translation.json();
    let checked = text.clone();
    match tokio::task::spawn_blocking(move || crate::flags::compile(&checked).map(drop)).await {
        Ok(Ok(())) => {}
        Ok(Err(errors)) => {
            return Err(format!("a document whose translation does not load: {}", errors.render("upstream")));
        }
        Err(e) => return Err(format!("checking the translation failed: {e}")),
    }
    let untranslated: Vec<String> =
        translation.unsupported.iter().map(|(flag, what)| format!("{flag}: {what}")).collect();
    let revision = crate::flags::revision_of(&text);
    let served = reloader.serving().load_full();
    if served.ready && served.snapshot.revision == revision {
        board.update(|s| s.untranslated = untranslated);
        return Ok(false);
    }
    for item in &untranslated {
        tracing::warn!("upstream: left out: {item}");
    }
    persist(reloader.path(), text.into_bytes())
        .await
        .map_err(|e| format!("cannot write the backup {}: {e}", reloader.path().display()))?;
    match crate::reload::reload(reloader, "upstream").await {
        crate::reload::ReloadOutcome::Rejected { message, .. } => Err(message),
        _ => {
            board.update(|s| s.untranslated = untranslated);
            Ok(true)
        }
    }
}

/// Writes the flag file atomically: a temporary file beside it, synced, then renamed over it.
async fn persist(path: &std::path::Path, bytes: Vec<u8>) -> std::io::Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.upstream"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
}

/// Sends up to [`BATCH`] queued reports; stops at the first the upstream does not take, which
/// stays queued for the next poll.
async fn forward(
    board: &UpstreamBoard,
    metrics: &crate::metrics::Metrics,
    client: &reqwest::Client,
    config: &UpstreamConfig,
) {
    for _ in 0..BATCH {
        let Some((kind, body)) = board.lock_outbox().pop_front() else { return };
        let sent = client
            .post(config.endpoint(kind.path()))
            .header(AUTHORIZATION, &config.token)
            .header(CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        let outcome = match sent {
            Ok(r) if r.status().is_success() => "forwarded",
            Ok(r) if r.status().is_client_error() => {
                // The upstream refuses this report and always will: it is not kept.
                tracing::debug!("upstream refused a forwarded report: {}", r.status());
                "refused"
            }
            _ => {
                board.lock_outbox().push_front((kind, body));
                "failed"
            }
        };
        let labels = crate::metrics::OutcomeLabels { outcome: outcome.to_owned() };
        metrics.upstream_forwards.get_or_create(&labels).inc();
        if outcome == "failed" {
            return;
        }
    }
}
