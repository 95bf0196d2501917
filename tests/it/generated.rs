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

#[test]
fn pages_have_the_sections_a_reader_looks_for_and_no_missing_page() {
    let man = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let kill = std::fs::read_to_string(man.join("storectl-kill.1")).unwrap();
    for section in [
        ".SH EXAMPLES",
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        ".SH FILES",
    ] {
        assert!(kill.contains(section), "{section}");
    }
    assert!(
        kill.contains("storectl kill leader"),
        "examples are real commands"
    );
    assert!(kill.contains("STORECTL_CLUSTER_SECRET") && kill.contains("RUST_LOG"));
    for page in std::fs::read_dir(&man).unwrap() {
        let page = page.unwrap().path();
        let text = std::fs::read_to_string(&page).unwrap();
        assert!(
            !text.contains("storectl\\-help") && !text.contains("storectl-help"),
            "{} points at a page that does not exist",
            page.display()
        );
        assert!(
            !text.contains("storectl-serve-order ["),
            "a synopsis is a command"
        );
    }
}

#[test]
fn bash_completes_the_targets_of_kill() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("completions/storectl.bash");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(storectl kill or); COMP_CWORD=2; _storectl storectl or kill; \
             echo \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .expect("bash runs");
    let offered = String::from_utf8_lossy(&out.stdout);
    assert_eq!(offered.trim(), "order-1 order-2 order-3", "{offered}");
}

#[test]
fn a_mistyped_command_gets_a_suggestion_and_the_right_help_page() {
    let out = crate::common::storectl(&["statsu"]);
    assert_eq!(out.status.code(), Some(2));
    let err = crate::common::stderr(&out);
    assert!(err.contains("did you mean 'status'?"), "{err}");
    let out = crate::common::storectl(&["kill", "--signal", "nine", "leader"]);
    let err = crate::common::stderr(&out);
    assert!(err.contains("(see 'storectl kill --help')"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
