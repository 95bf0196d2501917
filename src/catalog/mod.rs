//! The catalog service: the stock in `catalog.csv`, buys, restocks, and the cache invalidations
//! it pushes to every front end.
//!
//! Stock changes are made in memory under a lock and made durable by one flusher task that
//! appends a whole batch of changes to `catalog-ledger.csv` with one fsync (group commit) while it
//! pushes the batch's invalidations to every front end. A buy is answered only after both: each
//! front end has taken the invalidation, or its cache lease has run out ([`leases`]).
//! `catalog.csv` is then rewritten atomically in the background: the ledger, not the snapshot, is
//! what makes a change durable, and it repairs a snapshot that a crash left behind on start.

pub mod book;
pub mod leases;
pub mod ledger;
mod routes;
pub mod stock;
pub mod versions;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::cluster_file::ClusterFile;
use crate::error::{Error, Result};
use crate::peer::PeerClient;
use crate::secret::Secret;
use crate::services::CatalogOptions;
use crate::tasks::TaskGuard;
use crate::wire::{Invalidate, Invalidation, VersionedProduct};
use ledger::{Kind, Ledger, Record};
use stock::Stock;

/// The initial stock, embedded so the catalog starts from any directory.
pub const INITIAL_CATALOG: &str = include_str!("../../data/catalog.csv");
pub const CATALOG_FILE: &str = "catalog.csv";

/// How long a buy waits for its change to be durable before it answers 503.
const DURABILITY_TIMEOUT: Duration = crate::timeouts::CATALOG_DURABLE;
/// Shortest time between two rewrites of `catalog.csv`.
const SNAPSHOT_GAP: Duration = Duration::from_millis(100);

/// A cheap-to-clone handle to the running catalog.
#[derive(Clone)]
pub struct Catalog {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    path: PathBuf,
    /// Every front end whose cache to invalidate: its id and base URL.
    frontends: Vec<(u32, String)>,
    leases: leases::Leases,
    restock_interval: Duration,
    client: PeerClient,
    secret: Secret,
    /// Number of changes that are on disk and invalidated.
    durable: watch::Sender<u64>,
    wake: Notify,
    /// The ledger, appended to by one flush at a time.
    ledger: Arc<Mutex<Ledger>>,
    /// Held for a whole flush, so flushes never overtake each other.
    flushing: tokio::sync::Mutex<()>,
    /// Rung after each flush: `catalog.csv` is behind the ledger.
    snapshot_due: Notify,
    /// Held while `catalog.csv` is rewritten.
    snapshot_writer: Mutex<()>,
    /// Why the last flush failed, until one succeeds: what a buy that cannot be made durable
    /// is told.
    write_error: Mutex<Option<String>>,
    /// A flush ended without knowing what it wrote: nothing is made durable any more.
    broken: AtomicBool,
}

struct State {
    /// Every change made, durable or not: what buys and restocks decide on.
    stock: Stock,
    /// Every toy as the ledger holds it durably, by lower-case name: what product queries read,
    /// so that none shows a change that a crash could still undo (no dirty reads).
    durable: HashMap<String, VersionedProduct>,
    /// Buys whose orders the order service has not confirmed it holds (see [`routes`]).
    unconfirmed: HashMap<String, Unconfirmed>,
    /// Number of changes made in memory so far.
    changes: u64,
    pending: Vec<Invalidation>,
    records: Vec<Record>,
    /// The totals of every change made in memory (durable or not yet), which always agree with
    /// `stock`: what a stock check reads.
    totals: crate::conservation::Totals,
}

/// How often a flush that failed is tried again.
const FLUSH_RETRY: Duration = Duration::from_millis(500);

/// A write error as a user should read it: "disk full" for ENOSPC.
fn describe_write_error(e: &Error) -> String {
    let full = matches!(e, Error::Io { cause, .. } if cause.raw_os_error() == Some(libc::ENOSPC));
    if full {
        "disk full".to_string()
    } else {
        e.to_string()
    }
}

/// A buy not yet confirmed by the order service, and since when.
struct Unconfirmed {
    name: String,
    quantity: u64,
    since: Instant,
}

