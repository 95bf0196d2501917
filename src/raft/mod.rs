//! What the replica groups' consensus engines (openraft) share: the log on disk and the peer
//! RPC over HTTP, for any group whose nodes are numbered like its services (`order-N`) and whose
//! entries are JSON.
//!
//! - [`log_store`]: entries, vote and committed index in one append-only file, group commit.
//! - [`network`]: append-entries, vote and snapshot chunks as POSTs with the cluster's secret.
//! - [`state_machine`]: a group's [`Book`] applied from the log, with its snapshot and view file.
//! - [`replica`]: what a replica of any group does around its engine: settings, first start,
//!   health, peer RPC routes.

pub mod identity;
pub mod log_store;
pub mod membership;
pub mod network;
pub mod proposer;
pub mod replica;
pub mod start_error;
pub mod state_machine;

pub use log_store::LogStore;
pub use network::Network;
pub use start_error::ReplicaError;
pub use state_machine::{Book, StateMachine, Store, View};

/// A replica's id in a group's engine: the same number as its service's (`order-N`).
pub type NodeId = u64;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;

/// The engine type set of a replica group: plain node ids and addresses, entries kept as
/// openraft's own (which serialise whenever the group's commands do), commands that clone.
pub trait Group:
    openraft::RaftTypeConfig<
    D: Clone,
    NodeId = NodeId,
    Node = openraft::BasicNode,
    Entry = openraft::Entry<Self>,
    Responder = openraft::impls::OneshotResponder<Self>,
>
{
}

impl<C> Group for C where
    C: openraft::RaftTypeConfig<
        D: Clone,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<C>,
        Responder = openraft::impls::OneshotResponder<C>,
    >
{
}
