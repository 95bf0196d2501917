//! What the replicas agree on: the commands in the replicated log and the engine's type set.
//!
//! An order is one command, its [`Command::Outcome`], committed after the leader's keyed buy in
//! the catalog. A leader that dies between the buy and the commit leaves a buy the catalog holds
//! *unconfirmed*; a leader places the order of every such buy its log lacks (the buy is keyed, so
//! it is never taken twice). So no stock is taken for an order that does not end up in the log.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::wire::{Bought, RefusalReason};

pub use crate::raft::{LogId, NodeId, StorageError, Vote};

openraft::declare_raft_types!(
    /// The type set of the order log.
    pub TypeConfig:
        D = Proposal,
        R = Applied,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogEntry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;

/// One command of the replicated log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    /// What the catalog said for the order with this key. The first outcome of a key wins; a
    /// bought one takes the next order number when it is applied.
    Outcome { key: String, result: BuyResult },
}

/// The catalog's answer to a keyed buy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BuyResult {
    Bought(Bought),
    Refused(Refusal),
}

/// Why the catalog refused an order, with the request it refused, so that its key names that
/// request alone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Refusal {
    #[serde(rename = "code")]
    pub reason: RefusalReason,
    pub message: String,
    /// The product as the request named it. Empty in refusals logged before requests were
    /// recorded with them: those match any request with their key.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub quantity: u64,
}

/// How the order with a key ended, for good.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Settled {
    Placed { number: u64 },
    Refused(Refusal),
}

/// One entry of the replicated log: the commands of every order that reached the leader's
/// proposer together. The engine writes and fsyncs one entry at a time, so commands share
/// entries (and fsyncs) under load; alone, a command is an entry of its own.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Proposal {
    pub commands: Vec<Command>,
}

/// What applying a proposal gave: for each command, its key's settlement once it has one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Applied {
    pub settled: Vec<Option<Settled>>,
}

/// Why the leader did not settle an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceError {
    /// This replica does not lead; `leader` is the one it knows of.
    NotLeader { leader: Option<NodeId> },
    /// The leader cannot reach a majority, so it cannot commit.
    NoQuorum(String),
    /// The catalog did not answer the buy. If it sold nonetheless, the buy stays unconfirmed
    /// and a leader places its order later.
    Catalog(String),
    /// The log did not commit in time.
    Unavailable(String),
    /// The key was first used for another request, which stays as it was settled.
    KeyReused(String),
}

impl From<crate::raft::proposer::WriteError> for PlaceError {
    fn from(e: crate::raft::proposer::WriteError) -> Self {
        match e {
            crate::raft::proposer::WriteError::NotLeader { leader } => {
                PlaceError::NotLeader { leader }
            }
            crate::raft::proposer::WriteError::Unavailable(message) => {
                PlaceError::Unavailable(message)
            }
        }
    }
}

impl crate::raft::proposer::Bundled for TypeConfig {
    type Command = Command;
    type Reply = Option<Settled>;

    fn bundle(commands: Vec<Command>) -> Proposal {
        Proposal { commands }
    }

    fn unbundle(applied: Applied) -> Vec<Option<Settled>> {
        applied.settled
    }
}
