//! Cache leases: how the catalog acknowledges a buy without waiting for ever on a front end it
//! cannot reach, while no front end serves a cached product the buy made stale.
//!
//! Each front end renews its lease every [`LEASE_RENEW`]; the catalog grants it until [`LEASE`]
//! after it answers. The front end counts its lease from when it *asked*, so on its side the lease
//! always ends before the catalog's view of it, and it serves from its cache only while it holds
//! one. When a front end does not take an invalidation, the catalog marks it and holds the buy
//! until that front end's lease has run out (at most [`LEASE`]); its renewals are then answered with
//! a reset, which it makes (empties its cache) and confirms with the reset's token in its next
//! renewal: only then does the catalog forget the miss, so a reply lost on the way costs
//! nothing. A front end whose lease has run out and that has missed an
//! invalidation is not called again until it renews, so one that is gone costs one wait, once;
//! each change it is not called for gives it a new reset to make, since it may already have made
//! the last one and filled its cache again.
//!
//! [`LEASE_RENEW`]: crate::timeouts::LEASE_RENEW

use parking_lot::Mutex;
use std::collections::HashMap;

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
    /// It did not take an invalidation: the token of the reset its renewals are answered with
    /// until one says it emptied its cache for this very token. A reply can be lost on the way
    /// (the front end gave up waiting), so the catalog forgets a miss only when the front end
    /// confirms it acted on it, and a new miss gets a new token.
    missed: Option<u64>,
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
    /// lease that an earlier catalog leader granted.
    pub fn new(frontends: impl IntoIterator<Item = u32>) -> Self {
        Self::until(frontends, Instant::now() + LEASE)
    }

    /// Every front end counts as leased until `until`, and must empty its cache before it uses
    /// a lease of this table.
    pub fn until(frontends: impl IntoIterator<Item = u32>, until: Instant) -> Self {
        let by_frontend = frontends
            .into_iter()
            .map(|id| {
                (
                    id,
                    Lease {
                        until,
                        missed: Some(rand::random()),
                    },
                )
            })
            .collect();
        Leases {
            by_frontend: Mutex::new(by_frontend),
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<u32, Lease>> {
        self.by_frontend.lock()
    }

    /// Renews front end `id`'s lease; `emptied` is the token of the last reset it emptied its
    /// cache for. Returns the token of a reset it must make before it uses the lease, if any.
    /// An id the cluster file does not name gets `None`.
    pub fn renew(&self, id: u32, emptied: Option<u64>) -> Option<Option<u64>> {
        let mut leases = self.lock();
        let lease = leases.get_mut(&id)?;
        if lease.missed.is_some() && lease.missed == emptied {
            lease.missed = None;
        }
        lease.until = Instant::now() + LEASE;
        Some(lease.missed)
    }

    /// Whether to push invalidations to front end `id` now. A skipped front end gets a new
    /// reset token: it may already have emptied its cache for the last one and filled it
    /// again, so only a reset after this change makes it drop what the change made stale.
    pub fn push(&self, id: u32) -> Push {
        match self.lock().get_mut(&id) {
            Some(lease) if lease.missed.is_some() && lease.until <= Instant::now() => {
                lease.missed = Some(rand::random());
                Push::Skip
            }
            _ => Push::Send,
        }
    }

    /// Front end `id` did not take an invalidation: returns until when it may still serve from
    /// its cache, which a buy must wait out before it is acknowledged.
    pub fn missed(&self, id: u32) -> Instant {
        let mut leases = self.lock();
        match leases.get_mut(&id) {
            Some(lease) => {
                lease.missed = Some(rand::random());
                lease.until
            }
            None => Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renews as a front end does: acts on a reset it is told of, and says so next time.
    fn renew(leases: &Leases, id: u32, emptied: &mut Option<u64>) -> Option<bool> {
        let reset = leases.renew(id, *emptied)?;
        if reset.is_some() {
            *emptied = reset;
        }
        Some(reset.is_some())
    }

    #[tokio::test(start_paused = true)]
    async fn a_missed_invalidation_is_waited_out_then_reset_at_the_next_renewal() {
        let leases = Leases::new([1, 2]);
        let mut emptied = None;
        assert_eq!(
            renew(&leases, 1, &mut emptied),
            Some(true),
            "a new catalog resets every cache"
        );
        assert_eq!(renew(&leases, 1, &mut emptied), Some(false));
        assert_eq!(leases.renew(9, None), None, "not in the cluster file");
        let until = leases.missed(1);
        assert!(until > Instant::now() && until <= Instant::now() + LEASE);
        assert_eq!(leases.push(1), Push::Send, "its lease still runs");
        tokio::time::advance(LEASE).await;
        assert_eq!(leases.push(1), Push::Skip, "ran out after a miss");
        assert_eq!(
            renew(&leases, 1, &mut emptied),
            Some(true),
            "it empties its cache"
        );
        assert_eq!(leases.push(1), Push::Send);
        assert_eq!(renew(&leases, 1, &mut emptied), Some(false));
        assert_eq!(leases.push(2), Push::Skip, "never renewed since the start");
    }

    #[tokio::test(start_paused = true)]
    async fn a_front_end_skipped_after_its_reset_was_delivered_resets_again() {
        let leases = Leases::new([1]);
        let mut emptied = None;
        // The new leader's reset reaches the front end, which empties its cache and fills it
        // again; its next renewals are lost, so the catalog has not heard it emptied.
        assert_eq!(renew(&leases, 1, &mut emptied), Some(true));
        tokio::time::advance(LEASE).await;
        assert_eq!(
            leases.push(1),
            Push::Skip,
            "its lease ran out with the reset unconfirmed"
        );
        // Its renewal now confirms the reset it made before the skipped change: not enough.
        assert_eq!(
            renew(&leases, 1, &mut emptied),
            Some(true),
            "it must empty its cache again"
        );
        assert_eq!(renew(&leases, 1, &mut emptied), Some(false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_whose_reply_was_lost_is_asked_for_again() {
        let leases = Leases::new([1]);
        let mut emptied = None;
        renew(&leases, 1, &mut emptied);
        renew(&leases, 1, &mut emptied);
        leases.missed(1);
        // The reply that carries the reset is lost: the front end never empties its cache.
        assert!(leases.renew(1, emptied).unwrap().is_some());
        assert!(
            leases.renew(1, emptied).unwrap().is_some(),
            "still asked to reset, until it says it did"
        );
        assert_eq!(renew(&leases, 1, &mut emptied), Some(true));
        assert_eq!(renew(&leases, 1, &mut emptied), Some(false));
        // A miss after the front end emptied its cache asks for a reset of its own.
        let before = emptied;
        leases.missed(1);
        assert_eq!(renew(&leases, 1, &mut emptied), Some(true));
        assert_ne!(emptied, before);
    }
}
