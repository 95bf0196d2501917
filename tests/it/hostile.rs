//! Generated hostile requests against a running front end and catalog: every one gets a 4xx in
//! the API's error shape (a read may succeed), none crashes a service, and afterwards the stock,
//! the order logs and every file of the cluster are exactly as they were.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::Cluster;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// How many requests, and how long at most, the generator throws at each service.
const CASES: usize = 2_500;
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// A request as bytes on the wire, and what it is allowed to get.
struct Case {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// A read (`GET` of a known kind of resource) may be answered 200; nothing else may.
    may_succeed: bool,
}

impl Case {
    fn bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\nHost: test\r\n", self.method, self.path);
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(120).collect();
        format!(
            "{} {} {:?} {body}",
            self.method,
            self.path.chars().take(120).collect::<String>(),
            self.headers
        )
    }
}

/// Sends one request on its own connection; returns the status and body.
fn send(port: u16, case: &Case) -> (u16, Vec<u8>) {
    let reply = crate::common::raw_request(port, &case.bytes());
    let end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no reply to {}", case.describe()));
    let head = String::from_utf8_lossy(&reply[..end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, reply[end + 4..].to_vec())
}

const SEGMENTS: &[&str] = &[
    "products",
    "orders",
    "internal",
    "health",
    "buy",
    "stock",
    "invalidate",
    "leader",
    "replicate",
    "sync",
    "tux",
    "TUX",
    "yeti",
    "..",
    ".",
    "%2e%2e",
    "%00",
    "%ff",
    "%c0%af",
    "%2f",
    "0",
    "-1",
    "1.5",
    "1e9",
    "99999999999999999999999",
    "%20",
    "a%2fb",
    "%E2%82%AC",
    "",
];
const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "BREW",
];
const CONTENT_TYPES: &[Option<&str>] = &[
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("text/plain"),
    Some("application/x-www-form-urlencoded"),
    Some(""),
    Some("application/jsonx"),
    None,
];

/// A JSON value of the wrong kind for wherever it is put.
fn wrong_value(rng: &mut StdRng) -> Value {
    let choices: Vec<Value> = vec![
        Value::Null,
        Value::Bool(true),
        serde_json::json!(0),
        serde_json::json!(-1),
        serde_json::json!(-9_223_372_036_854_775_808i64),
        serde_json::json!(1.5),
        serde_json::json!(1e300),
        serde_json::json!("2"),
        serde_json::json!(""),
        serde_json::json!("x".repeat(10_000)),
        serde_json::json!("../../etc/passwd"),
        serde_json::json!("tux/../../x"),
        serde_json::json!("tux\u{0000}"),
        serde_json::json!([1, 2]),
        serde_json::json!({"name": "tux", "quantity": "1"}),
        serde_json::json!({"nested": {"deeper": [{"deepest": 1}]}}),
    ];
    choices.choose(rng).cloned().unwrap_or(Value::Null)
}

/// Whether the store would take this order: the checks every service makes.
fn is_valid_order(order: &Value) -> bool {
    let mut order = order.clone();
    if order.get("key").is_none() {
        order["key"] = Value::from("k");
    }
    serde_json::from_value::<storectl::wire::PlaceOrder>(order).is_ok_and(|o| o.check().is_ok())
}

/// An order body that is wrong in at least one way.
fn bad_order(rng: &mut StdRng) -> Vec<u8> {
    match rng.random_range(0..8) {
        0 => {
            // A field of the wrong kind or value.
            let mut order = serde_json::json!({"name": "tux", "quantity": 1});
            let field = *["name", "quantity"].choose(rng).unwrap();
            order[field] = wrong_value(rng);
            if is_valid_order(&order) {
                // A name that is odd but allowed: make the quantity wrong instead.
                order["quantity"] = serde_json::json!(0);
            }
            serde_json::to_vec(&order).unwrap()
        }
        1 => br#"{"name":"tux","quantity":1,"extra":{"a":[1,2,3]}}"#.to_vec(),
        2 => br#"{"name":"tux"}"#.to_vec(),
        3 => br#"{"quantity":3}"#.to_vec(),
        4 => {
            // Truncated JSON.
            let full = br#"{"name":"tux","quantity":1}"#;
            full[..rng.random_range(0..full.len() - 1)].to_vec()
        }
        5 => (0..rng.random_range(1..200))
            .map(|_| rng.random())
            .collect(),
        6 => serde_json::to_vec(&wrong_value(rng)).unwrap(),
        _ => {
            // Deep nesting.
            let depth = rng.random_range(10..2_000);
            let mut text = "[".repeat(depth);
            text.push_str(&"]".repeat(depth));
            text.into_bytes()
        }
    }
}

