//! Whether the store answers, as this replica last saw it: written by the poller (`sync`) and by
//! every write (`changes`), shown on `/ready`.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The store as this replica last saw it.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
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
    pub fn set_identity(&self, identity: super::StoreIdentity) {
        let mut h = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        h.id = Some(identity.id);
        h.created_at = Some(identity.created_at);
    }

    /// Records that a write failed: the store shows down until a write commits.
    pub fn write_failed(&self, error: &super::StoreError) {
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

    pub fn writes_failing(&self) -> bool {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).write_error.is_some()
    }

    /// Records an answer or a failure; true when this changes up/down.
    pub fn set(&self, error: Option<String>) -> bool {
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
