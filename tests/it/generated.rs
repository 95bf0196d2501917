//! The man pages and completions in the repository are what the CLI definitions generate now.

use std::path::Path;

fn assert_current(what: &str, checked_in: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::common::storectl(&["generate", what, "--out", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join(checked_in);
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert!(!names.is_empty());
    for name in &names {
        let fresh = std::fs::read(dir.path().join(name)).unwrap();
        let kept = std::fs::read(repo.join(name)).unwrap_or_default();
        assert!(
            fresh == kept,
            "{checked_in}/{} is stale: run `cargo run -- generate {what}` and commit it",
            name.to_string_lossy()
        );
    }
    let kept = std::fs::read_dir(&repo).unwrap().count();
    assert_eq!(
        kept,
        names.len(),
        "{checked_in}/ holds files the CLI no longer generates"
    );
}

#[test]
fn man_pages_are_current() {
    assert_current("man", "man");
}

#[test]
fn completions_are_current() {
    assert_current("completions", "completions");
}

#[test]
fn the_main_page_shows_examples() {
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("man/storectl.1"))
            .unwrap();
    assert!(page.contains("storectl demo"));
    let help = crate::common::stdout(&crate::common::storectl(&["client", "--help"]));
    assert!(help.contains("Examples:"), "{help}");
}
