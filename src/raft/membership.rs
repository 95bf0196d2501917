//! Changing a group's members at its leader, on the engine's own membership changes:
//! `POST /internal/members` with a [`MembershipChange`], which `storectl member` sends.
//!
//! A new member is first added as a learner: it receives the log but counts toward no majority,
//! so a slow or dead newcomer costs the group nothing while it catches up. Once it has, the
//! voters are set in one change, which the engine makes through a joint configuration (a
//! majority of the old voters and a majority of the new must agree on every entry meanwhile):
//! no instant exists at which two disjoint majorities could each elect a leader. The engine
//! finishes a joint change by itself, also under a new leader.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, Raft};
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;

use super::{Group, NodeId};
use crate::http::{self, Request, Response};

/// The path of the membership endpoint.
pub const MEMBERS_PATH: &str = "/internal/members";

/// One step of a membership change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MembershipChange {
    /// Adds replica `id`, at `address` (a base URL), as a learner.
    AddLearner { id: u32, address: String },
    /// Makes exactly `voters` the group's voters; any other member is removed.
    SetVoters { voters: Vec<u32> },
}

/// What the leader did: the log index at which the change is committed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Changed {
    pub index: u64,
}

/// Serves `POST /internal/members`: applies `change` if this replica leads, and answers once
/// the change is committed.
pub async fn change<C: Group>(raft: &Raft<C>, request: &Request) -> Response {
    let change = match http::parse_json::<MembershipChange>(request) {
        Ok(change) => change,
        Err(e) => return e.into(),
    };
    let outcome = match change {
        MembershipChange::AddLearner { id, address } => {
            // Without waiting for it to catch up: the caller watches that, with a progress bar.
            raft.add_learner(NodeId::from(id), BasicNode::new(address), false)
                .await
        }
        MembershipChange::SetVoters { voters } => {
            let voters: BTreeSet<NodeId> = voters.into_iter().map(NodeId::from).collect();
            raft.change_membership(voters, false).await
        }
    };
    match outcome {
        Ok(written) => http::data(Changed {
            index: written.log_id.index,
        }),
        Err(e) => refusal(e),
    }
}

/// The engine's refusal as an HTTP answer whose message says what to do.
fn refusal(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> Response {
    let (status, message) = match &e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => (
            StatusCode::MISDIRECTED_REQUEST,
            match forward.leader_id {
                Some(leader) => format!("replica {leader} leads: ask it"),
                None => "no replica leads right now: ask again in a second".to_string(),
            },
        ),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(change)) => (
            match change {
                ChangeMembershipError::InProgress(_) => StatusCode::CONFLICT,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            },
            match change {
                ChangeMembershipError::InProgress(_) => {
                    "another membership change is in progress: wait until `storectl member \
                     list` shows it done, then try again"
                        .to_string()
                }
                ChangeMembershipError::LearnerNotFound(missing) => format!(
                    "replica {} is not a member yet: add it (as a learner) first",
                    missing.node_id
                ),
                other => other.to_string(),
            },
        ),
        RaftError::Fatal(fatal) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the engine stopped: {fatal}"),
        ),
    };
    http::error(status, &message)
}

/// How long a leader lets a joint configuration stand before it finishes the change itself:
/// longer than the leader that started it takes to commit its second step.
const JOINT_GRACE: Duration = Duration::from_secs(2);

/// Runs for as long as the replica does: whenever it leads a group whose membership has been
/// joint for [`JOINT_GRACE`] (the leader that started the change died or was deposed before
/// its second step), it commits the change's goal, the joint configuration's last voters. A
/// group then never stays in a joint configuration, which needs two majorities to commit.
pub async fn finish_joint_changes<C: Group>(raft: Raft<C>) {
    let mut joint_since: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(JOINT_GRACE / 4).await;
        let goal = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            let configs = m.membership_config.membership().get_joint_config().clone();
            (m.state == openraft::ServerState::Leader && configs.len() > 1)
                .then(|| configs.last().cloned().unwrap_or_default())
        };
        let Some(goal) = goal else {
            joint_since = None;
            continue;
        };
        let since = *joint_since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() < JOINT_GRACE {
            continue;
        }
        tracing::info!("finishing a membership change left joint: voters {goal:?}");
        match raft.change_membership(goal, false).await {
            Ok(_) => joint_since = None,
            Err(e) => tracing::debug!("could not finish the membership change yet: {e}"),
        }
    }
}
