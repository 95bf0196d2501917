//! Calling whichever replica of a group leads. The caller keeps its last guess of the leader and
//! moves on to the next replica when the guess does not answer, answers that it does not lead
//! (421) or cannot commit (503), until a deadline: a leader that dies, pauses or is cut off costs
//! a caller one election, not an error.

use parking_lot::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

use crate::config::ReplicaAddr;
use crate::peer::{CallError, PeerClient};

/// Longest one replica is waited for before the next is tried: past a paused leader, in time
/// for the election that replaces it, and long enough for a busy leader's answer. A write
/// (a buy) may wait for a commit and for caches to be invalidated; a read does not.
const WRITE_ATTEMPT: Duration = Duration::from_millis(1000);
const READ_ATTEMPT: Duration = Duration::from_millis(500);
/// A replica that already let one attempt of this call run out gets this long on the next: a
/// paused leader is still named by its followers until they elect another.
const SILENT_ATTEMPT: Duration = Duration::from_millis(100);
/// Pause after every replica was tried once without an answer from a leader.
const ROUND_PAUSE: Duration = Duration::from_millis(50);

/// The voters of a group as a caller knows them: the cluster file's when it starts, then the
/// group's own membership, as its replicas report it in their health, so that a replica added
/// or replaced by `storectl member` is followed without a restart.
///
/// A voter the cluster file names is called at the file's address, as the replicas call each
/// other: a replica moved to another host by an edit of the file keeps its id, and the
/// membership still holds its old address. Only a voter the file does not name yet is called at
/// the membership's address.
#[derive(Clone)]
pub struct KnownReplicas {
    current: Arc<RwLock<Vec<ReplicaAddr>>>,
    in_file: Arc<Vec<ReplicaAddr>>,
}

impl KnownReplicas {
    /// The URL of a member the file does not name, in the scheme of the file's.
    fn url_of(&self, address: &str) -> String {
        let tls = self.in_file.iter().any(|r| r.url.starts_with("https://"));
        crate::config::service_url(address, tls)
    }

    /// `replicas` are the cluster file's.
    pub fn new(replicas: Vec<ReplicaAddr>) -> Self {
        KnownReplicas {
            in_file: Arc::new(replicas.clone()),
            current: Arc::new(RwLock::new(replicas)),
        }
    }

    pub fn get(&self) -> Vec<ReplicaAddr> {
        self.current.read().clone()
    }

    pub fn len(&self) -> usize {
        self.current.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the voters of a membership a replica reported; returns whether they changed.
    /// An empty report (a replica of an older storectl, or one that has not joined yet) is
    /// ignored.
    pub fn learn(&self, members: &[crate::wire::Member]) -> bool {
        let mut voters: Vec<ReplicaAddr> = members
            .iter()
            .filter(|m| m.voter)
            .map(|m| {
                let url = self
                    .in_file
                    .iter()
                    .find(|r| r.id == m.id)
                    .map_or_else(|| self.url_of(&m.address), |r| r.url.clone());
                ReplicaAddr { id: m.id, url }
            })
            .collect();
        if voters.is_empty() {
            return false;
        }
        voters.sort_by_key(|r| r.id);
        let mut known = self.current.write();
        let mut sorted = known.clone();
        sorted.sort_by_key(|r| r.id);
        if sorted == voters {
            return false;
        }
        tracing::info!(
            "the group's voters are now {}",
            voters
                .iter()
                .map(|r| r.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        *known = voters;
        true
    }
}

/// The report whose membership to follow: a leader's, in the newest term, or, when no replica
/// that answered leads (the new leader may be one the caller does not know yet), the follower's
/// with the newest term and the longest log. A follower's membership may lag the leader's by
/// an entry; the next look corrects it.
pub fn freshest<'a>(
    reports: impl Iterator<Item = &'a crate::wire::ReplicaHealth>,
) -> Option<&'a crate::wire::ReplicaHealth> {
    reports.filter(|h| !h.members.is_empty()).max_by_key(|h| {
        (
            h.role == crate::wire::Role::Leader,
            h.term,
            h.log_index.unwrap_or(0),
        )
    })
}

/// How long a call looks for a leader.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    /// Past this, the call fails unless a majority of the group answers: without one, no
    /// leader can be elected, and the caller is told so rather than kept waiting.
    pub without_majority: Duration,
    /// The longest the call waits while a majority answers: an election is under way, and a
    /// busy machine may take longer than usual to finish it.
    pub with_majority: Duration,
}

impl From<Duration> for Patience {
    /// The same wait whether or not a majority answers.
    fn from(within: Duration) -> Self {
        Patience {
            without_majority: within,
            with_majority: within,
        }
    }
}

