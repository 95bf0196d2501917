//! A full disk under the catalog, for real: its data directory on a small tmpfs that fills up,
//! then grows. Needs root (to mount); elsewhere the test says why it does not run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{eventually, get_with, post, TEST_SECRET};

/// A tmpfs mounted on a temporary directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
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

fn buy(catalog: &str, key: &str) -> crate::common::Reply {
    let bearer = format!("Bearer {TEST_SECRET}");
    post(
        &format!("{catalog}/internal/buy"),
        &format!(r#"{{"orders":[{{"key":"{key}","name":"tux","quantity":1}}]}}"#),
        &[("Authorization", bearer.as_str())],
    )
}

fn tux(catalog: &str) -> u64 {
    let bearer = format!("Bearer {TEST_SECRET}");
    let reply = get_with(
        &format!("{catalog}/products/tux"),
        &[("Authorization", &bearer)],
    );
    reply.json["data"]["quantity"].as_u64().unwrap()
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

#[test]
fn a_full_disk_fails_buys_clearly_and_the_catalog_carries_on_when_there_is_room() {
    let Some(disk) = SmallDisk::mount("48k") else {
        eprintln!("skipped: mounting a tmpfs needs root (run the tests as root to include it)");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let base = storectl::config::find_free_port_base("127.0.0.1").unwrap();
    let catalog = format!("http://127.0.0.1:{}", base + 1);
    let mut server = start_catalog(&disk.path(), base, work.path());

    // Buy until the disk is full: the buy that cannot be written fails, and says why.
    let mut attempted = 0u64;
    let full = loop {
        attempted += 1;
        assert!(attempted < 5_000, "the disk never filled");
        let reply = buy(&catalog, &format!("k{attempted}"));
        if reply.status != 200 {
            break reply;
        }
    };
    assert_eq!(full.status, 503, "{}", full.json);
    let message = full.json["error"]["message"].as_str().unwrap();
    assert!(message.contains("disk full"), "{message}");

    // Room again: the catalog carries on without a restart.
    disk.grow("4m");
    let recovered = eventually(Duration::from_secs(10), || {
        attempted += 1;
        (buy(&catalog, &format!("k{attempted}")).status == 200).then_some(())
    });
    assert!(recovered.is_some(), "buys work again once there is room");

    // A crash now: the catalog starts from its ledger, and counts every buy exactly once.
    server.kill().unwrap();
    server.wait().unwrap();
    let mut server = start_catalog(&disk.path(), base, work.path());
    assert_eq!(tux(&catalog), 1_000_000 - attempted);
    let ledger = std::fs::read_to_string(disk.path().join("catalog-ledger.csv")).unwrap();
    let buys: Vec<&str> = ledger.lines().filter(|l| l.starts_with("buy,")).collect();
    let keys: std::collections::HashSet<&str> =
        buys.iter().map(|l| l.split(',').nth(1).unwrap()).collect();
    assert_eq!(buys.len(), keys.len(), "a buy was written twice");
    assert_eq!(buys.len() as u64, attempted);
    server.kill().unwrap();
    server.wait().unwrap();
}
