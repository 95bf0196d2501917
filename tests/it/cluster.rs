//! The cluster commands and the replicas, driven as a user would: `up`, `client`, `status`,
//! `kill`, `restart`, `verify-logs`, `down`.

use std::time::{Duration, Instant};

use crate::common::{assert_error, eventually, get, get_with, post, stderr, stdout, Cluster};
use serde_json::Value;

fn client_json(cluster: &Cluster, args: &[&str]) -> (bool, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = cluster.run("client", &all);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("client --json prints JSON: {}", stderr(&out)));
    (out.status.success(), report)
}

#[test]
fn a_client_that_finds_the_store_sold_out_says_what_it_skipped() {
    let cluster = Cluster::start(&["--initial-stock", "1", "--restock-interval", "1h"]);
    let toys = storectl::client::catalog_products();
    cluster.order_each(&toys.iter().map(String::as_str).collect::<Vec<_>>(), 1);
    let (ok, report) = client_json(&cluster, &["--p", "1", "--iterations", "20"]);
    assert!(ok, "{report}");
    assert_eq!(report["queried"], 20, "{report}");
    assert_eq!(report["skipped_sold_out"], 20, "{report}");
    assert_eq!(report["orders"], 0, "{report}");
    assert!(report["sold_out_after_s"].is_number(), "{report}");
    let text = stdout(&cluster.run("client", &["--p", "1", "--iterations", "5"]));
    assert!(
        text.contains("5 found their toy sold out and ordered nothing"),
        "{text}"
    );
    assert!(text.contains("--initial-stock"), "{text}");
}

#[test]
fn a_client_run_adds_up_and_the_replicas_agree() {
    let cluster = Cluster::start(&[]);
    let (ok, report) = client_json(
        &cluster,
        &["--p", "1", "--iterations", "40", "--clients", "3"],
    );
    assert!(ok, "client exits 0: {report}");
    let n = |k: &str| report[k].as_u64().unwrap();
    assert_eq!(n("errors"), 0, "{report}");
    assert_eq!(n("mismatches"), 0);
    assert!(n("orders") > 0);
    assert_eq!(n("orders_checked"), n("orders"));
    // Every iteration queries once, every query with stock orders once (p = 1), every order is
    // checked once.
    assert_eq!(
        n("requests"),
        3 * 40 + n("orders") + n("sold_out") + n("orders_checked")
    );
    assert_eq!(report["query"]["count"], 3 * 40);
    // Every answered query is accounted for: it ordered, or says why it did not.
    assert_eq!(
        n("queried"),
        n("orders") + n("sold_out") + n("skipped_sold_out") + n("not_chosen"),
        "{report}"
    );
    assert_eq!(n("not_chosen"), 0, "p = 1 orders whenever it can");

    // Every replica's file holds every order, in a real CSV with a header.
    let wanted = eventually(Duration::from_secs(10), || {
        let texts: Vec<String> = (1..=3)
            .map(|id| crate::common::read(&cluster.orders_file(id)))
            .collect();
        (texts.iter().all(|t| t == &texts[0]) && texts[0].lines().count() as u64 == n("orders") + 1)
            .then(|| texts[0].clone())
    })
    .expect("the replicas converge");
    assert!(wanted.starts_with("number,name,quantity,term,key\n"));
    let verify = cluster.run("verify-logs", &[]);
    assert!(verify.status.success());
    assert!(
        stdout(&verify).starts_with("OK: 3 order files identical"),
        "{}",
        stdout(&verify)
    );

    // verify-logs notices a difference and says where.
    cluster.run("down", &[]);
    let path = cluster.orders_file(2);
    let text = crate::common::read(&path).replacen(",1,", ",9,", 1);
    std::fs::write(&path, text).unwrap();
    let verify = cluster.run("verify-logs", &[]);
    assert_eq!(verify.status.code(), Some(1));
    assert!(
        stdout(&verify).contains("orders-2.csv"),
        "{}",
        stdout(&verify)
    );
    assert!(
        stderr(&verify).contains("contradict each other"),
        "{}",
        stderr(&verify)
    );
}

