//! A full disk under a catalog replica, for real: its data directory on a small tmpfs that fills
//! up, then grows, and the replica carries on by itself. Needs root (to mount); elsewhere the test says why it does not run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{eventually, get_with, TEST_SECRET};

/// A tmpfs mounted on a temporary directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// A tmpfs of `size`, or `None` where it cannot be mounted (not root).
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(SmallDisk { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn grow(&self, size: &str) {
        let grown = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(grown.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A buy's status, or `None` when no reply came (the replica stopped).
fn buy(catalog: &str, key: &str) -> Option<u16> {
    let bearer = format!("Bearer {TEST_SECRET}");
    let body = format!(r#"{{"term":1,"orders":[{{"key":"{key}","name":"tux","quantity":1}}]}}"#);
    match storectl::tool_http::agent()
        .post(&format!("{catalog}/internal/buy"))
        .header("Content-Type", "application/json")
        .header("Authorization", &bearer)
        .send(&body)
    {
        Ok(reply) => Some(reply.status().as_u16()),
        Err(ureq::Error::StatusCode(status)) => Some(status),
        Err(_) => None,
    }
}

/// Tux's stock at the catalog, once it answers: a catalog just started leads only once it has
/// won an election, even alone.
fn tux(catalog: &str) -> u64 {
    let bearer = format!("Bearer {TEST_SECRET}");
    let quantity = || {
        let reply = get_with(
            &format!("{catalog}/products/tux"),
            &[("Authorization", &bearer)],
        );
        reply.json["data"]["quantity"].as_u64()
    };
    eventually(Duration::from_secs(10), quantity).expect("the catalog answers with Tux's stock")
}

/// The catalog of a cluster with ports from `base`, on `base` + 1. Its front end is not there:
/// the first buy waits out its cache lease, later ones do not call it.
fn start_catalog(data: &Path, base: u16, work: &Path) -> crate::common::Process {
    let file = crate::common::cluster_file(work, base);
    crate::common::serve(
        &[
            "catalog",
            "--cluster",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--initial-stock",
            "1000000",
        ],
        work,
        base + 1,
    )
}

/// Whether the catalog says its disk is full.
fn disk_full(catalog: &str) -> Option<bool> {
    let reply = get_with(&format!("{catalog}/health"), &[]);
    reply.json["data"]["disk_full"].as_bool()
}

#[test]
#[ignore = "mounts a small tmpfs, which needs root: run as root: cargo test --test it -- --ignored (.ci/run does)"]
fn a_full_disk_holds_the_replicas_writes_until_there_is_room_and_loses_no_acknowledged_buy() {
    let disk = SmallDisk::mount("48k").expect("mounting a tmpfs needs root");
    let work = tempfile::tempdir().unwrap();
    let base = storectl::config::find_free_port_base("127.0.0.1").unwrap();
    let catalog = format!("http://127.0.0.1:{}", base + 1);
    let mut server = start_catalog(&disk.path(), base, work.path());

    // Buy until the disk is full: the buy whose entry cannot be written is not acknowledged.
    let mut acknowledged = 0u64;
    let failed = loop {
        assert!(acknowledged < 5_000, "the disk never filled");
        match buy(&catalog, &format!("k{acknowledged}")) {
            Some(200) => acknowledged += 1,
            other => break other,
        }
    };
    assert!(matches!(failed, None | Some(503)), "{failed:?}");
    // The replica stays up, says why it writes nothing, and acknowledges nothing more.
    eventually(Duration::from_secs(10), || {
        disk_full(&catalog).filter(|&f| f)
    })
    .expect("the replica says its disk is full");
    assert!(server.try_wait().unwrap().is_none(), "the replica stays up");
    assert_ne!(buy(&catalog, "while-full"), Some(200));

    // Room again: the replica writes what it held and carries on by itself.
    disk.grow("4m");
    eventually(Duration::from_secs(10), || {
        disk_full(&catalog).filter(|&f| !f)
    })
    .expect("the replica sees the room");
    // Every acknowledged buy is there, exactly once; the buys that got no answer may have been
    // held and written since, and asking again with their keys gives their answers without
    // taking more.
    for key in 0..=acknowledged {
        assert_eq!(buy(&catalog, &format!("k{key}")), Some(200));
    }
    assert_eq!(buy(&catalog, "while-full"), Some(200));
    assert_eq!(
        tux(&catalog),
        1_000_000 - acknowledged - 2,
        "a key bought twice"
    );

    // And a restart finds it all on the disk.
    server.kill().unwrap();
    server.wait().unwrap();
    let mut server = start_catalog(&disk.path(), base, work.path());
    assert_eq!(tux(&catalog), 1_000_000 - acknowledged - 2);
    server.kill().unwrap();
    server.wait().unwrap();
}
