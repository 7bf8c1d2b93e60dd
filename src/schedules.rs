//! Runs scheduled changes when they are due: each through the one change path
//! ([`crate::changes::apply_scheduled`]), in the store transaction that marks it done, so it runs
//! once across replicas, and late but once after a server was down (the audit row's reason says
//! how late). A schedule whose flag left the flag file, or whose change the state refuses (a
//! pause of a paused rollout, a clear without an override), is skipped with the reason.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::serving::Serving;
use crate::store::{Change, Refusal, ScheduleRecord, ScheduledAction};

/// Checks for due schedules every `every` until `stopped`; change requests older than `expiry`
/// expire.
pub async fn run(
    serving: Arc<Serving>,
    every: Duration,
    expiry: Duration,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let expiry = chrono::Duration::from_std(expiry).unwrap_or(chrono::Duration::MAX);
    loop {
        let now = Utc::now();
        match serving.store.expire_requests(now.checked_sub_signed(expiry).unwrap_or(now), now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "change requests expired unapproved"),
            Err(e) => tracing::warn!("change requests not expired: {e}"),
        }
        run_due(&serving, now).await;
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stopped.changed() => {}
        }
        if *stopped.borrow() {
            return;
        }
    }
}

/// Runs every schedule due at `now`; a store error ends the round (the next retries).
pub async fn run_due(serving: &Serving, now: DateTime<Utc>) {
    let due = match serving.store.due_schedules(now).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!("scheduled changes not read: {e}");
            return;
        }
    };
    for s in due {
        if let Err(e) = run_one(serving, &s, now).await {
            tracing::warn!(schedule = s.id, flag = %s.flag, "scheduled change not run yet: {e}");
            return;
        }
    }
}

/// Why a due schedule cannot run against what is served, if it cannot.
fn unrunnable(serving: &Serving, s: &ScheduleRecord) -> Option<String> {
    let served = serving.load();
    if !served.ready {
        return None;
    }
    let Some(flag) = served.snapshot.get(&s.flag) else {
        return Some("the flag is no longer in the flag file".to_owned());
    };
    let gradual = matches!(flag.strategy, Some(crate::flags::snapshot::Strategy::Gradual { .. }));
    if matches!(s.action, ScheduledAction::Pause | ScheduledAction::Resume) && !gradual {
        return Some("the flag no longer has a gradual rollout".to_owned());
    }
    None
}

async fn run_one(serving: &Serving, s: &ScheduleRecord, now: DateTime<Utc>) -> Result<(), crate::store::StoreError> {
    if !serving.load().ready {
        // Nothing served yet: whether the flag exists is not known.
        return Ok(());
    }
    if let Some(why) = unrunnable(serving, s) {
        if serving.store.finish_schedule(s.id, "skipped", &why, now).await? {
            tracing::warn!(schedule = s.id, flag = %s.flag, "scheduled change skipped: {why}");
        }
        return Ok(());
    }
    let late = (now - s.at).num_milliseconds().max(0) as f64 / 1000.0;
    let said = if s.reason.is_empty() { String::new() } else { format!("{} ", s.reason) };
    // An approved request is its requester's change; the approver is named in the reason.
    let approved = s.result.as_deref().filter(|r| r.starts_with("approved by "));
    let reason = format!(
        "{said}(schedule #{} by {}, due {}, run {late:.1}s after{})",
        s.id,
        s.created_by,
        s.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        approved.map(|a| format!("; {a}")).unwrap_or_default()
    );
    let actor = if approved.is_some() { s.created_by.clone() } else { format!("schedule:{}", s.created_by) };
    let change = Change { flag: s.flag.clone(), actor, reason, at: now, action: s.action.action() };
    match crate::changes::apply_scheduled(serving, s.id, change).await? {
        Ok(_) => tracing::info!(schedule = s.id, flag = %s.flag, late_s = late, "scheduled change applied"),
        Err(Refusal::NotPending) => tracing::debug!(schedule = s.id, "ran elsewhere or cancelled"),
        Err(refusal) => {
            let why = format!("the state refused it: {refusal:?}");
            if serving.store.finish_schedule(s.id, "skipped", &why, now).await? {
                tracing::warn!(schedule = s.id, flag = %s.flag, "scheduled change skipped: {why}");
            }
        }
    }
    Ok(())
}
