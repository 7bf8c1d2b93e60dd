//! Evaluator table tests: every strategy, operator, sunset phase and precedence rule.

use chrono::Duration;
use serde_json::{Value, json};
use toggled::eval::{self, FlagState, Override, Pause, Reason};

use crate::support::{Case, at, check, compile, ctx, eval, eval_with, example, keys_where};

const NOW: &str = "2026-01-01T00:00:00Z";

#[test]
fn design_golden_buckets_through_percentage_rollouts() {
    let s = compile(
        r"
feature_flags:
  flexible:
    rollout_strategy: {type: percentage, percentage: 10, group_id: Feature.flexibleRollout.10}
  ab12a_at_23:
    rollout_strategy: {type: percentage, percentage: 23, group_id: AB12A}
  ab12a_at_22:
    rollout_strategy: {type: percentage, percentage: 22, group_id: AB12A}
  ab12a_at_99:
    rollout_strategy: {type: percentage, percentage: 99, group_id: AB12A}
  ab12a_at_100:
    rollout_strategy: {type: percentage, percentage: 100, group_id: AB12A}
",
    );
    let (on, off) = (json!(true), json!(false));
    check(
        &s,
        "flexible",
        &[
            (json!({"targetingKey": "174"}), NOW, on.clone(), Reason::TargetingMatch),
            (json!({"targetingKey": "499"}), NOW, off.clone(), Reason::Default),
            (json!({"userId": "174"}), NOW, on.clone(), Reason::TargetingMatch),
            (json!({"sessionId": "174"}), NOW, on.clone(), Reason::TargetingMatch),
            (json!({"targetingKey": 174}), NOW, on.clone(), Reason::TargetingMatch),
            (json!({}), NOW, off.clone(), Reason::Default),
            (json!({"targetingKey": ""}), NOW, off.clone(), Reason::Default),
        ],
    );
    check(&s, "ab12a_at_23", &[(json!({"targetingKey": "122"}), NOW, on.clone(), Reason::TargetingMatch)]);
    check(&s, "ab12a_at_22", &[(json!({"targetingKey": "122"}), NOW, off.clone(), Reason::Default)]);
    check(&s, "ab12a_at_99", &[(json!({"targetingKey": "155"}), NOW, off, Reason::Default)]);
    check(&s, "ab12a_at_100", &[(json!({"targetingKey": "155"}), NOW, on, Reason::TargetingMatch)]);
}

#[test]
fn design_golden_variant_picks_through_an_ab_test() {
    let s = compile(
        r"
feature_flags:
  variants_c:
    type: variant
    variants: {first: 1, second: 2, third: 3}
    default_variant: first
    rollout_strategy:
      type: ab_test
      group_id: Feature.Variants.C
      traffic_split: {first: 33, second: 33, third: 33}
",
    );
    check(
        &s,
        "variants_c",
        &[
            (json!({"targetingKey": "232"}), NOW, json!(1), Reason::Split),
            (json!({"targetingKey": "607"}), NOW, json!(2), Reason::Split),
            (json!({"targetingKey": "656"}), NOW, json!(3), Reason::Split),
            (json!({}), NOW, json!(1), Reason::Default),
        ],
    );
    let o = eval(&s, "variants_c", json!({"targetingKey": "607"}), NOW);
    assert_eq!((o.variant.as_str(), o.enabled), ("second", true));
}

