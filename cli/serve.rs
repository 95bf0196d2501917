//! `storectl serve catalog|frontend|order`: one service in the foreground until SIGTERM/Ctrl-C.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result};
use storectl::catalog::{Catalog, CatalogConfig};
use storectl::config::{self, ReplicaAddr};
use storectl::frontend::{Frontend, FrontendConfig};
use storectl::order::{Replica, ReplicaConfig};

use crate::args::ServeCommand;
use crate::exit::Exit;

/// How long a stopping service may take to finish the requests in flight.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub fn run(command: ServeCommand) -> Result<Exit> {
    crate::init_logging("info,openraft=warn");
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match command {
            ServeCommand::Catalog(args) => {
                let catalog = Catalog::open(&CatalogConfig {
                    data_dir: args.data_dir.clone(),
                    frontend: Some(config::base_url(&args.frontend)),
                    restock_interval: args.restock_interval,
                    initial_stock: args.initial_stock,
                    secret: args.secret.secret()?,
                })?;
                let listener = bind(&args.listen.host, args.port).await?;
                tracing::info!("catalog listening on {}", address(&listener));
                until_stopped(|stop| async move {
                    catalog.run(listener, args.restock_interval, stop).await;
                    Ok(())
                })
                .await
            }
            ServeCommand::Frontend(args) => {
                let replicas = replicas_or_default(args.replicas, &args.listen.host);
                storectl::timeouts::check(replicas.len(), args.failover_timeout)
                    .map_err(storectl::Error::Usage)?;
                let config = FrontendConfig {
                    catalog: config::base_url(&args.catalog),
                    replicas,
                    cache_size: args.cache_size,
                    health_interval: args.health_interval,
                    failover_timeout: args.failover_timeout,
                    secret: args.secret.secret()?,
                };
                let listener = bind(&args.listen.host, args.port).await?;
                tracing::info!(
                    "front end listening on {} (cache of {})",
                    address(&listener),
                    args.cache_size
                );
                let frontend = Frontend::new(&config);
                until_stopped(|stop| async move {
                    frontend.run(listener, args.health_interval, stop).await;
                    Ok(())
                })
                .await
            }
            ServeCommand::Order(args) => {
                let port = args
                    .port
                    .unwrap_or_else(|| config::replica_port(config::DEFAULT_PORT_BASE, args.id));
                let replica = Replica::open(&ReplicaConfig {
                    id: args.id,
                    data_dir: args.data_dir.clone(),
                    replicas: replicas_or_default(args.replicas, &args.listen.host),
                    catalog: config::base_url(&args.catalog),
                    secret: args.secret.secret()?,
                })
                .await?;
                let listener = bind(&args.listen.host, port).await?;
                tracing::info!(
                    "order replica {} listening on {}",
                    args.id,
                    address(&listener)
                );
                until_stopped(|stop| replica.run(listener, stop)).await
            }
        }
    })
}

fn replicas_or_default(given: Vec<ReplicaAddr>, host: &str) -> Vec<ReplicaAddr> {
    if given.is_empty() {
        config::replica_addrs(host, config::DEFAULT_PORT_BASE)
    } else {
        given
    }
}

async fn bind(host: &str, port: u16) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|source| storectl::Error::Bind {
            addr: format!("{host}:{port}"),
            source,
        })
        .map_err(Into::into)
}

fn address(listener: &tokio::net::TcpListener) -> String {
    listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Runs a service until SIGTERM or Ctrl-C, then gives it [`STOP_GRACE`] to finish.
async fn until_stopped<F, Fut>(service: F) -> Result<Exit>
where
    F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
    Fut: Future<Output = storectl::Result<()>>,
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
