//! `storectl dashboard`: serves the live view of [`storectl::dashboard`] until Ctrl-C or
//! SIGTERM. The readings come from the same places as `top`'s.

use std::time::Duration;

use anyhow::{Context, Result};
use storectl::dashboard::Site;

use crate::args::DashboardArgs;
use crate::exit::Exit;
use crate::top::Source;

/// How long a browser may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(args: &DashboardArgs) -> Result<Exit> {
    let (source, title) = Source::open(&args.state, args.cluster.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the dashboard's runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {}: pick another address with --listen 127.0.0.1:PORT",
                    args.listen
                )
            })?;
        let address = listener.local_addr()?;
        if !address.ip().is_loopback() {
            eprintln!(
                "storectl: the dashboard listens on {address}: anyone who can reach it sees \
                 the cluster's addresses and traffic"
            );
        }
        println!("dashboard of {title} at http://{address}/ (Ctrl-C to stop)");
        let (closing_tx, closing) = tokio::sync::watch::channel(false);
        let site = Site::start(
            title,
            Box::new(move || source.read()),
            args.interval.get(),
            closing,
        );
        let shutdown = async move {
            storectl::http::shutdown_signal().await;
            closing_tx.send_replace(true);
        };
        storectl::http::serve(listener, site, HEADER_READ_TIMEOUT, None, shutdown).await;
        Ok(Exit::Success)
    })
}
