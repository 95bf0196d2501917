//! The lossy disk (`storectl lossy-disk`, `up --lossy-disk`): through the kernel it loses, at a
//! power cut, exactly what a real disk may lose; a cluster on it loses no acknowledged order when
//! the power of either group is cut under load.
//!
//! They need root and FUSE (/dev/fuse), so a plain `cargo test` leaves them out and says why;
//! `.ci/run` runs them (`cargo test --test it lossy -- --ignored`).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{assert_nothing_lost, chaos, eventually, Cluster, Process, EXE};

/// `storectl lossy-disk` over a temporary directory, stopped (and so unmounted) when dropped.
struct Mounted {
    dir: tempfile::TempDir,
    daemon: Process,
}

impl Mounted {
    fn start() -> Mounted {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("mnt");
        fs::create_dir(&mount).unwrap();
        let daemon = Process::spawn(
            Command::new(EXE)
                .arg("lossy-disk")
                .arg(&mount)
                .arg("--backing")
                .arg(dir.path().join("backing")),
        );
        let control = mount.join(".lossy-disk");
        eventually(Duration::from_secs(10), || control.exists().then_some(()))
            .expect("the lossy disk mounts");
        Mounted { dir, daemon }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join("mnt").join(name)
    }

    fn cut(&self, what: &str) {
        fs::write(self.path(".lossy-disk"), what).unwrap();
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // SAFETY: kill sends a signal to the daemon this test started.
        unsafe { libc::kill(self.daemon.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.daemon.wait();
    }
}

fn sync_dir(dir: &Path) {
    File::open(dir).unwrap().sync_all().unwrap();
}

fn append(path: &Path, bytes: &[u8], sync: bool) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(bytes).unwrap();
    if sync {
        file.sync_data().unwrap();
    }
}

/// Whether process `pid` runs: it exists and is not a zombie waiting to be reaped.
fn runs(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(stat.rsplit_once(')')?.1.trim().starts_with(['Z', 'X'])))
        .is_some_and(|zombie| !zombie)
}

