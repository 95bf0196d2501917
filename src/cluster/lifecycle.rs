//! `up`, `down`, `kill` and `restart`: the services of a cluster started as child processes,
//! waited for, signalled and stopped.

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use super::{lossy, plan, process, ClusterSpec, Signal, StateDir, Target, UpOptions, FAULTS_DIR};
use crate::cluster_file::ClusterFile;
use crate::config;
use crate::error::Error;
use crate::secret::{Secret, SECRET_ENV};
use crate::services::{ServiceConfig, ServiceName};
use crate::tool_error::{Result, ToolError};
use crate::tool_http;
use crate::wire::{CatalogHealth, Data, FrontendHealth, ReplicaHealth};

/// How long `up` and `restart` wait for services to answer their health checks.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `down` lets a service finish its requests before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long `kill` and `restart` wait for a process to go, or its port to be free.
const GONE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

/// Starts every service of a cluster in the background and waits until all answer and a leader
/// is chosen. `exe` is the storectl binary to run.
pub fn up(state: &StateDir, options: &UpOptions, exe: &Path) -> Result<ClusterSpec> {
    if options.port_base > config::MAX_PORT_BASE {
        return Err(ToolError::usage(format!(
            "--port-base must be at most {} so that every port fits",
            config::MAX_PORT_BASE
        )));
    }
    refuse_a_running_cluster(state)?;
    // A cluster that kept its files on a lossy disk keeps them there.
    let lossy = options.lossy_disk || state.is_lossy();
    let options = &UpOptions {
        lossy_disk: lossy,
        ..options.clone()
    };
    refuse_a_seed_for_a_seeded_catalog(state, options)?;
    let spec = plan_cluster(state, options)?;
    prepare_state_dir(state, options, &spec)?;
    if lossy {
        let replicas: Vec<ServiceName> = spec.names().filter(|n| !n.is_frontend()).collect();
        lossy::start(state, exe, &replicas)?;
    }
    // The back ends first: the front end follows the replica that leads, so it must not look
    // before all of them listen.
    let (frontend, back_ends): (Vec<ServiceConfig>, Vec<ServiceConfig>) = spec
        .services
        .iter()
        .cloned()
        .partition(|s| s.name().is_frontend());
    let back_ends = mark_new_groups(back_ends);
    let mut started = Vec::new();
    let outcome = start_and_wait(state, &spec, exe, &back_ends, false, &mut started)
        .and_then(|_| start_and_wait(state, &spec, exe, &frontend, true, &mut started));
    if let Err(e) = outcome {
        undo_start(state, &mut started, &back_ends, lossy);
        return Err(e);
    }
    Ok(spec)
}

/// The stock a catalog starts from is its seed, written once: a catalog that already has its
/// files keeps its own stock, and `--initial-stock` would be silently ignored.
fn refuse_a_seed_for_a_seeded_catalog(state: &StateDir, options: &UpOptions) -> Result<()> {
    let catalog_dir = match options.lossy_disk {
        true => state.lossy_backing().join("catalog-1"),
        false => state.root().to_path_buf(),
    };
    let catalog_log = catalog_dir.join(crate::catalog::log_file_name(1));
    if options.initial_stock.is_some() && catalog_log.exists() {
        return Err(ToolError::usage(format!(
            "--initial-stock seeds a new catalog, and the one in {} already has its stock; \
             start in another --state-dir (or remove this one) to seed a new one",
            state.root().display()
        )));
    }
    Ok(())
}

