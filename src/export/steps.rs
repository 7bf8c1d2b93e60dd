//! toggled's precedence after prerequisites as an ordered list of steps (who a step admits,
//! what it serves), as of a moment: what every projection into another server's model walks.

use chrono::{DateTime, Utc};

use crate::eval::{FlagState, rollout};
use crate::flags::snapshot::{Constraint, Flag, HashSpec, Hashing, RuleAction, Stickiness, Strategy, VariantIdx};

/// Who a step admits: everyone its constraints admit, or a share of them.
pub(crate) enum Gate<'a> {
    All,
    Percentage(u32, &'a HashSpec),
}

/// What a step serves.
pub(crate) enum Serve<'a> {
    Variant(VariantIdx),
    Split(&'a [(VariantIdx, u32)], &'a HashSpec, Hashing),
}

pub(crate) struct Step<'a> {
    pub constraints: Vec<&'a Constraint>,
    /// A variant pin: the attribute (`None`: toggled's default stickiness) and its values.
    pub pin: Option<(Option<&'a str>, Vec<&'a String>)>,
    pub gate: Gate<'a>,
    pub serve: Serve<'a>,
}

/// The steps of toggled's precedence after prerequisites: variant pins, rules, then the
/// flag's own strategy (or its constraints alone); each under the flag's `constraints`.
pub(crate) fn steps<'a>(flag: &'a Flag, state: &FlagState<'_>, now: DateTime<Utc>) -> Vec<Step<'a>> {
    let base: Vec<&Constraint> = flag.constraints.iter().collect();
    let mut steps = Vec::new();
    // Pins are matched on one attribute: `userId` stands for toggled's default stickiness.
    let mut pinned: Vec<(VariantIdx, Vec<&String>)> = Vec::new();
    for (value, idx) in &flag.overrides {
        match pinned.iter_mut().find(|(i, _)| i == idx) {
            Some((_, values)) => values.push(value),
            None => pinned.push((*idx, vec![value])),
        }
    }
    pinned.sort_by_key(|(idx, _)| *idx);
    for (idx, mut values) in pinned {
        values.sort();
        let attribute = match &flag.override_stickiness {
            Stickiness::Default => None,
            Stickiness::Attribute(path) => Some(path.name.as_str()),
        };
        steps.push(Step {
            constraints: base.clone(),
            pin: Some((attribute, values)),
            gate: Gate::All,
            serve: Serve::Variant(idx),
        });
    }
    for rule in &flag.rules {
        let mut constraints = base.clone();
        constraints.extend(rule.constraints.iter());
        match &rule.action {
            RuleAction::Serve(idx) => {
                steps.push(Step { constraints, pin: None, gate: Gate::All, serve: Serve::Variant(*idx) });
            }
            RuleAction::Percentage { percentage, serve, hash } => {
                steps.push(Step {
                    constraints,
                    pin: None,
                    gate: Gate::Percentage(*percentage, hash),
                    serve: Serve::Variant(*serve),
                });
            }
            RuleAction::Strategy(strategy, gate) => {
                let from = steps.len();
                strategy_steps(flag, strategy, &constraints, state, now, &mut steps);
                if let Some(g) = gate {
                    // Only an A/B split takes a gate: its steps admit everyone until gated.
                    for step in &mut steps[from..] {
                        step.gate = Gate::Percentage(g.percentage, &g.hash);
                    }
                }
            }
        }
    }
    match &flag.strategy {
        Some(strategy) => strategy_steps(flag, strategy, &base, state, now, &mut steps),
        None if !flag.constraints.is_empty() && flag.rules.is_empty() => {
            steps.push(Step { constraints: base, pin: None, gate: Gate::All, serve: Serve::Variant(flag.rollout) });
        }
        None => {}
    }
    steps
}

/// The steps of a rollout strategy at `now`.
fn strategy_steps<'a>(
    flag: &'a Flag,
    strategy: &'a Strategy,
    constraints: &[&'a Constraint],
    state: &FlagState<'_>,
    now: DateTime<Utc>,
    steps: &mut Vec<Step<'a>>,
) {
    let rollout = Serve::Variant(flag.rollout);
    match strategy {
        Strategy::Percentage { percentage, hash } => {
            steps.push(Step {
                constraints: constraints.to_vec(),
                pin: None,
                gate: Gate::Percentage(*percentage, hash),
                serve: rollout,
            });
        }
        Strategy::Scheduled { steps: schedule, hash } => {
            let percentage = rollout::scheduled_percentage(schedule, now);
            steps.push(Step {
                constraints: constraints.to_vec(),
                pin: None,
                gate: Gate::Percentage(percentage, hash),
                serve: rollout,
            });
        }
        Strategy::Gradual { stages, start, hash } => {
            let start = rollout::schedule_start(*start, state.first_seen, now);
            if let Some(progress) = rollout::gradual_progress(stages, start, now, state.pause) {
                for stage in &stages[..=progress.stage] {
                    let mut c = constraints.to_vec();
                    c.extend(stage.constraints.iter());
                    steps.push(Step {
                        constraints: c,
                        pin: None,
                        gate: Gate::Percentage(stage.percentage, hash),
                        serve: Serve::Variant(flag.rollout),
                    });
                }
            }
        }
        Strategy::AbTest { split, hashing, duration, start, winner, hash, .. } => {
            let start = rollout::schedule_start(*start, state.first_seen, now);
            if now < start {
                return;
            }
            if rollout::window_over(start, *duration, now) {
                if let Some(w) = winner {
                    steps.push(Step {
                        constraints: constraints.to_vec(),
                        pin: None,
                        gate: Gate::All,
                        serve: Serve::Variant(*w),
                    });
                }
                return;
            }
            steps.push(Step {
                constraints: constraints.to_vec(),
                pin: None,
                gate: Gate::All,
                serve: Serve::Split(split, hash, *hashing),
            });
        }
    }
}
