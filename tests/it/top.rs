//! `storectl top` as a person sees it: run in a pseudo-terminal (tmux), the screen read, keys
//! sent. Without tmux the test says so and passes without running.

use std::process::Command;
use std::time::Duration;

use crate::common::{eventually, stderr, Cluster, EXE};

/// A tmux session of its own running one command, removed on drop.
struct Screen {
    session: String,
}

impl Screen {
    fn start(command: &str) -> Screen {
        let session = format!("storectl-top-{}", std::process::id());
        let started = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &session,
                "-x",
                "120",
                "-y",
                "36",
                command,
            ])
            .status();
        match started {
            Ok(status) if status.success() => Screen { session },
            _ => panic!(
                "the terminal UI tests need tmux (`apt-get install tmux`; .ci/run installs it)"
            ),
        }
    }

    fn text(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .expect("tmux captures the pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `what`.
    fn shows(&self, what: &str) -> String {
        eventually(Duration::from_secs(20), || {
            let text = self.text();
            text.contains(what).then_some(text)
        })
        .unwrap_or_else(|| panic!("the screen never showed {what:?}:\n{}", self.text()))
    }

    fn keys(&self, keys: &str) {
        Command::new("tmux")
            .args(["send-keys", "-t", &self.session, keys])
            .status()
            .expect("tmux sends keys");
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

#[test]
fn top_shows_the_cluster_live_and_gives_the_terminal_back() {
    let cluster = Cluster::start(&[]);
    let state = cluster.state();
    let command = format!(
        "echo BEFORE-TOP; {EXE} top --state-dir {} --interval 200ms; echo TOP-EXITED $?; sleep 60",
        state.display()
    );
    let screen = Screen::start(&command);
    // A whole frame: tmux may be read while it draws one.
    let headings = ["SERVICE", "ORDERS", "orders/s", "product query", "events"];
    let first = eventually(Duration::from_secs(20), || {
        let text = screen.text();
        (text.contains("leaders: order-3 (term ") && headings.iter().all(|h| text.contains(h)))
            .then_some(text)
    })
    .unwrap_or_else(|| panic!("top never drew its frame:\n{}", screen.text()));
    assert!(
        !first.contains("BEFORE-TOP"),
        "top has the screen to itself"
    );

    // Traffic shows up as rates and latencies.
    let client = cluster.run(
        "client",
        &["--p", "1", "--iterations", "100", "--clients", "2"],
    );
    assert!(client.status.success(), "{}", stderr(&client));
    let timed = eventually(Duration::from_secs(20), || {
        let text = screen.text();
        text.lines()
            .filter(|l| l.contains("│order "))
            .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "p50").nth(1))
            .any(|p50| p50 != "–")
            .then_some(())
    });
    assert!(timed.is_some(), "order latencies:\n{}", screen.text());

    // A crash is an event, and the new leader is named.
    let killed = cluster.run("kill", &["leader"]);
    assert!(killed.status.success());
    screen.shows("order-3 stopped answering");
    let after = screen.shows("leads (term");
    assert!(
        after.contains("NO"),
        "the dead replica's row says so:\n{after}"
    );

    screen.keys("q");
    let back = screen.shows("TOP-EXITED 0");
    assert!(
        back.contains("BEFORE-TOP"),
        "the screen from before top is back:\n{back}"
    );
    assert!(!back.contains("SERVICE"), "nothing of top is left:\n{back}");
}

#[test]
fn top_without_a_cluster_says_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing");
    let out = crate::common::storectl(&["top", "--state-dir", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("storectl up"), "{err}");
}

#[test]
fn top_without_a_terminal_says_it_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = crate::common::cluster_file(dir.path(), 47100);
    let out = Command::new(EXE)
        .args(["top", "--cluster", file.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("storectl runs");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("needs a terminal"), "{err}");
    assert!(out.stdout.is_empty(), "nothing drawn: {:?}", out.stdout);
    assert!(!err.contains('\u{1b}'), "no escape sequence: {err:?}");
}
