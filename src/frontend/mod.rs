//! The front end: the public API. Product queries are served from an LRU cache or the catalog;
//! orders and order queries go to the order leader, retried on a new leader when one fails.

pub mod cache;
pub mod leader;
mod routes;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::peer::PeerClient;
use crate::secret::Secret;
use crate::services::FrontendOptions;
use crate::tasks::TaskGuard;
use cache::ProductCache;
use leader::LeaderTracker;

#[derive(Clone)]
pub struct Frontend {
    shared: Arc<Shared>,
}

struct Shared {
    catalog: String,
    client: PeerClient,
    cache: Mutex<ProductCache>,
    leader: LeaderTracker,
    failover_timeout: Duration,
    health_interval: Duration,
    header_read_timeout: Duration,
    secret: Secret,
}

impl Frontend {
    /// A front end as `config` describes it; `secret` is presented to the other services and
    /// required of invalidations.
    pub fn new(config: &FrontendOptions, secret: Secret) -> Self {
        let client = PeerClient::for_services(&secret);
        Frontend {
            shared: Arc::new(Shared {
                catalog: config.peers.catalog.clone(),
                leader: LeaderTracker::new(config.peers.replicas.clone(), client.clone()),
                client,
                cache: Mutex::new(ProductCache::new(config.cache_size)),
                failover_timeout: config.failover_timeout.get(),
                health_interval: config.health_interval.get(),
                header_read_timeout: config.header_read_timeout.get(),
                secret,
            }),
        }
    }

    /// Serves on `listener` until `shutdown`, watching the order leader every health interval.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let mut tasks = TaskGuard::default();
        let monitor = self
            .shared
            .leader
            .clone()
            .monitor(self.shared.health_interval);
        tasks.spawn(monitor);
        let header_read_timeout = self.shared.header_read_timeout;
        crate::http::serve(listener, self, header_read_timeout, shutdown).await;
    }

    fn cache(&self) -> MutexGuard<'_, ProductCache> {
        self.shared.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}
