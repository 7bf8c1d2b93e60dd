//! The state requests are served from: a compiled snapshot plus the persisted per-flag state
//! (overrides, first-seen times, pauses), swapped as one immutable [`Served`] behind `ArcSwap`.
//!
//! A request loads the current `Served` once (no lock) and evaluates against it. Changes — a new
//! flag file, an override, a pause, a change seen on another replica — build a new `Served` and
//! swap it in; they are serialised by an async mutex that no request ever takes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use chrono::{DateTime, Duration, Utc};
use prometheus_client::metrics::counter::Counter;

use crate::eval::{self, Context, Evaluation, FlagState, Override, Pause, Reason};
use crate::events::EventKind;
use crate::flags::snapshot::{RateLimit, Strategy, SunsetAction};
use crate::flags::{self, Flag, Snapshot};
use crate::metrics::{EvalLabels, FlagLabels, Metrics, PhaseLabels, RevisionLabels};
use crate::store::{HealthBoard, PersistedState, Store, StoreError};

/// Most distinct stickiness values a sunset rate limiter counts per flag in one window (over
/// its shards): about 16 bytes each, so at most ~2 MiB per flag whatever clients send.
const RATE_LIMIT_KEYS: usize = 131_072;
/// Shards of a rate limiter: a request locks one, for one hash-map probe.
const RATE_LIMIT_SHARDS: usize = 16;

/// Per-flag runtime companions of a compiled flag.
#[derive(Debug)]
pub struct FlagRuntime {
    /// Kept while the snapshot stays the same.
    companions: Arc<Companions>,
    /// Unix milliseconds of the last evaluation seen by this process or loaded from the store.
    pub last_evaluated_ms: Arc<AtomicI64>,
    pub override_: Option<Override>,
    pub first_seen: Option<DateTime<Utc>>,
    pub pause: Pause,
}

impl FlagRuntime {
    pub fn state(&self) -> FlagState<'_> {
        FlagState { override_: self.override_.as_ref(), first_seen: self.first_seen, pause: self.pause }
    }

    pub fn last_evaluated(&self) -> Option<DateTime<Utc>> {
        match self.last_evaluated_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }
}

/// What a flag's evaluations need besides its definition, in one allocation; the parts only
/// some flags use are made on first use: the counter table (~650 bytes) at the first
/// evaluation, the sunset rate limiter (~1 KB of shards) at its first use, so 10,000 flags that
/// are never evaluated keep ~80 bytes each here.
#[derive(Debug, Default)]
struct Companions {
    /// `(variants + 1 for "override") * reasons` lazily resolved counter handles, made at the
    /// flag's first evaluation.
    counters: OnceLock<Box<[OnceLock<Counter>]>>,
    warnings: OnceLock<Counter>,
    limiter: OnceLock<Box<RateLimiter>>,
    last_warning_ms: AtomicI64,
}

/// Fixed-window counts per stickiness value, for the sunset `rate_limiting` action. Keys are
/// kept as 64-bit hashes (a per-process random key, so clients cannot aim for collisions), in
/// shards that each hold only the current window: a new window starts each shard empty, so
/// nothing is scanned or kept past its window. A shard that is full for the window counts a
/// value it does not know as over the limit (the phase asks clients to move off the flag; the
/// table's size stays bounded).
#[derive(Debug)]
struct RateLimiter {
    hasher: std::hash::RandomState,
    shards: [Mutex<Window>; RATE_LIMIT_SHARDS],
}

#[derive(Debug, Default)]
struct Window {
    index: i64,
    counts: HashMap<u64, u32>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self { hasher: std::hash::RandomState::new(), shards: std::array::from_fn(|_| Mutex::default()) }
    }
}

impl RateLimiter {
    fn exceeded(&self, key: &str, limit: RateLimit, now: DateTime<Utc>) -> bool {
        use std::hash::BuildHasher as _;
        let window = now.timestamp_millis().div_euclid(limit.per.num_milliseconds().max(1));
        let hash = self.hasher.hash_one(key);
        // The low bits pick the shard; the map hashes the whole value again.
        let shard = &self.shards[usize::try_from(hash % RATE_LIMIT_SHARDS as u64).unwrap_or(0)];
        let mut expired = HashMap::new();
        let over = {
            let mut w = shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if w.index != window {
                w.index = window;
                // Dropped after the lock is released.
                expired = std::mem::take(&mut w.counts);
            }
            let full = w.counts.len() >= RATE_LIMIT_KEYS / RATE_LIMIT_SHARDS;
            match w.counts.get_mut(&hash) {
                Some(count) => {
                    *count = count.saturating_add(1);
                    *count > limit.requests
                }
                None if full => true,
                None => {
                    w.counts.insert(hash, 1);
                    limit.requests < 1
                }
            }
        };
        drop(expired);
        over
    }

