//! The front end: the public API. Product queries are served from an LRU cache or the catalog;
//! orders and order queries go to the order leader, retried on a new leader when one fails.
//! The cache answers only under a lease it renews with the catalog ([`cache`]).

pub mod cache;
mod feed;
pub mod leader;
mod routes;

use parking_lot::{Mutex, MutexGuard};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::cluster_file::ClusterFile;
use crate::peer::PeerClient;
use crate::secret::Secret;
use crate::services::FrontendOptions;
use crate::transport::Transport;
use cache::ProductCache;
use leader::LeaderTracker;

#[derive(Clone)]
pub struct Frontend {
    shared: Arc<Shared>,
}

struct Shared {
    /// The catalog group, called at whichever replica leads.
    catalog: Arc<crate::group_client::GroupClient>,
    /// This front end's id in the cluster file, which the catalog grants leases to.
    id: u32,
    client: PeerClient,
    cache: Mutex<ProductCache>,
    leader: LeaderTracker,
    failover_timeout: Duration,
    health_interval: Duration,
    header_read_timeout: Duration,
    secret: Secret,
    /// Its TLS: when the cluster has some, invalidations come only from its catalog replicas.
    transport: Transport,
    /// How long product queries and orders take, for `storectl top`.
    latency: Latencies,
    /// The stock changes storefront pages follow.
    feed: feed::StockFeed,
}

#[derive(Default)]
struct Latencies {
    query: crate::histogram::Histogram,
    order: crate::histogram::Histogram,
}

impl Frontend {
    /// Front end `id` of `cluster`, as `config` describes it; `secret` is presented to the other
    /// services and required of invalidations.
    pub fn new(
        config: &FrontendOptions,
        cluster: &ClusterFile,
        id: u32,
        secret: Secret,
        transport: Transport,
    ) -> Self {
        let client = PeerClient::for_services(&secret, transport.client.clone());
        Frontend {
            shared: Arc::new(Shared {
                catalog: Arc::new(crate::group_client::GroupClient::new(
                    "catalog",
                    cluster.catalogs(),
                    client.clone(),
                )),
                id,
                leader: LeaderTracker::new(cluster.replicas(), client.clone()),
                client,
                cache: Mutex::new(ProductCache::new(config.cache_size)),
                failover_timeout: config.failover_timeout.get(),
                health_interval: config.health_interval.get(),
                header_read_timeout: config.header_read_timeout.get(),
                secret,
                transport,
                latency: Latencies::default(),
                feed: feed::StockFeed::default(),
            }),
        }
    }

    /// Serves on `listener` until `shutdown`, watching the order leader every health interval.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        // Aborted when dropped: no timer or monitor outlives the service.
        let mut tasks = tokio::task::JoinSet::new();
        let monitor = self
            .shared
            .leader
            .clone()
            .monitor(self.shared.health_interval);
        tasks.spawn(monitor);
        tasks.spawn(
            self.shared
                .catalog
                .clone()
                .follow_members(crate::timeouts::MEMBERSHIP_POLL),
        );
        tasks.spawn(self.clone().lease_loop());
        tasks.spawn(self.clone().feed_loop());
        let header_read_timeout = self.shared.header_read_timeout;
        let tls = self.shared.transport.server.clone();
        let shared = self.shared.clone();
        let shutdown = async move {
            shutdown.await;
            // Open pages' streams end, so that the requests in flight can finish.
            shared.feed.close();
        };
        crate::http::serve(listener, self, header_read_timeout, tls, shutdown).await;
    }

    /// Renews the cache lease with the catalog leader every [`crate::timeouts::LEASE_RENEW`].
    async fn lease_loop(self) {
        let mut asking = crate::wire::LeaseRequest {
            frontend: self.shared.id,
            emptied: None,
        };
        let mut ticker = tokio::time::interval(crate::timeouts::LEASE_RENEW);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard = true;
        loop {
            ticker.tick().await;
            let asked = std::time::Instant::now();
            let reply: Result<crate::wire::Data<crate::wire::LeaseGrant>, _> = self
                .shared
                .catalog
                .post("/internal/lease", &asking, crate::timeouts::LEASE_CALL)
                .await;
            match reply {
                Ok(grant) => {
                    if !heard {
                        tracing::info!("the catalog renews the cache lease again");
                    }
                    heard = true;
                    let reset = grant.data.reset;
                    self.cache().renewed(asked, reset.is_some());
                    if reset.is_some() {
                        self.shared.feed.reset();
                    }
                    // Said with the next renewal: until then the catalog keeps the miss.
                    if reset.is_some() {
                        asking.emptied = reset;
                    }
                }
                Err(e) => {
                    if heard {
                        tracing::warn!("cannot renew the cache lease: {e}");
                    }
                    heard = false;
                }
            }
        }
    }

    /// Sends storefront pages the toys whose stock changed, read once for every page, at most
    /// every [`feed::TICK`].
    async fn feed_loop(self) {
        let feed = &self.shared.feed;
        loop {
            let names = feed.next_changes().await;
            match routes::product_list(&self, std::time::Instant::now()).await {
                Ok((body, _)) => {
                    let list: Result<crate::wire::Data<Vec<crate::wire::Product>>, _> =
                        serde_json::from_slice(&body);
                    let changed: Vec<crate::wire::Product> = list
                        .map(|l| l.data)
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|p| names.contains(&p.name.to_lowercase()))
                        .collect();
                    feed.publish(&changed);
                }
                // Tried again at the next tick, with whatever changed meanwhile.
                Err(e) => {
                    tracing::debug!("the stock pages follow is not read: {e}");
                    feed.changed(names.iter().map(String::as_str));
                }
            }
            tokio::time::sleep(feed::TICK).await;
        }
    }

    fn cache(&self) -> MutexGuard<'_, ProductCache> {
        self.shared.cache.lock()
    }
}