#[test]
fn seed_gradual_rollout_advances_stage_by_stage() {
    let s = example("feature-flags.yaml");
    let first_seen = at("2025-01-01T00:00:00Z");
    let state = FlagState { first_seen: Some(first_seen), ..FlagState::default() };
    let group = "new_payment_flow";
    let low = keys_where(group, 1, |b| b <= 5).remove(0);
    let mid = keys_where(group, 1, |b| (6..=25).contains(&b)).remove(0);
    let high = keys_where(group, 1, |b| (26..=50).contains(&b)).remove(0);
    let top = keys_where(group, 1, |b| b > 50).remove(0);
    let internal = |k: &str| json!({"targetingKey": k, "email": "dev@example.com"});
    let beta = |k: &str| json!({"targetingKey": k, "beta": true});
    let plain = |k: &str| json!({"targetingKey": k});
    let run = |c: Value, when: &str| eval_with(&s, "new_payment_flow", c, when, &state);

    // Before the schedule starts: nobody, and no stage.
    let before = run(internal(&low), "2024-12-31T23:59:59Z");
    assert_eq!((before.value, before.reason, before.stage), (json!(false), Reason::Default, None));

    // Stage 1 (first 24h): 5% of internal users.
    let t1 = "2025-01-01T12:00:00Z";
    assert_eq!(run(internal(&low), t1).reason, Reason::TargetingMatch);
    assert_eq!(run(internal(&low), t1).stage, Some(1));
    assert_eq!(run(plain(&low), t1).reason, Reason::Default);
    assert_eq!(run(internal(&mid), t1).reason, Reason::Default);

    // Stage 2 (next 48h): 25% of beta users; stage-1 users keep the feature (monotone).
    let t2 = "2025-01-02T12:00:00Z";
    assert_eq!(run(beta(&mid), t2).stage, Some(2));
    assert_eq!(run(beta(&mid), t2).reason, Reason::TargetingMatch);
    assert_eq!(run(internal(&low), t2).reason, Reason::TargetingMatch);
    assert_eq!(run(plain(&mid), t2).reason, Reason::Default);

    // Stage 3 (next 72h): 50% of everyone.
    let t3 = "2025-01-05T00:00:00Z";
    assert_eq!(run(plain(&high), t3).stage, Some(3));
    assert_eq!(run(plain(&high), t3).value, json!(true));
    assert_eq!(run(plain(&top), t3).value, json!(false));

    // Stage 3 lasts until 24h + 48h + 72h = 6 days in.
    assert_eq!(run(plain(&top), "2025-01-06T23:59:59Z").stage, Some(3));
    // Stage 4 (permanent): everyone with a key, forever.
    for when in ["2025-01-07T00:00:00Z", "2030-01-01T00:00:00Z"] {
        let o = run(plain(&top), when);
        assert_eq!((o.value, o.reason, o.stage), (json!(true), Reason::TargetingMatch, Some(4)));
    }
    assert_eq!(run(json!({}), "2030-01-01T00:00:00Z").reason, Reason::Default);
}

#[test]
fn paused_time_does_not_count_toward_a_stage() {
    let s = example("feature-flags.yaml");
    let first_seen = Some(at("2025-01-01T00:00:00Z"));
    let stage = |pause: Pause, when: &str| {
        let state = FlagState { first_seen, pause, ..FlagState::default() };
        eval_with(&s, "new_payment_flow", json!({"targetingKey": "u"}), when, &state).stage
    };
    // Paused 12h into stage 1 and still paused two days later: still stage 1.
    let paused = Pause { paused_total: Duration::zero(), paused_since: Some(at("2025-01-01T12:00:00Z")) };
    assert_eq!(stage(paused, "2025-01-03T12:00:00Z"), Some(1));
    // Resumed after a 10h pause: stage 1 ends at 34h instead of 24h.
    let resumed = Pause { paused_total: Duration::hours(10), paused_since: None };
    assert_eq!(stage(resumed, "2025-01-02T09:00:00Z"), Some(1));
    assert_eq!(stage(resumed, "2025-01-02T11:00:00Z"), Some(2));
    assert_eq!(stage(Pause::default(), "2025-01-02T09:00:00Z"), Some(2));
}

#[test]
fn gradual_progress_reports_the_next_stage_time() {
    let s = example("feature-flags.yaml");
    let Some(toggled::flags::snapshot::Strategy::Gradual { stages, .. }) =
        &s.get("new_payment_flow").and_then(|f| f.strategy.as_ref())
    else {
        panic!("new_payment_flow is a gradual rollout");
    };
    let start = at("2025-01-01T00:00:00Z");
    let p = eval::rollout::gradual_progress(stages, start, at("2025-01-01T06:00:00Z"), Pause::default());
    assert_eq!(p.map(|p| (p.stage, p.next_stage_at)), Some((0, Some(at("2025-01-02T00:00:00Z")))));
    let p = eval::rollout::gradual_progress(stages, start, at("2025-02-01T00:00:00Z"), Pause::default());
    assert_eq!(p.map(|p| (p.stage, p.next_stage_at)), Some((3, None)));
}

