//! What a replica of any group does around its engine, the same way for the order group and the
//! catalog group: its engine settings, the first start of a group, its health, noticing that the
//! engine stopped, refusing to rejoin with a wiped log, and serving the peer RPC.

use std::collections::BTreeMap;
use std::path::Path;

use openraft::{BasicNode, Raft, ServerState};
use serde::de::DeserializeOwned;
use warp::http::{Method, StatusCode};

use super::{Group, NodeId};
use crate::config::ReplicaAddr;
use crate::http::{self, Request, Response};
use crate::peer::PeerClient;
use crate::raft::start_error::{ReplicaError, Result};
use crate::timeouts;
use crate::wire::{Data, ReplicaHealth, Replicated, Role};

/// This replica's rank among `ids`, 0 for the highest: it decides how soon it stands for
/// election, so the highest id that is up leads first.
pub fn rank(id: u32, ids: &[u32]) -> usize {
    ids.iter().filter(|&&other| other > id).count()
}

/// A replica's engine, started from its files.
pub struct Engine<B: super::state_machine::Book> {
    pub raft: Raft<B::Group>,
    /// The log's handle, for its disk-full flag and what `GET /metrics` reads of it.
    pub log: super::LogStore<B::Group>,
    /// The book the state machine applies to, for the service to read.
    pub book: super::state_machine::Store<B>,
    pub identity: super::identity::Identity,
    /// This replica's rank by id, 0 for the highest: it decides how soon it stands.
    pub rank: usize,
}

/// Where a replica's files are, and which group it belongs to.
pub struct EngineFiles<'a> {
    pub claim: super::identity::Claim<'a>,
    pub snapshot: std::path::PathBuf,
    /// The file kept beside the snapshot (the orders or the stock as CSV).
    pub view: std::path::PathBuf,
}

/// Settles the replica's identity, opens its log and state machine, refuses to start a replica
/// whose data went back (see [`refuse_if_gone_back`]), and starts the engine among `replicas`.
/// The same steps for both groups; `name` names the replica in errors.
pub async fn start_engine<B: super::state_machine::Book>(
    files: &EngineFiles<'_>,
    replicas: &[ReplicaAddr],
    client: &PeerClient,
    name: &str,
) -> Result<Engine<B>> {
    let claim = &files.claim;
    let (identity, start) = claim.settle()?;
    let log = super::LogStore::<B::Group>::open(&claim.log_path)?;
    let (machine, book) = super::state_machine::open::<B>(&files.snapshot, &files.view)?;
    machine.apply_only_durable(log.durable());
    // What it holds: its log, or a snapshot installed past its log's end.
    let held = log.last_index().max(machine.last_applied_index());
    refuse_if_gone_back(claim, start, held, replicas, client).await?;
    let ids: Vec<u32> = replicas.iter().map(|r| r.id).collect();
    let rank = rank(claim.id, &ids);
    let settings = engine_config(rank, ids.len())?;
    let resigned = log
        .resign_saved_leadership(NodeId::from(claim.id))
        .await
        .map_err(|e| ReplicaError::EngineStart {
            name: name.to_string(),
            cause: e.to_string(),
        })?;
    if resigned {
        tracing::info!("{name} led before it stopped: it starts as a follower, for an election");
    }
    let raft = Raft::new(
        NodeId::from(claim.id),
        std::sync::Arc::new(settings),
        super::Network::new(client.clone(), replicas),
        log.clone(),
        machine,
    )
    .await
    .map_err(|e| ReplicaError::EngineStart {
        name: name.to_string(),
        cause: e.to_string(),
    })?;
    Ok(Engine {
        raft,
        log,
        book,
        identity,
        rank,
    })
}

/// Serves `handler` on `listener` until `shutdown`, then aborts `tasks` and stops the engine.
/// Fails at once if the engine stops by itself (a disk that failed, a bug): a replica without
/// its engine must not go on answering as if it were one. `name` names the replica.
pub async fn serve_while_engine_runs<C: Group, H: http::Handler>(
    raft: &Raft<C>,
    handler: H,
    listener: tokio::net::TcpListener,
    tls: Option<std::sync::Arc<crate::tls::ServerSide>>,
    tasks: tokio::task::JoinSet<()>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    name: &str,
) -> Result<()> {
    let header_read_timeout = crate::config::defaults::HEADER_READ_TIMEOUT.get();
    let engine_stopped = tokio::select! {
        _ = http::serve(listener, handler, header_read_timeout, tls, shutdown) => false,
        _ = engine_stopped(raft) => true,
    };
    drop(tasks);
    if engine_stopped {
        return Err(ReplicaError::EngineStopped(name.to_string()));
    }
    if let Err(e) = raft.shutdown().await {
        tracing::warn!("the engine did not stop cleanly: {e}");
    }
    Ok(())
}