#[test]
fn killing_a_replica_shows_in_status_and_orders_go_on() {
    let cluster = Cluster::start(&[]);
    assert_eq!(cluster.service("order-3")["role"], "leader");
    let killed = cluster.run("kill", &["order-3"]);
    assert!(killed.status.success(), "{}", stderr(&killed));
    assert!(stdout(&killed).contains("SIGKILL"));

    let reply = post(
        &cluster.url("/orders"),
        r#"{"name":"dolphin","quantity":1}"#,
        &[],
    );
    assert_eq!(reply.status, 200, "{}", reply.json);
    let new_leader = eventually(Duration::from_secs(10), || {
        let rows = cluster.status();
        let three = rows.iter().find(|r| r["name"] == "order-3")?;
        let two = rows.iter().find(|r| r["name"] == "order-2")?;
        (three["alive"] == false && two["role"] == "leader").then_some(())
    });
    assert!(
        new_leader.is_some(),
        "order-3 down and order-2 leading: {:?}",
        cluster.status()
    );

    // Back up, it catches up before restart returns, and the files end identical.
    let restarted = cluster.run("restart", &["order-3"]);
    assert!(restarted.status.success(), "{}", stderr(&restarted));
    assert!(
        stdout(&restarted).contains("has caught up"),
        "{}",
        stdout(&restarted)
    );
    assert_eq!(
        crate::common::read(&cluster.orders_file(3)).lines().count(),
        2,
        "order-3 holds the order placed while it was down as soon as restart returns"
    );
    cluster.assert_converges(Duration::from_secs(10));
    assert_eq!(
        crate::common::read(&cluster.orders_file(3)).lines().count(),
        2
    );
}

#[test]
fn the_leader_killed_under_load_loses_nothing() {
    let cluster = Cluster::start(&[]);
    for round in 0..2 {
        let state = cluster.state();
        let client = crate::common::Process::spawn(
            std::process::Command::new(crate::common::EXE)
                .args([
                    "client",
                    "--json",
                    "--p",
                    "1",
                    "--iterations",
                    "60",
                    "--clients",
                    "4",
                ])
                .args(["--state-dir", state.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped()),
        );
        // Kill once some orders have gone through, while the clients are still running.
        eventually(Duration::from_secs(10), || {
            (crate::common::read(&cluster.orders_file(1)).lines().count() > 5 + round * 60)
                .then_some(())
        });
        let killed = cluster.run("kill", &["leader"]);
        assert!(killed.status.success(), "{}", stderr(&killed));
        let victim = stdout(&killed)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        let out = client.wait_with_output();
        let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
        assert_eq!(report["errors"], 0, "round {round}: {report}");
        assert_eq!(report["mismatches"], 0, "round {round}: {report}");
        let restarted = cluster.run("restart", &[&victim]);
        assert!(restarted.status.success(), "{}", stderr(&restarted));
    }
    cluster.assert_converges(Duration::from_secs(15));
    let stock = cluster.run("verify-logs", &["--stock"]);
    assert!(
        stdout(&stock).contains("OK: stock conserved"),
        "{}",
        stdout(&stock)
    );
    // Numbers are contiguous from 0 and no key appears twice.
    let text = crate::common::read(&cluster.orders_file(1));
    let mut keys = std::collections::HashSet::new();
    for (i, line) in text.lines().skip(1).enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields[0], i.to_string(), "line {}: {line}", i + 2);
        assert!(
            keys.insert(fields[fields.len() - 1].to_string()),
            "duplicate key: {line}"
        );
    }
    assert!(get(&cluster.url("/orders/0")).status == 200);
}

