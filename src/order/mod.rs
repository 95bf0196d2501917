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
#[cfg(test)]
mod protocol_tests;
mod routes;
#[cfg(test)]
mod storage_tests;
pub mod types;

use std::collections::BTreeMap;
use std::sync::Arc;

use openraft::BasicNode;
use tokio::net::TcpListener;

use crate::cluster_file::ClusterFile;
use crate::error::Error;
use crate::peer::PeerClient;
use crate::raft::start_error::{ReplicaError, Result};
use crate::secret::Secret;
use crate::services::OrderOptions;
use crate::timeouts;
use crate::transport::Transport;
use crate::wire::ReplicaHealth;
use machine::OrderStore;
use types::{NodeId, Raft, TypeConfig};

/// Name of replica `id`'s engine log.
pub fn log_file_name(id: u32) -> String {
    format!("raft-{id}.log")
}

/// Who replica `id`'s files belong to ([`crate::raft::identity`]).
pub fn identity_file_name(id: u32) -> String {
    format!("identity-{id}.json")
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
    /// Set while the log's disk is full ([`crate::raft::LogStore::disk_full`]).
    disk_full: Arc<std::sync::atomic::AtomicBool>,
    /// The log, as `GET /metrics` reads it: its committed index and its size.
    log: crate::raft::LogStore<TypeConfig>,
    orders: OrderStore,
    /// The catalog group, as the buyer calls it.
    catalog: Arc<crate::group_client::GroupClient>,
    /// The members a new group starts with, for one of its first members (which may make it).
    founding: Option<BTreeMap<NodeId, BasicNode>>,
    /// Drawn when this replica first started.
    incarnation: String,
    /// This replica's rank by id, 0 for the highest: it decides how soon it stands for election.
    rank: usize,
    secret: Secret,
    transport: Transport,
    /// The leader's order flow.
    placer: Arc<placer::Placer>,
}

/// A replica opened and not serving yet: its handle, and the tasks its buyer and proposer need,
/// which [`Opened::run`] spawns.
pub struct Opened {
    replica: Replica,
    batcher: buyer::Batcher,
    gatherer: crate::raft::proposer::Gatherer<TypeConfig>,
}

impl Replica {
    /// Opens replica `config.id`'s log and state machine and starts its engine.
    /// `secret` is required of callers and presented to peers and the catalog, over
    /// `transport`.
    pub async fn open(
        config: &OrderOptions,
        cluster: &ClusterFile,
        secret: Secret,
        transport: Transport,
    ) -> Result<Opened> {
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
            ))
            .into());
        }
        let header_read = crate::config::defaults::HEADER_READ_TIMEOUT.get();
        timeouts::check(replicas.len(), timeouts::FAILOVER, header_read)
            .map_err(ReplicaError::Settings)?;
        let log_path = config.data_dir.join(log_file_name(config.id));
        refuse_a_lost_log(config, &log_path)?;
        let client = PeerClient::for_services(&secret, transport.client.clone());
        let files = crate::raft::replica::EngineFiles {
            claim: crate::raft::identity::Claim {
                group: "order",
                id: config.id,
                cluster: cluster.token.as_deref(),
                identity_path: config.data_dir.join(identity_file_name(config.id)),
                log_path,
                mode: config.start,
            },
            snapshot: config.data_dir.join(machine::snapshot_file_name(config.id)),
            view: config.data_dir.join(orders_file::file_name(config.id)),
        };
        let name = format!("replica {}", config.id);
        let crate::raft::replica::Engine {
            raft,
            log,
            book: orders,
            identity,
            rank,
        } = crate::raft::replica::start_engine::<book::OrderBook>(
            &files, &replicas, &client, &name,
        )
        .await?;
        tracing::info!(
            "replica {} opened with {} orders",
            config.id,
            orders.read(|b| b.len())
        );
        let catalog = Arc::new(crate::group_client::GroupClient::new(
            "catalog",
            cluster.catalogs(),
            client,
        ));
        let (buyer, batcher) = buyer::buyer(catalog.clone());
        let (proposer, gatherer) = crate::raft::proposer::proposer(raft.clone(), config.id);
        let placer = placer::Placer::new(config.id, raft.clone(), orders.clone(), buyer, proposer);
        let replica = Replica {
            shared: Arc::new(Shared {
                id: config.id,
                raft,
                orders,
                catalog,
                founding: identity
                    .founder
                    .then(|| crate::raft::replica::members(&replicas)),
                incarnation: identity.incarnation,
                rank,
                secret,
                transport,
                placer: Arc::new(placer),
                disk_full: log.disk_full(),
                log,
            }),
        };
        Ok(Opened {
            replica,
            batcher,
            gatherer,
        })
    }

    pub fn id(&self) -> u32 {
        self.shared.id
    }

    /// Runs the replica's own tasks beside `tasks` and serves until `shutdown`.
    async fn serve(
        self,
        mut tasks: tokio::task::JoinSet<()>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let shared = &self.shared;
        let name = format!("order replica {}", self.id());
        let founding = shared.founding.clone();
        crate::raft::replica::spawn_group_tasks(
            &mut tasks,
            &shared.raft,
            founding,
            shared.rank,
            name,
        );
        tasks.spawn(
            self.shared
                .catalog
                .clone()
                .follow_members(timeouts::MEMBERSHIP_POLL),
        );
        tasks.spawn(self.shared.placer.clone().place_orphans());
        let name = format!("replica {}", self.id());
        crate::raft::replica::serve_while_engine_runs(
            &self.shared.raft,
            self.clone(),
            listener,
            self.shared.transport.server.clone(),
            tasks,
            shutdown,
            &name,
        )
        .await
    }

    /// Health and role as the engine sees them; `len` counts the orders applied here, all of
    /// which are committed, so durable on a majority.
    pub fn health(&self) -> ReplicaHealth {
        let len = self.shared.orders.read(|b| b.len());
        let mut health = crate::raft::replica::health(
            &self.shared.raft,
            self.id(),
            len,
            self.shared
                .disk_full
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        health.incarnation = Some(self.shared.incarnation.clone());
        health.tls_refused = self.shared.transport.refusals();
        health
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
    Err(ReplicaError::OrdersWithoutLog {
        orders_file: orders_path,
        orders: orders.len(),
        log: log_path.to_path_buf(),
    })
}

impl Opened {
    /// Serves on `listener` until `shutdown`, then stops the engine. Returns an error, at once,
    /// if the engine stops by itself (a disk that failed, a bug): a replica without its engine
    /// must not go on answering as if it were one.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let Opened {
            replica,
            batcher,
            gatherer,
        } = self;
        // Aborted when dropped: no timer or monitor outlives the service.
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(batcher.run());
        tasks.spawn(gatherer.run(|_, _| {}));
        replica.serve(tasks, listener, shutdown).await
    }
}
