//! Real network partitions (`docs/deploy.md`): every service on a host of its own (a network namespace),
//! started from one cluster file, two front ends, clients ordering through both while links are
//! cut. After each partition heals: every acknowledged order is in the log at its number with its
//! own name and quantity, no product read after an acknowledged buy showed the stock before it,
//! the replicas' files are identical, and stock was conserved.
//!
//! Every store speaks mutual TLS between its services, as a cluster on several hosts should:
//! the certificates come from one CA per test process (`storectl certs`), made anew for a
//! replica that moves to another host.
//!
//! The tests need root and `ip netns`; elsewhere they say so and pass without running.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use storectl::client::{Acknowledged, ClientConfig, Report};
use storectl::cluster_file::{ClusterFile, Entry};
use storectl::secret::Secret;

use storectl::tls::certs;
use storectl::tls::TlsTable;

use crate::common::{eventually, Process, EXE, TEST_SECRET};
use crate::netns::Network;

/// The hosts: `o4` is a spare, in no service's entry until a replica moves there, unless the
/// order group has five replicas, on `o1` to `o5`.
const HOSTS: [&str; 11] = [
    "c1", "c2", "c3", "fe1", "fe2", "o1", "o2", "o3", "ctl", "o4", "o5",
];
/// Every host an order replica may run on.
const ORDER_HOSTS: [&str; 5] = ["o1", "o2", "o3", "o4", "o5"];
/// The catalog replicas' hosts.
const CATALOG_HOSTS: [&str; 3] = ["c1", "c2", "c3"];
/// The toy only the stale-read checker buys, so it knows what its stock must be.
const WATCHED: &str = "Tux";
const STOCK: u64 = 1_000_000;

/// The CA of every store of this test process: the tools of the process trust one CA.
fn shared_ca() -> &'static std::path::Path {
    static CA: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    CA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        certs::init(dir.path(), &[], 30, false).unwrap();
        dir
    })
    .path()
}

/// A cluster spread over the hosts of a [`Network`].
struct Store {
    // Declared first: the services stop before their network goes.
    services: Vec<Service>,
    net: Network,
    topology: ClusterFile,
    file: PathBuf,
    dir: tempfile::TempDir,
}

impl Store {
    fn start() -> Store {
        Self::start_with(3)
    }

    /// A store whose order group has `orders` replicas, on hosts `o1`, `o2`, ….
    fn start_with(orders: u32) -> Store {
        let net = Network::create(&HOSTS);
        let dir = tempfile::tempdir().unwrap();
        let at = |host: &str, port: u16| format!("{}:{port}", net.address(host));
        let topology = ClusterFile {
            token: None,
            tls: None,
            catalog: (1..=3)
                .map(|id| Entry {
                    id,
                    address: at(&format!("c{id}"), 8001),
                })
                .collect(),
            frontend: vec![
                Entry {
                    id: 1,
                    address: at("fe1", 8000),
                },
                Entry {
                    id: 2,
                    address: at("fe2", 8000),
                },
            ],
            order: (1..=orders)
                .map(|id| Entry {
                    id,
                    address: at(&format!("o{id}"), 8010),
                })
                .collect(),
        };
        let file = dir.path().join("cluster.toml");
        let mut topology = topology;
        topology.tls = Some(TlsTable::for_dir("tls").relative_to(dir.path()));
        topology.save(&file).unwrap();
        let mut store = Store {
            services: Vec::new(),
            net,
            topology,
            file,
            dir,
        };
        for party in store.topology.certificate_parties() {
            store.certify(&party.name);
        }
        storectl::tool_http::trust_cluster(&store.topology).unwrap();
        let initial_stock = STOCK.to_string();
        for id in 1..=3 {
            let id = id.to_string();
            store.serve(
                &format!("c{id}"),
                &[
                    "catalog",
                    "--id",
                    &id,
                    "--initial-stock",
                    &initial_stock,
                    "--restock-interval",
                    "1h",
                ],
            );
        }
        for id in 1..=orders {
            store.serve(&format!("o{id}"), &["order", "--id", &id.to_string()]);
        }
        store.serve("fe1", &["frontend", "--id", "1"]);
        store.serve("fe2", &["frontend", "--id", "2"]);
        store.wait_until_ready();
        store
    }

    /// Makes service `name`'s certificate for its address in the cluster file, as `storectl
    /// certs add NAME --force` would, with the CA of every store of this process.
    fn certify(&self, name: &str) {
        let dir = self.dir.path().join("tls");
        if !dir.join(certs::CA_CERT).exists() {
            std::fs::create_dir_all(&dir).unwrap();
            for file in [certs::CA_CERT, certs::CA_KEY] {
                std::fs::copy(shared_ca().join(file), dir.join(file)).unwrap();
            }
        }
        let party = self
            .topology
            .certificate_parties()
            .into_iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no service {name} in the cluster file"));
        certs::add(&dir, &party, 30, true).unwrap();
    }

