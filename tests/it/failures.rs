//! Failures a careful tester injects into real processes: a paused leader, two replicas down,
//! power loss, a slow disk, a catalog that dies or stalls. Clients retry with the same key,
//! and every acknowledged order is read back afterwards (by `chaos`, or here directly).

use std::time::{Duration, Instant};

use crate::common::{assert_nothing_lost, chaos, eventually, get, post, stderr, stdout, Cluster};
use serde_json::Value;

/// Enough stock that no fault of a chaos run finds the store sold out (a fault that meets no
/// order fails the run).
const STOCK_FOR_CHAOS: &[&str] = &["--initial-stock", "1000000"];

#[test]
fn the_catalog_crashed_paused_or_slowed_under_load_loses_and_leaks_nothing() {
    let cluster = Cluster::start(&["--fault-hooks", "--initial-stock", "1000000"]);
    let (ok, report) = chaos(
        &cluster,
        &[
            "--group",
            "catalog",
            "--fault",
            "kill,stop,slow-disk",
            "--rounds",
            "3",
            "--down-for",
            "1s",
        ],
    );
    assert!(ok, "{report}");
    assert_nothing_lost(&report);
    for round in report["kills"].as_array().unwrap() {
        assert!(
            round["replica"].as_str().unwrap().starts_with("catalog-"),
            "{round}"
        );
    }
    // One catalog replica of three: the group keeps its majority, and clients see nothing.
    assert_eq!(report["majority_kept"], true, "{report}");
    assert_eq!(report["client_errors"], 0, "{report}");
}

#[test]
fn chaos_fails_when_its_faults_meet_no_order() {
    // One of each toy, bought before chaos starts, and no restock: the faults meet nothing.
    let cluster = Cluster::start(&["--initial-stock", "1", "--restock-interval", "1h"]);
    let toys = storectl::client::catalog_products();
    cluster.order_each(&toys.iter().map(String::as_str).collect::<Vec<_>>(), 1);
    let (ok, report) = chaos(
        &cluster,
        &["--fault", "kill", "--rounds", "1", "--down-for", "300ms"],
    );
    assert!(!ok, "{report}");
    assert_eq!(report["kills"][0]["orders_acknowledged"], 0, "{report}");
    assert!(report["sold_out_after_s"].is_number(), "{report}");
    let out = cluster.run(
        "chaos",
        &["--fault", "kill", "--rounds", "1", "--interval", "100ms"],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("the fault met no order"), "{text}");
    assert!(text.contains("more stock"), "{text}");
    let said = stderr(&out);
    assert_eq!(said.trim().lines().count(), 1, "one line on stderr: {said}");
    assert!(said.contains("faults met no order"), "{said}");
}

#[test]
fn a_paused_leader_is_replaced_and_clients_see_no_error() {
    let cluster = Cluster::start(STOCK_FOR_CHAOS);
    let (ok, report) = chaos(
        &cluster,
        &[
            "--fault",
            "stop",
            "--rounds",
            "3",
            "--leader-share",
            "1",
            "--down-for",
            "1s",
        ],
    );
    assert!(ok, "{report}");
    assert_nothing_lost(&report);
    assert_eq!(report["client_errors"], 0, "{report}");
    assert!(report["kills"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["was_leader"] == true));
}

#[test]
fn two_replicas_down_and_a_power_loss_lose_no_acknowledged_order() {
    let cluster = Cluster::start(STOCK_FOR_CHAOS);
    let (ok, report) = chaos(
        &cluster,
        &[
            "--fault",
            "two,power",
            "--rounds",
            "3",
            "--down-for",
            "500ms",
        ],
    );
    assert!(ok, "{report}");
    assert_nothing_lost(&report);
    assert_eq!(report["majority_kept"], false);
}

#[test]
fn a_slow_disk_on_the_leader_stalls_no_client() {
    let cluster = Cluster::start(&["--fault-hooks", "--initial-stock", "1000000"]);
    let (ok, report) = chaos(
        &cluster,
        &[
            "--fault",
            "slow-disk",
            "--rounds",
            "1",
            "--leader-share",
            "1",
            "--down-for",
            "3s",
        ],
    );
    assert!(ok, "{report}");
    assert_nothing_lost(&report);
    assert_eq!(report["client_errors"], 0, "{report}");
}

