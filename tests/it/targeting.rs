//! Ordered rules, prerequisites and `IN_CIDR` (the contract, section 1.5), as tables over the
//! example file, plus the file errors they can have and their effect over HTTP.

use reqwest::Method;
use serde_json::{Value, json};
use toggled::eval::{self, FlagState, Reason};
use toggled::flags::Snapshot;

use crate::support::{Server, Workdir, at, ctx, example, keys_where};

const NOW: &str = "2026-01-01T00:00:00Z";

/// (value, reason, rule) of `key` for `context`, prerequisites from the same snapshot.
fn answer(snapshot: &Snapshot, key: &str, context: Value) -> (Value, Reason, Option<String>) {
    let flag = snapshot.get(key).expect("flag");
    let e = eval::evaluate_in(flag, &ctx(context), at(NOW), &FlagState::default(), snapshot);
    (e.value.clone(), e.reason, e.rule.map(str::to_owned))
}

#[test]
fn rules_decide_in_order_and_fall_through() {
    let s = example("examples/targeting.yaml");
    let beta_inside = keys_where("new_checkout", 1, |b| b <= 50).remove(0);
    let beta_outside = keys_where("new_checkout", 1, |b| b > 50).remove(0);
    let rule = |name: &str| Some(name.to_owned());
    let cases = [
        (json!({"targetingKey": "u1", "email": "a@example.com", "country": "DE"}), json!(true), rule("staff")),
        (json!({"targetingKey": beta_inside, "beta": "true"}), json!(true), rule("beta-half")),
        (json!({"targetingKey": beta_outside, "beta": "true"}), json!(false), None),
        (json!({"targetingKey": beta_outside, "beta": "true", "country": "DE"}), json!(true), rule("germany")),
        (json!({"targetingKey": "u1", "remoteAddress": "10.200.0.1"}), json!(true), rule("office-network")),
        (json!({"targetingKey": "u1", "remoteAddress": "2001:db8::1"}), json!(true), rule("office-network")),
        (json!({"targetingKey": "u1", "remoteAddress": "192.0.2.7"}), json!(true), rule("office-network")),
        (json!({"targetingKey": "u1", "remoteAddress": "192.0.2.8"}), json!(false), None),
        (json!({"targetingKey": "u1", "remoteAddress": "not an address"}), json!(false), None),
        (json!({"targetingKey": "u1"}), json!(false), None),
    ];
    for (context, value, decided_by) in cases {
        let (got, reason, rule) = answer(&s, "new_checkout", context.clone());
        assert_eq!((&got, &rule), (&value, &decided_by), "{context}");
        let expected = if value == json!(true) { Reason::TargetingMatch } else { Reason::Default };
        assert_eq!(reason, expected, "{context}");
    }
    // Variant rules, with their own stickiness.
    assert_eq!(answer(&s, "checkout_theme", json!({"theme": "dark"})).0, json!("dark"));
    let holiday = keys_where("checkout_theme", 1, |b| b <= 50).remove(0);
    let (v, _, r) = answer(&s, "checkout_theme", json!({"userId": holiday, "country": "FR"}));
    assert_eq!((v, r), (json!("holiday"), Some("holiday-half".to_owned())));
    assert_eq!(answer(&s, "checkout_theme", json!({"country": "FR"})).1, Reason::Default, "no userId: outside");
}

#[test]
fn prerequisites_are_evaluated_first_from_the_same_snapshot() {
    let s = example("examples/targeting.yaml");
    let staff = json!({"targetingKey": "u1", "email": "a@example.com"});
    assert_eq!(answer(&s, "one_click_pay", staff).0, json!(true));
    let (v, reason, _) = answer(&s, "one_click_pay", json!({"targetingKey": "u1"}));
    assert_eq!((v, reason), (json!(false), Reason::PrerequisiteFailed));
    // A variant prerequisite, and an empty NOT_IN list that admits everyone (Unleash's meaning).
    assert_eq!(answer(&s, "dark_receipts", json!({"theme": "dark", "plan": "pro"})).0, json!(true));
    assert_eq!(answer(&s, "dark_receipts", json!({"theme": "light"})).1, Reason::PrerequisiteFailed);
    // Alone (without its snapshot) a flag with prerequisites cannot be decided: safe value.
    let flag = s.get("one_click_pay").expect("flag");
    let alone = eval::evaluate(flag, &ctx(json!({"email": "a@example.com"})), at(NOW), &FlagState::default());
    assert_eq!(alone.reason, Reason::PrerequisiteFailed);
}

