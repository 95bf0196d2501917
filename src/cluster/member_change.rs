//! `storectl member add|remove|replace`: a replica group's membership changed at its leader
//! ([`crate::raft::membership`]), from any host that reaches the group.
//!
//! Each change is checked before it starts: no other change may be under way (a joint
//! configuration, or a learner still catching up), and the voters after the change must include
//! a majority that answers now, or the group would stop committing the moment it took effect.
//! A new member becomes a learner first and a voter only once it has the leader's log up to the
//! index it was added at, so a newcomer slows no commit. Every call waits until the change is
//! committed; a leader lost on the way costs a retry at the next one, and a change that was
//! committed before its answer was lost counts as done.

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::members::ReplicaGroup;
use crate::cluster_file::ClusterFile;
use crate::config::{self, ReplicaAddr};
use crate::progress::Progress;
use crate::raft::membership::{Changed, MembershipChange, MEMBERS_PATH};
use crate::secret::Secret;
use crate::tool_error::{Result, ToolError};
use crate::tool_http;
use crate::wire::{Data, ErrorBody, ReplicaHealth, Role};

/// How long a leader is looked for, and a committed change waited for, before giving up.
const LEADER_WAIT: Duration = Duration::from_secs(15);
/// How long a new replica is waited for to answer before the change is refused.
const NEWCOMER_WAIT: Duration = Duration::from_secs(10);
/// How often the leader is asked how far a learner got.
const POLL: Duration = Duration::from_millis(100);

/// A change of one group's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new replica `id` at `address` (`host:port`), as a voter.
    Add { id: u32, address: String },
    /// Replica `id` leaves the group.
    Remove { id: u32 },
    /// Replica `with` at `address` takes replica `id`'s place, in one change of voters.
    Replace { id: u32, with: u32, address: String },
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// The group's voters afterwards.
    pub voters: Vec<u32>,
    /// The leader that committed the last step.
    pub leader: u32,
}

/// One group of a cluster, as the tools reach it.
pub struct GroupHandle<'a> {
    group: ReplicaGroup,
    /// The group's replicas in the cluster file: where to look for its leader first.
    known: Vec<ReplicaAddr>,
    secret: &'a Secret,
    /// Whether the cluster speaks TLS, so members' addresses are `https://` URLs.
    tls: bool,
    health: ureq::Agent,
    /// Waits as long as a change may take to commit.
    change: ureq::Agent,
}

/// A group's state as its leader reports it.
struct Led {
    leader: ReplicaAddr,
    health: ReplicaHealth,
}

impl Led {
    fn voters(&self) -> Vec<u32> {
        self.health
            .members
            .iter()
            .filter(|m| m.voter)
            .map(|m| m.id)
            .collect()
    }

    fn member(&self, id: u32) -> Option<&crate::wire::Member> {
        self.health.members.iter().find(|m| m.id == id)
    }

    /// How far the leader knows `id`'s log to match its own.
    fn matched(&self, id: u32) -> Option<u64> {
        self.health
            .replicated
            .iter()
            .find(|r| r.id == id)
            .and_then(|r| r.index)
    }
}

impl<'a> GroupHandle<'a> {
    pub fn new(topology: &ClusterFile, group: ReplicaGroup, secret: &'a Secret) -> Self {
        GroupHandle {
            group,
            known: group.replicas(topology),
            secret,
            tls: topology.tls.is_some(),
            health: tool_http::health_agent(),
            change: tool_http::agent(),
        }
    }

    /// The URL of a member at `address`.
    fn url(&self, address: &str) -> String {
        config::service_url(address, self.tls)
    }

    fn name(&self, id: u32) -> String {
        format!("{}-{id}", self.group.name())
    }