/// The engine's settings for the replica of rank `rank` (0 for the highest id) of `replicas`.
pub fn engine_config(rank: usize, replicas: usize) -> Result<openraft::Config> {
    let (election_min, election_max) = timeouts::election_timeout(rank, replicas);
    // Tests that must meet snapshots and compactions soon make the log small.
    let small = crate::fault::small_log();
    openraft::Config {
        cluster_name: "storectl".into(),
        heartbeat_interval: timeouts::HEARTBEAT.as_millis() as u64,
        election_timeout_min: election_min.as_millis() as u64,
        election_timeout_max: election_max.as_millis() as u64,
        install_snapshot_timeout: timeouts::INSTALL_SNAPSHOT.as_millis() as u64,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(if small { 50 } else { 20_000 }),
        max_in_snapshot_log_to_keep: if small { 10 } else { 2_000 },
        // Chunks travel as JSON arrays of numbers, up to four bytes a byte: this keeps them far
        // under the peer body limit.
        snapshot_max_chunk_size: (crate::http::MAX_PEER_BODY_BYTES / 8) as u64,
        ..Default::default()
    }
    .validate()
    .map_err(|e| ReplicaError::Settings(format!("bad engine settings: {e}")))
}

/// Every replica of a group as the engine's membership names them.
pub fn members(replicas: &[ReplicaAddr]) -> BTreeMap<NodeId, BasicNode> {
    replicas
        .iter()
        .map(|r| (NodeId::from(r.id), BasicNode::new(&r.url)))
        .collect()
}

/// Spawns on `tasks` what every replica runs beside its routes, whichever its group: making the
/// group on its first start when it is one of the founding `members` ([`bootstrap`]), and
/// finishing a membership change its leader began ([`super::membership::finish_joint_changes`]).
pub fn spawn_group_tasks<C: Group>(
    tasks: &mut tokio::task::JoinSet<()>,
    raft: &Raft<C>,
    founding: Option<BTreeMap<NodeId, BasicNode>>,
    rank: usize,
    name: String,
) {
    if let Some(members) = founding {
        let raft = raft.clone();
        tasks.spawn(async move { bootstrap(&raft, members, rank, &name).await });
    }
    tasks.spawn(super::membership::finish_joint_changes(raft.clone()));
}

/// Makes the group exist: the first time a replica starts, it names every replica as a member,
/// which also makes it stand for election. The highest id does so at once and the others
/// later, each rank a step behind, so the highest id that is up leads first. The same members
/// on every replica make this safe from any of them.
pub async fn bootstrap<C: Group>(
    raft: &Raft<C>,
    members: BTreeMap<NodeId, BasicNode>,
    rank: usize,
    name: &str,
) {
    tokio::time::sleep(timeouts::ELECTION_STEP * 3 * rank as u32).await;
    loop {
        match raft.is_initialized().await {
            Ok(true) | Err(_) => return,
            Ok(false) => {}
        }
        match raft.initialize(members.clone()).await {
            Ok(()) => {
                tracing::info!("{name} started its group");
                return;
            }
            Err(e) => tracing::debug!("initialize: {e}"),
        }
        tokio::time::sleep(timeouts::ELECTION_STEP).await;
    }
}

/// Health and role as the engine sees them; `len` is what the group counts as held (orders
/// applied, for the order group); `disk_full` is the log's flag ([`crate::raft::LogStore::disk_full`]).
pub fn health<C: Group>(raft: &Raft<C>, id: u32, len: u64, disk_full: bool) -> ReplicaHealth {
    let metrics = raft.metrics().borrow().clone();
    let role = match metrics.state {
        ServerState::Leader => Role::Leader,
        ServerState::Follower => Role::Follower,
        ServerState::Candidate => Role::Candidate,
        ServerState::Learner => Role::Learner,
        ServerState::Shutdown => Role::Stopped,
    };
    ReplicaHealth {
        id,
        role,
        leader_id: metrics.current_leader.and_then(|l| u32::try_from(l).ok()),
        term: metrics.current_term,
        ready: metrics.running_state.is_ok() && metrics.current_leader.is_some(),
        len,
        log_index: metrics.last_log_index,
        applied_index: metrics.last_applied.map(|l| l.index),
        replicated: metrics
            .replication
            .iter()
            .flatten()
            .filter_map(|(id, matched)| {
                Some(Replicated {
                    id: u32::try_from(*id).ok()?,
                    index: matched.map(|m| m.index),
                })
            })
            .collect(),
        disk_full,
        members: members_of(&metrics.membership_config),
        changing: metrics
            .membership_config
            .membership()
            .get_joint_config()
            .len()
            > 1,
        incarnation: None,
        tls_refused: None,
    }
}

