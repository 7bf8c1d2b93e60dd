//! Criterion benchmarks: evaluation (targeting + gradual stages, an ab_test split, the whole
//! seed file for one context), bucketing, and compiling a 10,000-flag file.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use toggled::eval::{self, Context, FlagState};
use toggled::flags::{self, Snapshot};

fn seed() -> Snapshot {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/flags/feature-flags.yaml"))
        .expect("the seed flag file exists");
    flags::compile(&text).expect("the seed flag file compiles")
}

fn context() -> Context<'static> {
    match json!({"targetingKey": "user-42", "email": "jane@example.com", "beta": "true", "plan": "pro"}) {
        serde_json::Value::Object(m) => Context::from(m),
        _ => unreachable!("a JSON object literal"),
    }
}

/// A file of `n` flags mixing every strategy, with constraints and segments.
pub fn big_file(n: usize) -> String {
    let mut s = String::from(
        "segments:\n  internal: [{attribute: email, operator: STR_ENDS_WITH, values: ['@example.com']}]\n  beta: [{attribute: beta, operator: IN, values: ['true']}]\nfeature_flags:\n",
    );
    for i in 0..n {
        let _ = match i % 4 {
            0 => writeln!(
                s,
                "  flag_{i}:\n    description: generated\n    default_value: false\n    constraints: [{{attribute: plan, operator: IN, values: [pro, team]}}]\n    rollout_strategy: {{type: percentage, percentage: {}}}",
                i % 101
            ),
            1 => writeln!(
                s,
                "  flag_{i}:\n    default_value: false\n    rollout_strategy:\n      type: gradual\n      stages:\n        - {{percentage: 5, duration: 24h, criteria: internal}}\n        - {{percentage: 25, duration: 48h, criteria: beta}}\n        - {{percentage: 100, duration: permanent}}"
            ),
            2 => writeln!(
                s,
                "  flag_{i}:\n    type: variant\n    variants: {{control: a, treatment: b}}\n    default_variant: control\n    rollout_strategy: {{type: ab_test, traffic_split: {{control: 50, treatment: 50}}, duration: 2 weeks}}"
            ),
            _ => writeln!(
                s,
                "  flag_{i}:\n    default_value: true\n    sunset_plan:\n      warning_phase: {{start_date: '2025-01-01', actions: [deprecation_headers, warning_logs]}}\n      shutdown_phase: {{start_date: '2026-01-01', actions: [api_disabled]}}"
            ),
        };
    }
    s
}

fn evaluation(c: &mut Criterion) {
    let snapshot = seed();
    let ctx = context();
    let now = flags::duration::parse_timestamp("2025-01-04T00:00:00Z").expect("valid");
    let state = FlagState {
        first_seen: Some(flags::duration::parse_timestamp("2025-01-01T00:00:00Z").expect("valid")),
        ..FlagState::default()
    };
    let gradual = snapshot.get("new_payment_flow").expect("seed flag");
    let ab = snapshot.get("enhanced_search").expect("seed flag");

    c.bench_function("evaluate/gradual_with_targeting", |b| {
        b.iter(|| eval::evaluate(black_box(gradual), black_box(&ctx), now, &state).reason);
    });
    c.bench_function("evaluate/ab_test_split", |b| {
        b.iter(|| eval::evaluate(black_box(ab), black_box(&ctx), now, &state).variant.len());
    });
    c.bench_function("evaluate/whole_seed_file", |b| {
        b.iter(|| {
            let mut enabled = 0;
            for flag in &snapshot.flags {
                enabled += usize::from(eval::evaluate(flag, black_box(&ctx), now, &state).enabled);
            }
            enabled
        });
    });
    c.bench_function("evaluate/lookup_and_evaluate", |b| {
        b.iter(|| {
            let flag = snapshot.get(black_box("new_payment_flow")).expect("present");
            eval::evaluate(flag, black_box(&ctx), now, &state).reason
        });
    });
    // Rules in order (the fourth, a CIDR match, decides) and a prerequisite evaluated from the
    // same snapshot.
    let targeting = flags::compile(include_str!("../flags/examples/targeting.yaml")).expect("valid");
    let serde_json::Value::Object(office_map) = json!({"targetingKey": "user-42", "remoteAddress": "10.1.2.3"}) else {
        unreachable!("an object literal")
    };
    let office = Context::from(office_map);
    let rules = targeting.get("new_checkout").expect("example flag");
    let dependent = targeting.get("one_click_pay").expect("example flag");
    c.bench_function("evaluate/rules_fourth_matches", |b| {
        b.iter(|| eval::evaluate_in(black_box(rules), black_box(&office), now, &state, &targeting).reason);
    });
    c.bench_function("evaluate/prerequisite_then_rules", |b| {
        b.iter(|| eval::evaluate_in(black_box(dependent), black_box(&office), now, &state, &targeting).reason);
    });
    c.bench_function("bucket/murmur3_group_key", |b| {
        b.iter(|| eval::bucket::bucket(black_box("new_payment_flow"), black_box("user-42")));
    });
}

fn compilation(c: &mut Criterion) {
    let text = big_file(10_000);
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("10k_flags", |b| b.iter(|| flags::compile(black_box(&text)).expect("valid").flags.len()));
    group.bench_function("10k_flags_parse_only", |b| {
        b.iter(|| flags::compile::parse(black_box(&text)).expect("valid").feature_flags.len());
    });
    // The floor of any front end on this parser: the YAML read into nothing (no value built).
    group.bench_function("10k_flags_yaml_only", |b| {
        b.iter(|| serde_saphyr::from_str::<serde::de::IgnoredAny>(black_box(&text)).expect("valid YAML"));
    });
    group.finish();
}

criterion_group!(benches, evaluation, compilation);
criterion_main!(benches);
