//! Cache leases: how the catalog acknowledges a buy without waiting for ever on a front end it
//! cannot reach, while no front end serves a cached product the buy made stale.
//!
//! Each front end renews its lease every [`LEASE_RENEW`]; the catalog grants it until [`LEASE`]
//! after it answers. The front end counts its lease from when it *asked*, so on its side the lease
//! always ends before the catalog's view of it, and it serves from its cache only while it holds
//! one. When a front end does not take an invalidation, the catalog marks it and holds the buy
//! until that front end's lease has run out (at most [`LEASE`]); the front end's next renewal then
//! tells it to empty its cache. A front end whose lease has run out and that has missed an
//! invalidation is not called again until it renews, so one that is gone costs one wait, once.
//!
//! [`LEASE_RENEW`]: crate::timeouts::LEASE_RENEW

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::time::Instant;

use crate::timeouts::LEASE;

/// The catalog's view of every front end's lease.
pub struct Leases {
    by_frontend: Mutex<HashMap<u32, Lease>>,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    /// Until when the front end may serve from its cache, as far as the catalog knows.
    until: Instant,
    /// It did not take an invalidation since its last renewal: its next renewal empties its
    /// cache.
    missed: bool,
}

/// What a push of invalidations to one front end needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Send it: the front end may be serving from its cache.
    Send,
    /// Skip it: its lease ran out after a missed invalidation, so its cache is out of use until
    /// it renews, and it will empty it then.
    Skip,
}

impl Leases {
    /// Every front end of the cluster counts as leased for one [`LEASE`] from now: it may hold a
    /// lease that an earlier catalog process granted.
    pub fn new(frontends: impl IntoIterator<Item = u32>) -> Self {
        let until = Instant::now() + LEASE;
        let by_frontend = frontends
            .into_iter()
            .map(|id| {
                (
                    id,
                    Lease {
                        until,
                        missed: true,
                    },
                )
            })
            .collect();
        Leases {
            by_frontend: Mutex::new(by_frontend),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Lease>> {
        self.by_frontend.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Renews front end `id`'s lease; returns whether it must empty its cache first. An id the
    /// cluster file does not name gets `None`.
    pub fn renew(&self, id: u32) -> Option<bool> {
        let mut leases = self.lock();
        let lease = leases.get_mut(&id)?;
        let reset = std::mem::take(&mut lease.missed);
        lease.until = Instant::now() + LEASE;
        Some(reset)
    }

    /// Whether to push invalidations to front end `id` now.
    pub fn push(&self, id: u32) -> Push {
        match self.lock().get(&id) {
            Some(lease) if lease.missed && lease.until <= Instant::now() => Push::Skip,
            _ => Push::Send,
        }
    }

    /// Front end `id` did not take an invalidation: returns until when it may still serve from
    /// its cache, which a buy must wait out before it is acknowledged.
    pub fn missed(&self, id: u32) -> Instant {
        let mut leases = self.lock();
        match leases.get_mut(&id) {
            Some(lease) => {
                lease.missed = true;
                lease.until
            }
            None => Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_missed_invalidation_is_waited_out_then_reset_at_the_next_renewal() {
        let leases = Leases::new([1, 2]);
        assert_eq!(
            leases.renew(1),
            Some(true),
            "a new catalog resets every cache"
        );
        assert_eq!(leases.renew(1), Some(false));
        assert_eq!(leases.renew(9), None, "not in the cluster file");
        let until = leases.missed(1);
        assert!(until > Instant::now() && until <= Instant::now() + LEASE);
        assert_eq!(leases.push(1), Push::Send, "its lease still runs");
        tokio::time::advance(LEASE).await;
        assert_eq!(leases.push(1), Push::Skip, "ran out after a miss");
        assert_eq!(leases.renew(1), Some(true), "it empties its cache");
        assert_eq!(leases.push(1), Push::Send);
        assert_eq!(leases.push(2), Push::Skip, "never renewed since the start");
    }
}
