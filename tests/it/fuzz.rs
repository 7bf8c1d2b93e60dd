//! Fuzz targets on stable Rust: every input surface starts from a committed seed corpus
//! (`tests/fuzz/<target>/`, plus the shipped and broken flag files) and is mutated by proptest;
//! the server must answer every HTTP body with a status below 500 and stay up, and no parser may
//! panic. Cases per target: `TOGGLED_FUZZ_CASES` (default 256, a bounded run for CI); a longer
//! run is `TOGGLED_FUZZ_CASES=100000 cargo test fuzz::`. A crash found becomes a seed here.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;

use crate::support::{ADMIN, Server, Workdir, http};

fn cases() -> u32 {
    std::env::var("TOGGLED_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
}

fn corpus(dirs: &[&str]) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds = Vec::new();
    for dir in dirs {
        let mut files: Vec<_> =
            std::fs::read_dir(root.join(dir)).expect("corpus dir").filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        seeds.extend(files.iter().filter(|p| p.is_file()).map(|p| std::fs::read(p).expect("seed")));
    }
    assert!(!seeds.is_empty(), "a seed corpus in {dirs:?}");
    seeds
}

/// One edit of a seed: replace, insert or delete a byte, or splice in a token that tends to
/// matter to the parsers.
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Splice(usize, &'static str),
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "-1",
    "1e999",
    "\\u0000",
    "&a",
    "*a",
    "!!",
    "\n  ",
    "---",
    "💥",
    "BREAKING CHANGE: ",
    "!:",
    "(",
    ")",
    "\u{0}",
    "9999999999999999999999",
];

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Replace(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), prop::sample::select(TOKENS)).prop_map(|(i, t)| Edit::Splice(i, t)),
    ];
    prop::collection::vec(edit, 0..8)
}

fn mutate(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for e in edits {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match e {
            Edit::Replace(i, b) if !out.is_empty() => {
                let n = out.len();
                out[i % n] = *b;
            }
            Edit::Insert(i, b) => out.insert(at(*i, out.len()), *b),
            Edit::Delete(i) if !out.is_empty() => {
                let n = out.len();
                out.remove(i % n);
            }
            Edit::Splice(i, t) => {
                let p = at(*i, out.len());
                out.splice(p..p, t.bytes());
            }
            _ => {}
        }
    }
    out
}

/// Runs `check` on `cases()` mutations of the seeds.
fn fuzz(seeds: &[Vec<u8>], check: impl Fn(&[u8])) {
    let mut runner = TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
    let strategy = (0..seeds.len(), edits());
    runner
        .run(&strategy, |(i, e)| {
            check(&mutate(&seeds[i], &e));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn fuzz_the_flag_file_loader() {
    let seeds = corpus(&["flags", "flags/examples", "tests/broken"]);
    fuzz(&seeds, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        let _ = toggled::flags::compile(&text);
    });
}

#[test]
fn fuzz_the_commit_message_parser() {
    let seeds = corpus(&["tests/fuzz/commits"]);
    fuzz(&seeds, |bytes| {
        let message = String::from_utf8_lossy(bytes).into_owned();
        let commits = [toggled::release::CommitInput { message, sha: Some("abcdef1234".into()) }];
        for current in ["1.4.2", "0.3.0", "v2.0.0-rc.1"] {
            let _ = toggled::release::next_version(current, &commits, toggled::release::PreMajor::Major, Some("rc"));
        }
    });
}

/// Every body a route takes, mutated, over real HTTP: never a 5xx, and the server stays up.
#[test]
fn fuzz_the_http_bodies() {
    let dir = Workdir::new(include_str!("../../flags/examples/targeting.yaml"));
    let server = Server::start(&dir, &[]);
    let client = http();
    let targets: [(&str, Method, &str, bool); 4] = [
        ("tests/fuzz/evaluate", Method::POST, "/evaluate", false),
        ("tests/fuzz/ofrep", Method::POST, "/ofrep/v1/evaluate/flags", false),
        ("tests/fuzz/ofrep", Method::POST, "/ofrep/v1/evaluate/flags/new_checkout", false),
        ("tests/fuzz/alerts", Method::POST, "/alerts", true),
    ];
    for (seeds, method, path, admin) in targets {
        let seeds = corpus(&[seeds]);
        fuzz(&seeds, |bytes| {
            let mut req = client.request(method.clone(), server.url(path)).body(bytes.to_vec());
            if admin {
                req = req.bearer_auth(ADMIN);
            }
            let status = req.send().expect("the server answers").status();
            assert!(status.as_u16() < 500, "{path}: {status} for {:?}", String::from_utf8_lossy(bytes));
        });
    }
    assert_eq!(client.get(server.url("/health")).send().expect("health").status(), 200);
}