/// Every service's address and options, with the cluster's token (kept from an earlier start)
/// and TLS table; fails before anything is written if a port is in use.
fn plan_cluster(state: &StateDir, options: &UpOptions) -> Result<ClusterSpec> {
    // An absolute path (not a canonical one, which needs the directory to exist): the plan is
    // made, and its ports checked, before anything is written.
    let data_dir = std::path::absolute(state.root()).map_err(|e| Error::io(state.root(), e))?;
    let previous = state.load().ok();
    let groups = groups_to_start(options, previous.as_ref())?;
    let mut spec = plan::plan_groups(options, &groups, &data_dir);
    // A cluster keeps its token: its replicas recorded it when they first started.
    spec.topology.token = match &previous {
        Some(previous) => previous.topology.token.clone(),
        None => Some(new_token()),
    };
    if let Some((_, address)) = spec
        .topology
        .services()
        .into_iter()
        .find(|(_, address)| std::net::TcpListener::bind(address.as_str()).is_err())
    {
        return Err(ToolError::PortTaken {
            address,
            suggested: options
                .port_base
                .saturating_add(100)
                .min(config::MAX_PORT_BASE),
        });
    }
    // A cluster that spoke TLS keeps speaking it.
    if options.tls || previous.as_ref().is_some_and(|p| p.topology.tls.is_some()) {
        spec.topology.tls =
            Some(crate::tls::TlsTable::for_dir(super::TLS_DIR).relative_to(&data_dir));
    }
    Ok(spec)
}

/// Writes what the services need before they start: certificates, the logs and fault-hook
/// directories, the cluster's spec and its secret.
fn prepare_state_dir(state: &StateDir, options: &UpOptions, spec: &ClusterSpec) -> Result<()> {
    if spec.topology.tls.is_some() {
        ensure_certificates(state, &spec.topology)?;
        crate::tool_http::trust_cluster(&spec.topology)?;
    }
    let logs = state.logs_dir();
    std::fs::create_dir_all(&logs).map_err(|e| Error::io(&logs, e))?;
    let hooks = state.root().join(FAULTS_DIR);
    if options.fault_hooks {
        std::fs::create_dir_all(&hooks).map_err(|e| Error::io(&hooks, e))?;
    } else if hooks.is_dir() {
        std::fs::remove_dir_all(&hooks).map_err(|e| Error::io(&hooks, e))?;
    }
    state.save(spec)?;
    Secret::generate().save(state.root())?;
    Ok(())
}

/// A group none of whose replicas has data yet is new: its replicas may make it. One that has
/// data never is, so a replica whose files were lost refuses to start.
fn mark_new_groups(back_ends: Vec<ServiceConfig>) -> Vec<ServiceConfig> {
    let new = |group: fn(&ServiceConfig) -> bool| {
        !back_ends.iter().filter(|s| group(s)).any(has_replica_data)
    };
    let (new_orders, new_catalog) = (
        new(|s| matches!(s, ServiceConfig::Order(_))),
        new(|s| matches!(s, ServiceConfig::Catalog(_))),
    );
    back_ends
        .into_iter()
        .map(|mut service| {
            let new = matches!(service, ServiceConfig::Order(_)) && new_orders
                || matches!(service, ServiceConfig::Catalog(_)) && new_catalog;
            if let Some(start) = service.start_mut() {
                start.init = new;
            }
            service
        })
        .collect()
}

/// Stops exactly what a failed `up` started, through the child handles: a pid file may not
/// tell a child that has not yet exec'd from a stranger.
fn undo_start(state: &StateDir, started: &mut [Started], back_ends: &[ServiceConfig], lossy: bool) {
    for s in started {
        let _ = process::stop(s.child.id(), Duration::from_secs(5));
        let _ = s.child.kill();
        let _ = s.child.wait();
        let _ = std::fs::remove_file(state.pid_path(s.service.name()));
    }
    // A group this call was making is not made: the next `up` makes it anew, rather than find
    // some replicas with an identity and refuse the others.
    for service in back_ends {
        forget_first_start(service);
    }
    if lossy {
        let _ = lossy::stop(state);
    }
}

