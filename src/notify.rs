//! Cross-team notifications (`--notify-url`): every audited change — release planned, approved,
//! status changed, refused for conflicts, rollback recommended, reminded; flag override set or
//! cleared, rolled back, paused, resumed; flag file reloaded — is POSTed to each URL as
//! `{id, type, at, actor, subject, detail}` (or Slack's `{"text"}`), signed
//! `X-Signature-256: sha256=<hex HMAC-SHA256 of the body>` when a secret is set.
//!
//! The audit log is the outbox: a change and its audit row commit in one transaction, and each
//! URL keeps a cursor in the store (the last row it acknowledged with a 2xx). Delivery is at
//! least once, in order, retried with exponential backoff (1 s doubling to 5 min), and survives
//! restarts; `id` is the audit row's, the same on every retry, for de-duplication. A URL seen for
//! the first time starts at the newest row (no flood of history).
//!
//! Scheduled releases are reminded one week and three days before `scheduled_at` (the
//! standards' communication plan): a `release_reminder` audit row, so it is delivered the same way.
//!
//! Replicas sharing a store take turns through a lease in the store (`notify`, 3 s, taken or
//! renewed by a pass that has something to deliver): one replica delivers at a time, another
//! takes over within the lease when it stops, and each pass reads every URL's cursor from the
//! store, so it resumes where the last holder stopped. An idle server only reads (two queries per
//! URL and interval) and writes the lease once a minute for the reminder check. A pass that
//! outlives the lease may be repeated by the next holder (at least once).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use crate::metrics::{Metrics, OutcomeLabels};
use crate::store::{AuditAction, AuditEntry, HealthBoard, Store, StoreError};

/// Where and how to notify.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub urls: Vec<String>,
    pub secret: Option<String>,
    pub format: NotifyFormat,
    /// How often the outbox is read (default 1 s).
    pub interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NotifyFormat {
    Json,
    Slack,
}

const MAX_BACKOFF: Duration = Duration::from_secs(300);
const REMINDER_EVERY: Duration = Duration::from_secs(60);
/// Days before `scheduled_at` at which a release is reminded, latest first.
const REMINDERS: [i64; 2] = [3, 7];

/// The event type of an audit row's action; `None` for rows that are not notified.
fn event_type(action: &str) -> Option<&'static str> {
    use AuditAction as A;
    Some(match AuditAction::from(action) {
        A::ReleasePlanned => "release.planned",
        A::ReleaseApproved => "release.approved",
        A::ReleaseTestReported => "release.test_reported",
        A::ReleaseStatus => "release.status_changed",
        A::ReleaseConflict => "release.conflict",
        A::ReleaseRollbackRecommended => "release.rollback_recommended",
        A::ReleaseReminder => "release.reminder",
        A::OverrideSet => "flag.override_set",
        A::OverrideCleared => "flag.override_cleared",
        A::AutoRollback => "flag.rolled_back",
        A::RolloutPaused => "flag.paused",
        A::RolloutResumed => "flag.resumed",
        A::Reload => "flag_file.reloaded",
        A::AlertTeam => "flag.alert",
        A::ChangeScheduled => "flag.change_scheduled",
        A::ScheduleCancelled => "flag.schedule_cancelled",
        A::ChangeRequested => "flag.change_requested",
        A::ChangeApproved => "flag.change_approved",
        A::ChangeRejected => "flag.change_rejected",
        A::Other(_) => return None,
    })
}

/// The event for an audit row of store `store_id`, if it is one that is notified. Its id
/// carries the store's id: a store created anew never repeats an id a receiver has seen.
pub fn event(store_id: &str, row: &AuditEntry) -> Option<Value> {
    let a = &row.entry;
    Some(json!({
        "id": format!("toggled-{store_id}-{}", row.id),
        "type": event_type(&a.action)?,
        "at": a.at,
        "actor": a.actor,
        "subject": a.flag,
        "detail": {"reason": a.reason, "before": a.before, "after": a.after},
    }))
}

/// Text for a Slack message: `&`, `<` and `>` escaped as Slack asks, so a reason cannot
/// mention `<!channel>` or smuggle a link (`<https://x|text>`).
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The bytes sent for an event in `format`.
pub fn body(event: &Value, format: NotifyFormat) -> Vec<u8> {
    let value = match format {
        NotifyFormat::Json => event.clone(),
        NotifyFormat::Slack => {
            let field = |v: &Value| slack_escape(v.as_str().unwrap_or_default());
            let text = format!(
                "[toggled] {} {} by {}: {}",
                field(&event["type"]),
                field(&event["subject"]),
                field(&event["actor"]),
                field(&event["detail"]["reason"])
            );
            json!({"text": text})
        }
    };
    serde_json::to_vec(&value).expect("JSON values serialise")
}

