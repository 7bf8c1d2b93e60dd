//! Shared test helpers, by job: evaluating compiled flags (here), the real server as a process
//! (`server`), a metrics source, a real Prometheus and a webhook sink (`observe`), and a
//! throwaway PostgreSQL cluster (`postgres`).

mod observe;
mod postgres;
mod server;

pub use observe::*;
pub use postgres::*;
pub use server::*;

use chrono::{DateTime, Utc};
use serde_json::Value;
use toggled::eval::{self, Context, FlagState, Reason};
use toggled::flags::{self, Snapshot};

pub fn compile(yaml: &str) -> Snapshot {
    flags::compile(yaml).unwrap_or_else(|e| panic!("flag file should compile:\n{e}"))
}

pub fn example(name: &str) -> Snapshot {
    let path = format!("{}/flags/{name}", env!("CARGO_MANIFEST_DIR"));
    compile(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

pub fn at(ts: &str) -> DateTime<Utc> {
    flags::duration::parse_date(ts).unwrap_or_else(|e| panic!("{e}"))
}

pub fn ctx(v: Value) -> Context<'static> {
    match v {
        Value::Object(m) => Context::from(m),
        other => panic!("a context is a JSON object, not {other}"),
    }
}

/// What an evaluation answered, owned, for comparisons.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub value: Value,
    pub variant: String,
    pub reason: Reason,
    pub enabled: bool,
    pub stage: Option<u32>,
}

pub fn eval_with(snapshot: &Snapshot, key: &str, context: Value, now: &str, state: &FlagState<'_>) -> Outcome {
    let flag = snapshot.get(key).unwrap_or_else(|| panic!("no flag {key}"));
    let e = eval::evaluate(flag, &ctx(context), at(now), state);
    Outcome {
        value: e.value.clone(),
        variant: e.variant.to_owned(),
        reason: e.reason,
        enabled: e.enabled,
        stage: e.stage,
    }
}

pub fn eval(snapshot: &Snapshot, key: &str, context: Value, now: &str) -> Outcome {
    eval_with(snapshot, key, context, now, &FlagState::default())
}

/// One table row: (context, time, expected value, expected reason).
pub type Case<'a> = (Value, &'a str, Value, Reason);

/// Table test: evaluates every row and compares value and reason.
pub fn check(snapshot: &Snapshot, key: &str, cases: &[Case<'_>]) {
    for (i, (context, now, value, reason)) in cases.iter().enumerate() {
        let got = eval(snapshot, key, context.clone(), now);
        assert_eq!(
            (&got.value, got.reason),
            (value, *reason),
            "{key} case {i}: context {context} at {now} gave {got:?}"
        );
    }
}

/// The first targeting keys `user-N` whose rollout bucket for `group` satisfies `pred`.
pub fn keys_where(group: &str, count: usize, pred: impl Fn(u32) -> bool) -> Vec<String> {
    (0..100_000).map(|i| format!("user-{i}")).filter(|k| pred(eval::bucket::bucket(group, k))).take(count).collect()
}