impl Catalog {
    /// Opens the catalog in `config.data_dir`, seeding `catalog.csv` from the embedded stock the
    /// first time. `secret` is required of callers and presented to the front end.
    pub fn open(config: &CatalogOptions, cluster: &ClusterFile, secret: Secret) -> Result<Self> {
        crate::storage::ensure_dir(&config.data_dir)?;
        let path = config.data_dir.join(CATALOG_FILE);
        let mut stock = load_or_seed(&path, config.initial_stock)?;
        stock.start_versions_above(versions::reserve(
            &config.data_dir,
            crate::fault::clock_micros(),
        )?);
        let (mut ledger, mut totals) = Ledger::open(&config.data_dir, &stock.seed_records())?;
        let (repaired, unseeded) = stock.apply_ledger(&totals);
        ledger.append(&unseeded)?;
        unseeded.iter().for_each(|r| totals.add(r));
        if !repaired.is_empty() {
            tracing::warn!(
                "{} was behind its ledger (a crash between the two writes); repaired {}",
                path.display(),
                repaired.join(", ")
            );
            crate::storage::write_atomic(&path, &stock.to_csv())?;
        }
        // The buys whose orders were not confirmed before the stop: the order leader checks
        // each against its log once, and confirms or places it.
        let started = Instant::now();
        let unconfirmed: HashMap<String, Unconfirmed> = stock
            .bought()
            .filter(|(key, _)| !totals.confirmed.contains(*key))
            .map(|(key, bought)| {
                let buy = Unconfirmed {
                    name: bought.name.clone(),
                    quantity: bought.quantity,
                    since: started,
                };
                (key.clone(), buy)
            })
            .collect();
        let durable = stock
            .products()
            .into_iter()
            .map(|p| (p.name.to_lowercase(), p))
            .collect();
        if !unconfirmed.is_empty() {
            tracing::info!(
                "{} buys await their order's confirmation from the order service",
                unconfirmed.len()
            );
        }
        Ok(Catalog {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    unconfirmed,
                    durable,
                    stock,
                    changes: 0,
                    pending: Vec::new(),
                    records: Vec::new(),
                    totals,
                }),
                path,
                frontends: cluster.frontend_urls(),
                leases: leases::Leases::new(cluster.frontend.iter().map(|f| f.id)),
                restock_interval: config.restock_interval.get(),
                client: PeerClient::for_services(&secret),
                secret,
                durable: watch::Sender::new(0),
                wake: Notify::new(),
                ledger: Arc::new(Mutex::new(ledger)),
                flushing: tokio::sync::Mutex::new(()),
                snapshot_due: Notify::new(),
                snapshot_writer: Mutex::new(()),
                write_error: Mutex::new(None),
                broken: AtomicBool::new(false),
            }),
        })
    }

    /// Serves on `listener` until `shutdown`, with the flusher and the restock timer running.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let mut tasks = TaskGuard::default();
        tasks.spawn(self.clone().flush_loop());
        tasks.spawn(self.clone().snapshot_loop());
        tasks.spawn(self.clone().restock_loop(self.shared.restock_interval));
        let header_read_timeout = crate::config::defaults::HEADER_READ_TIMEOUT.get();
        crate::http::serve(listener, self.clone(), header_read_timeout, shutdown).await;
        drop(tasks);
        self.flush().await;
        self.write_snapshot().await;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug; the data is still consistent because
        // every change is a single assignment, so keep serving.
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that a change was made in memory and returns its sequence number.
    fn changed(
        state: &mut State,
        invalidations: impl IntoIterator<Item = Invalidation>,
        records: impl IntoIterator<Item = Record>,
    ) -> u64 {
        state.pending.extend(invalidations);
        for record in records {
            state.totals.add(&record);
            state.records.push(record);
        }
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
            false => Err(Error::Cluster(
                match self
                    .shared
                    .write_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                {
                    Some(e) => format!("the catalog cannot write its ledger: {e}"),
                    None => "the catalog could not write its ledger in time".to_string(),
                },
            )),
        }
    }

    /// Flushes when woken, and every [`FLUSH_RETRY`] anyway: changes that a full disk kept
    /// from the ledger are written as soon as there is room again, without a restart.
    async fn flush_loop(self) {
        loop {
            let _ = tokio::time::timeout(FLUSH_RETRY, self.shared.wake.notified()).await;
            self.flush().await;
        }
    }

    /// Makes every change made so far durable and pushes its invalidations: one ledger append
    /// (one fsync) for however many buys arrived since the last flush, with the invalidation
    /// sent while the disk works. Only then is the batch acknowledged.
    async fn flush(&self) {
        let _one_at_a_time = self.shared.flushing.lock().await;
        if self.shared.broken.load(Ordering::SeqCst) {
            return;
        }
        let (target, invalidations, records, changed) = {
            let mut state = self.state();
            if state.changes <= *self.shared.durable.borrow() {
                return;
            }
            let invalidations = std::mem::take(&mut state.pending);
            // The toys as they stand after every change up to `target`, which become what
            // queries read once the batch is on disk.
            let changed: Vec<VersionedProduct> = invalidations
                .iter()
                .filter_map(|i| state.stock.get(&i.name))
                .collect();
            (
                state.changes,
                invalidations,
                std::mem::take(&mut state.records),
                changed,
            )
        };
        let ledger = self.shared.ledger.clone();
        let appended = records.clone();
        let append = tokio::task::spawn_blocking(move || {
            ledger
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .append(&appended)
        });
        // An invalidation that runs ahead of a failed append only costs the front end a miss.
        let (written, ()) = tokio::join!(append, self.invalidate(invalidations.clone()));
        match written {
            Ok(Ok(())) => {
                *self
                    .shared
                    .write_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = None;
            }
            Ok(Err(e)) => {
                tracing::error!("cannot persist the stock: {e}");
                *self
                    .shared
                    .write_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(describe_write_error(&e));
                let mut state = self.state();
                state.pending.extend(invalidations);
                state.records.splice(0..0, records);
                return;
            }
            Err(e) => {
                // The append panicked or was cancelled part-way: whether its records reached
                // the file is unknown, and retrying could count them twice. Stop making
                // changes durable, so none is acknowledged, until a restart reads the ledger.
                tracing::error!("the ledger writer failed ({e}); restart the catalog");
                *self
                    .shared
                    .write_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(format!(
                    "its ledger writer failed ({e}); restart the catalog"
                ));
                self.shared.broken.store(true, Ordering::SeqCst);
                return;
            }
        }
        let stock_changed = !changed.is_empty();
        {
            let mut state = self.state();
            for product in changed {
                state.durable.insert(product.name.to_lowercase(), product);
            }
        }
        self.shared.durable.send_replace(target);
        // A batch of confirmations alone changes no toy: `catalog.csv` stays as it is.
        if stock_changed {
            self.shared.snapshot_due.notify_one();
        }
    }

    /// Keeps `catalog.csv` close behind the ledger: at most one atomic rewrite per
    /// [`SNAPSHOT_GAP`], for however many flushes happened meanwhile. A rewrite costs four
    /// syscalls that touch the disk; under load there are thousands of flushes a second.
    async fn snapshot_loop(self) {
        loop {
            self.shared.snapshot_due.notified().await;
            self.write_snapshot().await;
            tokio::time::sleep(SNAPSHOT_GAP).await;
        }
    }

    async fn write_snapshot(&self) {
        let catalog = self.clone();
        let written = tokio::task::spawn_blocking(move || {
            // One writer at a time, and the stock read under the same lock, so a newer snapshot
            // is never overwritten by an older one.
            let _one_at_a_time = catalog
                .shared
                .snapshot_writer
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let contents = catalog.state().stock.to_csv();
            crate::storage::write_atomic(&catalog.shared.path, &contents)
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("cannot rewrite the stock snapshot: {e}"),
            Err(e) => tracing::warn!("stock snapshot writer stopped: {e}"),
        }
    }

    /// Pushes `items` to every front end at once. Returns once each has taken them or, for one
    /// that did not, once its cache lease has run out: from then on no front end serves what
    /// the change made stale.
    async fn invalidate(&self, items: Vec<Invalidation>) {
        if items.is_empty() {
            return;
        }
        for item in &items {
            tracing::debug!(product = %item.name, version = item.version, "invalidate in the front ends' caches");
        }
        let body = Invalidate { items };
        let pushes = self.shared.frontends.iter().map(|(id, url)| {
            let body = &body;
            async move {
                if self.shared.leases.push(*id) == leases::Push::Skip {
                    return None;
                }
                let url = format!("{url}/internal/invalidate");
                let reply: std::result::Result<serde_json::Value, _> = self
                    .shared
                    .client
                    .post_with_timeout(&url, body, crate::timeouts::INVALIDATE_CALL)
                    .await;
                let e = reply.err()?;
                tracing::warn!("front end {id} did not take an invalidation: {e}; waiting for its cache lease to end");
                Some(self.shared.leases.missed(*id))
            }
        });
        let leased_until = futures_util::future::join_all(pushes).await;
        if let Some(until) = leased_until.into_iter().flatten().max() {
            tokio::time::sleep_until(until).await;
        }
    }

    /// Renews front end `id`'s cache lease; `emptied` is the last reset it made.
    fn renew_lease(&self, id: u32, emptied: Option<u64>) -> Option<crate::wire::LeaseGrant> {
        let reset = self.shared.leases.renew(id, emptied)?;
        if reset.is_some() {
            tracing::debug!("front end {id} renews its cache lease after missing invalidations: it empties its cache");
        }
        Some(crate::wire::LeaseGrant { reset })
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
                let records: Vec<Record> = refilled
                    .iter()
                    .filter_map(|item| state.stock.get(&item.name))
                    .map(|product| {
                        tracing::info!(product = %product.name, "restocked to {}", stock::RESTOCK_QUANTITY);
                        Record {
                            kind: Kind::Restock,
                            key: String::new(),
                            name: product.name,
                            quantity: stock::RESTOCK_QUANTITY,
                        }
                    })
                    .collect();
                Self::changed(&mut state, refilled, records)
            };
            if let Err(e) = self.wait_durable(seq).await {
                tracing::error!("restock not persisted: {e}");
            }
        }
    }
}

fn load_or_seed(path: &Path, initial_stock: Option<u64>) -> Result<Stock> {
    match std::fs::read_to_string(path) {
        Ok(text) => Stock::parse(&text, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut stock = Stock::parse(INITIAL_CATALOG, Path::new("data/catalog.csv"))?;
            if let Some(quantity) = initial_stock {
                stock.set_all_quantities(quantity);
            }
            crate::storage::write_atomic(path, &stock.to_csv())?;
            tracing::info!("seeded {} from the built-in catalog", path.display());
            Ok(stock)
        }
        Err(e) => Err(Error::io(path, e)),
    }
}