/// A handle to one group's replicas; cheap to share behind an `Arc`.
pub struct GroupClient {
    /// The group as users name it: "catalog".
    name: &'static str,
    replicas: KnownReplicas,
    /// Index in `replicas` of the replica that answered last.
    guess: AtomicUsize,
    client: PeerClient,
}

impl GroupClient {
    pub fn new(name: &'static str, replicas: Vec<ReplicaAddr>, client: PeerClient) -> Self {
        // Start with the highest id, which leads whenever it can.
        let guess = replicas
            .iter()
            .enumerate()
            .max_by_key(|(_, r)| r.id)
            .map_or(0, |(i, _)| i);
        GroupClient {
            name,
            replicas: KnownReplicas::new(replicas),
            guess: AtomicUsize::new(guess),
            client,
        }
    }

    /// Follows the group's membership for as long as it runs: every `interval`, asks the
    /// replicas it knows for their health and takes the voters of the [`freshest`] report.
    pub async fn follow_members(self: Arc<Self>, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            let replicas = self.replicas.get();
            let client = &self.client;
            let asks = replicas.iter().map(|replica| {
                let url = format!("{}/health", replica.url);
                async move {
                    client
                        .get_with_timeout::<crate::wire::Data<crate::wire::ReplicaHealth>>(
                            &url,
                            crate::timeouts::HEALTH_CALL,
                        )
                        .await
                        .ok()
                        .map(|d| d.data)
                }
            });
            let reports: Vec<_> = futures_util::future::join_all(asks)
                .await
                .into_iter()
                .flatten()
                .collect();
            if let Some(report) = freshest(reports.iter()) {
                if self.replicas.learn(&report.members) {
                    self.guess.store(0, Ordering::Relaxed);
                }
            }
        }
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        within: impl Into<Patience>,
    ) -> Result<T, CallError> {
        self.call(path, None::<&()>, within.into()).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        within: impl Into<Patience>,
    ) -> Result<T, CallError> {
        self.call(path, Some(body), within.into()).await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
        patience: Patience,
    ) -> Result<T, CallError> {
        let started = Instant::now();
        let replicas = self.replicas.get();
        let mut search = Search::new(
            started,
            patience,
            replicas.len(),
            self.guess.load(Ordering::Relaxed),
        );
        let attempt_limit = if body.is_some() {
            WRITE_ATTEMPT
        } else {
            READ_ATTEMPT
        };
        while let Some(attempt) = search.next_attempt(attempt_limit) {
            let Some(replica) = replicas.get(search.index) else {
                break;
            };
            let url = format!("{}{path}", replica.url);
            let reply = match body {
                Some(body) => self.client.post_with_timeout(&url, body, attempt).await,
                None => self.client.get_with_timeout(&url, attempt).await,
            };
            let failure = match reply {
                Ok(value) => {
                    self.guess.store(search.index, Ordering::Relaxed);
                    return Ok(value);
                }
                Err(e) => e,
            };
            if let Err(e) = search.note_failure(failure) {
                self.guess.store(search.index, Ordering::Relaxed);
                return Err(e);
            }
            search.move_on().await;
        }
        Err(self.no_leader(search, replicas.len()))
    }

    /// The error of a call that found no leader among `replicas` replicas in time.
    fn no_leader(&self, search: Search, replicas: usize) -> CallError {
        let answering = search.answering();
        CallError::Status {
            status: 503,
            message: format!(
                "no {} replica leads: {answering} of {} answer{}{}",
                self.name,
                replicas,
                if answering == 1 { "s" } else { "" },
                search
                    .last
                    .map(|e| format!(" (last: {e})"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// Where one call stands in its look for a leader: the replica it tries next, those that
/// answered without leading or did not answer at all, and how long it may go on.
struct Search {
    /// Past this, the call gives up unless a majority answers.
    give_up_alone: Instant,
    /// Past this, the call gives up.
    deadline: Instant,
    majority: usize,
    /// Replicas in a round (at least one).
    count: usize,
    /// Index of the replica tried next.
    index: usize,
    answered: Vec<bool>,
    silent: Vec<bool>,
    /// The last replica's failure, for the error of a call that gives up.
    last: Option<CallError>,
    tried_this_round: usize,
}

impl Search {
    /// A look for a leader among `replicas` replicas, begun at `started`, that tries the
    /// caller's `guess` first.
    fn new(started: Instant, patience: Patience, replicas: usize, guess: usize) -> Self {
        let count = replicas.max(1);
        Search {
            give_up_alone: started + patience.without_majority,
            deadline: started + patience.with_majority.max(patience.without_majority),
            majority: replicas / 2 + 1,
            count,
            index: guess % count,
            answered: vec![false; count],
            silent: vec![false; count],
            last: None,
            tried_this_round: 0,
        }
    }

    /// How many replicas answered that they do not lead or cannot commit.
    fn answering(&self) -> usize {
        self.answered.iter().filter(|&&a| a).count()
    }

    /// How long to give the next replica, at most `limit` (less for one that was silent);
    /// `None` once the call should give up.
    fn next_attempt(&self, limit: Duration) -> Option<Duration> {
        let now = Instant::now();
        let answering = self.answering();
        if now >= self.deadline || (now >= self.give_up_alone && answering < self.majority) {
            return None;
        }
        let limit = if self.silent[self.index] {
            SILENT_ATTEMPT
        } else {
            limit
        };
        let until = if answering < self.majority {
            self.give_up_alone
        } else {
            self.deadline
        };
        Some(limit.min(until - now))
    }

    /// Notes how the replica tried did not lead; an error of the request's own, with which a
    /// leader answered, is handed back.
    fn note_failure(&mut self, error: CallError) -> Result<(), CallError> {
        match error {
            CallError::Status { status, message } if status == 421 || status == 503 => {
                self.answered[self.index] = true;
                self.last = Some(CallError::Status { status, message });
            }
            e @ CallError::Unreachable(_) => {
                self.silent[self.index] = true;
                self.last = Some(e);
            }
            // The leader answered, with an error of the request's own.
            e => return Err(e),
        }
        Ok(())
    }

    /// Moves on to the next replica, pausing briefly after every round without a leader.
    async fn move_on(&mut self) {
        self.index = (self.index + 1) % self.count;
        self.tried_this_round += 1;
        if self.tried_this_round >= self.count {
            self.tried_this_round = 0;
            let pause = ROUND_PAUSE.min(self.deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Data, Member};

    fn member(id: u32, address: &str, voter: bool) -> Member {
        Member {
            id,
            address: address.into(),
            voter,
        }
    }

    /// A replica that answers every request with 421 until `leads_from`, then with 200 and
    /// `{"data": 7}`, one connection at a time.
    async fn replica_electing(leads_from: Option<Instant>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let leads = leads_from.is_some_and(|at| Instant::now() >= at);
                let (status, body) = if leads {
                    ("200 OK", r#"{"data":7}"#)
                } else {
                    ("421 Misdirected Request", r#"{"error":"not the leader"}"#)
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            }
        });
        url
    }

    /// An address where nothing listens.
    async fn replica_gone() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    }

    fn group(urls: Vec<String>) -> GroupClient {
        let replicas = urls
            .into_iter()
            .enumerate()
            .map(|(i, url)| ReplicaAddr {
                id: i as u32 + 1,
                url,
            })
            .collect();
        let client = PeerClient::for_services(&crate::secret::Secret::generate(), None);
        GroupClient::new("catalog", replicas, client)
    }

    const WAITING: Patience = Patience {
        without_majority: Duration::from_millis(300),
        with_majority: Duration::from_secs(30),
    };

    #[tokio::test]
    async fn a_call_waits_past_its_short_patience_while_a_majority_elects() {
        let elected = Instant::now() + Duration::from_millis(900);
        let group = group(vec![
            replica_electing(None).await,
            replica_electing(Some(elected)).await,
            replica_gone().await,
        ]);
        let answer: Data<i32> = group.get("/products/Tux", WAITING).await.unwrap();
        assert_eq!(answer.data, 7);
    }

    #[tokio::test]
    async fn a_call_gives_up_early_when_fewer_than_a_majority_answer() {
        let group = group(vec![
            replica_electing(None).await,
            replica_gone().await,
            replica_gone().await,
        ]);
        let started = Instant::now();
        let err = group
            .get::<Data<i32>>("/products/Tux", WAITING)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("1 of 3 answers"),
            "unexpected error: {err}"
        );
        // Far below the 30 s a majority would be waited for.
        assert!(started.elapsed() < Duration::from_secs(15));
    }

    #[test]
    fn voters_are_learned_at_the_files_address_when_it_names_them() {
        let file = crate::cluster_file::ClusterFile::local("127.0.0.1", 8000, 1).replicas();
        let known = KnownReplicas::new(file);
        // Replica 2 moved to another host by an edit of the file: the membership still has the
        // address it was added at. Replica 4 is new, and only the membership knows it; 5 is
        // a learner.
        let changed = known.learn(&[
            member(1, "http://127.0.0.1:8010", true),
            member(2, "http://10.9.9.9:8011", true),
            member(4, "10.0.0.4:8010", true),
            member(5, "10.0.0.5:8010", false),
        ]);
        assert!(changed);
        let urls: Vec<(u32, String)> = known.get().into_iter().map(|r| (r.id, r.url)).collect();
        assert_eq!(
            urls,
            [
                (1, "http://127.0.0.1:8010".to_string()),
                (2, "http://127.0.0.1:8011".to_string()),
                (4, "http://10.0.0.4:8010".to_string()),
            ]
        );
        assert!(!known.learn(&[]), "an empty report changes nothing");
        assert_eq!(known.len(), 3);
    }
}
