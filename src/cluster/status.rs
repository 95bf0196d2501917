//! What every service of a cluster says of itself (`storectl status`), and which replica leads.

use serde::Serialize;

use super::{ClusterSpec, StateDir};
use crate::config::{self, REPLICA_IDS};
use crate::error::Result;
use crate::services::ServiceName;
use crate::tool_http;
use crate::wire::{CacheStats, Data, FrontendHealth, ReplicaHealth, Role};

/// One row of `storectl status`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServiceStatus {
    pub name: ServiceName,
    pub pid: Option<u32>,
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
}

/// Whether every service answers and a replica leads: the cluster can take orders.
pub fn healthy(rows: &[ServiceStatus]) -> bool {
    rows.iter().all(|r| r.alive) && rows.iter().any(|r| r.role.as_deref() == Some("leader"))
}

/// The state of every service of the cluster, from pid files and health checks.
pub fn status(state: &StateDir) -> Result<Vec<ServiceStatus>> {
    let spec = state.load()?;
    let agent = tool_http::health_agent();
    let mut rows = Vec::new();
    for service in &spec.services {
        let name = service.name();
        let pid = state.live_pid(name);
        let url = format!("{}/health", config::url(&spec.host, service.port()));
        let health = pid
            .and_then(|_| tool_http::get(&agent, &url).ok())
            .filter(|r| r.status == 200);
        let mut row = ServiceStatus {
            name,
            pid,
            port: service.port(),
            alive: health.is_some(),
            role: None,
            ready: None,
            term: None,
            last_order: None,
            orders: None,
            leader_id: None,
            cache: None,
        };
        if let Some(reply) = health {
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
                ServiceName::Frontend => {
                    if let Some(Data { data: h }) = reply.json::<Data<FrontendHealth>>() {
                        row.leader_id = h.leader_id;
                        row.cache = Some(h.cache);
                    }
                }
                ServiceName::Catalog => {}
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// `storectl status` as a table.
pub fn render_status(rows: &[ServiceStatus]) -> String {
    let mut out = format!(
        "{:<10} {:>8} {:>6} {:<6} {:<9} {:>10}  {}\n",
        "SERVICE", "PID", "PORT", "ALIVE", "ROLE", "LAST ORDER", "CACHE"
    );
    for row in rows {
        let dash = || "-".to_string();
        let cache = row
            .cache
            .map(|c| {
                format!(
                    "{} hits, {} misses, {} evictions, {}/{} entries",
                    c.hits, c.misses, c.evictions, c.size, c.capacity
                )
            })
            .unwrap_or_else(dash);
        let role = match (&row.role, row.ready) {
            (Some(role), Some(false)) => format!("{role}*"),
            (Some(role), _) => role.clone(),
            (None, _) => dash(),
        };
        out.push_str(&format!(
            "{:<10} {:>8} {:>6} {:<6} {:<9} {:>10}  {}\n",
            row.name.to_string(),
            row.pid.map(|p| p.to_string()).unwrap_or_else(dash),
            row.port,
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

/// The id of the replica that leads, asking the front end first, then the replicas.
pub fn find_leader(spec: &ClusterSpec) -> Option<u32> {
    let agent = tool_http::agent();
    let from_frontend = tool_http::get(&agent, &format!("{}/health", spec.frontend_url()))
        .ok()
        .and_then(|r| r.json::<Data<FrontendHealth>>())
        .and_then(|h| h.data.leader_id);
    from_frontend.or_else(|| {
        REPLICA_IDS.iter().copied().find(|&id| {
            spec.url(ServiceName::Order(id))
                .and_then(|url| tool_http::get(&agent, &format!("{url}/health")).ok())
                .and_then(|r| r.json::<Data<ReplicaHealth>>())
                .is_some_and(|h| h.data.role == Role::Leader)
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
