//! `explain`: the ordered steps the evaluator took for one answer, so an operator can tell
//! "outside the 5% (bucket 37)" from "not in segment internal_users".
//!
//! The evaluator is generic over a [`Tracer`]. The serving path uses [`Silent`], whose
//! `ON = false` compiles every step away (nothing is built, nothing allocated); `explain` uses a
//! `Vec<Step>`.

use serde::Serialize;
use serde_json::{Value, json};

use super::Context;
use super::constraint::{self, Scalar};
use crate::flags::snapshot::{Constraint, Operator};

/// One step of an evaluation: `{"step", "outcome", "detail"}`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Step {
    pub step: &'static str,
    pub outcome: &'static str,
    pub detail: Value,
}

/// Where the evaluator reports its steps.
pub trait Tracer {
    /// False for [`Silent`]: callers test it before building a step.
    const ON: bool;
    fn push(&mut self, step: &'static str, outcome: &'static str, detail: Value);
}

/// Records nothing, costs nothing: the serving path.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Tracer for Silent {
    const ON: bool = false;
    fn push(&mut self, _: &'static str, _: &'static str, _: Value) {}
}

impl Tracer for Vec<Step> {
    const ON: bool = true;
    fn push(&mut self, step: &'static str, outcome: &'static str, detail: Value) {
        Vec::push(self, Step { step, outcome, detail });
    }
}

fn outcome(pass: bool) -> &'static str {
    if pass { "pass" } else { "fail" }
}

/// The context's value of an attribute, as the constraint saw it.
fn context_value(ctx: &Context, c: &Constraint) -> Value {
    super::context::lookup(ctx, &c.attribute).map_or(Value::Null, super::Attr::to_json)
}

fn operand(op: &Operator) -> Value {
    match op {
        Operator::In(v)
        | Operator::NotIn(v)
        | Operator::StrContains(v)
        | Operator::StrStartsWith(v)
        | Operator::StrEndsWith(v) => json!(v),
        Operator::Regex(r) => json!(r.as_str()),
        Operator::Num(_, n) => json!(n),
        Operator::DateAfter(d) | Operator::DateBefore(d) => json!(d),
        Operator::Semver(_, v) => json!(v.to_string()),
        Operator::InCidr(nets) => json!(nets.iter().map(ToString::to_string).collect::<Vec<_>>()),
    }
}

/// Whether every constraint holds; when tracing, every constraint is tested and reported
/// (`within` names what they guard: `constraints`, or a stage's criteria).
pub fn all_hold<T: Tracer>(
    constraints: &[Constraint],
    ctx: &Context,
    now: chrono::DateTime<chrono::Utc>,
    within: &'static str,
    t: &mut T,
) -> bool {
    if !T::ON {
        return constraint::all_hold(constraints, ctx, now);
    }
    let mut all = true;
    for c in constraints {
        let pass = constraint::holds(c, ctx, now);
        all &= pass;
        let mut detail = json!({
            "within": within,
            "attribute": c.attribute.name,
            "operator": c.operator.name(),
            "values": operand(&c.operator),
            "context_value": context_value(ctx, c),
        });
        if c.inverted {
            detail["inverted"] = json!(true);
        }
        if c.case_insensitive {
            detail["case_insensitive"] = json!(true);
        }
        if let Some(segment) = &c.segment {
            detail["segment"] = json!(segment);
        }
        t.push("constraint", outcome(pass), detail);
    }
    all
}

/// The stickiness value found (or not) for hashing.
pub fn stickiness<T: Tracer>(key: Option<&Scalar<'_>>, group: &str, t: &mut T) {
    if T::ON {
        match key {
            Some(k) => t.push("stickiness", "found", json!({"value": k.as_str(), "group": group})),
            None => t.push(
                "stickiness",
                "missing",
                json!({"group": group, "why": "no stickiness value in the context: outside every percentage"}),
            ),
        }
    }
}