#[test]
fn strategies_example() {
    let s = example("examples/strategies.yaml");
    check(&s, "maintenance_mode", &[(json!({"targetingKey": "u1"}), NOW, json!(false), Reason::Static)]);
    assert!(!eval(&s, "maintenance_mode", json!({}), NOW).enabled);

    // Stickiness on a nested attribute, hashed with the strategy's own group.
    let inside = keys_where("billing-2025", 1, |b| b <= 50).remove(0);
    let outside = keys_where("billing-2025", 1, |b| b > 50).remove(0);
    check(
        &s,
        "per_account_billing",
        &[
            (
                json!({"targetingKey": outside.clone(), "account": {"id": inside.clone()}}),
                NOW,
                json!(true),
                Reason::TargetingMatch,
            ),
            (json!({"targetingKey": inside, "account": {"id": outside}}), NOW, json!(false), Reason::Default),
            (json!({"targetingKey": "u1"}), NOW, json!(false), Reason::Default),
        ],
    );

    // Constraints without a strategy: matching contexts get the rollout value.
    check(
        &s,
        "beta_banner",
        &[
            (json!({"beta": "true", "country": "DE"}), NOW, json!(true), Reason::TargetingMatch),
            (json!({"beta": true, "country": "FR"}), NOW, json!(true), Reason::TargetingMatch),
            (json!({"beta": "true", "country": "US"}), NOW, json!(false), Reason::Default),
            (json!({"country": "DE"}), NOW, json!(false), Reason::Default),
        ],
    );

    // A/B test: pins first, the split during the window, the winner after it.
    let during = "2025-03-05T00:00:00Z";
    let split = eval(&s, "button_color", json!({"targetingKey": "u1"}), during);
    assert_eq!(split.reason, Reason::Split);
    check(
        &s,
        "button_color",
        &[
            (json!({"targetingKey": "qa-user-1"}), during, json!("#00aa55"), Reason::TargetingMatch),
            (json!({"targetingKey": "u1"}), "2025-02-01T00:00:00Z", json!("#0055ff"), Reason::Default),
            (json!({"targetingKey": "u1"}), "2025-03-15T00:00:00Z", json!("#00aa55"), Reason::TargetingMatch),
        ],
    );

    // Scheduled: the latest step in the past applies; nothing before the first.
    let key50 = keys_where("search_ranking", 1, |b| (11..=50).contains(&b)).remove(0);
    check(
        &s,
        "search_ranking",
        &[
            (json!({"targetingKey": key50.clone()}), "2025-04-30T00:00:00Z", json!(1.0), Reason::Default),
            (json!({"targetingKey": key50.clone()}), "2025-05-02T00:00:00Z", json!(1.0), Reason::Default),
            (json!({"targetingKey": key50.clone()}), "2025-05-08T00:00:00Z", json!(1.5), Reason::TargetingMatch),
        ],
    );
    let o = eval(&s, "search_ranking", json!({"targetingKey": key50}), "2025-06-01T00:00:00Z");
    assert_eq!((o.variant.as_str(), o.value.to_string()), ("boosted", "1.5".to_owned()));

    check(&s, "legacy_export", &[(json!({"targetingKey": "u1"}), NOW, json!(true), Reason::Disabled)]);
}

#[test]
fn ab_test_without_a_winner_ends_on_the_default_variant() {
    let s = compile(
        r"
feature_flags:
  exp:
    type: variant
    variants: {a: x, b: y}
    default_variant: a
    rollout_strategy: {type: ab_test, start: '2025-01-01T00:00:00Z', duration: 7d, traffic_split: {a: 1, b: 1}}
",
    );
    let b_user = (0..1000)
        .map(|i| format!("k{i}"))
        .find(|k| eval(&s, "exp", json!({"targetingKey": k}), "2025-01-02T00:00:00Z").variant == "b");
    let b_user = b_user.expect("some key lands in b");
    check(
        &s,
        "exp",
        &[
            (json!({"targetingKey": b_user.clone()}), "2025-01-02T00:00:00Z", json!("y"), Reason::Split),
            (json!({"targetingKey": b_user}), "2025-01-08T00:00:00Z", json!("x"), Reason::Default),
        ],
    );
}

