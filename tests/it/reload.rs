//! Hot reload against a real server: in-place writes, write-then-rename, a ConfigMap-style
//! `..data` symlink swap, delete-then-recreate, invalid files (the last good one keeps
//! serving), `POST /reload`, starting on a broken file, and 200 rewrites under load.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{PATIENCE, Server, Workdir, eventually, http};

fn file(value: bool) -> String {
    format!("feature_flags:\n  switch:\n    default_value: {value}\n")
}

fn switch(server: &Server) -> Value {
    server.evaluate("switch", &json!({}))["value"].clone()
}

/// Polls until the server answers `value` (tolerating 503 while nothing is loaded).
fn wait_for(server: &Server, value: bool) {
    eventually(PATIENCE, || {
        let r = http().post(server.url("/evaluate")).json(&json!({"flag": "switch"})).send().ok()?;
        let body: Value = r.json().ok()?;
        (body["value"] == json!(value)).then_some(())
    });
}

#[test]
fn in_place_writes_are_picked_up() {
    let dir = Workdir::new(&file(false));
    let server = Server::start(&dir, &[]);
    assert_eq!(switch(&server), json!(false));
    server.write_flags(&file(true));
    wait_for(&server, true);
    server.write_flags(&file(false));
    wait_for(&server, false);
}

#[test]
fn editor_style_write_then_rename_is_picked_up() {
    let dir = Workdir::new(&file(false));
    let server = Server::start(&dir, &[]);
    let tmp = server.flags.with_extension("yaml.tmp~");
    std::fs::write(&tmp, file(true)).expect("write temp");
    std::fs::rename(&tmp, &server.flags).expect("rename over");
    wait_for(&server, true);
}

#[test]
fn delete_then_recreate_is_picked_up_and_the_gap_serves_the_last_good_file() {
    let dir = Workdir::new(&file(false));
    let server = Server::start(&dir, &[]);
    std::fs::remove_file(&server.flags).expect("delete");
    let (status, reload) = server.admin(Method::POST, "/reload", None);
    assert_eq!((status, &reload["error"]["code"]), (422, &json!("invalid_flag_file")), "{reload}");
    assert_eq!(switch(&server), json!(false), "the last good file keeps serving");
    std::fs::write(&server.flags, file(true)).expect("recreate");
    wait_for(&server, true);
}

/// Kubernetes mounts a ConfigMap as `file -> ..data/file`, `..data -> ..<timestamp>`, and
/// updates it by creating a new timestamped directory and renaming a new `..data` link over
/// the old one.
#[cfg(unix)]
#[test]
fn configmap_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;
    let dir = Workdir::new(&file(false));
    let mount = dir.path().join("flags");
    std::fs::remove_file(mount.join("feature-flags.yaml")).expect("remove plain file");
    let version = |name: &str, value: bool| {
        let d = mount.join(name);
        std::fs::create_dir(&d).expect("version dir");
        std::fs::write(d.join("feature-flags.yaml"), file(value)).expect("write version");
    };
    version("..2025_01_01_00_00_00.1", false);
    symlink("..2025_01_01_00_00_00.1", mount.join("..data")).expect("..data link");
    symlink("..data/feature-flags.yaml", mount.join("feature-flags.yaml")).expect("file link");
    let server = Server::start(&dir, &[]);
    assert_eq!(switch(&server), json!(false));

    version("..2025_01_02_00_00_00.2", true);
    symlink("..2025_01_02_00_00_00.2", mount.join("..data_tmp")).expect("new link");
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).expect("atomic swap");
    std::fs::remove_dir_all(mount.join("..2025_01_01_00_00_00.1")).expect("old version removed");
    wait_for(&server, true);
}

