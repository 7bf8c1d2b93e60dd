//! `GET /events`: Server-Sent Events of flag changes, resumable with `Last-Event-ID`, with
//! keep-alive comments, a bounded number of subscribers, and streams that end on shutdown.
//! Every event's data has `"type": "refetchEvaluation"` (what OpenFeature's static-context
//! providers listen for). Admin tokens also get each event's `detail`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use super::auth::Role;
use super::error::{ApiError, Code};
use crate::events::{Event, Replay};

/// Most concurrent `/events` subscribers per replica.
/// The default of `--max-subscribers`.
pub const MAX_SUBSCRIBERS: usize = 1_000;

/// The `/events` streams open now: in all, and per client token.
#[derive(Debug, Default)]
pub struct Streams {
    open: AtomicUsize,
    by_token: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// One open stream, counted in [`Streams`] while it lives.
struct Slot(Arc<Streams>, Option<String>);

impl Slot {
    /// Takes a slot for a stream of client token `token` (none: anonymous or admin), unless that
    /// token already holds `per_token` streams.
    fn take(streams: Arc<Streams>, token: Option<String>, per_token: usize) -> Option<Self> {
        if let Some(name) = &token {
            let mut by = streams.by_token.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let held = by.entry(name.clone()).or_default();
            if *held >= per_token {
                return None;
            }
            *held += 1;
        }
        streams.open.fetch_add(1, Ordering::Relaxed);
        Some(Self(streams, token))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(name) = &self.1 {
            let mut by = self.0.by_token.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(held) = by.get_mut(name) {
                *held -= 1;
                if *held == 0 {
                    by.remove(name);
                }
            }
        }
    }
}

fn sse_event(e: &Event, full: bool) -> SseEvent {
    let mut data = json!({
        "type": "refetchEvaluation",
        "id": e.id,
        "kind": e.kind,
        "flag": e.flag,
        "revision": e.revision,
        "at": e.at,
    });
    if full {
        data["detail"] = e.detail.clone();
    }
    SseEvent::default().id(e.id.to_string()).event(e.kind.as_str()).data(data.to_string())
}

fn resync() -> SseEvent {
    SseEvent::default().event("resync").data(json!({"type": "refetchEvaluation", "kind": "resync"}).to_string())
}

#[utoipa::path(
    operation_id = "stream_events",
    get,
    path = "/events",
    tag = "evaluation",
    security((), ("client" = [])),
    params(("Last-Event-ID" = Option<u64>, Header, description = "resume after this event")),
    responses(
        (status = 200, description = "Server-Sent Events: reload, override, rollback, pause, resume, stage, resync", content_type = "text/event-stream"),
        crate::http::error::answers::Unauthenticated,
        (status = 503, description = "too many subscribers", body = crate::http::error::ErrorBody),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let bus = &state.serving.events;
    let who = super::auth::identify_headers(&state.tokens, &headers);
    let full = who.as_ref().is_some_and(|i| i.role == Role::Admin);
    // A tenth of the slots (at least one) is kept for admin tokens: clients that take every
    // other slot never lock the console out. One client token holds at most a quarter of the
    // rest (at least one).
    let max = state.max_subscribers;
    let open_to_all = max - (max / 10).max(1).min(max);
    let per_token = (open_to_all / 4).max(1);
    let open = state.streams.open.load(Ordering::Relaxed);
    if open >= max || (!full && open >= open_to_all) {
        let message = if full {
            format!("at most {max} event subscribers")
        } else {
            format!("at most {open_to_all} event subscribers without an admin token (the rest are kept for admins)")
        };
        return Err(ApiError::new(Code::TooManySubscribers, message));
    }
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let token = who.filter(|i| i.role != Role::Admin).map(|i| i.name);
    let Some(slot) = Slot::take(state.streams.clone(), token, per_token) else {
        return Err(ApiError::new(
            Code::TooManySubscribers,
            format!("at most {per_token} event streams per client token; close one first"),
        ));
    };
    let (replay, receiver) = bus.subscribe(last);
    let first: std::collections::VecDeque<SseEvent> = match replay {
        Replay::Events(events) => events.iter().map(|e| sse_event(e, full)).collect(),
        Replay::Resync => std::iter::once(resync()).collect(),
    };
    let stop = state.shutdown.clone();
    let stream = futures_util::stream::unfold(
        (first, receiver, stop, slot),
        move |(mut first, mut rx, mut stop, slot)| async move {
            if let Some(e) = first.pop_front() {
                return Some((Ok(e), (first, rx, stop, slot)));
            }
            if *stop.borrow() {
                return None;
            }
            tokio::select! {
                _ = stop.changed() => None,
                received = rx.recv() => match received {
                    Ok(e) => Some((Ok(sse_event(&e, full)), (first, rx, stop, slot))),
                    Err(RecvError::Lagged(_)) => Some((Ok(resync()), (first, rx, stop, slot))),
                    Err(RecvError::Closed) => None,
                },
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
