//! Limits a hostile or careless client runs into: slow headers, piles of idle connections,
//! large bodies; and a graceful stop that finishes what is in flight.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{assert_error, eventually, get, post, Cluster};

/// A connection whose reads never wait, so that many can be checked in turn.
fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    stream.set_nonblocking(true).unwrap();
    stream
}

/// True once the server has closed `stream`: a read gives end of file or a reset.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn a_client_trickling_its_headers_is_cut_off_and_starves_nobody() {
    // A short header-read timeout, so that the test does not wait the default 10 s.
    let cluster = Cluster::start(&["--header-read-timeout", "2s"]);
    // Twenty slowloris connections, one byte of headers a second.
    let request = b"GET /products/tux HTTP/1.1\r\nHost: x\r\nX-Slow: 1234567890123456789\r\n";
    let mut slow: Vec<TcpStream> = (0..20).map(|_| connect(cluster.base)).collect();
    let started = Instant::now();
    let mut sent = 0;
    let cut_off = eventually(Duration::from_secs(30), || {
        if started.elapsed() >= Duration::from_secs(sent as u64) && sent < request.len() {
            for stream in &mut slow {
                let _ = stream.write_all(&request[sent..sent + 1]);
            }
            sent += 1;
        }
        // Others are served meanwhile.
        assert_eq!(get(&cluster.url("/products/tux")).status, 200);
        slow.iter_mut()
            .all(closed_by_server)
            .then_some(started.elapsed())
    });
    let cut_off = cut_off.expect("the slow connections are closed by the server");
    assert!(
        cut_off >= Duration::from_millis(1500),
        "closed for being slow, not at once: {cut_off:?}"
    );
}

#[test]
fn a_thousand_idle_connections_do_not_stop_the_front_end() {
    let cluster = Cluster::start(&[]);
    let idle: Vec<TcpStream> = (0..1000).map(|_| connect(cluster.base)).collect();
    for _ in 0..50 {
        assert_eq!(get(&cluster.url("/products/tux")).status, 200);
    }
    let order = post(
        &cluster.url("/orders"),
        r#"{"name":"tux","quantity":1}"#,
        &[],
    );
    assert_eq!(order.status, 200, "{}", order.json);
    drop(idle);
}

