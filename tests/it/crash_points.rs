//! Every crash point of the storage layer (`storectl::fault::STORAGE_POINTS`), walked: a replica
//! of a cluster under load crashes exactly there, and is started again from what it left. With
//! the lossy disk, its power is cut too, so what it had not synced is gone. After each: the
//! replica opens its files, catches up, and holds what the others hold; the clients saw no error
//! and every order they were told of reads back; stock is conserved.
//!
//! The replicas run with a small log (`STORECTL_SMALL_LOG`), so snapshots, their installation
//! on a replica that fell behind, and log compactions happen within a few hundred orders.

use std::time::{Duration, Instant};

use storectl::fault;

use crate::common::{stdout, storectl_with_env, Cluster};

const SMALL_LOG: (&str, &str) = (fault::SMALL_LOG_ENV, "1");

/// Which replica a case crashes.
#[derive(Clone, Copy)]
enum Who {
    Leader,
    Follower,
}

/// One crash point, armed on one replica of one group; `FILE` in the point stands for the
/// group's file of that replica (e.g. `snapshot-FILE` → `snapshot-2.json`).
struct Case {
    point: &'static str,
    group: &'static str,
    who: Who,
    /// The replica must fall behind first, so that the leader sends it a snapshot.
    behind: bool,
}

const CASES: &[Case] = &[
    Case {
        point: fault::APPEND_WRITTEN,
        group: "order",
        who: Who::Leader,
        behind: false,
    },
    Case {
        point: fault::APPEND_SYNCED,
        group: "catalog",
        who: Who::Follower,
        behind: false,
    },
    Case {
        point: "replace-synced@snapshot-ID.json",
        group: "order",
        who: Who::Follower,
        behind: false,
    },
    Case {
        point: "replace-renamed@catalog-snapshot-ID.json",
        group: "catalog",
        who: Who::Leader,
        behind: false,
    },
    Case {
        point: "replace-synced@raft-ID.log",
        group: "order",
        who: Who::Leader,
        behind: false,
    },
    Case {
        point: "replace-renamed@catalog-raft-ID.log",
        group: "catalog",
        who: Who::Follower,
        behind: false,
    },
    Case {
        point: fault::SNAPSHOT_INSTALLING,
        group: "order",
        who: Who::Follower,
        behind: true,
    },
];

/// Every point of the storage layer is walked by at least one case.
#[test]
fn the_walk_covers_every_storage_crash_point() {
    for point in fault::STORAGE_POINTS {
        assert!(
            CASES.iter().any(|c| c.point.starts_with(point)),
            "no case crashes at {point}"
        );
    }
}

#[test]
fn a_crash_at_every_storage_point_loses_nothing() {
    walk(false);
}

#[test]
#[ignore = "needs root and FUSE (/dev/fuse) for the lossy disk; .ci/run runs it"]
fn a_crash_and_a_power_cut_at_every_storage_point_lose_nothing() {
    walk(true);
}

fn walk(lossy: bool) {
    for case in CASES {
        let mut flags = vec!["--fault-hooks", "--initial-stock", "1000000"];
        if lossy {
            flags.push("--lossy-disk");
        }
        let cluster = Cluster::start_with_env(&flags, &[SMALL_LOG]);
        let leader = cluster.leader_of(case.group);
        let replica = match case.who {
            Who::Leader => leader,
            Who::Follower => (1..=3)
                .map(|id| format!("{}-{id}", case.group))
                .find(|name| *name != leader)
                .unwrap(),
        };
        let id = replica.rsplit('-').next().unwrap();
        let point = case.point.replace("ID", id);
        let said = |what: &str| format!("{point} on {replica}: {what}");
        // Orders before the crash: enough for a snapshot, so that the next one replaces it.
        clients(&cluster, 60);
        if case.behind {
            cluster.must("kill", &[&replica]);
            clients(&cluster, 60);
        }
        let hook = cluster.file(&format!("faults/{replica}/{point}"));
        std::fs::write(&hook, "").unwrap();
        if case.behind {
            // The leader sends it a snapshot as it starts; it crashes installing it.
            let _ = restart(&cluster, &replica);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while alive(&cluster, &replica) {
            assert!(Instant::now() < deadline, "{}", said("never reached"));
            clients(&cluster, 10);
        }
        assert!(
            !hook.exists(),
            "{}",
            said("the point was not what stopped it")
        );
        if lossy {
            let control = cluster.state().join("disk/.lossy-disk");
            std::fs::write(&control, format!("cut {replica}")).unwrap();
        }
        let restarted = restart(&cluster, &replica);
        assert!(
            restarted.status.success(),
            "{}",
            said(&String::from_utf8_lossy(&restarted.stderr))
        );
        clients(&cluster, 20);
        cluster.assert_converges(Duration::from_secs(20));
    }
}

/// Two clients ordering `iterations` times each; every order they are told of must read back.
fn clients(cluster: &Cluster, iterations: u32) {
    let frontend = format!("127.0.0.1:{}", cluster.base);
    let iterations = iterations.to_string();
    let out = storectl_with_env(
        &[
            "client",
            "--frontend",
            &frontend,
            "--p",
            "1",
            "--clients",
            "2",
            "--iterations",
            &iterations,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stdout(&out));
}

fn alive(cluster: &Cluster, replica: &str) -> bool {
    cluster.service(replica)["alive"] == true
}

/// `storectl restart`, with the small log the cluster was started with.
fn restart(cluster: &Cluster, replica: &str) -> std::process::Output {
    let state = cluster.state();
    storectl_with_env(
        &["restart", replica, "--state-dir", state.to_str().unwrap()],
        &[SMALL_LOG],
    )
}