/// One URL's retry state (its cursor lives in the store, read on every pass, so whichever
/// replica holds the lease resumes where the last one stopped).
struct Destination {
    url: String,
    failures: u32,
    retry_at: tokio::time::Instant,
}

impl Destination {
    fn failed(&mut self, what: &str) {
        self.failures = self.failures.saturating_add(1);
        let backoff = Duration::from_secs(1u64 << self.failures.min(9).saturating_sub(1)).min(MAX_BACKOFF);
        self.retry_at = tokio::time::Instant::now() + backoff;
        tracing::warn!(url = %crate::outbound::redact(&self.url), failures = self.failures, retry_in = ?backoff, "notification not delivered: {what}");
    }
}

/// Takes or renews the delivery lease; logs when this replica starts or stops delivering.
struct Lease {
    holder: String,
    ttl: chrono::Duration,
    held: bool,
}

impl Lease {
    async fn take(&mut self, store: &dyn Store) -> bool {
        let held = store.try_lease("notify", &self.holder, Utc::now(), self.ttl).await.unwrap_or_else(|e| {
            tracing::warn!("could not take the notification lease: {e}");
            false
        });
        if held != self.held {
            let what = if held { "taken over" } else { "left to another replica" };
            tracing::info!(holder = %self.holder, "notification delivery {what}");
            self.held = held;
        }
        held
    }
}

/// The supervised delivery loop. An idle pass only reads (each URL's cursor and what follows
/// it); the lease is taken when there is something to deliver, and once a minute for reminders.
/// It uses the store, the delivery counter and the store's identity (events carry it).
pub async fn run(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    health: HealthBoard,
    config: Arc<NotifyConfig>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let store = store.as_ref();
    let client = crate::outbound::client()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client with default TLS settings builds");
    let now = tokio::time::Instant::now();
    let mut destinations: Vec<Destination> =
        config.urls.iter().map(|url| Destination { url: url.clone(), failures: 0, retry_at: now }).collect();
    let mut next_reminders = now;
    let mut lease = Lease {
        holder: format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
        ),
        ttl: chrono::Duration::from_std(config.interval.saturating_mul(3).max(Duration::from_secs(3)))
            .unwrap_or(chrono::Duration::seconds(3)),
        held: false,
    };
    loop {
        if tokio::time::Instant::now() >= next_reminders {
            next_reminders = tokio::time::Instant::now() + REMINDER_EVERY;
            if lease.take(store).await
                && let Err(e) = remind(store).await
            {
                tracing::warn!("could not check release reminders: {e}");
                next_reminders = tokio::time::Instant::now();
            }
        }
        // What each due URL has pending (reads only).
        let mut work = Vec::new();
        for d in &mut destinations {
            if tokio::time::Instant::now() < d.retry_at {
                continue;
            }
            let pending = match start_cursor(store, &d.url).await {
                Ok(cursor) => store.audit_after(cursor, 100).await,
                Err(e) => Err(e),
            };
            match pending {
                Ok(rows) if rows.is_empty() => {}
                Ok(rows) => work.push((d, rows)),
                Err(e) => d.failed(&format!("store: {e}")),
            }
        }
        // Every URL is delivered to at once (one that never answers delays only itself), and
        // the lease is renewed while they run, however long that takes.
        if !work.is_empty() && lease.take(store).await {
            let store_id = health.get().id.unwrap_or_default();
            let out = Outbound { store, metrics: &metrics, client: &client, config: &config, store_id: &store_id };
            let deliveries = futures_util::future::join_all(work.into_iter().map(|(d, rows)| deliver(&out, d, rows)));
            let mut deliveries = std::pin::pin!(deliveries);
            let renew_every = lease.ttl.to_std().unwrap_or(Duration::from_secs(3)) / 3;
            let released = loop {
                tokio::select! {
                    released = &mut deliveries => break released,
                    () = tokio::time::sleep(renew_every) => {
                        lease.take(store).await;
                    }
                }
            };
            // A release was planned or changed: its reminders may be due now, not in a minute.
            if released.into_iter().any(|r| r) {
                next_reminders = tokio::time::Instant::now();
            }
        }
        tokio::select! {
            _ = stopped.changed() => return,
            () = tokio::time::sleep(config.interval) => {}
        }
    }
}

/// Sets the cursor of every URL seen for the first time to the newest audit row, before the
/// server takes requests (so no change made after start is skipped).
pub async fn init_cursors(store: &dyn Store, config: &NotifyConfig) -> Result<(), StoreError> {
    for url in &config.urls {
        start_cursor(store, url).await?;
    }
    Ok(())
}