/// What a replica of `group` reports at a scrape of `GET /metrics`: its raft figures as the
/// engine and its log see them.
pub fn readings<C: Group>(
    raft: &Raft<C>,
    group: &'static str,
    log: &super::LogStore<C>,
    disk_full: bool,
) -> Vec<crate::metrics::Reading> {
    use crate::metrics::Reading;
    let metrics = raft.metrics().borrow().clone();
    let mut readings = leadership_readings(&metrics);
    readings.extend([
        Reading::gauge(
            "raft_last_log_index",
            "The index of the last entry in the replica's log",
            metrics.last_log_index.unwrap_or(0) as f64,
        ),
        Reading::gauge(
            "raft_commit_index",
            "The index of the last entry the replica knows committed",
            log.committed_index().unwrap_or(0) as f64,
        ),
        Reading::gauge(
            "raft_applied_index",
            "The index of the last entry applied to the replica's state",
            metrics.last_applied.map_or(0, |l| l.index) as f64,
        ),
        Reading::gauge(
            "raft_log_entries",
            "Entries the replica's log holds past its last snapshot",
            log.entries() as f64,
        ),
        Reading::gauge(
            "raft_voters",
            "Voters in the group's membership as this replica knows it",
            metrics.membership_config.membership().voter_ids().count() as f64,
        ),
        Reading::gauge(
            "disk_full",
            "1 while the log's disk is full",
            u8::from(disk_full),
        ),
    ]);
    for reading in &mut readings {
        reading.labels.push(("group", group.to_string()));
    }
    readings
}

/// The term, the leader this replica follows, and whether it leads: the first of its readings.
fn leadership_readings(
    metrics: &openraft::RaftMetrics<NodeId, BasicNode>,
) -> Vec<crate::metrics::Reading> {
    use crate::metrics::Reading;
    let leads = metrics.state == ServerState::Leader;
    vec![
        Reading::gauge(
            "raft_term",
            "The replica's current raft term",
            metrics.current_term as f64,
        ),
        Reading::gauge(
            "raft_leader",
            "The id of the replica this one follows as leader (0: none known)",
            metrics.current_leader.unwrap_or(0) as f64,
        ),
        Reading::gauge(
            "raft_is_leader",
            "1 while this replica leads its group",
            u8::from(leads),
        ),
    ]
}

/// The members of a stored membership, voters and learners, with their addresses.
fn members_of(stored: &openraft::StoredMembership<NodeId, BasicNode>) -> Vec<crate::wire::Member> {
    let membership = stored.membership();
    let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
    membership
        .nodes()
        .filter_map(|(id, node)| {
            Some(crate::wire::Member {
                id: u32::try_from(*id).ok()?,
                address: node.addr.clone(),
                voter: voters.contains(id),
            })
        })
        .collect()
}

/// Why a replica may not act as its group's leader now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotLeading {
    /// It does not lead; `leader` is the one it knows of.
    NotLeader { leader: Option<NodeId> },
    /// It leads but has not heard from a majority for this many milliseconds: it may have been
    /// replaced, and could commit nothing anyway.
    NoQuorum { silent_ms: u64 },
}

/// This replica's term, when it leads and has heard from a majority within
/// [`timeouts::QUORUM_LOST`]. Read on every request: the fields it needs, not a copy of all the
/// engine's metrics.
pub fn leads<C: Group>(raft: &Raft<C>) -> Result<u64, NotLeading> {
    let metrics = raft.metrics();
    let m = metrics.borrow();
    if m.state != ServerState::Leader {
        return Err(NotLeading::NotLeader {
            leader: m.current_leader,
        });
    }
    // Unknown right after an election; the commit timeout bounds that case.
    match m.millis_since_quorum_ack {
        Some(silent_ms) if silent_ms > timeouts::QUORUM_LOST.as_millis() as u64 => {
            Err(NotLeading::NoQuorum { silent_ms })
        }
        _ => Ok(m.current_term),
    }
}

