//! A cluster on this machine: the state directory that holds its data files, pid files, logs and
//! addresses, and the operations `up`, `down`, `status`, `kill` and `restart` on it.
//!
//! Every service is a `storectl serve …` child process; `cluster.json` records the arguments each
//! was started with, so `restart` starts it again exactly so.

pub mod process;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{self, REPLICA_IDS};
use crate::error::{Error, Result};
use crate::secret::{Secret, SECRET_ENV};
use crate::wire::{CacheStats, Data, FrontendHealth, ReplicaHealth, Role};
pub use process::Signal;

pub const CLUSTER_FILE: &str = "cluster.json";
/// How long `up` and `restart` wait for services to answer their health checks.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `down` lets a service finish its requests before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What `up` records about a cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterSpec {
    pub host: String,
    pub port_base: u16,
    pub services: Vec<ServiceSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceSpec {
    /// `frontend`, `catalog` or `order-N`.
    pub name: String,
    pub port: u16,
    /// Arguments after the executable: `serve …`.
    pub args: Vec<String>,
}

impl ClusterSpec {
    pub fn service(&self, name: &str) -> Option<&ServiceSpec> {
        self.services.iter().find(|s| s.name == name)
    }

    pub fn url(&self, name: &str) -> Option<String> {
        self.service(name).map(|s| config::url(&self.host, s.port))
    }

    pub fn frontend_url(&self) -> String {
        config::url(&self.host, config::frontend_port(self.port_base))
    }
}

/// Options of `storectl up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub host: String,
    pub port_base: u16,
    pub cache_size: usize,
    pub restock_interval: Duration,
    pub health_interval: Duration,
    /// Units of each toy in a new catalog (`None`: the built-in 100).
    pub initial_stock: Option<u64>,
    /// Give every service a fault directory under `STATE_DIR/faults/`, so that tests and
    /// `chaos --fault slow-disk` can slow a replica's disk.
    pub fault_hooks: bool,
}

/// Where a cluster started with fault hooks keeps its services' fault directories.
pub const FAULTS_DIR: &str = "faults";

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            host: config::DEFAULT_HOST.into(),
            port_base: config::DEFAULT_PORT_BASE,
            cache_size: 10,
            restock_interval: Duration::from_secs(10),
            health_interval: crate::timeouts::HEALTH_POLL,
            initial_stock: None,
            fault_hooks: false,
        }
    }
}

/// The state directory of one cluster.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn spec_path(&self) -> PathBuf {
        self.root.join(CLUSTER_FILE)
    }

    pub fn pid_path(&self, service: &str) -> PathBuf {
        self.root.join(format!("{service}.pid"))
    }

    /// `service`'s fault directory (see [`crate::fault`]), made on first use, when the cluster
    /// was started with fault hooks; `None` otherwise.
    pub fn fault_dir(&self, service: &str) -> Option<PathBuf> {
        let hooks = self.root.join(FAULTS_DIR);
        if !hooks.is_dir() {
            return None;
        }
        let dir = hooks.join(service);
        std::fs::create_dir_all(&dir).ok()?;
        std::fs::canonicalize(&dir).ok()
    }

    pub fn log_path(&self, service: &str) -> PathBuf {
        self.root.join("logs").join(format!("{service}.log"))
    }

    pub fn orders_path(&self, id: u32) -> PathBuf {
        self.root.join(crate::order::orders_file_name(id))
    }

    pub fn orders_paths(&self) -> Vec<PathBuf> {
        REPLICA_IDS.iter().map(|&id| self.orders_path(id)).collect()
    }

    /// The cluster that `up` recorded here.
    pub fn load(&self) -> Result<ClusterSpec> {
        if !self.root.is_dir() {
            return Err(Error::Cluster(format!(
                "no state directory at {}: start a cluster with `storectl up`, or pass --state-dir",
                self.root.display()
            )));
        }
        let path = self.spec_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Cluster(format!(
                    "no cluster in {}: start one with `storectl up`",
                    self.root.display()
                )))
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        serde_json::from_str(&text).map_err(|e| Error::Corrupt {
            path,
            line: e.line() as u64,
            message: e.to_string(),
        })
    }

    pub fn pid(&self, service: &str) -> Option<u32> {
        self.pid_record(service).map(|(pid, _)| pid)
    }

    /// A pid file holds `PID START_TIME`: the pid and when that process started, so that a
    /// later process given the same pid is never taken for ours (a file with the pid alone is
    /// checked by its command line only).
    fn pid_record(&self, service: &str) -> Option<(u32, Option<u64>)> {
        let text = std::fs::read_to_string(self.pid_path(service)).ok()?;
        let mut fields = text.split_whitespace();
        let pid = fields.next()?.parse().ok()?;
        let started = fields.next().and_then(|s| s.parse().ok());
        Some((pid, started))
    }

    /// The pid of `service` if it is running: the very process `up` or `restart` started.
    pub fn live_pid(&self, service: &str) -> Option<u32> {
        self.pid_record(service)
            .filter(|&(pid, started)| process::is_ours(pid, started))
            .map(|(pid, _)| pid)
    }

    /// The cluster recorded here, if every one of its services is running; otherwise an error
    /// that names those that are not and says how to start them.
    pub fn running(&self) -> Result<ClusterSpec> {
        let spec = self.load()?;
        let down: Vec<&str> = spec
            .services
            .iter()
            .filter(|s| self.live_pid(&s.name).is_none())
            .map(|s| s.name.as_str())
            .collect();
        if !down.is_empty() {
            return Err(Error::Cluster(format!(
                "not running in the cluster in {}: {}; start it with `storectl up` \
                 (see `storectl status`)",
                self.root.display(),
                down.join(", ")
            )));
        }
        Ok(spec)
    }

    fn write_pid(&self, service: &str, pid: u32) -> Result<()> {
        let record = match process::start_time(pid) {
            Some(started) => format!("{pid} {started}\n"),
            None => format!("{pid}\n"),
        };
        crate::storage::write_atomic(&self.pid_path(service), record.as_bytes())
    }
}