#[test]
fn a_leader_whose_disk_hangs_hands_its_leadership_over() {
    // The leader sends new entries to its followers while its own fsync of them runs, so the
    // followers could commit without it and go on hearing from it. A leader whose fsync hangs
    // must still stop leading, as one that waited for every write would: the followers elect
    // another, and the order goes through there.
    let cluster = Cluster::start(&["--fault-hooks", "--initial-stock", "1000"]);
    let leader = cluster.leader_of("order");
    let hang = cluster.file(&format!("faults/{leader}/slow-fsync"));
    std::fs::write(&hang, "8000").unwrap();
    let buyer = std::thread::spawn({
        let state = cluster.state();
        move || {
            let state = state.to_str().unwrap().to_string();
            crate::common::storectl(&["buy", "--state-dir", &state, "tux", "1"])
        }
    });
    let successor = eventually(Duration::from_secs(6), || {
        cluster
            .status()
            .into_iter()
            .find(|s| {
                s["role"] == "leader"
                    && s["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("order-") && n != leader)
            })
            .map(|s| s["name"].as_str().unwrap().to_string())
    });
    std::fs::remove_file(&hang).unwrap();
    let successor =
        successor.unwrap_or_else(|| panic!("{leader}'s disk hung for 6 s and it still led alone"));
    let bought = buyer.join().unwrap();
    assert!(bought.status.success(), "the order: {}", stderr(&bought));
    assert_ne!(successor, leader);
    cluster.assert_converges(Duration::from_secs(30));
}

#[test]
fn slow_disk_without_fault_hooks_is_refused_before_anything_runs() {
    let cluster = Cluster::start(&[]);
    let out = cluster.run("chaos", &["--fault", "slow-disk", "--rounds", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--fault-hooks"), "{}", stderr(&out));
}

#[test]
fn a_dead_catalog_fails_orders_with_its_name_and_never_moves_the_leader() {
    let cluster = Cluster::start(&[]);
    let term_before = cluster.service("order-3")["term"].clone();
    // Two catalog replicas of three down, the leader among them: no majority.
    let down = catalog_majority(&cluster);
    for name in &down {
        cluster.must("kill", &[name.as_str()]);
    }
    for _ in 0..3 {
        let started = Instant::now();
        let reply = post(
            &cluster.url("/orders"),
            r#"{"name":"tux","quantity":1}"#,
            &[],
        );
        assert_eq!(reply.status, 503, "{}", reply.json);
        let message = reply.json["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains("catalog"), "{message}");
        assert!(message.contains("1 of 3 answers"), "{message}");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{:?}",
            started.elapsed()
        );
    }
    let leader = cluster.service("order-3");
    assert_eq!(leader["role"], "leader", "{leader}");
    assert_eq!(
        leader["term"], term_before,
        "no election because of the catalog"
    );
    for name in &down {
        cluster.must("restart", &[name.as_str()]);
    }
    let reply = post(
        &cluster.url("/orders"),
        r#"{"name":"tux","quantity":1}"#,
        &[],
    );
    assert_eq!(reply.status, 200, "{}", reply.json);
    cluster.assert_converges(Duration::from_secs(10));
}

/// Two catalog replicas, the leader first: a majority of the group.
fn catalog_majority(cluster: &Cluster) -> Vec<String> {
    let leader = cluster.leader_of("catalog");
    let other = if leader == "catalog-1" {
        "catalog-2"
    } else {
        "catalog-1"
    };
    vec![leader, other.to_string()]
}

/// Pauses (`stop`) or resumes (`cont`) a majority of the catalog group.
fn signal_all(cluster: &Cluster, names: &[String], signal: &str) {
    for name in names {
        let out = cluster.run("kill", &[name.as_str(), "--signal", signal]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

#[test]
fn a_stalled_catalog_fails_an_order_cleanly_and_its_retry_buys_once() {
    let cluster = Cluster::start(&[]);
    let stalled = catalog_majority(&cluster);
    signal_all(&cluster, &stalled, "stop");
    // A query the cache cannot answer fails fast, naming the catalog, rather than hang for as
    // long as the catalog stays paused.
    let started = Instant::now();
    let query = get(&cluster.url("/products/marbles"));
    assert_eq!(query.status, 503, "{}", query.json);
    let message = query.json["error"]["message"].as_str().unwrap();
    assert!(message.contains("catalog"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let order = r#"{"name":"lego","quantity":3}"#;
    let key = [("Idempotency-Key", "stalled")];
    let reply = post(&cluster.url("/orders"), order, &key);
    assert_eq!(reply.status, 503, "{}", reply.json);
    let message = reply.json["error"]["message"].as_str().unwrap();
    assert!(message.contains("catalog"), "{message}");
    assert!(message.contains("same Idempotency-Key"), "{message}");
    signal_all(&cluster, &stalled, "cont");
    // Whatever the catalog did with the buy it heard while paused, stock and log agree...
    cluster.assert_converges(Duration::from_secs(15));
    // ...and the client's retry with its key places the order once.
    let again = post(&cluster.url("/orders"), order, &key);
    assert_eq!(again.status, 200, "{}", again.json);
    let again_twice = post(&cluster.url("/orders"), order, &key);
    assert_eq!(again_twice.json, again.json);
    let lego = get(&cluster.url("/products/lego"));
    assert_eq!(lego.json["data"]["quantity"], 97, "{}", lego.json);

    // A client that sent no key is told the one the front end made up, and its retry with it
    // buys once.
    let stalled = catalog_majority(&cluster);
    signal_all(&cluster, &stalled, "stop");
    let unkeyed = post(
        &cluster.url("/orders"),
        r#"{"name":"fox","quantity":2}"#,
        &[],
    );
    assert_eq!(unkeyed.status, 503, "{}", unkeyed.json);
    let message = unkeyed.json["error"]["message"].as_str().unwrap();
    let made_up = message
        .split("Idempotency-Key: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the reply names the key: {message}"))
        .to_string();
    signal_all(&cluster, &stalled, "cont");
    let key = [("Idempotency-Key", made_up.as_str())];
    let placed = post(
        &cluster.url("/orders"),
        r#"{"name":"fox","quantity":2}"#,
        &key,
    );
    assert_eq!(placed.status, 200, "{}", placed.json);
    cluster.assert_converges(Duration::from_secs(15));
    let fox = get(&cluster.url("/products/fox"));
    assert_eq!(
        fox.json["data"]["quantity"], 98,
        "bought once: {}",
        fox.json
    );
}

#[test]
fn a_buy_whose_leader_died_before_logging_it_is_placed_by_the_next_leader() {
    let faults = tempfile::tempdir().unwrap();
    let fault_dir = faults.path().to_str().unwrap().to_string();
    let cluster = Cluster::start_with_env(&[], &[("STORECTL_FAULT_DIR", &fault_dir)]);
    // The leader aborts right after the catalog sold, and nobody retries: the order is sent
    // to the leader directly, as only a front end would, and the caller gives up.
    std::fs::write(faults.path().join(storectl::fault::AFTER_BUY), "").unwrap();
    let secret = crate::common::read(&cluster.file("cluster-secret"));
    let bearer = format!("Bearer {}", secret.trim());
    let leader = format!("http://127.0.0.1:{}/orders", cluster.base + 12);
    let _ = crate::common::post_raw(
        &leader,
        r#"{"key":"orphan","name":"lego","quantity":3}"#,
        &[("Authorization", bearer.as_str())],
    );
    assert!(
        !faults.path().join(storectl::fault::AFTER_BUY).exists(),
        "the fault fired"
    );
    // The next leader finds the catalog's unconfirmed buy and places its order.
    let placed = eventually(Duration::from_secs(20), || {
        let text = crate::common::read(&cluster.orders_file(2));
        text.contains(",orphan\n").then_some(text)
    });
    assert!(placed.is_some(), "the orphaned buy got its order");
    assert_eq!(
        get(&cluster.url("/products/lego")).json["data"]["quantity"],
        97
    );
    cluster.must("restart", &["order-3"]);
    cluster.assert_converges(Duration::from_secs(10));
    // A late retry of the key learns the number and buys nothing more.
    let again = post(
        &cluster.url("/orders"),
        r#"{"name":"lego","quantity":3}"#,
        &[("Idempotency-Key", "orphan")],
    );
    assert_eq!(again.status, 200, "{}", again.json);
    assert_eq!(again.json["data"]["order_number"], 0);
    assert_eq!(
        get(&cluster.url("/products/lego")).json["data"]["quantity"],
        97
    );
}

#[test]
fn with_one_replica_left_orders_fail_fast_and_order_queries_still_answer() {
    let cluster = Cluster::start(&[]);
    cluster.order_each(&["tux", "fox", "lego"], 1);
    cluster.assert_converges(Duration::from_secs(10));
    for replica in ["order-3", "order-2"] {
        cluster.must("kill", &[replica]);
    }
    let started = Instant::now();
    let reply = post(
        &cluster.url("/orders"),
        r#"{"name":"tux","quantity":1}"#,
        &[],
    );
    let waited = started.elapsed();
    assert_eq!(reply.status, 503, "{}", reply.json);
    let message = reply.json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("1 of 3 order replicas answer; orders need 2"),
        "{message}"
    );
    // Fails fast: far sooner than the failover budget (10 s).
    assert!(waited < Duration::from_secs(6), "waited {waited:?}");
    let order = get(&cluster.url("/orders/1"));
    assert_eq!(order.status, 200, "{}", order.json);
    assert_eq!(order.json["data"]["name"], "Fox");
    // Back to two: orders work again, numbered after the others.
    cluster.must("restart", &["order-2"]);
    let reply = eventually(Duration::from_secs(10), || {
        let r = post(
            &cluster.url("/orders"),
            r#"{"name":"tux","quantity":1}"#,
            &[("Idempotency-Key", "after")],
        );
        (r.status == 200).then_some(r)
    })
    .expect("orders work with two replicas");
    assert_eq!(reply.json["data"]["order_number"], 3);
    let status = stdout(&cluster.run("status", &[]));
    assert!(status.contains("order-2"), "{status}");
}

#[test]
fn a_replica_whose_data_was_wiped_refuses_to_rejoin_and_the_leader_stays_up() {
    let cluster = Cluster::start(&[]);
    cluster.order_each(&["tux", "fox"], 1);
    cluster.assert_converges(Duration::from_secs(10));
    cluster.must("kill", &["order-1"]);
    for file in ["raft-1.log", "orders-1.csv"] {
        std::fs::remove_file(cluster.file(file)).unwrap();
    }
    let restart = cluster.run("restart", &["order-1"]);
    assert_eq!(restart.status.code(), Some(1), "{}", stderr(&restart));
    let err = stderr(&restart);
    assert!(err.contains("order-1 has its identity"), "{err}");
    assert!(err.contains("data was lost"), "{err}");
    assert!(err.contains("member replace"), "{err}");
    // The leader did not stop over it, and orders go on with the two replicas left.
    assert_eq!(cluster.service("order-3")["alive"], true);
    let reply = post(
        &cluster.url("/orders"),
        r#"{"name":"lego","quantity":1}"#,
        &[],
    );
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["data"]["order_number"], 2);
}

#[test]
fn a_paused_leader_whose_successor_has_a_slow_disk_loses_nothing() {
    // The case that lost thousands of acknowledged orders before the engine: the leader paused
    // while the replica that would replace it writes slowly, so the old leader wakes up before
    // the election is over.
    let cluster = Cluster::start(&["--fault-hooks", "--initial-stock", "100000"]);
    let client = std::thread::spawn({
        let state = cluster.state();
        move || {
            let state = state.to_str().unwrap().to_string();
            crate::common::storectl(&[
                "client",
                "--state-dir",
                &state,
                "--p",
                "1",
                "--clients",
                "8",
                "--iterations",
                "150",
                "--json",
            ])
        }
    });
    for (paused, slowed) in [("order-3", "order-2"), ("order-2", "order-3")] {
        let leader = eventually(Duration::from_secs(10), || {
            cluster
                .status()
                .into_iter()
                .find(|s| s["role"] == "leader")
                .map(|s| s["name"].as_str().unwrap().to_string())
        })
        .expect("a leader");
        let (paused, slowed) = if leader == paused {
            (paused, slowed)
        } else {
            (leader.as_str(), paused)
        };
        let slow = cluster.file(&format!("faults/{slowed}/slow-fsync"));
        std::fs::write(&slow, "2000").unwrap();
        cluster.must("kill", &[paused, "--signal", "stop"]);
        std::thread::sleep(Duration::from_secs(3));
        cluster.must("kill", &[paused, "--signal", "cont"]);
        std::fs::remove_file(&slow).unwrap();
    }
    let out = client.join().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("client --json prints JSON: {}", stderr(&out)));
    assert!(report["orders"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(
        report["mismatches"], 0,
        "every acknowledged order read back: {report}"
    );
    cluster.assert_converges(Duration::from_secs(20));
}
