//! What every service of a cluster says of itself (`storectl status`), and which replica leads:
//! for a cluster in a state directory (with pids), or for any cluster file, over the network.

use serde::Serialize;

use super::StateDir;
use crate::cluster_file::ClusterFile;
use std::time::Duration;

use crate::config::ReplicaAddr;
use crate::services::ServiceName;
use crate::tool_error::{Result, ToolError};
use crate::tool_http;
use crate::wire::{CacheStats, CatalogHealth, Data, FrontendHealth, ReplicaHealth, Role};

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
    /// For a cluster on this machine: its process is stopped by a signal (SIGSTOP).
    pub paused: bool,
    /// `leader` or `follower` for the replicas of either group.
    pub role: Option<String>,
    pub ready: Option<bool>,
    pub term: Option<u64>,
    /// The number of the last order the replica has applied: committed, so durable.
    pub last_order: Option<u64>,
    pub orders: Option<u64>,
    pub leader_id: Option<u32>,
    /// For a catalog replica: the index of the last entry of its group's log it has applied.
    pub applied: Option<u64>,
    /// For a catalog replica: the units of every toy in stock, as it has applied them.
    pub units_in_stock: Option<u64>,
    pub cache: Option<CacheStats>,
    /// For a front end: whether the catalog vouches for its cache now.
    pub cache_leased: Option<bool>,
    /// For a front end: how many order replicas answered its last health poll.
    pub order_replicas_answering: Option<u32>,
    /// For a replica: its disk is full, so it writes (acknowledges, votes for) nothing.
    pub disk_full: bool,
    /// For a replica: the ids of its group's members (voters and learners) as it knows them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<u32>>,
    /// For a front end: its latency histograms so far (for `storectl top`; not in `--json`).
    #[serde(skip)]
    pub latency: Option<crate::wire::FrontendLatency>,
    /// Connections it refused for their TLS (another CA, an expired certificate, a name not in
    /// the cluster file, plain HTTP), when there were any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_refused: Option<crate::tls::Refusal>,
}

impl ServiceStatus {
    /// The row of a service at `address` before its health reply is read: whether it answered,
    /// and nothing it says of itself.
    pub fn answering(name: ServiceName, pid: Option<u32>, address: String, alive: bool) -> Self {
        let port = address
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or(0);
        ServiceStatus {
            name,
            pid,
            address,
            port,
            alive,
            paused: false,
            role: None,
            ready: None,
            term: None,
            last_order: None,
            orders: None,
            leader_id: None,
            applied: None,
            units_in_stock: None,
            cache: None,
            cache_leased: None,
            order_replicas_answering: None,
            disk_full: false,
            members: None,
            latency: None,
            tls_refused: None,
        }
    }
}

/// Why the cluster cannot take orders, in one line that says what to do; `None` when every
/// service answers, a replica of each group leads and every front end reaches a majority of the
/// order replicas. `local` is for a cluster in a state directory, whose
/// services `storectl restart` can start again; otherwise they run on hosts of their own.
pub fn problem(rows: &[ServiceStatus], local: bool) -> Option<String> {
    if let Some(problem) = silent_services(rows, local) {
        return Some(problem);
    }
    if let Some(full) = rows.iter().find(|r| r.disk_full) {
        return Some(format!(
            "{}'s disk is full: it holds its writes, acknowledging and voting for nothing, until \
             there is room; free space where it keeps its data",
            full.name
        ));
    }
    for (group, in_group) in [
        (
            "order",
            (|r| r.name.replica_id().is_some()) as fn(&&ServiceStatus) -> bool,
        ),
        ("catalog", |r| r.name.catalog_id().is_some()),
    ] {
        let replicas = rows.iter().filter(in_group);
        if !replicas
            .clone()
            .any(|r| r.role.as_deref() == Some("leader"))
        {
            return Some(format!(
                "no {group} replica leads yet: {} answer, an election needs a majority; wait a \
                 second and ask again",
                replicas.count()
            ));
        }
        if let Some(problem) = file_disagrees(group, &replicas.collect::<Vec<_>>()) {
            return Some(problem);
        }
    }
    front_end_cut_off(rows)
}