#[test]
fn large_bodies_are_refused_everywhere_with_413() {
    let cluster = Cluster::start(&[]);
    let (_, secret) = cluster.authorization();
    let big = format!(r#"{{"orders":[],"pad":"{}"}}"#, "x".repeat(100_000));
    assert_error(&post(&cluster.url("/orders"), &big, &[]), 413);
    // A body announced as larger than the limit is refused before it is sent. A catalog
    // replica takes the engine's peer messages too: up to 4 MiB, like an order replica.
    for (port, path, limit) in [
        (cluster.base, "/orders", 16 * 1024),
        (cluster.base + 1, "/internal/buy", 4 * 1024 * 1024),
        (cluster.base + 12, "/internal/sync", 4 * 1024 * 1024),
    ] {
        let status = announce(port, path, limit + 1, &secret);
        assert!(status.starts_with("HTTP/1.1 413"), "{path}: {status}");
    }
    assert_eq!(
        get(&cluster.url("/products/tux")).json["data"]["quantity"],
        100,
        "nothing was bought"
    );
}

/// Sends only the headers of a POST announcing a `length`-byte body, and returns the status line
/// of the reply.
fn announce(port: u16, path: &str, length: usize, authorization: &str) -> String {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Authorization: {authorization}\r\nContent-Length: {length}\r\n\r\n{{"
    );
    let reply = crate::common::raw_request(port, head.as_bytes());
    String::from_utf8_lossy(&reply)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A catalog group of one, stopped with SIGTERM while buys are in flight.
#[test]
fn sigterm_lets_requests_in_flight_finish_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let base = storectl::config::find_free_port_base("127.0.0.1").unwrap();
    // No front end runs: after the first buy, each waits for its flush only.
    let file = crate::common::cluster_file(dir.path(), base);
    let port = base + 1;
    let mut catalog = crate::common::serve(
        &[
            "catalog",
            "--cluster",
            file.to_str().unwrap(),
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--initial-stock",
            "1000000",
        ],
        dir.path(),
        port,
    );
    let url = format!("http://127.0.0.1:{port}");

    // Buyers keep buying until the catalog is gone; each remembers the keys it was told of.
    let stop = Arc::new(AtomicBool::new(false));
    let buyers: Vec<_> = (0..4)
        .map(|b| {
            let url = url.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let agent = storectl::tool_http::agent();
                let mut bought = Vec::new();
                let mut server_errors = 0;
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let key = format!("sigterm-{b}-{i}");
                    match buy_tux(&agent, &url, &key) {
                        Ok(r) if r.status() == 200 => bought.push(key),
                        Ok(r) if r.status().is_server_error() => server_errors += 1,
                        Ok(_) => {}
                        // Refused or closed: the catalog stopped taking requests.
                        Err(_) => break,
                    }
                }
                (bought, server_errors)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let pid = catalog.id() as i32;
    // SAFETY: kill only sends a signal to the child this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let exited = eventually(Duration::from_secs(15), || catalog.try_wait().unwrap());
    stop.store(true, Ordering::Relaxed);
    let status = exited.expect("the catalog stops within the grace period");
    assert!(status.success(), "exit status {status:?}");

    let mut bought = Vec::new();
    for buyer in buyers {
        let (keys, server_errors) = buyer.join().unwrap();
        assert_eq!(server_errors, 0, "no buy was answered with a 5xx");
        bought.extend(keys);
    }
    assert!(!bought.is_empty());
    // Every buy that was answered is in the log: started again, the catalog has taken at
    // least those units, and gives each of those keys its first answer without taking more.
    let file_of = || crate::common::read(&dir.path().join("catalog-1.csv"));
    let stock = |text: String| -> u64 {
        let row = text
            .lines()
            .find(|l| l.starts_with("Tux,"))
            .unwrap()
            .to_string();
        row.rsplit(',').next().unwrap().parse().unwrap()
    };
    let after_stop = stock(file_of());
    assert!(
        after_stop <= 1_000_000 - bought.len() as u64,
        "{after_stop}"
    );
    let _catalog = crate::common::serve(
        &[
            "catalog",
            "--cluster",
            file.to_str().unwrap(),
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        dir.path(),
        port,
    );
    // Started again, it may apply buys it had committed but not yet applied when it stopped
    // (none of them answered): never fewer units taken than on stop. It leads again once it
    // has won an election, even alone: a replica never takes a leadership back from its vote.
    let tux = || {
        let bearer = format!("Bearer {}", crate::common::TEST_SECRET);
        let reply = crate::common::get_with(
            &format!("{url}/products/tux"),
            &[("Authorization", bearer.as_str())],
        );
        reply.json["data"]["quantity"].as_u64()
    };
    let after_start = eventually(Duration::from_secs(10), tux).expect("Tux's stock");
    assert!(after_start <= after_stop, "{after_start} > {after_stop}");
    let agent = storectl::tool_http::agent();
    for key in &bought {
        let reply = buy_tux(&agent, &url, key).unwrap();
        assert_eq!(reply.status(), 200, "{key}");
    }
    assert_eq!(tux(), Some(after_start), "an answered key was sold again");
}

/// Buys one Tux with `key` at the catalog at `url`, as the order leader of term 1 would.
fn buy_tux(
    agent: &ureq::Agent,
    url: &str,
    key: &str,
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    let body = format!(r#"{{"term":1,"orders":[{{"key":"{key}","name":"tux","quantity":1}}]}}"#);
    agent
        .post(&format!("{url}/internal/buy"))
        .header(
            "Authorization",
            &format!("Bearer {}", crate::common::TEST_SECRET),
        )
        .header("Content-Type", "application/json")
        .send(body.as_str())
}

/// A file damaged beyond a torn last line stops its service at start with one line naming the
/// file and the line, and is left as it was.
#[test]
fn damaged_files_stop_their_service_with_the_file_and_line_named() {
    let cluster = Cluster::start(&[]);
    cluster.order_each(&["tux", "fox"], 1);
    cluster.assert_converges(Duration::from_secs(10));
    cluster.must("down", &[]);
    let base = cluster.base.to_string();

    // A record in the middle of an engine's log that fails its checksum is damage, not a torn
    // write: the replica refuses to start rather than guess.
    let garbled = |file: &str| {
        let log = crate::common::read(&cluster.file(file));
        let mut lines: Vec<String> = log.lines().map(String::from).collect();
        lines[1] = lines[1].replacen("term", "tern", 1);
        lines.join("\n") + "\n"
    };
    // The stock a new catalog starts from is read on every start: a bad one is named too.
    let seed = "name,cost,quantity\nTux,1,1\n".to_string();
    let cases = [
        ("raft-2.log", garbled("raft-2.log"), "raft-2.log, line 2"),
        (
            "catalog-raft-1.log",
            garbled("catalog-raft-1.log"),
            "catalog-raft-1.log, line 2",
        ),
        ("catalog.csv", seed, "catalog.csv, line 1"),
    ];
    for (file, damaged, named) in cases {
        let path = cluster.file(file);
        let original = std::fs::read_to_string(&path).ok();
        std::fs::write(&path, &damaged).unwrap();
        let up = cluster.run("up", &["--port-base", &base]);
        assert_eq!(
            up.status.code(),
            Some(1),
            "{file}: {}",
            crate::common::stderr(&up)
        );
        // After up's progress line, the failure in one line.
        let err = crate::common::stderr(&up);
        let last = err.trim().lines().last().unwrap_or_default();
        assert!(last.contains(named), "names {named}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(
            crate::common::read(&path),
            damaged,
            "{file} is never rewritten"
        );
        match original {
            Some(original) => std::fs::write(&path, original).unwrap(),
            None => std::fs::remove_file(&path).unwrap(),
        }
    }
    // Repaired, the cluster starts again with every order.
    let up = cluster.run("up", &["--port-base", &base]);
    assert!(up.status.success(), "{}", crate::common::stderr(&up));
    assert_eq!(cluster.service("order-3")["last_order"], 1);
}
