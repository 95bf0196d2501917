//! `storectl chaos`: failures injected into a replica group (the order replicas, or the
//! catalog) under client load, round after round, then a check that every acknowledged order is
//! still at its number with its own key, that nothing was duplicated or left diverged, and that
//! stock was conserved.
//!
//! The clients retry a failed order with the same idempotency key, as a careful client would.
//! While a majority of the group is up ([`Fault::Kill`], [`Fault::Stop`], [`Fault::SlowDisk`] on
//! one of three) they must see no error; while it is not ([`Fault::Two`], [`Fault::Power`], or
//! any fault of a group of one) errors are expected, and only what was acknowledged must
//! survive.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::client::{self, ClientConfig};
use crate::cluster::{self, Signal, StateDir, Target};
use crate::error::Error;
use crate::progress::Progress;
use crate::services::ServiceName;
use crate::tool_error::{Result, ToolError};
use crate::verify;

/// One kind of failure a round injects. The doc comments are `--fault`'s help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL one replica (the leader at --leader-share), restart it after --down-for
    Kill,
    /// SIGSTOP one replica for a random time up to twice --down-for, then SIGCONT
    Stop,
    /// Pause one replica so it lags, SIGKILL the other two, resume it, restart the two
    Two,
    /// SIGKILL every replica of the group at once, restart them one by one
    Power,
    /// Every fsync of one replica takes 2 s for --down-for (starts its own cluster with fault
    /// hooks, or needs `up --fault-hooks`)
    SlowDisk,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::Kill,
        Fault::Stop,
        Fault::Two,
        Fault::Power,
        Fault::SlowDisk,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Stop => "stop",
            Fault::Two => "two",
            Fault::Power => "power",
            Fault::SlowDisk => "slow-disk",
        }
    }

    /// Whether a majority of a group of `replicas` stays up and connected through this fault.
    /// A group of one has no majority to keep: any fault of its replica is the group's.
    pub fn keeps_majority(self, replicas: usize) -> bool {
        let down = match self {
            Fault::Kill | Fault::Stop | Fault::SlowDisk => 1,
            Fault::Two => 2,
            Fault::Power => return false,
        };
        replicas > 2 * down
    }
}

/// The replica group a round's fault is aimed at. The doc comments are `--group`'s help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum GroupChoice {
    /// The order replicas
    Order,
    /// The catalog replicas
    Catalog,
    /// Either, at random each round
    Any,
}

/// One replica group as chaos aims at it: its services, and which of them leads.
struct Group {
    replicas: Vec<ServiceName>,
    leader: Option<ServiceName>,
}

impl Group {
    /// The group `choice` names (for `Any`, one picked with `rng`), as it stands now.
    fn pick(choice: GroupChoice, state: &StateDir, rng: &mut StdRng) -> Result<Group> {
        let catalog = match choice {
            GroupChoice::Order => false,
            GroupChoice::Catalog => true,
            GroupChoice::Any => rng.random_bool(0.5),
        };
        let spec = state.load()?;
        if catalog {
            return Ok(Group {
                replicas: spec
                    .topology
                    .catalog
                    .iter()
                    .map(|e| ServiceName::Catalog(e.id))
                    .collect(),
                leader: cluster::find_catalog_leader(&spec.topology).map(ServiceName::Catalog),
            });
        }
        Ok(Group {
            replicas: spec
                .topology
                .order
                .iter()
                .map(|e| ServiceName::Order(e.id))
                .collect(),
            leader: cluster::find_leader(&spec.topology).map(ServiceName::Order),
        })
    }

    /// The replica to hit: the leader when `at_leader` (and there is one), else a follower at
    /// random; a group of one has only its replica.
    fn aim(&self, at_leader: bool, rng: &mut StdRng) -> ServiceName {
        let followers: Vec<ServiceName> = self
            .replicas
            .iter()
            .copied()
            .filter(|&name| Some(name) != self.leader)
            .collect();
        match self.leader {
            Some(leader) if at_leader || followers.is_empty() => leader,
            _ => followers[rng.random_range(0..followers.len())],
        }
    }
}

/// Units of each toy in a cluster chaos starts for itself: more than its clients can buy in
/// any run, so that no fault finds the store sold out.
pub const OWN_CLUSTER_STOCK: u64 = 1_000_000;