/// Services that do not answer, named, with what brings them back: `storectl restart` or
/// `kill --signal cont` for a local cluster, a look at the host otherwise.
fn silent_services(rows: &[ServiceStatus], local: bool) -> Option<String> {
    let silent: Vec<&ServiceStatus> = rows.iter().filter(|r| !r.alive).collect();
    let first = silent.first()?;
    if silent.len() == rows.len() {
        return Some(if local {
            "no service of the cluster is running: start it with `storectl up`".into()
        } else {
            "no service of the cluster file answers: start them on their hosts, or check the \
             addresses and the network"
                .into()
        });
    }
    let names: Vec<String> = silent.iter().map(|r| r.name.to_string()).collect();
    let verb = if silent.len() == 1 { "does" } else { "do" };
    let names = names.join(", ");
    Some(match (local, first.pid) {
        (true, None) if silent.len() == 1 => format!(
            "{names} does not run: `storectl restart {}` starts it again",
            first.name
        ),
        (true, None) => format!(
            "{names} do not run: start each again with `storectl restart NAME`, e.g. \
             `storectl restart {}`",
            first.name
        ),
        (true, Some(_)) if first.paused => format!(
            "{names} {} paused (SIGSTOP): `storectl kill {} --signal cont` resumes it",
            if silent.len() == 1 { "is" } else { "are" },
            first.name
        ),
        (true, Some(_)) => format!(
            "{names} {verb} not answer though running: see `storectl logs {}`",
            first.name
        ),
        (false, _) => format!(
            "{names} {verb} not answer at {}: check the service on its host and the network",
            first.address
        ),
    })
}

/// A front end that answers the tool but cannot reach a majority of the order replicas, or
/// does not know their leader yet: its host is cut off (or was, and has not found its way
/// back), and orders through it fail while the rest of the cluster is fine.
fn front_end_cut_off(rows: &[ServiceStatus]) -> Option<String> {
    let replicas = rows
        .iter()
        .filter(|r| r.name.replica_id().is_some())
        .count();
    let majority = replicas / 2 + 1;
    rows.iter()
        .filter(|r| matches!(r.name, ServiceName::Frontend(_)))
        .find_map(|r| match r.order_replicas_answering {
            Some(answering) if (answering as usize) < majority => Some(format!(
                "{} reaches only {answering} of {replicas} order replicas, and orders through \
                 it fail: check the network between its host and theirs",
                r.name
            )),
            _ if r.leader_id.is_none() && r.cache.is_some() => Some(format!(
                "{} does not know the order leader yet: wait a second and ask again",
                r.name
            )),
            _ => None,
        })
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
            let url = spec.topology.base_url(&address);
            let mut row = probe(name, address, &url, pid, pid.is_some());
            row.paused = pid.is_some_and(super::process::is_paused);
            Some(row)
        })
        .collect())
}

/// The state of every service in a cluster file, asked over the network.
pub fn status_of(topology: &ClusterFile) -> Vec<ServiceStatus> {
    topology
        .services()
        .into_iter()
        .map(|(name, address)| {
            let url = topology.base_url(&address);
            probe(name, address, &url, None, true)
        })
        .collect()
}

/// One service's row: its health, asked at `url` when `ask`.
fn probe(
    name: ServiceName,
    address: String,
    url: &str,
    pid: Option<u32>,
    ask: bool,
) -> ServiceStatus {
    let agent = tool_http::health_agent();
    let url = format!("{url}/health");
    let health = ask
        .then(|| tool_http::get(&agent, &url).ok())
        .flatten()
        .filter(|r| r.status == 200);
    let mut row = ServiceStatus::answering(name, pid, address, health.is_some());
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
                row.disk_full = h.disk_full;
                row.members = member_ids(&h);
                row.tls_refused = h.tls_refused;
            }
        }
        ServiceName::Frontend(_) => {
            if let Some(Data { data: h }) = reply.json::<Data<FrontendHealth>>() {
                row.leader_id = h.leader_id;
                row.cache = Some(h.cache);
                row.cache_leased = Some(h.cache_leased);
                row.order_replicas_answering = h.order_replicas_answering;
                row.latency = Some(h.latency);
                row.tls_refused = h.tls_refused;
            }
        }
        ServiceName::Catalog(_) => {
            if let Some(Data { data: h }) = reply.json::<Data<CatalogHealth>>() {
                row.role = Some(h.replica.role.as_str().into());
                row.ready = Some(h.replica.ready);
                row.term = Some(h.replica.term);
                row.leader_id = h.replica.leader_id;
                row.disk_full = h.replica.disk_full;
                row.members = member_ids(&h.replica);
                row.applied = Some(h.replica.len);
                row.units_in_stock = Some(h.units_in_stock);
                row.tls_refused = h.replica.tls_refused.clone();
            }
        }
    }
    row
}

fn member_ids(health: &ReplicaHealth) -> Option<Vec<u32>> {
    let mut ids: Vec<u32> = health.members.iter().map(|m| m.id).collect();
    ids.sort_unstable();
    (!ids.is_empty()).then_some(ids)
}