    /// Starts `storectl serve args… --cluster FILE` on `host`; a catalog or replica keeps its
    /// data in a directory of its own.
    fn serve(&mut self, host: &str, args: &[&str]) {
        let data = self.dir.path().join(host);
        std::fs::create_dir_all(&data).unwrap();
        let mut all: Vec<String> = ["serve"]
            .iter()
            .chain(args)
            .map(|a| a.to_string())
            .collect();
        all.extend(["--cluster".into(), self.file.display().to_string()]);
        if args[0] != "frontend" {
            all.extend(["--data-dir".into(), data.display().to_string()]);
            // The first start makes the group; a restart finds the replica's identity and
            // ignores the flag. A new member joins instead.
            if !args.contains(&"--join") {
                all.push("--init".into());
            }
        }
        let process = self.spawn(host, &all);
        self.services.push(Service {
            host: host.to_string(),
            args: all,
            process,
        });
    }

    fn spawn(&self, host: &str, args: &[String]) -> Process {
        let log = self.dir.path().join(format!("{host}.log"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.net.spawn(
            host,
            EXE,
            &args,
            &[("STORECTL_CLUSTER_SECRET", TEST_SECRET)],
            &log,
        )
    }

    /// Runs `storectl ARGS…` to its end on the control host, with the cluster's secret;
    /// returns whether it succeeded, and what it wrote.
    fn tool(&self, args: &[&str]) -> (bool, String) {
        let log = self.dir.path().join("tool.log");
        let _ = std::fs::remove_file(&log);
        let status = self
            .net
            .spawn(
                "ctl",
                EXE,
                args,
                &[("STORECTL_CLUSTER_SECRET", TEST_SECRET)],
                &log,
            )
            .wait_with_output()
            .status;
        (
            status.success(),
            std::fs::read_to_string(&log).unwrap_or_default(),
        )
    }

    /// Stops the service on `host` as a crash would, and forgets it.
    fn crash(&mut self, host: &str) {
        let at = self.services.iter().position(|s| s.host == host).unwrap();
        drop(self.services.remove(at));
    }

    /// Stops the service on `host` (SIGTERM) and starts it again with the same arguments, so
    /// that it reads the cluster file anew; returns once the cluster is whole again.
    fn restart(&mut self, host: &str) {
        let at = self.services.iter().position(|s| s.host == host).unwrap();
        let pid = self.services[at].process.id();
        storectl::cluster::process::stop(pid, Duration::from_secs(10)).unwrap();
        let _ = self.services[at].process.wait();
        let args = self.services[at].args.clone();
        self.services[at].process = self.spawn(host, &args);
        self.wait_until_ready();
    }

    /// The status of every service, seen from the control host.
    fn status(&self) -> Vec<storectl::cluster::ServiceStatus> {
        self.net
            .on("ctl", || storectl::cluster::status_of(&self.topology))
    }

    fn wait_until_ready(&self) {
        let ready = eventually(Duration::from_secs(30), || {
            let rows = self.status();
            let leads = |group: fn(&storectl::cluster::ServiceStatus) -> bool| {
                rows.iter()
                    .any(|r| group(r) && r.role.as_deref() == Some("leader"))
            };
            let led_by_replica = leads(|r| r.name.replica_id().is_some())
                && leads(|r| r.name.catalog_id().is_some());
            let all = rows.iter().all(|r| r.alive);
            let led = rows
                .iter()
                .filter(|r| r.name.is_frontend())
                .all(|r| r.leader_id.is_some());
            let leased = rows
                .iter()
                .filter(|r| r.name.is_frontend())
                .all(|r| r.cache_leased == Some(true));
            let seeded = rows
                .iter()
                .filter(|r| r.name.catalog_id().is_some())
                .all(|r| r.units_in_stock.is_some_and(|units| units > 0));
            (all && led && leased && led_by_replica && seeded).then_some(())
        });
        assert!(
            ready.is_some(),
            "the cluster did not start: {}",
            self.logs()
        );
    }

    /// The host of the order replica that leads now, as the replicas themselves say.
    fn leader(&self) -> String {
        self.leader_of(|name| name.replica_id().is_some())
    }

    /// The host of an order replica of the first three that does not lead now.
    fn follower(&self) -> &'static str {
        let leader = self.leader();
        ["o1", "o2", "o3"]
            .into_iter()
            .find(|h| *h != leader)
            .unwrap()
    }

    /// Waits until the replica on `host` holds as many orders as any other.
    fn assert_caught_up(&self, host: &str) {
        let caught_up = eventually(Duration::from_secs(20), || {
            (self.orders_on(host).len() == self.most_orders()).then_some(())
        });
        assert!(caught_up.is_some(), "the replica on {host} caught up");
    }

    /// The host of the catalog replica that leads now.
    fn catalog_leader(&self) -> String {
        self.leader_of(|name| name.catalog_id().is_some())
    }

    fn leader_of(&self, in_group: fn(storectl::services::ServiceName) -> bool) -> String {
        let address = eventually(Duration::from_secs(20), || {
            self.status()
                .into_iter()
                .find(|r| in_group(r.name) && r.role.as_deref() == Some("leader"))
                .map(|r| r.address)
        })
        .expect("a replica leads");
        HOSTS
            .into_iter()
            .find(|h| address.starts_with(&format!("{}:", self.net.address(h))))
            .expect("the leader's host")
            .to_string()
    }

    /// Orders applied by the replica on `host`, from its file (whichever replica runs there).
    fn orders_on(&self, host: &str) -> Vec<storectl::wire::Entry> {
        let Ok(files) = std::fs::read_dir(self.dir.path().join(host)) else {
            return Vec::new();
        };
        files
            .filter_map(|f| f.ok().map(|f| f.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("orders-"))
            })
            .map(|path| storectl::order::orders_file::read_entries(&path).unwrap_or_default())
            .unwrap_or_default()
    }