#[derive(Debug, Clone)]
pub struct ChaosOptions {
    pub clients: usize,
    pub p: f64,
    pub rounds: usize,
    /// Pause between one round's recovery and the next fault.
    pub interval: Duration,
    /// How long a fault lasts.
    pub down_for: Duration,
    /// Share of single-replica faults aimed at the leader.
    pub leader_share: f64,
    pub seed: u64,
    /// The faults to choose from, one at random each round.
    pub faults: Vec<Fault>,
    /// The replica group the faults are aimed at.
    pub group: GroupChoice,
}

/// What one round did.
#[derive(Debug, Clone, Serialize)]
pub struct Kill {
    pub round: usize,
    pub fault: Fault,
    /// The replica the fault hit first (for `two`, the one left lagging).
    pub replica: ServiceName,
    /// Whether its group kept a majority up through the fault, so that a client error is a
    /// failure.
    pub majority_kept: bool,
    /// Whether the fault hit the group's leader: `replica` for a single-replica fault, one of
    /// the two killed for `two`, and for `power` whenever there was a leader.
    pub was_leader: bool,
    /// How long the fault was active: from its injection until it was lifted (a restart
    /// begun, SIGCONT, the disk fast again).
    pub active_ms: u64,
    /// How long it took from the end of the fault until every replica had caught up.
    pub catch_up_ms: u64,
    /// Orders in flight at some instant while the fault was active, and how many of them the
    /// store acknowledged (retries with the same key included): a round whose fault met no
    /// order tested nothing.
    pub orders_in_flight: u64,
    pub orders_acknowledged: u64,
    /// The slowest of those acknowledged orders, in microseconds.
    pub slowest_order_us: u64,
    /// For `power` on a lossy disk (`up --lossy-disk`): the bytes its replicas had written
    /// but not fsynced, which the cut took back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsynced_bytes_lost: Option<u64>,
    #[serde(skip)]
    active: (Instant, Instant),
}

impl Kill {
    /// Counts the orders of `spans` that were in flight while this round's fault was active.
    fn met(&mut self, spans: &[client::OrderSpan]) {
        let (from, until) = self.active;
        let met: Vec<&client::OrderSpan> =
            spans.iter().filter(|s| s.overlaps(from, until)).collect();
        self.orders_in_flight = met.len() as u64;
        let acknowledged = met.iter().filter(|s| s.acknowledged);
        self.orders_acknowledged = acknowledged.clone().count() as u64;
        self.slowest_order_us = acknowledged
            .map(|s| s.took().as_micros() as u64)
            .max()
            .unwrap_or(0);
    }

    /// Whether the fault met an order the store acknowledged.
    pub fn tested(&self) -> bool {
        self.orders_acknowledged > 0
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    pub rounds: usize,
    pub leader_kills: usize,
    pub kills: Vec<Kill>,
    pub requests: u64,
    /// Replies a client should never see: 5xx, refused connections, malformed bodies.
    pub client_errors: u64,
    /// Whether every round kept a majority up, so that any client error is a failure.
    pub majority_kept: bool,
    pub orders_acknowledged: u64,
    /// Acknowledged orders that are not at their number with their own key in the longest
    /// replica file, or that a final query did not find as placed.
    pub orders_lost: u64,
    /// Idempotency keys that appear more than once in the order log.
    pub orders_duplicated: u64,
    pub files_identical: bool,
    pub stock_conserved: bool,
    /// The slowest acknowledged order, retries included, in microseconds.
    pub slowest_order_us: u64,
    /// When the clients' queries first found a toy sold out, in seconds from the start: after
    /// that, fewer orders met the faults.
    pub sold_out_after_s: Option<f64>,
    pub client: client::Report,
    pub difference: Option<String>,
    pub stock: String,
}

impl ChaosReport {
    pub fn ok(&self) -> bool {
        self.problem().is_none()
    }

    /// The gravest problem the run found, in one line that says what to do; `None` when every
    /// check passed.
    pub fn problem(&self) -> Option<String> {
        let keep = "keep the state directory and its logs: this is a bug";
        let untested = self.kills.iter().filter(|k| !k.tested()).count();
        Some(if self.orders_lost > 0 {
            format!(
                "{} acknowledged orders were lost or renumbered; {keep}",
                self.orders_lost
            )
        } else if self.orders_duplicated > 0 {
            format!(
                "{} keys have more than one order; {keep}",
                self.orders_duplicated
            )
        } else if !self.files_identical {
            format!("the replicas' order files differ; {keep}")
        } else if !self.stock_conserved {
            format!("stock was not conserved; {keep}")
        } else if self.client_errors > 0 && self.majority_kept {
            format!(
                "clients saw {} errors while a majority of replicas was up: see the samples \
                 and the services' logs",
                self.client_errors
            )
        } else if untested > 0 {
            format!(
                "{untested} of {} faults met no order, so they tested nothing: give a new cluster \
                 more stock (storectl up --state-dir DIR --initial-stock {OWN_CLUSTER_STOCK}), \
                 or run more clients",
                self.kills.len()
            )
        } else {
            return None;
        })
    }
}

/// Runs the rounds against the running cluster in `state`; `progress` hears of each step.
pub fn run(
    state: &StateDir,
    options: &ChaosOptions,
    exe: &Path,
    progress: &dyn Progress,
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
        retry_for: CLIENT_RETRY,
    };
    refuse_slow_disk_without_hooks(state, options)?;
    let (kills, report) = rounds_under_load(state, options, exe, progress, &config, &stop)?;

