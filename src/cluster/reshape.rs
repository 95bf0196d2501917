//! `storectl member add|remove|replace` on a cluster in a state directory: the membership
//! change ([`super::member_change`]) with the processes and records around it. A new replica is
//! started as a new member (`--join`) at its port of the one-host layout and recorded, so
//! `status`, `kill`, `restart`, `down` and `up` know it; a replica that leaves is stopped and
//! forgotten, its files kept.

use std::path::Path;
use std::time::Duration;

use super::member_change::{Change, Done, GroupHandle};
use super::members::ReplicaGroup;
use super::{lifecycle, ClusterSpec, StateDir};
use crate::cluster_file::Entry;
use crate::config;
use crate::error::Error;
use crate::progress::Progress;
use crate::secret::Secret;
use crate::services::{ServiceConfig, ServiceName};
use crate::tool_error::{Result, ToolError};

/// A change of a local cluster's members; a new replica's address defaults to its port of the
/// one-host layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalChange {
    Add {
        id: u32,
        address: Option<String>,
    },
    Remove {
        id: u32,
    },
    Replace {
        id: u32,
        with: u32,
        address: Option<String>,
    },
}

/// Makes `change` to `group` of the cluster in `state`, starting and stopping its processes.
pub fn change(
    state: &StateDir,
    group: ReplicaGroup,
    change: &LocalChange,
    exe: &Path,
    progress: &dyn Progress,
    catch_up: Duration,
) -> Result<Done> {
    let mut spec = state.load()?;
    let secret = Secret::load(state.root()).map_err(|e| ToolError::NoSecret(e.to_string()))?;
    let (newcomer, leaving) = match change {
        LocalChange::Add { id, address } => (Some((*id, address.clone())), None),
        LocalChange::Remove { id } => (None, Some(*id)),
        LocalChange::Replace { id, with, address } => (Some((*with, address.clone())), Some(*id)),
    };
    let as_change = |address: String| match *change {
        LocalChange::Add { id, .. } => Change::Add { id, address },
        LocalChange::Remove { id } => Change::Remove { id },
        LocalChange::Replace { id, with, .. } => Change::Replace { id, with, address },
    };
    let address = match newcomer {
        Some((id, address)) => {
            let address = address.map_or_else(|| layout_address(&spec, group, id), Ok)?;
            start_newcomer(state, &mut spec, group, id, &address, exe)?;
            address
        }
        None => String::new(),
    };
    let done = GroupHandle::new(&spec.topology, group, &secret).apply(
        &as_change(address),
        progress,
        catch_up,
    )?;
    if let Some(id) = leaving {
        let name = service_name(group, id);
        lifecycle::stop_one(state, name)?;
        entries(&mut spec, group).retain(|e| e.id != id);
        spec.services.retain(|s| s.name() != name);
        state.save(&spec)?;
    }
    Ok(done)
}

fn service_name(group: ReplicaGroup, id: u32) -> ServiceName {
    match group {
        ReplicaGroup::Order => ServiceName::Order(id),
        ReplicaGroup::Catalog => ServiceName::Catalog(id),
    }
}

fn entries(spec: &mut ClusterSpec, group: ReplicaGroup) -> &mut Vec<Entry> {
    match group {
        ReplicaGroup::Order => &mut spec.topology.order,
        ReplicaGroup::Catalog => &mut spec.topology.catalog,
    }
}

/// Where replica `id` of `group` listens in the one-host layout of the cluster's port base.
fn layout_address(spec: &ClusterSpec, group: ReplicaGroup, id: u32) -> Result<String> {
    let first = spec
        .topology
        .frontend
        .iter()
        .min_by_key(|e| e.id)
        .map(|e| e.address.clone())
        .unwrap_or_default();
    let (host, base) = first
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host.to_string(), port.parse::<u16>().ok()?)))
        .ok_or_else(|| ToolError::NotHostPort(first.to_string()))?;
    if id > config::MAX_LOCAL_REPLICAS {
        return Err(ToolError::usage(format!(
            "ids above {} have no port in this cluster's layout: give one with --address HOST:PORT",
            config::MAX_LOCAL_REPLICAS
        )));
    }
    let port = match group {
        ReplicaGroup::Order => config::replica_port(base, id),
        ReplicaGroup::Catalog => config::catalog_port(base, id),
    };
    Ok(format!("{host}:{port}"))
}

/// Records replica `id` at `address` and starts it as a new member.
fn start_newcomer(
    state: &StateDir,
    spec: &mut ClusterSpec,
    group: ReplicaGroup,
    id: u32,
    address: &str,
    exe: &Path,
) -> Result<()> {
    let name = service_name(group, id);
    if spec.service(name).is_some() {
        return Err(ToolError::usage(format!(
            "{name} is already part of this cluster; pick an id no replica has (see `storectl \
             member list`)"
        )));
    }
    if std::net::TcpListener::bind(address).is_err() {
        return Err(ToolError::AddressTaken {
            address: address.to_string(),
            name,
        });
    }
    let template = spec
        .services
        .iter()
        .find(|s| match group {
            ReplicaGroup::Order => matches!(s, ServiceConfig::Order(_)),
            ReplicaGroup::Catalog => matches!(s, ServiceConfig::Catalog(_)),
        })
        .cloned()
        .ok_or(ToolError::NoReplica(group.name()))?;
    let data_dir = state.data_dir(name);
    std::fs::create_dir_all(&data_dir).map_err(|e| Error::io(&data_dir, e))?;
    let service = as_replica(template, id, &data_dir);
    if lifecycle::has_replica_data(&service) {
        return Err(ToolError::usage(format!(
            "{} holds files of an earlier {name}: a new member starts from nothing; move them \
             away, or pick another id",
            data_dir.display()
        )));
    }
    entries(spec, group).push(Entry {
        id,
        address: address.to_string(),
    });
    spec.services.push(service.clone());
    if spec.topology.tls.is_some() {
        lifecycle::ensure_certificates(state, &spec.topology)?;
    }
    state.save(spec)?;
    lifecycle::start_joining(state, spec, &service, exe)?;
    Ok(())
}

/// A fellow replica's configuration made into replica `id`'s, keeping its files in `data_dir`.
fn as_replica(template: ServiceConfig, id: u32, data_dir: &Path) -> ServiceConfig {
    match template {
        ServiceConfig::Order(mut o) => {
            o.id = id;
            o.data_dir = data_dir.to_path_buf();
            ServiceConfig::Order(o)
        }
        ServiceConfig::Catalog(mut c) => {
            c.id = Some(id);
            c.data_dir = data_dir.to_path_buf();
            ServiceConfig::Catalog(c)
        }
        ServiceConfig::Frontend(_) => unreachable!("the template is a replica"),
    }
}
