//! Leader selection: the front end picks the highest-id replica that answers and is caught up,
//! tells every replica, watches the leader's health, and picks again the moment it fails.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Mutex as AsyncMutex;

use crate::config::ReplicaAddr;
use crate::peer::PeerClient;
use crate::wire::{Data, LeaderAnnouncement, ReplicaHealth, Role};

const HEALTH_TIMEOUT: Duration = Duration::from_millis(500);
/// A new leader catches up from its peers before it answers the announcement.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(10);
/// After a selection that found no leader, requests wait this long before trying again, so a
/// crowd of waiting requests does not run one selection each.
const RETRY_GAP: Duration = Duration::from_millis(250);

/// The leader as the front end knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    pub id: u32,
    pub url: String,
    pub term: u64,
    /// Bumped at every selection, so callers that saw one leader fail reselect only once.
    pub generation: u64,
}

#[derive(Clone)]
pub struct LeaderTracker {
    inner: Arc<Inner>,
}

struct Inner {
    replicas: Vec<ReplicaAddr>,
    client: PeerClient,
    current: RwLock<Option<Leader>>,
    generation: std::sync::atomic::AtomicU64,
    /// When the last selection that found no leader ended.
    selecting: AsyncMutex<Option<std::time::Instant>>,
}

impl LeaderTracker {
    pub fn new(replicas: Vec<ReplicaAddr>, client: PeerClient) -> Self {
        LeaderTracker {
            inner: Arc::new(Inner {
                replicas,
                client,
                current: RwLock::new(None),
                generation: Default::default(),
                selecting: AsyncMutex::new(None),
            }),
        }
    }

    pub fn current(&self) -> Option<Leader> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The current leader, selecting one if there is none.
    pub async fn get(&self) -> Option<Leader> {
        match self.current() {
            Some(leader) => Some(leader),
            None => self.reselect(None).await,
        }
    }

    /// Selects a leader again because the one of generation `failed` did not answer; a caller
    /// whose failed leader was already replaced just gets the new one.
    pub async fn reselect(&self, failed: Option<u64>) -> Option<Leader> {
        let mut last_failure = self.inner.selecting.lock().await;
        match self.current() {
            Some(current) if failed != Some(current.generation) => return Some(current),
            None if last_failure.is_some_and(|t| t.elapsed() < RETRY_GAP) => return None,
            _ => {}
        }
        let leader = self.select().await;
        *last_failure = leader.is_none().then(std::time::Instant::now);
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner()) = leader.clone();
        leader
    }

    async fn health_of_all(&self) -> Vec<(ReplicaAddr, Option<ReplicaHealth>)> {
        let client = &self.inner.client;
        futures_util::future::join_all(self.inner.replicas.iter().map(|r| async move {
            let url = format!("{}/health", r.url);
            let health = client
                .get_with_timeout::<Data<ReplicaHealth>>(&url, HEALTH_TIMEOUT)
                .await
                .ok()
                .map(|d| d.data);
            (r.clone(), health)
        }))
        .await
    }

    async fn select(&self) -> Option<Leader> {
        let healths = self.health_of_all().await;
        let mut term = healths
            .iter()
            .filter_map(|(_, h)| h.as_ref().map(|h| h.term))
            .max()
            .unwrap_or(0);
        let mut candidates: Vec<&ReplicaAddr> = healths
            .iter()
            .filter(|(_, h)| h.as_ref().is_some_and(|h| h.ready))
            .map(|(r, _)| r)
            .collect();
        candidates.sort_by_key(|r| std::cmp::Reverse(r.id));
        for candidate in candidates {
            term += 1;
            tracing::info!(
                "selecting replica {} as leader in term {term}",
                candidate.id
            );
            let announcement = LeaderAnnouncement {
                leader_id: candidate.id,
                term,
            };
            let url = format!("{}/internal/leader", candidate.url);
            let accepted = self
                .inner
                .client
                .post_with_timeout::<_, Data<ReplicaHealth>>(&url, &announcement, ANNOUNCE_TIMEOUT)
                .await;
            match accepted {
                Ok(_) => {
                    self.announce_to_followers(announcement).await;
                    let generation = self
                        .inner
                        .generation
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                        + 1;
                    tracing::info!("replica {} leads (term {term})", candidate.id);
                    return Some(Leader {
                        id: candidate.id,
                        url: candidate.url.clone(),
                        term,
                        generation,
                    });
                }
                Err(e) => tracing::warn!("replica {} cannot lead: {e}", candidate.id),
            }
        }
        tracing::warn!("no order replica can lead right now");
        None
    }

    async fn announce_to_followers(&self, announcement: LeaderAnnouncement) {
        let client = &self.inner.client;
        futures_util::future::join_all(
            self.inner
                .replicas
                .iter()
                .filter(|r| r.id != announcement.leader_id)
                .map(|r| async move {
                    let url = format!("{}/internal/leader", r.url);
                    if let Err(e) = client
                        .post_with_timeout::<_, serde_json::Value>(
                            &url,
                            &announcement,
                            HEALTH_TIMEOUT,
                        )
                        .await
                    {
                        tracing::debug!("replica {} did not take the announcement: {e}", r.id);
                    }
                }),
        )
        .await;
    }

    /// Checks every replica each `interval`: reselects when the leader stops answering or no
    /// longer leads, and tells replicas that came back who leads.
    pub async fn monitor(self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(leader) = self.get().await else {
                continue;
            };
            let healths = self.health_of_all().await;
            let leader_ok = healths.iter().any(|(r, h)| {
                r.id == leader.id
                    && h.as_ref()
                        .is_some_and(|h| h.role == Role::Leader && h.term == leader.term)
            });
            if !leader_ok {
                tracing::warn!("leader {} stopped answering; selecting again", leader.id);
                self.reselect(Some(leader.generation)).await;
                continue;
            }
            for (replica, health) in &healths {
                let Some(health) = health else { continue };
                if replica.id != leader.id
                    && (health.leader_id != Some(leader.id) || health.term != leader.term)
                {
                    let announcement = LeaderAnnouncement {
                        leader_id: leader.id,
                        term: leader.term,
                    };
                    let url = format!("{}/internal/leader", replica.url);
                    let _ = self
                        .inner
                        .client
                        .post_with_timeout::<_, serde_json::Value>(
                            &url,
                            &announcement,
                            HEALTH_TIMEOUT,
                        )
                        .await;
                }
            }
        }
    }
}
