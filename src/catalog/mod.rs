//! The catalog service: the stock in `catalog.csv`, buys, restocks, and the cache invalidations
//! it pushes to the front end.
//!
//! Stock changes are made in memory under a lock and made durable by one flusher task that
//! rewrites the file atomically for a whole batch of changes (group commit), then pushes the
//! batch's invalidations to the front end. A buy is answered only after both.

mod routes;
pub mod stock;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::error::{Error, Result};
use crate::peer::PeerClient;
use crate::tasks::TaskGuard;
use crate::wire::{Invalidate, Invalidation};
use stock::Stock;

/// The initial stock, embedded so the catalog starts from any directory.
pub const INITIAL_CATALOG: &str = include_str!("../../data/catalog.csv");
pub const CATALOG_FILE: &str = "catalog.csv";

/// How long a buy waits for its change to be durable before it answers 503.
const DURABILITY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct CatalogConfig {
    /// Directory that holds `catalog.csv`.
    pub data_dir: PathBuf,
    /// Base URL of the front end to invalidate, if any.
    pub frontend: Option<String>,
    pub restock_interval: Duration,
}

/// A cheap-to-clone handle to the running catalog.
#[derive(Clone)]
pub struct Catalog {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    path: PathBuf,
    frontend: Option<String>,
    client: PeerClient,
    /// Number of changes that are on disk and invalidated.
    durable: watch::Sender<u64>,
    wake: Notify,
}

struct State {
    stock: Stock,
    /// Number of changes made in memory so far.
    changes: u64,
    pending: Vec<Invalidation>,
}

impl Catalog {
    /// Opens the catalog in `config.data_dir`, seeding `catalog.csv` from the embedded stock the
    /// first time.
    pub fn open(config: &CatalogConfig) -> Result<Self> {
        let path = config.data_dir.join(CATALOG_FILE);
        let stock = load_or_seed(&path)?;
        Ok(Catalog {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    stock,
                    changes: 0,
                    pending: Vec::new(),
                }),
                path,
                frontend: config.frontend.clone(),
                client: PeerClient::for_services(),
                durable: watch::Sender::new(0),
                wake: Notify::new(),
            }),
        })
    }

    /// Serves on `listener` until `shutdown`, with the flusher and the restock timer running.
    pub async fn run(
        self,
        listener: TcpListener,
        restock_interval: Duration,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let mut tasks = TaskGuard::default();
        tasks.spawn(self.clone().flush_loop());
        tasks.spawn(self.clone().restock_loop(restock_interval));
        crate::http::serve(listener, self.clone(), shutdown).await;
        self.flush().await;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug; the data is still consistent because
        // every change is a single assignment, so keep serving.
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that a change was made in memory and returns its sequence number.
    fn changed(state: &mut State, invalidations: impl IntoIterator<Item = Invalidation>) -> u64 {
        state.pending.extend(invalidations);
        state.changes += 1;
        state.changes
    }

    /// Waits until change `seq` is on disk and invalidated in the front end.
    async fn wait_durable(&self, seq: u64) -> Result<()> {
        self.shared.wake.notify_one();
        let mut durable = self.shared.durable.subscribe();
        let reached = tokio::time::timeout(DURABILITY_TIMEOUT, durable.wait_for(|&d| d >= seq))
            .await
            .is_ok_and(|r| r.is_ok());
        match reached {
            true => Ok(()),
            false => Err(Error::Cluster(format!(
                "could not write {} in time",
                self.shared.path.display()
            ))),
        }
    }

    async fn flush_loop(self) {
        loop {
            self.shared.wake.notified().await;
            self.flush().await;
        }
    }

    /// Writes every change made so far and pushes its invalidations: one file write for however
    /// many buys arrived since the last flush.
    async fn flush(&self) {
        let (target, contents, invalidations) = {
            let mut state = self.state();
            if state.changes <= *self.shared.durable.borrow() {
                return;
            }
            (
                state.changes,
                state.stock.to_csv(),
                std::mem::take(&mut state.pending),
            )
        };
        let path = self.shared.path.clone();
        let written =
            tokio::task::spawn_blocking(move || crate::storage::write_atomic(&path, &contents))
                .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!("cannot persist the stock: {e}");
                self.state().pending.extend(invalidations);
                return;
            }
            Err(e) => {
                tracing::error!("stock writer stopped: {e}");
                return;
            }
        }
        self.invalidate(invalidations).await;
        self.shared.durable.send_replace(target);
    }

    async fn invalidate(&self, items: Vec<Invalidation>) {
        let Some(frontend) = &self.shared.frontend else {
            return;
        };
        if items.is_empty() {
            return;
        }
        for item in &items {
            tracing::debug!(product = %item.name, version = item.version, "invalidate in the front end's cache");
        }
        let url = format!("{frontend}/internal/invalidate");
        let reply: std::result::Result<serde_json::Value, _> =
            self.shared.client.post(&url, &Invalidate { items }).await;
        if let Err(e) = reply {
            // A front end that is down has no cache to make stale; one that is up answers.
            tracing::warn!("front end did not take an invalidation: {e}");
        }
    }

    async fn restock_loop(self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let seq = {
                let mut state = self.state();
                let refilled = state.stock.restock();
                if refilled.is_empty() {
                    continue;
                }
                for item in &refilled {
                    tracing::info!(product = %item.name, "restocked to {}", stock::RESTOCK_QUANTITY);
                }
                Self::changed(&mut state, refilled)
            };
            if let Err(e) = self.wait_durable(seq).await {
                tracing::error!("restock not persisted: {e}");
            }
        }
    }
}

fn load_or_seed(path: &Path) -> Result<Stock> {
    match std::fs::read_to_string(path) {
        Ok(text) => Stock::parse(&text, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let stock = Stock::parse(INITIAL_CATALOG, Path::new("data/catalog.csv"))?;
            crate::storage::write_atomic(path, &stock.to_csv())?;
            tracing::info!("seeded {} from the built-in catalog", path.display());
            Ok(stock)
        }
        Err(e) => Err(Error::io(path, e)),
    }
}