/// Works out the arguments of every service of a cluster whose files live in `data_dir`.
pub fn plan(options: &UpOptions, data_dir: &Path) -> ClusterSpec {
    let host = &options.host;
    let base = options.port_base;
    let data = data_dir.display().to_string();
    let catalog_url = config::url(host, config::catalog_port(base));
    let frontend_url = config::url(host, config::frontend_port(base));
    let replica_args: Vec<String> = config::replica_addrs(host, base)
        .iter()
        .flat_map(|r| ["--replica".to_string(), format!("{}={}", r.id, r.url)])
        .collect();
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let mut services = Vec::new();
    let port = config::catalog_port(base);
    let mut args = strings(&["serve", "catalog", "--host", host]);
    args.extend([
        "--port".into(),
        port.to_string(),
        "--data-dir".into(),
        data.clone(),
    ]);
    args.extend(["--frontend".into(), frontend_url.clone()]);
    args.extend(["--restock-interval".into(), ms(options.restock_interval)]);
    if let Some(quantity) = options.initial_stock {
        args.extend(["--initial-stock".into(), quantity.to_string()]);
    }
    services.push(ServiceSpec {
        name: "catalog".into(),
        port,
        args,
    });
    for id in REPLICA_IDS {
        let port = config::replica_port(base, id);
        let mut args = strings(&["serve", "order", "--id", &id.to_string(), "--host", host]);
        args.extend([
            "--port".into(),
            port.to_string(),
            "--data-dir".into(),
            data.clone(),
        ]);
        args.extend(["--catalog".into(), catalog_url.clone()]);
        args.extend(replica_args.iter().cloned());
        services.push(ServiceSpec {
            name: format!("order-{id}"),
            port,
            args,
        });
    }
    let port = config::frontend_port(base);
    let mut args = strings(&["serve", "frontend", "--host", host]);
    args.extend(["--port".into(), port.to_string()]);
    args.extend(["--catalog".into(), catalog_url]);
    args.extend(replica_args.iter().cloned());
    args.extend(["--cache-size".into(), options.cache_size.to_string()]);
    args.extend(["--health-interval".into(), ms(options.health_interval)]);
    services.push(ServiceSpec {
        name: "frontend".into(),
        port,
        args,
    });
    ClusterSpec {
        host: host.clone(),
        port_base: base,
        services,
    }
}