#[test]
fn empty_lists_mean_what_they_mean_in_unleash() {
    let yaml = r#"
feature_flags:
  nobody: {default_value: false, constraints: [{attribute: plan, operator: IN, values: []}]}
  everybody: {default_value: false, constraints: [{attribute: plan, operator: NOT_IN, values: []}]}
  no_network: {default_value: false, constraints: [{attribute: ip, operator: IN_CIDR, values: []}]}
"#;
    let s = crate::support::compile(yaml);
    for (flag, value) in [("nobody", false), ("everybody", true), ("no_network", false)] {
        assert_eq!(answer(&s, flag, json!({"plan": "pro", "ip": "10.0.0.1"})).0, json!(value), "{flag}");
    }
    let bad = "feature_flags:\n  f: {constraints: [{attribute: n, operator: NUM_GT, values: []}]}\n";
    assert!(toggled::flags::compile(bad).is_err(), "single-value operators still need their value");
}

/// A rule's `percentage` in front of its A/B split admits a share and splits it (Unleash's
/// flexible rollout with strategy variants); a context outside the share falls through. A
/// prerequisite on `variants` holds for any of them.
#[test]
fn a_rule_share_gates_its_split_and_a_prerequisite_takes_any_of_its_variants() {
    let yaml = r#"
feature_flags:
  banner:
    type: variant
    variants: {none: "", red: "r", blue: "b"}
    default_variant: none
    rules:
      - name: half
        percentage: 50
        group_id: g
        rollout_strategy: {type: ab_test, traffic_split: {red: 500, blue: 500}, group_id: g}
  coloured_footer:
    default_value: false
    requires: [{flag: banner, variants: [red, blue]}]
    rules: [{name: all, serve: true}]
"#;
    let s = crate::support::compile(yaml);
    let inside = keys_where("g", 1, |b| b <= 50);
    let outside = keys_where("g", 1, |b| b > 50);
    let (v, reason, rule) = answer(&s, "banner", json!({"targetingKey": inside[0]}));
    assert!(v == json!("r") || v == json!("b"), "{v}");
    assert_eq!((reason, rule.as_deref()), (Reason::Split, Some("half")));
    assert_eq!(answer(&s, "coloured_footer", json!({"targetingKey": inside[0]})).0, json!(true));
    let (v, reason, rule) = answer(&s, "banner", json!({"targetingKey": outside[0]}));
    assert_eq!((v, reason, rule), (json!(""), Reason::Default, None), "outside the share: falls through");
    let (v, reason, _) = answer(&s, "coloured_footer", json!({"targetingKey": outside[0]}));
    assert_eq!((v, reason), (json!(false), Reason::PrerequisiteFailed));
}