#[test]
fn an_invalid_file_never_replaces_a_good_one() {
    let dir = Workdir::new(&file(true));
    let server = Server::start(&dir, &[]);
    let good_revision = server.evaluate("switch", &json!({}))["revision"].clone();
    server.write_flags("feature_flags:\n  switch:\n    default_value: false\n    rollout_strategy: {type: percentage, percentage: 250}\n");
    let ready = eventually(PATIENCE, || {
        let body: Value = http().get(server.url("/ready")).send().ok()?.json().ok()?;
        (body["last_reload"]["ok"] == json!(false)).then_some(body)
    });
    assert_eq!(ready["ready"], json!(true), "still ready: a good file is served");
    assert_eq!(ready["revision"], good_revision);
    let error = &ready["last_reload"]["errors"][0];
    assert_eq!((&error["line"], &error["column"]), (&json!(4), &json!(54)), "{ready}");
    assert_eq!(error["path"], json!("switch.rollout_strategy.percentage"));
    for _ in 0..20 {
        let answer = server.evaluate("switch", &json!({}));
        assert_eq!((&answer["value"], &answer["revision"]), (&json!(true), &good_revision));
    }
    let (_, flags) = server.admin(Method::GET, "/flags", None);
    assert_eq!(flags["last_reload"]["ok"], json!(false));
    let (status, reload) = server.admin(Method::POST, "/reload", None);
    assert_eq!(status, 422);
    assert_eq!(reload["error"]["details"]["errors"][0]["line"], json!(4));
    let metrics = http().get(server.url("/metrics")).send().expect("request").text().expect("text");
    assert!(metrics.contains(r#"toggled_reloads_total{outcome="rejected"}"#), "{metrics}");

    server.write_flags(&file(false));
    wait_for(&server, false);
    let (status, again) = server.admin(Method::POST, "/reload", None);
    assert_eq!((status, &again["outcome"]), (200, &json!("unchanged")));
}

#[test]
fn starting_on_a_broken_file_is_not_ready_until_it_is_fixed() {
    let dir = Workdir::new("feature_flags:\n  switch: {default_value: maybe}\n");
    let server = Server::start(&dir, &[]);
    let r = http().get(server.url("/ready")).send().expect("request");
    assert_eq!(r.status(), 503);
    let body: Value = r.json().expect("JSON");
    assert_eq!(body["error"]["code"], json!("not_ready"));
    assert_eq!(body["error"]["details"]["last_reload"]["errors"][0]["line"], json!(2));
    let message = body["error"]["details"]["last_reload"]["message"].as_str().expect("message");
    assert!(message.contains("no flags are served until it is valid"), "{message}");
    let r = http().post(server.url("/evaluate")).json(&json!({"flag": "switch"})).send().expect("request");
    assert_eq!(r.status(), 503);
    server.write_flags(&file(true));
    wait_for(&server, true);
    assert_eq!(http().get(server.url("/ready")).send().expect("request").status(), 200);
}

fn replace(path: &Path, text: &str, n: usize) {
    let tmp = path.with_extension(format!("tmp{n}"));
    std::fs::write(&tmp, text).expect("write temp");
    std::fs::rename(&tmp, path).expect("rename");
}

/// 200 rewrites while four clients evaluate: no non-2xx, and every answer is consistent with
/// one of the two files (value and revision belong together).
#[test]
fn two_hundred_rewrites_under_load_drop_nothing() {
    let a = file(true);
    let b = file(false);
    let (rev_a, rev_b) = (toggled::flags::revision_of(&a), toggled::flags::revision_of(&b));
    let dir = Workdir::new(&a);
    let server = Arc::new(Server::start(&dir, &["--reload-debounce", "5ms"]));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let server = server.clone();
            let stop = stop.clone();
            let (rev_a, rev_b) = (rev_a.clone(), rev_b.clone());
            std::thread::spawn(move || {
                let client = http();
                let mut seen = [0usize; 2];
                while !stop.load(Ordering::Relaxed) {
                    let r = client
                        .post(server.url("/evaluate"))
                        .json(&json!({"flag": "switch", "context": {"targetingKey": "u"}}))
                        .send()
                        .expect("request");
                    assert!(r.status().is_success(), "status {}", r.status());
                    let body: Value = r.json().expect("JSON");
                    match (body["value"].as_bool(), body["revision"].as_str()) {
                        (Some(true), Some(r)) if r == rev_a => seen[0] += 1,
                        (Some(false), Some(r)) if r == rev_b => seen[1] += 1,
                        _ => panic!("inconsistent answer {body}"),
                    }
                }
                seen
            })
        })
        .collect();
    // Spaced beyond the 5 ms debounce so each rewrite can be seen (a faster burst is coalesced
    // into one reload after it settles, which is what a debouncer is for).
    for i in 0..200 {
        replace(&server.flags, if i % 2 == 0 { &b } else { &a }, i);
        std::thread::sleep(Duration::from_millis(15));
    }
    wait_for(&server, true);
    stop.store(true, Ordering::Relaxed);
    let totals =
        readers.into_iter().map(|t| t.join().expect("reader")).fold([0, 0], |acc, s| [acc[0] + s[0], acc[1] + s[1]]);
    assert!(totals[0] > 0 && totals[1] > 0, "both files were served: {totals:?}");
    let metrics = http().get(server.url("/metrics")).send().expect("request").text().expect("text");
    assert!(
        !metrics.contains(r#"outcome="rejected""#),
        "no partial file was ever read ({}): {metrics}",
        server.flags.display()
    );
}

/// A flag that leaves the file is gone (404) even with an override; the override is kept and
/// applies again when the flag returns. Every applied reload is audited.
#[test]
fn an_override_outlives_its_flag_leaving_the_file() {
    let dir = Workdir::new(&file(true));
    let server = Server::start(&dir, &[]);
    let (status, _) = server.admin(Method::PUT, "/flags/switch", Some(json!({"value": false, "reason": "hold"})));
    assert_eq!(status, 200);
    server.write_flags("feature_flags:\n  other:\n    default_value: true\n");
    eventually(PATIENCE, || {
        let r = http().post(server.url("/evaluate")).json(&json!({"flag": "switch"})).send().ok()?;
        (r.status() == 404).then_some(())
    });
    let (status, gone) = server.admin(Method::GET, "/flags/switch", None);
    assert_eq!((status, &gone["error"]["code"]), (404, &json!("flag_not_found")));
    server.write_flags(&file(true));
    let back = eventually(PATIENCE, || {
        let r = http().post(server.url("/evaluate")).json(&json!({"flag": "switch"})).send().ok()?;
        (r.status() == 200).then(|| r.json::<Value>().ok()).flatten()
    });
    assert_eq!((&back["value"], &back["reason"]), (&json!(false), &json!("OVERRIDE")), "the override applies again");

    let (_, audit) = server.admin(Method::GET, "/audit?flag=*", None);
    let changes: Vec<Value> =
        audit["entries"].as_array().expect("entries").iter().map(|e| e["after"].clone()).collect();
    assert!(changes.iter().any(|c| c["removed"] == json!(["switch"]) && c["added"] == json!(["other"])), "{changes:?}");
    assert!(changes.iter().any(|c| c["added"] == json!(["switch"]) && c["removed"] == json!(["other"])), "{changes:?}");
}

/// A flag file that is a link into a directory nobody watches changes without an event the
/// watcher sees: the periodic re-check picks it up (and says so on `/ready`).
#[test]
fn the_periodic_recheck_picks_up_changes_the_watcher_cannot_see() {
    let dir = Workdir::new(&file(false));
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    let real = elsewhere.join("flags.yaml");
    std::fs::write(&real, file(false)).expect("write");
    let link = dir.path().join("flags/feature-flags.yaml");
    std::fs::remove_file(&link).expect("remove");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let server = Server::start(&dir, &["--recheck-interval", "1s"]);
    assert_eq!(switch(&server), json!(false));
    std::fs::write(&real, file(true)).expect("write through the link's target");
    wait_for(&server, true);
    let ready: Value = http().get(server.url("/ready")).send().expect("ready").json().expect("JSON");
    assert_eq!(ready["last_reload"]["trigger"], json!("recheck"), "{ready}");
}
