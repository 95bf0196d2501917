//! Several front ends, and services that find each other in a cluster file (`docs/deploy.md`), on one
//! host: what a user sees before the services are spread over hosts.

use std::time::Duration;

use serde_json::Value;

use crate::common::{
    eventually, get, post, stderr, stdout, storectl_with_env, Cluster, TEST_SECRET,
};

/// Runs `storectl serve args…` to its end with the test secret: for services that must refuse
/// to start.
fn serve_refused(args: &[&str]) -> String {
    let mut all = vec!["serve"];
    all.extend_from_slice(args);
    let out = storectl_with_env(&all, &[("STORECTL_CLUSTER_SECRET", TEST_SECRET)]);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn a_service_not_in_the_cluster_file_or_not_on_its_host_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let base = storectl::config::find_free_port_base("127.0.0.1").unwrap();
    let file = crate::common::cluster_file(dir.path(), base);
    let file = file.to_str().unwrap();

    let err = serve_refused(&["order", "--cluster", file, "--id", "4"]);
    assert!(
        err.contains("cluster.toml") && err.contains("no [[order]] entry with id 4"),
        "{err}"
    );
    let err = serve_refused(&["frontend", "--cluster", file, "--id", "2"]);
    assert!(err.contains("no [[frontend]] entry with id 2"), "{err}");

    // An address that is not this host's: 192.0.2.0/24 is reserved for documentation.
    let elsewhere = std::fs::read_to_string(file)
        .unwrap()
        .replace(&format!("127.0.0.1:{}", base + 1), "192.0.2.1:8001");
    let elsewhere_file = dir.path().join("elsewhere.toml");
    std::fs::write(&elsewhere_file, elsewhere).unwrap();
    let data = dir.path().to_str().unwrap();
    let err = serve_refused(&[
        "catalog",
        "--id",
        "1",
        "--cluster",
        elsewhere_file.to_str().unwrap(),
        "--data-dir",
        data,
    ]);
    assert!(
        err.contains("elsewhere.toml")
            && err.contains("[[catalog]] id 1 has address 192.0.2.1:8001")
            && err.contains("--listen"),
        "{err}"
    );
    let three = dir.path().join("three.toml");
    storectl::cluster_file::ClusterFile::local("127.0.0.1", base, 1)
        .save(&three)
        .unwrap();
    let three = three.to_str().unwrap();
    let err = serve_refused(&["catalog", "--cluster", three, "--data-dir", data]);
    assert!(err.contains("3 [[catalog]] entries: pass --id"), "{err}");

    let twice = std::fs::read_to_string(file).unwrap().replace(
        &format!("127.0.0.1:{}", base + 11),
        &format!("127.0.0.1:{}", base + 10),
    );
    let twice_file = dir.path().join("twice.toml");
    std::fs::write(&twice_file, twice).unwrap();
    let err = serve_refused(&[
        "order",
        "--cluster",
        twice_file.to_str().unwrap(),
        "--id",
        "1",
    ]);
    assert!(
        err.contains("twice.toml")
            && err.contains("[[order]] id 2")
            && err.contains("another entry"),
        "{err}"
    );
    assert!(
        !dir.path().join("raft-1.log").exists(),
        "a refused replica writes nothing"
    );
}

#[test]
fn a_buy_through_one_front_end_is_seen_at_the_other_at_once() {
    let cluster = Cluster::start(&["--frontends", "2"]);
    let other = format!("http://127.0.0.1:{}", cluster.base + 2);
    // Both front ends cache the toy.
    for url in [
        cluster.url("/products/tux"),
        format!("{other}/products/tux"),
    ] {
        get(&url);
        let hit = crate::common::get_with(&url, &[]);
        assert_eq!(hit.status, 200);
    }
    let before = get(&format!("{other}/products/tux")).json["data"]["quantity"]
        .as_u64()
        .unwrap();
    for round in 1..=5 {
        let order = post(
            &cluster.url("/orders"),
            r#"{"name":"tux","quantity":1}"#,
            &[],
        );
        assert_eq!(order.status, 200, "{}", order.json);
        let seen = get(&format!("{other}/products/tux")).json["data"]["quantity"]
            .as_u64()
            .unwrap();
        assert_eq!(
            seen,
            before - round,
            "the other front end's cache was stale"
        );
    }
}

#[test]
fn every_front_end_is_a_service_to_see_kill_and_restart() {
    let cluster = Cluster::start(&["--frontends", "2"]);
    let names: Vec<String> = cluster
        .status()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "catalog-1",
            "catalog-2",
            "catalog-3",
            "order-1",
            "order-2",
            "order-3",
            "frontend-1",
            "frontend-2"
        ]
    );
    let killed = cluster.run("kill", &["frontend-2"]);
    assert!(killed.status.success(), "{}", stderr(&killed));
    assert_eq!(cluster.service("frontend-2")["alive"], false);
    // The catalog does not wait on a front end that is gone for longer than its lease.
    cluster.order_each(&["fox"], 1);
    let restarted = cluster.run("restart", &["frontend-2"]);
    assert!(restarted.status.success(), "{}", stderr(&restarted));
    let leased = eventually(Duration::from_secs(10), || {
        (cluster.service("frontend-2")["cache_leased"] == true).then_some(())
    });
    assert!(leased.is_some(), "{}", stdout(&cluster.run("status", &[])));
}

#[test]
fn status_and_verify_logs_ask_the_services_of_a_cluster_file() {
    let cluster = Cluster::start(&[]);
    cluster.order_each(&["tux", "fox", "lego"], 2);
    let file = cluster.file("cluster.toml");
    let file = file.to_str().unwrap();
    let secret = crate::common::read(&cluster.file("cluster-secret"));
    let env = [("STORECTL_CLUSTER_SECRET", secret.trim())];

    let status = storectl_with_env(&["status", "--cluster", file, "--json"], &env);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    let rows: Vec<Value> = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rows.len(), 7);
    assert!(rows
        .iter()
        .all(|r| r["alive"] == true && r["pid"].is_null()));
    assert!(rows.iter().any(|r| r["role"] == "leader"));

    let verified = eventually(Duration::from_secs(10), || {
        let out = storectl_with_env(
            &["verify-logs", "--cluster", file, "--stock", "--json"],
            &env,
        );
        let report: Value = serde_json::from_slice(&out.stdout).ok()?;
        (out.status.success() && report["identical"] == true).then_some(report)
    })
    .expect("the replicas agree over the network");
    assert_eq!(verified["orders"], 3);
    assert_eq!(verified["stock"]["conserved"], true);
    let digests: Vec<&Value> = verified["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["digest"])
        .collect();
    assert!(digests.iter().all(|d| *d == digests[0] && d.is_string()));

    // A replica that cannot be reached is named, and the check fails.
    let killed = cluster.run("kill", &["order-1"]);
    assert!(killed.status.success());
    let out = storectl_with_env(&["verify-logs", "--cluster", file], &env);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("order-1") && text.contains("NOT REACHED"),
        "{text}"
    );
    assert!(text.contains("INCOMPLETE: order-1"), "{text}");

    // Without the secret the internal endpoints refuse; the check says what to set.
    let out = storectl_with_env(&["verify-logs", "--cluster", file], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("STORECTL_CLUSTER_SECRET"));
}
