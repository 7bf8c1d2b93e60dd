//! Conventional commits -> next version: one table covering every rule, SemVer precedence,
//! release notes.

use toggled::release::next_version;
use toggled::release::notes;
use toggled::release::version::{Bump, CommitInput, PreMajor, split_tag};

fn next(current: &str, commits: &[&str]) -> (String, Bump) {
    let inputs: Vec<CommitInput> = commits.iter().map(|c| CommitInput::from(*c)).collect();
    let a = next_version(current, &inputs, PreMajor::Major, None).unwrap_or_else(|e| panic!("{e}"));
    (a.next, a.bump)
}

#[test]
fn every_rule_in_one_table() {
    let table: &[(&str, &[&str], &str, Bump)] = &[
        // The basic bumps, and the highest wins.
        ("1.4.2", &["fix: y"], "1.4.3", Bump::Patch),
        ("1.4.2", &["perf: faster"], "1.4.3", Bump::Patch),
        ("1.4.2", &["feat(api): x", "fix: y"], "1.5.0", Bump::Minor),
        ("1.4.2", &["feat(api): x", "fix: y\n\nBREAKING CHANGE: z"], "2.0.0", Bump::Major),
        ("1.4.2", &["docs: readme", "chore: deps", "refactor: tidy"], "1.4.2", Bump::None),
        ("1.4.2", &[], "1.4.2", Bump::None),
        // Types are case-insensitive; `!` right before `:` is breaking.
        ("1.4.2", &["FEAT: shout"], "1.5.0", Bump::Minor),
        ("1.4.2", &["feat(api)!: drop v1"], "2.0.0", Bump::Major),
        ("1.4.2", &["refactor!: rename everything"], "2.0.0", Bump::Major),
        // BREAKING-CHANGE works too; lower case is not a breaking footer; footers need a blank line.
        ("1.4.2", &["fix: x\n\nBREAKING-CHANGE: gone"], "2.0.0", Bump::Major),
        ("1.4.2", &["fix: x\n\nbreaking change: not really"], "1.4.3", Bump::Patch),
        // Without the blank line after the header the message is not a Conventional Commit.
        ("1.4.2", &["fix: x\nBREAKING CHANGE: no blank line"], "1.4.2", Bump::None),
        ("1.4.2", &["fix: x\n\nSome body.\nBREAKING CHANGE: in the body, not a footer"], "1.4.3", Bump::Patch),
        // CRLF line endings; multi-line breaking footers.
        ("1.4.2", &["fix: x\r\n\r\nBREAKING CHANGE: windows\r\n"], "2.0.0", Bump::Major),
        ("1.4.2", &["feat: x\n\nBREAKING CHANGE: first line\nsecond line of the note"], "2.0.0", Bump::Major),
        // Not Conventional Commits: ignored, never fatal.
        ("1.4.2", &["feat!(scope): bang before scope is invalid", "fix: real"], "1.4.3", Bump::Patch),
        ("1.4.2", &["Merge branch 'main'", "WIP"], "1.4.2", Bump::None),
        // Prefixed tags keep their prefix.
        ("v1.4.2", &["feat: x"], "v1.5.0", Bump::Minor),
        ("api/v1.4.2", &["fix: x"], "api/v1.4.3", Bump::Patch),
        ("release-2.0.0", &["feat!: x"], "release-3.0.0", Bump::Major),
        // 0.y.z defaults: breaking -> 1.0.0, feat -> minor, fix -> patch.
        ("0.3.1", &["feat!: stable api"], "1.0.0", Bump::Major),
        ("0.3.1", &["feat: x"], "0.4.0", Bump::Minor),
        ("0.3.1", &["fix: x"], "0.3.2", Bump::Patch),
        // Pre-releases: a base that covers the bump increments the last number.
        ("1.0.0-rc.1", &["fix: x"], "1.0.0-rc.2", Bump::Patch),
        ("1.0.0-rc.1", &["feat!: x"], "1.0.0-rc.2", Bump::Major),
        ("1.1.0-beta", &["feat: x"], "1.1.0-beta.1", Bump::Minor),
        ("1.0.0-alpha.1.beta", &["fix: x"], "1.0.0-alpha.2.beta", Bump::Patch),
        // ... and one that does not is bumped and released.
        ("1.0.1-rc.1", &["feat: x"], "1.1.0", Bump::Minor),
        ("1.1.0-rc.1", &["feat!: x"], "2.0.0", Bump::Major),
        // Release-As forces the version.
        ("1.4.2", &["chore: release\n\nRelease-As: 3.0.0"], "3.0.0", Bump::None),
        ("v1.4.2", &["fix: x\n\nRelease-As: 1.6.0"], "v1.6.0", Bump::Patch),
        // A revert in the same range cancels its commit (by header or by sha).
        ("1.4.2", &["feat: shiny", "fix: y", "revert: feat: shiny"], "1.4.3", Bump::Patch),
        ("1.4.2", &["feat!: drop", "revert: feat!: drop"], "1.4.2", Bump::None),
    ];
    for (current, commits, expected, bump) in table {
        assert_eq!(next(current, commits), ((*expected).to_owned(), *bump), "{current} + {commits:?}");
    }
}

