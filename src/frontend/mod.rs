//! The front end: the public API. Product queries are served from an LRU cache or the catalog;
//! orders and order queries go to the order leader, retried on a new leader when one fails.

pub mod cache;
pub mod leader;
mod routes;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::ReplicaAddr;
use crate::peer::PeerClient;
use crate::secret::Secret;
use crate::tasks::TaskGuard;
use cache::ProductCache;
use leader::LeaderTracker;

#[derive(Debug, Clone)]
pub struct FrontendConfig {
    pub catalog: String,
    pub replicas: Vec<ReplicaAddr>,
    pub cache_size: usize,
    pub health_interval: Duration,
    /// How long an order or order query keeps being retried on new leaders before it gets 503.
    pub failover_timeout: Duration,
    /// The cluster's secret: presented to the other services, required of invalidations.
    pub secret: Secret,
}

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
    secret: Secret,
}

impl Frontend {
    pub fn new(config: &FrontendConfig) -> Self {
        let client = PeerClient::for_services(&config.secret);
        Frontend {
            shared: Arc::new(Shared {
                catalog: config.catalog.clone(),
                leader: LeaderTracker::new(config.replicas.clone(), client.clone()),
                client,
                cache: Mutex::new(ProductCache::new(config.cache_size)),
                failover_timeout: config.failover_timeout,
                secret: config.secret.clone(),
            }),
        }
    }

    /// Serves on `listener` until `shutdown`, watching the order leader every `health_interval`.
    pub async fn run(
        self,
        listener: TcpListener,
        health_interval: Duration,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let mut tasks = TaskGuard::default();
        tasks.spawn(self.shared.leader.clone().monitor(health_interval));
        crate::http::serve(listener, self, shutdown).await;
    }

    fn cache(&self) -> MutexGuard<'_, ProductCache> {
        self.shared.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}
