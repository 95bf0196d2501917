//! The engine's peer RPC over HTTP: append-entries, vote and snapshot chunks, each a POST to
//! `/internal/raft/...` on the target replica with the cluster's secret.
//!
//! The reply body is the engine's own result, `{"Ok": …}` or `{"Err": …}`, so the caller's
//! engine sees exactly what the target's engine said. A peer that cannot be reached is reported
//! as unreachable, which makes the engine back off instead of retrying at once.

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use std::collections::HashMap;

use super::{Group, NodeId};
use crate::config::ReplicaAddr;
use crate::peer::{CallError, PeerClient};
use crate::timeouts;

/// Paths of the peer RPC endpoints.
pub const APPEND_PATH: &str = "/internal/raft/append";
pub const VOTE_PATH: &str = "/internal/raft/vote";
pub const SNAPSHOT_PATH: &str = "/internal/raft/snapshot";

/// Makes one [`PeerLink`] per target replica; they share the process's connection pool.
///
/// A replica is called at its address in the cluster file, not the one recorded in the log's
/// membership when the cluster was made: moving a replica to another host is then an edit of
/// the cluster file and a restart of each service, one at a time.
#[derive(Clone)]
pub struct Network {
    client: PeerClient,
    addresses: HashMap<NodeId, String>,
}

impl Network {
    /// `replicas` are the cluster file's replicas of the group.
    pub fn new(client: PeerClient, replicas: &[ReplicaAddr]) -> Self {
        let addresses = replicas
            .iter()
            .map(|r| (NodeId::from(r.id), r.url.clone()))
            .collect();
        Network { client, addresses }
    }
}

impl<C: Group> RaftNetworkFactory<C> for Network {
    type Network = PeerLink;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        PeerLink {
            client: self.client.clone(),
            target,
            base_url: self
                .addresses
                .get(&target)
                .cloned()
                .unwrap_or_else(|| self.client.service_url(&node.addr)),
        }
    }
}

/// The RPC connection to one replica.
pub struct PeerLink {
    client: PeerClient,
    target: NodeId,
    base_url: String,
}

impl PeerLink {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let url = format!("{}{path}", self.base_url);
        let reply = self
            .client
            .post_with_timeout::<_, Result<Resp, RaftError<NodeId, E>>>(
                &url,
                request,
                option.hard_ttl(),
            )
            .await;
        match reply {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(remote)) => Err(RPCError::RemoteError(RemoteError::new(self.target, remote))),
            Err(e @ CallError::Unreachable(_)) => Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl<C: Group> RaftNetwork<C> for PeerLink {
    /// How long the engine waits before it tries an unreachable peer again: a heartbeat, then
    /// doubling up to [`timeouts::PEER_BACKOFF_MAX`]. The engine's default (500 ms) let a
    /// replica that came back from a pause go without heartbeats long enough to stand for
    /// election and unseat a healthy leader.
    fn backoff(&self) -> Backoff {
        let mut next = timeouts::HEARTBEAT;
        Backoff::new(std::iter::from_fn(move || {
            let now = next;
            next = (next * 2).min(timeouts::PEER_BACKOFF_MAX);
            Some(now)
        }))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(APPEND_PATH, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(SNAPSHOT_PATH, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(VOTE_PATH, &rpc, &option).await
    }
}
