//! `storectl bench` as a user runs it: short studies and throughput runs against real clusters,
//! checked through the files they leave.

use crate::common::{read, stderr, stdout, storectl, Cluster};
use serde_json::Value;

/// Rows of a CSV file after its header, split into columns.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn a_short_study_leaves_the_csv_the_plots_and_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let run = storectl(&[
        "bench",
        "--out",
        out.to_str().unwrap(),
        "--p",
        "0,0.5",
        "--clients",
        "2",
        "--iterations",
        "20",
        "--seed",
        "11",
        "--json",
    ]);
    assert!(run.status.success(), "bench failed: {}", stderr(&run));

    // JSON on stdout: both cache modes at both p, with no error.
    let study: Value = serde_json::from_slice(&run.stdout).expect("--json prints JSON");
    let points = study["points"].as_array().unwrap();
    let modes: Vec<(&str, f64)> = points
        .iter()
        .map(|p| (p["cache"].as_str().unwrap(), p["p"].as_f64().unwrap()))
        .collect();
    assert_eq!(
        modes,
        vec![("on", 0.0), ("on", 0.5), ("off", 0.0), ("off", 0.5)]
    );
    for point in points {
        // Every iteration queries once: 2 sessions × 20 iterations.
        assert_eq!(point["product_query"]["count"], 40, "{point}");
        assert_eq!(point["product_query"]["errors"], 0, "{point}");
        assert_eq!(point["order"]["errors"], 0, "{point}");
    }
    // p = 0 never orders; p = 0.5 orders, and every order is checked by an order query.
    assert_eq!(points[0]["order"]["count"], 0);
    let ordered = points[1]["order"]["count"].as_u64().unwrap();
    assert!(ordered > 0);
    assert_eq!(points[1]["order_query"]["count"], ordered);
    // The cache only hits when it is on, and with 20 toys in 10 entries it can miss.
    let hits = points[0]["hit_ratio"].as_f64().unwrap();
    assert!(hits > 0.0 && hits < 1.0, "hit ratio {hits}");
    assert_eq!(points[2]["hit_ratio"], 0.0);

    // The CSV: one row per point and request type, agreeing with the JSON.
    let rows = csv_rows(&read(&out.join("points.csv")));
    assert_eq!(rows.len(), 4 * 5);
    assert_eq!(rows[0][..4], ["on", "0", "2", "product-query"]);
    assert_eq!(rows[0][4], "40");
    // Product queries split by the front end's X-Cache header: hits and misses add up.
    assert_eq!(rows[1][3], "product-query-hit");
    assert_eq!(rows[2][3], "product-query-miss");
    let count = |row: &Vec<String>| row[4].parse::<u64>().unwrap();
    assert_eq!(count(&rows[1]) + count(&rows[2]), 40);
    assert!(
        count(&rows[1]) > 0 && count(&rows[2]) > 0,
        "{:?}",
        &rows[..3]
    );
    assert_eq!(rows[8][..4], ["on", "0.5", "2", "order"]);
    assert_eq!(rows[8][4], ordered.to_string());
    // With the cache off, nothing is a hit.
    assert_eq!(rows[11][..5], ["off", "0", "2", "product-query-hit", "0"]);

    // One plot per request type, with both modes on its axes.
    for name in ["product-query", "order", "order-query"] {
        let svg = read(&out.join(format!("{name}.svg")));
        assert!(svg.starts_with("<svg"), "{name}.svg is not SVG");
        assert!(svg.contains("cache on: mean") && svg.contains("cache off: mean"));
    }
    let summary = read(&out.join("summary.md"));
    assert!(summary.contains("## What the cache saves"), "{summary}");
    assert!(summary.contains("seed 11"), "{summary}");
    assert!(summary.contains("![Orders (POST /orders)](order.svg)"));
}

