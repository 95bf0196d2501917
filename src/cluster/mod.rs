//! A cluster on this machine, by job:
//!
//! - [`state_dir`]: the state directory: the cluster's record, pid files, logs, data files.
//! - [`plan`]: what `up` starts: [`UpOptions`] and the record of every service.
//! - [`lifecycle`]: `up`, `down`, `kill` and `restart`: child processes started and stopped.
//! - [`status`]: what every service says of itself, and who leads.
//! - [`ephemeral`]: a cluster in a temporary directory, stopped and removed when dropped.
//! - [`process`]: spawning and signalling processes by pid.
//! - [`lossy`]: the lossy disk of a cluster started with `up --lossy-disk`.
//! - [`members`]: each replica group's members, as its leader knows them.
//!
//! Every service is a `storectl serve --cluster STATE_DIR/cluster.toml …` child process: the
//! cluster file names every address, as it does for a cluster spread over hosts.
//! `cluster.json` records what each was started with ([`ServiceConfig`]), so `restart` starts it
//! again exactly so.

pub mod ephemeral;
pub mod lifecycle;
pub mod lossy;
pub mod member_change;
pub mod members;
pub mod plan;
pub mod process;
pub mod reshape;
pub mod state_dir;
pub mod status;
pub mod stock;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::cluster_file::ClusterFile;
use crate::services::{ServiceConfig, ServiceName};
use crate::tool_error::ToolError;

pub use ephemeral::Ephemeral;
pub use lifecycle::{down, kill, restart, restart_together, up};
pub use plan::{plan, UpOptions};
pub use process::Signal;
pub use state_dir::StateDir;
pub use status::{
    find_catalog_leader, find_leader, problem, render_status, status, status_of, wait_caught_up,
    ServiceStatus,
};
pub use stock::check_stock;

/// The record `up` writes in the state directory: what every service was started with.
pub const CLUSTER_FILE: &str = "cluster.json";
/// The cluster file `up` writes in the state directory, which every service reads.
pub const TOPOLOGY_FILE: &str = "cluster.toml";
/// Where a cluster started with `up --tls` keeps its CA, certificates and keys.
pub const TLS_DIR: &str = "tls";
/// Where a cluster started with fault hooks keeps its services' fault directories.
pub const FAULTS_DIR: &str = "faults";

/// A cluster on this machine: where every service listens (its cluster file) and what each was
/// started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    pub topology: ClusterFile,
    pub services: Vec<ServiceConfig>,
}

/// `cluster.json`: the services' records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    services: Vec<ServiceConfig>,
}

impl ClusterSpec {
    pub fn service(&self, name: ServiceName) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.name() == name)
    }

    pub fn names(&self) -> impl Iterator<Item = ServiceName> + '_ {
        self.services.iter().map(ServiceConfig::name)
    }

    /// Where service `name` listens, `host:port`.
    pub fn address(&self, name: ServiceName) -> Option<&str> {
        self.topology.address(name)
    }

    pub fn url(&self, name: ServiceName) -> Option<String> {
        self.topology.url(name)
    }

    /// The first front end: the one tools talk to unless told otherwise.
    pub fn frontend_url(&self) -> String {
        self.topology
            .frontend
            .first()
            .map(|f| self.topology.base_url(&f.address))
            .unwrap_or_default()
    }

    /// Names a service of this cluster: `catalog-N`, `frontend`, `frontend-N`, `order-N`,
    /// `leader` (the order replica that leads now) or `catalog-leader`.
    pub fn resolve(&self, target: Target) -> crate::tool_error::Result<ServiceName> {
        let name = match target {
            Target::CatalogLeader => find_catalog_leader(&self.topology)
                .map(ServiceName::Catalog)
                .ok_or(ToolError::NoLeaderNow { group: "catalog" })?,
            Target::Leader => find_leader(&self.topology)
                .map(ServiceName::Order)
                .ok_or(ToolError::NoLeaderNow { group: "order" })?,
            Target::Service(name) => name,
        };
        if self.service(name).is_none() {
            let names: Vec<String> = self.names().map(|n| n.to_string()).collect();
            return Err(ToolError::usage(format!(
                "unknown target '{name}'; use one of {}, leader, catalog-leader",
                names.join(", ")
            )));
        }
        Ok(name)
    }
}

/// What `kill` and `restart` act on: a service, or whichever replica of a group leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The order replica that leads.
    Leader,
    /// The catalog replica that leads.
    CatalogLeader,
    Service(ServiceName),
}

impl From<ServiceName> for Target {
    fn from(name: ServiceName) -> Self {
        Target::Service(name)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Leader => f.write_str("leader"),
            Target::CatalogLeader => f.write_str("catalog-leader"),
            Target::Service(name) => name.fmt(f),
        }
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "leader" => return Ok(Target::Leader),
            "catalog-leader" => return Ok(Target::CatalogLeader),
            _ => {}
        }
        s.parse().map(Target::Service).map_err(|_| {
            format!("unknown target '{s}'; use one of catalog-1, catalog-2, catalog-3, order-1, order-2, order-3, frontend, frontend-N, leader, catalog-leader")
        })
    }
}
