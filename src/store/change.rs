//! Every change to persisted serving state — override set or cleared, automatic rollback, pause,
//! resume — and every audited event that changes none (an applied reload, an `alert_team`
//! decision) is a [`Change`]. [`decide`] is the one place that turns a change and the state the
//! store holds *inside its transaction* into what to write and the audit row to write with it.
//! Pure: each backend runs it between reading and writing in one transaction, then bumps the
//! change version, so the rule "state + audit row + version, atomically" lives here once.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{AuditAction, NewAudit, OverrideKind, OverrideRecord, PauseRecord};

/// What a change does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// An operator's override (kill switch, forced variant or value, master switch on).
    SetOverride(OverrideKind),
    ClearOverride,
    /// Automatic rollback to the safe value; never written over an override in force.
    /// `trigger` says what decided it (`monitor`, `alertmanager`).
    Rollback {
        trigger: String,
    },
    Pause,
    /// Resume a paused rollout: anyone's pause (`None`, an operator), or only the pauses of
    /// this actor (`Some`, the monitor or Alertmanager).
    Resume {
        only_paused_by: Option<String>,
    },
    /// Audited, changes no serving state: an applied flag file (`flag` is `*`).
    Reload(Value),
    /// Audited, changes no serving state: an `alert_team` notification.
    AlertTeam(Value),
    /// Audited, changes no serving state: a step of a scheduled change or a four-eyes change
    /// request (`change_scheduled`, `schedule_cancelled`, `change_requested`, `change_approved`,
    /// `change_rejected`) and what it concerns.
    ChangeRequest {
        step: AuditAction,
        detail: Value,
    },
}

/// One change, by whom, why and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub flag: String,
    pub actor: String,
    pub reason: String,
    pub at: DateTime<Utc>,
    pub action: Action,
}

/// Why a change wrote nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A rollback found an override (an operator's, or an earlier rollback) in force.
    AlreadyOverridden,
    /// A clear found no override.
    NoOverride,
    AlreadyPaused,
    NotPaused,
    /// A conditional resume found someone else's pause.
    PausedBySomeoneElse,
    /// A scheduled change found its schedule no longer pending.
    NotPending,
}

/// The serving state a change writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Replace (`Some`) or delete (`None`) the flag's override.
    Override(Option<OverrideRecord>),
    Pause(PauseRecord),
    /// Nothing but the audit row (and no version bump).
    AuditOnly,
}

/// What to write: the state and its audit row.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub write: Write,
    pub audit: NewAudit,
}

