//! `storectl serve catalog|frontend|order`: one service in the foreground until SIGTERM/Ctrl-C.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result};
use storectl::catalog::Catalog;
use storectl::frontend::Frontend;
use storectl::order::Replica;
use storectl::services::ServiceConfig;

use crate::args::ServeArgs;
use crate::exit::Exit;

/// How long a stopping service may take to finish the requests in flight.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub fn run(args: ServeArgs) -> Result<Exit> {
    crate::init_logging("info,openraft=warn");
    let secret = args.secret.secret()?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match args.service {
            ServiceConfig::Catalog(options) => {
                let catalog = Catalog::open(&options, secret)?;
                let listener = bind(&options.host, options.port).await?;
                tracing::info!("catalog listening on {}", address(&listener));
                until_stopped(|stop| async move {
                    catalog.run(listener, stop).await;
                    Ok(())
                })
                .await
            }
            ServiceConfig::Frontend(options) => {
                options.check().map_err(storectl::Error::Usage)?;
                let listener = bind(&options.host, options.port).await?;
                tracing::info!(
                    "front end listening on {} (cache of {})",
                    address(&listener),
                    options.cache_size
                );
                let frontend = Frontend::new(&options, secret);
                until_stopped(|stop| async move {
                    frontend.run(listener, stop).await;
                    Ok(())
                })
                .await
            }
            ServiceConfig::Order(options) => {
                let replica = Replica::open(&options, secret).await?;
                let listener = bind(&options.host, options.port()).await?;
                tracing::info!(
                    "order replica {} listening on {}",
                    options.id,
                    address(&listener)
                );
                until_stopped(|stop| replica.run(listener, stop)).await
            }
        }
    })
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