#[test]
fn the_same_seed_makes_the_same_choices() {
    let dir = tempfile::tempdir().unwrap();
    let orders = |name: &str| -> Vec<u64> {
        let out = dir.path().join(name);
        let run = storectl(&[
            "bench",
            "--out",
            out.to_str().unwrap(),
            "--p",
            "0.3,0.7",
            "--cache",
            "on",
            "--iterations",
            "30",
            "--seed",
            "5",
            "--json",
        ]);
        assert!(run.status.success(), "{}", stderr(&run));
        let study: Value = serde_json::from_slice(&run.stdout).unwrap();
        study["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["order"]["count"].as_u64().unwrap())
            .collect()
    };
    let first = orders("a");
    assert_eq!(first, orders("b"));
    assert!(first[0] < first[1], "more orders at a higher p: {first:?}");
}

#[test]
fn the_throughput_mode_reports_every_workload() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("load");
    let run = storectl(&[
        "bench",
        "--load",
        "--connections",
        "4",
        "--duration",
        "300ms",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "bench --load failed: {}",
        stderr(&run)
    );
    let rows = csv_rows(&read(&out.join("throughput.csv")));
    let phases: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(
        phases,
        vec![
            ("cached-query", "4"),
            ("cached-query", "1"),
            ("bare-warp", "4"),
            ("bare-warp", "1"),
            ("uncached-query", "4"),
            ("uncached-query", "1"),
            ("order", "4"),
            ("order", "1"),
        ]
    );
    for row in &rows {
        let requests: u64 = row[2].parse().unwrap();
        assert!(requests > 0, "{row:?}");
        assert_eq!(row[3], "0", "errors in {row:?}");
        assert!(row[6].parse::<f64>().unwrap() > 0.0, "req/s in {row:?}");
    }
    // Cached queries hit (after the warm-up), uncached ones never do. A lease renewal that a
    // loaded machine delays past the lease (0.8 s) empties the cache: a miss for each of the
    // 20 toys. Two such emptyings at most, however few requests a loaded machine managed.
    let requests: f64 = rows[0][2].parse().unwrap();
    let misses = (requests * (1.0 - rows[0][12].parse::<f64>().unwrap())).round();
    assert!(misses <= 40.0, "{misses} misses: {:?}", rows[0]);
    assert_eq!(rows[4][12], "0.0000");
    // The goal column speaks only where a goal is set.
    assert!(rows[1][13].contains("p50"));
    assert_eq!(rows[5][13], "");
    let summary = read(&out.join("throughput.md"));
    assert!(
        summary.contains("| cached product query | 4 |"),
        "{summary}"
    );
    assert!(
        summary.contains("| bare warp server, same reply | 4 |")
            && summary
                .contains("Beside a bare warp server giving the same reply: at 4 connections"),
        "{summary}"
    );
    assert!(stdout(&run).contains("req/s"));
}

#[test]
fn a_running_cluster_is_measured_as_it_is() {
    let cluster = Cluster::start(&["--cache-size", "4"]);
    let state = cluster.state();
    let out = cluster.dir.path().join("results");
    let run = storectl(&[
        "bench",
        "--state-dir",
        state.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--p",
        "0.5",
        "--iterations",
        "10",
        "--json",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let study: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(study["points"].as_array().unwrap().len(), 1);
    assert_eq!(study["points"][0]["cache"], "on");
    assert!(study["cluster"].as_str().unwrap().contains("4 entries"));
    // Its orders went into the cluster's own logs.
    let ordered = study["points"][0]["order"]["count"].as_u64().unwrap();
    assert!(ordered > 0);
    let last = cluster.service("order-3")["last_order"].as_u64();
    assert_eq!(last, Some(ordered - 1));

    // A cache mode the cluster does not have is refused before anything runs.
    let refused = storectl(&[
        "bench",
        "--state-dir",
        state.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--cache",
        "off",
    ]);
    assert_eq!(refused.status.code(), Some(2));
    let err = stderr(&refused);
    assert!(err.contains("has its cache on"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(
        cluster.service("order-3")["last_order"].as_u64(),
        Some(ordered - 1)
    );
}

#[test]
fn bad_bench_arguments_fail_at_once_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never");
    let out = out.to_str().unwrap();
    for args in [
        vec!["bench", "--out", out, "--p", "1.5"],
        vec!["bench", "--out", out, "--load", "--p", "0.5"],
        vec![
            "bench",
            "--out",
            out,
            "--iterations",
            "5",
            "--duration",
            "1s",
        ],
        vec!["bench", "--out", out, "--cache", "sometimes"],
        vec!["bench", "--out", out, "--connections", "8"],
    ] {
        let run = storectl(&args);
        assert_eq!(run.status.code(), Some(2), "{args:?}");
        assert_eq!(stderr(&run).trim().lines().count(), 1, "{args:?}");
    }
    let run = storectl(&["bench", "--out", out, "--state-dir", "/nonexistent/state"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr(&run).contains("no state directory"));
    assert!(
        !dir.path().join("never").exists(),
        "a failed bench leaves no results directory"
    );
}

#[test]
fn orders_are_measured_beside_etcd_puts() {
    assert!(
        storectl::bench::etcd::find().is_some(),
        "this test needs etcd on the PATH (Debian's etcd-server; .ci/run installs it)"
    );
    let cluster = Cluster::start(&["--initial-stock", "1000000"]);
    let state = cluster.state();
    let out = cluster.dir.path().join("results");
    let run = storectl(&[
        "bench",
        "--load",
        "--etcd",
        "--state-dir",
        state.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--duration",
        "300ms",
        "--connections",
        "4",
        "--json",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    let puts: Vec<&Value> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["workload"] == "etcd-put")
        .collect();
    assert_eq!(puts.len(), 2, "{report}");
    for phase in puts {
        assert!(phase["requests"].as_u64().unwrap() > 0, "{phase}");
        assert_eq!(phase["errors"], 0, "{phase}");
    }
    let summary = read(&out.join("throughput.md"));
    assert!(
        summary.contains("Beside etcd: at 4 connections"),
        "{summary}"
    );
}