    /// How many stickiness values the limiter holds now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(std::sync::PoisonError::into_inner).counts.len()).sum()
    }
}

/// Prerequisites are evaluated from the same served state: the same snapshot, with each flag's
/// own override, kill switch, first-seen time and pause.
impl eval::Prerequisites for Served {
    fn prerequisite(&self, index: usize) -> Option<(&Flag, FlagState<'_>)> {
        Some((self.snapshot.flags.get(index)?, self.flags.get(index)?.state()))
    }
}

/// One immutable serving state.
#[derive(Debug)]
pub struct Served {
    pub snapshot: Arc<Snapshot>,
    /// Aligned with `snapshot.flags`.
    pub flags: Vec<FlagRuntime>,
    pub persisted: Arc<PersistedState>,
    /// False until a valid flag file has been loaded.
    pub ready: bool,
}

impl Served {
    pub fn index(&self, key: &str) -> Option<usize> {
        self.snapshot.index_of(key)
    }

    /// Evaluates flag `idx`, applying the sunset actions that need runtime state (rate limiting,
    /// warning logs) and counting the result.
    pub fn evaluate<'a>(&'a self, metrics: &Metrics, idx: usize, ctx: &Context, now: DateTime<Utc>) -> Evaluation<'a> {
        self.evaluate_traced(metrics, idx, ctx, now, &mut eval::explain::Silent)
    }

    /// As [`Served::evaluate`], reporting every step to `t` (`explain`).
    pub fn evaluate_traced<'a, T: eval::explain::Tracer>(
        &'a self,
        metrics: &Metrics,
        idx: usize,
        ctx: &Context,
        now: DateTime<Utc>,
        t: &mut T,
    ) -> Evaluation<'a> {
        let flag = &self.snapshot.flags[idx];
        let rt = &self.flags[idx];
        let mut e = eval::evaluate_traced(flag, ctx, now, &rt.state(), self, t);
        if let Some(sunset) = e.sunset {
            if let Some(limit) = sunset.rate_limit()
                && let Some(key) = eval::flag_stickiness(flag, ctx)
                && rt.companions.limiter.get_or_init(Box::default).exceeded(key.as_str(), limit, now)
            {
                if T::ON {
                    let detail =
                        serde_json::json!({"requests": limit.requests, "per_seconds": limit.per.num_seconds()});
                    t.push("rate_limit", "exceeded", detail);
                }
                e = e.rate_limited(flag);
            }
            if sunset.has(SunsetAction::WarningLogs) {
                warn_deprecated(metrics, flag, rt, now);
            }
        }
        count(metrics, flag, rt, &e);
        let now_ms = now.timestamp_millis();
        if now_ms - rt.last_evaluated_ms.load(Ordering::Relaxed) >= 1_000 {
            rt.last_evaluated_ms.store(now_ms, Ordering::Relaxed);
        }
        e
    }
}

fn reason_index(r: Reason) -> usize {
    Reason::ALL.iter().position(|x| *x == r).unwrap_or(0)
}

fn count(metrics: &Metrics, flag: &Flag, rt: &FlagRuntime, e: &Evaluation<'_>) {
    let variant =
        flag.variants.iter().position(|v| std::ptr::eq(v.name.as_str(), e.variant)).unwrap_or(flag.variants.len());
    let slot = variant * Reason::ALL.len() + reason_index(e.reason);
    let counters = rt.companions.counters.get_or_init(|| {
        let slots = (flag.variants.len() + 1) * Reason::ALL.len();
        (0..slots).map(|_| OnceLock::new()).collect()
    });
    let Some(cell) = counters.get(slot) else { return };
    cell.get_or_init(|| {
        let labels =
            EvalLabels { flag: flag.key.clone(), variant: e.variant.to_owned(), reason: e.reason.as_str().to_owned() };
        metrics.evaluations.get_or_create(&labels).clone()
    })
    .inc();
}