/// Returns once the engine has stopped running (a disk that failed, a bug): a replica without
/// its engine must not go on answering as if it were one.
pub async fn engine_stopped<C: Group>(raft: &Raft<C>) {
    let mut metrics = raft.metrics();
    loop {
        if metrics.borrow_and_update().running_state.is_err() {
            return;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Checks, once its log is open, that a replica has not gone backwards
/// ([`refuse_if_behind`]). A replica refused on the start that made its identity and its empty
/// log loses both again, so that its next start is refused too.
pub async fn refuse_if_gone_back(
    claim: &super::identity::Claim<'_>,
    start: super::identity::Start,
    last_index: Option<u64>,
    replicas: &[ReplicaAddr],
    client: &PeerClient,
) -> Result<()> {
    let name = format!("{}-{}", claim.group, claim.id);
    let dir = claim.log_path.parent().unwrap_or(Path::new("."));
    let refused = refuse_if_behind(&name, claim.id, dir, last_index, replicas, client).await;
    if refused.is_err() && start != super::identity::Start::Existing {
        let _ = std::fs::remove_file(&claim.identity_path);
        let _ = std::fs::remove_file(&claim.log_path);
    }
    refused
}

/// A replica whose log ends before the index up to which its group's leader holds a copy of its
/// entries went backwards: wiped (`last_index` is `None`), or restored from an older copy. Its
/// acknowledged entries are gone, and the engine would treat a log that went backwards as a
/// bug (the leader stops). Refuse, and say how to recover. (A new group's leader knows nothing
/// of a replica it has never reached, so a first start is never refused.)
async fn refuse_if_behind(
    name: &str,
    id: u32,
    data_dir: &Path,
    last_index: Option<u64>,
    replicas: &[ReplicaAddr],
    client: &PeerClient,
) -> Result<()> {
    let asks = replicas.iter().filter(|r| r.id != id).map(|r| async move {
        let url = format!("{}/health", r.url);
        client
            .get_with_timeout::<Data<ReplicaHealth>>(&url, timeouts::HEALTH_CALL)
            .await
            .ok()
            .map(|d| d.data)
    });
    for health in futures_util::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
    {
        let copy = health
            .replicated
            .iter()
            .find(|r| r.id == id)
            .and_then(|r| r.index);
        let Some(index) = copy.filter(|&index| Some(index) > last_index) else {
            continue;
        };
        if health.role != Role::Leader {
            continue;
        }
        let what = match last_index {
            None => format!("{name} has no log in {}", data_dir.display()),
            Some(last) => format!(
                "{name}'s log in {} ends at index {last}",
                data_dir.display()
            ),
        };
        return Err(ReplicaError::GoneBack {
            what,
            leader: health.id,
            index,
        });
    }
    Ok(())
}

/// Serves the engine's peer RPC (`/internal/raft/append|vote|snapshot`) and membership changes
/// (`/internal/members`, [`super::membership`]), or `None` for any other path. The body is the
/// engine's request, the reply its `Ok`/`Err` result.
pub async fn peer_rpc<C: Group>(raft: &Raft<C>, request: &Request) -> Option<Response> {
    let segments = request.segments();
    if segments.as_slice() == ["internal", "members"] {
        return Some(match request.method {
            Method::POST => super::membership::change(raft, request).await,
            ref other => http::method_not_allowed(other, "POST"),
        });
    }
    let rpc = match segments.as_slice() {
        ["internal", "raft", rpc @ ("append" | "vote" | "snapshot")] => *rpc,
        _ => return None,
    };
    if request.method != Method::POST {
        return Some(http::method_not_allowed(&request.method, "POST"));
    }
    Some(match rpc {
        "append" => call(request, |r| raft.append_entries(r)).await,
        "vote" => call(request, |r| raft.vote(r)).await,
        _ => {
            call(request, |r: openraft::raft::InstallSnapshotRequest<C>| {
                raft.install_snapshot(r)
            })
            .await
        }
    })
}

async fn call<Req, Resp, F, Fut>(request: &Request, call: F) -> Response
where
    Req: DeserializeOwned,
    Resp: serde::Serialize,
    F: FnOnce(Req) -> Fut,
    Fut: std::future::Future<Output = Resp>,
{
    match http::parse_json::<Req>(request) {
        Ok(rpc) => http::json(StatusCode::OK, &call(rpc).await),
        Err(e) => e.into(),
    }
}
