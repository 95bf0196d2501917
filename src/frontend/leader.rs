//! Following the order leader. The replicas elect it among themselves; the front end only finds
//! out who it is, by asking every replica's health every [`timeouts::HEALTH_POLL`] (and at once
//! when a replica says it does not lead), and counts how many replicas answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use crate::config::ReplicaAddr;
use crate::group_client::KnownReplicas;
use crate::peer::PeerClient;
use crate::timeouts;
use crate::wire::{Data, ReplicaHealth, Role};

/// The leader as the front end knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    pub id: u32,
    pub url: String,
    pub term: u64,
}

/// What the front end knows of the replicas after its last look.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub leader: Option<Leader>,
    /// Replicas that answered the last health poll.
    pub answering: usize,
    /// Since when fewer than a majority have answered; `None` while a majority answers or
    /// before the first poll.
    pub minority_since: Option<Instant>,
}

#[derive(Clone)]
pub struct LeaderTracker {
    inner: Arc<Inner>,
}

struct Inner {
    /// The order group's voters, followed as its leader reports them.
    replicas: KnownReplicas,
    client: PeerClient,
    view: watch::Sender<View>,
    poll_now: Notify,
}

impl LeaderTracker {
    pub fn new(replicas: Vec<ReplicaAddr>, client: PeerClient) -> Self {
        LeaderTracker {
            inner: Arc::new(Inner {
                replicas: KnownReplicas::new(replicas),
                client,
                view: watch::Sender::new(View::default()),
                poll_now: Notify::new(),
            }),
        }
    }

    pub fn replicas(&self) -> Vec<ReplicaAddr> {
        self.inner.replicas.get()
    }

    /// How many replicas must answer for orders to be possible.
    pub fn majority(&self) -> usize {
        self.inner.replicas.len() / 2 + 1
    }

    pub fn view(&self) -> View {
        self.inner.view.borrow().clone()
    }

    pub fn current(&self) -> Option<Leader> {
        self.inner.view.borrow().leader.clone()
    }

    /// A receiver that wakes whenever the view changes.
    pub fn subscribe(&self) -> watch::Receiver<View> {
        self.inner.view.subscribe()
    }

    /// Asks for a poll now rather than at the next tick: a replica said it does not lead, or
    /// the leader did not answer.
    pub fn poll_now(&self) {
        self.inner.poll_now.notify_one();
    }

    /// Polls every replica each `interval` (or sooner when asked) for as long as it runs.
    pub async fn monitor(self, interval: Duration) {
        loop {
            self.poll().await;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.inner.poll_now.notified() => {}
            }
        }
    }

    async fn poll(&self) {
        let client = &self.inner.client;
        let replicas = self.inner.replicas.get();
        let healths: Vec<(ReplicaAddr, Option<ReplicaHealth>)> =
            futures_util::future::join_all(replicas.iter().map(|r| async move {
                let url = format!("{}/health", r.url);
                let health = client
                    .get_with_timeout::<Data<ReplicaHealth>>(&url, timeouts::HEALTH_CALL)
                    .await
                    .ok()
                    .map(|d| d.data);
                (r.clone(), health)
            }))
            .await;
        // Follow replicas added and removed: the newest leader's membership, or a follower's
        // when the leader is one this front end does not know yet.
        if let Some(newest) =
            crate::group_client::freshest(healths.iter().filter_map(|(_, h)| h.as_ref()))
        {
            if self.inner.replicas.learn(&newest.members) {
                self.inner.poll_now.notify_one();
            }
        }
        let leader = self.leader_among(&healths);
        let answering = healths.iter().filter(|(_, h)| h.is_some()).count();
        let majority = self.majority();
        self.inner.view.send_if_modified(|view| {
            let minority_since = if answering >= majority {
                None
            } else {
                view.minority_since.or(Some(Instant::now()))
            };
            let new = View {
                leader: leader.clone(),
                answering,
                minority_since,
            };
            if *view == new {
                return false;
            }
            if view.leader.as_ref().map(|l| l.id) != new.leader.as_ref().map(|l| l.id) {
                match &new.leader {
                    Some(l) => tracing::info!("order replica {} leads (term {})", l.id, l.term),
                    None => tracing::warn!("no order replica leads right now"),
                }
            }
            *view = new;
            true
        });
    }

    /// The leader of the newest term any replica reports: the replica that says it leads in
    /// that term, or the one the replicas of that term name. A paused old leader that wakes up
    /// still believing it leads reports an older term, and is passed over.
    fn leader_among(&self, healths: &[(ReplicaAddr, Option<ReplicaHealth>)]) -> Option<Leader> {
        let answering = || healths.iter().filter_map(|(r, h)| Some((r, h.as_ref()?)));
        // The replica that says it leads, in the newest term any replica leads in. A replica that
        // only stands for election (one the leader cannot reach, say) has a newer term and no
        // leader: it must not hide the leader the others follow.
        let (id, term) = answering()
            .filter(|(_, h)| h.role == Role::Leader)
            .max_by_key(|(_, h)| h.term)
            .map(|(r, h)| (r.id, h.term))
            // No leader answers: follow the one the newest term names.
            .or_else(|| {
                answering()
                    .filter_map(|(_, h)| Some((h.leader_id?, h.term)))
                    .max_by_key(|&(_, term)| term)
            })?;
        let replicas = self.inner.replicas.get();
        let addr = replicas.iter().find(|r| r.id == id)?;
        Some(Leader {
            id,
            url: addr.url.clone(),
            term,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> LeaderTracker {
        let replicas = crate::cluster_file::ClusterFile::local("127.0.0.1", 8000, 1).replicas();
        LeaderTracker::new(replicas, PeerClient::for_load(1, None))
    }

    fn health(id: u32, role: Role, term: u64, leader_id: Option<u32>) -> ReplicaHealth {
        ReplicaHealth {
            id,
            role,
            leader_id,
            term,
            ready: true,
            len: 0,
            log_index: None,
            applied_index: None,
            replicated: Vec::new(),
            disk_full: false,
            members: Vec::new(),
            changing: false,
            incarnation: None,
            tls_refused: None,
        }
    }

    fn leader(healths: Vec<Option<ReplicaHealth>>) -> Option<(u32, u64)> {
        let tracker = tracker();
        let with_addresses: Vec<_> = tracker.replicas().iter().cloned().zip(healths).collect();
        tracker
            .leader_among(&with_addresses)
            .map(|l| (l.id, l.term))
    }

    #[test]
    fn a_candidate_with_a_newer_term_does_not_hide_the_leader() {
        // Replica 1 cannot hear the leader and stands for election again and again.
        let found = leader(vec![
            Some(health(1, Role::Candidate, 9, None)),
            Some(health(2, Role::Follower, 3, Some(3))),
            Some(health(3, Role::Leader, 3, Some(3))),
        ]);
        assert_eq!(found, Some((3, 3)));
    }

    #[test]
    fn the_leader_of_the_newest_term_wins_over_a_deposed_one() {
        let found = leader(vec![
            Some(health(1, Role::Leader, 4, Some(1))),
            Some(health(2, Role::Follower, 4, Some(1))),
            Some(health(3, Role::Leader, 3, Some(3))),
        ]);
        assert_eq!(found, Some((1, 4)));
    }

    #[test]
    fn without_an_answering_leader_the_newest_term_names_it() {
        let found = leader(vec![
            Some(health(1, Role::Follower, 5, Some(2))),
            None,
            Some(health(3, Role::Follower, 4, Some(3))),
        ]);
        assert_eq!(found, Some((2, 5)));
        assert_eq!(leader(vec![None, None, None]), None);
    }
}
