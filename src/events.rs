//! The change stream behind `GET /events`: reloads, overrides, rollbacks, pauses and stage
//! changes, each with a monotonic id. A bounded buffer of recent events lets a reconnecting
//! client resume from `Last-Event-ID`; one that fell further behind is told to resync.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

/// How many past events a reconnecting client can resume from.
pub const BUFFER: usize = 1024;

/// One change.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: u64,
    pub kind: EventKind,
    pub flag: Option<String>,
    pub at: DateTime<Utc>,
    /// Revision of the flag file being served when the event happened.
    pub revision: Option<String>,
    pub detail: Value,
}

words! {
    /// What happened, as `/events` names it (the SSE event name).
    pub enum EventKind {
        /// A new flag file was loaded.
        Reload = "reload",
        /// An override was set or cleared.
        Override = "override",
        /// A flag was rolled back automatically.
        Rollback = "rollback",
        Pause = "pause",
        Resume = "resume",
        /// A gradual rollout moved to another stage.
        Stage = "stage",
    }
}

/// The bus: publish from anywhere, subscribe from `/events`.
#[derive(Debug)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
    recent: Mutex<(u64, VecDeque<Event>)>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

/// What a new subscriber gets first.
#[derive(Debug)]
pub enum Replay {
    /// Events after the client's last id, from the buffer.
    Events(Vec<Event>),
    /// The client's last id is older than the buffer: it must refetch everything.
    Resync,
}

impl EventBus {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(BUFFER);
        Self { sender, recent: Mutex::new((0, VecDeque::with_capacity(BUFFER))) }
    }

    /// Publishes an event and returns its id.
    pub fn publish(&self, kind: EventKind, flag: Option<&str>, revision: Option<&str>, detail: Value) -> u64 {
        let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        recent.0 += 1;
        let event = Event {
            id: recent.0,
            kind,
            flag: flag.map(str::to_owned),
            at: Utc::now(),
            revision: revision.map(str::to_owned),
            detail,
        };
        if recent.1.len() == BUFFER {
            recent.1.pop_front();
        }
        recent.1.push_back(event.clone());
        // Sent under the lock so subscribers see ids in order.
        let _ = self.sender.send(event);
        recent.0
    }

    /// Subscribes, replaying what came after `last_id` (if given).
    pub fn subscribe(&self, last_id: Option<u64>) -> (Replay, broadcast::Receiver<Event>) {
        let recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let receiver = self.sender.subscribe();
        let replay = match last_id {
            None => Replay::Events(Vec::new()),
            Some(last) if last == recent.0 => Replay::Events(Vec::new()),
            // An id this process never gave out (the client saw an earlier run): start over.
            Some(last) if last > recent.0 => Replay::Resync,
            Some(last) => match recent.1.front() {
                Some(oldest) if oldest.id <= last + 1 => {
                    Replay::Events(recent.1.iter().filter(|e| e.id > last).cloned().collect())
                }
                _ => Replay::Resync,
            },
        };
        (replay, receiver)
    }

    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }

    pub fn last_id(&self) -> u64 {
        self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_from_the_buffer_or_resync() {
        let bus = EventBus::new();
        for i in 0..(BUFFER + 10) {
            bus.publish(EventKind::Override, Some("f"), None, serde_json::json!({"i": i}));
        }
        let last = bus.last_id();
        assert_eq!(last, (BUFFER + 10) as u64);
        match bus.subscribe(Some(last - 3)).0 {
            Replay::Events(e) => assert_eq!(e.iter().map(|e| e.id).collect::<Vec<_>>(), vec![last - 2, last - 1, last]),
            Replay::Resync => panic!("recent ids resume"),
        }
        assert!(matches!(bus.subscribe(Some(3)).0, Replay::Resync), "older than the buffer");
        assert!(matches!(bus.subscribe(Some(last)).0, Replay::Events(ref e) if e.is_empty()));
        assert!(matches!(bus.subscribe(Some(last + 1)).0, Replay::Resync), "an id from an earlier run");
        assert!(matches!(bus.subscribe(None).0, Replay::Events(ref e) if e.is_empty()));
    }
}
