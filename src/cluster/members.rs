//! `storectl member list`: each replica group's members as its leader knows them (the last
//! membership in its log): id, address, voter or learner, how far each is behind the leader's
//! log, and whether it answers.

use serde::Serialize;

use crate::cluster_file::ClusterFile;
use crate::config::ReplicaAddr;
use crate::tool_error::{Result, ToolError};
use crate::tool_http;
use crate::wire::{Data, ReplicaHealth, Role};

/// One of the two replica groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaGroup {
    Order,
    Catalog,
}

impl ReplicaGroup {
    pub fn name(self) -> &'static str {
        match self {
            ReplicaGroup::Order => "order",
            ReplicaGroup::Catalog => "catalog",
        }
    }

    pub(crate) fn replicas(self, topology: &ClusterFile) -> Vec<ReplicaAddr> {
        match self {
            ReplicaGroup::Order => topology.replicas(),
            ReplicaGroup::Catalog => topology.catalogs(),
        }
    }
}

/// One member of a group, as `member list` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MemberRow {
    pub group: ReplicaGroup,
    pub id: u32,
    /// `host:port`, as the group's replicas call it.
    pub address: String,
    /// A voter counts toward a majority; a learner only receives the log.
    pub voter: bool,
    pub leader: bool,
    /// Entries its log is behind the leader's, as the leader knows; `None` until the leader
    /// has heard from it.
    pub behind: Option<u64>,
    /// Whether it answered this call.
    pub answers: bool,
}

/// How long `member list` waits for an election under way (a leader that removed itself, say).
const ELECTION_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The members of `group` of the cluster in `topology`, from the replica that leads it; waits
/// a moment for an election under way before saying that none leads.
pub fn list(topology: &ClusterFile, group: ReplicaGroup) -> Result<Vec<MemberRow>> {
    let deadline = std::time::Instant::now() + ELECTION_WAIT;
    loop {
        match list_once(topology, group) {
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::debug!("{e}");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            outcome => return outcome,
        }
    }
}

fn list_once(topology: &ClusterFile, group: ReplicaGroup) -> Result<Vec<MemberRow>> {
    let replicas = group.replicas(topology);
    let agent = tool_http::health_agent();
    let healths: Vec<(u32, Option<ReplicaHealth>)> = replicas
        .iter()
        .map(|replica| {
            let health = tool_http::get(&agent, &format!("{}/health", replica.url))
                .ok()
                .filter(|reply| reply.status == 200)
                .and_then(|reply| reply.json::<Data<ReplicaHealth>>())
                .map(|data| data.data);
            (replica.id, health)
        })
        .collect();
    let answering = healths.iter().filter(|(_, h)| h.is_some()).count();
    let leader = healths
        .iter()
        .filter_map(|(_, h)| h.as_ref())
        .filter(|h| h.role == Role::Leader)
        .max_by_key(|h| h.term)
        .ok_or_else(|| ToolError::NoLeader {
            group: group.name(),
            answering,
            replicas: replicas.len(),
            then: "wait a second and ask again",
        })?;
    let last = leader.log_index.unwrap_or(0);
    Ok(leader
        .members
        .iter()
        .map(|member| {
            let matched = if member.id == leader.id {
                Some(last)
            } else {
                leader
                    .replicated
                    .iter()
                    .find(|r| r.id == member.id)
                    .and_then(|r| r.index)
            };
            MemberRow {
                group,
                id: member.id,
                address: member
                    .address
                    .trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .to_string(),
                voter: member.voter,
                leader: member.id == leader.id,
                behind: matched.map(|index| last.saturating_sub(index)),
                answers: healths
                    .iter()
                    .any(|(id, h)| *id == member.id && h.is_some()),
            }
        })
        .collect())
}

/// `member list` as a table.
pub fn render(rows: &[MemberRow]) -> String {
    let mut out = format!(
        "{:<8} {:>3}  {:<21} {:<8} {:<7} {:>8}  {}\n",
        "GROUP", "ID", "ADDRESS", "ROLE", "LEADER", "BEHIND", "ANSWERS"
    );
    for row in rows {
        out.push_str(&format!(
            "{:<8} {:>3}  {:<21} {:<8} {:<7} {:>8}  {}\n",
            row.group.name(),
            row.id,
            row.address,
            if row.voter { "voter" } else { "learner" },
            if row.leader { "yes" } else { "" },
            row.behind
                .map_or_else(|| "?".to_string(), |b| b.to_string()),
            if row.answers { "yes" } else { "no" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_who_leads_and_who_lags() {
        let row = |id, leader, behind, answers| MemberRow {
            group: ReplicaGroup::Order,
            id,
            address: format!("127.0.0.1:801{id}"),
            voter: true,
            leader,
            behind,
            answers,
        };
        let table = render(&[
            row(1, false, Some(0), true),
            row(2, false, None, false),
            row(3, true, Some(0), true),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("GROUP"), "{table}");
        assert!(lines[2].contains("voter") && lines[2].contains('?') && lines[2].ends_with("no"));
        assert!(
            lines[3].contains("yes") && lines[3].ends_with("yes"),
            "{table}"
        );
    }
}
