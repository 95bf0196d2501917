//! A cluster for the length of one command (`demo`, `bench`, `chaos` with no cluster up): in a
//! temporary directory, on free ports, stopped and removed when its guard is dropped, and on
//! Ctrl-C through [`stop_all`].

use parking_lot::Mutex;
use std::path::{Path, PathBuf};

use super::{down, up, ClusterSpec, StateDir, UpOptions};
use crate::config;
use crate::error::Error;
use crate::tool_error::Result;

/// The state directories of the ephemeral clusters alive in this process, for [`stop_all`].
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn live() -> parking_lot::MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock()
}

/// Owns a cluster in a temporary directory: dropping it stops the cluster and removes the
/// directory (unless [`Ephemeral::keep`] was called).
#[derive(Debug)]
pub struct Ephemeral {
    /// `None` once kept: the directory then outlives the guard.
    dir: Option<tempfile::TempDir>,
    state: StateDir,
}

impl Ephemeral {
    /// Makes the temporary directory, named `storectl-<purpose>-…`; no service runs yet.
    pub fn new(purpose: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("storectl-{purpose}-"))
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let state = StateDir::new(dir.path());
        live().push(dir.path().to_path_buf());
        Ok(Ephemeral {
            dir: Some(dir),
            state,
        })
    }

    /// Starts the cluster with `options` on free ports (`options.port_base` is not used).
    pub fn up(&self, options: &UpOptions, exe: &Path) -> Result<ClusterSpec> {
        let options = UpOptions {
            port_base: config::find_free_port_base(&options.host)?,
            ..options.clone()
        };
        up(&self.state, &options, exe)
    }

    pub fn state(&self) -> &StateDir {
        &self.state
    }

    pub fn root(&self) -> &Path {
        self.state.root()
    }

    /// Stops the cluster but keeps its directory (data files and logs); returns where it is.
    pub fn keep(mut self) -> PathBuf {
        stop(self.state.root());
        match self.dir.take() {
            Some(dir) => dir.keep(),
            None => self.state.root().to_path_buf(),
        }
    }
}

impl Drop for Ephemeral {
    fn drop(&mut self) {
        // A kept cluster was stopped by `keep`; otherwise the TempDir removes the directory as
        // it drops, after this.
        if self.dir.is_some() {
            stop(self.state.root());
        }
    }
}

/// Stops the cluster in `root`, if any of it runs, and forgets it.
fn stop(root: &Path) {
    let state = StateDir::new(root);
    if state.spec_path().exists() {
        let _ = down(&state);
    }
    live().retain(|dir| dir != root);
}

/// Stops every ephemeral cluster of this process and removes its directory: for Ctrl-C, which
/// ends the process without running destructors.
pub fn stop_all() {
    let roots: Vec<PathBuf> = live().clone();
    for root in roots {
        stop(&root);
        let _ = std::fs::remove_dir_all(&root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_guard_removes_its_directory_and_is_forgotten() {
        let cluster = Ephemeral::new("test").unwrap();
        let root = cluster.root().to_path_buf();
        assert!(root.is_dir());
        assert!(live().contains(&root));
        drop(cluster);
        assert!(!root.exists());
        assert!(!live().contains(&root));
    }

    #[test]
    fn a_kept_cluster_keeps_its_directory() {
        let cluster = Ephemeral::new("test").unwrap();
        let root = cluster.keep();
        assert!(root.is_dir());
        assert!(!live().contains(&root));
        std::fs::remove_dir_all(root).unwrap();
    }
}