    fn most_orders(&self) -> usize {
        ORDER_HOSTS
            .iter()
            .map(|h| self.orders_on(h).len())
            .max()
            .unwrap_or(0)
    }

    /// Waits until at least `more` orders beyond `from` are in some replica's log: the store
    /// made progress.
    fn wait_for_orders(&self, from: usize, more: usize, during: &str) {
        let progressed = eventually(Duration::from_secs(30), || {
            (self.most_orders() >= from + more).then_some(())
        });
        assert!(
            progressed.is_some(),
            "no orders went through while {during}: {}",
            self.logs()
        );
    }

    /// `verify-logs --cluster FILE --stock` from the control host, until it passes.
    fn assert_converges(&self) {
        let secret = Secret::parse(TEST_SECRET).unwrap();
        let mut last = String::new();
        let converged = eventually(Duration::from_secs(30), || {
            let check = self.net.on("ctl", || {
                storectl::remote::verify(&self.topology, &secret, true)
            });
            match check {
                Ok(check) if check.ok() && check.comparison.as_ref().unwrap().identical() => {
                    Some(())
                }
                Ok(check) => {
                    last = check.to_string();
                    None
                }
                Err(e) => {
                    last = e.to_string();
                    None
                }
            }
        });
        assert!(converged.is_some(), "{last}\n{}", self.logs());
    }

