//! Release state changes — a plan, an approval or test report, a status change, a refused plan,
//! a rollback recommendation, a reminder — each written with its audit row in one store
//! transaction (the audit log is also the notification outbox, see `notify`), and the link
//! between releases and the flags they ship:
//! - a release moved to `rolled_back` kills each flag it ships (actor `release-rollback:<id>`):
//!   at once when its type's `rollback_plan` is `automatic`, after a recorded `rollback`
//!   approval when it is `manual_approval`;
//! - a flag rolled back by the monitor or Alertmanager marks each deployed or in-progress release
//!   that ships it: `rolled_back` for automatic types, `rollback_recommended` for manual ones.

use std::sync::Arc;

use chrono::Utc;
use serde_json::{Value, json};

use crate::changes;
use crate::release::plan::ReleaseStrategy;
use crate::release::record::{ReleaseStatus, RollbackCause};
use crate::serving::Serving;
use crate::store::{Action, AuditAction, Change, NewAudit, OverrideKind, ReleaseRecord, StoreError, release_subject};

/// The approval role that lets a `manual_approval` release's rollback kill its flags.
pub const ROLLBACK_ROLE: &str = "rollback";

/// What a notification says about a release.
fn summary(r: &ReleaseRecord) -> Value {
    json!({"id": r.id, "service": r.service, "version": r.version, "type": r.kind, "status": r.status,
           "flags": r.data.flags, "scheduled_at": r.scheduled_at})
}

fn row(r: &ReleaseRecord, actor: &str, action: AuditAction, before: Option<Value>, reason: String) -> NewAudit {
    NewAudit {
        at: Utc::now(),
        actor: actor.to_owned(),
        flag: release_subject(r.id),
        action: action.to_string(),
        before,
        after: Some(summary(r)),
        reason,
    }
}

/// Stores a new release plan; returns its id.
pub async fn create(serving: &Serving, r: &ReleaseRecord, actor: &str) -> Result<i64, StoreError> {
    let audit = row(r, actor, AuditAction::ReleasePlanned, None, format!("{} {} planned", r.service, r.version));
    serving.store.create_release(r, &audit).await
}

/// Records a plan refused for its conflicts (nothing stored but the audit row).
pub async fn refused(
    serving: &Serving,
    service: &str,
    version: &str,
    conflicts: &Value,
    actor: &str,
) -> Result<(), StoreError> {
    let audit = NewAudit {
        at: Utc::now(),
        actor: actor.to_owned(),
        flag: format!("release:{service}@{version}"),
        action: AuditAction::ReleaseConflict.to_string(),
        before: None,
        after: Some(json!({"service": service, "version": version, "conflicts": conflicts})),
        reason: format!("{service} {version}: the plan conflicts"),
    };
    serving.store.record(&audit).await
}

/// Writes a changed release (`before` is its previous status) with the audit row `action`.
pub async fn update(
    store: &dyn crate::store::Store,
    r: &ReleaseRecord,
    before: &ReleaseStatus,
    actor: &str,
    action: AuditAction,
    reason: String,
) -> Result<(), StoreError> {
    let audit = row(r, actor, action, Some(json!({"status": before})), reason);
    store.update_release(r, &audit).await
}

fn rollback_plan<'a>(strategy: &'a ReleaseStrategy, kind: &str) -> &'a str {
    strategy.types.get(kind).map_or("manual_approval", |t| t.rollback_plan.as_str())
}

/// For a release in `rolled_back`: kills the flags it ships when its plan allows it now (and
/// they were not killed before), noting in `data` what was done or that an approval is awaited.
/// Flags already killed or rolled back are left as they are. Call before writing the release.
pub async fn kill_flags_if_due(
    serving: &Serving,
    strategy: &ReleaseStrategy,
    r: &mut ReleaseRecord,
) -> Result<Vec<String>, StoreError> {
    if r.status != ReleaseStatus::RolledBack || r.data.flags_killed.is_some() {
        return Ok(Vec::new());
    }
    if rollback_plan(strategy, &r.kind) != "automatic" && !r.data.approved_as(ROLLBACK_ROLE) {
        r.data.rollback_awaits_approval = true;
        return Ok(Vec::new());
    }
    let mut killed = Vec::new();
    for flag in r.data.flags.clone() {
        let safe = serving
            .load()
            .persisted
            .overrides
            .get(&flag)
            .is_some_and(|o| matches!(o.kind, OverrideKind::Kill | OverrideKind::RolledBack));
        if safe {
            continue;
        }
        let change = Change {
            flag: flag.clone(),
            actor: format!("release-rollback:{}", r.id),
            reason: format!("release #{} ({} {}) rolled back", r.id, r.service, r.version),
            at: Utc::now(),
            action: Action::SetOverride(OverrideKind::Kill),
        };
        if changes::apply(serving, change).await?.is_ok() {
            killed.push(flag);
        }
    }
    r.data.flags_killed = Some(killed.clone());
    r.data.rollback_awaits_approval = false;
    Ok(killed)
}

