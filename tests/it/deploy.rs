//! `deploy/rehearse.sh`: `docs/deploy.md` run step by step on five hosts made of network
//! namespaces, every service as an unprivileged user of its own, as the systemd units run it.
//! A permission the guide gets wrong stops a service and fails the rehearsal.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::EXE;

/// Longer than the rehearsal takes (about 20 s), short enough that a hang fails the test.
const REHEARSAL: Duration = Duration::from_secs(240);

#[test]
#[ignore = "needs root, `ip` (iproute2) and `setpriv` (util-linux): run as root: cargo test --test it -- --ignored (.ci/run does)"]
fn the_deployment_guide_works_with_its_services_unprivileged() {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let tools = ["ip", "setpriv"].iter().all(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    assert!(
        root && tools,
        "the rehearsal needs root, `ip` (iproute2) and `setpriv` (util-linux)"
    );
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/rehearse.sh"))
        .arg(EXE)
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .expect("bash runs");
    let deadline = Instant::now() + REHEARSAL;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // SIGTERM, so that its trap removes the namespaces and stops the services.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(log.path()).unwrap_or_default();
    let tail: Vec<&str> = output.lines().rev().take(40).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    let tail = tail.join("\n");
    assert!(
        status.is_some_and(|s| s.success()),
        "the rehearsal failed ({status:?}):\n{tail}"
    );
    assert!(
        output.contains(": uid 6"),
        "services ran unprivileged:\n{tail}"
    );
    assert!(output.contains("OK: 3 order files identical"), "{tail}");
}
