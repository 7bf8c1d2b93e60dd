//! Supervised background tasks: a task that fails (panics or returns before shutdown) is
//! logged, counted in `toggled_task_restarts_total{task}`, shown on `/ready`, and restarted
//! after a backoff — never silently gone.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::metrics::{Metrics, TaskLabels};

/// The health of one background task, as `/ready` shows it.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct TaskHealth {
    pub running: bool,
    pub restarts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure_at: Option<DateTime<Utc>>,
}

/// Every supervised task's health by name.
#[derive(Debug, Clone, Default)]
pub struct TaskBoard(Arc<Mutex<BTreeMap<&'static str, TaskHealth>>>);

impl TaskBoard {
    pub fn snapshot(&self) -> BTreeMap<&'static str, TaskHealth> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn update(&self, name: &'static str, f: impl FnOnce(&mut TaskHealth)) {
        f(self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(name).or_default());
    }
}

/// The longest wait between restarts of a task that keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Starts supervised tasks that share a board, metrics and a shutdown signal.
#[derive(Debug)]
pub struct Supervisor {
    board: TaskBoard,
    metrics: Arc<Metrics>,
    stopped: tokio::sync::watch::Receiver<bool>,
}

impl Supervisor {
    pub fn new(board: &TaskBoard, metrics: &Arc<Metrics>, stopped: &tokio::sync::watch::Receiver<bool>) -> Self {
        Self { board: board.clone(), metrics: metrics.clone(), stopped: stopped.clone() }
    }

    /// Runs `start()` until shutdown, restarting it whenever it panics or returns early.
    pub fn spawn<F, Fut>(&self, name: &'static str, start: F) -> tokio::task::JoinHandle<()>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        supervise(name, self.board.clone(), self.metrics.clone(), self.stopped.clone(), start)
    }
}

fn supervise<F, Fut>(
    name: &'static str,
    board: TaskBoard,
    metrics: Arc<Metrics>,
    stopped: tokio::sync::watch::Receiver<bool>,
    mut start: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            board.update(name, |h| h.running = true);
            let result = tokio::spawn(start()).await;
            board.update(name, |h| h.running = false);
            if *stopped.borrow() {
                return;
            }
            let failure = match result {
                Ok(()) => "returned before shutdown".to_owned(),
                Err(e) if e.is_panic() => format!("panicked: {}", panic_message(e.into_panic())),
                Err(e) => format!("was cancelled: {e}"),
            };
            tracing::error!(task = name, "background task {failure}; restarting in {backoff:?}");
            metrics.task_restarts.get_or_create(&TaskLabels { task: name.to_owned() }).inc();
            board.update(name, |h| {
                h.restarts += 1;
                h.last_failure = Some(failure);
                h.last_failure_at = Some(Utc::now());
            });
            let mut stop = stopped.clone();
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(flavor = "current_thread")]
    async fn a_failing_task_is_counted_shown_and_restarted() {
        let board = TaskBoard::default();
        let metrics = Arc::new(Metrics::new());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let handle = Supervisor::new(&board, &metrics, &stopped).spawn("flaky", move || {
            let run = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                match run {
                    0 => panic!("first run fails"),
                    1 => {} // returns early: also a failure
                    _ => std::future::pending().await,
                }
            }
        });
        // Two restarts after backoffs of 0.1 and 0.2 s; a deadline far beyond, so a hang fails.
        tokio::time::timeout(Duration::from_secs(60), async {
            while runs.load(Ordering::SeqCst) < 3 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("restarted twice within the deadline");
        let health = board.snapshot()["flaky"].clone();
        assert!(health.running);
        assert_eq!(health.restarts, 2);
        assert_eq!(health.last_failure.as_deref(), Some("returned before shutdown"));
        assert!(metrics.render_text().contains("toggled_task_restarts_total{task=\"flaky\"} 2"));
        let _ = stop.send(true);
        // A task that is still running when shutdown comes is not restarted; ending the
        // supervisor is the caller's business (the server's tasks watch `stopped` themselves).
        handle.abort();
    }
}