/// A group whose leader's membership names other replicas than the cluster file (or the state
/// directory's record): a change made with `storectl member` from another host, whose file was
/// not copied here. Services started from this file would look for the wrong replicas.
fn file_disagrees(group: &str, replicas: &[&ServiceStatus]) -> Option<String> {
    let leader = replicas
        .iter()
        .filter(|r| r.role.as_deref() == Some("leader"))
        .max_by_key(|r| r.term)?;
    let members = leader.members.as_ref()?;
    let mut named: Vec<u32> = replicas
        .iter()
        .filter_map(|r| r.name.replica_id().or(r.name.catalog_id()))
        .collect();
    named.sort_unstable();
    if *members == named {
        return None;
    }
    let list = |ids: &[u32]| {
        ids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(format!(
        "the {group} group's members are {} but the cluster file names {}: copy the file that \
         `storectl member` updated to this host (see `storectl member list`)",
        list(members),
        list(&named)
    ))
}

/// Whether two services are replicas of the same group.
fn same_group(a: ServiceName, b: ServiceName) -> bool {
    (a.replica_id().is_some() && b.replica_id().is_some())
        || (a.catalog_id().is_some() && b.catalog_id().is_some())
}

/// Waits until `replica` has caught up with its group: it knows the leader and holds what the
/// others of its group held when the wait began (every order, or every catalog entry; a
/// service with nothing to catch up on: until it answers).
pub fn wait_caught_up(state: &StateDir, replica: ServiceName, timeout: Duration) -> Result<()> {
    let mut goal: Option<u64> = None;
    let held = |s: &ServiceStatus| s.orders.or(s.applied);
    let ready = crate::poll::try_until(timeout, Duration::from_millis(50), || -> Result<_> {
        let rows = status(state)?;
        // What the others of its group hold: the leader's, at least. (A replica just started
        // may call itself leader of a term that is over; it is not asked.)
        if goal.is_none() {
            goal = rows
                .iter()
                .filter(|s| s.name != replica && same_group(s.name, replica) && s.alive)
                .filter_map(held)
                .max();
        }
        let ready = rows.iter().any(|s| {
            s.name == replica
                && s.alive
                && s.ready
                    .is_none_or(|knows_leader| knows_leader && goal.is_some())
                && held(s).is_none_or(|held| goal.is_none_or(|goal| held >= goal))
        });
        Ok(ready.then_some(()))
    })?;
    ready.ok_or_else(|| ToolError::NoCatchUp {
        replica,
        secs: timeout.as_secs(),
        log: state.log_path(replica),
    })
}

/// `storectl status` as a table.
pub fn render_status(rows: &[ServiceStatus]) -> String {
    let mut out = format!(
        "{:<11} {:>8} {:<21} {:<6} {:<9} {:>10}  {}\n",
        "SERVICE", "PID", "ADDRESS", "ALIVE", "ROLE", "LAST ORDER", "CACHE OR STOCK"
    );
    let dash = || "-".to_string();
    for row in rows {
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
            cache_or_stock(row)
        ));
    }
    if rows.iter().any(|r| r.ready == Some(false)) {
        out.push_str("* still catching up with the leader\n");
    }
    for row in rows {
        if let Some(refused) = &row.tls_refused {
            out.push_str(&format!(
                "{} refused {} connection{} for their TLS; the last: {}\n",
                row.name,
                refused.count,
                if refused.count == 1 { "" } else { "s" },
                refused.last
            ));
        }
    }
    out
}

/// The last column of a status row: a front end's cache, or a catalog's stock, and a full disk.
fn cache_or_stock(row: &ServiceStatus) -> String {
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
        .or_else(|| {
            row.units_in_stock
                .map(|units| format!("{units} units in stock"))
        })
        .unwrap_or_else(|| "-".to_string());
    if row.disk_full {
        format!("DISK FULL; {cache}")
    } else {
        cache
    }
}

/// The id of the catalog replica that leads: the one that says so in the newest term.
pub fn find_catalog_leader(topology: &ClusterFile) -> Option<u32> {
    leader_among(&topology.catalogs())
}

fn leader_among(replicas: &[ReplicaAddr]) -> Option<u32> {
    let agent = tool_http::agent();
    replicas
        .iter()
        .filter_map(|replica| {
            let health = tool_http::get(&agent, &format!("{}/health", replica.url))
                .ok()?
                .json::<Data<ReplicaHealth>>()?
                .data;
            (health.role == Role::Leader).then_some((health.term, replica.id))
        })
        .max()
        .map(|(_, id)| id)
}

