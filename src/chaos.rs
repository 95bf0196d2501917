//! `storectl chaos`: replicas killed with SIGKILL under client load, one at a time, then a check
//! that clients saw no error and that nothing was lost, duplicated or left diverged.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::client::{self, ClientConfig};
use crate::cluster::{self, Signal, StateDir};
use crate::config::REPLICA_IDS;
use crate::error::{Error, Result};
use crate::verify;

#[derive(Debug, Clone)]
pub struct ChaosOptions {
    pub clients: usize,
    pub p: f64,
    pub rounds: usize,
    /// Pause between one replica's return and the next kill.
    pub interval: Duration,
    /// How long a killed replica stays down.
    pub down_for: Duration,
    /// Share of kills aimed at the leader.
    pub leader_share: f64,
    pub seed: u64,
}

/// What one kill did.
#[derive(Debug, Clone, Serialize)]
pub struct Kill {
    pub round: usize,
    pub replica: String,
    pub was_leader: bool,
    /// How long it took from its restart until it had caught up.
    pub catch_up_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    pub rounds: usize,
    pub leader_kills: usize,
    pub kills: Vec<Kill>,
    pub requests: u64,
    /// Replies a client should never see: 5xx, refused connections, malformed bodies.
    pub client_errors: u64,
    pub orders_acknowledged: u64,
    /// Acknowledged orders that a final query did not find as placed.
    pub orders_lost: u64,
    /// Idempotency keys that appear more than once in the order log.
    pub orders_duplicated: u64,
    pub files_identical: bool,
    pub stock_conserved: bool,
    pub client: client::Report,
    pub difference: Option<String>,
    pub stock: String,
}

impl ChaosReport {
    pub fn ok(&self) -> bool {
        self.client_errors == 0
            && self.orders_lost == 0
            && self.orders_duplicated == 0
            && self.files_identical
            && self.stock_conserved
    }
}

/// Runs the rounds against the running cluster in `state`; `progress` hears of each step.
pub fn run(
    state: &StateDir,
    options: &ChaosOptions,
    exe: &Path,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<ChaosReport> {
    let spec = state.running()?;
    let stop = Arc::new(AtomicBool::new(false));
    let config = ClientConfig {
        frontend: spec.frontend_url(),
        sessions: options.clients,
        iterations: usize::MAX,
        p: options.p,
        seed: options.seed,
        products: client::catalog_products(),
        stop: Some(stop.clone()),
    };
    let (kills, report) = std::thread::scope(|scope| {
        let clients = scope.spawn(|| client::run(&config, None));
        let kills = kill_rounds(state, options, exe, progress);
        stop.store(true, Ordering::Relaxed);
        progress("clients finishing and checking their orders");
        (kills, clients.join().unwrap_or_default())
    });
    let kills = kills?;

    progress("waiting for the replicas to converge");
    let deadline = Instant::now() + Duration::from_secs(30);
    let comparison = loop {
        let comparison = verify::compare(&state.orders_paths())?;
        if comparison.identical() || Instant::now() > deadline {
            break comparison;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stock = cluster::check_stock(state)?;
    Ok(ChaosReport {
        rounds: options.rounds,
        leader_kills: kills.iter().filter(|k| k.was_leader).count(),
        requests: report.requests,
        client_errors: report.errors - report.mismatches.min(report.errors),
        orders_acknowledged: report.orders,
        orders_lost: report.mismatches,
        orders_duplicated: duplicated_keys(&state.orders_paths()[0])?,
        files_identical: comparison.identical(),
        stock_conserved: stock.conserved(),
        difference: comparison.difference.map(|d| d.to_string()),
        stock: stock.to_string(),
        kills,
        client: report,
    })
}

fn kill_rounds(
    state: &StateDir,
    options: &ChaosOptions,
    exe: &Path,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<Kill>> {
    let mut rng = StdRng::seed_from_u64(options.seed ^ 0x5eed);
    let mut kills = Vec::new();
    for round in 1..=options.rounds {
        std::thread::sleep(options.interval);
        let spec = state.load()?;
        let leader = cluster::find_leader(&spec).map(|id| format!("order-{id}"));
        let aim_at_leader = rng.random_bool(options.leader_share.clamp(0.0, 1.0));
        let followers: Vec<String> = REPLICA_IDS
            .iter()
            .map(|id| format!("order-{id}"))
            .filter(|name| Some(name) != leader.as_ref())
            .collect();
        let target = match (&leader, aim_at_leader) {
            (Some(leader), true) => leader.clone(),
            _ => followers[rng.random_range(0..followers.len())].clone(),
        };
        let was_leader = Some(&target) == leader.as_ref();
        progress(&format!(
            "round {round}/{}: SIGKILL {target}{}",
            options.rounds,
            if was_leader { " (the leader)" } else { "" }
        ));
        cluster::kill(state, &target, Signal::Kill)?;
        std::thread::sleep(options.down_for);
        progress(&format!(
            "round {round}/{}: restarting {target}",
            options.rounds
        ));
        cluster::restart(state, &target, exe)?;
        let back = Instant::now();
        wait_ready(state, &target, Duration::from_secs(30))?;
        kills.push(Kill {
            round,
            replica: target,
            was_leader,
            catch_up_ms: back.elapsed().as_millis() as u64,
        });
    }
    Ok(kills)
}

/// Waits until `replica` reports that it has caught up, so that the next kill never leaves two
/// replicas behind at once.
fn wait_ready(state: &StateDir, replica: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let ready = cluster::status(state)?
            .iter()
            .any(|s| s.name == replica && s.ready == Some(true));
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Cluster(format!(
                "{replica} did not catch up within {}s; see its log in {}",
                timeout.as_secs(),
                state.root().join("logs").display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Keys that appear more than once in an orders file, read leniently so that a duplicate is
/// counted rather than refused.
fn duplicated_keys(path: &Path) -> Result<u64> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| Error::Remote(e.to_string()))?;
    let mut seen = HashSet::new();
    let mut duplicated = 0;
    for record in reader.records() {
        let record = record.map_err(|e| Error::Corrupt {
            path: path.to_path_buf(),
            line: e.position().map_or(0, |p| p.line()),
            message: e.to_string(),
        })?;
        if let Some(key) = record.get(4) {
            if !seen.insert(key.to_string()) {
                duplicated += 1;
            }
        }
    }
    Ok(duplicated)
}
