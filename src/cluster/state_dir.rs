//! The state directory of one cluster: where its record, pid files, logs, fault directories and
//! data files live, and which of its services are running.

use std::path::{Path, PathBuf};

use super::{process, ClusterSpec, Record, CLUSTER_FILE, FAULTS_DIR, TOPOLOGY_FILE};
use crate::cluster_file::ClusterFile;
use crate::config::REPLICA_IDS;
use crate::error::Error;
use crate::services::ServiceName;
use crate::tool_error::{Result, ToolError};

/// Where a cluster started with `up --lossy-disk` has its replicas' directories.
pub const LOSSY_MOUNT: &str = "disk";
/// The real directory behind them.
const LOSSY_BACKING: &str = "disk-backing";

/// The state directory of one cluster.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn spec_path(&self) -> PathBuf {
        self.root.join(CLUSTER_FILE)
    }

    /// The cluster file every service of this cluster reads.
    pub fn topology_path(&self) -> PathBuf {
        self.root.join(TOPOLOGY_FILE)
    }

    pub fn pid_path(&self, service: ServiceName) -> PathBuf {
        self.root.join(format!("{service}.pid"))
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn log_path(&self, service: ServiceName) -> PathBuf {
        self.logs_dir().join(format!("{service}.log"))
    }

    /// `service`'s fault directory (see [`crate::fault`]), made on first use, when the cluster
    /// was started with fault hooks; `None` otherwise.
    pub fn fault_dir(&self, service: ServiceName) -> Option<PathBuf> {
        let hooks = self.root.join(FAULTS_DIR);
        if !hooks.is_dir() {
            return None;
        }
        let dir = hooks.join(service.to_string());
        std::fs::create_dir_all(&dir).ok()?;
        std::fs::canonicalize(&dir).ok()
    }

    /// Where `service` keeps its data files: the state directory itself, or on a cluster with
    /// a lossy disk, the replica's own directory on it.
    pub fn data_dir(&self, service: ServiceName) -> PathBuf {
        if self.is_lossy() && !service.is_frontend() {
            self.lossy_mount().join(service.to_string())
        } else {
            self.root.clone()
        }
    }

    /// Whether the replicas keep their files on a lossy disk (`up --lossy-disk`).
    pub fn is_lossy(&self) -> bool {
        self.lossy_backing().is_dir()
    }

    /// Where the lossy disk is mounted: one directory per replica.
    pub fn lossy_mount(&self) -> PathBuf {
        self.root.join(LOSSY_MOUNT)
    }

    /// The real directory behind the lossy disk.
    pub fn lossy_backing(&self) -> PathBuf {
        self.root.join(LOSSY_BACKING)
    }

    pub fn orders_path(&self, id: u32) -> PathBuf {
        self.data_dir(ServiceName::Order(id))
            .join(crate::order::orders_file_name(id))
    }

    /// The orders file of every order replica the cluster records (the default three when it
    /// records none).
    pub fn orders_paths(&self) -> Vec<PathBuf> {
        let ids: Vec<u32> = match self.load() {
            Ok(spec) => spec.topology.order.iter().map(|e| e.id).collect(),
            Err(_) => REPLICA_IDS.to_vec(),
        };
        ids.iter().map(|&id| self.orders_path(id)).collect()
    }

    /// The cluster that `up` recorded here; the tools of this process then speak its TLS.
    pub fn load(&self) -> Result<ClusterSpec> {
        if !self.root.is_dir() {
            return Err(ToolError::NoStateDir(self.root.clone()));
        }
        let path = self.spec_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ToolError::NoCluster(self.root.clone()))
            }
            Err(e) => return Err(Error::io(&path, e).into()),
        };
        let record: Record = serde_json::from_str(&text).map_err(|e| Error::Corrupt {
            path,
            line: e.line() as u64,
            message: format!(
                "{e} (a cluster recorded by another version of storectl: stop its services by \
                 their pid files, then run `storectl up` again)"
            ),
        })?;
        let topology = ClusterFile::load(&self.topology_path())?;
        crate::tool_http::trust_cluster(&topology)?;
        Ok(ClusterSpec {
            topology,
            services: record.services,
        })
    }

    /// Writes the cluster file and the services' records.
    pub(super) fn save(&self, spec: &ClusterSpec) -> Result<()> {
        spec.topology.save(&self.topology_path())?;
        let record = Record {
            services: spec.services.clone(),
        };
        let text = serde_json::to_vec_pretty(&record).unwrap_or_default();
        Ok(crate::storage::write_atomic(&self.spec_path(), &text)?)
    }

    pub fn pid(&self, service: ServiceName) -> Option<u32> {
        self.pid_record(service).map(|(pid, _)| pid)
    }

    /// A pid file holds `PID START_TIME`: the pid and when that process started, so that a
    /// later process given the same pid is never taken for ours (a file with the pid alone is
    /// checked by its command line only).
    fn pid_record(&self, service: ServiceName) -> Option<(u32, Option<u64>)> {
        process::read_pid_file(&self.pid_path(service))
    }

    /// The pid of `service` if it is running: the very process `up` or `restart` started.
    pub fn live_pid(&self, service: ServiceName) -> Option<u32> {
        process::live_pid_in(&self.pid_path(service))
    }

    /// The cluster recorded here, if every one of its services is running; otherwise an error
    /// that names those that are not and says how to start them.
    pub fn running(&self) -> Result<ClusterSpec> {
        let spec = self.load()?;
        let down: Vec<String> = spec
            .names()
            .filter(|&name| self.live_pid(name).is_none())
            .map(|name| name.to_string())
            .collect();
        if !down.is_empty() {
            return Err(ToolError::NotRunning {
                root: self.root.clone(),
                down,
            });
        }
        Ok(spec)
    }

    pub(super) fn write_pid(&self, service: ServiceName, pid: u32) -> Result<()> {
        process::write_pid_file(&self.pid_path(service), pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_state_dir_says_what_to_do() {
        let err = StateDir::new("/nonexistent/state")
            .load()
            .unwrap_err()
            .to_string();
        assert!(err.contains("storectl up"), "{err}");
    }
}