/// Makes the CA of a cluster that speaks TLS (in the state directory's `tls`) when it has
/// none, and a certificate for each of its services (and the tools) that has none.
pub(super) fn ensure_certificates(state: &StateDir, topology: &ClusterFile) -> Result<()> {
    use crate::tls::certs;
    let dir = state.root().join(super::TLS_DIR);
    let parties = topology.certificate_parties();
    let made = if dir.join(certs::CA_CERT).exists() {
        parties
            .iter()
            .filter(|p| !certs::party_files(&dir, &p.name).iter().all(|f| f.exists()))
            .try_for_each(|p| certs::add(&dir, p, certs::DEFAULT_DAYS, true).map(drop))
    } else {
        certs::init(&dir, &parties, certs::DEFAULT_DAYS, false).map(drop)
    };
    made.map_err(ToolError::Certificates)
}

/// The replicas `up` starts: those the cluster recorded, when it has a record (its membership
/// may have changed since it was made), or 1 to N of the sizes asked for.
fn groups_to_start(options: &UpOptions, previous: Option<&ClusterSpec>) -> Result<plan::Groups> {
    let Some(previous) = previous else {
        return Ok(plan::Groups::sized(options));
    };
    let ids = |entries: &[crate::cluster_file::Entry]| entries.iter().map(|e| e.id).collect();
    let groups = plan::Groups {
        order: ids(&previous.topology.order),
        catalog: ids(&previous.topology.catalog),
    };
    for (flag, asked, has) in [
        ("--replicas", options.replicas, &groups.order),
        (
            "--catalog-replicas",
            options.catalog_replicas,
            &groups.catalog,
        ),
    ] {
        if asked.is_some_and(|n| n as usize != has.len()) {
            return Err(ToolError::usage(format!(
                "this cluster has {} replicas in that group, and {flag} sizes a new one; change \
                 a running cluster's members with `storectl member add|remove`, or start a new \
                 cluster in another --state-dir",
                has.len()
            )));
        }
    }
    Ok(groups)
}

/// A replica's own files: its identity, its log and its snapshot; none for a front end.
fn replica_files(service: &ServiceConfig) -> Vec<std::path::PathBuf> {
    let (dir, names) = match service {
        ServiceConfig::Order(o) => (
            &o.data_dir,
            [
                crate::order::identity_file_name(o.id),
                crate::order::log_file_name(o.id),
                crate::order::machine::snapshot_file_name(o.id),
            ],
        ),
        ServiceConfig::Catalog(c) => {
            let id = c.id.unwrap_or(1);
            (
                &c.data_dir,
                [
                    crate::catalog::identity_file_name(id),
                    crate::catalog::log_file_name(id),
                    crate::catalog::snapshot_file_name(id),
                ],
            )
        }
        ServiceConfig::Frontend(_) => return Vec::new(),
    };
    names.iter().map(|name| dir.join(name)).collect()
}

/// Whether a replica's data directory holds its identity or its log: it is not a new group's
/// first start. Always false for a front end, which keeps no data.
pub(super) fn has_replica_data(service: &ServiceConfig) -> bool {
    match replica_files(service).as_slice() {
        [identity, log, _] => crate::raft::identity::has_data(identity, log),
        _ => false,
    }
}

