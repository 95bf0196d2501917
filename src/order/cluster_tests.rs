//! Three replicas of the engine in one process, with the real storage on disk and the peer
//! network replaced by direct calls that a test can cut: the protocol cases, run fast and
//! exactly. (The real processes, HTTP and signals are tested in `tests/`.)

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};

type LogStore = crate::raft::LogStore<TypeConfig>;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, ServerState};

use super::machine::OrderStore;
use super::types::{BuyResult, Command, NodeId, Proposal, Raft, Settled, TypeConfig};
use super::{log_file_name, machine};
use crate::raft::replica::engine_config as raft_config;
use crate::wire::Bought;

/// Which replicas run, and which links are cut.
#[derive(Default)]
struct Router {
    nodes: Mutex<HashMap<NodeId, Raft>>,
    /// Directed links that drop every message.
    cut: Mutex<HashSet<(NodeId, NodeId)>>,
}

#[derive(Debug)]
struct Cut;

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "link cut or replica down")
    }
}

impl std::error::Error for Cut {}

impl Router {
    /// The target's engine, if the link from `from` to it carries messages both ways.
    fn reach(&self, from: NodeId, to: NodeId) -> Option<Raft> {
        let cut = self.cut.lock().unwrap();
        if cut.contains(&(from, to)) || cut.contains(&(to, from)) {
            return None;
        }
        self.nodes.lock().unwrap().get(&to).cloned()
    }
}

#[derive(Clone)]
struct Net {
    router: Arc<Router>,
    from: NodeId,
}

struct Link {
    router: Arc<Router>,
    from: NodeId,
    to: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for Net {
    type Network = Link;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Link {
        Link {
            router: self.router.clone(),
            from: self.from,
            to: target,
        }
    }
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl Link {
    /// The target's engine, if the link carries messages.
    fn target(&self) -> Option<Raft> {
        self.router.reach(self.from, self.to)
    }
}

fn cut<E: std::error::Error>() -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    RPCError::Unreachable(Unreachable::new(&Cut))
}

fn remote<E: std::error::Error>(
    to: NodeId,
    e: RaftError<NodeId, E>,
) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    RPCError::RemoteError(openraft::error::RemoteError::new(to, e))
}

impl RaftNetwork<TypeConfig> for Link {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let raft = self.target().ok_or_else(cut)?;
        let result = raft.append_entries(rpc).await;
        // A reply on a link cut meanwhile is lost too.
        self.target().ok_or_else(cut)?;
        result.map_err(|e| remote(self.to, e))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let raft = self.target().ok_or_else(cut)?;
        raft.install_snapshot(rpc)
            .await
            .map_err(|e| remote(self.to, e))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let raft = self.target().ok_or_else(cut)?;
        raft.vote(rpc).await.map_err(|e| remote(self.to, e))
    }
}

/// Three replicas on disk in a temporary directory.
struct Cluster {
    router: Arc<Router>,
    dir: tempfile::TempDir,
    books: Mutex<HashMap<NodeId, OrderStore>>,
}

const IDS: [NodeId; 3] = [1, 2, 3];

impl Cluster {
    async fn start() -> Cluster {
        let cluster = Cluster {
            router: Arc::new(Router::default()),
            dir: tempfile::tempdir().unwrap(),
            books: Mutex::new(HashMap::new()),
        };
        for id in IDS {
            cluster.boot(id).await;
        }
        let members: BTreeMap<NodeId, BasicNode> = IDS
            .iter()
            .map(|&id| (id, BasicNode::new(format!("node-{id}"))))
            .collect();
        cluster.raft(3).initialize(members).await.unwrap();
        assert_eq!(
            cluster.wait_leader(&IDS).await,
            3,
            "the highest id leads first"
        );
        cluster
    }

    fn path(&self, id: NodeId) -> PathBuf {
        self.dir.path().join(format!("replica-{id}"))
    }

    /// Opens replica `id` from its files and starts its engine.
    async fn boot(&self, id: NodeId) {
        let dir = self.path(id);
        std::fs::create_dir_all(&dir).unwrap();
        let log = LogStore::open(&dir.join(log_file_name(id as u32))).unwrap();
        let (machine, book) = machine::open(&dir, id as u32).unwrap();
        let rank = IDS.iter().filter(|&&other| other > id).count();
        let raft = Raft::new(
            id,
            Arc::new(raft_config(rank, IDS.len()).unwrap()),
            Net {
                router: self.router.clone(),
                from: id,
            },
            log,
            machine,
        )
        .await
        .unwrap();
        self.router.nodes.lock().unwrap().insert(id, raft);
        self.books.lock().unwrap().insert(id, book);
    }

