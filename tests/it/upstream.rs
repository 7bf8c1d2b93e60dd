//! Edge mode: a toggled that follows another server's Unleash client API (here a second
//! toggled) answers what the upstream answers, follows its changes (a file edit, a kill
//! switch) within a poll, forwards SDK reports to it, and keeps serving the last good flags when
//! the upstream is down or answers garbage, also after a restart (from the backup file).

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN, MetricSource, PATIENCE, Server, Workdir, eventually, http};
use crate::unleash::{CLIENT_TOKEN, FLAGS, contexts, with_sdk_tokens};

/// What a frontend SDK would be told for `context`: `{flag: [enabled, variant, payload]}`.
fn frontend(server: &Server, context: &Value) -> Value {
    let mut query = vec![("userId".to_owned(), context["userId"].as_str().unwrap_or_default().to_owned())];
    for (k, v) in context["properties"].as_object().into_iter().flatten() {
        query.push((format!("properties[{k}]"), v.as_str().unwrap_or_default().to_owned()));
    }
    let url = reqwest::Url::parse_with_params(&server.url("/api/frontend"), &query).expect("a URL");
    let body: Value = http().get(url).header("Authorization", ADMIN).send().expect("request").json().expect("JSON");
    let mut out = serde_json::Map::new();
    for t in body["toggles"].as_array().expect("toggles") {
        let v = &t["variant"];
        out.insert(t["name"].as_str().expect("name").to_owned(), json!([t["enabled"], v["name"], v["payload"]]));
    }
    Value::Object(out)
}

fn answers(server: &Server) -> Vec<Value> {
    contexts().iter().map(|c| frontend(server, c)).collect()
}

fn ready(server: &Server) -> (u16, Value) {
    let r = http().get(server.url("/ready")).send().expect("request");
    (r.status().as_u16(), r.json().expect("JSON"))
}

/// A toggled following `upstream` from `dir`, polling every 100 ms.
fn follower(dir: &Workdir, upstream: &str) -> Server {
    let args = ["--upstream", upstream, "--upstream-token", CLIENT_TOKEN, "--upstream-interval", "100ms"];
    Server::start(dir, &args)
}