#[test]
fn cluster_commands_refuse_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none");
    let missing = missing.to_str().unwrap();
    for command in ["status", "down", "verify-logs"] {
        let out = crate::common::storectl(&[command, "--state-dir", missing]);
        assert_eq!(out.status.code(), Some(1), "{command}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.contains("storectl up"),
            "{command} says what to do: {err}"
        );
    }
    let out = crate::common::storectl(&["kill", "order-9", "--state-dir", missing]);
    assert_ne!(out.status.code(), Some(0));
    let out = crate::common::storectl(&["client", "--p", "1.5"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));

    let cluster = Cluster::start(&[]);
    let again = cluster.run("up", &["--port-base", &cluster.base.to_string()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already running"),
        "{}",
        stderr(&again)
    );
    let other_dir = dir.path().join("second");
    let taken = crate::common::storectl(&[
        "up",
        "--state-dir",
        other_dir.to_str().unwrap(),
        "--port-base",
        &cluster.base.to_string(),
    ]);
    assert_eq!(taken.status.code(), Some(1));
    assert!(stderr(&taken).contains("in use"), "{}", stderr(&taken));
    let unknown = cluster.run("kill", &["order-9"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("unknown target"),
        "{}",
        stderr(&unknown)
    );
    for out in [&again, &taken, &unknown] {
        assert!(!stderr(out).contains("panicked"));
    }
}

#[test]
fn a_service_that_cannot_start_fails_up_and_nothing_is_left_running() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("catalog.csv"),
        "name,price,quantity\nTux,abc,1\n",
    )
    .unwrap();
    let base = storectl::config::find_free_port_base("127.0.0.1").unwrap();
    let out = crate::common::storectl(&[
        "up",
        "--state-dir",
        state.to_str().unwrap(),
        "--port-base",
        &base.to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    // Every catalog replica reads the same seed; whichever is seen exiting first is named.
    assert!(
        (1..=3).any(|id| err.contains(&format!("catalog-{id} exited during start"))),
        "{err}"
    );
    assert!(
        err.contains("catalog.csv, line 2"),
        "names file and line: {err}"
    );
    // Every port is free again: whatever up started, it stopped.
    let free = eventually(Duration::from_secs(10), || {
        storectl::config::ports_free("127.0.0.1", base).ok()
    });
    assert!(
        free.is_some(),
        "a service of the failed start is still listening"
    );
    assert_eq!(
        crate::common::read(&state.join("catalog.csv")),
        "name,price,quantity\nTux,abc,1\n",
        "a damaged file is never rewritten"
    );
}

#[test]
fn a_first_start_that_fails_leaves_no_replica_half_made() {
    // order-2 refuses to start (an orders file without its log), so it exits while the others
    // have written their identities: the next `up` must make the group anew, not find two
    // replicas with an identity and refuse the third as one that lost its data.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let blocker = state.join("orders-2.csv");
    std::fs::write(&blocker, "number,name,quantity,term,key\n0,Tux,1,1,k\n").unwrap();
    let state_dir = state.to_str().unwrap();
    // Another test may take a port between `up`'s check and a service's bind: try others, as
    // `Cluster::start` does (each failed try is itself a first start that must undo itself).
    let up = || {
        for _ in 0..5 {
            let base = storectl::config::find_free_port_base("127.0.0.1").unwrap();
            let out = crate::common::storectl(&[
                "up",
                "--state-dir",
                state_dir,
                "--port-base",
                &base.to_string(),
            ]);
            if !stderr(&out).contains("in use") {
                return out;
            }
        }
        panic!("could not start a cluster on free ports");
    };
    let failed = up();
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert!(
        stderr(&failed).contains("order-2 exited during start"),
        "{}",
        stderr(&failed)
    );
    std::fs::remove_file(&blocker).unwrap();
    let again = up();
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(crate::common::storectl(&["down", "--state-dir", state_dir])
        .status
        .success());
}

#[test]
fn the_catalog_buys_once_per_key_across_a_crash_and_the_stock_check_sees_strays() {
    let cluster = Cluster::start(&[]);
    // No order leader (order-3 alone has no majority) to place the strays' orders until the
    // end.
    let term = cluster.order_term();
    for name in ["order-1", "order-2"] {
        cluster.must("kill", &[name]);
    }
    let (name, value) = cluster.authorization();
    let secret = [(name, value.as_str())];
    let buy = |body: &str| {
        let catalog = cluster.catalog_leader_url();
        post(&format!("{catalog}/internal/buy"), body, &secret)
    };
    let stray =
        format!(r#"{{"term":{term},"orders":[{{"key":"stray-1","name":"yo-yo","quantity":7}}]}}"#);
    let first = buy(&stray);
    assert_eq!(first.status, 200, "{}", first.json);
    assert_eq!(
        first.json["data"][0]["bought"]["name"], "Yo-Yo",
        "{}",
        first.json
    );
    let leader = cluster.leader_of("catalog");
    let killed = cluster.run("kill", &[leader.as_str()]);
    assert!(killed.status.success(), "{}", stderr(&killed));
    let again = buy(&stray);
    assert_eq!(
        again.json, first.json,
        "the first result, from the new leader"
    );
    let restarted = cluster.run("restart", &[leader.as_str()]);
    assert!(restarted.status.success(), "{}", stderr(&restarted));
    assert_eq!(buy(&stray).json, first.json);
    let stock = |toy: &str| {
        let catalog = cluster.catalog_leader_url();
        get_with(&format!("{catalog}/products/{toy}"), &secret).json["data"]["quantity"].clone()
    };
    assert_eq!(stock("yo-yo"), 93, "bought once");

    // Each order of a batch is taken or refused on its own.
    let mixed = buy(&format!(
        r#"{{"term":{term},"orders":[{{"key":"m-1","name":"tux","quantity":1}},
                      {{"key":"m-2","name":"yeti","quantity":1}},
                      {{"key":"m-3","name":"fox","quantity":1000}}]}}"#
    ));
    assert_eq!(mixed.status, 200, "{}", mixed.json);
    let outcomes = &mixed.json["data"];
    assert_eq!(outcomes[0]["bought"]["name"], "Tux", "{outcomes}");
    assert_eq!(outcomes[1]["refused"]["code"], 404, "{outcomes}");
    assert_eq!(outcomes[2]["refused"]["code"], 409, "{outcomes}");
    assert_error(&buy(&format!(r#"{{"term":{term},"orders":[]}}"#)), 400);
    // A buy from an order leader older than one the catalog has heard from buys nothing.
    let stale = buy(&format!(
        r#"{{"term":{},"orders":[{{"key":"old","name":"tux","quantity":1}}]}}"#,
        term - 1
    ));
    assert_error(&stale, 412);

    // Stock taken with no order behind it is what the check exists to catch.
    let check = cluster.run("verify-logs", &["--stock"]);
    assert_eq!(check.status.code(), Some(1), "{}", stdout(&check));
    assert!(
        stdout(&check).contains("2 buys with no order in the log"),
        "{}",
        stdout(&check)
    );
    // The next order leader places both strays' orders, from the catalog's committed record.
    for name in ["order-1", "order-2"] {
        let restarted = cluster.run("restart", &[name]);
        assert!(restarted.status.success(), "{}", stderr(&restarted));
    }
    cluster.assert_converges(Duration::from_secs(20));
    let orders = crate::common::read(&cluster.orders_file(3));
    assert!(orders.contains("stray-1"), "{orders}");
    assert!(orders.contains("m-1"), "{orders}");
}

#[test]
fn a_leader_that_dies_between_the_buy_and_the_append_loses_nothing() {
    let faults = tempfile::tempdir().unwrap();
    let fault_dir = faults.path().to_str().unwrap().to_string();
    let cluster = Cluster::start_with_env(&[], &[("STORECTL_FAULT_DIR", &fault_dir)]);
    assert_eq!(
        post(
            &cluster.url("/orders"),
            r#"{"name":"barbie","quantity":1}"#,
            &[]
        )
        .status,
        200
    );
    // Arm the fault: the next order's leader aborts right after the catalog took the stock.
    std::fs::write(faults.path().join(storectl::fault::AFTER_BUY), "").unwrap();
    let reply = post(
        &cluster.url("/orders"),
        r#"{"name":"barbie","quantity":2}"#,
        &[("Idempotency-Key", "fault-1")],
    );
    assert_eq!(
        reply.status, 200,
        "the client sees no error: {}",
        reply.json
    );
    assert_eq!(reply.json["data"]["order_number"], 1);
    assert!(
        !faults.path().join(storectl::fault::AFTER_BUY).exists(),
        "the fault fired"
    );
    assert_eq!(
        cluster.service("order-3")["alive"],
        false,
        "the leader died"
    );
    // The retry on the new leader found the buy by its key: stock taken once.
    assert_eq!(
        get(&cluster.url("/products/barbie")).json["data"]["quantity"],
        97
    );
    let again = post(
        &cluster.url("/orders"),
        r#"{"name":"barbie","quantity":2}"#,
        &[("Idempotency-Key", "fault-1")],
    );
    assert_eq!(again.json, reply.json);

    cluster.must("restart", &["order-3"]);
    cluster.assert_converges(Duration::from_secs(10));
}

#[test]
fn a_key_reused_with_another_body_gets_422_from_any_leader_and_its_first_buy_is_placed() {
    let faults = tempfile::tempdir().unwrap();
    let fault_dir = faults.path().to_str().unwrap().to_string();
    let cluster = Cluster::start_with_env(&[], &[("STORECTL_FAULT_DIR", &fault_dir)]);
    let key = [("Idempotency-Key", "first-body")];
    // Straight to the leader, as a front end would send it; the leader dies right after the
    // catalog sold, before the order is in the log.
    std::fs::write(faults.path().join(storectl::fault::AFTER_BUY), "").unwrap();
    let leader = format!("http://127.0.0.1:{}/orders", cluster.base + 12);
    let auth = cluster.authorization();
    let headers = [(auth.0, auth.1.as_str()), key[0]];
    let body = r#"{"key":"first-body","name":"barbie","quantity":2}"#;
    assert!(
        !crate::common::post_raw(&leader, body, &headers),
        "the leader dies without an answer"
    );
    // The same key with another body, at the new leader: refused, and the first body's buy is
    // placed as its order, as sold.
    let reused = post(
        &cluster.url("/orders"),
        r#"{"name":"fox","quantity":5}"#,
        &key,
    );
    assert_error(&reused, 422);
    let message = reused.json["error"]["message"].as_str().unwrap();
    assert!(message.contains("2 × Barbie"), "{message}");
    let first = post(
        &cluster.url("/orders"),
        r#"{"name":"Barbie","quantity":2}"#,
        &key,
    );
    assert_eq!(first.status, 200, "{}", first.json);
    assert_eq!(first.json["data"]["order_number"], 0);
    for (toy, left) in [("barbie", 98), ("fox", 100)] {
        let product = get(&cluster.url(&format!("/products/{toy}")));
        assert_eq!(product.json["data"]["quantity"], left, "{toy}");
    }
    // After the old leader is back and leads no more: the same answers.
    cluster.must("restart", &["order-3"]);
    cluster.assert_converges(Duration::from_secs(10));
    cluster.must("kill", &["leader"]);
    assert_error(
        &post(
            &cluster.url("/orders"),
            r#"{"name":"barbie","quantity":1}"#,
            &key,
        ),
        422,
    );
    let again = post(
        &cluster.url("/orders"),
        r#"{"name":"barbie","quantity":2}"#,
        &key,
    );
    assert_eq!(again.json, first.json);
}

#[test]
fn a_refused_key_is_refused_for_good_even_after_a_restock() {
    let cluster = Cluster::start(&["--initial-stock", "3", "--restock-interval", "1s"]);
    let term = cluster.order_term();
    let auth = cluster.authorization();
    let headers = [(auth.0, auth.1.as_str())];
    let ask = |key: &str, quantity: u64| {
        let body = format!(
            r#"{{"term":{term},"orders":[{{"key":"{key}","name":"tux","quantity":{quantity}}}]}}"#
        );
        let buy = format!("{}/internal/buy", cluster.catalog_leader_url());
        let reply = post(&buy, &body, &headers);
        assert_eq!(reply.status, 200, "{}", reply.json);
        reply.json["data"][0].clone()
    };
    let refused = ask("late", 5);
    assert_eq!(refused["refused"]["code"], 409, "{refused}");
    assert!(ask("all", 3)["bought"].is_object());
    // The restock brings Tux back to 100; the refused key, asked again, must not buy now.
    let restocked = eventually(Duration::from_secs(10), || {
        let q = get(&cluster.url("/products/tux")).json["data"]["quantity"].as_u64();
        (q == Some(100)).then_some(())
    });
    assert!(restocked.is_some(), "Tux was restocked");
    assert_eq!(ask("late", 5), refused, "the key's first answer, for good");
    assert_eq!(
        get(&cluster.url("/products/tux")).json["data"]["quantity"],
        100
    );
    // Also across a new catalog leader: the refusal is in the catalog group's log.
    cluster.must("kill", &["catalog-leader"]);
    assert_eq!(ask("late", 5), refused);
    assert_eq!(
        get(&cluster.url("/products/tux")).json["data"]["quantity"],
        100
    );
}

#[test]
fn a_follower_down_while_orders_flow_catches_up_when_back() {
    let cluster = Cluster::start(&[]);
    cluster.must("kill", &["order-1"]);
    let (ok, report) = client_json(
        &cluster,
        &["--p", "1", "--iterations", "30", "--clients", "2"],
    );
    assert!(ok, "{report}");
    let orders = report["orders"].as_u64().unwrap();
    assert!(orders > 0);
    assert_eq!(
        crate::common::read(&cluster.orders_file(1)).lines().count(),
        1,
        "order-1 saw none"
    );
    cluster.must("restart", &["order-1"]);
    cluster.assert_converges(Duration::from_secs(10));
    assert_eq!(
        crate::common::read(&cluster.orders_file(1)).lines().count() as u64,
        orders + 1
    );
}

#[test]
fn chaos_reports_a_clean_run_against_a_running_cluster() {
    let cluster = Cluster::start(&["--initial-stock", "1000000"]);
    let out = cluster.run(
        "chaos",
        &[
            "--json",
            "--clients",
            "3",
            "--rounds",
            "3",
            "--interval",
            "200ms",
            "--down-for",
            "300ms",
            "--leader-share",
            "0.7",
        ],
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("chaos --json prints JSON: {}", stderr(&out)));
    assert!(out.status.success(), "{report}");
    assert_eq!(report["kills"].as_array().unwrap().len(), 3);
    assert_eq!(report["client_errors"], 0, "{report}");
    assert_eq!(report["orders_lost"], 0);
    assert_eq!(report["orders_duplicated"], 0);
    assert_eq!(report["files_identical"], true);
    assert_eq!(report["stock_conserved"], true);
    assert!(report["orders_acknowledged"].as_u64().unwrap() > 0);
    // It used the cluster it was given, and left it running.
    assert!(cluster.status().iter().all(|s| s["alive"] == true));
}

#[test]
fn a_torn_last_line_is_dropped_on_start_and_the_replicas_converge() {
    let cluster = Cluster::start(&[]);
    cluster.order_each(&["tux", "fox", "lego"], 1);
    cluster.assert_converges(Duration::from_secs(10));
    cluster.must("down", &[]);
    // A crash in the middle of an append to the engine's log: half a record, no newline.
    let path = cluster.state().join("raft-3.log");
    let mut text = crate::common::read(&path);
    text.push_str("0badf00d {\"entry\":{\"log_id\":");
    std::fs::write(&path, text).unwrap();

    let base = cluster.base.to_string();
    let up = cluster.run("up", &["--port-base", &base]);
    assert!(up.status.success(), "{}", stderr(&up));
    let reply = post(
        &cluster.url("/orders"),
        r#"{"name":"bicycle","quantity":1}"#,
        &[],
    );
    assert_eq!(reply.json["data"]["order_number"], 3, "{}", reply.json);
    cluster.assert_converges(Duration::from_secs(10));
    assert!(
        !crate::common::read(&path).contains("0badf00d"),
        "the torn bytes are gone"
    );
    let log = crate::common::read(&cluster.state().join("logs/order-3.log"));
    assert!(
        log.contains("torn last line"),
        "the replica said what it dropped"
    );
}

#[test]
fn commands_against_a_stopped_cluster_say_to_start_it() {
    let cluster = Cluster::start(&[]);
    cluster.must("down", &[]);
    let out_dir = cluster.dir.path().join("bench");
    for (command, args) in [
        ("client", vec!["--iterations", "1"]),
        ("kill", vec!["leader"]),
        (
            "bench",
            vec!["--iterations", "1", "--out", out_dir.to_str().unwrap()],
        ),
    ] {
        let out = cluster.run(command, &args);
        assert_eq!(out.status.code(), Some(1), "{command}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{command}: {err}");
        assert!(
            err.contains("storectl up"),
            "{command} says what to do: {err}"
        );
    }
}

#[test]
fn numeric_flags_out_of_range_are_one_line_usage_errors() {
    for args in [
        &["serve", "order", "--id", "65535"][..],
        &["serve", "order", "--id", "0"],
        &["serve", "frontend", "--cache-size", "100000000000"],
        &["up", "--port-base", "65530"],
        &["up", "--cache-size", "1000001"],
    ] {
        let out = crate::common::storectl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("invalid value"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn a_reader_that_stops_early_is_a_normal_end() {
    // `storectl … | head -c 10`: the reader closes the pipe before storectl has written all.
    let out_dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(crate::common::EXE)
        .args(["generate", "man", "--out", out_dir.path().to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn status_exits_0_only_when_every_service_answers_and_a_replica_leads() {
    let cluster = Cluster::start(&[]);
    assert_eq!(cluster.run("status", &[]).status.code(), Some(0));
    cluster.must("kill", &["order-1"]);
    let out = cluster.run("status", &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let said = stderr(&out);
    assert_eq!(said.trim().lines().count(), 1, "one line on stderr: {said}");
    assert!(said.contains("storectl restart order-1"), "{said}");
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let one = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "order-1")
        .unwrap();
    assert_eq!(one["alive"], false);
    // A paused service holds its port but answers nothing: not answering, and said quickly.
    cluster.must("restart", &["order-1"]);
    cluster.must("kill", &["frontend", "--signal", "stop"]);
    let started = std::time::Instant::now();
    let paused = cluster.run("status", &[]);
    assert_eq!(paused.status.code(), Some(1));
    assert!(
        stderr(&paused).contains("storectl kill frontend --signal cont"),
        "{}",
        stderr(&paused)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    cluster.must("kill", &["frontend", "--signal", "cont"]);
    assert_eq!(cluster.run("status", &[]).status.code(), Some(0));
    cluster.must("down", &[]);
    let out = cluster.run("status", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("storectl up"), "{}", stderr(&out));
}

#[test]
fn a_pid_that_names_another_process_gets_no_signal() {
    let cluster = Cluster::start(&[]);
    let path = cluster.file("order-1.pid");
    let record = crate::common::read(&path);
    let mut fields = record.split_whitespace();
    let pid: u32 = fields.next().unwrap().parse().unwrap();
    let started: u64 = fields
        .next()
        .expect("the pid file records the start time")
        .parse()
        .unwrap();
    // As if order-1 had ended and its pid had gone to a process that started later.
    std::fs::write(&path, format!("{pid} {}\n", started + 1)).unwrap();
    let out = cluster.run("kill", &["order-1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the process that owns the pid was not signalled"
    );
    std::fs::write(&path, record).unwrap();
    cluster.must("kill", &["order-1"]);
}

#[test]
fn a_catalog_restarted_with_its_clock_set_back_leaves_no_stale_cache() {
    let cluster = Cluster::start(&["--fault-hooks"]);
    for _ in 0..2 {
        assert_eq!(
            get(&cluster.url("/products/tux")).json["data"]["quantity"],
            100
        );
    }
    // The catalog leader comes back with its clock an hour behind.
    cluster.catalog_fault("clock-offset", "-3600");
    let leader = cluster.leader_of("catalog");
    cluster.must("restart", &[leader.as_str()]);
    cluster.order_each(&["tux"; 3], 1);
    let tux = get(&cluster.url("/products/tux"));
    assert_eq!(
        tux.json["data"]["quantity"], 97,
        "a stale cached reply: {}",
        tux.json
    );
}

#[test]
fn the_stock_check_reads_one_snapshot_while_a_restock_is_being_written() {
    let cluster = Cluster::start(&["--fault-hooks", "--restock-interval", "200ms"]);
    let sell_out = || {
        let reply = post(
            &cluster.url("/orders"),
            r#"{"name":"tux","quantity":100}"#,
            &[],
        );
        assert_eq!(reply.status, 200, "{}", reply.json);
    };
    let restocked = || {
        eventually(Duration::from_secs(5), || {
            (get(&cluster.url("/products/tux")).json["data"]["quantity"] == 100).then_some(())
        })
        .is_some()
    };
    sell_out();
    assert!(restocked());
    // From now on the catalog leader's log takes 700 ms per fsync: the next restock is applied
    // by the followers well before the leader has it on disk.
    let leader = cluster.leader_of("catalog");
    std::fs::write(cluster.file(&format!("faults/{leader}/slow-fsync")), "700").unwrap();
    sell_out();
    assert!(restocked());
    let out = cluster.run("verify-logs", &["--stock"]);
    cluster.clear_catalog_fault("slow-fsync");
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn the_stock_check_is_not_fooled_by_a_replica_that_lags() {
    let cluster = Cluster::start(&[]);
    cluster.must("kill", &["order-1"]);
    cluster.order_each(&["tux", "fox"], 2);
    // orders-1.csv lacks both orders; the replicas that have them decide.
    let out = cluster.run("verify-logs", &["--stock"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("orders-1.csv holds 0 of 2"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_demo_places_orders_through_its_crash_and_says_what_it_measured() {
    // 800 orders of up to 5 units would sell out the built-in stock of 2,000 units.
    let out =
        crate::common::storectl(&["demo", "--clients", "2", "--iterations", "400", "--p", "1"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let verdict = text.lines().last().unwrap();
    let during: u64 = verdict
        .split(" orders placed while the leader was down")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("the verdict counts the crash step's orders: {verdict}"));
    assert!(during > 0, "{verdict}");
    assert!(verdict.contains("every one read back"), "{verdict}");
}

#[test]
fn a_buy_not_yet_on_the_catalogs_disk_is_never_read() {
    let cluster = Cluster::start(&["--fault-hooks", "--cache-size", "0"]);
    let before = get(&cluster.url("/products/whale")).json["data"]["quantity"].clone();
    // Every fsync of both catalog followers' logs now takes 3 s: a buy's entry is on the
    // leader's disk at once, but not committed (on a majority) for 3 s.
    let leader = cluster.leader_of("catalog");
    for id in 1..=3 {
        let name = format!("catalog-{id}");
        if name != leader {
            std::fs::write(cluster.file(&format!("faults/{name}/slow-fsync")), "3000").unwrap();
        }
    }
    let slowed = Instant::now();
    // With nothing to fsync the followers still answer the leader at once: a read before the
    // buy is answered, so the reads below are known to reach the catalog leader.
    let first = get(&cluster.url("/products/whale"));
    assert_eq!(first.status, 200, "{}", first.json);
    assert_eq!(first.json["data"]["quantity"], before);
    let orders = cluster.url("/orders");
    let buying = std::thread::spawn(move || post(&orders, r#"{"name":"whale","quantity":2}"#, &[]));
    // Until the followers' first fsync ends the buy cannot be committed: a query may fail or
    // wait (the leader cannot confirm it leads while its followers are busy), but none answered
    // before then shows the buy. One that waits past it may: the buy committed while it waited.
    // (A read that starts once the buy's entry reached the followers waits for its commit, so
    // how many fall in the window depends on the machine: none are required.)
    let uncommitted = Duration::from_millis(2500);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        let reply = get(&cluster.url("/products/whale"));
        if slowed.elapsed() >= uncommitted {
            continue;
        }
        if reply.status == 200 {
            assert_eq!(
                reply.json["data"]["quantity"], before,
                "a read showed a change not yet committed: {}",
                reply.json
            );
        } else {
            assert_error(&reply, 503);
        }
    }
    cluster.clear_catalog_fault("slow-fsync");
    let _ = buying.join();
    cluster.assert_converges(Duration::from_secs(15));
}

#[test]
fn a_new_catalog_leader_remembers_which_sales_have_their_orders() {
    let cluster = Cluster::start(&[]);
    cluster.order_each(&["tux", "fox"], 1);
    let (name, value) = cluster.authorization();
    let secret = [(name, value.as_str())];
    let unconfirmed = || {
        let url = format!("{}/internal/stock-check", cluster.catalog_leader_url());
        get_with(&url, &secret).json["data"]["unconfirmed"].clone()
    };
    // The order leader confirms each sale once its order is in the log.
    let confirmed = eventually(Duration::from_secs(10), || {
        (unconfirmed() == serde_json::json!([])).then_some(())
    });
    assert!(confirmed.is_some(), "{}", unconfirmed());
    cluster.must("kill", &["catalog-leader"]);
    assert_eq!(
        unconfirmed(),
        serde_json::json!([]),
        "confirmations are committed"
    );
    cluster.assert_converges(Duration::from_secs(10));
}

#[test]
fn initial_stock_is_refused_for_a_catalog_that_has_its_stock() {
    let cluster = Cluster::start(&[]);
    cluster.must("down", &[]);
    let base = (cluster.base).to_string();
    let out = cluster.run("up", &["--port-base", &base, "--initial-stock", "1000000"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(said.contains("seeds a new catalog"), "{said}");
    assert!(said.contains("another --state-dir"), "{said}");
    assert_eq!(said.trim().lines().count(), 1, "one line: {said}");
    assert!(cluster.status().iter().all(|s| s["alive"] == false));
}