    /// Makes `change`, reporting a learner's catching up to `progress`, and waits until it is
    /// committed. `catch_up` bounds how long a new member may take to receive the log.
    pub fn apply(
        &self,
        change: &Change,
        progress: &dyn Progress,
        catch_up: Duration,
    ) -> Result<Done> {
        let led = self.leader()?;
        self.refuse_a_change_under_way(&led)?;
        let mut voters = led.voters();
        let (new, gone) = match change {
            Change::Add { id, address } => (Some((*id, address.as_str())), None),
            Change::Remove { id } => (None, Some(*id)),
            Change::Replace { id, with, address } => (Some((*with, address.as_str())), Some(*id)),
        };
        if let Some(id) = gone {
            if led.member(id).is_none() {
                return Err(ToolError::usage(format!(
                    "{} is not a member of the {} group (its voters are {}); see `storectl \
                     member list`",
                    self.name(id),
                    self.group.name(),
                    list(&voters)
                )));
            }
            voters.retain(|&v| v != id);
        }
        if let Some((id, _)) = new {
            if led.member(id).is_some_and(|m| m.voter) {
                return Err(ToolError::usage(format!(
                    "{} is already a voter of the {} group; pick an id no member has",
                    self.name(id),
                    self.group.name()
                )));
            }
            voters.push(id);
        }
        voters.sort_unstable();
        if voters.is_empty() {
            return Err(ToolError::usage(format!(
                "{} is the {} group's last voter: a group needs at least one",
                self.name(gone.unwrap_or(0)),
                self.group.name()
            )));
        }
        if let Some((id, address)) = new {
            self.add_learner(&led, id, address, progress, catch_up)?;
        }
        self.refuse_without_a_majority(&voters, new)?;
        let leader = self.set_voters(&voters)?;
        Ok(Done { voters, leader })
    }