#[test]
fn every_constraint_operator() {
    let s = example("examples/constraints.yaml");
    let t = |c: Value, expected: bool| {
        (c, NOW, json!(expected), if expected { Reason::TargetingMatch } else { Reason::Default })
    };
    let table: &[(&str, Vec<Case>)] = &[
        ("in_list", vec![t(json!({"plan": "pro"}), true), t(json!({"plan": "free"}), false), t(json!({}), false)]),
        (
            "not_in_list",
            vec![
                t(json!({"country": "DE"}), true),
                t(json!({"country": "XX"}), false),
                t(json!({}), true),
                t(json!({"country": null}), true),
            ],
        ),
        (
            "contains",
            vec![t(json!({"userAgent": "Mozilla/5.0 FIREFOX/120"}), true), t(json!({"userAgent": "Chrome"}), false)],
        ),
        ("starts_with", vec![t(json!({"path": "/api/v2/users"}), true), t(json!({"path": "/api/v1/users"}), false)]),
        (
            "ends_with",
            vec![
                t(json!({"email": "a@example.com"}), true),
                t(json!({"email": "a@example.org"}), false),
                t(json!({"email": "a@EXAMPLE.com"}), false),
            ],
        ),
        (
            "regex",
            vec![
                t(json!({"email": "jane.doe@example.com"}), true),
                t(json!({"email": "jane@example.com"}), false),
                t(json!({"email": 5}), false),
            ],
        ),
        (
            "num_eq",
            vec![
                t(json!({"seats": 10}), true),
                t(json!({"seats": "10"}), true),
                t(json!({"seats": 10.0}), true),
                t(json!({"seats": 11}), false),
                t(json!({"seats": "ten"}), false),
            ],
        ),
        ("num_gt", vec![t(json!({"seats": 11}), true), t(json!({"seats": 10}), false)]),
        ("num_gte", vec![t(json!({"seats": 10}), true), t(json!({"seats": 9.99}), false)]),
        (
            "num_lt",
            vec![t(json!({"seats": 10.4}), true), t(json!({"seats": 10.5}), false), t(json!({"seats": true}), false)],
        ),
        ("num_lte", vec![t(json!({"seats": 10}), true), t(json!({"seats": 10.01}), false)]),
        (
            "date_after",
            vec![
                t(json!({}), true),
                t(json!({"currentTime": "2024-12-31T23:59:59Z"}), false),
                t(json!({"currentTime": "2025-01-01T00:00:00Z"}), false),
            ],
        ),
        (
            "date_before",
            vec![
                t(json!({"signupDate": "2023-06-01T00:00:00+02:00"}), true),
                t(json!({"signupDate": "2024-01-01T00:00:00Z"}), false),
                t(json!({"signupDate": "not a date"}), false),
                t(json!({}), false),
            ],
        ),
        (
            "semver_eq",
            vec![
                t(json!({"appVersion": "2.0.0"}), true),
                t(json!({"appVersion": "2.0.0+build.7"}), true),
                t(json!({"appVersion": "2.0.1"}), false),
                t(json!({"appVersion": "2.0"}), false),
            ],
        ),
        (
            "semver_gt",
            vec![
                t(json!({"appVersion": "2.0.0-rc.2"}), true),
                t(json!({"appVersion": "2.0.0-rc.1"}), false),
                t(json!({"appVersion": "2.0.0-beta.9"}), false),
            ],
        ),
        ("semver_gte", vec![t(json!({"appVersion": "2.0.0"}), true), t(json!({"appVersion": "2.0.0-rc.1"}), false)]),
        ("semver_lt", vec![t(json!({"appVersion": "2.0.0-alpha"}), true), t(json!({"appVersion": "2.0.0"}), false)]),
        ("semver_lte", vec![t(json!({"appVersion": "2.0.0"}), true), t(json!({"appVersion": "10.0.0"}), false)]),
        ("inverted", vec![t(json!({"plan": "pro"}), true), t(json!({"plan": "free"}), false), t(json!({}), true)]),
        (
            "nested_attribute",
            vec![
                t(json!({"device": {"os": {"name": "ios"}}}), true),
                t(json!({"device.os.name": "ios"}), true),
                t(json!({"device": {"os": "ios"}}), false),
            ],
        ),
        (
            "by_segment",
            vec![
                t(json!({"email": "a@example.com", "role": "admin"}), true),
                t(json!({"email": "a@example.com", "role": "dev"}), false),
            ],
        ),
    ];
    for (flag, cases) in table {
        check(&s, flag, cases);
    }
    // The file's values are pre-lowered for case-insensitive tests; unicode text still matches.
    let ci = compile(
        r#"
feature_flags:
  ci_in: {constraints: [{attribute: city, operator: IN, values: ["München"], case_insensitive: true}]}
  ci_prefix: {constraints: [{attribute: city, operator: STR_STARTS_WITH, values: ["MÜN"], case_insensitive: true}]}
  numbers_as_text: {constraints: [{attribute: tier, operator: IN, values: [12, "true"]}]}
"#,
    );
    check(&ci, "ci_in", &[t(json!({"city": "MÜNCHEN"}), true), t(json!({"city": "munchen"}), false)]);
    check(&ci, "ci_prefix", &[t(json!({"city": "münchen"}), true)]);
    check(
        &ci,
        "numbers_as_text",
        &[
            t(json!({"tier": 12}), true),
            t(json!({"tier": "12"}), true),
            t(json!({"tier": true}), true),
            t(json!({"tier": [12]}), false),
        ],
    );
}