/// A flag was rolled back by `trigger`: mark each deployed or in-progress release shipping it.
pub async fn flag_rolled_back(
    serving: &Serving,
    strategy: &ReleaseStrategy,
    flag: &str,
    trigger: &str,
) -> Result<(), StoreError> {
    let actor = format!("flag-rollback:{flag}");
    for summary in serving.store.release_summaries(crate::store::ReleasePage::default()).await? {
        if !matches!(summary.status, ReleaseStatus::Deployed | ReleaseStatus::InProgress)
            || !summary.brief.flags.iter().any(|f| f == flag)
        {
            continue;
        }
        // Only a release that ships the flag is read whole.
        let Some(mut r) = serving.store.release(summary.id).await? else { continue };
        let before = r.status.clone();
        let cause = RollbackCause { flag: flag.to_owned(), trigger: trigger.to_owned(), at: Utc::now() };
        if rollback_plan(strategy, &r.kind) == "automatic" {
            r.status = ReleaseStatus::RolledBack;
            r.status_at = Utc::now();
            r.data.rolled_back_by = Some(cause);
            kill_flags_if_due(serving, strategy, &mut r).await?;
            let reason = format!("flag {flag} was rolled back ({trigger}); the release's rollback plan is automatic");
            r.data.status_reason = Some(reason.clone());
            update(serving.store.as_ref(), &r, &before, &actor, AuditAction::ReleaseStatus, reason).await?;
            tracing::warn!(release = r.id, flag, "release rolled back with its flag");
        } else if r.data.rollback_recommended.is_none() {
            r.data.rollback_recommended = Some(cause);
            let reason = format!("flag {flag} was rolled back ({trigger}); the release's rollback needs approval");
            update(serving.store.as_ref(), &r, &before, &actor, AuditAction::ReleaseRollbackRecommended, reason)
                .await?;
            tracing::warn!(release = r.id, flag, "release rollback recommended");
        }
    }
    Ok(())
}

/// The supervised task that follows flag rollbacks on this replica's change stream (a rollback
/// is published by the replica that made it, so one replica acts).
pub async fn follow_rollbacks(
    serving: Arc<Serving>,
    strategy: Arc<ReleaseStrategy>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let (_, mut events) = serving.events.subscribe(None);
    loop {
        let received = tokio::select! {
            _ = stopped.changed() => return,
            received = events.recv() => received,
        };
        let event = match received {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                // Events were missed: follow every flag that stands rolled back now (marking a
                // release is idempotent: a rolled-back or flagged release is not marked again).
                tracing::warn!(missed, "release links missed change events; re-checking every rolled-back flag");
                let served = serving.load_full();
                for (flag, record) in &served.persisted.overrides {
                    if record.kind == crate::store::OverrideKind::RolledBack
                        && let Err(e) = flag_rolled_back(&serving, &strategy, flag, &record.actor).await
                    {
                        tracing::error!(flag, "could not mark the releases of a rolled-back flag: {e}");
                    }
                }
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        // A rollback another replica made is followed there: acting here too would mark its
        // releases twice (two audit rows, two notifications).
        if event.detail["remote"] == serde_json::Value::Bool(true) {
            continue;
        }
        let (Some(flag), "rollback") = (event.flag.as_deref(), event.kind.as_str()) else { continue };
        let trigger = event.detail["trigger"].as_str().unwrap_or("monitor");
        if let Err(e) = flag_rolled_back(&serving, &strategy, flag, trigger).await {
            tracing::error!(flag, "could not mark the releases of a rolled-back flag: {e}");
        }
    }
}