/// The id of the order replica that leads, asking the front ends first, then the replicas.
pub fn find_leader(topology: &ClusterFile) -> Option<u32> {
    let agent = tool_http::agent();
    let from_frontend = topology.frontend_urls().into_iter().find_map(|(_, url)| {
        tool_http::get(&agent, &format!("{url}/health"))
            .ok()
            .and_then(|r| r.json::<Data<FrontendHealth>>())
            .and_then(|h| h.data.leader_id)
    });
    from_frontend.or_else(|| leader_among(&topology.replicas()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: ServiceName, alive: bool, pid: Option<u32>, role: Option<&str>) -> ServiceStatus {
        ServiceStatus {
            role: role.map(str::to_string),
            ..ServiceStatus::answering(name, pid, "127.0.0.1:8010".into(), alive)
        }
    }

    fn cluster(order_2: ServiceStatus) -> Vec<ServiceStatus> {
        vec![
            row(ServiceName::Catalog(1), true, Some(1), Some("leader")),
            row(ServiceName::Order(1), true, Some(2), Some("follower")),
            order_2,
            row(ServiceName::Order(3), true, Some(4), Some("leader")),
        ]
    }

    #[test]
    fn a_healthy_cluster_has_no_problem() {
        let rows = cluster(row(ServiceName::Order(2), true, Some(3), Some("follower")));
        assert_eq!(problem(&rows, true), None);
    }

    #[test]
    fn a_service_down_is_named_with_what_to_do() {
        let rows = cluster(row(ServiceName::Order(2), false, None, None));
        let said = problem(&rows, true).unwrap();
        assert!(said.contains("order-2 does not run"), "{said}");
        assert!(said.contains("storectl restart order-2"), "{said}");

        let hung = cluster(row(ServiceName::Order(2), false, Some(3), None));
        assert!(problem(&hung, true)
            .unwrap()
            .contains("storectl logs order-2"));
        let mut paused = hung.clone();
        paused[2].paused = true;
        let said = problem(&paused, true).unwrap();
        assert!(said.contains("order-2 is paused"), "{said}");
        assert!(
            said.contains("storectl kill order-2 --signal cont"),
            "{said}"
        );
        let remote = problem(&rows, false).unwrap();
        assert!(
            remote.contains("order-2 does not answer at 127.0.0.1:8010"),
            "{remote}"
        );
    }

    #[test]
    fn a_stopped_cluster_says_to_start_it() {
        let rows: Vec<ServiceStatus> = cluster(row(ServiceName::Order(2), false, None, None))
            .into_iter()
            .map(|r| row(r.name, false, None, None))
            .collect();
        assert!(problem(&rows, true).unwrap().contains("storectl up"));
    }

    #[test]
    fn members_the_file_does_not_name_are_a_problem() {
        let mut rows = cluster(row(ServiceName::Order(2), true, Some(3), Some("follower")));
        rows[3].members = Some(vec![1, 2, 3]);
        assert_eq!(problem(&rows, true), None);
        // Replica 2 was replaced by 4 from another host, whose copy of the file is newer.
        rows[3].members = Some(vec![1, 3, 4]);
        let said = problem(&rows, true).unwrap();
        assert!(
            said.contains("members are 1, 3, 4 but the cluster file names 1, 2, 3"),
            "{said}"
        );
    }

    #[test]
    fn no_leader_is_a_problem() {
        let mut rows = cluster(row(ServiceName::Order(2), true, Some(3), Some("follower")));
        rows[3].role = Some("candidate".into());
        assert!(problem(&rows, true)
            .unwrap()
            .contains("no order replica leads"));
    }

    #[test]
    fn a_front_end_cut_off_from_the_order_replicas_is_a_problem() {
        let mut rows = cluster(row(ServiceName::Order(2), true, Some(3), Some("follower")));
        let mut front_end = row(ServiceName::Frontend(Some(1)), true, Some(5), None);
        front_end.cache = Some(CacheStats::default());
        front_end.leader_id = Some(3);
        front_end.order_replicas_answering = Some(2);
        rows.push(front_end);
        assert_eq!(problem(&rows, true), None);

        rows[4].order_replicas_answering = Some(1);
        let said = problem(&rows, true).unwrap();
        assert!(
            said.contains("frontend-1 reaches only 1 of 3 order replicas"),
            "{said}"
        );
        rows[4].order_replicas_answering = Some(3);
        rows[4].leader_id = None;
        let said = problem(&rows, true).unwrap();
        assert!(
            said.contains("frontend-1 does not know the order leader"),
            "{said}"
        );
    }
}
