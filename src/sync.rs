//! Keeps this replica in step with the store: wakes on the store's notifications (PostgreSQL's
//! `LISTEN`) and polls its change version every interval besides, so a lost notification delays
//! a change by at most one interval and never loses it. Tracks whether the store answers: while
//! it does not, evaluations go on from memory, writes answer 503, and `/ready` and `/metrics`
//! say so; when it answers again the replica catches up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;

use crate::serving::Serving;

/// The store as this replica last saw it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreHealth {
    pub up: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// The store's random id (in every notification id) and when it was created: a store
    /// created anew (a deleted SQLite file) shows here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// Why the last write failed, while reads may still answer (a full disk, a lock held by
    /// another process, a file deleted under the server): the store is down until a write
    /// commits again (the poll probes it).
    #[serde(skip)]
    write_error: Option<String>,
}

/// Shared by the poller (which writes it) and `/ready` (which shows it).
#[derive(Debug, Clone, Default)]
pub struct HealthBoard(Arc<Mutex<StoreHealth>>);

impl HealthBoard {
    pub fn get(&self) -> StoreHealth {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Records which store this is.
    pub fn set_identity(&self, identity: crate::store::StoreIdentity) {
        let mut h = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        h.id = Some(identity.id);
        h.created_at = Some(identity.created_at);
    }

    /// Records that a write failed: the store shows down until a write commits.
    pub fn write_failed(&self, error: &crate::store::StoreError) {
        let mut h = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let message = format!("writes fail: {error}");
        if h.up || h.since.is_none() {
            h.since = Some(Utc::now());
            tracing::error!("the store refuses writes ({error}); serving from memory, writes answer 503");
        }
        h.up = false;
        h.error = Some(message.clone());
        h.write_error = Some(message);
    }

    /// Records that a write committed.
    pub fn write_succeeded(&self) {
        let mut h = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        h.write_error = None;
    }

    fn writes_failing(&self) -> bool {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).write_error.is_some()
    }

    /// Records an answer or a failure; true when this changes up/down.
    fn set(&self, error: Option<String>) -> bool {
        let mut h = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let error = error.or_else(|| h.write_error.clone());
        let up = error.is_none();
        let changed = h.up != up || h.since.is_none();
        if changed {
            h.since = Some(Utc::now());
        }
        h.up = up;
        h.error = error;
        changed
    }
}

/// Listens for the store's notifications until shutdown, reconnecting with backoff.
pub async fn listen(serving: Arc<Serving>, wake: Arc<Notify>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            result = serving.store.listen(&wake) => {
                if let Err(e) = result {
                    tracing::debug!("store notifications interrupted: {e}; reconnecting in {backoff:?}");
                }
            }
        }
        tokio::select! {
            _ = stopped.changed() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Checks the change version every `every` and whenever woken; refreshes the served state when
/// it moved, or after the store comes back.
pub async fn poll(
    serving: Arc<Serving>,
    every: Duration,
    wake: Arc<Notify>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tick.tick() => {}
            () = wake.notified() => {}
        }
        let before = serving.store_health.get();
        // Down after having been up (not the first answer at start).
        let was_down = !before.up && before.since.is_some();
        if serving.store_health.writes_failing() && serving.store.probe_write().await.is_ok() {
            serving.store_health.write_succeeded();
        }
        match serving.store.version().await {
            Ok(v) => {
                serving.store_health.set(None);
                let up = serving.store_health.get().up;
                serving.metrics.store_up.set(i64::from(up));
                if up && was_down {
                    tracing::info!("the store answers again; catching up");
                }
                if (v != serving.load().persisted.version || (up && was_down))
                    && let Err(e) = serving.refresh().await
                {
                    tracing::warn!("could not refresh from the store: {e}");
                }
            }
            Err(e) => {
                serving.metrics.store_up.set(0);
                if serving.store_health.set(Some(e.to_string())) {
                    tracing::error!("the store does not answer ({e}); serving from memory, writes answer 503");
                }
            }
        }
        serving.update_gauges(Utc::now());
    }
}