/// What a file holds, or `None` when it is not there.
fn content(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

#[test]
#[ignore = "needs root and FUSE (/dev/fuse); .ci/run runs it"]
fn through_the_kernel_a_cut_loses_exactly_what_was_not_synced() {
    let disk = Mounted::start();
    let root = disk.path("");
    let log = disk.path("log");
    append(&log, b"synced\n", true);
    sync_dir(&root);
    append(&log, b"not synced\n", false);

    fs::write(disk.path("unlinked"), "still here").unwrap();
    File::open(disk.path("unlinked"))
        .unwrap()
        .sync_all()
        .unwrap();
    // The atomic replacement the store uses for snapshots, once with and once without the
    // directory's fsync.
    for name in ["kept", "lost"] {
        fs::write(disk.path(name), "old").unwrap();
        File::open(disk.path(name)).unwrap().sync_all().unwrap();
    }
    sync_dir(&root);
    for name in ["kept", "lost"] {
        let tmp = disk.path(&format!("{name}.tmp"));
        append(&tmp, b"new", true);
        fs::rename(&tmp, disk.path(name)).unwrap();
        if name == "kept" {
            sync_dir(&root);
        }
    }
    // Not synced from here on: a durable file unlinked, a file whose bytes were synced but
    // not its name, a directory never synced into its parent.
    fs::remove_file(disk.path("unlinked")).unwrap();
    append(&disk.path("unnamed"), b"bytes", true);
    fs::create_dir(disk.path("dir")).unwrap();
    append(&disk.path("dir/inside"), b"bytes", true);
    sync_dir(&disk.path("dir"));

    let status = content(&disk.path(".lossy-disk")).unwrap();
    assert!(status.contains("cuts: 0"), "{status}");
    disk.cut("cut");

    assert_eq!(content(&log).as_deref(), Some("synced\n"));
    assert_eq!(content(&disk.path("kept")).as_deref(), Some("new"));
    assert_eq!(content(&disk.path("lost")).as_deref(), Some("old"));
    assert_eq!(content(&disk.path("unnamed")), None);
    assert!(!disk.path("dir").exists());
    assert_eq!(
        content(&disk.path("unlinked")).as_deref(),
        Some("still here")
    );
    let status = content(&disk.path(".lossy-disk")).unwrap();
    assert!(status.contains("cuts: 1"), "{status}");
    assert!(status.contains("unsynced bytes: 0"), "{status}");

    // A cut of one directory leaves the rest as it was.
    for name in ["a", "b"] {
        fs::create_dir(disk.path(name)).unwrap();
    }
    sync_dir(&root);
    for name in ["a/log", "b/log"] {
        append(&disk.path(name), b"synced\n", true);
    }
    sync_dir(&disk.path("a"));
    sync_dir(&disk.path("b"));
    for name in ["a/log", "b/log"] {
        append(&disk.path(name), b"not synced\n", false);
    }
    disk.cut("cut a");
    assert_eq!(content(&disk.path("a/log")).as_deref(), Some("synced\n"));
    assert_eq!(
        content(&disk.path("b/log")).as_deref(),
        Some("synced\nnot synced\n")
    );
}

#[test]
#[ignore = "needs root and FUSE (/dev/fuse); .ci/run runs it"]
fn power_cuts_under_load_on_the_lossy_disk_lose_no_acknowledged_order() {
    let cluster = Cluster::start(&["--lossy-disk", "--initial-stock", "1000000"]);
    let (ok, report) = chaos(
        &cluster,
        &[
            "--group",
            "any",
            "--fault",
            "power",
            "--rounds",
            "6",
            "--down-for",
            "300ms",
        ],
    );
    assert!(ok, "{report}");
    assert_nothing_lost(&report);
    let lost: u64 = report["kills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["unsynced_bytes_lost"].as_u64().expect("a real cut"))
        .sum();
    assert!(lost > 0, "the cuts took back unsynced writes: {report}");

    // Stopped and started again from what the disk kept: every file opens, the replicas agree.
    let mount = cluster.state().join("disk");
    let daemon = fs::read_to_string(cluster.state().join("lossy-disk.pid")).unwrap();
    let daemon: u32 = daemon.split_whitespace().next().unwrap().parse().unwrap();
    cluster.must("down", &[]);
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains(mount.to_str().unwrap()),
        "down unmounts the disk"
    );
    assert!(!runs(daemon), "down stops the disk's server");
    let base = cluster.base.to_string();
    let up = cluster.run("up", &["--port-base", &base]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let verify = cluster.run("verify-logs", &["--stock"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
#[ignore = "needs root and FUSE (/dev/fuse); .ci/run runs it"]
fn power_cuts_of_the_catalog_while_it_restocks_leak_no_stock() {
    // Ten of each toy and a restock every 300 ms: toys sell out one after another and are
    // restocked again and again while the catalog's power is cut.
    let cluster = Cluster::start(&[
        "--lossy-disk",
        "--initial-stock",
        "10",
        "--restock-interval",
        "300ms",
    ]);
    let (ok, report) = chaos(
        &cluster,
        &[
            "--group",
            "catalog",
            "--fault",
            "power",
            "--rounds",
            "3",
            "--down-for",
            "300ms",
            // With ten of each toy a third of the orders are refused as sold out; eight
            // clients make it all but certain that every cut meets an order that is placed.
            "--clients",
            "8",
        ],
    );
    assert!(ok, "{report}");
    assert_nothing_lost(&report);
    let verify = cluster.run("verify-logs", &["--stock", "--json"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let stock: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    let restocked: u64 = stock["stock"]["toys"]
        .as_array()
        .unwrap_or_else(|| panic!("toys in {stock}"))
        .iter()
        .map(|t| t["restocked"].as_u64().unwrap())
        .sum();
    assert!(
        restocked > 0,
        "the catalog restocked during the run: {stock}"
    );
}

#[test]
#[ignore = "needs root and FUSE (/dev/fuse); .ci/run runs it"]
fn a_leader_that_lost_an_entry_its_followers_committed_does_not_lead_again_without_it() {
    let cluster = Cluster::start(&["--lossy-disk", "--fault-hooks", "--initial-stock", "1000"]);
    cluster.order_each(&["tux"], 1);
    let leader = cluster.leader_of("order");
    let replicas = ["order-1", "order-2", "order-3"];
    let followers: Vec<&str> = replicas.into_iter().filter(|r| *r != leader).collect();
    // The leader's fsyncs now take 4 s: its followers make the next order's entry durable, and
    // so commit it, while the leader's own copy is still unsynced.
    let slow = cluster.file(&format!("faults/{leader}/slow-fsync"));
    fs::write(&slow, "4000").unwrap();
    let url = cluster.url("/orders");
    std::thread::spawn(move || {
        let body = r#"{"name":"fox","quantity":1}"#;
        crate::common::post(&url, body, &[("Idempotency-Key", "committed-by-followers")])
    });
    let applied = |name: &str| cluster.service(name)["orders"].as_u64().unwrap_or(0);
    let committed = eventually(Duration::from_secs(5), || {
        followers.iter().all(|f| applied(f) >= 2).then_some(())
    });
    assert!(committed.is_some(), "the followers applied the order");

    // The whole group loses power before the leader's fsync ends: its copy of the entry is gone.
    for replica in replicas {
        cluster.must("kill", &[replica]);
    }
    let control = cluster.state().join("disk").join(".lossy-disk");
    for replica in replicas {
        fs::write(&control, format!("cut {replica}\n")).unwrap();
    }
    fs::remove_file(&slow).unwrap();
    // The old leader first, so that its followers cannot elect another before it is back. It
    // finds no leader to catch up with yet (it must not be one), so its restart may say so.
    let _ = cluster.run("restart", &[&leader]);
    for follower in &followers {
        cluster.must("restart", &[follower]);
    }
    cluster.leader_of("order");
    let placed = eventually(Duration::from_secs(10), || {
        let body = r#"{"name":"lego","quantity":1}"#;
        let reply = crate::common::post(
            &cluster.url("/orders"),
            body,
            &[("Idempotency-Key", "after")],
        );
        (reply.status == 200).then_some(())
    });
    assert!(placed.is_some(), "an order after the restart");
    cluster.order_each(&["lego"; 2], 1);
    let verify = cluster.run("verify-logs", &[]);
    assert!(
        verify.status.success(),
        "the replicas' order files disagree: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    for replica in replicas {
        let id = &replica["order-".len()..];
        let orders = fs::read_to_string(cluster.file(&format!("disk/{replica}/orders-{id}.csv")));
        assert!(
            orders.unwrap().contains("committed-by-followers"),
            "{replica} lacks the order its followers committed"
        );
    }
}