    /// Stops replica `id` as a crash would: its engine goes, its files stay.
    async fn crash(&self, id: NodeId) {
        let raft = self.router.nodes.lock().unwrap().remove(&id);
        if let Some(raft) = raft {
            raft.shutdown().await.unwrap();
        }
    }

    fn raft(&self, id: NodeId) -> Raft {
        self.router.nodes.lock().unwrap()[&id].clone()
    }

    fn book(&self, id: NodeId) -> OrderStore {
        self.books.lock().unwrap()[&id].clone()
    }

    /// Cuts every link between `id` and the others.
    fn isolate(&self, id: NodeId) {
        let mut cut = self.router.cut.lock().unwrap();
        for other in IDS.iter().filter(|&&o| o != id) {
            cut.insert((id, *other));
        }
    }

    fn heal(&self) {
        self.router.cut.lock().unwrap().clear();
    }

    /// Freezes replica `id` as SIGSTOP would: no message in or out, and its own timers stop.
    fn pause(&self, id: NodeId) {
        self.isolate(id);
        let raft = self.raft(id);
        let runtime = raft.runtime_config();
        runtime.tick(false);
        runtime.heartbeat(false);
        runtime.elect(false);
    }

    /// Lets a paused replica go on where it stopped, as SIGCONT would.
    fn resume(&self, id: NodeId) {
        let raft = self.raft(id);
        let runtime = raft.runtime_config();
        runtime.tick(true);
        runtime.heartbeat(true);
        runtime.elect(true);
        self.heal();
    }

