//! The order service: one replica of the replicated order log, on the openraft engine.
//!
//! The replicas elect a leader by votes and terms. Only the leader takes orders: it asks the
//! catalog to buy (keyed, so a retry never buys twice) and commits the outcome, which numbers the
//! order when it is applied; it also places the orders of buys whose leader died first. An order is acknowledged once its outcome is
//! committed, that is durable on a majority. See `docs/replication.md`.
//!
//! Layout: [`types`] (commands and the engine's types), [`book`] (the state every replica derives),
//! [`machine`] (the book as the engine's state machine, with `orders-N.csv` and its snapshot; the
//! log and peer RPC every group shares are in [`crate::raft`]), `placer` (the leader's order
//! flow), `routes` (HTTP).

pub mod book;
mod buyer;
#[cfg(test)]
mod cluster_tests;
pub mod machine;
pub mod orders_file;
mod placer;
mod proposer;
mod routes;
#[cfg(test)]
mod storage_tests;
pub mod types;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::{BasicNode, ServerState};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::cluster_file::ClusterFile;
use crate::config::ReplicaAddr;
use crate::error::{Error, Result};
use crate::peer::PeerClient;
use crate::secret::Secret;
use crate::services::OrderOptions;
use crate::tasks::TaskGuard;
use crate::timeouts;
use crate::wire::{Data, ReplicaHealth, Replicated, Role};
use machine::OrderStore;
use types::{NodeId, Raft, TypeConfig};

/// Name of replica `id`'s engine log.
pub fn log_file_name(id: u32) -> String {
    format!("raft-{id}.log")
}

/// Name of replica `id`'s orders file.
pub fn orders_file_name(id: u32) -> String {
    orders_file::file_name(id)
}

/// A cheap-to-clone handle to a running replica.
#[derive(Clone)]
pub struct Replica {
    shared: Arc<Shared>,
}

struct Shared {
    id: u32,
    raft: Raft,
    orders: OrderStore,
    /// Every replica, for the bootstrap.
    members: BTreeMap<NodeId, BasicNode>,
    /// This replica's rank by id, 0 for the highest: it decides how soon it stands for election.
    rank: usize,
    secret: Secret,
    buyer: buyer::Buyer,
    /// The buyer's batching task, taken and spawned by [`Replica::run`].
    batcher: Mutex<Option<buyer::Batcher>>,
    proposer: proposer::Proposer,
    /// The proposer's gathering task, taken and spawned by [`Replica::run`].
    gatherer: Mutex<Option<proposer::Gatherer>>,
    /// Idempotency keys being placed by this replica right now, and a bell rung when one ends.
    claims: Mutex<HashSet<String>>,
    claim_done: Notify,
    /// The term in which this replica, as leader, has applied everything earlier leaders
    /// committed; until then it must not read the book to decide an order.
    caught_up_term: AtomicU64,
}