    /// Every acknowledged order is in the longest log at its number, with its own key, name and
    /// quantity.
    fn assert_kept(&self, acknowledged: &[Acknowledged]) {
        let longest = ORDER_HOSTS
            .iter()
            .map(|h| self.orders_on(h))
            .max_by_key(Vec::len)
            .unwrap();
        let at: HashMap<u64, &storectl::wire::Entry> =
            longest.iter().map(|e| (e.number, e)).collect();
        for ack in acknowledged {
            let entry = at
                .get(&ack.number)
                .unwrap_or_else(|| panic!("acknowledged order {} is not in the log", ack.number));
            assert_eq!(
                (&entry.key, &entry.name, entry.quantity),
                (&ack.key, &ack.name, ack.quantity),
                "order {} changed",
                ack.number
            );
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for host in HOSTS {
            let path = self.dir.path().join(format!("{host}.log"));
            if let Ok(text) = std::fs::read_to_string(&path) {
                let tail: Vec<&str> = text.lines().rev().take(8).collect();
                out.push_str(&format!("\n--- {host}\n"));
                for line in tail.into_iter().rev() {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    fn frontend_url(&self, id: u32) -> String {
        let (_, url) = self.topology.frontend_urls()[id as usize - 1].clone();
        url
    }
}

/// A service on a host, with what it was started with.
struct Service {
    host: String,
    args: Vec<String>,
    process: Process,
}

/// Clients ordering through some front ends from the control host until told to stop; they
/// retry a failed order with the same key.
struct Load {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<Report>>,
}

impl Load {
    fn start(store: &Store, frontends: &[u32]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let products: Vec<String> = storectl::client::catalog_products()
            .into_iter()
            .filter(|p| p != WATCHED)
            .collect();
        let configs: Vec<ClientConfig> = frontends
            .iter()
            .map(|&id| ClientConfig {
                frontend: store.frontend_url(id),
                sessions: 2,
                iterations: usize::MAX,
                p: 1.0,
                seed: u64::from(id),
                products: products.clone(),
                stop: Some(stop.clone()),
                retry_for: Duration::from_secs(30),
            })
            .collect();
        let namespace = store.net.namespace_file("ctl");
        let handle = std::thread::spawn(move || {
            crate::netns::enter(&namespace);
            std::thread::scope(|scope| {
                let runs: Vec<_> = configs
                    .iter()
                    .map(|config| {
                        scope.spawn(move || {
                            storectl::client::run(config, &storectl::progress::Quiet)
                        })
                    })
                    .collect();
                runs.into_iter()
                    .map(|r| r.join().expect("a client run ends"))
                    .collect()
            })
        });
        Load { stop, handle }
    }

    fn finish(self) -> Vec<Report> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the clients finish")
    }
}

/// Buys one unit of the watched toy through one front end, again and again, and after each
/// acknowledged buy reads the toy at `read_at`: no read may show more stock than the
/// acknowledged buys left.
struct StaleCheck {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<Vec<String>>,
}

impl StaleCheck {
    fn start(store: &Store, buy_at: u32, read_at: &[u32]) -> StaleCheck {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicU64::new(0));
        let buy_url = format!("{}/orders", store.frontend_url(buy_at));
        let read_urls: Vec<String> = read_at
            .iter()
            .map(|&id| format!("{}/products/{WATCHED}", store.frontend_url(id)))
            .collect();
        let namespace = store.net.namespace_file("ctl");
        let (stop_flag, counter) = (stop.clone(), acknowledged.clone());
        let handle = std::thread::spawn(move || {
            crate::netns::enter(&namespace);
            let agent = storectl::tool_http::agent();
            let mut stale = Vec::new();
            let mut bought = 0u64;
            let mut round = 0u64;
            while !stop_flag.load(Ordering::Relaxed) {
                round += 1;
                let key = format!("watch-{}-{round}", std::process::id());
                let body = serde_json::json!({ "name": WATCHED, "quantity": 1 });
                let placed = (0..20).any(|_| {
                    storectl::tool_http::post_json(&agent, &buy_url, &body, Some(&key))
                        .is_ok_and(|r| r.status == 200)
                });
                if !placed {
                    continue;
                }
                bought += 1;
                counter.store(bought, Ordering::Relaxed);
                for url in &read_urls {
                    let Ok(reply) = storectl::tool_http::get(&agent, url) else {
                        continue;
                    };
                    if reply.status != 200 {
                        continue; // a front end that cannot vouch for its cache may refuse
                    }
                    let quantity = reply
                        .json::<Value>()
                        .and_then(|v| v["data"]["quantity"].as_u64())
                        .unwrap_or(0);
                    if quantity > STOCK - bought {
                        stale.push(format!(
                            "{url} showed {quantity} after {bought} acknowledged buys ({} left)",
                            STOCK - bought
                        ));
                    }
                }
            }
            stale
        });
        StaleCheck {
            stop,
            acknowledged,
            handle,
        }
    }

    fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::Relaxed)
    }

    /// Waits until `more` buys beyond `from` were acknowledged.
    fn wait_for_buys(&self, from: u64, more: u64, store: &Store) {
        let done = eventually(Duration::from_secs(30), || {
            (self.acknowledged() >= from + more).then_some(())
        });
        assert!(done.is_some(), "the watched buys stalled: {}", store.logs());
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the checker finishes")
    }
}

/// Stops the clients and the checker once a partition healed, and checks what they saw: no
/// error, no stale read, nothing lost.
fn assert_nothing_lost(store: &Store, load: Load, watch: StaleCheck) {
    let reports = check_what_was_seen(store, load, watch);
    for report in &reports {
        assert_eq!(report.errors, 0, "{:?}", report.error_samples);
    }
}

/// As [`assert_nothing_lost`], where a fault left fewer than two replicas up for a moment.
fn assert_nothing_lost_despite_errors(store: &Store, load: Load, watch: StaleCheck) {
    check_what_was_seen(store, load, watch);
}

/// No stale read, no order read back wrong, every acknowledged order in the log, the replicas
/// identical and stock conserved; returns the clients' reports.
fn check_what_was_seen(store: &Store, load: Load, watch: StaleCheck) -> Vec<Report> {
    let stale = watch.finish();
    let reports = load.finish();
    assert!(stale.is_empty(), "stale product reads: {stale:#?}");
    let acknowledged: Vec<Acknowledged> = reports
        .iter()
        .flat_map(|r| r.acknowledged.iter().cloned())
        .collect();
    assert!(!acknowledged.is_empty(), "the clients ordered nothing");
    for report in &reports {
        assert_eq!(report.mismatches, 0, "a client read back a different order");
    }
    store.assert_converges();
    store.assert_kept(&acknowledged);
    reports
}

#[test]
#[ignore = "needs root and `ip netns`: run as root: cargo test --test it -- --ignored (.ci/run does)"]
fn the_leaders_host_cut_off_from_everything_loses_nothing() {
    let store = Store::start();
    let load = Load::start(&store, &[1, 2]);
    let watch = StaleCheck::start(&store, 1, &[1, 2]);
    store.wait_for_orders(0, 20, "starting");

    let leader = store.leader();
    store.net.isolate(&leader);
    let before = store.most_orders();
    store.wait_for_orders(before, 30, &format!("{leader} was cut off"));
    let bought = watch.acknowledged();
    watch.wait_for_buys(bought, 3, &store);
    store.net.rejoin(&leader);

    assert_nothing_lost(&store, load, watch);
}

#[test]
#[ignore = "needs root and `ip netns`: run as root: cargo test --test it -- --ignored (.ci/run does)"]
fn a_leader_cut_from_its_followers_but_not_the_front_ends_loses_nothing() {
    let store = Store::start();
    let load = Load::start(&store, &[1, 2]);
    let watch = StaleCheck::start(&store, 2, &[1, 2]);
    store.wait_for_orders(0, 20, "starting");

    let leader = store.leader();
    let followers: Vec<&str> = ["o1", "o2", "o3"]
        .into_iter()
        .filter(|h| *h != leader)
        .collect();
    for follower in &followers {
        store.net.cut(&leader, follower);
    }
    // The followers elect one of themselves; the front ends, which still hear the old leader,
    // follow the newer term.
    let new_leader = eventually(Duration::from_secs(20), || {
        let now = store.leader();
        (now != leader).then_some(now)
    });
    assert!(new_leader.is_some(), "no new leader: {}", store.logs());
    let before = store.most_orders();
    store.wait_for_orders(before, 30, "the leader was cut from its followers");
    for follower in &followers {
        store.net.heal(&leader, follower);
    }

    assert_nothing_lost(&store, load, watch);
}

#[test]
#[ignore = "needs root and `ip netns`: run as root: cargo test --test it -- --ignored (.ci/run does)"]
fn the_catalog_leaders_host_cut_off_from_everything_loses_nothing() {
    let store = Store::start();
    let load = Load::start(&store, &[1, 2]);
    let watch = StaleCheck::start(&store, 1, &[1, 2]);
    store.wait_for_orders(0, 20, "starting");

    let leader = store.catalog_leader();
    store.net.isolate(&leader);
    let before = store.most_orders();
    store.wait_for_orders(before, 30, &format!("catalog leader {leader} was cut off"));
    let bought = watch.acknowledged();
    watch.wait_for_buys(bought, 3, &store);
    store.net.rejoin(&leader);

    assert_nothing_lost(&store, load, watch);
}

/// The old catalog leader still hears the front ends and the order leader, but not the other
/// catalog replicas: it must not answer a read or grant a lease from stock a new leader may
/// have changed.
#[test]
#[ignore = "needs root and `ip netns`: run as root: cargo test --test it -- --ignored (.ci/run does)"]
fn a_catalog_leader_cut_from_its_followers_serves_nothing_stale() {
    let store = Store::start();
    let load = Load::start(&store, &[1, 2]);
    let watch = StaleCheck::start(&store, 2, &[1, 2]);
    store.wait_for_orders(0, 20, "starting");

    let leader = store.catalog_leader();
    let followers: Vec<&str> = CATALOG_HOSTS.into_iter().filter(|h| *h != leader).collect();
    for follower in &followers {
        store.net.cut(&leader, follower);
    }
    let before = store.most_orders();
    store.wait_for_orders(
        before,
        30,
        &format!("catalog leader {leader} was cut from its group"),
    );
    let bought = watch.acknowledged();
    watch.wait_for_buys(bought, 5, &store);
    for follower in &followers {
        store.net.heal(&leader, follower);
    }

    assert_nothing_lost(&store, load, watch);
}

#[test]
#[ignore = "needs root and `ip netns`: run as root: cargo test --test it -- --ignored (.ci/run does)"]
fn a_front_end_cut_from_the_catalog_serves_nothing_stale() {
    let store = Store::start();
    // Clients through the front end that keeps the catalog; the checker buys there and reads
    // at both, so the cut-off front end's cache is tested on every round.
    let load = Load::start(&store, &[1]);
    let watch = StaleCheck::start(&store, 1, &[2, 1]);
    watch.wait_for_buys(0, 5, &store);

    for catalog in CATALOG_HOSTS {
        store.net.cut("fe2", catalog);
    }
    let bought = watch.acknowledged();
    // Buys go on: one front end's silence holds a buy for one lease at most.
    watch.wait_for_buys(bought, 10, &store);
    let cut_off = store
        .status()
        .into_iter()
        .find(|r| r.name.to_string() == "frontend-2")
        .unwrap();
    assert_eq!(
        cut_off.cache_leased,
        Some(false),
        "a front end that cannot hear the catalog holds no lease"
    );
    for catalog in CATALOG_HOSTS {
        store.net.heal("fe2", catalog);
    }
    let healed = eventually(Duration::from_secs(10), || {
        store
            .status()
            .into_iter()
            .any(|r| r.name.to_string() == "frontend-2" && r.cache_leased == Some(true))
            .then_some(())
    });
    assert!(
        healed.is_some(),
        "the lease is renewed once the link is back"
    );
    let bought = watch.acknowledged();
    watch.wait_for_buys(bought, 3, &store);

    assert_nothing_lost(&store, load, watch);
}

#[test]
#[ignore = "needs root and `ip netns`: run as root: cargo test --test it -- --ignored (.ci/run does)"]
fn a_follower_cut_off_and_healed_catches_up() {
    let store = Store::start();
    let load = Load::start(&store, &[1, 2]);
    let watch = StaleCheck::start(&store, 1, &[2]);
    store.wait_for_orders(0, 20, "starting");

    let follower = store.follower();
    store.net.isolate(follower);
    let before = store.most_orders();
    store.wait_for_orders(before, 300, &format!("{follower} was cut off"));
    assert!(
        store.orders_on(follower).len() < store.most_orders(),
        "the cut-off follower fell behind"
    );
    store.net.rejoin(follower);

    assert_nothing_lost(&store, load, watch);
}

#[test]
#[ignore = "needs root and `ip netns`: run as root: cargo test --test it -- --ignored (.ci/run does)"]
fn a_replica_moved_to_another_host_keeps_every_order() {
    let mut store = Store::start();
    let load = Load::start(&store, &[1, 2]);
    let watch = StaleCheck::start(&store, 1, &[2]);
    store.wait_for_orders(0, 20, "starting");

    // A follower's host dies; its disk goes into the spare host, o4, as docs/deploy.md says:
    // the cluster file gets the new address, the replica starts there, and every other service
    // is restarted to read the file, one at a time, the leader last. The leader then reaches the
    // moved follower only at its new address.
    let leader = store.leader();
    let moved = store.follower();
    let id: u32 = moved[1..].parse().unwrap();
    store.crash(moved);
    let (from, to) = (store.dir.path().join(moved), store.dir.path().join("o4"));
    std::fs::create_dir_all(&to).unwrap();
    for file in std::fs::read_dir(&from).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, to.join(file.file_name().unwrap())).unwrap();
    }
    std::fs::remove_dir_all(&from).unwrap();
    store.topology.order[id as usize - 1].address = format!("{}:8010", store.net.address("o4"));
    store.topology.save(&store.file).unwrap();
    // Its certificate names its host: it gets one for the new one.
    store.certify(&format!("order-{id}"));
    store.serve("o4", &["order", "--id", &id.to_string()]);
    let mut order: Vec<String> = ["fe1", "fe2", "c1", "c2", "c3", "o1", "o2", "o3"]
        .into_iter()
        .filter(|h| *h != leader && *h != moved)
        .map(String::from)
        .collect();
    order.push(leader);
    for host in &order {
        store.restart(host);
        let before = store.most_orders();
        store.wait_for_orders(before, 10, &format!("{host} restarted"));
    }
    let before = store.orders_on("o4").len();
    store.wait_for_orders(before, 30, &format!("replica {id} runs on o4"));

    // While one replica was down and another restarted, a client could see an order fail and
    // retry it with the same key; what was acknowledged must all be there.
    assert_nothing_lost_despite_errors(&store, load, watch);
    store.assert_caught_up("o4");
}

