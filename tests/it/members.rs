//! `storectl member list`: each group's members as its leader knows them.

use std::time::Duration;

use serde_json::Value;

use crate::common::{eventually, stderr, Cluster};

fn members(cluster: &Cluster, args: &[&str]) -> Vec<Value> {
    let state = cluster.state();
    let mut all = vec![
        "member",
        "list",
        "--json",
        "--state-dir",
        state.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let out = crate::common::storectl(&all);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("member list --json is JSON")
}

#[test]
fn member_list_shows_each_groups_voters_its_leader_and_who_lags() {
    let cluster = Cluster::start(&["--initial-stock", "1000000"]);
    let rows = eventually(Duration::from_secs(10), || {
        let rows = members(&cluster, &[]);
        rows.iter().all(|r| r["behind"] == 0).then_some(rows)
    })
    .expect("every member catches up");
    for group in ["order", "catalog"] {
        let of: Vec<&Value> = rows.iter().filter(|r| r["group"] == group).collect();
        assert_eq!(of.len(), 3, "{rows:?}");
        assert!(of
            .iter()
            .all(|r| r["voter"] == true && r["answers"] == true));
        assert_eq!(of.iter().filter(|r| r["leader"] == true).count(), 1);
    }

    // A follower down while orders go on: it answers no more, and falls behind.
    let leader = cluster.leader_of("order");
    let follower = (1..=3)
        .map(|id| format!("order-{id}"))
        .find(|name| *name != leader)
        .unwrap();
    cluster.must("kill", &[&follower]);
    cluster.order_each(&["tux", "fox", "whale"], 1);
    let file = cluster.state().join("cluster.toml");
    let rows = members(
        &cluster,
        &["--group", "order", "--cluster", file.to_str().unwrap()],
    );
    assert_eq!(rows.len(), 3, "{rows:?}");
    let id: u64 = follower.rsplit('-').next().unwrap().parse().unwrap();
    let down = rows.iter().find(|r| r["id"] == id).unwrap();
    assert_eq!(down["answers"], false, "{down}");
    assert!(down["behind"].as_u64().unwrap() >= 3, "{down}");
}

#[test]
fn member_list_without_a_cluster_says_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("none");
    let out = crate::common::storectl(&["member", "list", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let said = stderr(&out);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains("storectl up"), "{said}");
}