fn warn_deprecated(metrics: &Metrics, flag: &Flag, rt: &FlagRuntime, now: DateTime<Utc>) {
    let companions = &rt.companions;
    companions
        .warnings
        .get_or_init(|| metrics.sunset_warnings.get_or_create(&FlagLabels { flag: flag.key.clone() }).clone())
        .inc();
    let now_ms = now.timestamp_millis();
    let last = companions.last_warning_ms.load(Ordering::Relaxed);
    if now_ms - last >= 60_000
        && companions.last_warning_ms.compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    {
        let shutdown = flag.sunset.as_ref().and_then(|p| p.shutdown_at).map(|t| t.to_rfc3339());
        tracing::warn!(flag = %flag.key, shutdown_at = ?shutdown, "deprecated flag evaluated (logged at most once a minute per flag)");
    }
}

/// The served state and the one way it changes: the `ArcSwap`'d [`Served`], the store it is
/// written through (and whether that store answers), the metrics evaluations count into, and the
/// change stream. Reload status, background tasks and Edge mode's upstream live elsewhere
/// (`reload::Reloader`, `tasks::TaskBoard`, `upstream::UpstreamBoard`).
#[derive(Debug)]
pub struct Serving {
    current: ArcSwap<Served>,
    pub metrics: Arc<Metrics>,
    pub store: Arc<dyn Store>,
    /// Whether the store answers, shown on `/ready` (written by `sync::poll` and every write).
    pub store_health: HealthBoard,
    changes: tokio::sync::Mutex<()>,
    /// Last-evaluated cells by flag key, kept across snapshots.
    last_evaluated: Mutex<HashMap<String, Arc<AtomicI64>>>,
    /// The change stream behind `GET /events`.
    pub events: crate::events::EventBus,
    /// Last published stage per gradual flag (to publish stage changes once).
    stages: Mutex<HashMap<String, i64>>,
}

