//! Properties of evaluation: monotone stages, split proportions, 0% and 100%, determinism,
//! and totality (no input makes the loader or the evaluator panic).

use proptest::prelude::*;
use serde_json::{Value, json};
use toggled::eval::{self, FlagState, Reason};

use crate::support::{at, compile, ctx, eval_with, example};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![Just("2.0.0-rc.1"), Just("2025-01-01T00:00:00Z"), Just("a@example.com"), Just("true")]
            .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z.]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_context() -> impl Strategy<Value = Value> {
    let keys = prop_oneof![
        Just("targetingKey".to_owned()),
        Just("userId".to_owned()),
        Just("email".to_owned()),
        Just("beta".to_owned()),
        Just("seats".to_owned()),
        Just("appVersion".to_owned()),
        Just("currentTime".to_owned()),
        Just("device".to_owned()),
        "[a-zA-Z.]{1,8}",
    ];
    prop::collection::btree_map(keys, arb_json(), 0..6).prop_map(|m| Value::Object(m.into_iter().collect()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn gradual_stages_never_take_the_feature_away(
        key in "[a-z0-9]{1,12}",
        internal in any::<bool>(),
        beta in any::<bool>(),
        t1 in 0i64..(10 * 86_400),
        dt in 0i64..(10 * 86_400),
    ) {
        let s = example("feature-flags.yaml");
        let start = at("2025-01-01T00:00:00Z");
        let state = FlagState { first_seen: Some(start), ..FlagState::default() };
        let mut c = json!({"targetingKey": key, "beta": beta.to_string()});
        if internal { c["email"] = json!("x@example.com"); }
        let flag = s.get("new_payment_flow").expect("flag");
        let eval_at = |secs: i64| eval::evaluate(flag, &ctx(c.clone()), start + chrono::Duration::seconds(secs), &state).enabled;
        prop_assert!(!eval_at(t1) || eval_at(t1 + dt), "lost the feature between {t1}s and {}s", t1 + dt);
    }

    #[test]
    fn zero_percent_matches_nobody_and_hundred_everybody(key in ".{1,40}", group in "[a-zA-Z0-9._-]{1,20}") {
        let s = compile(&format!(
            "feature_flags:\n  none: {{rollout_strategy: {{type: percentage, percentage: 0, group_id: '{group}'}}}}\n  all: {{rollout_strategy: {{type: percentage, percentage: 100, group_id: '{group}'}}}}\n"
        ));
        let c = json!({"targetingKey": key});
        let none = eval_with(&s, "none", c.clone(), "2026-01-01", &FlagState::default());
        let all = eval_with(&s, "all", c, "2026-01-01", &FlagState::default());
        prop_assert_eq!((none.value, none.reason), (json!(false), Reason::Default));
        prop_assert_eq!((all.value, all.reason), (json!(true), Reason::TargetingMatch));
    }

    #[test]
    fn evaluation_is_deterministic_and_total(c in arb_context(), secs in 0i64..4_000_000_000) {
        let now = chrono::DateTime::from_timestamp(secs, 0).expect("in range");
        for file in ["feature-flags.yaml", "examples/strategies.yaml", "examples/constraints.yaml", "examples/sunset.yaml", "examples/monitoring.yaml"] {
            let a = example(file);
            let b = example(file);
            for flag in &a.flags {
                let context = ctx(c.clone());
                let x = eval::evaluate(flag, &context, now, &FlagState::default());
                let y = eval::evaluate(b.get(&flag.key).expect("same file"), &context, now, &FlagState::default());
                prop_assert_eq!((x.value, x.variant, x.reason, x.stage), (y.value, y.variant, y.reason, y.stage));
            }
        }
    }

    #[test]
    fn the_loader_never_panics_on_arbitrary_text(text in ".{0,400}") {
        let _ = toggled::flags::compile(&text);
    }

    #[test]
    fn the_loader_never_panics_on_mutated_flag_files(
        file in prop_oneof![Just("feature-flags.yaml"), Just("examples/strategies.yaml"), Just("examples/sunset.yaml"), Just("examples/constraints.yaml")],
        edits in prop::collection::vec((any::<prop::sample::Index>(), prop_oneof![Just(""), Just(":"), Just("- "), Just("\n  "), Just("["), Just("{"), Just("&a "), Just("*a"), Just("'"), Just("\""), Just("100"), Just("-1"), Just("yes"), Just("~"), Just("!!str ")]), 1..6),
    ) {
        let path = format!("{}/flags/{file}", env!("CARGO_MANIFEST_DIR"));
        let mut text = std::fs::read_to_string(path).expect("example exists");
        for (idx, insert) in edits {
            let mut at = idx.index(text.len() + 1);
            while !text.is_char_boundary(at) { at -= 1; }
            let cut = (at + 3).min(text.len());
            let cut = (cut..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
            text.replace_range(at..cut, insert);
        }
        if let Ok(snapshot) = toggled::flags::compile(&text) {
            for flag in &snapshot.flags {
                let _ = eval::evaluate(flag, &ctx(json!({"targetingKey": "u"})), at("2025-01-01"), &FlagState::default());
            }
        }
    }
}

#[test]
fn a_25_25_50_split_over_100k_keys_lands_within_one_point() {
    let s = compile(
        "feature_flags:\n  split:\n    type: variant\n    variants: {a: 1, b: 2, c: 3}\n    default_variant: a\n    rollout_strategy: {type: ab_test, traffic_split: {a: 25, b: 25, c: 50}}\n",
    );
    let flag = s.get("split").expect("flag");
    let now = at("2026-01-01");
    let mut counts = [0u32; 3];
    let mut c = ctx(json!({}));
    for i in 0..100_000 {
        c.insert("targetingKey", eval::Attr::Str(format!("user-{i}").into()));
        let e = eval::evaluate(flag, &c, now, &FlagState::default());
        assert_eq!(e.reason, Reason::Split);
        counts[e.value.as_u64().expect("number") as usize - 1] += 1;
    }
    for (count, expected) in counts.iter().zip([25.0, 25.0, 50.0]) {
        let share = f64::from(*count) / 1000.0;
        assert!((share - expected).abs() <= 1.0, "share {share}% vs {expected}% ({counts:?})");
    }
}

#[test]
fn a_30_percent_rollout_admits_thirty_percent() {
    let s = example("examples/strategies.yaml");
    let flag = s.get("dark_mode").expect("flag");
    let now = at("2026-01-01");
    let inside = (0..100_000)
        .filter(|i| {
            eval::evaluate(flag, &ctx(json!({"targetingKey": format!("k{i}")})), now, &FlagState::default()).enabled
        })
        .count();
    assert!((29_000..=31_000).contains(&inside), "{inside} of 100000 inside a 30% rollout");
}
