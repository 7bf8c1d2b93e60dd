//! The evaluation hot path allocates nothing: counted per thread by a counting allocator.

use serde_json::json;
use toggled::eval::{self, FlagState};

use crate::support::{at, ctx, example};

#[test]
fn evaluating_with_targeting_allocates_nothing() {
    let seed = example("feature-flags.yaml");
    let constraints = example("examples/constraints.yaml");
    let strategies = example("examples/strategies.yaml");
    let sunset = example("examples/sunset.yaml");
    let targeting = example("examples/targeting.yaml");
    let context = ctx(json!({
        "targetingKey": "user-42", "email": "jane.doe@example.com", "beta": true, "plan": "pro",
        "seats": 12, "appVersion": "2.0.0-rc.2", "signupDate": "2023-01-01T00:00:00Z",
        "userAgent": "Mozilla/5.0 Firefox/120", "device": {"os": {"name": "ios"}}, "account": {"id": 9001},
        "country": "DE", "path": "/api/v2/x", "remoteAddress": "2001:db8::7", "theme": "dark",
    }));
    let numeric_key = ctx(json!({"targetingKey": 123_456_789, "email": "a@example.com"}));
    let state = FlagState { first_seen: Some(at("2025-01-01T00:00:00Z")), ..FlagState::default() };
    let times = [
        at("2025-01-01T12:00:00Z"),
        at("2025-01-04T00:00:00Z"),
        at("2025-03-05T00:00:00Z"),
        at("2025-04-15T00:00:00Z"),
        at("2026-01-01T00:00:00Z"),
    ];
    let files = [&seed, &constraints, &strategies, &sunset, &targeting];
    let run_all = || {
        let mut evaluated = 0;
        for now in times {
            for file in files {
                for flag in &file.flags {
                    for c in [&context, &numeric_key] {
                        // Prerequisites from the same snapshot, rules in order: still nothing allocated.
                        let e = eval::evaluate_in(flag, c, now, &state, file);
                        std::hint::black_box((e.value, e.reason, e.sunset.map(|s| (s.notice(), s.headers().count()))));
                        evaluated += 1;
                    }
                }
            }
        }
        evaluated
    };
    // The regex engine builds a per-thread match cache on first use: one warm-up pass.
    let warm_up = allocation_counter::measure(|| {
        run_all();
    });
    assert!(warm_up.count_total < 100, "warm-up allocated {warm_up:?}");
    let mut evaluated = 0;
    let info = allocation_counter::measure(|| evaluated = run_all());
    assert!(evaluated > 300, "evaluated {evaluated}");
    assert_eq!(info.count_total, 0, "{evaluated} evaluations allocated: {info:?}");
}

/// A request's context is read borrowed: names and strings point into the body, so a flat
/// context costs one allocation (its list of attributes) however many strings it has. Escaped
/// text and nested objects are what allocate more.
#[test]
fn reading_a_flat_context_allocates_once() {
    let body = br#"{"targetingKey":"user-42","email":"u42@example.com","plan":"pro","beta":"true","seats":12,"admin":false,"ratio":0.5,"none":null}"#;
    let mut ctx = None;
    let info = allocation_counter::measure(|| {
        ctx = Some(serde_json::from_slice::<eval::Context<'_>>(body).expect("an object"));
    });
    assert_eq!(info.count_total, 1, "{info:?}");
    let ctx = ctx.expect("read");
    assert_eq!(ctx.get("email").and_then(eval::Attr::as_str), Some("u42@example.com"));
    assert_eq!(ctx.get("seats"), Some(&eval::Attr::Number(12.into())));

    let escaped = br#"{"targetingKey":"user-\"42\"","device":{"os":"ios"}}"#;
    let info = allocation_counter::measure(|| {
        std::hint::black_box(serde_json::from_slice::<eval::Context<'_>>(escaped).expect("an object"));
    });
    assert!(info.count_total > 1, "escaped text and nested objects are copied: {info:?}");
}