/// Removes what a replica started with `--init` wrote before its group was made by a `up` that
/// failed: its identity, log and snapshot. Nothing was acknowledged to anyone: `up` had not
/// returned. A replica started without `--init` keeps everything.
fn forget_first_start(service: &ServiceConfig) {
    if service.start().is_some_and(|start| start.init) {
        for file in replica_files(service) {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// A new cluster's token ([`crate::cluster_file::ClusterFile::token`]): 64 random bits in hex.
fn new_token() -> String {
    let bytes: [u8; 8] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn refuse_a_running_cluster(state: &StateDir) -> Result<()> {
    let Ok(existing) = state.load() else {
        return Ok(());
    };
    let running: Vec<String> = existing
        .names()
        .filter_map(|name| {
            state
                .live_pid(name)
                .map(|pid| format!("{name} (pid {pid})"))
        })
        .collect();
    if running.is_empty() {
        return Ok(());
    }
    Err(ToolError::AlreadyRunning {
        root: state.root().to_path_buf(),
        running,
    })
}

fn start_and_wait(
    state: &StateDir,
    spec: &ClusterSpec,
    exe: &Path,
    services: &[ServiceConfig],
    want_leader: bool,
    all: &mut Vec<Started>,
) -> Result<()> {
    let first = all.len();
    let result = start_services(state, spec, exe, services, all);
    result.and_then(|_| wait_healthy(state, spec, &mut all[first..], want_leader))
}

/// A service just started, with its process handle: whether it exited is then known exactly.
struct Started {
    service: ServiceConfig,
    child: Child,
}

fn start_services(
    state: &StateDir,
    spec: &ClusterSpec,
    exe: &Path,
    services: &[ServiceConfig],
    started: &mut Vec<Started>,
) -> Result<()> {
    // The secret goes in the environment: a command line is visible to every user's `ps`.
    let secret = Secret::load(state.root()).map_err(|e| ToolError::NoSecret(e.to_string()))?;
    for service in services {
        let name = service.name();
        // A cluster started with fault hooks gives each service a fault directory of its own.
        let fault_dir = state.fault_dir(name);
        let fault_dir = fault_dir.as_deref().map(Path::to_string_lossy);
        let mut env = vec![(SECRET_ENV, secret.expose())];
        if let Some(dir) = &fault_dir {
            env.push((crate::fault::FAULT_DIR_ENV, dir));
        }
        let child = process::spawn(exe, &service.to_argv(), &env, &state.log_path(name))?;
        state.write_pid(name, child.id())?;
        tracing::debug!(
            "started {name} (pid {}) on {}",
            child.id(),
            spec.address(name).unwrap_or("?")
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
    let agent = tool_http::agent();
    let mut healthy = vec![false; started.len()];
    let all_healthy = crate::poll::try_until(START_TIMEOUT, POLL, || {
        for (s, healthy) in started.iter_mut().zip(healthy.iter_mut()) {
            if *healthy {
                continue;
            }
            if !matches!(s.child.try_wait(), Ok(None)) {
                let name = s.service.name();
                let log = state.log_path(name);
                return Err(ToolError::ExitedDuringStart {
                    name,
                    last_line: last_log_line(&log),
                    log,
                });
            }
            *healthy = is_healthy(&agent, spec, &s.service, want_leader);
        }
        Ok(healthy.iter().all(|h| *h).then_some(()))
    })?;
    if all_healthy.is_none() {
        let names: Vec<String> = started
            .iter()
            .zip(&healthy)
            .filter(|(_, h)| !**h)
            .map(|(s, _)| s.service.name().to_string())
            .collect();
        return Err(ToolError::NotHealthy {
            names,
            secs: START_TIMEOUT.as_secs(),
            logs: state.logs_dir(),
        });
    }
    Ok(())
}

fn is_healthy(
    agent: &ureq::Agent,
    spec: &ClusterSpec,
    service: &ServiceConfig,
    want_leader: bool,
) -> bool {
    let Some(url) = spec.url(service.name()) else {
        return false;
    };
    let Ok(reply) = tool_http::get(agent, &format!("{url}/health")) else {
        return false;
    };
    if reply.status != 200 {
        return false;
    }
    // A new member knows no leader until the group's leader adds it.
    if service.start().is_some_and(|start| start.join) {
        return true;
    }
    match service.name() {
        ServiceName::Frontend(_) if want_leader => reply
            .json::<Data<FrontendHealth>>()
            .is_some_and(|h| h.data.leader_id.is_some()),
        ServiceName::Order(_) => reply
            .json::<Data<ReplicaHealth>>()
            .is_some_and(|h| h.data.ready),
        // Ready once it follows a leader and has applied the group's seed.
        ServiceName::Catalog(_) => reply
            .json::<Data<CatalogHealth>>()
            .is_some_and(|h| h.data.replica.ready && h.data.products > 0),
        _ => true,
    }
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
pub fn down(state: &StateDir) -> Result<Vec<(ServiceName, u32)>> {
    let spec = state.load()?;
    let mut stopped = Vec::new();
    // Front end first, so no new orders arrive while the replicas stop.
    for name in spec.names().collect::<Vec<_>>().into_iter().rev() {
        if let Some(pid) = state.live_pid(name) {
            process::send(pid, Signal::Term)?;
            stopped.push((name, pid));
        }
    }
    for (_, pid) in &stopped {
        process::stop(*pid, STOP_GRACE)?;
    }
    for name in spec.names() {
        let _ = std::fs::remove_file(state.pid_path(name));
    }
    if state.is_lossy() {
        lossy::stop(state)?;
    }
    Ok(stopped)
}

/// Sends `signal` to `target` and, for a signal that ends it, waits for it to go. Returns the
/// service's name and pid.
pub fn kill(state: &StateDir, target: Target, signal: Signal) -> Result<(ServiceName, u32)> {
    let spec = state.load()?;
    let name = spec.resolve(target)?;
    let pid = state.live_pid(name).ok_or(ToolError::NotStarted(name))?;
    process::send(pid, signal)?;
    if matches!(signal, Signal::Stop | Signal::Cont) {
        return Ok((name, pid));
    }
    if !process::wait_gone(pid, GONE_TIMEOUT) {
        return Err(ToolError::StillRunning {
            name,
            pid,
            signal: signal.name(),
        });
    }
    Ok((name, pid))
}

/// Starts one new replica of a running cluster as a new member (`--join`) and waits until it
/// answers; `spec` already names it. Returns its pid.
pub(super) fn start_joining(
    state: &StateDir,
    spec: &ClusterSpec,
    service: &ServiceConfig,
    exe: &Path,
) -> Result<u32> {
    let mut joining = service.clone();
    if let Some(start) = joining.start_mut() {
        start.join = true;
    }
    let mut started = Vec::new();
    start_and_wait(
        state,
        spec,
        exe,
        std::slice::from_ref(&joining),
        false,
        &mut started,
    )?;
    Ok(started.first().map_or(0, |s| s.child.id()))
}

/// Stops service `name` if it runs, and forgets its pid.
pub(super) fn stop_one(state: &StateDir, name: ServiceName) -> Result<()> {
    if let Some(pid) = state.live_pid(name) {
        process::stop(pid, STOP_GRACE)?;
    }
    let _ = std::fs::remove_file(state.pid_path(name));
    Ok(())
}

/// Starts `target` again with what `up` gave it, stopping it first if it runs.
pub fn restart(state: &StateDir, target: Target, exe: &Path) -> Result<(ServiceName, u32)> {
    let name = state.load()?.resolve(target)?;
    restart_together(state, &[name], exe)?;
    Ok((name, state.pid(name).unwrap_or(0)))
}

/// Starts `names` again together, stopping any that runs, and waits until every one is
/// healthy. A group that was down as a whole comes back this way: a replica that led before
/// it stopped starts as a follower and needs the others for an election, so waiting for each
/// in turn would wait for ever on the first.
pub fn restart_together(state: &StateDir, names: &[ServiceName], exe: &Path) -> Result<()> {
    let spec = state.load()?;
    let mut services = Vec::new();
    for &name in names {
        let service = spec
            .service(name)
            .cloned()
            .ok_or(ToolError::NotInCluster(name))?;
        stop_for_restart(state, &spec, name)?;
        services.push(service);
    }
    let mut started = Vec::new();
    start_and_wait(state, &spec, exe, &services, false, &mut started)
}

/// Stops `name` if it runs, and waits until its address is free to listen on again.
fn stop_for_restart(state: &StateDir, spec: &ClusterSpec, name: ServiceName) -> Result<()> {
    if let Some(pid) = state.live_pid(name) {
        process::stop(pid, STOP_GRACE)?;
    }
    let address = spec.address(name).unwrap_or_default().to_string();
    let free = crate::poll::until(GONE_TIMEOUT, POLL, || {
        std::net::TcpListener::bind(address.as_str())
            .is_ok()
            .then_some(())
    });
    if free.is_none() {
        return Err(ToolError::AddressStillInUse { address, name });
    }
    Ok(())
}