#[test]
fn sunset_phases_and_their_actions() {
    let s = example("examples/sunset.yaml");
    let flag = s.get("v1_reports_api").expect("flag");
    let run = |when: &str| eval::evaluate(flag, &ctx(json!({"targetingKey": "u1"})), at(when), &FlagState::default());

    let before = run("2024-12-31T00:00:00Z");
    let body = before.sunset.expect("a flag with a plan always reports it").body();
    assert_eq!((body.phase, body.actions.len()), (None, 0));
    assert_eq!((before.value, before.reason), (&json!(true), Reason::Static));
    assert_eq!(before.sunset.map(|s| s.headers().count()), Some(0));

    let warning = run("2025-02-01T00:00:00Z").sunset.expect("plan");
    let headers: Vec<_> = warning.headers().collect();
    assert_eq!(
        headers,
        vec![
            ("Deprecation", "@1735689600"),
            ("Sunset", "Sun, 01 Jun 2025 00:00:00 GMT"),
            ("Link", "<https://docs.example.com/migrate/reports-v2>; rel=\"deprecation\""),
        ]
    );
    assert!(warning.has(toggled::flags::snapshot::SunsetAction::WarningLogs));
    assert_eq!((warning.notice(), warning.rate_limit()), (None, None));

    let restricted = run("2025-04-15T00:00:00Z");
    let sunset = restricted.sunset.expect("plan");
    assert_eq!(sunset.notice(), Some("v1 reports are going away on 2025-06-01: move to /v2/reports."));
    assert_eq!(sunset.rate_limit().map(|r| (r.requests, r.per)), Some((10, Duration::minutes(1))));
    let limited = restricted.rate_limited(flag);
    assert_eq!((limited.value, limited.reason, limited.enabled), (&json!(true), Reason::RateLimited, false));
    assert_eq!(sunset.headers().count(), 2, "restricted keeps deprecation headers but has no link");

    let shutdown = run("2025-06-01T00:00:00Z");
    assert_eq!((shutdown.value, shutdown.reason), (&json!(false), Reason::Sunset));
    assert_eq!(shutdown.sunset.and_then(|s| s.redirect()), Some("https://api.example.com/v2/reports"));

    let body = serde_json::to_value(shutdown.body(flag, "rev1")).expect("serialises");
    assert_eq!(
        body,
        json!({
            "flag": "v1_reports_api", "value": false, "variant": "off", "enabled": false, "reason": "SUNSET",
            "sunset": {"phase": "shutdown", "actions": ["api_disabled", "redirect_to_new_endpoints"],
                       "shutdown_at": "2025-06-01T00:00:00Z"},
            "redirect": "https://api.example.com/v2/reports", "revision": "rev1"
        })
    );

    check(
        &s,
        "old_theme",
        &[
            (json!({"targetingKey": "u"}), "2025-09-01T11:59:59Z", json!("modern"), Reason::TargetingMatch),
            (json!({"targetingKey": "u"}), "2025-09-01T12:00:00Z", json!("modern"), Reason::Sunset),
        ],
    );
}

#[test]
fn seed_legacy_api_serves_true_until_shutdown() {
    let s = example("feature-flags.yaml");
    check(
        &s,
        "legacy_api_deprecation",
        &[
            (json!({"targetingKey": "u1"}), "2023-12-31T00:00:00Z", json!(true), Reason::Static),
            (json!({"targetingKey": "u1"}), "2024-03-01T00:00:00Z", json!(true), Reason::Static),
            (json!({"targetingKey": "u1"}), "2024-05-31T23:59:59Z", json!(true), Reason::Static),
            (json!({"targetingKey": "u1"}), "2024-06-01T00:00:00Z", json!(false), Reason::Sunset),
        ],
    );
    let restricted = eval(&s, "legacy_api_deprecation", json!({}), "2024-04-02T00:00:00Z");
    assert_eq!(restricted.reason, Reason::Static);
    let flag = s.get("legacy_api_deprecation").expect("flag");
    let e = eval::evaluate(flag, &ctx(json!({})), at("2024-04-02T00:00:00Z"), &FlagState::default());
    let sunset = e.sunset.expect("plan");
    assert_eq!(sunset.rate_limit().map(|r| r.requests), Some(toggled::flags::compile::DEFAULT_RATE_LIMIT.requests));
    assert_eq!(
        sunset.notice(),
        Some("Flag 'legacy_api_deprecation' is deprecated and will be shut down on 2024-06-01.")
    );
}