#[test]
#[ignore = "needs root and `ip netns`: run as root: cargo test --test it -- --ignored (.ci/run does)"]
fn a_replica_whose_host_and_disk_are_lost_is_replaced_on_another_host_and_clients_see_nothing() {
    let mut store = Store::start();
    let load = Load::start(&store, &[1, 2]);
    let watch = StaleCheck::start(&store, 1, &[2]);
    store.wait_for_orders(0, 20, "starting");

    // A follower's host dies with its disk. The spare host, o4, runs a new member, replica 4,
    // which `storectl member replace` puts in its place, from the control host, while clients
    // order: the group keeps two of three the whole time, so nobody sees an error.
    let lost = store.follower();
    let id = &lost[1..];
    store.crash(lost);
    std::fs::remove_dir_all(store.dir.path().join(lost)).unwrap();
    store.topology.order.push(Entry {
        id: 4,
        address: format!("{}:8010", store.net.address("o4")),
    });
    store.topology.save(&store.file).unwrap();
    store.certify("order-4");
    store.serve("o4", &["order", "--id", "4", "--join"]);
    let file = store.file.display().to_string();
    let (replaced, said) = store.tool(&[
        "member",
        "replace",
        "--group",
        "order",
        "--id",
        id,
        "--with",
        "4",
        "--cluster",
        &file,
    ]);
    assert!(replaced, "{said}");
    assert!(
        said.contains(&format!("replaced order-{id} with order-4")),
        "{said}"
    );
    // The command updated the file: the lost replica's entry is gone.
    store.topology = ClusterFile::load(&store.file).unwrap();
    let ids: Vec<u32> = store.topology.order.iter().map(|e| e.id).collect();
    assert!(
        !ids.contains(&id.parse().unwrap()) && ids.contains(&4),
        "{ids:?}"
    );
    let before = store.orders_on("o4").len();
    store.wait_for_orders(before, 30, "replica 4 runs on o4");

    assert_nothing_lost(&store, load, watch);
    store.assert_caught_up("o4");
}

