//! The catalog service: one replica of the catalog group, on the openraft engine. The stock is
//! the group's replicated state ([`book`]): every buy, restock and confirmation is a command in
//! the group's log, applied by every replica, which keeps `catalog-N.csv` as its view.
//!
//! Only the leader answers: buys and confirmations from the order leader, product reads and
//! cache leases for the front ends, restocks on its own timer. A read is answered after a
//! leadership check that began after the read arrived (openraft's `ensure_linearizable`,
//! shared by the reads that arrive together), so it shows every committed change and none
//! that is not. A buy is answered once its entry is committed and its invalidations are in
//! every front end's cache, or that front end's lease has run out ([`leases`]). A new leader
//! takes over the front ends' leases with a reset, and answers no buy until every lease an
//! earlier leader granted has run out. See `docs/replication.md`.
//!
//! Layout: [`book`] (the state and its rules), [`seed`] (the stock a new group starts from),
//! [`leases`] (the front ends' cache leases), `leadership` (what this replica does while it
//! leads), `routes` (HTTP).

pub mod book;
mod leadership;
pub mod leases;
mod routes;
pub mod seed;

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::cluster_file::ClusterFile;
use crate::error::Error;
use crate::peer::PeerClient;
use crate::raft::proposer::{Gatherer, Proposer};
use crate::raft::start_error::Result;
use crate::raft::{NodeId, Store};
use crate::secret::Secret;
use crate::services::CatalogOptions;
use crate::transport::Transport;
use crate::wire::{CatalogHealth, Invalidation};
use book::{CatalogBook, CatalogGroup, CatalogReply, SeedRow};
use leadership::Leadership;

pub type CatalogRaft = openraft::Raft<CatalogGroup>;

/// Name of catalog replica `id`'s engine log.
pub fn log_file_name(id: u32) -> String {
    format!("catalog-raft-{id}.log")
}

/// Who catalog replica `id`'s files belong to ([`crate::raft::identity`]).
pub fn identity_file_name(id: u32) -> String {
    format!("catalog-identity-{id}.json")
}

/// Name of catalog replica `id`'s snapshot.
pub fn snapshot_file_name(id: u32) -> String {
    format!("catalog-snapshot-{id}.json")
}

/// Name of catalog replica `id`'s stock file: name, price, quantity, as it has applied them.
pub fn file_name(id: u32) -> String {
    format!("catalog-{id}.csv")
}

/// A cheap-to-clone handle to a running catalog replica.
#[derive(Clone)]
pub struct Catalog {
    shared: Arc<Shared>,
}

struct Shared {
    id: u32,
    raft: CatalogRaft,
    /// Set while the log's disk is full ([`crate::raft::LogStore::disk_full`]).
    disk_full: Arc<std::sync::atomic::AtomicBool>,
    /// Toys restocked by the restocks applied here since the replica started.
    restocked: std::sync::atomic::AtomicU64,
    /// The log, as `GET /metrics` reads it: its committed index and its size.
    log: crate::raft::LogStore<CatalogGroup>,
    book: Store<CatalogBook>,
    /// The members a new group starts with, for one of its first members (which may make it).
    founding: Option<std::collections::BTreeMap<NodeId, openraft::BasicNode>>,
    /// Drawn when this replica first started.
    incarnation: String,
    rank: usize,
    secret: Secret,
    transport: Transport,
    /// What a new group starts from, committed by its first leader.
    seed: Vec<SeedRow>,
    restock_interval: Duration,
    /// Every front end whose cache to invalidate: its id and base URL.
    frontends: Vec<(u32, String)>,
    client: PeerClient,
    proposer: Proposer<CatalogGroup>,
    /// When this process began to open the replica: any lease an earlier process of this
    /// replica granted has run out [`crate::timeouts::LEASE`] later.
    opened: Instant,
    /// This replica's leadership, while it leads: its term, since when, its leases.
    leadership: Mutex<Option<Arc<Leadership>>>,
    /// The term and beginning of the last leadership check that succeeded.
    last_check: tokio::sync::Mutex<Option<(u64, Instant)>>,
    /// Invalidations of committed entries, by log index, not yet pushed to the front ends.
    to_invalidate: Mutex<Vec<(u64, Vec<Invalidation>)>>,
    invalidate_now: Notify,
    /// The log index up to which every entry's invalidations are pushed (or waited out).
    invalidated: watch::Sender<u64>,
    /// Unconfirmed sales, and since when this leader has seen them unconfirmed.
    unconfirmed_since: Mutex<HashMap<String, Instant>>,
}

/// A catalog replica opened and not serving yet: its handle, and its proposer's gathering task,
/// which [`Opened::run`] spawns.
pub struct Opened {
    catalog: Catalog,
    gatherer: Gatherer<CatalogGroup>,
}