fn random_path(rng: &mut StdRng) -> String {
    let depth = rng.random_range(0..5);
    let mut path = String::new();
    for _ in 0..depth {
        path.push('/');
        if rng.random_bool(0.1) {
            // Arbitrary bytes, percent-encoded: not always UTF-8.
            for _ in 0..rng.random_range(1..20) {
                path.push_str(&format!("%{:02x}", rng.random::<u8>()));
            }
        } else {
            path.push_str(SEGMENTS.choose(rng).unwrap());
        }
    }
    if path.is_empty() || rng.random_bool(0.05) {
        path.push('/');
    }
    if rng.random_bool(0.05) {
        path.push_str(&"a".repeat(rng.random_range(1..10_000)));
    }
    path
}

/// A hostile request for the front end's public API.
fn frontend_case(rng: &mut StdRng) -> Case {
    let mut headers = Vec::new();
    let (method, path, body) = match rng.random_range(0..4) {
        // An order that is wrong in its body, its content type or its key.
        0 | 1 => {
            let body = bad_order(rng);
            let kind = CONTENT_TYPES.choose(rng).unwrap();
            if let Some(kind) = kind {
                headers.push(("Content-Type".into(), kind.to_string()));
            }
            if rng.random_bool(0.3) {
                let long = "k".repeat(300);
                let key = *["", "bad key", "k/../1", long.as_str(), "ok-key-1"]
                    .choose(rng)
                    .unwrap();
                headers.push(("Idempotency-Key".into(), key.to_string()));
            }
            ("POST", "/orders".to_string(), body)
        }
        // Anything at all, anywhere.
        _ => {
            let method = *METHODS.choose(rng).unwrap();
            let body = if rng.random_bool(0.5) {
                bad_order(rng)
            } else {
                Vec::new()
            };
            if rng.random_bool(0.5) {
                headers.push(("Content-Type".into(), "application/json".into()));
            }
            (method, random_path(rng), body)
        }
    };
    // The storefront page, the product list and the figures are there for anyone to read.
    let may_succeed = is_read(method)
        && (path.starts_with("/products/")
            || path.starts_with("/orders/")
            || ["/", "/products", "/health", "/metrics"].contains(&path.as_str()));
    Case {
        method,
        path,
        headers,
        body,
        may_succeed,
    }
}

/// A hostile request for the catalog: without the secret, or with it and a bad body.
fn catalog_case(rng: &mut StdRng, authorization: &str) -> Case {
    let mut headers = vec![("Content-Type".into(), "application/json".to_string())];
    let with_secret = rng.random_bool(0.7);
    if with_secret {
        headers.push(("Authorization".into(), authorization.to_string()));
    } else if rng.random_bool(0.5) {
        headers.push(("Authorization".into(), "Bearer guess".to_string()));
    }
    let (method, path, body) = if with_secret && rng.random_bool(0.7) {
        let body = match rng.random_range(0..4) {
            0 => bad_order(rng),
            1 => {
                // A batch with one bad order among good ones buys nothing.
                let mut order = serde_json::json!({"key": "fuzz-1", "name": "tux", "quantity": 1});
                let field = *["key", "name", "quantity"].choose(rng).unwrap();
                order[field] = wrong_value(rng);
                if is_valid_order(&order) {
                    order["quantity"] = serde_json::json!(0);
                }
                let good = serde_json::json!({"key": "fuzz-2", "name": "fox", "quantity": 1});
                serde_json::to_vec(&serde_json::json!({"orders": [good, order]})).unwrap()
            }
            2 => br#"{"orders":[]}"#.to_vec(),
            _ => {
                let orders: Vec<Value> = (0..200)
                    .map(|i| serde_json::json!({"key": format!("many-{i}"), "name": "tux", "quantity": 1}))
                    .collect();
                serde_json::to_vec(&serde_json::json!({ "orders": orders })).unwrap()
            }
        };
        ("POST", "/internal/buy".to_string(), body)
    } else {
        let method = *METHODS.choose(rng).unwrap();
        let path = if rng.random_bool(0.5) {
            "/internal/buy".to_string()
        } else {
            random_path(rng)
        };
        let body = if rng.random_bool(0.5) {
            bad_order(rng)
        } else {
            Vec::new()
        };
        (method, path, body)
    };
    // Reads: health and metrics for anyone, products for the cluster's services.
    let may_succeed = is_read(method)
        && (path == "/health"
            || path == "/metrics"
            || with_secret && path.starts_with("/products"));
    Case {
        method,
        path,
        headers,
        body,
        may_succeed,
    }
}