impl Serving {
    /// A serving state with nothing loaded yet (not ready).
    pub async fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        let persisted = Arc::new(store.load().await?);
        let mut cells = HashMap::new();
        for (flag, at) in store.last_evaluated().await? {
            cells.insert(flag, Arc::new(AtomicI64::new(at.timestamp_millis())));
        }
        let empty = flags::compile("feature_flags: {}\n").expect("the empty flag file compiles");
        let served = Served { snapshot: Arc::new(empty), flags: Vec::new(), persisted, ready: false };
        Ok(Self {
            current: ArcSwap::from_pointee(served),
            metrics,
            store,
            store_health: HealthBoard::default(),
            changes: tokio::sync::Mutex::new(()),
            last_evaluated: Mutex::new(cells),
            events: crate::events::EventBus::new(),
            stages: Mutex::new(HashMap::new()),
        })
    }

    /// The current state: one atomic load, no lock.
    pub fn load(&self) -> arc_swap::Guard<Arc<Served>> {
        self.current.load()
    }

    /// The current state as an owned `Arc` (for holding across `.await`).
    pub fn load_full(&self) -> Arc<Served> {
        self.current.load_full()
    }

    /// Publishes a change event, tagged with the revision being served.
    pub fn publish(&self, kind: EventKind, flag: Option<&str>, detail: serde_json::Value) -> u64 {
        let served = self.current.load();
        let revision = served.ready.then_some(served.snapshot.revision.as_str());
        self.events.publish(kind, flag, revision, detail)
    }

    /// Runs `audit` (the write of a newly loaded flag file's audit row, built by
    /// `changes::install`), then swaps the snapshot in, so whoever sees the new file can find its
    /// audit row. An audit failure is logged and does not keep a valid file from serving: the
    /// file, not the store, is the source of truth for flag definitions.
    pub async fn install(&self, snapshot: Snapshot, audit: impl Future<Output = Result<(), StoreError>>) {
        let _guard = self.changes.lock().await;
        if let Err(e) = audit.await {
            tracing::error!("could not audit a reload: {e}");
        }
        self.apply(Arc::new(snapshot)).await;
    }

    /// Swaps in a new snapshot (first recording first-seen times of new flags).
    async fn apply(&self, snapshot: Arc<Snapshot>) {
        let known = self.current.load().persisted.clone();
        let new: Vec<String> =
            snapshot.flags.iter().filter(|f| !known.first_seen.contains_key(&f.key)).map(|f| f.key.clone()).collect();
        let persisted = if new.is_empty() {
            known
        } else {
            match self.store.record_first_seen(&new, Utc::now()).await {
                Ok(()) => self.store.load().await.map(Arc::new).unwrap_or(known),
                Err(e) => {
                    tracing::error!("could not record first-seen times: {e}");
                    known
                }
            }
        };
        let old = self.current.load_full();
        if old.ready {
            self.metrics.revision_info.remove(&RevisionLabels { revision: old.snapshot.revision.clone() });
        }
        self.metrics.revision_info.get_or_create(&RevisionLabels { revision: snapshot.revision.clone() }).set(1);
        self.swap(snapshot, persisted, true);
    }

    /// Re-reads the persisted state (overrides, pauses) and swaps it in.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let _guard = self.changes.lock().await;
        let persisted = Arc::new(self.store.load().await?);
        let current = self.current.load_full();
        if persisted.version != current.persisted.version
            || persisted.first_seen.len() != current.persisted.first_seen.len()
        {
            let events = remote_events(&current.persisted, &persisted);
            self.swap(current.snapshot.clone(), persisted, current.ready);
            // Changes another replica made reach this replica's `/events` too.
            for (kind, flag, detail) in events {
                self.publish(kind, Some(&flag), detail);
            }
        }
        Ok(())
    }

    /// Runs a store write and then swaps in its effect, so the next request on this replica
    /// sees it.
    pub async fn change<T>(&self, write: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        let _guard = self.changes.lock().await;
        let result = write.await?;
        let persisted = Arc::new(self.store.load().await?);
        let current = self.current.load_full();
        self.swap(current.snapshot.clone(), persisted, current.ready);
        Ok(result)
    }

    fn swap(&self, snapshot: Arc<Snapshot>, persisted: Arc<PersistedState>, ready: bool) {
        let previous = self.current.load_full();
        let same_snapshot = Arc::ptr_eq(&previous.snapshot, &snapshot);
        let mut cells = self.last_evaluated.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let flags = snapshot
            .flags
            .iter()
            .enumerate()
            .map(|(i, flag)| {
                let reused = same_snapshot.then(|| &previous.flags[i]);
                let pause = persisted.pauses.get(&flag.key).map_or(Pause::default(), |p| Pause {
                    paused_total: Duration::milliseconds(p.paused_total_ms),
                    paused_since: p.paused_since,
                });
                FlagRuntime {
                    companions: reused.map_or_else(Default::default, |r| r.companions.clone()),
                    last_evaluated_ms: cells.entry(flag.key.clone()).or_default().clone(),
                    override_: persisted.overrides.get(&flag.key).map(|o| o.kind.to_override()),
                    first_seen: persisted.first_seen.get(&flag.key).copied(),
                    pause,
                }
            })
            .collect();
        drop(cells);
        self.metrics.overrides_active.set(persisted.overrides.len() as i64);
        self.current.store(Arc::new(Served { snapshot, flags, persisted, ready }));
        self.update_gauges(Utc::now());
    }

    /// Refreshes the stage and sunset-phase gauges (run after swaps and periodically).
    pub fn update_gauges(&self, now: DateTime<Utc>) {
        let served = self.current.load();
        for (flag, rt) in served.snapshot.flags.iter().zip(&served.flags) {
            let labels = FlagLabels { flag: flag.key.clone() };
            if let Some(Strategy::Gradual { stages, start, .. }) = &flag.strategy {
                let start = eval::rollout::schedule_start(*start, rt.first_seen, now);
                let stage =
                    eval::rollout::gradual_progress(stages, start, now, rt.pause).map_or(0, |p| p.stage as i64 + 1);
                self.metrics.rollout_stage.get_or_create(&labels).set(stage);
                let previous = self
                    .stages
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(flag.key.clone(), stage);
                if previous.is_some_and(|p| p != stage) {
                    self.publish(EventKind::Stage, Some(&flag.key), serde_json::json!({"stage": stage}));
                }
            }
            if let Some(plan) = &flag.sunset {
                let current = plan.phase_at(now).map(|p| p.kind);
                for phase in &plan.phases {
                    let labels = PhaseLabels { flag: flag.key.clone(), phase: phase.kind.as_str().to_owned() };
                    self.metrics.sunset_phase.get_or_create(&labels).set(i64::from(current == Some(phase.kind)));
                }
            }
        }
    }

    /// Last-evaluated times changed since `since` (unix ms per flag), for the batched flush.
    pub fn evaluated_since(&self, flushed: &HashMap<String, i64>) -> Vec<(String, i64)> {
        let cells = self.last_evaluated.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cells
            .iter()
            .map(|(k, v)| (k, v.load(Ordering::Relaxed)))
            .filter(|(k, ms)| *ms > 0 && flushed.get(*k).is_none_or(|f| f < ms))
            .map(|(k, ms)| (k.clone(), ms))
            .collect()
    }
}

