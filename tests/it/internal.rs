//! The internal endpoints refuse callers without the cluster's secret, and the secret stays
//! private: a file only its owner reads, never on a command line or in cluster.json.

use crate::common::{assert_error, get, post, read, Cluster};

#[test]
fn internal_endpoints_want_the_cluster_secret() {
    let cluster = Cluster::start(&[]);
    let frontend = cluster.url("");
    let catalog = format!("http://127.0.0.1:{}", cluster.base + 5);
    let leader = format!("http://127.0.0.1:{}", cluster.base + 12);
    let (name, right) = cluster.authorization();
    let wrong = format!("{}x", &right[..right.len() - 1]);

    // One order, so that there is stock taken and a log to protect.
    let first = post(
        &cluster.url("/orders"),
        r#"{"name":"tux","quantity":1}"#,
        &[],
    );
    assert_eq!(first.status, 200, "{}", first.json);

    let calls = [
        (
            format!("{frontend}/internal/invalidate"),
            r#"{"items":[{"name":"tux","version":99999999999999999}]}"#,
        ),
        (
            format!("{catalog}/internal/buy"),
            r#"{"term":99,"orders":[{"key":"intruder","name":"tux","quantity":50}]}"#,
        ),
        (
            format!("{catalog}/internal/raft/vote"),
            r#"{"vote":{"leader_id":{"term":99,"node_id":1},"committed":false},"last_log_id":null}"#,
        ),
        (
            format!("{leader}/internal/leader"),
            r#"{"leader_id":1,"term":1000}"#,
        ),
        (
            format!("{leader}/internal/replicate"),
            r#"{"leader_id":1,"term":1000,"prev":null,"entries":[],"leader_len":0}"#,
        ),
        (format!("{leader}/internal/sync"), r#"{"tail":[]}"#),
        (
            format!("{leader}/orders"),
            r#"{"key":"intruder-2","name":"tux","quantity":50}"#,
        ),
    ];
    for (url, body) in &calls {
        for headers in [vec![], vec![(name, wrong.as_str())]] {
            let reply = post(url, body, &headers);
            assert_error(&reply, 401);
        }
    }
    for url in [
        format!("{catalog}/internal/stock-check"),
        format!("{catalog}/products/tux"),
    ] {
        assert_error(&get(&url), 401);
    }

    // Nothing changed: one order in the log, the stock it took, the same leader.
    assert_eq!(
        get(&cluster.url("/products/tux")).json["data"]["quantity"],
        99
    );
    let status = cluster.status();
    let leaders: Vec<&str> = status
        .iter()
        .filter(|s| s["role"] == "leader")
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(leaders, ["catalog-3", "order-3"]);
    cluster.assert_converges(std::time::Duration::from_secs(10));
    assert_eq!(cluster.service("order-3")["last_order"], 0);

    // The front end forwards nothing internal: other services' endpoints are unknown there,
    // even to a caller with the secret.
    for path in [
        "/internal/buy",
        "/internal/replicate",
        "/internal/sync",
        "/internal/leader",
    ] {
        let reply = post(
            &format!("{frontend}{path}"),
            "{}",
            &[(name, right.as_str())],
        );
        assert_error(&reply, 404);
    }

    // The right secret is let in.
    let reply = post(
        &format!("{frontend}/internal/invalidate"),
        r#"{"items":[]}"#,
        &[(name, right.as_str())],
    );
    assert_eq!(reply.status, 200, "{}", reply.json);
}

#[test]
fn the_secret_is_private_to_its_owner_and_off_every_command_line() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = Cluster::start(&[]);
    let path = cluster.file("cluster-secret");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "owner-only permissions");
    let secret = read(&path).trim().to_string();
    assert!(secret.len() >= 32, "a long random secret");
    assert!(!read(&cluster.file("cluster.json")).contains(&secret));
    for service in cluster.status() {
        let pid = service["pid"].as_u64().unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(&secret),
            "{} shows the secret in ps",
            service["name"]
        );
    }
    // Every `up` makes a new one.
    cluster.must("down", &[]);
    let restarted = Cluster::start(&[]);
    assert_ne!(read(&restarted.file("cluster-secret")).trim(), secret);
}

#[test]
fn a_service_refuses_to_start_with_a_weak_secret() {
    let out = std::process::Command::new(crate::common::EXE)
        .args(["serve", "catalog", "--listen", "127.0.0.1:0"])
        .env("STORECTL_CLUSTER_SECRET", "short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = crate::common::stderr(&out);
    assert!(err.contains("at least 16 characters"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!err.contains("short"), "the secret is not echoed: {err}");
}
