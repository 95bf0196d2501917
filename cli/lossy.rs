//! `storectl lossy-disk`: a disk for power-cut tests, served in the foreground until SIGTERM or
//! Ctrl-C, then unmounted.

use std::path::Path;

use anyhow::{Context, Result};

use crate::args::LossyDiskArgs;
use crate::exit::Exit;

pub fn run(args: &LossyDiskArgs) -> Result<Exit> {
    crate::init_logging("info");
    if let Some(why) = storectl::cluster::lossy::unavailable() {
        return Err(storectl::Error::Usage(why).into());
    }
    require_dir(&args.mountpoint, "the mount point")?;
    let session = storectl::lossy::fuse::mount(&args.backing, &args.mountpoint)
        .with_context(|| format!("cannot mount a lossy disk at {}", args.mountpoint.display()))?;
    tracing::info!(
        "lossy disk over {} mounted at {}; `echo cut > {}/{}` cuts the power",
        args.backing.display(),
        args.mountpoint.display(),
        args.mountpoint.display(),
        storectl::lossy::fuse::CONTROL
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(storectl::http::shutdown_signal());
    // Unmounts: what was written stays, as after a clean shutdown.
    drop(session);
    tracing::info!("unmounted {}", args.mountpoint.display());
    Ok(Exit::Success)
}

fn require_dir(path: &Path, what: &str) -> Result<()> {
    if !path.is_dir() {
        return Err(storectl::Error::Usage(format!(
            "{what} {} is not a directory; make it first",
            path.display()
        ))
        .into());
    }
    Ok(())
}