/// The change-stream events that turn persisted state `old` into `new` (changes another
/// replica made): overrides set, cleared or rolled back, rollouts paused or resumed.
fn remote_events(old: &PersistedState, new: &PersistedState) -> Vec<(EventKind, String, serde_json::Value)> {
    use crate::store::OverrideKind;
    use serde_json::json;
    let mut events = Vec::new();
    let flags: std::collections::BTreeSet<&String> = old.overrides.keys().chain(new.overrides.keys()).collect();
    for flag in flags {
        match (old.overrides.get(flag), new.overrides.get(flag)) {
            (before, after) if before == after => {}
            (_, Some(r)) if r.kind == OverrideKind::RolledBack => {
                events.push((EventKind::Rollback, flag.clone(), json!({"reason": r.reason, "remote": true})));
            }
            (_, after) => events.push((EventKind::Override, flag.clone(), json!({"override": after, "remote": true}))),
        }
    }
    let flags: std::collections::BTreeSet<&String> = old.pauses.keys().chain(new.pauses.keys()).collect();
    for flag in flags {
        let paused = |s: &PersistedState| s.pauses.get(flag).is_some_and(|p| p.paused_since.is_some());
        match (paused(old), paused(new)) {
            (false, true) => {
                let actor = new.pauses.get(flag).and_then(|p| p.paused_by.clone());
                events.push((EventKind::Pause, flag.clone(), json!({"actor": actor, "remote": true})));
            }
            (true, false) => events.push((EventKind::Resume, flag.clone(), json!({"remote": true}))),
            _ => {}
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::{Companions, RATE_LIMIT_KEYS, RateLimiter};
    use crate::flags::snapshot::RateLimit;
    use chrono::{Duration, TimeZone as _, Utc};

    /// Every flag of the file has its companions from the start, evaluated or not: what only
    /// some flags use is made on first use (a 16-shard limiter inline was 11 MiB for 10,000 flags).
    #[test]
    fn a_flags_companions_are_small_until_used() {
        assert!(size_of::<Companions>() <= 96, "{} bytes", size_of::<Companions>());
    }

    #[test]
    fn a_rate_limiter_counts_per_key_and_window() {
        let limiter = RateLimiter::default();
        let limit = RateLimit { requests: 3, per: Duration::minutes(1) };
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("a time");
        let answers: Vec<bool> = (0..5).map(|_| limiter.exceeded("alice", limit, t)).collect();
        assert_eq!(answers, [false, false, false, true, true]);
        assert!(!limiter.exceeded("bob", limit, t), "another key has its own count");
        // The next window starts every count afresh and forgets the last window's keys.
        let next = t + Duration::minutes(1);
        assert!(!limiter.exceeded("alice", limit, next));
        assert!(limiter.tracked() <= 2);
    }

    #[test]
    fn a_rate_limiter_holds_a_bounded_number_of_keys_whatever_clients_send() {
        let limiter = RateLimiter::default();
        let limit = RateLimit { requests: 1, per: Duration::hours(1) };
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("a time");
        let long = "k".repeat(60_000);
        let mut refused_new = 0;
        for i in 0..300_000 {
            let key = if i % 1_000 == 0 { format!("{long}{i}") } else { format!("user-{i}") };
            refused_new += usize::from(limiter.exceeded(&key, limit, t));
        }
        assert!(limiter.tracked() <= RATE_LIMIT_KEYS, "{} keys held", limiter.tracked());
        assert!(refused_new >= 300_000 - RATE_LIMIT_KEYS, "values beyond the table count as over the limit");
    }
}
