//! Calling whichever replica of a group leads. The caller keeps its last guess of the leader and
//! moves on to the next replica when the guess does not answer, answers that it does not lead
//! (421) or cannot commit (503), until a deadline: a leader that dies, pauses or is cut off costs
//! a caller one election, not an error.

use std::sync::atomic::{AtomicUsize, Ordering};
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

/// A handle to one group's replicas; cheap to share behind an `Arc`.
pub struct GroupClient {
    /// The group as users name it: "catalog".
    name: &'static str,
    replicas: Vec<ReplicaAddr>,
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
            replicas,
            guess: AtomicUsize::new(guess),
            client,
        }
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        within: Duration,
    ) -> Result<T, CallError> {
        self.call(path, None::<&()>, within).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        within: Duration,
    ) -> Result<T, CallError> {
        self.call(path, Some(body), within).await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
        within: Duration,
    ) -> Result<T, CallError> {
        let deadline = Instant::now() + within;
        let count = self.replicas.len().max(1);
        let mut index = self.guess.load(Ordering::Relaxed) % count;
        let mut answered = vec![false; count];
        let mut silent = vec![false; count];
        let attempt_limit = if body.is_some() {
            WRITE_ATTEMPT
        } else {
            READ_ATTEMPT
        };
        let mut last: Option<CallError> = None;
        let mut tried_this_round = 0;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let Some(replica) = self.replicas.get(index) else {
                break;
            };
            let limit = if silent[index] {
                SILENT_ATTEMPT
            } else {
                attempt_limit
            };
            let attempt = limit.min(deadline - now);
            let url = format!("{}{path}", replica.url);
            let reply = match body {
                Some(body) => self.client.post_with_timeout(&url, body, attempt).await,
                None => self.client.get_with_timeout(&url, attempt).await,
            };
            match reply {
                Ok(value) => {
                    self.guess.store(index, Ordering::Relaxed);
                    return Ok(value);
                }
                Err(CallError::Status { status, message }) if status == 421 || status == 503 => {
                    answered[index] = true;
                    last = Some(CallError::Status { status, message });
                }
                Err(e @ CallError::Unreachable(_)) => {
                    silent[index] = true;
                    last = Some(e);
                }
                Err(e) => {
                    // The leader answered, with an error of the request's own.
                    self.guess.store(index, Ordering::Relaxed);
                    return Err(e);
                }
            }
            index = (index + 1) % count;
            tried_this_round += 1;
            if tried_this_round >= count {
                tried_this_round = 0;
                let pause = ROUND_PAUSE.min(deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(pause).await;
            }
        }
        let answering = answered.iter().filter(|&&a| a).count();
        Err(CallError::Status {
            status: 503,
            message: format!(
                "no {} replica leads: {answering} of {} answer{}{}",
                self.name,
                self.replicas.len(),
                if answering == 1 { "s" } else { "" },
                last.map(|e| format!(" (last: {e})")).unwrap_or_default()
            ),
        })
    }
}
