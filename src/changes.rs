//! The one path for every change to serving state: an operator's override or pause, the
//! monitor's and Alertmanager's rollbacks and pauses, an `alert_team` decision, an applied flag
//! file. [`apply`] writes the change with its audit row and the change version in one store
//! transaction ([`crate::store::change::decide`] builds the row), swaps the new state in, and
//! announces it on the change stream. Callers never build an audit row.

use serde_json::json;

use crate::events::EventKind;
use crate::metrics::RollbackLabels;
use crate::serving::Serving;
use crate::store::{Action, Change, NewAudit, Refusal, StoreError};

/// Applies `change`: committed and visible to the next request on this replica, or refused
/// (nothing written), or a store error (nothing written either).
/// A newly loaded flag file: its audit row is written through the store's one change path
/// (`Store::apply` -> `decide`), then the snapshot is swapped in (see [`Serving::install`]).
pub async fn install(serving: &Serving, snapshot: crate::flags::Snapshot, change: Change) {
    let store = serving.store.clone();
    serving.install(snapshot, async move { store.apply(&change).await.map(|_| ()) }).await;
}

pub async fn apply(serving: &Serving, change: Change) -> Result<Result<NewAudit, Refusal>, StoreError> {
    apply_with(serving, change, None).await
}

/// Applies the change of schedule `id`, in the transaction that marks it done: refused with
/// [`Refusal::NotPending`] when another replica ran it first or it was cancelled.
pub async fn apply_scheduled(
    serving: &Serving,
    id: i64,
    change: Change,
) -> Result<Result<NewAudit, Refusal>, StoreError> {
    apply_with(serving, change, Some(id)).await
}

async fn apply_with(
    serving: &Serving,
    change: Change,
    schedule: Option<i64>,
) -> Result<Result<NewAudit, Refusal>, StoreError> {
    let store = serving.store.clone();
    let write = async {
        match schedule {
            Some(id) => store.apply_scheduled(id, &change).await,
            None => store.apply(&change).await,
        }
    };
    let result = match serving.change(write).await {
        Ok(result) => {
            serving.store_health.write_succeeded();
            result
        }
        Err(e) => {
            serving.store_health.write_failed(&e);
            serving.metrics.store_up.set(0);
            return Err(e);
        }
    };
    if let Ok(audit) = &result {
        announce(serving, &change, audit);
    }
    Ok(result)
}

/// Events, metrics and logs of an applied change. Reasons are anyone's text (an admin's, an
/// Alertmanager annotation's): they are logged quoted and escaped, so a newline cannot forge a
/// log line.
fn announce(serving: &Serving, change: &Change, audit: &NewAudit) {
    let flag = Some(change.flag.as_str());
    let (key, actor, reason) = (&change.flag, &change.actor, &change.reason);
    match &change.action {
        Action::SetOverride(_) => {
            tracing::info!(flag = %key, actor = %actor, "override set");
            serving.publish(EventKind::Override, flag, json!({"override": audit.after}));
        }
        Action::ClearOverride => {
            tracing::info!(flag = %key, actor = %actor, "override cleared");
            serving.publish(EventKind::Override, flag, json!({"override": null}));
        }
        Action::Rollback { trigger } => {
            let labels = RollbackLabels { flag: key.clone(), trigger: trigger.clone() };
            serving.metrics.rollbacks.get_or_create(&labels).inc();
            tracing::warn!(flag = %key, trigger = %trigger, "rolled back: {reason:?}");
            serving.publish(EventKind::Rollback, flag, json!({"reason": reason, "trigger": trigger}));
        }
        Action::Pause => {
            tracing::info!(flag = %key, actor = %actor, "rollout paused: {reason:?}");
            serving.publish(EventKind::Pause, flag, json!({"reason": reason, "actor": actor}));
        }
        Action::Resume { .. } => {
            tracing::info!(flag = %key, actor = %actor, "rollout resumed: {reason:?}");
            serving.publish(EventKind::Resume, flag, json!({"reason": reason, "actor": actor}));
        }
        // A reload is installed by `Serving::install` (the snapshot swap) and announced by
        // `reload`; an `alert_team` decision changes nothing to announce.
        Action::Reload(_) | Action::AlertTeam(_) | Action::ChangeRequest { .. } => {}
    }
}