#[test]
fn precedence_override_then_switch_then_sunset_then_targeting() {
    let s = compile(
        r"
feature_flags:
  guarded:
    default_value: false
    constraints: [{attribute: plan, operator: IN, values: [pro]}]
    sunset_plan:
      shutdown_phase: {start_date: '2025-06-01', actions: [api_disabled], shutdown_value: true}
  switched_off:
    default_value: false
    enabled: false
    rollout_strategy: {type: percentage, percentage: 100}
    sunset_plan:
      shutdown_phase: {start_date: '2025-06-01', actions: [api_disabled], shutdown_value: true}
  colors:
    type: variant
    variants: {red: '#f00', blue: '#00f'}
    default_variant: red
    rollout_strategy: {type: percentage, percentage: 100}
",
    );
    let pro = json!({"targetingKey": "u", "plan": "pro"});
    let before = "2025-01-01T00:00:00Z";
    let after = "2025-07-01T00:00:00Z";
    let with = |key: &str, o: Override, when: &str| {
        eval_with(&s, key, pro.clone(), when, &FlagState { override_: Some(&o), ..FlagState::default() })
    };
    // Targeting, then the sunset shutdown over targeting.
    assert_eq!(eval(&s, "guarded", pro.clone(), before).reason, Reason::TargetingMatch);
    assert_eq!(eval(&s, "guarded", json!({"plan": "free"}), before).reason, Reason::Default);
    assert_eq!(eval(&s, "guarded", json!({"plan": "free"}), after).reason, Reason::Sunset);
    // The master switch beats the sunset; an operator override beats everything.
    assert_eq!(eval(&s, "switched_off", pro.clone(), after).reason, Reason::Disabled);
    let killed = with("guarded", Override::Kill, before);
    assert_eq!((killed.value, killed.reason, killed.enabled), (json!(false), Reason::Disabled, false));
    let rolled_back = with("guarded", Override::RolledBack, after);
    assert_eq!((rolled_back.value, rolled_back.reason), (json!(false), Reason::RolledBack));
    let forced = with("guarded", Override::Value(json!(true)), after);
    assert_eq!(
        (forced.value, forced.reason, forced.enabled, forced.variant.as_str()),
        (json!(true), Reason::Override, true, "on")
    );
    let forced_safe = with("guarded", Override::Value(json!(false)), before);
    assert!(!forced_safe.enabled, "forcing the safe value is not enabling");
    // Forcing the switch on ignores `enabled: false` but not the sunset.
    assert_eq!(with("switched_off", Override::Enable, before).reason, Reason::TargetingMatch);
    assert_eq!(with("switched_off", Override::Enable, after).reason, Reason::Sunset);
    // Variant overrides; an unknown variant name serves the safe value.
    let blue = with("colors", Override::Variant("blue".into()), before);
    assert_eq!((blue.value, blue.variant.as_str(), blue.enabled), (json!("#00f"), "blue", true));
    let gone = with("colors", Override::Variant("green".into()), before);
    assert_eq!((gone.value, gone.reason), (json!("#f00"), Reason::Override));
    let odd = with("colors", Override::Value(json!("#abc")), before);
    assert_eq!(odd.variant, "override");
}

#[test]
fn evaluation_body_shape() {
    let s = example("feature-flags.yaml");
    let flag = s.get("enhanced_search").expect("flag");
    let e = eval::evaluate(flag, &ctx(json!({"targetingKey": "607"})), at(NOW), &FlagState::default());
    let body = serde_json::to_value(e.body(flag, &s.revision)).expect("serialises");
    let keys: Vec<&str> = body.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(keys, vec!["enabled", "flag", "reason", "revision", "value", "variant"]);
    assert_eq!(body["reason"], json!("SPLIT"));
    assert_eq!(body["revision"], json!(s.revision));
}

