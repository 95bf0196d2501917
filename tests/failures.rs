//! Failures a careful tester injects into real processes: a paused leader, two replicas down,
//! power loss, a slow disk, a catalog that dies or stalls. Clients retry with the same key,
//! and every acknowledged order is read back afterwards (by `chaos`, or here directly).

mod common;

use std::time::{Duration, Instant};

use common::{eventually, get, post, stderr, stdout, Cluster};
use serde_json::Value;

/// Runs `storectl chaos --json` against `cluster` and returns its report.
fn chaos(cluster: &Cluster, args: &[&str]) -> (bool, Value) {
    let mut all = vec![
        "--clients",
        "4",
        "--interval",
        "300ms",
        "--seed",
        "3",
        "--json",
    ];
    all.extend_from_slice(args);
    let out = cluster.run("chaos", &all);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("chaos --json prints JSON: {}", stderr(&out)));
    (out.status.success(), report)
}

fn assert_nothing_lost(report: &Value) {
    assert!(
        report["orders_acknowledged"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(report["orders_lost"], 0, "{report}");
    assert_eq!(report["orders_duplicated"], 0, "{report}");
    assert_eq!(report["files_identical"], true, "{report}");
    assert_eq!(report["stock_conserved"], true, "{report}");
}

#[test]
fn a_paused_leader_is_replaced_and_clients_see_no_error() {
    let cluster = Cluster::start(&[]);
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
    let cluster = Cluster::start(&[]);
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
    let cluster = Cluster::start(&["--fault-hooks"]);
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
    assert!(cluster.run("kill", &["catalog"]).status.success());
    for _ in 0..5 {
        let reply = post(
            &cluster.url("/orders"),
            r#"{"name":"tux","quantity":1}"#,
            &[],
        );
        assert_eq!(reply.status, 503, "{}", reply.json);
        let message = reply.json["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains("catalog"), "{message}");
    }
    let leader = cluster.service("order-3");
    assert_eq!(leader["role"], "leader", "{leader}");
    assert_eq!(
        leader["term"], term_before,
        "no election because of the catalog"
    );
    assert!(cluster.run("restart", &["catalog"]).status.success());
    let reply = post(
        &cluster.url("/orders"),
        r#"{"name":"tux","quantity":1}"#,
        &[],
    );
    assert_eq!(reply.status, 200, "{}", reply.json);
    cluster.assert_converges(Duration::from_secs(10));
}

#[test]
fn an_order_whose_client_gave_up_is_finished_and_takes_stock_once() {
    let cluster = Cluster::start(&[]);
    assert!(cluster
        .run("kill", &["catalog", "--signal", "stop"])
        .status
        .success());
    // The catalog hears the buy but answers nothing: the leader gives up on it, the client
    // gets a 503 naming the catalog and goes away.
    let reply = post(
        &cluster.url("/orders"),
        r#"{"name":"lego","quantity":3}"#,
        &[("Idempotency-Key", "gave-up")],
    );
    assert_eq!(reply.status, 503, "{}", reply.json);
    assert!(reply.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("catalog"));
    assert!(cluster
        .run("kill", &["catalog", "--signal", "cont"])
        .status
        .success());
    // The leader finishes the open intent: the order is placed, the stock taken once.
    let placed = eventually(Duration::from_secs(15), || {
        let text = common::read(&cluster.orders_file(3));
        text.contains(",gave-up\n").then_some(text)
    });
    assert!(placed.is_some(), "the open order was finished");
    cluster.assert_converges(Duration::from_secs(10));
    assert_eq!(
        get(&cluster.url("/products/lego")).json["data"]["quantity"],
        97
    );
    // The client's retry with its key learns the number; nothing more is bought.
    let again = post(
        &cluster.url("/orders"),
        r#"{"name":"lego","quantity":3}"#,
        &[("Idempotency-Key", "gave-up")],
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
    for toy in ["tux", "fox", "lego"] {
        let reply = post(
            &cluster.url("/orders"),
            &format!(r#"{{"name":"{toy}","quantity":1}}"#),
            &[],
        );
        assert_eq!(reply.status, 200);
    }
    cluster.assert_converges(Duration::from_secs(10));
    for replica in ["order-3", "order-2"] {
        assert!(cluster.run("kill", &[replica]).status.success());
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
    assert!(cluster.run("restart", &["order-2"]).status.success());
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