impl Catalog {
    /// Opens catalog replica `config.id`'s log and state machine and starts its engine.
    /// `secret` is required of callers and presented to the other services.
    pub async fn open(
        config: &CatalogOptions,
        cluster: &ClusterFile,
        secret: Secret,
        transport: Transport,
    ) -> Result<Opened> {
        let opened = Instant::now();
        crate::storage::ensure_dir(&config.data_dir)?;
        let id = cluster.catalog_entry(config.id).map_err(Error::Usage)?.id;
        let replicas = cluster.catalogs();
        warn_if_alone(replicas.len());
        let seed = seed::load(&config.data_dir, config.initial_stock)?;
        let name = format!("catalog replica {id}");
        let client = PeerClient::for_services(&secret, transport.client.clone());
        let files = engine_files(config, cluster, id);
        let crate::raft::replica::Engine {
            raft,
            log,
            book,
            identity,
            rank,
        } = crate::raft::replica::start_engine::<CatalogBook>(&files, &replicas, &client, &name)
            .await?;
        tracing::info!(
            "{name} opened with {} toys, {} units in stock",
            book.read(|b| b.products().len()),
            book.read(|b| b.units_in_stock())
        );
        let (proposer, gatherer) = crate::raft::proposer::proposer(raft.clone(), id);
        let catalog = Catalog {
            shared: Arc::new(Shared {
                id,
                raft,
                book,
                founding: identity
                    .founder
                    .then(|| crate::raft::replica::members(&replicas)),
                incarnation: identity.incarnation,
                rank,
                secret,
                transport,
                seed,
                restock_interval: config.restock_interval.get(),
                frontends: cluster.frontend_urls(),
                client,
                proposer,
                opened,
                leadership: Mutex::new(None),
                last_check: tokio::sync::Mutex::new(None),
                to_invalidate: Mutex::new(Vec::new()),
                disk_full: log.disk_full(),
                log,
                restocked: Default::default(),
                invalidate_now: Notify::new(),
                invalidated: watch::Sender::new(0),
                unconfirmed_since: Mutex::new(HashMap::new()),
            }),
        };
        Ok(Opened { catalog, gatherer })
    }

    /// Runs the replica's own tasks beside `tasks` and serves until `shutdown`.
    async fn serve(
        self,
        mut tasks: tokio::task::JoinSet<()>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        tasks.spawn(leadership::invalidate_loop(self.clone()));
        tasks.spawn(leadership::duties(self.clone()));
        let shared = &self.shared;
        let name = format!("catalog replica {}", self.id());
        let founding = shared.founding.clone();
        crate::raft::replica::spawn_group_tasks(
            &mut tasks,
            &shared.raft,
            founding,
            shared.rank,
            name.clone(),
        );
        crate::raft::replica::serve_while_engine_runs(
            &self.shared.raft,
            self.clone(),
            listener,
            self.shared.transport.server.clone(),
            tasks,
            shutdown,
            &name,
        )
        .await?;
        self.shared.book.flush_view();
        Ok(())
    }

    pub fn id(&self) -> u32 {
        self.shared.id
    }

    /// Health, role, and the stock applied here; `len` is the index of the last entry applied.
    pub fn health(&self) -> CatalogHealth {
        let applied = self
            .shared
            .raft
            .metrics()
            .borrow()
            .last_applied
            .map_or(0, |l| l.index);
        let (products, units_in_stock) = self
            .shared
            .book
            .read(|b| (b.products().len() as u64, b.units_in_stock()));
        let mut replica = crate::raft::replica::health(
            &self.shared.raft,
            self.id(),
            applied,
            self.shared
                .disk_full
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        replica.incarnation = Some(self.shared.incarnation.clone());
        replica.tls_refused = self.shared.transport.refusals();
        CatalogHealth {
            replica,
            products,
            units_in_stock,
        }
    }

    /// Every committed entry's invalidations, in log order, for the push loop.
    fn written(&self, index: u64, replies: &[CatalogReply]) {
        for reply in replies {
            if let CatalogReply::Restocked { invalidations } = reply {
                self.shared.restocked.fetch_add(
                    invalidations.len() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        }
        let items: Vec<Invalidation> = replies
            .iter()
            .flat_map(|reply| match reply {
                CatalogReply::Bought { invalidations, .. }
                | CatalogReply::Restocked { invalidations } => invalidations.clone(),
                CatalogReply::Done | CatalogReply::Stale { .. } | CatalogReply::TooOld { .. } => {
                    Vec::new()
                }
            })
            .collect();
        self.shared.to_invalidate.lock().push((index, items));
        self.shared.invalidate_now.notify_one();
    }
}

/// A catalog of one replica stops the store when it stops: said once, at its start.
fn warn_if_alone(replicas: usize) {
    if replicas == 1 {
        tracing::warn!(
            "the catalog has one replica in the cluster file: it has no failover; name three \
             [[catalog]] entries to survive the loss of one"
        );
    }
}

/// Where catalog replica `id` keeps its identity, log, snapshot and `catalog-N.csv`.
fn engine_files<'a>(
    config: &CatalogOptions,
    cluster: &'a ClusterFile,
    id: u32,
) -> crate::raft::replica::EngineFiles<'a> {
    crate::raft::replica::EngineFiles {
        claim: crate::raft::identity::Claim {
            group: "catalog",
            id,
            cluster: cluster.token.as_deref(),
            identity_path: config.data_dir.join(identity_file_name(id)),
            log_path: config.data_dir.join(log_file_name(id)),
            mode: config.start,
        },
        snapshot: config.data_dir.join(snapshot_file_name(id)),
        view: config.data_dir.join(file_name(id)),
    }
}

impl Opened {
    /// Serves on `listener` until `shutdown`, then stops the engine. Returns an error, at once,
    /// if the engine stops by itself (a disk that failed, a bug).
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let Opened { catalog, gatherer } = self;
        // Aborted when dropped: no timer or monitor outlives the service.
        let mut tasks = tokio::task::JoinSet::new();
        let written = catalog.clone();
        tasks.spawn(gatherer.run(move |index, replies| written.written(index, replies)));
        catalog.serve(tasks, listener, shutdown).await
    }
}
