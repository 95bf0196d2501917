//! Ctrl-C for every command but `serve`: stop the clusters this command started for itself
//! (see [`storectl::cluster::ephemeral`]) and remove their directories, so nothing is left
//! running or lying around after an interrupted demo, chaos run or bench.

use crate::exit::Exit;

/// Handles Ctrl-C on a thread of its own for the rest of the process.
pub fn stop_ephemeral_clusters_on_ctrl_c() {
    std::thread::spawn(|| {
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
        storectl::cluster::ephemeral::stop_all();
        std::process::exit(Exit::Interrupted.code() as i32);
    });
}