#[test]
fn rule_and_prerequisite_mistakes_are_file_errors_naming_what_is_wrong() {
    let cases = [
        (
            "feature_flags:\n  a: {requires: [{flag: b, enabled: true}]}\n  b: {requires: [{flag: c, enabled: true}]}\n  c: {requires: [{flag: a, enabled: true}]}\n",
            "prerequisites form a cycle: a -> b -> c -> a",
        ),
        (
            "feature_flags:\n  a: {requires: [{flag: nope, enabled: true}]}\n",
            "a.requires[0].flag: unknown flag \"nope\"",
        ),
        ("feature_flags:\n  a: {requires: [{flag: a, enabled: true}]}\n", "a cannot require itself"),
        (
            "feature_flags:\n  a: {requires: [{flag: b, variant: blue}]}\n  b: {default_value: true}\n",
            "\"blue\" is not a variant of b",
        ),
        (
            "feature_flags:\n  a: {requires: [{flag: b}]}\n  b: {}\n",
            "exactly one of `enabled`, `variant`, `variants` (not empty), `value`",
        ),
        (
            "feature_flags:\n  a: {requires: [{flag: b, variants: []}]}\n  b: {}\n",
            "exactly one of `enabled`, `variant`, `variants` (not empty), `value`",
        ),
        (
            "feature_flags:\n  a: {requires: [{flag: b, variants: [x, blue]}]}\n  b: {type: variant, variants: {x: 1}, default_variant: x}\n",
            "a.requires[0].variant: \"blue\" is not a variant of b",
        ),
        (
            "feature_flags:\n  a: {default_value: false, fallback: nobody}\n",
            "a.fallback: fallback \"nobody\": expected default_variant or caller",
        ),
        (
            "feature_flags:\n  a: {default_value: false, change_control: maybe}\n",
            "a.change_control: change_control \"maybe\": expected none or approval",
        ),
        (
            "feature_flags:\n  a: {rules: [{name: r, percentage: 10, rollout_strategy: {type: percentage, percentage: 5}}]}\n",
            "a rule's `percentage` goes with an `ab_test` strategy",
        ),
        (
            "feature_flags:\n  a: {type: variant, variants: {x: 1, y: 2}, default_variant: x, rules: [{name: r, variant: y, rollout_strategy: {type: ab_test, traffic_split: {x: 1}}}]}\n",
            "a rule with a `rollout_strategy` serves what it decides",
        ),
        ("feature_flags:\n  a: {rules: [{name: r}]}\n", "a rule serves something"),
        ("feature_flags:\n  a: {rules: [{name: r, serve: 3}]}\n", "a.rules[0].serve: serve 3: expected true or false"),
        ("feature_flags:\n  a: {rules: [{name: r, serve: true}, {name: r, serve: false}]}\n", "a name of its own"),
        ("feature_flags:\n  a: {rules: [{name: r, stickiness: userId, serve: true}]}\n", "goes with `percentage`"),
        (
            "feature_flags:\n  a: {rules: [{name: r, constraints: [{attribute: ip, operator: IN_CIDR, values: [10.0.0.0/33]}], serve: true}]}\n",
            "is not an IP network",
        ),
    ];
    for (yaml, expected) in cases {
        let text = toggled::flags::compile(yaml).expect_err(expected).render("f.yaml");
        assert!(text.contains(expected), "{expected}\n{text}");
        assert!(text.starts_with("f.yaml:"), "every error has a position: {text}");
    }
}

#[test]
fn a_kill_switch_on_a_prerequisite_turns_its_dependents_off() {
    let dir = Workdir::new(include_str!("../../flags/examples/targeting.yaml"));
    let server = Server::start(&dir, &[]);
    let staff = json!({"targetingKey": "u1", "email": "a@example.com"});
    let on = server.evaluate("one_click_pay", &staff);
    assert_eq!((&on["value"], &on["reason"]), (&json!(true), &json!("TARGETING_MATCH")));
    let decided = server.evaluate("new_checkout", &staff);
    assert_eq!(decided["rule"], json!("staff"), "the answer names its rule: {decided}");
    let (status, _) = server.admin(Method::PUT, "/flags/new_checkout", Some(json!({"enabled": false})));
    assert_eq!(status, 200);
    let off = server.evaluate("one_click_pay", &staff);
    assert_eq!((&off["value"], &off["reason"]), (&json!(false), &json!("PREREQUISITE_FAILED")));
    let r = crate::support::http()
        .post(server.url("/ofrep/v1/evaluate/flags/one_click_pay"))
        .json(&json!({"context": staff}))
        .send()
        .expect("request");
    let ofrep: Value = r.json().expect("JSON");
    assert_eq!(
        (&ofrep["reason"], &ofrep["metadata"]["toggledReason"]),
        (&json!("DEFAULT"), &json!("PREREQUISITE_FAILED"))
    );
    let all: Value = crate::support::http()
        .post(server.url("/evaluate/all"))
        .json(&json!({"context": staff}))
        .send()
        .expect("request")
        .json()
        .expect("JSON");
    assert_eq!(all["flags"]["one_click_pay"]["reason"], json!("PREREQUISITE_FAILED"));
    // explain shows the prerequisite and the rules tried.
    let explained: Value = crate::support::http()
        .post(server.url("/evaluate"))
        .json(&json!({"flag": "one_click_pay", "context": staff, "explain": true}))
        .send()
        .expect("request")
        .json()
        .expect("JSON");
    let steps = explained["explain"].as_array().expect("steps");
    let prerequisite = steps.iter().find(|s| s["step"] == "prerequisite").expect("a prerequisite step");
    assert_eq!((&prerequisite["outcome"], &prerequisite["detail"]["flag"]), (&json!("unmet"), &json!("new_checkout")));
}