    /// The replica that leads the group now, in the newest term, with its report; waits a
    /// while for one, through an election.
    fn leader(&self) -> Result<Led> {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            let mut candidates = self.known.clone();
            let mut best: Option<Led> = None;
            let mut answering = 0;
            let mut i = 0;
            while i < candidates.len() {
                let replica = candidates[i].clone();
                i += 1;
                let Some(health) = self.health_of(&replica) else {
                    continue;
                };
                answering += 1;
                // Members the file does not name yet are asked too.
                for member in &health.members {
                    if !candidates.iter().any(|c| c.id == member.id) {
                        candidates.push(ReplicaAddr {
                            id: member.id,
                            url: self.url(&member.address),
                        });
                    }
                }
                if health.role == Role::Leader
                    && best.as_ref().is_none_or(|b| health.term > b.health.term)
                {
                    best = Some(Led {
                        leader: replica,
                        health,
                    });
                }
            }
            if let Some(led) = best {
                return Ok(led);
            }
            if Instant::now() >= deadline {
                return Err(ToolError::NoLeader {
                    group: self.group.name(),
                    answering,
                    replicas: candidates.len(),
                    then: "bring its replicas back (`storectl status`), then try again",
                });
            }
            std::thread::sleep(POLL * 2);
        }
    }

    fn health_of(&self, replica: &ReplicaAddr) -> Option<ReplicaHealth> {
        let reply = tool_http::get(&self.health, &format!("{}/health", replica.url)).ok()?;
        if reply.status != 200 {
            return None;
        }
        // A catalog replica's report holds its replica report.
        match self.group {
            ReplicaGroup::Order => reply.json::<Data<ReplicaHealth>>().map(|d| d.data),
            ReplicaGroup::Catalog => reply
                .json::<Data<crate::wire::CatalogHealth>>()
                .map(|d| d.data.replica),
        }
    }

    fn refuse_a_change_under_way(&self, led: &Led) -> Result<()> {
        if led.health.changing {
            return Err(ToolError::ChangeUnderWay {
                group: self.group.name(),
            });
        }
        Ok(())
    }

    /// Adds `id` as a learner and waits until its log reaches the leader's at that moment.
    fn add_learner(
        &self,
        led: &Led,
        id: u32,
        address: &str,
        progress: &dyn Progress,
        catch_up: Duration,
    ) -> Result<()> {
        let url = self.url(address);
        let newcomer = ReplicaAddr {
            id,
            url: url.clone(),
        };
        // A replica started a moment ago may still be opening its files.
        progress.message(&format!(
            "waiting for {} at {address} to answer",
            self.name(id)
        ));
        let answers = crate::poll::until(NEWCOMER_WAIT, POLL, || self.health_of(&newcomer));
        if answers.is_none() {
            return Err(ToolError::NewcomerSilent {
                name: self.name(id),
                address: address.to_string(),
                group: self.group.name(),
                id,
            });
        }
        if let Some(member) = led.member(id) {
            if self.url(&member.address) != url {
                return Err(ToolError::usage(format!(
                    "{} is already a learner at {}: remove it first (`storectl member remove \
                     --group {} --id {id}`)",
                    self.name(id),
                    member.address,
                    self.group.name()
                )));
            }
        }
        let added: Changed = self.post(&MembershipChange::AddLearner { id, address: url })?;
        progress.message(&format!("{} is receiving the log", self.name(id)));
        progress.grow(added.index);
        self.wait_for_catch_up(id, added.index, progress, catch_up)
    }

    /// Waits until learner `id` has matched the leader's log up to `wanted`, reporting progress.
    fn wait_for_catch_up(
        &self,
        id: u32,
        wanted: u64,
        progress: &dyn Progress,
        catch_up: Duration,
    ) -> Result<()> {
        let mut reported = 0;
        let deadline = Instant::now() + catch_up;
        loop {
            let led = self.leader()?;
            let matched = led.matched(id).unwrap_or(0);
            progress.advance(matched.min(wanted).saturating_sub(reported));
            reported = reported.max(matched.min(wanted));
            if matched >= wanted {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ToolError::LearnerBehind {
                    name: self.name(id),
                    matched,
                    wanted,
                    secs: catch_up.as_secs(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Refuses voters of whom fewer than a majority answer now: the group would stop the
    /// moment the change took effect.
    fn refuse_without_a_majority(
        &self,
        voters: &[u32],
        newcomer: Option<(u32, &str)>,
    ) -> Result<()> {
        let led = self.leader()?;
        let address_of = |id: u32| -> Option<String> {
            if let Some((_, address)) = newcomer.filter(|(new, _)| *new == id) {
                return Some(self.url(address));
            }
            // The file's address first: a replica moved by an edit of the file keeps its id.
            self.known
                .iter()
                .find(|r| r.id == id)
                .map(|r| r.url.clone())
                .or_else(|| led.member(id).map(|m| self.url(&m.address)))
        };
        let answering: Vec<u32> = voters
            .iter()
            .copied()
            .filter(|&id| {
                address_of(id)
                    .and_then(|url| self.health_of(&ReplicaAddr { id, url }))
                    .is_some()
            })
            .collect();
        let majority = voters.len() / 2 + 1;
        if answering.len() >= majority {
            return Ok(());
        }
        Err(ToolError::WouldLoseMajority {
            group: self.group.name(),
            voters: list(voters),
            answering: answering.len(),
            majority,
        })
    }

    /// Makes `voters` the group's voters and waits until that is committed. A change whose
    /// answer was lost (a leader that died or stepped down on the way) is looked for in the
    /// next leader's membership: done if it is there, sent again if not.
    fn set_voters(&self, voters: &[u32]) -> Result<u32> {
        let deadline = Instant::now() + LEADER_WAIT;
        let change = MembershipChange::SetVoters {
            voters: voters.to_vec(),
        };
        loop {
            let sent = self.post::<Changed>(&change);
            let led = self.leader()?;
            if !led.health.changing && led.voters() == voters {
                return Ok(led.health.id);
            }
            if Instant::now() >= deadline {
                return Err(sent.err().unwrap_or_else(|| ToolError::VotersNotYet {
                    group: self.group.name(),
                    now: list(&led.voters()),
                    wanted: list(voters),
                }));
            }
            std::thread::sleep(POLL * 2);
        }
    }

    /// Sends a membership change to the leader, following it through elections.
    fn post<T: DeserializeOwned>(&self, change: &MembershipChange) -> Result<T> {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            let led = self.leader()?;
            let url = format!("{}{MEMBERS_PATH}", led.leader.url);
            let reply = tool_http::post_authorized(&self.change, &url, change, self.secret);
            match reply {
                Ok(reply) if reply.status == 200 => {
                    return reply.json::<Data<T>>().map(|d| d.data).ok_or_else(|| {
                        ToolError::Unexpected {
                            url: url.clone(),
                            body: reply.body.clone(),
                        }
                    })
                }
                // Not the leader after all, or no longer: ask the next.
                Ok(reply) if reply.status == 421 || reply.status == 503 => {}
                Ok(reply) => {
                    let message = serde_json::from_str::<ErrorBody>(&reply.body)
                        .map(|b| b.error.message)
                        .unwrap_or(reply.body);
                    return Err(ToolError::Refused(message));
                }
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                return Err(ToolError::NoLeaderTookChange {
                    group: self.group.name(),
                    secs: LEADER_WAIT.as_secs(),
                });
            }
            std::thread::sleep(POLL * 2);
        }
    }
}

fn list(ids: &[u32]) -> String {
    ids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