#[test]
#[ignore = "needs root and `ip netns`: run as root: cargo test --test it -- --ignored (.ci/run does)"]
fn five_order_replicas_lose_two_hosts_and_clients_see_nothing() {
    let store = Store::start_with(5);
    let load = Load::start(&store, &[1, 2]);
    let watch = StaleCheck::start(&store, 1, &[1, 2]);
    store.wait_for_orders(0, 20, "starting");

    // The leader's host and a follower's: three of five remain, a majority.
    let leader = store.leader();
    let follower = ORDER_HOSTS.into_iter().find(|h| *h != leader).unwrap();
    store.net.isolate(&leader);
    store.net.isolate(follower);
    let before = store.most_orders();
    store.wait_for_orders(before, 30, &format!("{leader} and {follower} were cut off"));
    let bought = watch.acknowledged();
    watch.wait_for_buys(bought, 3, &store);
    store.net.rejoin(&leader);
    store.net.rejoin(follower);

    assert_nothing_lost(&store, load, watch);
}

/// Whether `needle` occurs in `haystack`, letters in any case.
fn occurs(haystack: &[u8], needle: &str) -> bool {
    let needle = needle.to_ascii_lowercase();
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[test]
#[ignore = "needs root and `ip netns`: run as root: cargo test --test it -- --ignored (.ci/run does)"]
fn the_traffic_between_hosts_shows_no_secret_and_no_order_across_a_failover() {
    let mut store = Store::start();
    let dir = store.dir.path().to_path_buf();
    // The capture sees plaintext where there is some: a product read over the front end's
    // public API in plain HTTP, which it still serves.
    let control = dir.join("control.pcap");
    let capture = store
        .net
        .capture(&control, &dir.join("control.log"))
        .expect("tcpdump captures the switch's traffic");
    let plain = format!(
        "http://{}:8000/products/{WATCHED}",
        store.net.address("fe1")
    );
    let reply = store
        .net
        .on("ctl", || {
            storectl::tool_http::get(&storectl::tool_http::agent(), &plain)
        })
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let readable = eventually(Duration::from_secs(10), || {
        let seen = std::fs::read(&control).unwrap_or_default();
        occurs(&seen, "\"quantity\"").then_some(())
    });
    capture.stop();
    assert!(
        readable.is_some(),
        "a plain HTTP reply is readable in a capture"
    );

    // Clients order through both front ends over HTTPS while the order leader stops and
    // another takes over; every call between the services crosses the switch.
    let traffic = dir.join("traffic.pcap");
    let capture = store
        .net
        .capture(&traffic, &dir.join("traffic.log"))
        .expect("tcpdump captures the switch's traffic");
    let load = Load::start(&store, &[1, 2]);
    let watch = StaleCheck::start(&store, 1, &[2]);
    store.wait_for_orders(0, 20, "starting");
    let leader = store.leader();
    store.restart(&leader);
    let before = store.most_orders();
    store.wait_for_orders(before, 20, "after the leader's failover");
    assert_nothing_lost_despite_errors(&store, load, watch);
    capture.stop();

    let seen = std::fs::read(&traffic).unwrap();
    assert!(
        seen.len() > 100_000,
        "the capture holds the run's traffic ({} bytes)",
        seen.len()
    );
    // Long enough that ciphertext does not hold one by chance (a 3-letter word does, in a
    // capture this size).
    for secret in [
        TEST_SECRET,
        "bearer ",
        "\"quantity\"",
        "order_number",
        "idempotency-key",
        "/internal/",
        "/orders",
        "\"name\":\"",
    ] {
        assert!(
            !occurs(&seen, secret),
            "'{secret}' crossed the network in the clear"
        );
    }
}

/// A ureq agent of a host that holds a certificate for `order-2` from another CA, knows the
/// cluster's secret and trusts the cluster's CA: everything but a certificate of the cluster.
fn forger(store: &Store) -> ureq::Agent {
    let foreign = store.dir.path().join("foreign");
    let party = certs::Party {
        name: "order-2".into(),
        hosts: vec![store.net.address("ctl").to_string()],
    };
    certs::init(&foreign, &[party], 30, false).unwrap();
    let read_certs = |path: std::path::PathBuf| -> Vec<ureq::tls::Certificate<'static>> {
        ureq::tls::parse_pem(&std::fs::read(path).unwrap())
            .filter_map(|item| match item.unwrap() {
                ureq::tls::PemItem::Certificate(cert) => Some(cert),
                _ => None,
            })
            .collect()
    };
    let key =
        ureq::tls::PrivateKey::from_pem(&std::fs::read(foreign.join("order-2-key.pem")).unwrap())
            .unwrap();
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(storectl::tls::provider())
        .root_certs(ureq::tls::RootCerts::new_with_certs(&read_certs(
            store.dir.path().join("tls").join(certs::CA_CERT),
        )))
        .client_cert(Some(ureq::tls::ClientCert::new_with_certs(
            &read_certs(foreign.join("order-2.pem")),
            key,
        )))
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into()
}

