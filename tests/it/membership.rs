//! `storectl member add|remove|replace` under client load: a replica whose data was deleted
//! replaced, the order group grown to five and shrunk back with its leader removed, a leader
//! killed in the middle of a change, and a group of five that loses two replicas. Every client
//! retries with the same key and reads every acknowledged order back at the end; the replicas'
//! files and the stock are checked afterwards.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::{eventually, get, stderr, stdout, Cluster, Process, EXE};

/// Enough stock that the clients never find their toys sold out.
const STOCK: &[&str] = &["--initial-stock", "1000000"];

/// Four clients ordering in the background until `iterations` each are done.
fn load(cluster: &Cluster, iterations: u32) -> Process {
    let state = cluster.state();
    Process::spawn(
        Command::new(EXE)
            .args(["client", "--state-dir", state.to_str().unwrap()])
            .args(["--p", "1", "--clients", "4", "--seed", "11", "--json"])
            .args(["--iterations", &iterations.to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    )
}

/// Waits for the clients to end: no error, every acknowledged order read back as it was.
fn assert_clients_saw_nothing(load: Process) -> Value {
    let out = load.wait_with_output();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("client --json prints JSON: {}", stderr(&out)));
    assert!(report["orders"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["mismatches"], 0, "{report}");
    assert_eq!(report["orders_checked"], report["orders"], "{report}");
    report
}

/// A free port for a new replica: the one-host layout's next port may belong to another test's
/// cluster, started beside this one.
fn free_address() -> String {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("127.0.0.1:{}", probe.local_addr().unwrap().port())
}

fn member(cluster: &Cluster, args: &[&str]) -> std::process::Output {
    let state = cluster.state();
    let mut all = vec!["member"];
    all.extend_from_slice(args);
    all.extend(["--state-dir", state.to_str().unwrap()]);
    crate::common::storectl(&all)
}

fn assert_member(cluster: &Cluster, args: &[&str]) -> String {
    let out = member(cluster, args);
    assert!(out.status.success(), "member {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// The order group's voters, as its leader knows them.
fn voters(cluster: &Cluster) -> Vec<u64> {
    let out = member(cluster, &["list", "--group", "order", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut ids: Vec<u64> = rows
        .iter()
        .filter(|r| r["voter"] == true)
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

fn leader_id(cluster: &Cluster) -> u32 {
    cluster.leader_of("order")[6..].parse().unwrap()
}

/// Waits until the clients have made some orders, so a change meets them.
fn wait_for_orders(cluster: &Cluster, at_least: u64) {
    let leader = cluster.leader_of("order");
    eventually(Duration::from_secs(30), || {
        (cluster.service(&leader)["orders"].as_u64()? >= at_least).then_some(())
    })
    .expect("the clients order");
}

fn assert_files_and_stock_agree(cluster: &Cluster) {
    cluster.assert_converges(Duration::from_secs(20));
    let verify = cluster.run("verify-logs", &["--stock"]);
    assert!(
        verify.status.success(),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
}

#[test]
fn a_replica_whose_data_was_deleted_refuses_to_rejoin_and_is_replaced_under_load() {
    let cluster = Cluster::start(STOCK);
    let clients = load(&cluster, 600);
    wait_for_orders(&cluster, 50);
    let lost: u32 = if leader_id(&cluster) == 2 { 1 } else { 2 };
    let name = format!("order-{lost}");
    cluster.must("kill", &[&name]);
    for file in [
        format!("raft-{lost}.log"),
        format!("snapshot-{lost}.json"),
        format!("orders-{lost}.csv"),
        format!("identity-{lost}.json"),
    ] {
        let _ = std::fs::remove_file(cluster.file(&file));
    }
    // Started again from nothing, it would vote and acknowledge as if it remembered.
    let refused = cluster.run("restart", &[&name]);
    assert_eq!(refused.status.code(), Some(1));
    let said = stderr(&refused);
    assert!(
        said.contains("has no data") && said.contains("member replace"),
        "{said}"
    );
    assert!(
        !cluster.file(&format!("raft-{lost}.log")).exists(),
        "a refused replica writes no log"
    );

    let replaced = assert_member(
        &cluster,
        &[
            "replace",
            "--group",
            "order",
            "--id",
            &lost.to_string(),
            "--with",
            "4",
            "--address",
            &free_address(),
        ],
    );
    assert!(
        replaced.contains(&format!("replaced order-{lost} with order-4")),
        "{replaced}"
    );
    let mut expected: Vec<u64> = vec![1, 2, 3, 4];
    expected.retain(|&id| id != u64::from(lost));
    assert_eq!(voters(&cluster), expected);
    assert_clients_saw_nothing(clients);
    // The new replica holds every order.
    let rows = cluster.status();
    assert!(
        rows.iter().any(|r| r["name"] == "order-4"),
        "status knows order-4: {rows:?}"
    );
    assert_files_and_stock_agree(&cluster);
}

#[test]
fn the_order_group_grows_to_five_and_shrinks_back_removing_its_leader_under_load() {
    let cluster = Cluster::start(STOCK);
    let clients = load(&cluster, 900);
    wait_for_orders(&cluster, 30);
    for id in ["4", "5"] {
        let address = free_address();
        let added = assert_member(
            &cluster,
            &["add", "--group", "order", "--id", id, "--address", &address],
        );
        assert!(added.contains(&format!("added order-{id}")), "{added}");
    }
    assert_eq!(voters(&cluster), [1, 2, 3, 4, 5]);

    // The leader leaves the group: the others elect one among themselves.
    let first = leader_id(&cluster);
    let removed = assert_member(
        &cluster,
        &["remove", "--group", "order", "--id", &first.to_string()],
    );
    assert!(
        removed.contains(&format!("removed order-{first}")),
        "{removed}"
    );
    let second = leader_id(&cluster);
    assert_ne!(first, second);
    // And a follower, back to three.
    let follower = voters(&cluster)
        .into_iter()
        .find(|&id| id != u64::from(second))
        .unwrap();
    assert_member(
        &cluster,
        &["remove", "--group", "order", "--id", &follower.to_string()],
    );
    assert_eq!(voters(&cluster).len(), 3);
    let status = cluster.status();
    let order_rows = status
        .iter()
        .filter(|r| r["name"].as_str().unwrap().starts_with("order-"))
        .count();
    assert_eq!(
        order_rows, 3,
        "the removed replicas are stopped and forgotten"
    );

    // A change that would leave no majority answering is refused, and changes nothing.
    let remaining = voters(&cluster);
    let down = remaining
        .iter()
        .find(|&&id| id != u64::from(leader_id(&cluster)))
        .unwrap();
    cluster.must("kill", &[&format!("order-{down}")]);
    let other = remaining
        .iter()
        .find(|&&id| id != *down && id != u64::from(leader_id(&cluster)))
        .unwrap();
    let refused = member(
        &cluster,
        &["remove", "--group", "order", "--id", &other.to_string()],
    );
    assert_eq!(refused.status.code(), Some(1));
    let said = stderr(&refused);
    assert!(said.contains("only 1 answers"), "{said}");
    assert_eq!(said.trim().lines().count(), 1, "{said}");
    assert_eq!(voters(&cluster), remaining);
    cluster.must("restart", &[&format!("order-{down}")]);

    assert_clients_saw_nothing(clients);
    assert_files_and_stock_agree(&cluster);
}

/// The leader's own report of whether its membership is joint.
fn changing(cluster: &Cluster) -> Option<bool> {
    let leader = cluster.leader_of("order");
    let address = cluster.service(&leader)["address"].as_str()?.to_string();
    let health = get(&format!("http://{address}/health")).json;
    health["data"]["changing"].as_bool()
}

#[test]
fn a_leader_killed_in_the_middle_of_a_change_is_followed_by_one_that_finishes_it() {
    // A front end that looks seldom has not seen the new member as a voter when the leader
    // dies, and must find the next leader (the new member, as the highest id) from followers.
    let cluster = Cluster::start(&[
        "--fault-hooks",
        "--initial-stock",
        "1000000",
        "--health-interval",
        "5s",
    ]);
    // Slow fsyncs hold the change in its joint configuration long enough to kill its leader.
    let slow = |ms: &str| {
        for id in 1..=4 {
            let dir = cluster.file(&format!("faults/order-{id}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("slow-fsync"), ms).unwrap();
        }
    };
    slow("400");
    let state = cluster.state();
    let adding = Process::spawn(
        Command::new(EXE)
            .args(["member", "add", "--group", "order", "--id", "4"])
            .args(["--address", &free_address()])
            .args(["--state-dir", state.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    );
    eventually(Duration::from_secs(30), || {
        changing(&cluster).filter(|&joint| joint).map(|_| ())
    })
    .expect("the change goes through a joint configuration");
    let leader = cluster.leader_of("order");
    cluster.must("kill", &["leader"]);
    slow("0");
    let _ = adding.wait_with_output();
    // Whatever the command was told, the group leaves the joint configuration by itself.
    let settled = eventually(Duration::from_secs(30), || {
        (changing(&cluster) == Some(false)).then(|| voters(&cluster))
    })
    .expect("a new leader finishes the change");
    assert!(
        settled == [1, 2, 3, 4] || settled == [1, 2, 3],
        "the old voters or the new ones, never a mix: {settled:?}"
    );
    cluster.order_each(&["tux", "fox"], 1);
    cluster.must("restart", &[&leader]);
    cluster.order_each(&["whale"], 1);
    assert_files_and_stock_agree(&cluster);
}

#[test]
fn a_group_of_five_loses_two_replicas_without_a_client_noticing() {
    let cluster = Cluster::start(&["--replicas", "5", "--initial-stock", "1000000"]);
    let status = cluster.status();
    let orders: Vec<&str> = status
        .iter()
        .filter_map(|r| r["name"].as_str().filter(|n| n.starts_with("order-")))
        .collect();
    assert_eq!(
        orders,
        ["order-1", "order-2", "order-3", "order-4", "order-5"]
    );
    assert_eq!(
        cluster.leader_of("order"),
        "order-5",
        "the highest id leads"
    );
    let (ok, report) = crate::common::chaos(
        &cluster,
        &[
            "--group",
            "order",
            "--fault",
            "two",
            "--rounds",
            "2",
            "--down-for",
            "1s",
        ],
    );
    assert!(ok, "{report}");
    crate::common::assert_nothing_lost(&report);
    assert_eq!(report["majority_kept"], true, "{report}");
    assert_eq!(report["client_errors"], 0, "{report}");
}

#[test]
fn a_replica_restored_from_an_older_copy_refuses_to_start_and_the_leader_stays_up() {
    let cluster = Cluster::start(&[]);
    cluster.order_each(&["tux"], 1);
    let follower: u32 = if leader_id(&cluster) == 1 { 2 } else { 1 };
    let name = format!("order-{follower}");
    cluster.assert_converges(Duration::from_secs(10));
    cluster.must("kill", &[&name]);
    let files = [
        format!("raft-{follower}.log"),
        format!("orders-{follower}.csv"),
        format!("identity-{follower}.json"),
    ];
    let backup = cluster.dir.path().join("backup");
    std::fs::create_dir_all(&backup).unwrap();
    for file in &files {
        std::fs::copy(cluster.file(file), backup.join(file)).unwrap();
    }
    cluster.must("restart", &[&name]);
    cluster.order_each(&["fox", "whale", "lego"], 1);
    cluster.assert_converges(Duration::from_secs(10));
    cluster.must("kill", &[&name]);
    // The copy from before those orders: the replica acknowledged entries it no longer has.
    for file in &files {
        std::fs::copy(backup.join(file), cluster.file(file)).unwrap();
    }
    let refused = cluster.run("restart", &[&name]);
    assert_eq!(refused.status.code(), Some(1));
    let said = stderr(&refused);
    assert!(
        said.contains("older copy") && said.contains("member replace"),
        "{said}"
    );
    let leader = cluster.leader_of("order");
    assert_eq!(cluster.service(&leader)["alive"], true);
    cluster.order_each(&["tux"], 1);
}