    progress.message("waiting for the replicas to converge");
    wait_for_identical_files(state)?;
    // A buy whose leader died before its order was logged is placed by the next leader once
    // it is old enough (timeouts::UNCONFIRMED_AGE): give that a few seconds.
    progress.message("checking that stock was conserved");
    let stock = wait_for_conserved_stock(state)?;
    final_report(state, options, kills, report, stock)
}

/// Refuses `--fault slow-disk` against a cluster that was started without fault hooks.
fn refuse_slow_disk_without_hooks(state: &StateDir, options: &ChaosOptions) -> Result<()> {
    if options.faults.contains(&Fault::SlowDisk) && state.fault_dir(ServiceName::Order(1)).is_none()
    {
        return Err(ToolError::usage(format!(
            "--fault slow-disk needs a cluster started with `storectl up --fault-hooks`; the one \
             in {} was not (or let chaos start its own: run it with no cluster up)",
            state.root().display()
        )));
    }
    Ok(())
}

/// Runs the fault rounds while the clients of `config` order, then stops the clients with
/// `stop`; each round learns which of the clients' orders it met.
fn rounds_under_load(
    state: &StateDir,
    options: &ChaosOptions,
    exe: &Path,
    progress: &dyn Progress,
    config: &ClientConfig,
    stop: &AtomicBool,
) -> Result<(Vec<Kill>, client::Report)> {
    let (kills, report) = std::thread::scope(|scope| {
        let clients = scope.spawn(|| client::run(config, &crate::progress::Quiet));
        let kills = kill_rounds(state, options, exe, progress);
        stop.store(true, Ordering::Relaxed);
        progress.message("clients finishing and checking their orders");
        (kills, clients.join().unwrap_or_default())
    });
    let mut kills = kills?;
    for kill in &mut kills {
        kill.met(&report.order_spans);
    }
    Ok((kills, report))
}

/// Waits up to [`CATCH_UP`] for the replicas' order files to be identical.
fn wait_for_identical_files(state: &StateDir) -> Result<()> {
    crate::poll::try_until(CATCH_UP, Duration::from_millis(100), || {
        Ok::<_, Error>(
            verify::compare(&state.orders_paths())?
                .identical()
                .then_some(()),
        )
    })?;
    Ok(())
}

/// Checks the stock until it is conserved, for a few times the age at which a buy's missing
/// order is placed; returns the last check.
fn wait_for_conserved_stock(state: &StateDir) -> Result<crate::conservation::StockCheck> {
    let mut stock = None;
    crate::poll::try_until(
        crate::timeouts::UNCONFIRMED_AGE * 3,
        Duration::from_millis(200),
        || {
            let check = crate::cluster::check_stock(state)?;
            let conserved = check.ok();
            stock = Some(check);
            Ok::<_, ToolError>(conserved.then_some(()))
        },
    )?;
    stock.ok_or(ToolError::StockNeverChecked)
}

/// The run's report: the rounds, what the clients saw, and the acknowledged orders checked
/// against the longest replica file.
fn final_report(
    state: &StateDir,
    options: &ChaosOptions,
    kills: Vec<Kill>,
    report: client::Report,
    stock: crate::conservation::StockCheck,
) -> Result<ChaosReport> {
    let comparison = verify::compare(&state.orders_paths())?;
    let longest = comparison
        .longest()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| state.orders_paths()[0].clone());
    let misplaced = misplaced_orders(&longest, &report.acknowledged)?;
    Ok(ChaosReport {
        rounds: options.rounds,
        leader_kills: kills.iter().filter(|k| k.was_leader).count(),
        requests: report.requests,
        client_errors: report.errors - report.mismatches.min(report.errors),
        majority_kept: kills.iter().all(|k| k.majority_kept),
        orders_acknowledged: report.orders,
        orders_lost: report.mismatches.max(misplaced),
        orders_duplicated: duplicated_keys(&longest)?,
        slowest_order_us: report.order.max_us,
        sold_out_after_s: report.sold_out_after_s,
        files_identical: comparison.identical() && stock.catalogs_identical(),
        stock_conserved: stock.conserved(),
        difference: comparison.difference.map(|d| d.to_string()),
        stock: stock.to_string(),
        kills,
        client: report,
    })
}

