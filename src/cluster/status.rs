//! What every service of a cluster says of itself (`storectl status`), and which replica leads:
//! for a cluster in a state directory (with pids), or for any cluster file, over the network.

use serde::Serialize;

use super::StateDir;
use crate::cluster_file::ClusterFile;
use crate::error::Result;
use crate::services::ServiceName;
use crate::tool_http;
use crate::wire::{CacheStats, Data, FrontendHealth, ReplicaHealth, Role};

/// One row of `storectl status`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServiceStatus {
    pub name: ServiceName,
    /// For a cluster on this machine.
    pub pid: Option<u32>,
    /// `host:port`, as the cluster file has it.
    pub address: String,
    pub port: u16,
    pub alive: bool,
    /// `leader` or `follower` for order replicas.
    pub role: Option<String>,
    pub ready: Option<bool>,
    pub term: Option<u64>,
    /// The number of the last order the replica has applied: committed, so durable.
    pub last_order: Option<u64>,
    pub orders: Option<u64>,
    pub leader_id: Option<u32>,
    pub cache: Option<CacheStats>,
    /// For a front end: whether the catalog vouches for its cache now.
    pub cache_leased: Option<bool>,
    /// For a front end: its latency histograms so far (for `storectl top`; not in `--json`).
    #[serde(skip)]
    pub latency: Option<crate::wire::FrontendLatency>,
}

/// Whether every service answers and a replica leads: the cluster can take orders.
pub fn healthy(rows: &[ServiceStatus]) -> bool {
    rows.iter().all(|r| r.alive) && rows.iter().any(|r| r.role.as_deref() == Some("leader"))
}

/// The state of every service of the cluster in `state`, from pid files and health checks: a
/// service whose process is gone is not asked.
pub fn status(state: &StateDir) -> Result<Vec<ServiceStatus>> {
    let spec = state.load()?;
    let names: Vec<ServiceName> = spec.names().collect();
    Ok(names
        .into_iter()
        .filter_map(|name| {
            let address = spec.address(name)?.to_string();
            let pid = state.live_pid(name);
            Some(probe(name, address, pid, pid.is_some()))
        })
        .collect())
}

/// The state of every service in a cluster file, asked over the network.
pub fn status_of(topology: &ClusterFile) -> Vec<ServiceStatus> {
    topology
        .services()
        .into_iter()
        .map(|(name, address)| probe(name, address, None, true))
        .collect()
}

/// One service's row: its health, when `ask`.
fn probe(name: ServiceName, address: String, pid: Option<u32>, ask: bool) -> ServiceStatus {
    let agent = tool_http::health_agent();
    let url = format!("{}/health", crate::config::base_url(&address));
    let health = ask
        .then(|| tool_http::get(&agent, &url).ok())
        .flatten()
        .filter(|r| r.status == 200);
    let port = address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(0);
    let mut row = ServiceStatus {
        name,
        pid,
        address,
        port,
        alive: health.is_some(),
        role: None,
        ready: None,
        term: None,
        last_order: None,
        orders: None,
        leader_id: None,
        cache: None,
        cache_leased: None,
        latency: None,
    };
    let Some(reply) = health else {
        return row;
    };
    match name {
        ServiceName::Order(_) => {
            if let Some(Data { data: h }) = reply.json::<Data<ReplicaHealth>>() {
                row.role = Some(h.role.as_str().into());
                row.ready = Some(h.ready);
                row.term = Some(h.term);
                row.orders = Some(h.len);
                row.last_order = h.len.checked_sub(1);
                row.leader_id = h.leader_id;
            }
        }
        ServiceName::Frontend(_) => {
            if let Some(Data { data: h }) = reply.json::<Data<FrontendHealth>>() {
                row.leader_id = h.leader_id;
                row.cache = Some(h.cache);
                row.cache_leased = Some(h.cache_leased);
                row.latency = Some(h.latency);
            }
        }
        ServiceName::Catalog => {}
    }
    row
}

/// `storectl status` as a table.
pub fn render_status(rows: &[ServiceStatus]) -> String {
    let mut out = format!(
        "{:<11} {:>8} {:<21} {:<6} {:<9} {:>10}  {}\n",
        "SERVICE", "PID", "ADDRESS", "ALIVE", "ROLE", "LAST ORDER", "CACHE"
    );
    for row in rows {
        let dash = || "-".to_string();
        let cache = row
            .cache
            .map(|c| {
                format!(
                    "{} hits, {} misses, {} evictions, {}/{} entries{}",
                    c.hits,
                    c.misses,
                    c.evictions,
                    c.size,
                    c.capacity,
                    if row.cache_leased == Some(false) {
                        " (no lease: not used)"
                    } else {
                        ""
                    }
                )
            })
            .unwrap_or_else(dash);
        let role = match (&row.role, row.ready) {
            (Some(role), Some(false)) => format!("{role}*"),
            (Some(role), _) => role.clone(),
            (None, _) => dash(),
        };
        out.push_str(&format!(
            "{:<11} {:>8} {:<21} {:<6} {:<9} {:>10}  {}\n",
            row.name.to_string(),
            row.pid.map(|p| p.to_string()).unwrap_or_else(dash),
            row.address,
            if row.alive { "yes" } else { "no" },
            role,
            row.last_order.map(|n| n.to_string()).unwrap_or_else(dash),
            cache
        ));
    }
    if rows.iter().any(|r| r.ready == Some(false)) {
        out.push_str("* still catching up with the leader\n");
    }
    out
}

/// The id of the replica that leads, asking the front ends first, then the replicas.
pub fn find_leader(topology: &ClusterFile) -> Option<u32> {
    let agent = tool_http::agent();
    let from_frontend = topology.frontend_urls().into_iter().find_map(|(_, url)| {
        tool_http::get(&agent, &format!("{url}/health"))
            .ok()
            .and_then(|r| r.json::<Data<FrontendHealth>>())
            .and_then(|h| h.data.leader_id)
    });
    from_frontend.or_else(|| {
        topology.replicas().into_iter().find_map(|replica| {
            tool_http::get(&agent, &format!("{}/health", replica.url))
                .ok()
                .and_then(|r| r.json::<Data<ReplicaHealth>>())
                .filter(|h| h.data.role == Role::Leader)
                .map(|_| replica.id)
        })
    })
}

/// Whether every order replica has caught up and holds as many orders as the others.
pub fn replicas_converged(rows: &[ServiceStatus]) -> bool {
    let counts: Vec<Option<u64>> = rows
        .iter()
        .filter(|r| r.name.replica_id().is_some())
        .map(|r| r.orders.filter(|_| r.ready == Some(true)))
        .collect();
    counts.iter().all(|c| c.is_some() && *c == counts[0])
}
