//! `storectl serve catalog|frontend|order`: one service in the foreground until SIGTERM/Ctrl-C.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result};
use storectl::catalog::Catalog;
use storectl::cluster_file::Entry;
use storectl::frontend::Frontend;
use storectl::order::Replica;
use storectl::secret::Secret;
use storectl::services::{
    CatalogOptions, FrontendOptions, OrderOptions, Placement, ServiceConfig, ServiceName,
};
use storectl::transport::{PublicTls, Transport};

use crate::args::ServeArgs;
use crate::exit::Exit;

/// How long a stopping service may take to finish the requests in flight.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Runs the service on one thread.
///
/// Every request and every replication message wakes each service it passes through, and a
/// multi-thread runtime hands many of those wake-ups from one of its threads to another: a
/// context switch each, which costs more than the work itself on a virtual machine. With one
/// thread per service, measured on two cores running a whole cluster, an order took a third less
/// CPU across the services (332 µs against 494 µs), 32 connections placed 31% more orders per
/// second, and one order's p50 fell by 7%; cached queries at 32 connections kept their rate.
/// Blocking work (the log's writes and fsyncs, the catalog's CSV view, snapshots) runs on
/// threads of its own, as it did.
pub fn run(args: ServeArgs) -> Result<Exit> {
    crate::init_logging("info,openraft=warn");
    let secret = args.secret.secret()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let placement = args.service.placement().clone();
        let cluster = placement.cluster_file()?;
        let start = Start {
            placement: &placement,
            cluster: &cluster,
            secret,
        };
        match args.service {
            ServiceConfig::Catalog(options) => start.catalog(options).await,
            ServiceConfig::Frontend(options) => start.frontend(options).await,
            ServiceConfig::Order(options) => start.order(options).await,
        }
    })
}

/// What every service starts from: where it listens, the cluster file, the cluster's secret.
struct Start<'a> {
    placement: &'a Placement,
    cluster: &'a storectl::cluster_file::ClusterFile,
    secret: Secret,
}

/// A service's place in the cluster: its entry, the socket it listens on, and its TLS.
struct Placed {
    entry: Entry,
    listener: tokio::net::TcpListener,
    transport: Transport,
}

impl Start<'_> {
    /// Finds the service's entry (`entry`, in the cluster file's `[[table]]`), listens where
    /// it says, and makes the service's TLS; `name` names the service of the entry's id.
    async fn place(
        &self,
        entry: std::result::Result<&Entry, String>,
        table: &str,
        name: impl FnOnce(u32) -> ServiceName,
        public: Option<PublicTls>,
    ) -> Result<Placed> {
        let entry = entry
            .cloned()
            .map_err(|e| storectl::Error::Usage(format!("{}: {e}", self.placement.file_name())))?;
        let what = format!("[[{table}]] id {}", entry.id);
        let listener = bind(self.placement, &what, &entry.address).await?;
        let transport = transport(self.cluster, self.placement, name(entry.id), public)?;
        Ok(Placed {
            entry,
            listener,
            transport,
        })
    }

    async fn catalog(self, options: CatalogOptions) -> Result<Exit> {
        let entry = self.cluster.catalog_entry(options.id);
        let placed = self
            .place(entry, "catalog", ServiceName::Catalog, None)
            .await?;
        let catalog = Catalog::open(&options, self.cluster, self.secret, placed.transport).await?;
        let listener = placed.listener;
        tracing::info!(
            "catalog replica {} listening on {}",
            placed.entry.id,
            address(&listener)
        );
        until_stopped(|stop| catalog.run(listener, stop)).await
    }

    async fn frontend(self, options: FrontendOptions) -> Result<Exit> {
        options
            .check(self.cluster.order.len())
            .map_err(storectl::Error::Usage)?;
        let entry = self.cluster.frontend_entry(options.id);
        let name = |id| self.cluster.frontend_name(id);
        let placed = self
            .place(entry, "frontend", name, options.public_tls())
            .await?;
        let (id, listener) = (placed.entry.id, placed.listener);
        tracing::info!(
            "front end {id} listening on {} (cache of {})",
            address(&listener),
            options.cache_size
        );
        let frontend = Frontend::new(&options, self.cluster, id, self.secret, placed.transport);
        until_stopped(|stop| async move {
            frontend.run(listener, stop).await;
            Ok::<_, storectl::Error>(())
        })
        .await
    }

    async fn order(self, options: OrderOptions) -> Result<Exit> {
        let entry = self.cluster.order_entry(options.id);
        let placed = self.place(entry, "order", ServiceName::Order, None).await?;
        let replica = Replica::open(&options, self.cluster, self.secret, placed.transport).await?;
        let listener = placed.listener;
        tracing::info!(
            "order replica {} listening on {}",
            placed.entry.id,
            address(&listener)
        );
        until_stopped(|stop| replica.run(listener, stop)).await
    }
}

/// The service's TLS, as the cluster file's `[tls]` table and `public` say.
fn transport(
    cluster: &storectl::cluster_file::ClusterFile,
    placement: &Placement,
    name: ServiceName,
    public: Option<PublicTls>,
) -> storectl::Result<Transport> {
    Transport::for_service(cluster, placement.cluster.as_ref(), name, public.as_ref())
}

/// Listens where the service's entry `what` in the cluster file says (`own`), or on `--listen`.
async fn bind(placement: &Placement, what: &str, own: &str) -> Result<tokio::net::TcpListener> {
    let listen = placement.listen_address(own);
    match tokio::net::TcpListener::bind(listen.as_str()).await {
        Ok(listener) => Ok(listener),
        Err(e)
            if e.kind() == std::io::ErrorKind::AddrNotAvailable && placement.listen.is_none() =>
        {
            Err(storectl::Error::Usage(format!(
                "{}: {what} has address {own}, which is not one of this host's; start it on \
                 that host, or pass --listen ADDRESS",
                placement.file_name()
            ))
            .into())
        }
        Err(source) => Err(storectl::Error::Bind {
            addr: listen,
            source,
        }
        .into()),
    }
}

fn address(listener: &tokio::net::TcpListener) -> String {
    listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Runs a service until SIGTERM or Ctrl-C, then gives it [`STOP_GRACE`] to finish.
async fn until_stopped<F, Fut, E>(service: F) -> Result<Exit>
where
    F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
    Fut: Future<Output = std::result::Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let stop = Box::pin(async move {
        storectl::http::shutdown_signal().await;
        tracing::info!("stopping: finishing requests in flight");
        let _ = stopping_tx.send(());
    });
    let forced = async move {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(STOP_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        ended = service(stop) => {
            ended?;
            tracing::info!("stopped");
        }
        _ = forced => tracing::warn!("requests still running after {}s; stopping anyway", STOP_GRACE.as_secs()),
    }
    Ok(Exit::Success)
}