/// What one pass of deliveries uses.
struct Outbound<'a> {
    store: &'a dyn Store,
    metrics: &'a Metrics,
    client: &'a reqwest::Client,
    config: &'a NotifyConfig,
    store_id: &'a str,
}

/// Delivers `rows` (what follows the URL's cursor) in order, moving the cursor past each, until
/// a failure (then backs off). Whether a release row went by.
async fn deliver(out: &Outbound<'_>, d: &mut Destination, rows: Vec<AuditEntry>) -> bool {
    let mut releases = false;
    for row in rows {
        releases |= row.entry.flag.starts_with("release:");
        if let Some(event) = event(out.store_id, &row) {
            let bytes = body(&event, out.config.format);
            let mut request = out.client.post(&d.url).header("content-type", "application/json");
            if let Some(secret) = &out.config.secret {
                request = request.header("X-Signature-256", crate::monitor::signature(secret, &bytes));
            }
            let outcome = match request.body(bytes).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("HTTP {}", r.status())),
                Err(e) => Err(crate::outbound::error_text(e)),
            };
            let label = if outcome.is_ok() { "delivered" } else { "failed" };
            out.metrics.notifications.get_or_create(&OutcomeLabels { outcome: label.to_owned() }).inc();
            if let Err(what) = outcome {
                d.failed(&what);
                return releases;
            }
        }
        if let Err(e) = out.store.set_notify_cursor(&d.url, row.id).await {
            d.failed(&format!("store: {e}"));
            return releases;
        }
        d.failures = 0;
    }
    releases
}

/// Where a URL resumes: its stored cursor, or (first time) the newest audit row.
async fn start_cursor(store: &dyn Store, url: &str) -> Result<i64, StoreError> {
    if let Some(c) = store.notify_cursor(url).await? {
        return Ok(c);
    }
    let last = store.last_audit_id().await?;
    store.set_notify_cursor(url, last).await?;
    Ok(last)
}

/// Writes a `release_reminder` for each planned or scheduled release whose reminder day has
/// come (one per threshold, the nearest if several passed at once).
async fn remind(store: &dyn Store) -> Result<(), StoreError> {
    let now = Utc::now();
    for summary in store.release_summaries(crate::store::ReleasePage::default()).await? {
        let Some(at) = summary.scheduled_at else { continue };
        if !summary.status.is_upcoming() || at <= now {
            continue;
        }
        // Only a release that may be due is read whole.
        let Some(mut r) = store.release(summary.id).await? else { continue };
        let sent = r.data.reminders_sent.clone();
        let due: Vec<i64> = REMINDERS
            .iter()
            .copied()
            .filter(|days| !sent.contains(days))
            .filter(|days| at.checked_sub_signed(chrono::Duration::days(*days)).is_some_and(|when| now >= when))
            .collect();
        let Some(nearest) = due.first().copied() else { continue };
        let mut all = sent;
        all.extend(&due);
        r.data.reminders_sent = all;
        let hours = at.signed_duration_since(now).num_hours();
        let reason = format!(
            "{} {} is scheduled for {} (in {hours} h; the {nearest}-day reminder)",
            r.service,
            r.version,
            at.to_rfc3339()
        );
        let status = r.status.clone();
        crate::releasing::update(store, &r, &status, "toggled", AuditAction::ReleaseReminder, reason).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewAudit;

    fn row(action: &str) -> AuditEntry {
        AuditEntry {
            id: 42,
            entry: NewAudit {
                at: chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
                actor: "ops".into(),
                flag: "checkout".into(),
                action: action.into(),
                before: None,
                after: Some(json!({"kind": "kill"})),
                reason: "incident 7".into(),
            },
        }
    }

    #[test]
    fn audit_rows_become_events_with_a_stable_id() {
        let e = event("5f0c", &row("override_set")).expect("notified");
        assert_eq!(e["id"], "toggled-5f0c-42");
        assert_eq!(e["type"], "flag.override_set");
        assert_eq!(e["subject"], "checkout");
        assert_eq!(e["detail"]["reason"], "incident 7");
        assert!(event("5f0c", &row("something_else")).is_none());
        let slack: Value = serde_json::from_slice(&body(&e, NotifyFormat::Slack)).expect("JSON");
        assert_eq!(slack, json!({"text": "[toggled] flag.override_set checkout by ops: incident 7"}));
        let mut loud = row("override_set");
        loud.entry.reason = "<!channel> see <https://evil.example|the fix> & more".into();
        let slack: Value =
            serde_json::from_slice(&body(&event("5f0c", &loud).expect("notified"), NotifyFormat::Slack)).expect("JSON");
        assert_eq!(
            slack["text"],
            "[toggled] flag.override_set checkout by ops: &lt;!channel&gt; see &lt;https://evil.example|the fix&gt; &amp; more"
        );
    }
}