/// The direct writer of an answer gives serde's bytes exactly: every flag of every example file,
/// several contexts and times, with and without an override forcing an odd value, and keys,
/// variants and revisions that need escaping.
#[test]
fn the_direct_answer_writer_matches_serde() {
    let files = [
        "feature-flags.yaml",
        "examples/constraints.yaml",
        "examples/strategies.yaml",
        "examples/sunset.yaml",
        "examples/targeting.yaml",
        "examples/openfeature.yaml",
        "examples/monitoring.yaml",
    ];
    let contexts = [
        ctx(json!({})),
        ctx(json!({"targetingKey": "user-42", "email": "jane@example.com", "beta": "true", "plan": "pro"})),
        ctx(json!({"targetingKey": 7, "country": "DE", "remoteAddress": "10.1.2.3", "appVersion": "2.1.0"})),
    ];
    let odd = Override::Value(json!({"quote": "say \"hi\"\n", "n": [1.5, null, "é"]}));
    let times = [at("2024-01-01T00:00:00Z"), at("2025-06-01T00:00:00Z"), at("2027-01-01T00:00:00Z")];
    let mut compared = 0;
    for file in files {
        let snapshot = example(file);
        for flag in &snapshot.flags {
            for state in [FlagState::default(), FlagState { override_: Some(&odd), ..FlagState::default() }] {
                for c in &contexts {
                    for now in times {
                        let e = eval::evaluate_in(flag, c, now, &state, &snapshot);
                        for (key, revision) in [(flag.key.as_str(), "66d7061a00ee2201"), ("k\"ey\\", "rev\u{1}é")] {
                            let mut body = e.body(flag, revision);
                            body.flag = key;
                            let mut direct = Vec::new();
                            body.write_json(&mut direct);
                            let serde = serde_json::to_vec(&body).expect("serialises");
                            assert_eq!(
                                String::from_utf8_lossy(&direct),
                                String::from_utf8_lossy(&serde),
                                "{file} {}",
                                flag.key
                            );
                            compared += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(compared > 500, "{compared}");
}

/// `hashing: flagd` buckets an A/B split as flagd's `fractional` does (murmur3 of flag key +
/// targeting key, `(hash * total) >> 32`, buckets in file order): the golden buckets of
/// `eval::bucket` (57, 82, 50 of 100) land in the third, fourth and third quarter.
#[test]
fn a_flagd_hashed_split_keeps_flagd_buckets() {
    let snapshot = compile(
        "feature_flags:\n  headerColor:\n    type: variant\n    variants: {red: '#f00', blue: '#00f', green: '#0f0', yellow: '#ff0'}\n    default_variant: red\n    rollout_strategy:\n      type: ab_test\n      hashing: flagd\n      traffic_split: {red: 25, blue: 25, green: 25, yellow: 25}\n",
    );
    for (key, variant) in [("user-1", "green"), ("user-2", "yellow"), ("jon@company.com", "green")] {
        let got = eval(&snapshot, "headerColor", serde_json::json!({"targetingKey": key}), "2026-01-01T00:00:00Z");
        assert_eq!((got.variant.as_str(), got.reason), (variant, Reason::Split), "{key}");
    }
    // Unleash's scheme stays the default, and a word that is neither is a file error.
    let unleash = compile(&std::fs::read_to_string("flags/feature-flags.yaml").expect("the example"));
    assert!(matches!(
        unleash.get("enhanced_search").and_then(|f| f.strategy.as_ref()),
        Some(toggled::flags::snapshot::Strategy::AbTest { hashing: toggled::flags::snapshot::Hashing::Unleash, .. })
    ));
    let bad = "feature_flags:\n  f:\n    type: variant\n    variants: {a: 1, b: 2}\n    default_variant: a\n    rollout_strategy: {type: ab_test, hashing: md5, traffic_split: {a: 1, b: 1}}\n";
    let text = toggled::flags::compile(bad).expect_err("refused").render("f.yaml");
    assert!(text.contains("rollout_strategy.hashing") && text.contains("expected unleash or flagd"), "{text}");
    let wrong_type = "feature_flags:\n  f:\n    rollout_strategy: {type: percentage, percentage: 5, hashing: flagd}\n";
    let text = toggled::flags::compile(wrong_type).expect_err("refused").render("f.yaml");
    assert!(text.contains("`hashing` does not apply to a percentage rollout"), "{text}");
}