/// Starts every service of a cluster in the background and waits until all answer and a leader
/// is chosen. `exe` is the storectl binary to run.
pub fn up(state: &StateDir, options: &UpOptions, exe: &Path) -> Result<ClusterSpec> {
    if options.port_base > config::MAX_PORT_BASE {
        return Err(Error::Usage(format!(
            "--port-base must be at most {} so that every port fits",
            config::MAX_PORT_BASE
        )));
    }
    if let Ok(existing) = state.load() {
        let running: Vec<String> = existing
            .services
            .iter()
            .filter_map(|s| {
                state
                    .live_pid(&s.name)
                    .map(|pid| format!("{} (pid {pid})", s.name))
            })
            .collect();
        if !running.is_empty() {
            return Err(Error::Cluster(format!(
                "a cluster is already running in {}: {}; stop it with `storectl down` first",
                state.root().display(),
                running.join(", ")
            )));
        }
    }
    if let Err(port) = config::ports_free(&options.host, options.port_base) {
        return Err(Error::Cluster(format!(
            "port {port} on {} is in use; pick other ports with --port-base, e.g. --port-base {}",
            options.host,
            options
                .port_base
                .saturating_add(100)
                .min(config::MAX_PORT_BASE)
        )));
    }
    std::fs::create_dir_all(state.root().join("logs")).map_err(|e| Error::io(state.root(), e))?;
    let hooks = state.root().join(FAULTS_DIR);
    if options.fault_hooks {
        std::fs::create_dir_all(&hooks).map_err(|e| Error::io(&hooks, e))?;
    } else if hooks.is_dir() {
        std::fs::remove_dir_all(&hooks).map_err(|e| Error::io(&hooks, e))?;
    }
    let data_dir = std::fs::canonicalize(state.root()).map_err(|e| Error::io(state.root(), e))?;
    let spec = plan(options, &data_dir);
    let text = serde_json::to_vec_pretty(&spec).unwrap_or_default();
    crate::storage::write_atomic(&state.spec_path(), &text)?;
    Secret::generate().save(state.root())?;
    // The back ends first: the front end picks the highest replica that answers, so it must
    // not look before all of them listen.
    let (frontend, back_ends): (Vec<ServiceSpec>, Vec<ServiceSpec>) = spec
        .services
        .iter()
        .cloned()
        .partition(|s| s.name == "frontend");
    let mut started = Vec::new();
    let outcome = start_and_wait(state, &spec, exe, &back_ends, false, &mut started)
        .and_then(|_| start_and_wait(state, &spec, exe, &frontend, true, &mut started));
    if let Err(e) = outcome {
        // Stop exactly what this call started, through the child handles: a pid file may not
        // tell a child that has not yet exec'd from a stranger.
        for s in &mut started {
            let _ = process::stop(s.child.id(), Duration::from_secs(5));
            let _ = s.child.kill();
            let _ = s.child.wait();
            let _ = std::fs::remove_file(state.pid_path(&s.service.name));
        }
        return Err(e);
    }
    Ok(spec)
}

fn start_and_wait(
    state: &StateDir,
    spec: &ClusterSpec,
    exe: &Path,
    services: &[ServiceSpec],
    want_leader: bool,
    all: &mut Vec<Started>,
) -> Result<()> {
    let first = all.len();
    let result = start_services(state, spec, exe, services, all);
    result.and_then(|_| wait_healthy(state, spec, &mut all[first..], want_leader))
}

/// A service just started, with its process handle: whether it exited is then known exactly.
struct Started {
    service: ServiceSpec,
    child: std::process::Child,
}

fn start_services(
    state: &StateDir,
    spec: &ClusterSpec,
    exe: &Path,
    services: &[ServiceSpec],
    started: &mut Vec<Started>,
) -> Result<()> {
    // The secret goes in the environment: a command line is visible to every user's `ps`.
    let secret = Secret::load(state.root()).map_err(|e| {
        Error::Cluster(format!(
            "{e}: the cluster's secret is missing; start the cluster again with `storectl up`"
        ))
    })?;
    for service in services {
        // A cluster started with fault hooks gives each service a fault directory of its own.
        let fault_dir = state.fault_dir(&service.name);
        let fault_dir = fault_dir.as_deref().map(Path::to_string_lossy);
        let mut env = vec![(SECRET_ENV, secret.expose())];
        if let Some(dir) = &fault_dir {
            env.push((crate::fault::FAULT_DIR_ENV, dir));
        }
        let child = process::spawn(exe, &service.args, &env, &state.log_path(&service.name))?;
        state.write_pid(&service.name, child.id())?;
        tracing::debug!(
            "started {} (pid {}) on {}",
            service.name,
            child.id(),
            config::url(&spec.host, service.port)
        );
        started.push(Started {
            service: service.clone(),
            child,
        });
    }
    Ok(())
}

