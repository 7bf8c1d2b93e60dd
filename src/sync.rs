//! Keeps this replica in step with the store: wakes on the store's notifications (PostgreSQL's
//! `LISTEN`) and polls its change version every interval besides, so a lost notification delays
//! a change by at most one interval and never loses it. Tracks whether the store answers: while
//! it does not, evaluations go on from memory, writes answer 503, and `/ready` and `/metrics`
//! say so; when it answers again the replica catches up.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;

use crate::serving::Serving;

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
