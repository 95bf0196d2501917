//! The README's API table, row by row, against a real cluster; and the cache's behaviour seen from outside.

use std::time::Duration;

use crate::common::{assert_error, eventually, get, post, Cluster};
use serde_json::json;

#[test]
fn every_row_of_the_public_api() {
    let cluster = Cluster::start(&[]);

    // GET /products/{name}: case-insensitive, the catalog's spelling, exact shape.
    let tux = get(&cluster.url("/products/tUx"));
    assert_eq!(tux.status, 200);
    assert_eq!(
        tux.json,
        json!({"data": {"name": "Tux", "price": 25.99, "quantity": 100}})
    );
    let spaced = get(&cluster.url("/products/rubik's%20cube"));
    assert_eq!(spaced.json["data"]["name"], "Rubik's Cube");
    assert_error(&get(&cluster.url("/products/yeti")), 404);

    // POST /orders: numbers from 0, one more each time.
    let orders = cluster.url("/orders");
    let first = post(&orders, r#"{"name":"tux","quantity":2}"#, &[]);
    assert_eq!(first.status, 200);
    assert_eq!(first.json, json!({"data": {"order_number": 0}}));
    let second = post(&orders, r#"{"name":"Fox","quantity":1}"#, &[]);
    assert_eq!(second.json, json!({"data": {"order_number": 1}}));

    // Bad bodies: 400 with the error shape, and nothing bought.
    for body in [
        "not json",
        "[]",
        r#"{"name":"tux"}"#,
        r#"{"quantity":1}"#,
        r#"{"name":"tux","quantity":0}"#,
        r#"{"name":"tux","quantity":-1}"#,
        r#"{"name":"tux","quantity":1.5}"#,
        r#"{"name":"tux","quantity":"2"}"#,
        r#"{"name":"tux","quantity":99999999999999999999999}"#,
        r#"{"name":7,"quantity":1}"#,
        r#"{"name":"tux","quantity":1,"extra":true}"#,
    ] {
        assert_error(&post(&orders, body, &[]), 400);
    }
    assert_error(&post(&orders, r#"{"name":"yeti","quantity":1}"#, &[]), 404);
    assert_error(
        &post(&orders, r#"{"name":"tux","quantity":1000}"#, &[]),
        409,
    );
    // A body not declared as JSON is refused, however good it is.
    let undeclared = crate::common::raw_request(
        cluster.base,
        b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 27\r\nConnection: close\r\n\r\n\
         {\"name\":\"tux\",\"quantity\":1}",
    );
    let undeclared = String::from_utf8_lossy(&undeclared);
    assert!(undeclared.starts_with("HTTP/1.1 415"), "{undeclared}");
    assert!(undeclared.contains(r#""code":415"#), "{undeclared}");
    let huge = format!(r#"{{"name":"{}","quantity":1}}"#, "x".repeat(100_000));
    assert_error(&post(&orders, &huge, &[]), 413);
    assert_eq!(
        get(&cluster.url("/products/tux")).json["data"]["quantity"],
        98
    );

    // Idempotency-Key: the first result again, nothing bought twice.
    let keyed = |q| {
        post(
            &orders,
            &format!(r#"{{"name":"lego","quantity":{q}}}"#),
            &[("Idempotency-Key", "order-abc-1")],
        )
    };
    let a = keyed(3);
    let b = keyed(3);
    assert_eq!(a.status, 200);
    assert_eq!(a.idempotency_key.as_deref(), Some("order-abc-1"));
    let unkeyed = post(&orders, r#"{"name":"lego","quantity":1}"#, &[]);
    let made_up = unkeyed
        .idempotency_key
        .expect("the key the front end made up");
    let again = post(
        &orders,
        r#"{"name":"lego","quantity":1}"#,
        &[("Idempotency-Key", made_up.as_str())],
    );
    assert_eq!(again.json, unkeyed.json, "the made-up key names that order");
    let malformed = post(
        &orders,
        r#"{"name":"lego"}"#,
        &[("Idempotency-Key", "order-abc-9")],
    );
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.idempotency_key.as_deref(), Some("order-abc-9"));
    assert_eq!(a.json, b.json);
    assert_eq!(
        get(&cluster.url("/products/lego")).json["data"]["quantity"],
        96
    );
    // The key names that request alone: another body with it is refused, changes nothing,
    // and the first order stays as it was.
    let foxes = get(&cluster.url("/products/fox")).json["data"]["quantity"].clone();
    let reused = post(
        &orders,
        r#"{"name":"fox","quantity":5}"#,
        &[("Idempotency-Key", "order-abc-1")],
    );
    assert_error(&reused, 422);
    let message = reused.json["error"]["message"].as_str().unwrap();
    assert!(message.contains("3 × Lego"), "{message}");
    assert_error(&keyed(4), 422);
    assert_eq!(keyed(3).json, a.json, "the first body still gets its order");
    let number = a.json["data"]["order_number"].to_string();
    assert_eq!(
        get(&cluster.url(&format!("/orders/{number}"))).json["data"]["name"],
        "Lego"
    );
    assert_eq!(
        get(&cluster.url("/products/fox")).json["data"]["quantity"],
        foxes
    );
    // A refusal is the answer to its own request too.
    let refused_key = [("Idempotency-Key", "too-many")];
    let too_many = r#"{"name":"lego","quantity":1000}"#;
    assert_error(&post(&orders, too_many, &refused_key), 409);
    assert_error(&post(&orders, too_many, &refused_key), 409);
    assert_error(
        &post(&orders, r#"{"name":"lego","quantity":1}"#, &refused_key),
        422,
    );
    assert_error(
        &post(
            &orders,
            r#"{"name":"lego","quantity":1}"#,
            &[("Idempotency-Key", "bad key!")],
        ),
        400,
    );

    // GET /orders/{number}
    let info = get(&cluster.url("/orders/0"));
    assert_eq!(
        info.json,
        json!({"data": {"number": 0, "name": "Tux", "quantity": 2}})
    );
    assert_error(&get(&cluster.url("/orders/abc")), 400);
    assert_error(&get(&cluster.url("/orders/-1")), 400);
    assert_error(&get(&cluster.url("/orders/99999")), 404);

    // Unknown paths and methods.
    assert_error(&get(&cluster.url("/nothing/here")), 404);
    let wrong_method = post(&cluster.url("/products/tux"), "{}", &[]);
    assert_error(&wrong_method, 405);
}

#[test]
fn a_buy_is_visible_through_the_cache_and_eviction_happens() {
    let cluster = Cluster::start(&["--cache-size", "10"]);
    // The X-Cache header says who answered: quantity and hit or miss, query by query.
    let whale = || {
        let reply = storectl::tool_http::get(
            &storectl::tool_http::agent(),
            &cluster.url("/products/whale"),
        )
        .expect("the front end answers");
        let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        (body["data"]["quantity"].as_u64().unwrap(), reply.cache_hit)
    };
    // Fill the cache, buy, query again: the new quantity, not the cached one.
    assert_eq!(whale(), (100, Some(false)));
    assert_eq!(whale(), (100, Some(true)));
    let bought = post(
        &cluster.url("/orders"),
        r#"{"name":"whale","quantity":4}"#,
        &[],
    );
    assert_eq!(bought.status, 200);
    assert_eq!(whale(), (96, Some(false)), "the buy invalidated the entry");
    assert_eq!(whale(), (96, Some(true)));

    // More distinct toys than the cache holds: the least recently used go.
    for toy in storectl::client::catalog_products().iter().take(14) {
        let url = cluster.url(&format!(
            "/products/{}",
            storectl::http::encode_segment(toy)
        ));
        assert_eq!(get(&url).status, 200);
    }
    let frontend = cluster.service("frontend");
    let cache = &frontend["cache"];
    assert!(cache["hits"].as_u64().unwrap() >= 1, "{cache}");
    assert!(cache["evictions"].as_u64().unwrap() >= 4, "{cache}");
    assert_eq!(cache["size"], 10, "{cache}");
}

#[test]
fn a_sold_out_toy_is_restocked() {
    let cluster = Cluster::start(&["--restock-interval", "2s"]);
    let bought = post(
        &cluster.url("/orders"),
        r#"{"name":"frisbee","quantity":100}"#,
        &[],
    );
    assert_eq!(bought.status, 200, "{}", bought.json);
    assert_error(
        &post(
            &cluster.url("/orders"),
            r#"{"name":"frisbee","quantity":1}"#,
            &[],
        ),
        409,
    );
    // Two restock intervals, and some slack for a loaded machine.
    let restocked = eventually(Duration::from_secs(10), || {
        let q = get(&cluster.url("/products/frisbee")).json["data"]["quantity"].as_u64()?;
        (q == 100).then_some(q)
    });
    assert_eq!(restocked, Some(100));
    // The restock is a command of the catalog's log: every replica applies it to its file.
    for id in 1..=3 {
        let file = cluster.file(&format!("catalog-{id}.csv"));
        let persisted = eventually(Duration::from_secs(5), || {
            let text = crate::common::read(&file);
            text.contains("Frisbee,2.49,100").then_some(text)
        });
        assert!(persisted.is_some(), "restock not in {}", file.display());
    }
}

#[test]
fn no_reachable_replica_is_a_503() {
    let dir = tempfile::tempdir().unwrap();
    let base = storectl::config::find_free_port_base("127.0.0.1").unwrap();
    // A cluster file whose catalog and replicas nobody runs.
    let file = crate::common::cluster_file(dir.path(), base);
    let mut child = crate::common::serve(
        &["frontend", "--cluster", file.to_str().unwrap()],
        dir.path(),
        base,
    );
    let url = format!("http://127.0.0.1:{base}");
    let started = std::time::Instant::now();
    let reply = post(
        &format!("{url}/orders"),
        r#"{"name":"tux","quantity":1}"#,
        &[],
    );
    assert_error(&reply, 503);
    assert!(
        reply.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("0 of 3 order replicas answer; orders need 2"),
        "{}",
        reply.json
    );
    // Fails fast rather than spending the whole failover budget (10 s).
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    assert_error(&get(&format!("{url}/orders/0")), 503);
    // The catalog is down too: a product query is a 503, not a crash.
    assert_error(&get(&format!("{url}/products/tux")), 503);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn replies_suit_a_terminal() {
    let cluster = Cluster::start(&[]);
    // Every JSON reply ends with a newline, the cached one too.
    for _ in 0..2 {
        let reply = ureq::get(&cluster.url("/products/tux"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        assert!(reply.ends_with("}\n"), "{reply:?}");
    }
    let missing = crate::common::raw_request(
        cluster.base,
        b"GET /products/whale HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(String::from_utf8_lossy(&missing).ends_with("}\n"));

    // HEAD works wherever GET does, and sends no body.
    let head = crate::common::raw_request(
        cluster.base,
        b"HEAD /products/tux HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "no body: {head:?}");
    let not_allowed = post(&cluster.url("/products/tux"), "{}", &[]);
    assert_error(&not_allowed, 405);

    // Order numbers are digits only, and a number too large says so.
    for bad in ["+1", "-1", "1.0", "%201"] {
        let reply = get(&cluster.url(&format!("/orders/{bad}")));
        assert_error(&reply, 400);
    }
    let huge = get(&cluster.url("/orders/99999999999999999999999"));
    assert_error(&huge, 400);
    let message = huge.json["error"]["message"].as_str().unwrap();
    assert!(message.contains("too large"), "{message}");
}