/// How long a client retries a failed order with the same key: longer than any fault lasts.
const CLIENT_RETRY: Duration = Duration::from_secs(30);
/// How long a replica may take to catch up after a fault.
const CATCH_UP: Duration = Duration::from_secs(30);

fn kill_rounds(
    state: &StateDir,
    options: &ChaosOptions,
    exe: &Path,
    progress: &dyn Progress,
) -> Result<Vec<Kill>> {
    let mut rng = StdRng::seed_from_u64(options.seed ^ 0x5eed);
    let mut kills = Vec::new();
    for round in 1..=options.rounds {
        std::thread::sleep(options.interval);
        let fault = options.faults[rng.random_range(0..options.faults.len())];
        let group = Group::pick(options.group, state, &mut rng)?;
        let aim_at_leader = rng.random_bool(options.leader_share.clamp(0.0, 1.0));
        let target = group.aim(aim_at_leader, &mut rng);
        let replicas = group.replicas;
        // A group of one has no other replica to kill: `two` takes it all down, as `power`.
        let fault = match fault {
            Fault::Two if replicas.len() < 3 => Fault::Power,
            fault => fault,
        };
        let was_leader = match fault {
            Fault::Two => group.leader.is_some_and(|leader| leader != target),
            Fault::Power => group.leader.is_some(),
            Fault::Kill | Fault::Stop | Fault::SlowDisk => Some(target) == group.leader,
        };
        let say =
            |what: String| progress.message(&format!("round {round}/{}: {what}", options.rounds));
        let injector = Injector {
            state,
            options,
            exe,
            say: &say,
            leader_note: if Some(target) == group.leader {
                " (the leader)"
            } else {
                ""
            },
        };
        let injected = Instant::now();
        let (lifted, unsynced_bytes_lost) = injector.inject(fault, target, &replicas, &mut rng)?;
        for &replica in &replicas {
            cluster::wait_caught_up(state, replica, CATCH_UP)?;
        }
        kills.push(Kill {
            round,
            fault,
            replica: target,
            majority_kept: fault.keeps_majority(replicas.len()),
            was_leader,
            active_ms: lifted.duration_since(injected).as_millis() as u64,
            catch_up_ms: lifted.elapsed().as_millis() as u64,
            orders_in_flight: 0,
            orders_acknowledged: 0,
            slowest_order_us: 0,
            unsynced_bytes_lost,
            active: (injected, lifted),
        });
    }
    Ok(kills)
}

/// Injects one round's fault and undoes it, saying what it does.
struct Injector<'a> {
    state: &'a StateDir,
    options: &'a ChaosOptions,
    exe: &'a Path,
    say: &'a dyn Fn(String),
    /// " (the leader)" when the target leads its group.
    leader_note: &'static str,
}

