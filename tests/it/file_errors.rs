//! The broken-file corpus (`tests/broken/*.yaml`): every file fails, and the rendered
//! diagnostics are reviewed as text (insta snapshots under `tests/it/snapshots/`).

use std::path::Path;

#[test]
fn every_broken_file_fails_with_positioned_messages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broken");
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("corpus exists").map(|e| e.expect("entry").path()).collect();
    files.sort();
    assert!(files.len() >= 15, "the corpus has {} files", files.len());
    for path in files {
        let name = path.file_stem().and_then(|s| s.to_str()).expect("utf-8 name").to_owned();
        let text = std::fs::read_to_string(&path).expect("readable");
        let Err(errors) = toggled::flags::compile(&text) else { panic!("{name} should not compile") };
        for e in &errors.0 {
            assert!(e.line > 0 && e.column > 0, "{name}: error without a position: {e}");
        }
        insta::assert_snapshot!(name.clone(), errors.render(&format!("{name}.yaml")));
    }
}

#[test]
fn an_oversized_file_is_refused_before_parsing() {
    let text = format!("feature_flags: {{}}\n#{}\n", "x".repeat(toggled::flags::compile::MAX_FILE_BYTES));
    let errors = toggled::flags::compile(&text).expect_err("too big");
    assert!(errors.to_string().contains("the limit is"), "{errors}");
}

#[test]
fn an_empty_flag_section_is_a_valid_file() {
    let snapshot = toggled::flags::compile("feature_flags: {}\n").expect("valid");
    assert!(snapshot.flags.is_empty());
    let aliased = toggled::flags::compile("flags:\n  a: {default_value: true}\n").expect("`flags:` is an alias");
    assert!(aliased.get("a").is_some());
}
