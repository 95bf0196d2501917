//! Ctrl-C for commands that start clusters of their own: stop them and remove their files, so
//! nothing is left running or lying around after an interrupted demo or bench.

use std::path::PathBuf;

use storectl::cluster::{self, StateDir};

use crate::exit::Exit;

/// On Ctrl-C, stops every cluster in `clusters` (those not started yet are skipped), removes
/// `remove` if given, and exits with the interrupted code.
pub fn stop_clusters_on_ctrl_c(clusters: Vec<StateDir>, remove: Option<PathBuf>) {
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        if runtime.block_on(tokio::signal::ctrl_c()).is_err() {
            return;
        }
        eprintln!("\ninterrupted: stopping the clusters this command started");
        for state in &clusters {
            let _ = cluster::down(state);
        }
        if let Some(dir) = remove {
            let _ = std::fs::remove_dir_all(dir);
        }
        std::process::exit(Exit::Interrupted.code() as i32);
    });
}