#[test]
#[ignore = "needs root and `ip netns`: run as root: cargo test --test it -- --ignored (.ci/run does)"]
fn a_host_with_a_certificate_of_another_ca_cannot_buy_read_orders_or_send_raft_messages() {
    let store = Store::start();
    let agent = forger(&store);
    let bearer = format!("Bearer {TEST_SECRET}");
    let catalog = store
        .topology
        .url(storectl::services::ServiceName::Catalog(3))
        .unwrap();
    let order = store
        .topology
        .url(storectl::services::ServiceName::Order(1))
        .unwrap();
    let frontend = store.frontend_url(1);
    let buy = serde_json::json!({"buys": [{"key": "forged-1", "name": WATCHED, "quantity": 1}]});
    let attempts: Vec<(String, Result<u16, String>)> = store.net.on("ctl", || {
        let post = |url: String, body: &serde_json::Value| {
            let result = agent
                .post(&url)
                .header("Authorization", &bearer)
                .send_json(body)
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string());
            (url, result)
        };
        let get = |url: String| {
            let result = agent
                .get(&url)
                .header("Authorization", &bearer)
                .call()
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string());
            (url, result)
        };
        vec![
            post(format!("{catalog}/internal/buy"), &buy),
            get(format!("{order}/internal/orders")),
            post(
                format!("{order}/internal/raft/vote"),
                &serde_json::json!({"vote": {"leader_id": {"term": 99, "node_id": 2}, "committed": false}, "last_log_id": null}),
            ),
            post(
                format!("{frontend}/internal/invalidate"),
                &serde_json::json!({"name": WATCHED}),
            ),
        ]
    });
    for (url, result) in &attempts {
        assert!(result.is_err(), "{url} answered a forged peer: {result:?}");
    }
    // With the secret alone, in plain HTTP, a replica says to use TLS and does nothing.
    let plain = order.replacen("https://", "http://", 1);
    let reply = store.net.on("ctl", || {
        storectl::tool_http::get_authorized(
            &storectl::tool_http::agent(),
            &format!("{plain}/internal/orders"),
            Some(&Secret::parse(TEST_SECRET).unwrap()),
        )
    });
    let reply = reply.unwrap();
    assert_eq!(reply.status, 400, "{}", reply.body);
    // Each service that was called says so, and names the peer's host and the reason.
    let refused = eventually(Duration::from_secs(10), || {
        let rows = store.status();
        let lines: Vec<String> = rows
            .iter()
            .filter_map(|r| {
                r.tls_refused
                    .as_ref()
                    .map(|t| format!("{}: {}", r.name, t.last))
            })
            .collect();
        (lines.len() >= 3).then_some(lines)
    })
    .expect("status shows the refusals");
    let ctl = store.net.address("ctl");
    assert!(
        refused
            .iter()
            .any(|l| l.starts_with("catalog-3") && l.contains("signed by another CA")),
        "{refused:?}"
    );
    assert!(refused.iter().all(|l| l.contains(ctl)), "{refused:?}");
    // Nothing was bought.
    store.assert_converges();
}