#[test]
fn options_for_pre_major_and_pre_release() {
    let run = |current: &str, commit: &str, pre_major: PreMajor, pre: Option<&str>| {
        next_version(current, &[CommitInput::from(commit)], pre_major, pre).expect("valid").next
    };
    assert_eq!(run("0.3.1", "feat!: x", PreMajor::Minor, None), "0.4.0");
    assert_eq!(run("0.3.1", "feat: x", PreMajor::Minor, None), "0.3.2");
    assert_eq!(run("0.3.1", "fix: x", PreMajor::Minor, None), "0.3.2");
    assert_eq!(run("1.4.2", "feat: x", PreMajor::Major, Some("beta")), "1.5.0-beta.1");
    assert_eq!(run("1.0.1-rc.1", "feat: x", PreMajor::Major, Some("rc")), "1.1.0-rc.1");
    assert_eq!(run("1.1.0-rc.1", "fix: x", PreMajor::Major, Some("rc")), "1.1.0-rc.2");
}

#[test]
fn reverts_by_sha_and_ignored_messages_are_reported() {
    let commits = vec![
        CommitInput { message: "feat: shiny".into(), sha: Some("a1b2c3d4e5f6".into()) },
        CommitInput {
            message: "revert: shiny\n\nThis reverts commit a1b2c3d4e5f6.".into(),
            sha: Some("ffff000011".into()),
        },
        CommitInput {
            message: "fix(db): close pools (#12)\n\nCloses #34\nRefs: #56, #78".into(),
            sha: Some("0123456789".into()),
        },
        CommitInput { message: "not conventional".into(), sha: None },
    ];
    let a = next_version("2.1.0", &commits, PreMajor::Major, None).expect("valid");
    assert_eq!((a.next.as_str(), a.bump), ("2.1.1", Bump::Patch));
    assert!(a.features.is_empty(), "the reverted feature is gone");
    assert_eq!(a.fixes[0].issues, ["#12", "#34", "#56", "#78"]);
    assert_eq!(a.ignored.len(), 1);
    assert_eq!(a.ignored[0].message, "not conventional");
    assert!(next_version("1.2", &[], PreMajor::Major, None).is_err(), "not semver");
    assert!(next_version("latest", &[], PreMajor::Major, None).is_err());
}

#[test]
fn semver_precedence_chain() {
    let chain = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
    ];
    let versions: Vec<semver::Version> = chain.iter().map(|v| semver::Version::parse(v).expect("valid")).collect();
    for pair in versions.windows(2) {
        assert_eq!(pair[0].cmp_precedence(&pair[1]), std::cmp::Ordering::Less, "{} < {}", pair[0], pair[1]);
    }
    let a = semver::Version::parse("1.0.0+build.1").expect("valid");
    let b = semver::Version::parse("1.0.0+build.2").expect("valid");
    assert_eq!(a.cmp_precedence(&b), std::cmp::Ordering::Equal, "build metadata is ignored");
    assert_eq!(split_tag("api/v1.2.3").map(|(p, v)| (p, v.to_string())), Ok(("api/v".to_owned(), "1.2.3".to_owned())));
}

