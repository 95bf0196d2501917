//! A cluster on this machine, by job:
//!
//! - [`state_dir`]: the state directory: the cluster's record, pid files, logs, data files.
//! - [`plan`]: what `up` starts: [`UpOptions`] and the record of every service.
//! - [`lifecycle`]: `up`, `down`, `kill` and `restart`: child processes started and stopped.
//! - [`status`]: what every service says of itself, and who leads.
//! - [`ephemeral`]: a cluster in a temporary directory, stopped and removed when dropped.
//! - [`process`]: spawning and signalling processes by pid.
//!
//! Every service is a `storectl serve …` child process; `cluster.json` records what each was
//! started with ([`ServiceConfig`]), so `restart` starts it again exactly so.

pub mod ephemeral;
pub mod lifecycle;
pub mod plan;
pub mod process;
pub mod state_dir;
pub mod status;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::config;
use crate::services::{ServiceConfig, ServiceName};

pub use ephemeral::Ephemeral;
pub use lifecycle::{down, kill, restart, up};
pub use plan::{plan, UpOptions};
pub use process::Signal;
pub use state_dir::StateDir;
pub use status::{find_leader, healthy, render_status, status, ServiceStatus};

/// The record `up` writes in the state directory.
pub const CLUSTER_FILE: &str = "cluster.json";
/// Where a cluster started with fault hooks keeps its services' fault directories.
pub const FAULTS_DIR: &str = "faults";

/// What `up` records about a cluster: every service and what it was started with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterSpec {
    pub host: String,
    pub port_base: u16,
    pub services: Vec<ServiceConfig>,
}

impl ClusterSpec {
    pub fn service(&self, name: ServiceName) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.name() == name)
    }

    pub fn names(&self) -> impl Iterator<Item = ServiceName> + '_ {
        self.services.iter().map(ServiceConfig::name)
    }

    pub fn url(&self, name: ServiceName) -> Option<String> {
        self.service(name)
            .map(|s| config::url(&self.host, s.port()))
    }

    pub fn frontend_url(&self) -> String {
        config::url(&self.host, config::frontend_port(self.port_base))
    }

    /// Names a service of this cluster: `catalog`, `frontend`, `order-N`, or `leader` (the
    /// order replica that leads now).
    pub fn resolve(&self, target: Target) -> crate::Result<ServiceName> {
        let name = match target {
            Target::Leader => find_leader(self).map(ServiceName::Order).ok_or_else(|| {
                crate::Error::Cluster(
                    "no order replica is leading right now; see `storectl status`, and start \
                     the cluster with `storectl up` if it is down"
                        .into(),
                )
            })?,
            Target::Service(name) => name,
        };
        if self.service(name).is_none() {
            let names: Vec<String> = self.names().map(|n| n.to_string()).collect();
            return Err(crate::Error::Usage(format!(
                "unknown target '{name}'; use one of {}, leader",
                names.join(", ")
            )));
        }
        Ok(name)
    }
}

/// What `kill` and `restart` act on: a service, or whichever order replica leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Leader,
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
            Target::Service(name) => name.fmt(f),
        }
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "leader" {
            return Ok(Target::Leader);
        }
        s.parse().map(Target::Service).map_err(|_| {
            format!("unknown target '{s}'; use one of catalog, frontend, order-1, order-2, order-3, leader")
        })
    }
}