/// Every file under `dir` with its contents: what must not change.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // Logs and pid files are the services' own business.
        if path.is_file() && !name.ends_with(".pid") {
            files.insert(name, std::fs::read(&path).unwrap());
        }
    }
    files
}

/// GET, or HEAD, which is answered wherever GET is.
fn is_read(method: &str) -> bool {
    method == "GET" || method == "HEAD"
}

/// Checks a reply against what the case allows.
fn check(case: &Case, status: u16, body: &[u8]) {
    if status == 200 && case.may_succeed {
        return;
    }
    assert!(
        (400..500).contains(&status),
        "{status} for {}: {}",
        case.describe(),
        String::from_utf8_lossy(body)
    );
    if case.method == "HEAD" {
        return;
    }
    let json: Value = serde_json::from_slice(body).unwrap_or_else(|_| {
        panic!(
            "not JSON for {}: {}",
            case.describe(),
            String::from_utf8_lossy(body)
        )
    });
    assert_eq!(json["error"]["code"], status, "{}", case.describe());
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        case.describe()
    );
}

#[test]
fn generated_hostile_requests_get_4xx_and_change_nothing() {
    let cluster = Cluster::start(&[]);
    // Some state to protect: orders in the logs, stock taken.
    for toy in ["tux", "fox", "lego"] {
        let body = format!(r#"{{"name":"{toy}","quantity":2}}"#);
        assert_eq!(
            crate::common::post(&cluster.url("/orders"), &body, &[]).status,
            200
        );
    }
    cluster.assert_converges(Duration::from_secs(10));
    // Every catalog replica applies the buys, and the order leader's confirmations follow
    // them into the catalog's log: wait for the last of both.
    let (name, value) = cluster.authorization();
    let unconfirmed = || {
        let url = format!("{}/internal/stock-check", cluster.catalog_leader_url());
        crate::common::get_with(&url, &[(name, value.as_str())]).json["data"]["unconfirmed"].clone()
    };
    let settled = crate::common::eventually(Duration::from_secs(10), || {
        let applied = (1..=3).all(|id| {
            crate::common::read(&cluster.file(&format!("catalog-{id}.csv")))
                .contains("Lego,29.99,98")
        });
        (applied && unconfirmed() == serde_json::json!([])).then_some(())
    });
    assert!(settled.is_some(), "{}", unconfirmed());
    let catalog_port: u16 = cluster
        .catalog_leader_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the catalog leader's port");
    let before = snapshot(&cluster.state());
    let stock_before = crate::common::get(&cluster.url("/products/tux")).json;
    let (_, authorization) = cluster.authorization();

    let seed: u64 = std::env::var("STORECTL_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    // Shown when the test fails, to repeat the same cases.
    eprintln!("seed {seed}: repeat with STORECTL_FUZZ_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut sent = 0;
    while sent < CASES && started.elapsed() < TIME_LIMIT {
        let case = frontend_case(&mut rng);
        let (status, body) = send(cluster.base, &case);
        check(&case, status, &body);
        let case = catalog_case(&mut rng, &authorization);
        let (status, body) = send(catalog_port, &case);
        check(&case, status, &body);
        sent += 1;
    }
    assert!(sent >= 500, "only {sent} cases in time (seed {seed})");

    // Every service is still up, and nothing changed: stock, logs, every file.
    for service in cluster.status() {
        assert_eq!(
            service["alive"], true,
            "{} died (seed {seed})",
            service["name"]
        );
    }
    assert_eq!(
        crate::common::get(&cluster.url("/products/tux")).json,
        stock_before
    );
    let after = snapshot(&cluster.state());
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "files appeared or vanished (seed {seed})"
    );
    for (name, contents) in &before {
        assert!(
            after[name] == *contents,
            "{name} changed (seed {seed}):\n{}",
            String::from_utf8_lossy(&after[name])
        );
    }
}
