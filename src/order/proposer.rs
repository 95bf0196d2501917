//! The leader's group commit above the engine. The engine (openraft 0.9) writes and fsyncs the
//! entries of one client write before it takes the next, so one command per entry would cost
//! one fsync per command. The proposer gathers the commands that arrive while earlier writes
//! are in flight into one entry: alone, a command is written at once; under load, many share
//! an entry, its fsync and its replication.

use openraft::error::{ForwardToLeader, RaftError};
use openraft::{BasicNode, TryAsRef};
use tokio::sync::mpsc;

use super::types::PlaceError;
use super::types::{Command, NodeId, Proposal, Raft, Settled};
use crate::batch;
use crate::timeouts;

/// Client writes in flight at once. The engine takes them one at a time anyway, so one is
/// enough: the next entry gathers while it is written (measured: 1 gave the most orders/s at
/// 32 connections, ahead of 2 and 3).
const WRITES_IN_FLIGHT: usize = 1;
/// Most commands in one entry; keeps an entry far under the peer body limit.
const MAX_COMMANDS: usize = 512;

type Pending = batch::Pending<Command, Result<Option<Settled>, PlaceError>>;

/// A cheap-to-clone handle to the proposing task.
#[derive(Clone)]
pub struct Proposer {
    queue: mpsc::UnboundedSender<Pending>,
}

/// The proposing task's end of the queue, until [`Gatherer::run`] is spawned.
pub struct Gatherer {
    queue: mpsc::UnboundedReceiver<Pending>,
    raft: Raft,
    id: u32,
}

pub fn proposer(raft: Raft, id: u32) -> (Proposer, Gatherer) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Proposer { queue: tx },
        Gatherer {
            queue: rx,
            raft,
            id,
        },
    )
}

impl Proposer {
    /// Commits `command` in whatever entry it lands, and gives its key's settlement after.
    pub async fn propose(&self, command: Command) -> Result<Option<Settled>, PlaceError> {
        batch::submit(&self.queue, command, || {
            Err(PlaceError::Unavailable("the replica is stopping".into()))
        })
        .await
    }
}

impl Gatherer {
    /// Writes the queued commands in entries until every [`Proposer`] is gone.
    pub async fn run(self) {
        let Gatherer { queue, raft, id } = self;
        batch::send_in_batches(queue, MAX_COMMANDS, WRITES_IN_FLIGHT, |batch| {
            let raft = raft.clone();
            async move { write(&raft, id, batch).await }
        })
        .await
    }
}

async fn write(raft: &Raft, id: u32, batch: Vec<Pending>) {
    let (commands, answer) = batch::split(batch);
    let count = commands.len();
    let written = bounded(id, "commit", raft.client_write(Proposal { commands })).await;
    let outcomes: Vec<Result<Option<Settled>, PlaceError>> = match written {
        Ok(response) if response.data.settled.len() == count => {
            response.data.settled.into_iter().map(Ok).collect()
        }
        Ok(response) => {
            let e = PlaceError::Unavailable(format!(
                "applying {count} commands gave {} answers",
                response.data.settled.len()
            ));
            vec![Err(e); count]
        }
        Err(e) => vec![Err(e); count],
    };
    answer(outcomes);
}

/// Runs an engine call for at most [`timeouts::COMMIT`], turning its errors into the
/// replica's: a redirect to the leader, or unavailable.
pub async fn bounded<T, E>(
    id: u32,
    what: &str,
    call: impl std::future::Future<Output = Result<T, RaftError<NodeId, E>>>,
) -> Result<T, PlaceError>
where
    E: std::error::Error + TryAsRef<ForwardToLeader<NodeId, BasicNode>>,
{
    match tokio::time::timeout(timeouts::COMMIT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => match e.forward_to_leader::<BasicNode>() {
            Some(forward) => Err(PlaceError::NotLeader {
                leader: forward.leader_id,
            }),
            None => Err(PlaceError::Unavailable(format!(
                "replica {id} cannot {what}: {e}"
            ))),
        },
        Err(_) => Err(PlaceError::Unavailable(format!(
            "replica {id} could not {what} within {} ms; is a majority of replicas reachable?",
            timeouts::COMMIT.as_millis()
        ))),
    }
}