impl Replica {
    /// Opens replica `config.id`'s log and state machine and starts its engine.
    /// `secret` is required of callers and presented to peers and the catalog.
    pub async fn open(
        config: &OrderOptions,
        cluster: &ClusterFile,
        secret: Secret,
    ) -> Result<Self> {
        crate::storage::ensure_dir(&config.data_dir)?;
        let replicas = cluster.replicas();
        let ids: Vec<u32> = replicas.iter().map(|r| r.id).collect();
        if !ids.contains(&config.id) {
            return Err(Error::Usage(format!(
                "replica {} is not among the cluster's replicas ({})",
                config.id,
                ids.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let header_read = crate::config::defaults::HEADER_READ_TIMEOUT.get();
        timeouts::check(replicas.len(), timeouts::FAILOVER, header_read).map_err(Error::Cluster)?;
        let log_path = config.data_dir.join(log_file_name(config.id));
        refuse_a_lost_log(config, &log_path)?;
        let client = PeerClient::for_services(&secret);
        if !log_path.exists() {
            refuse_if_wiped(config, &replicas, &client).await?;
        }
        let log = crate::raft::LogStore::<TypeConfig>::open(&log_path)?;
        let (machine, orders) = machine::open(&config.data_dir, config.id)?;
        let rank = ids.iter().filter(|&&other| other > config.id).count();
        let raft_config = raft_config(rank, ids.len())?;
        let raft = Raft::new(
            NodeId::from(config.id),
            Arc::new(raft_config),
            crate::raft::Network::new(client.clone(), &replicas),
            log,
            machine,
        )
        .await
        .map_err(|e| Error::Cluster(format!("replica {} cannot start: {e}", config.id)))?;
        tracing::info!(
            "replica {} opened with {} orders",
            config.id,
            orders.read(|b| b.len())
        );
        let (buyer, batcher) = buyer::buyer(&cluster.catalog_url(), client);
        let (proposer, gatherer) = proposer::proposer(raft.clone(), config.id);
        Ok(Replica {
            shared: Arc::new(Shared {
                id: config.id,
                raft,
                orders,
                members: replicas
                    .iter()
                    .map(|r| (NodeId::from(r.id), BasicNode::new(&r.url)))
                    .collect(),
                rank,
                secret,
                buyer,
                batcher: Mutex::new(Some(batcher)),
                proposer,
                gatherer: Mutex::new(Some(gatherer)),
                claims: Mutex::new(HashSet::new()),
                claim_done: Notify::new(),
                caught_up_term: AtomicU64::new(0),
            }),
        })
    }

    /// Serves on `listener` until `shutdown`, then stops the engine. Returns an error, at once,
    /// if the engine stops by itself (a disk that failed, a bug): a replica without its engine
    /// must not go on answering as if it were one.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let mut tasks = TaskGuard::default();
        if let Some(batcher) = self
            .shared
            .batcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            tasks.spawn(batcher.run());
        }
        if let Some(gatherer) = self
            .shared
            .gatherer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            tasks.spawn(gatherer.run());
        }
        tasks.spawn(self.clone().bootstrap());
        tasks.spawn(self.clone().place_orphans());
        let engine_stopped = tokio::select! {
            _ = crate::http::serve(listener, self.clone(), crate::config::defaults::HEADER_READ_TIMEOUT.get(), shutdown) => false,
            _ = self.engine_stopped() => true,
        };
        drop(tasks);
        if engine_stopped {
            return Err(Error::Cluster(format!(
                "replica {}'s engine stopped; see the lines above for why",
                self.id()
            )));
        }
        if let Err(e) = self.shared.raft.shutdown().await {
            tracing::warn!("the engine did not stop cleanly: {e}");
        }
        Ok(())
    }

    /// Returns once the engine has stopped running.
    async fn engine_stopped(&self) {
        let mut metrics = self.shared.raft.metrics();
        loop {
            if metrics.borrow_and_update().running_state.is_err() {
                return;
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    pub fn id(&self) -> u32 {
        self.shared.id
    }

    /// Makes the cluster exist: the first time a replica starts, it names every replica as a
    /// member, which also makes it stand for election. The highest id does so at once and the
    /// others later, each rank a step behind, so the highest id that is up leads first. The
    /// same members on every replica make this safe from any of them.
    async fn bootstrap(self) {
        let raft = &self.shared.raft;
        tokio::time::sleep(timeouts::ELECTION_STEP * 3 * self.shared.rank as u32).await;
        loop {
            match raft.is_initialized().await {
                Ok(true) | Err(_) => return,
                Ok(false) => {}
            }
            match raft.initialize(self.shared.members.clone()).await {
                Ok(()) => {
                    tracing::info!("replica {} started the cluster", self.id());
                    return;
                }
                Err(e) => tracing::debug!("initialize: {e}"),
            }
            tokio::time::sleep(timeouts::ELECTION_STEP).await;
        }
    }

    /// Health and role as the engine sees them; `len` counts the orders applied here, all of
    /// which are committed, so durable on a majority.
    pub fn health(&self) -> ReplicaHealth {
        let metrics = self.shared.raft.metrics().borrow().clone();
        let role = match metrics.state {
            ServerState::Leader => Role::Leader,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            ServerState::Learner => Role::Learner,
            ServerState::Shutdown => Role::Stopped,
        };
        let len = self.shared.orders.read(|b| b.len());
        ReplicaHealth {
            id: self.id(),
            role,
            leader_id: metrics.current_leader.and_then(|l| u32::try_from(l).ok()),
            term: metrics.current_term,
            ready: metrics.running_state.is_ok() && metrics.current_leader.is_some(),
            len,
            log_index: metrics.last_log_index,
            applied_index: metrics.last_applied.map(|l| l.index),
            replicated: metrics
                .replication
                .iter()
                .flatten()
                .filter_map(|(id, matched)| {
                    Some(Replicated {
                        id: u32::try_from(*id).ok()?,
                        index: matched.map(|m| m.index),
                    })
                })
                .collect(),
        }
    }

    /// Waits until no other request on this replica is placing an order with `key`, then
    /// claims it.
    async fn claim(&self, key: &str) -> KeyClaim {
        loop {
            let done = self.shared.claim_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if let Some(claim) = self.try_claim(key) {
                return claim;
            }
            done.await;
        }
    }

    fn try_claim(&self, key: &str) -> Option<KeyClaim> {
        self.shared
            .claims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string())
            .then(|| KeyClaim {
                replica: self.clone(),
                key: key.to_string(),
            })
    }

    fn caught_up_in(&self, term: u64) -> bool {
        self.shared.caught_up_term.load(Ordering::SeqCst) == term
    }
}

/// A replica whose log file is gone but whose orders file holds orders has lost its log (or
/// was made by a storectl from before the engine): rejoining empty would hide that. Refuse.
fn refuse_a_lost_log(config: &OrderOptions, log_path: &std::path::Path) -> Result<()> {
    let orders_path = config.data_dir.join(orders_file_name(config.id));
    if log_path.exists() || !orders_path.exists() {
        return Ok(());
    }
    let orders = orders_file::read_entries(&orders_path)?;
    if orders.is_empty() {
        return Ok(());
    }
    Err(Error::Cluster(format!(
        "{} holds {} orders but {} is missing: this replica's log was lost or was written by an \
         older storectl; start a new cluster in an empty state directory",
        orders_path.display(),
        orders.len(),
        log_path.display()
    )))
}

/// A replica that starts with no log while a leader holds a copy of its entries was wiped: its
/// acknowledged entries are gone, and the engine would treat a log that went backwards as a bug
/// (the leader stops). Refuse, and say how to recover. (A new cluster's leader knows nothing of
/// a replica it has never reached, so a first start is never refused.)
async fn refuse_if_wiped(
    config: &OrderOptions,
    replicas: &[ReplicaAddr],
    client: &PeerClient,
) -> Result<()> {
    let asks = replicas
        .iter()
        .filter(|r| r.id != config.id)
        .map(|r| async move {
            let url = format!("{}/health", r.url);
            client
                .get_with_timeout::<Data<ReplicaHealth>>(&url, timeouts::HEALTH_CALL)
                .await
                .ok()
                .map(|d| d.data)
        });
    for health in futures_util::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
    {
        let copy = health
            .replicated
            .iter()
            .find(|r| r.id == config.id)
            .and_then(|r| r.index);
        if let (Role::Leader, Some(index)) = (health.role, copy) {
            return Err(Error::Cluster(format!(
                "replica {} has no log in {}, but the leader (replica {}) holds a copy of its \
                 entries up to index {index}: this replica's data was lost. Restore its \
                 directory from a backup, or stop the cluster and start a new one",
                config.id,
                config.data_dir.display(),
                health.id
            )));
        }
    }
    Ok(())
}

/// The engine's settings for the replica of rank `rank` (0 for the highest id) of `replicas`.
fn raft_config(rank: usize, replicas: usize) -> Result<openraft::Config> {
    let (election_min, election_max) = timeouts::election_timeout(rank, replicas);
    openraft::Config {
        cluster_name: "storectl".into(),
        heartbeat_interval: timeouts::HEARTBEAT.as_millis() as u64,
        election_timeout_min: election_min.as_millis() as u64,
        election_timeout_max: election_max.as_millis() as u64,
        install_snapshot_timeout: timeouts::INSTALL_SNAPSHOT.as_millis() as u64,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(20_000),
        max_in_snapshot_log_to_keep: 2_000,
        // Chunks travel as JSON arrays of numbers, up to four bytes a byte: this keeps them far
        // under the peer body limit.
        snapshot_max_chunk_size: (crate::http::MAX_PEER_BODY_BYTES / 8) as u64,
        ..Default::default()
    }
    .validate()
    .map_err(|e| Error::Cluster(format!("bad engine settings: {e}")))
}

/// An idempotency key being placed; released when dropped.
struct KeyClaim {
    replica: Replica,
    key: String,
}

impl Drop for KeyClaim {
    fn drop(&mut self) {
        let shared = &self.replica.shared;
        shared
            .claims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
        shared.claim_done.notify_waiters();
    }
}