#[test]
fn release_notes_render_every_section() {
    let commits: Vec<CommitInput> = [
        "feat(api)!: drop the v1 endpoints\n\nBREAKING CHANGE: call /v2 instead; v1 clients must upgrade",
        "feat(search): fuzzy matching (#101)",
        "fix: handle empty carts\n\nCloses #7",
        "perf(db): batch writes",
        "chore: bump deps",
    ]
    .iter()
    .map(|c| CommitInput::from(*c))
    .collect();
    let a = next_version("v1.9.0", &commits, PreMajor::Major, None).expect("valid");
    assert_eq!(a.next, "v2.0.0");
    insta::assert_snapshot!("release_notes", notes::markdown(&a, &format!("Release {}", a.next)));
    insta::assert_snapshot!("keep_a_changelog", notes::keep_a_changelog(&a, Some("2.0.0"), Some("2025-06-01")));
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "tag.gpgsign=false",
        ])
        .args(args)
        .output()
        .expect("git runs");
    assert!(status.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&status.stderr));
}

fn commit(dir: &std::path::Path, message: &str) {
    git(dir, &["commit", "--allow-empty", "-q", "-m", message]);
}

#[test]
fn version_next_and_changelog_read_a_real_git_repository() {
    let repo = tempfile::tempdir().expect("temp dir");
    let dir = repo.path();
    git(dir, &["init", "-q", "-b", "main"]);
    commit(dir, "feat: first");
    git(dir, &["tag", "v1.0.0"]);
    commit(dir, "fix: old fix");
    git(dir, &["tag", "v1.0.1"]);
    git(dir, &["tag", "not-a-version"]);
    commit(dir, "feat(search): fuzzy matching\n\nCloses #12");
    commit(dir, "fix: null carts");
    commit(dir, "just a message");
    let toggled = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_toggled"))
            .args(args)
            .arg("--repo")
            .arg(dir)
            .output()
            .expect("runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8(out.stdout).expect("utf-8"), String::from_utf8(out.stderr).expect("utf-8"))
    };
    let (stdout, stderr) = toggled(&["version", "next"]);
    assert_eq!(stdout.lines().next(), Some("v1.1.0"), "{stdout}");
    assert!(stdout.contains("**search:** fuzzy matching (#12)"), "{stdout}");
    assert!(
        stdout.contains("null carts") && !stdout.contains("old fix"),
        "only commits since the latest tag: {stdout}"
    );
    assert!(stderr.contains("ignored (not a Conventional Commit): just a message"));

    commit(dir, "feat!: new api");
    let (stdout, _) = toggled(&["version", "next", "--pre-release", "rc"]);
    assert_eq!(stdout.lines().next(), Some("v2.0.0-rc.1"));

    let (section, _) = toggled(&["changelog"]);
    assert!(section.starts_with("## [Unreleased]"), "{section}");
    assert!(section.contains("### Added") && section.contains("### Fixed"), "{section}");
    let (wrote, _) = toggled(&["changelog", "--release", "--write"]);
    assert!(wrote.starts_with("wrote "));
    let changelog = std::fs::read_to_string(dir.join("CHANGELOG.md")).expect("written");
    assert!(changelog.starts_with("# Changelog") && changelog.contains("## [2.0.0] - "), "{changelog}");
    assert!(!changelog.contains("[v2.0.0]"), "no tag prefix inside the brackets: {changelog}");
    let (notes, _) = toggled(&["version", "next"]);
    assert!(notes.contains("- new api"), "{notes}");
    assert!(!notes.contains("**Migration:** new api"), "no note that repeats the title: {notes}");
    commit(dir, "refactor(db)!: drop the v1 tables\n\nBREAKING CHANGE: run `toggled migrate` first");
    let (notes, _) = toggled(&["version", "next"]);
    assert!(notes.contains("  - **Migration:** run `toggled migrate` first"), "{notes}");
}