impl Injector<'_> {
    /// Injects `fault` at `target` (of the group `replicas`) and undoes it. Returns when the
    /// fault began to be undone (a restart begun, SIGCONT, the disk fast again), and the
    /// unsynced bytes a power cut dropped.
    fn inject(
        &self,
        fault: Fault,
        target: ServiceName,
        replicas: &[ServiceName],
        rng: &mut StdRng,
    ) -> Result<(Instant, Option<u64>)> {
        let (say, note) = (self.say, self.leader_note);
        let down_for = self.options.down_for;
        match fault {
            Fault::Kill => {
                say(format!("SIGKILL {target}{note}"));
                self.kill(target, Signal::Kill)?;
                std::thread::sleep(down_for);
                let lifted = Instant::now();
                self.restart_all(vec![target], rng)?;
                Ok((lifted, None))
            }
            Fault::Stop => {
                let max = down_for.max(Duration::from_millis(100)) * 2;
                let paused = Duration::from_millis(rng.random_range(100..=max.as_millis() as u64));
                say(format!(
                    "SIGSTOP {target}{note} for {} ms",
                    paused.as_millis()
                ));
                self.kill(target, Signal::Stop)?;
                std::thread::sleep(paused);
                say(format!("SIGCONT {target}"));
                let lifted = Instant::now();
                self.kill(target, Signal::Cont)?;
                Ok((lifted, None))
            }
            Fault::Two => {
                let others: Vec<ServiceName> =
                    replicas.iter().copied().filter(|&r| r != target).collect();
                self.two_down(target, &others)?;
                std::thread::sleep(down_for);
                let lifted = Instant::now();
                self.restart_all(others, rng)?;
                Ok((lifted, None))
            }
            Fault::Power => {
                let lost = self.power_cut(replicas)?;
                std::thread::sleep(down_for);
                let lifted = Instant::now();
                self.restart_all(replicas.to_vec(), rng)?;
                Ok((lifted, lost))
            }
            Fault::SlowDisk => Ok((self.slow_disk(target)?, None)),
        }
    }

    fn kill(&self, name: ServiceName, signal: Signal) -> Result<()> {
        cluster::kill(self.state, Target::Service(name), signal).map(|_| ())
    }

    /// Restarts `down` together, started in an order the seed picks: a group that was down as
    /// a whole needs a majority back before any replica can lead.
    fn restart_all(&self, mut down: Vec<ServiceName>, rng: &mut StdRng) -> Result<()> {
        down.shuffle(rng);
        let names: Vec<String> = down.iter().map(|r| r.to_string()).collect();
        (self.say)(format!("restarting {}", names.join(", ")));
        cluster::restart_together(self.state, &down, self.exe)
    }

    /// Pauses `target` while `others` are SIGKILLed, so that none of them answers alone.
    fn two_down(&self, target: ServiceName, others: &[ServiceName]) -> Result<()> {
        let names: Vec<String> = others.iter().map(|r| r.to_string()).collect();
        (self.say)(format!(
            "SIGSTOP {target}, SIGKILL {}, SIGCONT {target}",
            names.join(" and ")
        ));
        self.kill(target, Signal::Stop)?;
        std::thread::sleep(Duration::from_millis(150));
        let killed: Result<Vec<_>> = others.iter().map(|&r| self.kill(r, Signal::Kill)).collect();
        self.kill(target, Signal::Cont)?;
        killed.map(|_| ())
    }

    /// SIGKILLs every replica of the group at once; on a lossy disk the power is cut for
    /// real too, and what was not fsynced is gone (the bytes lost are returned).
    fn power_cut(&self, replicas: &[ServiceName]) -> Result<Option<u64>> {
        (self.say)("SIGKILL every replica of the group at once".into());
        for &replica in replicas {
            self.kill(replica, Signal::Kill)?;
        }
        if !self.state.is_lossy() {
            return Ok(None);
        }
        let lost = cluster::lossy::cut(self.state, replicas)?;
        (self.say)(format!("power cut: {lost} unsynced bytes lost"));
        Ok(Some(lost))
    }

    /// Makes every fsync of `target` take 2 s for the fault's time; returns when it ended.
    fn slow_disk(&self, target: ServiceName) -> Result<Instant> {
        let dir = self.state.fault_dir(target).ok_or_else(|| {
            Error::Usage("--fault slow-disk needs fault hooks (`up --fault-hooks`)".into())
        })?;
        let armed = dir.join(crate::fault::SLOW_FSYNC);
        (self.say)(format!(
            "every fsync of {target}{} takes 2 s",
            self.leader_note
        ));
        std::fs::write(&armed, "2000").map_err(|e| Error::io(&armed, e))?;
        std::thread::sleep(self.options.down_for);
        (self.say)(format!("{target}'s disk is fast again"));
        let lifted = Instant::now();
        std::fs::remove_file(&armed).map_err(|e| Error::io(&armed, e))?;
        Ok(lifted)
    }
}

/// Acknowledged orders that are not in `path` at their number with their own key: lost,
/// renumbered or given to another client.
fn misplaced_orders(path: &Path, acknowledged: &[client::Acknowledged]) -> Result<u64> {
    let entries = crate::order::orders_file::read_entries(path)?;
    let at: HashMap<u64, &crate::wire::Entry> = entries.iter().map(|e| (e.number, e)).collect();
    Ok(acknowledged
        .iter()
        .filter(|a| {
            !at.get(&a.number)
                .is_some_and(|e| e.key == a.key && e.quantity == a.quantity && e.name == a.name)
        })
        .count() as u64)
}

/// Keys that appear more than once in an orders file, read leniently so that a duplicate is
/// counted rather than refused.
fn duplicated_keys(path: &Path) -> Result<u64> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        line: 0,
        message: e.to_string(),
    })?;
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
