//! The order service: one replica of the replicated order log.
//!
//! The front end names a leader and a term. The leader takes an order by asking the catalog to
//! buy (keyed, so a retry never buys twice), gives it the next number, writes it to its own file
//! and to the followers', and answers once the order is durable on a majority (itself and one
//! follower). See `docs/replication.md` for the protocol and why no acknowledged order is lost.

mod buyer;
pub mod log;
mod replication;
mod routes;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, OwnedMutexGuard};

use crate::config::ReplicaAddr;
use crate::error::{Error, Result};
use crate::peer::PeerClient;
use crate::secret::Secret;
use crate::tasks::TaskGuard;
use crate::wire::Role;
use log::{LogFile, OrderLog};

/// Name of replica `id`'s orders file.
pub fn orders_file_name(id: u32) -> String {
    format!("orders-{id}.csv")
}

#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    pub id: u32,
    pub data_dir: PathBuf,
    /// Every replica of the cluster; this one's own entry is ignored.
    pub replicas: Vec<ReplicaAddr>,
    /// Base URL of the catalog.
    pub catalog: String,
    /// The cluster's secret: required of callers, presented to peers and the catalog.
    pub secret: Secret,
}

/// A cheap-to-clone handle to a running replica.
#[derive(Clone)]
pub struct Replica {
    shared: Arc<Shared>,
}

struct Shared {
    id: u32,
    peers: Vec<ReplicaAddr>,
    client: PeerClient,
    secret: Secret,
    /// Buys in the catalog for the orders this replica places as leader.
    buyer: buyer::Buyer,
    /// The buyer's batching task, taken and spawned by [`Replica::run`].
    batcher: Mutex<Option<buyer::Batcher>>,
    state: Mutex<State>,
    /// The one writer of the orders file. Held while the file is written, and by anyone who
    /// truncates the log, so a write never races a truncation.
    file: Arc<tokio::sync::Mutex<LogFile>>,
    /// Log length, published whenever the leader appends, to wake the replication tasks.
    appended: watch::Sender<u64>,
    /// Leader only: how many entries are durable on a majority.
    committed: watch::Sender<u64>,
    /// Idempotency keys of orders being placed right now, and a bell rung when one finishes.
    in_flight: Mutex<HashSet<String>>,
    in_flight_done: Notify,
    /// Replication tasks of the current leadership; replaced or dropped when it ends.
    leadership: Mutex<Option<TaskGuard>>,
}

struct State {
    log: OrderLog,
    role: Role,
    leader_id: Option<u32>,
    term: u64,
    /// False until the replica has caught up with the leader after a start.
    ready: bool,
    /// Leader only: for each follower, how many entries it holds durably.
    matched: std::collections::HashMap<u32, u64>,
}

impl Replica {
    /// Opens replica `config.id`'s orders file, reading back every order in it.
    pub fn open(config: &ReplicaConfig) -> Result<Self> {
        if !config.replicas.iter().any(|r| r.id == config.id) {
            return Err(Error::Usage(format!(
                "replica {} is not among the cluster's replicas ({})",
                config.id,
                config
                    .replicas
                    .iter()
                    .map(|r| r.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let path = config.data_dir.join(orders_file_name(config.id));
        let (log, file) = log::open(&path)?;
        let len = log.len();
        let term = log.last_term();
        tracing::info!(
            "replica {} read {} orders from {}",
            config.id,
            len,
            path.display()
        );
        let client = PeerClient::for_services(&config.secret);
        let (buyer, batcher) = buyer::buyer(&config.catalog, client.clone());
        Ok(Replica {
            shared: Arc::new(Shared {
                id: config.id,
                peers: config
                    .replicas
                    .iter()
                    .filter(|r| r.id != config.id)
                    .cloned()
                    .collect(),
                client,
                secret: config.secret.clone(),
                buyer,
                batcher: Mutex::new(Some(batcher)),
                state: Mutex::new(State {
                    log,
                    role: Role::Follower,
                    leader_id: None,
                    term,
                    ready: false,
                    matched: Default::default(),
                }),
                file: Arc::new(tokio::sync::Mutex::new(file)),
                appended: watch::Sender::new(len),
                committed: watch::Sender::new(0),
                in_flight: Mutex::new(HashSet::new()),
                in_flight_done: Notify::new(),
                leadership: Mutex::new(None),
            }),
        })
    }

    /// Serves on `listener` until `shutdown`, catching up with the cluster first.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
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
        tasks.spawn(self.clone().catch_up_on_start());
        crate::http::serve(listener, self.clone(), shutdown).await;
        self.shared
            .leadership
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn id(&self) -> u32 {
        self.shared.id
    }

    /// The term this replica leads in, if it leads and has caught up.
    fn leading_term(&self) -> Option<u64> {
        let state = self.state();
        (state.role == Role::Leader && state.ready).then_some(state.term)
    }

    /// Writes whatever the log holds that the file does not, with one fsync.
    async fn persist(&self) -> Result<()> {
        let file = self.shared.file.clone().lock_owned().await;
        self.persist_holding(file).await
    }

    /// [`Self::persist`] for a caller that already holds the file.
    ///
    /// The write and the record that it was done run in a task of their own: the caller may be
    /// cancelled (hyper drops a handler whose client disconnects, as a dying leader does), and a
    /// write done but not recorded would be written a second time.
    async fn persist_holding(&self, file: OwnedMutexGuard<LogFile>) -> Result<()> {
        let replica = self.clone();
        tokio::spawn(async move { replica.write_pending(file).await })
            .await
            .map_err(|e| Error::Cluster(format!("log writer stopped: {e}")))?
    }

    async fn write_pending(&self, mut file: OwnedMutexGuard<LogFile>) -> Result<()> {
        let Some((job, len)) = self.state().log.pending_write() else {
            return Ok(());
        };
        let (file, written) = tokio::task::spawn_blocking(move || {
            let written = file.apply(&job);
            (file, written)
        })
        .await
        .map_err(|e| Error::Cluster(format!("log writer stopped: {e}")))?;
        let mut state = self.state();
        match written {
            Ok(()) => {
                state.log.mark_written(len);
                drop(state);
                drop(file);
                self.advance_commit();
                Ok(())
            }
            Err(e) => {
                state.log.write_failed();
                tracing::error!("cannot write {}: {e}", file.path().display());
                Err(e)
            }
        }
    }

    /// Leader: raises the commit point to what is durable here and on at least one follower.
    fn advance_commit(&self) {
        let state = self.state();
        if state.role != Role::Leader {
            return;
        }
        let on_a_follower = state.matched.values().copied().max().unwrap_or(0);
        let committed = state.log.written().min(on_a_follower);
        self.shared.committed.send_if_modified(|c| {
            if committed > *c {
                *c = committed;
                true
            } else {
                false
            }
        });
    }

    /// Waits until order `number` is committed, for at most `timeout`.
    async fn wait_committed(&self, number: u64, timeout: Duration) -> bool {
        let mut committed = self.shared.committed.subscribe();
        let reached = tokio::time::timeout(timeout, committed.wait_for(|&c| c > number))
            .await
            .is_ok_and(|r| r.is_ok());
        reached
    }

    /// Waits until no other request is placing an order with `key`, then claims it.
    async fn claim_key(&self, key: &str) -> KeyClaim {
        loop {
            let done = self.shared.in_flight_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self
                .shared
                .in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.to_string())
            {
                return KeyClaim {
                    replica: self.clone(),
                    key: key.to_string(),
                };
            }
            done.await;
        }
    }
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
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
        shared.in_flight_done.notify_waiters();
    }
}