#[test]
fn versions_next_over_http() {
    use crate::support::{Server, Workdir};
    use reqwest::Method;
    use serde_json::json;
    let dir = Workdir::new("feature_flags: {}\n");
    let server = Server::start(&dir, &[]);
    let (status, body) = server.admin(
        Method::POST,
        "/versions/next",
        Some(json!({"current": "1.4.2", "commits": ["feat(api): x", "fix: y\n\nBREAKING CHANGE: z", {"message": "fix: with sha", "sha": "abcdef1234"}, "nonsense"]})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!((&body["next"], &body["bump"]), (&json!("2.0.0"), &json!("major")));
    assert_eq!(body["breaking"][0]["breaking_note"], json!("z"));
    assert_eq!(body["features"][0]["scope"], json!("api"));
    assert_eq!(body["ignored"][0]["message"], json!("nonsense"));
    assert!(body["notes"].as_str().is_some_and(|n| n.contains("## ⚠ Breaking Changes") && n.contains("(abcdef1)")));
    let (_, none) =
        server.admin(Method::POST, "/versions/next", Some(json!({"current": "1.4.2", "commits": ["docs: x"]})));
    assert_eq!((&none["next"], &none["bump"]), (&json!("1.4.2"), &json!("none")));
    let (status, bad) = server.admin(Method::POST, "/versions/next", Some(json!({"current": "1.4", "commits": []})));
    assert_eq!((status, &bad["error"]["code"]), (422, &json!("invalid_version")));
    let (status, bad) =
        server.admin(Method::POST, "/versions/next", Some(json!({"current": "1.4.0", "pre_major": "huge"})));
    assert_eq!((status, &bad["error"]["code"]), (422, &json!("invalid_option")));
    let (status, bad) = server.admin(Method::POST, "/versions/next", Some(json!({"commits": []})));
    assert_eq!((status, &bad["error"]["code"]), (422, &json!("invalid_version")));
    assert!(bad["error"]["message"].as_str().is_some_and(|m| m.contains("missing field `current`")), "{bad}");
    let r = crate::support::http()
        .post(server.url("/versions/next"))
        .json(&json!({"current": "1.0.0"}))
        .send()
        .expect("request");
    assert_eq!(r.status(), 401, "releases need an admin token");
}

/// `toggled release` in a real repository: version files, CHANGELOG.md, the release commit and
/// an annotated tag; then nothing to release; a dirty tree refused.
#[test]
fn release_cuts_a_version_from_git() {
    use serde_json::{Value, json};
    let repo = tempfile::tempdir().expect("temp dir");
    let dir = repo.path();
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("Cargo.toml"), "[package]\nname = \"shop\"\nversion = \"1.0.0\" # kept\n").expect("write");
    std::fs::write(dir.join("package.json"), "{\n  \"name\": \"shop\",\n  \"version\": \"1.0.0\"\n}\n").expect("write");
    std::fs::write(dir.join("VERSION"), "1.0.0\n").expect("write");
    std::fs::write(dir.join("chart.yaml"), "name: shop\nversion = \"1.0.0\"\n").expect("write");
    git(dir, &["add", "."]);
    commit(dir, "feat: first");
    git(dir, &["tag", "v1.0.0"]);
    commit(dir, "feat(cart): saved carts (#41)");
    commit(dir, "fix: rounding");
    let toggled = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_toggled"))
            .arg("release")
            .arg("--repo")
            .arg(dir)
            .args(args)
            .envs([
                ("GIT_AUTHOR_NAME", "Release"),
                ("GIT_AUTHOR_EMAIL", "release@example.com"),
                ("GIT_COMMITTER_NAME", "Release"),
                ("GIT_COMMITTER_EMAIL", "release@example.com"),
            ])
            .output()
            .expect("runs")
    };
    let dry = toggled(&["--dry-run", "--json"]);
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    let plan: Value = serde_json::from_slice(&dry.stdout).expect("JSON");
    assert_eq!((&plan["released"], &plan["version"], &plan["tag"]), (&json!(true), &json!("1.1.0"), &json!("v1.1.0")));
    assert_eq!(std::fs::read_to_string(dir.join("VERSION")).expect("read"), "1.0.0\n", "a dry run changes nothing");

    let out = toggled(&["--json", "--version-file", "chart.yaml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cut: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!((&cut["previous"], &cut["version"]), (&json!("1.0.0"), &json!("1.1.0")));
    assert!(cut["notes"].as_str().is_some_and(|n| n.contains("**cart:** saved carts")), "{cut}");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("read");
    assert_eq!(
        read("Cargo.toml"),
        "[package]\nname = \"shop\"\nversion = \"1.1.0\" # kept\n",
        "{}",
        read("Cargo.toml")
    );
    assert!(read("package.json").contains("\"version\": \"1.1.0\""));
    assert_eq!(read("VERSION"), "1.1.0\n");
    assert!(read("chart.yaml").contains("version = \"1.1.0\""));
    assert!(read("CHANGELOG.md").contains("## [1.1.0] - "), "{}", read("CHANGELOG.md"));
    let log =
        std::process::Command::new("git").arg("-C").arg(dir).args(["log", "-1", "--format=%s"]).output().expect("git");
    assert_eq!(String::from_utf8_lossy(&log.stdout).trim(), "chore(release): version 1.1.0");
    let tag =
        std::process::Command::new("git").arg("-C").arg(dir).args(["cat-file", "-t", "v1.1.0"]).output().expect("git");
    assert_eq!(String::from_utf8_lossy(&tag.stdout).trim(), "tag", "an annotated tag");

    // Nothing since: no release, and it says so.
    let none = toggled(&["--json"]);
    assert!(none.status.success());
    let none: Value = serde_json::from_slice(&none.stdout).expect("JSON");
    assert_eq!(none["released"], json!(false));
    let plain = toggled(&[]);
    assert!(String::from_utf8_lossy(&plain.stdout).starts_with("no release"));

    // Cut and registered with a running server; a refused registration is an error that says
    // the release was cut locally.
    let workdir = crate::support::Workdir::new("feature_flags: {}\n");
    let server = crate::support::Server::start(&workdir, &[]);
    commit(dir, "feat: gift cards\n\nFlag: gift_cards");
    let out = toggled(&["--json", "--server", &server.base, "--token", crate::support::ADMIN, "--service", "shop"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cut: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!((&cut["version"], &cut["registered"]["status"]), (&json!("1.2.0"), &json!("planned")), "{cut}");
    let id = cut["registered"]["id"].as_i64().expect("an id");
    let (status, stored) = server.admin(reqwest::Method::GET, &format!("/releases/{id}"), None);
    assert_eq!(status, 200);
    assert_eq!(
        (&stored["service"], &stored["version"], &stored["type"]),
        (&json!("shop"), &json!("1.2.0"), &json!("minor"))
    );
    assert_eq!(stored["analysis"]["features"][0]["description"], "gift cards");
    commit(dir, "fix: wrapping");
    let refused = toggled(&["--server", &server.base, "--token", "not-a-token", "--service", "shop"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("release 1.2.1 was cut locally but not registered") && stderr.contains("unauthorized"),
        "{stderr}"
    );

    // A dirty tree is refused.
    std::fs::write(dir.join("VERSION"), "9.9.9\n").expect("write");
    let dirty = toggled(&[]);
    assert_eq!(dirty.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dirty.stderr).contains("uncommitted changes"));
}

/// Commit messages end up in CHANGELOG.md and version files: a committed symlink pointing out of
/// the repository is never written through, and nothing is changed.
#[test]
fn release_refuses_version_files_and_changelogs_that_are_symlinks() {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().expect("temp dir");
    let target = outside.path().join("bashrc");
    std::fs::write(&target, "export KEEP=1\n").expect("write");
    for (link, message) in [("CHANGELOG.md", "is a symlink"), ("VERSION", "is a symlink")] {
        let repo = tempfile::tempdir().expect("temp dir");
        let dir = repo.path();
        git(dir, &["init", "-q", "-b", "main"]);
        commit(dir, "feat: first");
        git(dir, &["tag", "v1.0.0"]);
        symlink(&target, dir.join(link)).expect("symlink");
        git(dir, &["add", link]);
        commit(dir, "fix: $(rm -rf ~)");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_toggled"))
            .args(["release", "--repo"])
            .arg(dir)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(link) && stderr.contains(message), "{stderr}");
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "export KEEP=1\n", "untouched through {link}");
    }
}

/// A repository without commits, and a directory that is not one, get a sentence, not git's text.
#[test]
fn release_in_an_empty_repository_says_so() {
    let repo = tempfile::tempdir().expect("temp dir");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_toggled"))
            .args(args)
            .arg("--repo")
            .arg(repo.path())
            .output()
            .expect("runs");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = run(&["release"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("is not a git repository"), "{stderr}");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    for args in [&["release"][..], &["version", "next"][..]] {
        let (code, stderr) = run(args);
        assert_eq!(code, Some(1), "{args:?}");
        assert!(stderr.contains("has no commits yet") && !stderr.contains("fatal:"), "{args:?}: {stderr}");
    }
}