/// Decides a change against the flag's current override and pause (read in the same
/// transaction that will write the decision).
pub fn decide(change: &Change, current: Option<&OverrideRecord>, pause: &PauseRecord) -> Result<Decision, Refusal> {
    // Times are stored in milliseconds: the audit row says exactly what the state holds.
    let at = DateTime::from_timestamp_millis(change.at.timestamp_millis()).unwrap_or(change.at);
    let record = |kind: OverrideKind| OverrideRecord {
        flag: change.flag.clone(),
        kind,
        reason: change.reason.clone(),
        actor: change.actor.clone(),
        created_at: at,
    };
    let (write, action, before, after) = match &change.action {
        Action::SetOverride(kind) => {
            let next = record(kind.clone());
            let after = json!(next);
            (Write::Override(Some(next)), AuditAction::OverrideSet, current.map(|c| json!(c)), Some(after))
        }
        Action::ClearOverride => {
            let Some(current) = current else { return Err(Refusal::NoOverride) };
            (Write::Override(None), AuditAction::OverrideCleared, Some(json!(current)), None)
        }
        Action::Rollback { .. } => {
            if current.is_some() {
                return Err(Refusal::AlreadyOverridden);
            }
            let next = record(OverrideKind::RolledBack);
            let after = json!(next);
            (Write::Override(Some(next)), AuditAction::AutoRollback, None, Some(after))
        }
        Action::Pause => {
            if pause.paused_since.is_some() {
                return Err(Refusal::AlreadyPaused);
            }
            let next = PauseRecord { paused_since: Some(at), paused_by: Some(change.actor.clone()), ..pause.clone() };
            let after = json!(next);
            (Write::Pause(next), AuditAction::RolloutPaused, Some(json!(pause)), Some(after))
        }
        Action::Resume { only_paused_by } => {
            let Some(since) = pause.paused_since else { return Err(Refusal::NotPaused) };
            if only_paused_by.as_ref().is_some_and(|who| pause.paused_by.as_ref() != Some(who)) {
                return Err(Refusal::PausedBySomeoneElse);
            }
            let paused = at.signed_duration_since(since).num_milliseconds().max(0);
            let next = PauseRecord {
                paused_total_ms: pause.paused_total_ms.saturating_add(paused),
                paused_since: None,
                paused_by: None,
            };
            let after = json!(next);
            (Write::Pause(next), AuditAction::RolloutResumed, Some(json!(pause)), Some(after))
        }
        Action::Reload(detail) => {
            let part = |k: &str| detail.get(k).filter(|v| !v.is_null()).cloned();
            (Write::AuditOnly, AuditAction::Reload, part("before"), part("after"))
        }
        Action::AlertTeam(payload) => (Write::AuditOnly, AuditAction::AlertTeam, None, Some(payload.clone())),
        Action::ChangeRequest { step, detail } => (Write::AuditOnly, step.clone(), None, Some(detail.clone())),
    };
    let audit = NewAudit {
        at,
        actor: change.actor.clone(),
        flag: change.flag.clone(),
        action: action.to_string(),
        before,
        after,
        reason: change.reason.clone(),
    };
    Ok(Decision { write, audit })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(action: Action) -> Change {
        Change {
            flag: "f".into(),
            actor: "ops".into(),
            reason: "why".into(),
            at: DateTime::from_timestamp(1_000, 0).expect("a time"),
            action,
        }
    }

    fn existing() -> OverrideRecord {
        OverrideRecord {
            flag: "f".into(),
            kind: OverrideKind::Kill,
            reason: "incident".into(),
            actor: "ops".into(),
            created_at: DateTime::from_timestamp(10, 0).expect("a time"),
        }
    }

    #[test]
    fn every_change_decides_its_write_and_audit_row() {
        let none = PauseRecord::default();
        let paused = PauseRecord {
            paused_total_ms: 5,
            paused_since: Some(DateTime::from_timestamp(900, 0).expect("a time")),
            paused_by: Some("auto-pause".into()),
        };
        type Case = (Action, Option<OverrideRecord>, PauseRecord, Result<&'static str, Refusal>);
        let cases: Vec<Case> = vec![
            (Action::SetOverride(OverrideKind::Kill), None, none.clone(), Ok("override_set")),
            (Action::SetOverride(OverrideKind::Enable), Some(existing()), none.clone(), Ok("override_set")),
            (Action::ClearOverride, Some(existing()), none.clone(), Ok("override_cleared")),
            (Action::ClearOverride, None, none.clone(), Err(Refusal::NoOverride)),
            (Action::Rollback { trigger: "monitor".into() }, None, none.clone(), Ok("auto_rollback")),
            (
                Action::Rollback { trigger: "monitor".into() },
                Some(existing()),
                none.clone(),
                Err(Refusal::AlreadyOverridden),
            ),
            (Action::Pause, None, none.clone(), Ok("rollout_paused")),
            (Action::Pause, None, paused.clone(), Err(Refusal::AlreadyPaused)),
            (Action::Resume { only_paused_by: None }, None, paused.clone(), Ok("rollout_resumed")),
            (Action::Resume { only_paused_by: None }, None, none.clone(), Err(Refusal::NotPaused)),
            (
                Action::Resume { only_paused_by: Some("alertmanager".into()) },
                None,
                paused.clone(),
                Err(Refusal::PausedBySomeoneElse),
            ),
            (Action::Resume { only_paused_by: Some("auto-pause".into()) }, None, paused.clone(), Ok("rollout_resumed")),
            (Action::AlertTeam(json!({"a": 1})), None, none.clone(), Ok("alert_team")),
        ];
        for (action, current, pause, expected) in cases {
            let got = decide(&change(action.clone()), current.as_ref(), &pause);
            assert_eq!(got.as_ref().map(|d| d.audit.action.as_str()).map_err(|r| *r), expected, "{action:?}");
            if let Ok(d) = got {
                assert_eq!(
                    (d.audit.actor.as_str(), d.audit.reason.as_str(), d.audit.at),
                    ("ops", "why", change(action).at)
                );
            }
        }
    }

    #[test]
    fn before_is_what_was_read_and_paused_time_accumulates() {
        let d = decide(&change(Action::ClearOverride), Some(&existing()), &PauseRecord::default()).expect("clears");
        assert_eq!(d.audit.before, Some(json!(existing())));
        assert_eq!((d.write, d.audit.after), (Write::Override(None), None));
        let paused = PauseRecord {
            paused_total_ms: 5,
            paused_since: Some(DateTime::from_timestamp(900, 0).expect("a time")),
            paused_by: Some("ops".into()),
        };
        let d = decide(&change(Action::Resume { only_paused_by: None }), None, &paused).expect("resumes");
        assert_eq!(
            d.write,
            Write::Pause(PauseRecord { paused_total_ms: 100_005, paused_since: None, paused_by: None })
        );
    }
}
