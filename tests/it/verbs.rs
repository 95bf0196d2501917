//! The everyday verbs against a running cluster: query, buy, order, logs.

use serde_json::Value;

use crate::common::{stderr, stdout, Cluster};

#[test]
fn query_buy_order_and_logs_read_like_a_person_would_write_them() {
    let cluster = Cluster::start(&[]);
    let query = cluster.run("query", &["tux"]);
    assert!(query.status.success(), "{}", stderr(&query));
    assert_eq!(stdout(&query).trim(), "Tux: 100 in stock at 25.99");
    let cached = stdout(&cluster.run("query", &["TUX"]));
    assert!(cached.contains("(from the cache)"), "{cached}");

    // The same key places one order however often it is sent.
    for _ in 0..2 {
        let buy = cluster.run("buy", &["tux", "3", "--key", "verb-1"]);
        assert!(buy.status.success(), "{}", stderr(&buy));
        assert_eq!(stdout(&buy).trim(), "order 0: 3 × tux (key verb-1)");
    }
    let order = cluster.run("order", &["0", "--json"]);
    let order: Value = serde_json::from_slice(&order.stdout).unwrap();
    assert_eq!(
        order,
        serde_json::json!({"number": 0, "name": "Tux", "quantity": 3})
    );
    let left = cluster.run("query", &["tux", "--json"]);
    let left: Value = serde_json::from_slice(&left.stdout).unwrap();
    assert_eq!(left["quantity"], 97);

    // Failures are one line and exit 1; a bad command line exits 2.
    for (args, says) in [
        (vec!["buy", "tux", "1000"], "not enough Tux"),
        (vec!["order", "99"], "no order number 99"),
        (vec!["query", "nothing-like-it"], "no product"),
    ] {
        let out = cluster.run(args[0], &args[1..]);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(cluster.run("buy", &["tux", "0"]).status.code(), Some(2));

    let logs = cluster.run("logs", &["order-3", "-n", "2"]);
    assert!(logs.status.success(), "{}", stderr(&logs));
    assert_eq!(stdout(&logs).lines().count(), 2);
    let unknown = cluster.run("logs", &["order-9"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("use one of catalog"));
}