/// Waits until each started service answers its health check (and, with `want_leader`, the
/// front end has chosen a leader). A service that exits meanwhile ends the wait with its last log
/// line.
fn wait_healthy(
    state: &StateDir,
    spec: &ClusterSpec,
    started: &mut [Started],
    want_leader: bool,
) -> Result<()> {
    let agent = crate::client::agent();
    let deadline = Instant::now() + START_TIMEOUT;
    let mut healthy = vec![false; started.len()];
    while healthy.iter().any(|h| !h) {
        for (i, s) in started.iter_mut().enumerate() {
            if healthy[i] {
                continue;
            }
            if !matches!(s.child.try_wait(), Ok(None)) {
                let log = state.log_path(&s.service.name);
                return Err(Error::Cluster(format!(
                    "{} exited during start: {} (see {})",
                    s.service.name,
                    last_log_line(&log),
                    log.display()
                )));
            }
            healthy[i] = is_healthy(&agent, spec, &s.service, want_leader);
        }
        if healthy.iter().all(|h| *h) {
            break;
        }
        if Instant::now() > deadline {
            let names: Vec<&str> = started
                .iter()
                .zip(&healthy)
                .filter(|(_, h)| !**h)
                .map(|(s, _)| s.service.name.as_str())
                .collect();
            return Err(Error::Cluster(format!(
                "{} did not become healthy within {}s; see the logs in {}",
                names.join(", "),
                START_TIMEOUT.as_secs(),
                state.root().join("logs").display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn is_healthy(
    agent: &ureq::Agent,
    spec: &ClusterSpec,
    service: &ServiceSpec,
    want_leader: bool,
) -> bool {
    let url = format!("{}/health", config::url(&spec.host, service.port));
    let Ok(reply) = crate::client::get(agent, &url) else {
        return false;
    };
    if reply.status != 200 {
        return false;
    }
    if service.name == "frontend" && want_leader {
        return reply
            .json::<Data<FrontendHealth>>()
            .is_some_and(|h| h.data.leader_id.is_some());
    }
    if service.name.starts_with("order-") {
        return reply
            .json::<Data<ReplicaHealth>>()
            .is_some_and(|h| h.data.ready);
    }
    true
}

fn last_log_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "no output".into())
}

/// Stops every running service of the cluster: SIGTERM, then SIGKILL after a grace period.
/// Returns the services that were stopped, with their pids.
pub fn down(state: &StateDir) -> Result<Vec<(String, u32)>> {
    let spec = state.load()?;
    let mut stopped = Vec::new();
    // Front end first, so no new orders arrive while the replicas stop.
    for service in spec.services.iter().rev() {
        if let Some(pid) = state.live_pid(&service.name) {
            process::send(pid, Signal::Term)?;
            stopped.push((service.name.clone(), pid));
        }
    }
    for (_, pid) in &stopped {
        process::stop(*pid, STOP_GRACE)?;
    }
    for service in &spec.services {
        let _ = std::fs::remove_file(state.pid_path(&service.name));
    }
    Ok(stopped)
}

/// Names a service: `catalog`, `frontend`, `order-N`, or `leader` (the current order leader).
pub fn resolve_target(spec: &ClusterSpec, target: &str) -> Result<String> {
    if target == "leader" {
        return find_leader(spec)
            .map(|id| format!("order-{id}"))
            .ok_or_else(|| {
                Error::Cluster(
                    "no order replica is leading right now; see `storectl status`, and start \
                     the cluster with `storectl up` if it is down"
                        .into(),
                )
            });
    }
    if spec.service(target).is_some() {
        return Ok(target.to_string());
    }
    let names: Vec<&str> = spec.services.iter().map(|s| s.name.as_str()).collect();
    Err(Error::Usage(format!(
        "unknown target '{target}'; use one of {}, leader",
        names.join(", ")
    )))
}

/// The id of the replica that leads, asking the front end first, then the replicas.
pub fn find_leader(spec: &ClusterSpec) -> Option<u32> {
    let agent = crate::client::agent();
    let from_frontend = crate::client::get(&agent, &format!("{}/health", spec.frontend_url()))
        .ok()
        .and_then(|r| r.json::<Data<FrontendHealth>>())
        .and_then(|h| h.data.leader_id);
    from_frontend.or_else(|| {
        REPLICA_IDS.iter().copied().find(|&id| {
            spec.url(&format!("order-{id}"))
                .and_then(|url| crate::client::get(&agent, &format!("{url}/health")).ok())
                .and_then(|r| r.json::<Data<ReplicaHealth>>())
                .is_some_and(|h| h.data.role == Role::Leader)
        })
    })
}

/// Sends `signal` to `target` and, for a signal that ends it, waits for it to go. Returns the
/// service's name and pid.
pub fn kill(state: &StateDir, target: &str, signal: Signal) -> Result<(String, u32)> {
    let spec = state.load()?;
    let name = resolve_target(&spec, target)?;
    let pid = state.live_pid(&name).ok_or_else(|| {
        Error::Cluster(format!(
            "{name} is not running; start it again with `storectl restart {name}`"
        ))
    })?;
    process::send(pid, signal)?;
    if matches!(signal, Signal::Stop | Signal::Cont) {
        return Ok((name, pid));
    }
    if !process::wait_gone(pid, Duration::from_secs(10)) {
        return Err(Error::Cluster(format!(
            "{name} (pid {pid}) is still running after {}",
            signal.name()
        )));
    }
    Ok((name, pid))
}

/// Starts `target` again with the arguments `up` gave it, stopping it first if it runs.
pub fn restart(state: &StateDir, target: &str, exe: &Path) -> Result<(String, u32)> {
    let spec = state.load()?;
    let name = resolve_target(&spec, target)?;
    let service = spec
        .service(&name)
        .cloned()
        .ok_or_else(|| Error::Cluster(format!("{name} is not part of this cluster")))?;
    if let Some(pid) = state.live_pid(&name) {
        process::stop(pid, STOP_GRACE)?;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpListener::bind((spec.host.as_str(), service.port)).is_err() {
        if Instant::now() > deadline {
            return Err(Error::Cluster(format!(
                "port {} of {name} is still in use by another process",
                service.port
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut started = Vec::new();
    start_and_wait(
        state,
        &spec,
        exe,
        std::slice::from_ref(&service),
        false,
        &mut started,
    )?;
    let pid = state.pid(&name).unwrap_or(0);
    Ok((name, pid))
}

/// One row of `storectl status`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServiceStatus {
    pub name: String,
    pub pid: Option<u32>,
    pub port: u16,
    pub alive: bool,
    /// `leader` or `follower` for order replicas.
    pub role: Option<String>,
    pub ready: Option<bool>,
    pub term: Option<u64>,
    /// The number of the last order the replica has applied: committed, so durable.
    pub last_order: Option<u64>,
    pub orders: Option<u64>,
    pub leader_id: Option<u32>,
    pub cache: Option<CacheStats>,
}

/// Whether every service answers and a replica leads: the cluster can take orders.
pub fn healthy(rows: &[ServiceStatus]) -> bool {
    rows.iter().all(|r| r.alive) && rows.iter().any(|r| r.role.as_deref() == Some("leader"))
}

/// The state of every service of the cluster, from pid files and health checks.
pub fn status(state: &StateDir) -> Result<Vec<ServiceStatus>> {
    let spec = state.load()?;
    let agent = crate::client::health_agent();
    let mut rows = Vec::new();
    for service in &spec.services {
        let pid = state.live_pid(&service.name);
        let url = format!("{}/health", config::url(&spec.host, service.port));
        let health = pid
            .and_then(|_| crate::client::get(&agent, &url).ok())
            .filter(|r| r.status == 200);
        let mut row = ServiceStatus {
            name: service.name.clone(),
            pid,
            port: service.port,
            alive: health.is_some(),
            role: None,
            ready: None,
            term: None,
            last_order: None,
            orders: None,
            leader_id: None,
            cache: None,
        };
        if let Some(reply) = health {
            if let Some(h) = reply
                .json::<Data<ReplicaHealth>>()
                .filter(|_| service.name.starts_with("order-"))
            {
                let h = h.data;
                row.role = Some(h.role.as_str().into());
                row.ready = Some(h.ready);
                row.term = Some(h.term);
                row.orders = Some(h.len);
                row.last_order = h.len.checked_sub(1);
                row.leader_id = h.leader_id;
            } else if let Some(h) = reply.json::<Data<FrontendHealth>>() {
                row.leader_id = h.data.leader_id;
                row.cache = Some(h.data.cache);
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// `storectl status` as a table.
pub fn render_status(rows: &[ServiceStatus]) -> String {
    let mut out = format!(
        "{:<10} {:>8} {:>6} {:<6} {:<9} {:>10}  {}\n",
        "SERVICE", "PID", "PORT", "ALIVE", "ROLE", "LAST ORDER", "CACHE"
    );
    for row in rows {
        let dash = || "-".to_string();
        let cache = row
            .cache
            .map(|c| {
                format!(
                    "{} hits, {} misses, {} evictions, {}/{} entries",
                    c.hits, c.misses, c.evictions, c.size, c.capacity
                )
            })
            .unwrap_or_else(dash);
        let role = match (&row.role, row.ready) {
            (Some(role), Some(false)) => format!("{role}*"),
            (Some(role), _) => role.clone(),
            (None, _) => dash(),
        };
        out.push_str(&format!(
            "{:<10} {:>8} {:>6} {:<6} {:<9} {:>10}  {}\n",
            row.name,
            row.pid.map(|p| p.to_string()).unwrap_or_else(dash),
            row.port,
            if row.alive { "yes" } else { "no" },
            role,
            row.last_order.map(|n| n.to_string()).unwrap_or_else(dash),
            cache
        ));
    }
    if rows.iter().any(|r| r.ready == Some(false)) {
        out.push_str("* still catching up with the leader\n");
    }
    out
}

/// Checks that the cluster in `state` conserved stock: the catalog's stock and the totals of
/// its ledger, read at one instant from the live catalog (or, when it is down, `catalog.csv`
/// brought up to `catalog-ledger.csv`), against the order log of the replica with the most
/// orders.
pub fn check_stock(state: &StateDir) -> Result<crate::verify::StockCheck> {
    use crate::catalog::{ledger, stock::Stock, CATALOG_FILE};
    let spec = state.load()?;
    // The replica that has applied the most orders: one that lags would look like lost orders.
    let comparison = crate::verify::compare(&state.orders_paths())?;
    let longest = comparison
        .longest()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| state.orders_paths()[0].clone());
    let orders = crate::order::orders_file::read_entries(&longest)?;
    let secret = Secret::load(state.root()).ok();
    let live = spec.url("catalog").and_then(|url| {
        let agent = crate::client::health_agent();
        let url = format!("{url}/internal/stock-check");
        crate::client::get_authorized(&agent, &url, secret.as_ref())
            .ok()
            .and_then(|reply| reply.json::<Data<crate::wire::StockSnapshot>>())
    });
    let (products, totals) = match live {
        Some(Data { data }) => (data.products, data.totals),
        None => {
            // What the catalog would start from: its snapshot, brought up to its ledger.
            let records = ledger::read_file(&state.root().join(ledger::LEDGER_FILE))?;
            let path = state.root().join(CATALOG_FILE);
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let mut stock = Stock::parse(&text, &path)?;
            let mut totals = ledger::Totals::default();
            records.iter().for_each(|r| totals.add(r));
            stock.apply_ledger(&totals);
            (stock.products(), totals)
        }
    };
    let stock: Vec<(String, u64)> = products.into_iter().map(|p| (p.name, p.quantity)).collect();
    Ok(crate::verify::check_stock_totals(&totals, &orders, &stock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_wires_every_service_to_the_others() {
        let options = UpOptions {
            port_base: 9000,
            ..Default::default()
        };
        let spec = plan(&options, Path::new("/data"));
        let names: Vec<&str> = spec.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["catalog", "order-1", "order-2", "order-3", "frontend"]
        );
        assert_eq!(spec.service("order-2").unwrap().port, 9011);
        let frontend = spec.service("frontend").unwrap().args.join(" ");
        assert!(
            frontend.contains("--catalog http://127.0.0.1:9001"),
            "{frontend}"
        );
        assert!(
            frontend.contains("--replica 3=http://127.0.0.1:9012"),
            "{frontend}"
        );
        let catalog = spec.service("catalog").unwrap().args.join(" ");
        assert!(
            catalog.contains("--frontend http://127.0.0.1:9000"),
            "{catalog}"
        );
        assert!(catalog.contains("--restock-interval 10000ms"), "{catalog}");
    }

    #[test]
    fn a_missing_state_dir_says_what_to_do() {
        let err = StateDir::new("/nonexistent/state")
            .load()
            .unwrap_err()
            .to_string();
        assert!(err.contains("storectl up"), "{err}");
    }
}