    /// Waits until every replica in `among` names the same leader, which leads; returns it.
    async fn wait_leader(&self, among: &[NodeId]) -> NodeId {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let views: Vec<(ServerState, Option<NodeId>)> = among
                .iter()
                .map(|&id| {
                    let m = self.raft(id).metrics().borrow().clone();
                    (m.state, m.current_leader)
                })
                .collect();
            if let Some(leader) = views[0].1 {
                let agreed = views.iter().all(|(_, l)| *l == Some(leader));
                let leading = among
                    .iter()
                    .zip(&views)
                    .any(|(&id, (state, _))| id == leader && *state == ServerState::Leader);
                if agreed && leading {
                    return leader;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader among {among:?}: {views:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Places an order through `leader`: commits its outcome. Returns its number.
    async fn place(&self, leader: NodeId, key: &str) -> Result<u64, String> {
        let raft = self.raft(leader);
        let write = |command| async {
            let proposal = Proposal {
                commands: vec![command],
            };
            tokio::time::timeout(Duration::from_secs(2), raft.client_write(proposal))
                .await
                .map_err(|_| "no commit in 2 s".to_string())?
                .map_err(|e| e.to_string())
                .map(|written| written.data.settled.into_iter().next().flatten())
        };
        match write(bought(key)).await? {
            Some(Settled::Placed { number }) => Ok(number),
            other => Err(format!("not placed: {other:?}")),
        }
    }

    /// Waits until every replica in `among` has applied `orders` orders, then checks that
    /// their orders files are byte-identical.
    async fn assert_converged(&self, among: &[NodeId], orders: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while among
            .iter()
            .any(|&id| self.book(id).read(|b| b.len()) != orders)
        {
            let lens: Vec<u64> = among
                .iter()
                .map(|&id| self.book(id).read(|b| b.len()))
                .collect();
            assert!(
                Instant::now() < deadline,
                "not converged on {orders}: {lens:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let files: Vec<Vec<u8>> = among
            .iter()
            .map(|&id| std::fs::read(self.path(id).join(format!("orders-{id}.csv"))).unwrap())
            .collect();
        assert!(
            files.windows(2).all(|w| w[0] == w[1]),
            "orders files differ"
        );
    }

    fn key_at(&self, id: NodeId, number: u64) -> Option<String> {
        self.book(id)
            .read(|b| b.order(number).map(|e| e.key.clone()))
    }
}

/// An order's outcome: one Tux bought with `key`.
fn bought(key: &str) -> Command {
    Command::Outcome {
        key: key.into(),
        result: BuyResult::Bought(Bought {
            name: "Tux".into(),
            quantity: 1,
        }),
    }
}

/// Starts a write on `raft`, a leader cut off or paused; resolves to whether it was ever
/// acknowledged (within `within`).
fn stale_write(raft: Raft, within: Duration) -> tokio::task::JoinHandle<bool> {
    tokio::spawn(async move {
        let proposal = Proposal {
            commands: vec![bought("stale")],
        };
        let written = tokio::time::timeout(within, raft.client_write(proposal)).await;
        matches!(written, Ok(Ok(_)))
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_cut_off_leader_commits_nothing_and_acknowledged_orders_survive_it() {
    runtime().block_on(async {
        let cluster = Cluster::start().await;
        let mut acknowledged = Vec::new();
        for i in 0..5 {
            let key = format!("before-{i}");
            acknowledged.push((cluster.place(3, &key).await.unwrap(), key));
        }
        // With equal logs, the highest id left wins; a longer log would win whatever its id.
        cluster.assert_converged(&IDS, 5).await;
        cluster.isolate(3);
        // The old leader still believes it leads; nothing it takes can commit.
        let stale = stale_write(cluster.raft(3), Duration::from_secs(3));
        let leader = cluster.wait_leader(&[1, 2]).await;
        assert_eq!(leader, 2, "the highest id that can win leads next");
        for i in 0..5 {
            let key = format!("after-{i}");
            acknowledged.push((cluster.place(2, &key).await.unwrap(), key));
        }
        assert!(
            !stale.await.unwrap(),
            "a cut-off leader acknowledged a write"
        );
        cluster.heal();
        assert_eq!(cluster.wait_leader(&IDS).await, 2);
        cluster.assert_converged(&IDS, 10).await;
        for (number, key) in &acknowledged {
            for id in IDS {
                assert_eq!(cluster.key_at(id, *number).as_deref(), Some(key.as_str()));
            }
        }
        let numbers: Vec<u64> = acknowledged.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, (0..10).collect::<Vec<u64>>(), "contiguous from 0");
    });
}

#[test]
fn a_paused_leader_that_resumes_steps_down_and_its_stale_write_never_commits() {
    runtime().block_on(async {
        let cluster = Cluster::start().await;
        for i in 0..3 {
            cluster.place(3, &format!("before-{i}")).await.unwrap();
        }
        cluster.assert_converged(&IDS, 3).await;
        cluster.pause(3);
        let stale = stale_write(cluster.raft(3), Duration::from_secs(4));
        assert_eq!(cluster.wait_leader(&[1, 2]).await, 2);
        for i in 0..3 {
            cluster.place(2, &format!("during-{i}")).await.unwrap();
        }
        cluster.resume(3);
        let leader = cluster.wait_leader(&IDS).await;
        cluster.place(leader, "after").await.unwrap();
        cluster.assert_converged(&IDS, 7).await;
        assert!(
            !stale.await.unwrap(),
            "the paused leader acknowledged a write after it resumed"
        );
        for id in IDS {
            let keys: Vec<Option<String>> = (0..7).map(|n| cluster.key_at(id, n)).collect();
            assert!(!keys.contains(&Some("stale".into())), "{keys:?}");
            assert_eq!(keys[3].as_deref(), Some("during-0"));
        }
    });
}

#[test]
fn two_replicas_down_then_back_and_a_power_loss_lose_nothing() {
    runtime().block_on(async {
        let cluster = Cluster::start().await;
        for i in 0..5 {
            cluster.place(3, &format!("a-{i}")).await.unwrap();
        }
        // Two down: the one left cannot commit, and says so within its timeout.
        cluster.crash(3).await;
        cluster.crash(2).await;
        let lone = cluster.place(1, "lonely").await;
        assert!(lone.is_err(), "one replica alone placed an order: {lone:?}");
        cluster.boot(2).await;
        cluster.boot(3).await;
        let leader = cluster.wait_leader(&IDS).await;
        for i in 0..5 {
            cluster.place(leader, &format!("b-{i}")).await.unwrap();
        }
        // Every replica crashes at once, then comes back one by one.
        for id in IDS {
            cluster.crash(id).await;
        }
        for id in [2, 1, 3] {
            cluster.boot(id).await;
        }
        let leader = cluster.wait_leader(&IDS).await;
        let number = cluster.place(leader, "c-0").await.unwrap();
        assert_eq!(
            number, 10,
            "numbers continue after every acknowledged order"
        );
        cluster.assert_converged(&IDS, 11).await;
        for (number, key) in [(0, "a-0"), (5, "b-0"), (9, "b-4"), (10, "c-0")] {
            assert_eq!(cluster.key_at(1, number).as_deref(), Some(key));
        }
    });
}

#[test]
fn a_key_retried_on_a_new_leader_keeps_its_number() {
    runtime().block_on(async {
        let cluster = Cluster::start().await;
        let number = cluster.place(3, "retried").await.unwrap();
        cluster.place(3, "other").await.unwrap();
        cluster.crash(3).await;
        let leader = cluster.wait_leader(&[1, 2]).await;
        // The client never heard back and retries: the same key, the same number, no new order.
        assert_eq!(cluster.place(leader, "retried").await.unwrap(), number);
        cluster.assert_converged(&[1, 2], 2).await;
    });
}
