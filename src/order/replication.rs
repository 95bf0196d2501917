//! How replicas agree: the leader's replication tasks, a follower's append, and the catch-up a
//! replica does before it leads or serves after a start.

use std::time::Duration;

use super::{Replica, State};
use crate::config::ReplicaAddr;
use crate::peer::CallError;
use crate::tasks::TaskGuard;
use crate::wire::{
    Data, Entry, LeaderAnnouncement, LogPosition, ReplicaHealth, Replicate, ReplicateReply, Role,
    SyncReply, SyncRequest,
};

/// Most entries sent to a follower in one call.
const MAX_BATCH: usize = 512;
/// How long a leader's replication task waits for news before it checks on its follower.
const IDLE_CHECK: Duration = Duration::from_millis(500);
const RETRY_MIN: Duration = Duration::from_millis(20);
const RETRY_MAX: Duration = Duration::from_millis(500);

/// What a follower made of a `Replicate` call.
pub(super) enum AppendOutcome {
    Applied(ReplicateReply),
    /// The caller leads in an older term than this replica knows.
    StaleTerm(u64),
}

impl Replica {
    /// A replica that starts learns who leads and fetches what it missed before it may lead.
    pub(super) async fn catch_up_on_start(self) {
        loop {
            match self.find_leader().await {
                Lookup::Leader(peer) => match self.sync_from(&peer).await {
                    Ok(got) => {
                        tracing::info!(
                            "replica {} caught up with leader {}: {got} orders fetched",
                            self.id(),
                            peer.id
                        );
                        break;
                    }
                    Err(e) => tracing::debug!("catch-up from replica {} failed: {e}", peer.id),
                },
                Lookup::Nobody => {
                    tracing::info!(
                        "replica {}: no leader yet, starting from its own {} orders",
                        self.id(),
                        self.state().log.len()
                    );
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.state().ready = true;
    }

    /// Asks the peers who leads. A peer that names this very replica remembers a leadership
    /// from before a restart, which ended with the crash.
    async fn find_leader(&self) -> Lookup {
        if let Some(id) = self.state().leader_id.filter(|&id| id != self.id()) {
            if let Some(peer) = self.peer(id) {
                return Lookup::Leader(peer.clone());
            }
        }
        let mut best: Option<(u64, u32)> = None;
        let mut answered = 0;
        for peer in &self.shared.peers {
            let url = format!("{}/health", peer.url);
            if let Ok(Data { data: health }) =
                self.shared.client.get::<Data<ReplicaHealth>>(&url).await
            {
                answered += 1;
                if let Some(leader) = health.leader_id.filter(|&l| l != self.id()) {
                    if best.is_none_or(|(term, _)| health.term > term) {
                        best = Some((health.term, leader));
                    }
                }
            }
        }
        match best.and_then(|(_, id)| self.peer(id)) {
            Some(peer) => Lookup::Leader(peer.clone()),
            // No peer knows a leader (a cold start of the whole cluster): whichever replica the
            // front end names will reconcile with the others before it takes orders.
            None => {
                tracing::debug!("{answered} peers answered; none knows a leader");
                Lookup::Nobody
            }
        }
    }

    fn peer(&self, id: u32) -> Option<&ReplicaAddr> {
        self.shared.peers.iter().find(|p| p.id == id)
    }

    /// Makes this log a copy of `peer`'s up to where `peer`'s ends; returns how many entries came.
    async fn sync_from(&self, peer: &ReplicaAddr) -> Result<u64, String> {
        let file = self.shared.file.clone().lock_owned().await;
        let tail = self.state().log.tail();
        let reply = self.request_sync(peer, tail).await?;
        let fetched = reply.entries.len() as u64;
        {
            let mut state = self.state();
            state.log.truncate(reply.common);
            append_new(&mut state, reply.entries);
        }
        self.persist_holding(file)
            .await
            .map_err(|e| e.to_string())?;
        Ok(fetched)
    }

    async fn request_sync(
        &self,
        peer: &ReplicaAddr,
        tail: Vec<LogPosition>,
    ) -> Result<SyncReply, String> {
        let url = format!("{}/internal/sync", peer.url);
        self.shared
            .client
            .post_with_timeout::<_, Data<SyncReply>>(
                &url,
                &SyncRequest { tail },
                Duration::from_secs(5),
            )
            .await
            .map(|d| d.data)
            .map_err(|e| e.to_string())
    }

    /// Answers a peer's catch-up: where our logs agree, and everything of ours after that.
    pub(super) fn sync_reply(&self, request: &SyncRequest) -> Option<SyncReply> {
        let state = self.state();
        let common = state.log.common_prefix(&request.tail)?;
        Some(SyncReply {
            common,
            entries: state.log.entries_from(common, usize::MAX),
        })
    }

    /// Handles the front end's word on who leads.
    pub(super) async fn announced(&self, announcement: LeaderAnnouncement) -> Result<(), String> {
        {
            let mut state = self.state();
            if announcement.term < state.term {
                return Err(format!(
                    "term {} is older than this replica's term {}",
                    announcement.term, state.term
                ));
            }
            if announcement.leader_id != self.id() {
                state.term = announcement.term;
                state.leader_id = Some(announcement.leader_id);
                if state.role == Role::Leader {
                    tracing::info!(
                        "replica {} steps down: replica {} leads",
                        self.id(),
                        announcement.leader_id
                    );
                }
                state.role = Role::Follower;
                drop(state);
                self.end_leadership();
                return Ok(());
            }
            if state.role == Role::Leader && state.term == announcement.term {
                return Ok(());
            }
        }
        self.become_leader(announcement.term).await
    }

    fn end_leadership(&self) {
        self.shared
            .leadership
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// Catches up from the peers that answer (at least one must), then starts taking orders.
    ///
    /// Every acknowledged order is durable on a majority, so with one replica down the longest,
    /// newest log among this replica and a reachable peer holds all of them.
    async fn become_leader(&self, term: u64) -> Result<(), String> {
        self.end_leadership();
        let file = self.shared.file.clone().lock_owned().await;
        {
            let mut state = self.state();
            state.term = term;
            state.leader_id = Some(self.id());
            state.role = Role::Follower;
        }
        let tail = self.state().log.tail();
        let replies = futures_util::future::join_all(
            self.shared
                .peers
                .iter()
                .map(|peer| self.request_sync(peer, tail.clone())),
        )
        .await;
        let answered: Vec<SyncReply> = replies.into_iter().filter_map(Result::ok).collect();
        if answered.is_empty() && !self.shared.peers.is_empty() {
            return Err(
                "no other replica answered; cannot lead without knowing their orders".into(),
            );
        }
        {
            let mut state = self.state();
            let mine = (state.log.last_term(), state.log.len());
            let best = answered
                .into_iter()
                .map(|reply| {
                    let last_term = reply
                        .entries
                        .last()
                        .map(|e| e.term)
                        .or_else(|| {
                            reply
                                .common
                                .checked_sub(1)
                                .and_then(|n| state.log.term_at(n))
                        })
                        .unwrap_or(0);
                    (
                        (last_term, reply.common + reply.entries.len() as u64),
                        reply,
                    )
                })
                .max_by_key(|(rank, _)| *rank);
            if let Some((rank, reply)) = best {
                if rank > mine {
                    tracing::info!(
                        "replica {} takes {} orders from a peer before leading",
                        self.id(),
                        reply.entries.len()
                    );
                    state.log.truncate(reply.common);
                    append_new(&mut state, reply.entries);
                }
            }
        }
        self.persist_holding(file)
            .await
            .map_err(|e| e.to_string())?;
        let len = {
            let mut state = self.state();
            if state.term != term {
                return Err("a newer leader was announced meanwhile".into());
            }
            state.role = Role::Leader;
            state.ready = true;
            state.matched.clear();
            state.log.len()
        };
        self.shared.committed.send_replace(0);
        self.shared.appended.send_replace(len);
        let mut tasks = TaskGuard::default();
        for peer in self.shared.peers.clone() {
            tasks.spawn(self.clone().replicate_to(peer, term, len));
        }
        *self
            .shared
            .leadership
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(tasks);
        tracing::info!(
            "replica {} leads in term {term} with {len} orders",
            self.id()
        );
        Ok(())
    }

    /// Leader: keeps one follower's log equal to ours, for as long as we lead in `term`.
    async fn replicate_to(self, peer: ReplicaAddr, term: u64, mut next: u64) {
        let url = format!("{}/internal/replicate", peer.url);
        let mut appended = self.shared.appended.subscribe();
        let mut retry = RETRY_MIN;
        loop {
            let request = {
                let state = self.state();
                if state.role != Role::Leader || state.term != term {
                    return;
                }
                Replicate {
                    leader_id: self.id(),
                    term,
                    prev: next.checked_sub(1).and_then(|n| state.log.position(n)),
                    entries: state.log.entries_from(next, MAX_BATCH),
                    leader_len: state.log.len(),
                }
            };
            let sent_to = next + request.entries.len() as u64;
            let reply = self
                .shared
                .client
                .post_with_timeout::<_, Data<ReplicateReply>>(
                    &url,
                    &request,
                    Duration::from_secs(3),
                )
                .await;
            match reply {
                Ok(Data { data }) if data.ok => {
                    retry = RETRY_MIN;
                    next = sent_to;
                    self.state().matched.insert(peer.id, sent_to);
                    self.advance_commit();
                    if next >= *appended.borrow_and_update() {
                        let _ = tokio::time::timeout(IDLE_CHECK, appended.changed()).await;
                    }
                }
                Ok(Data { data }) => {
                    let state = self.state();
                    next = state.log.common_prefix(&data.tail).unwrap_or(0);
                    tracing::debug!(
                        "replica {} differs from leader; resending from {next}",
                        peer.id
                    );
                }
                Err(CallError::Status {
                    status: 409,
                    message,
                }) => {
                    tracing::info!("replica {} refused replication: {message}", peer.id);
                    return;
                }
                Err(e) => {
                    tracing::debug!("replication to replica {} failed: {e}", peer.id);
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Follower: appends the leader's entries if our log agrees with the leader's before them.
    pub(super) async fn apply_replicate(
        &self,
        request: Replicate,
    ) -> Result<AppendOutcome, String> {
        let file = self.shared.file.clone().lock_owned().await;
        {
            let mut state = self.state();
            if request.term < state.term {
                return Ok(AppendOutcome::StaleTerm(state.term));
            }
            if state.role == Role::Leader && request.leader_id != self.id() {
                tracing::info!(
                    "replica {} steps down: replica {} leads in term {}",
                    self.id(),
                    request.leader_id,
                    request.term
                );
                state.role = Role::Follower;
                self.end_leadership();
            }
            state.term = request.term;
            state.leader_id = Some(request.leader_id);
            if let Some(prev) = request.prev {
                if state.log.term_at(prev.number) != Some(prev.term) {
                    return Ok(AppendOutcome::Applied(ReplicateReply {
                        ok: false,
                        len: state.log.len(),
                        tail: state.log.tail(),
                    }));
                }
            }
            let start = request.prev.map(|p| p.number + 1).unwrap_or(0);
            for (i, entry) in request.entries.into_iter().enumerate() {
                let number = start + i as u64;
                if entry.number != number {
                    return Err(format!(
                        "entry {} sent where {number} belongs",
                        entry.number
                    ));
                }
                match state.log.term_at(number) {
                    Some(term) if term == entry.term => continue,
                    Some(_) => state.log.truncate(number),
                    None => {}
                }
                state.log.append(entry);
            }
            // Entries past the leader's end from an older term were never acknowledged.
            let beyond = request.leader_len;
            if state.log.term_at(beyond).is_some_and(|t| t < request.term) {
                state.log.truncate(beyond);
            }
        }
        self.persist_holding(file)
            .await
            .map_err(|e| e.to_string())?;
        let state = self.state();
        Ok(AppendOutcome::Applied(ReplicateReply {
            ok: true,
            len: state.log.len(),
            tail: Vec::new(),
        }))
    }

    pub(super) fn health(&self) -> ReplicaHealth {
        let state = self.state();
        ReplicaHealth {
            id: self.id(),
            role: state.role,
            leader_id: state.leader_id,
            term: state.term,
            ready: state.ready,
            len: state.log.len(),
            last_term: state.log.last_term(),
        }
    }
}

enum Lookup {
    Leader(ReplicaAddr),
    Nobody,
}

/// Appends entries that continue the log; skips any whose number is already taken.
fn append_new(state: &mut State, entries: Vec<Entry>) {
    for entry in entries {
        if entry.number == state.log.len() && state.log.number_of(&entry.key).is_none() {
            state.log.append(entry);
        }
    }
}