#[test]
fn a_follower_answers_as_its_upstream_follows_it_and_survives_its_loss() {
    let up_dir = Workdir::new(FLAGS);
    let upstream = with_sdk_tokens(&up_dir);
    let down_dir = Workdir::new("");
    std::fs::remove_file(down_dir.path().join("flags/feature-flags.yaml")).expect("no flag file yet");
    let mut down = follower(&down_dir, &upstream.base);
    eventually(PATIENCE, || (ready(&down).0 == 200).then_some(()));
    let (_, body) = ready(&down);
    assert_eq!(body["upstream"]["up"], json!(true), "{body}");
    assert_eq!(body["upstream"]["untranslated"], json!([]), "{body}");
    let want = answers(&upstream);
    assert!(want.iter().all(|a| a.get("killed_later").is_some()), "on for everyone until killed");
    assert!(want.iter().any(|a| a.as_object().is_some_and(|m| m.len() >= 3)), "the contexts see flags: {want:?}");
    assert_eq!(answers(&down), want, "the follower answers as the upstream");
    // The backup is written for the server to load: JSON, which its fast reader takes.
    let backup = std::fs::read_to_string(down_dir.path().join("flags/feature-flags.yaml")).expect("the backup");
    assert!(toggled::flags::compile::parse_json(&backup).is_some(), "{backup}");

    // A change upstream: a file edit, then a kill switch, each followed within a few polls.
    upstream.write_flags(&FLAGS.replace(
        "rollout_strategy: {type: percentage, percentage: 100}\n  static_on",
        "rollout_strategy: {type: percentage, percentage: 0}\n  static_on",
    ));
    eventually(PATIENCE, || (answers(&upstream) != want).then_some(()));
    eventually(PATIENCE, || (answers(&down) == answers(&upstream)).then_some(()));
    let (status, _) =
        upstream.admin(Method::PUT, "/flags/killed_later", Some(json!({"enabled": false, "reason": "test"})));
    assert_eq!(status, 200);
    eventually(PATIENCE, || (frontend(&down, &contexts()[0]).get("killed_later").is_none()).then_some(()));
    let followed = answers(&down);
    assert_eq!(followed, answers(&upstream));
    eventually(PATIENCE, || (down.metric(r#"toggled_upstream_polls_total{outcome="changed"}"#) >= 3.0).then_some(()));

    // SDK reports reach the upstream.
    let report = json!({"appName": "shop-web", "instanceId": "i-1", "bucket": {"start": "2026-01-01T00:00:00Z", "stop": "2026-01-01T00:01:00Z", "toggles": {"checkout": {"yes": 4, "no": 1, "variants": {}}}}});
    let r =
        http().post(down.url("/api/client/metrics")).header("Authorization", ADMIN).json(&report).send().expect("post");
    assert_eq!(r.status(), 202);
    let registration = json!({"appName": "shop-web", "instanceId": "i-1", "sdkVersion": "unleash-client-node:6.12.1", "strategies": [], "started": "2026-01-01T00:00:00Z", "interval": 15000});
    let r = http()
        .post(down.url("/api/client/register"))
        .header("Authorization", ADMIN)
        .json(&registration)
        .send()
        .expect("post");
    assert_eq!(r.status(), 202);
    eventually(PATIENCE, || {
        (upstream.metric(r#"toggled_sdk_evaluations_total{flag="checkout",result="yes",app="shop-web"}"#) == 4.0)
            .then_some(())
    });
    // The registration arrives too: only it carries the SDK's version.
    eventually(PATIENCE, || {
        let (_, instances) = upstream.admin(Method::GET, "/sdk-instances", None);
        let list = instances["instances"].as_array().cloned().unwrap_or_default();
        list.iter().any(|i| i["app"] == "shop-web" && i["sdk"] == "unleash-client-node:6.12.1").then_some(())
    });
    eventually(PATIENCE, || {
        (down.metric(r#"toggled_upstream_forwards_total{outcome="forwarded"}"#) >= 2.0).then_some(())
    });

    // The upstream goes away: the last good flags stay served, and /ready and /metrics say so.
    drop(upstream);
    eventually(PATIENCE, || (ready(&down).1["upstream"]["up"] == json!(false)).then_some(()));
    let (status, body) = ready(&down);
    assert_eq!(status, 200, "still serving: {body}");
    assert!(body["upstream"]["error"].as_str().is_some_and(|e| e.contains("unreachable")), "{body}");
    assert_eq!(down.metric("toggled_upstream_up"), 0.0);
    assert_eq!(answers(&down), followed);

    // A restart while the upstream answers garbage: the backup is served at once, garbage changes nothing.
    down.kill9();
    drop(down);
    let garbage = MetricSource::start();
    garbage.set("not_a_feature", 1.0);
    let again = follower(&down_dir, &format!("http://{}", garbage.addr));
    eventually(PATIENCE, || {
        (ready(&again).1["upstream"]["error"].as_str().is_some_and(|e| e.contains("cannot read"))).then_some(())
    });
    let (status, body) = ready(&again);
    assert_eq!(status, 200, "served from the backup: {body}");
    assert_eq!(answers(&again), followed);
    assert!(again.metric(r#"toggled_upstream_polls_total{outcome="failed"}"#) >= 1.0);
}

#[test]
fn edge_mode_needs_a_token_and_an_http_url() {
    let dir = Workdir::new(FLAGS);
    for (args, says) in [
        (vec!["--upstream", "http://127.0.0.1:1"], "upstream-token"),
        (vec!["--upstream", "ftp://x", "--upstream-token", "t"], "--upstream must be an http(s) URL"),
        (vec!["--upstream", "http://x", "--upstream-token", "t", "--upstream-interval", "0s"], "--upstream-interval"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_toggled"))
            .arg("serve")
            .args(&args)
            .arg("--flags")
            .arg(dir.path().join("flags/feature-flags.yaml"))
            .arg("--database")
            .arg(format!("sqlite://{}", dir.path().join("t.db").display()))
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
