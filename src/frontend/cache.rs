//! The front end's product cache: an LRU of serialised replies, no I/O.
//!
//! Every stock change gives the product a higher version, and the catalog's invalidation carries
//! it. The cache remembers, per product, the newest version it was told of and refuses fills
//! older than that, so a reply fetched before a change but stored after its invalidation can
//! never linger.
//!
//! It answers only under a lease from the catalog (see [`crate::catalog::leases`]): without one,
//! an invalidation may have gone missing, so the cache empties itself and every query is a miss
//! until the lease is renewed. A renewal that says invalidations were missed empties it too, and
//! a fill that started before either is refused: its reply may predate the missed change.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::time::Instant;

use bytes::Bytes;
use lru::LruCache;

use crate::wire::CacheStats;

#[derive(Debug)]
struct Cached {
    version: u64,
    body: Bytes,
}

#[derive(Debug)]
pub struct ProductCache {
    /// `None` when the cache is off (capacity 0).
    entries: Option<LruCache<String, Cached>>,
    /// Per product, the newest version an invalidation announced.
    floors: HashMap<String, u64>,
    /// The list of every product (`GET /products`), at the newest version it shows; any
    /// invalidation newer than that makes it stale.
    list: Option<Cached>,
    /// The newest version any invalidation announced.
    list_floor: u64,
    /// Until when the catalog vouches for this cache; `None` before the first lease.
    leased_until: Option<Instant>,
    /// Raised whenever the cache is emptied for want of a lease: a fill fetched under an earlier
    /// generation is refused.
    generation: u64,
    stats: CacheStats,
}

impl ProductCache {
    pub fn new(capacity: usize) -> Self {
        ProductCache {
            entries: NonZeroUsize::new(capacity).map(LruCache::new),
            floors: HashMap::new(),
            list: None,
            list_floor: 0,
            leased_until: None,
            generation: 0,
            stats: CacheStats {
                capacity: capacity as u64,
                ..Default::default()
            },
        }
    }

    /// Whether the catalog vouches for the cache at `now`; a lease that has run out empties it.
    pub fn is_leased(&mut self, now: Instant) -> bool {
        if self.leased_until.is_some_and(|until| now < until) {
            return true;
        }
        if self.leased_until.take().is_some() {
            tracing::warn!(
                "the cache lease ran out (the catalog is not heard from): emptying the cache"
            );
            self.empty();
        }
        false
    }

    fn empty(&mut self) {
        if let Some(entries) = self.entries.as_mut() {
            entries.clear();
        }
        self.list = None;
        self.generation += 1;
    }

    /// The catalog renewed the lease that was asked for at `asked`; with `reset`, invalidations
    /// were missed since the last one and the cache is emptied first.
    ///
    /// A lease that ran out before this renewal empties the cache too, even if no query came
    /// to notice it: while it was out the catalog may have skipped this front end's
    /// invalidations, and a renewal that confirms an earlier reset carries no new one.
    pub fn renewed(&mut self, asked: Instant, reset: bool) {
        let lapsed = self
            .leased_until
            .is_some_and(|until| until <= Instant::now());
        if reset || lapsed {
            self.empty();
        }
        self.leased_until = Some(asked + crate::timeouts::LEASE);
    }

    /// The generation a fill must carry: read it before fetching.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The cached reply for `key` at `now`, counting a hit or a miss.
    pub fn get(&mut self, key: &str, now: Instant) -> Option<Bytes> {
        let found = if self.is_leased(now) {
            self.entries
                .as_mut()
                .and_then(|e| e.get(key))
                .map(|c| c.body.clone())
        } else {
            None
        };
        self.counted(found)
    }

    /// Stores a reply fetched at `version` during `generation`, unless an invalidation already
    /// made it stale or the cache has no lease at `now`. Returns whether it was stored.
    pub fn fill(
        &mut self,
        key: &str,
        version: u64,
        body: Bytes,
        generation: u64,
        now: Instant,
    ) -> bool {
        if generation != self.generation || !self.is_leased(now) {
            return false;
        }
        let Some(entries) = self.entries.as_mut() else {
            return false;
        };
        if self.floors.get(key).is_some_and(|&floor| version < floor) {
            return false;
        }
        if let Some(current) = entries.peek(key) {
            if current.version > version {
                return false;
            }
        }
        if let Some((evicted, _)) = entries.push(key.to_string(), Cached { version, body }) {
            if evicted != key {
                self.stats.evictions += 1;
                tracing::debug!(product = %evicted, "evicted from the cache");
            }
        }
        true
    }

    /// `found` (or not), counted as a hit or a miss.
    fn counted(&mut self, found: Option<Bytes>) -> Option<Bytes> {
        if found.is_some() {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
        }
        found
    }

    /// The cached list of every product at `now`, counting a hit or a miss.
    pub fn get_list(&mut self, now: Instant) -> Option<Bytes> {
        let found = if self.is_leased(now) {
            self.list.as_ref().map(|c| c.body.clone())
        } else {
            None
        };
        self.counted(found)
    }

    /// Stores the list of every product, fetched during `generation`, showing every change up
    /// to `version`; the same rules as [`Self::fill`]. Returns whether it was stored.
    pub fn fill_list(&mut self, version: u64, body: Bytes, generation: u64, now: Instant) -> bool {
        if generation != self.generation || !self.is_leased(now) || self.entries.is_none() {
            return false;
        }
        if version < self.list_floor || self.list.as_ref().is_some_and(|c| c.version > version) {
            return false;
        }
        self.list = Some(Cached { version, body });
        true
    }

    /// Drops `key`'s reply if it is older than `version`, and refuses older fills from now on.
    pub fn invalidate(&mut self, key: &str, version: u64) {
        self.stats.invalidations += 1;
        self.list_floor = self.list_floor.max(version);
        if self.list.as_ref().is_some_and(|c| c.version < version) {
            self.list = None;
        }
        let floor = self.floors.entry(key.to_string()).or_insert(0);
        *floor = (*floor).max(version);
        if let Some(entries) = self.entries.as_mut() {
            if entries.peek(key).is_some_and(|c| c.version < version) {
                entries.pop(key);
            }
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            size: self.entries.as_ref().map_or(0, |e| e.len() as u64),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeouts::LEASE;

    fn body(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    /// A cache that holds a lease from `now`.
    fn leased(capacity: usize, now: Instant) -> ProductCache {
        let mut cache = ProductCache::new(capacity);
        cache.renewed(now, false);
        cache
    }

    fn fill(cache: &mut ProductCache, key: &str, version: u64, text: &str, now: Instant) -> bool {
        let generation = cache.generation();
        cache.fill(key, version, body(text), generation, now)
    }

    #[test]
    fn hits_misses_and_evictions_are_counted() {
        let now = Instant::now();
        let mut cache = leased(2, now);
        assert!(cache.get("tux", now).is_none());
        fill(&mut cache, "tux", 1, "t", now);
        fill(&mut cache, "fox", 1, "f", now);
        assert_eq!(cache.get("tux", now).unwrap(), body("t"));
        fill(&mut cache, "lego", 1, "l", now); // evicts fox, the least recently used
        assert!(cache.get("fox", now).is_none());
        let stats = cache.stats();
        assert_eq!(
            (stats.hits, stats.misses, stats.evictions, stats.size),
            (1, 2, 1, 2)
        );
    }

    #[test]
    fn a_fill_older_than_an_invalidation_is_refused() {
        let now = Instant::now();
        let mut cache = leased(4, now);
        // A miss fetched version 5; meanwhile a buy made version 6 and its invalidation came in.
        cache.invalidate("tux", 6);
        assert!(!fill(&mut cache, "tux", 5, "old", now));
        assert!(cache.get("tux", now).is_none());
        assert!(fill(&mut cache, "tux", 6, "new", now));
        assert_eq!(cache.get("tux", now).unwrap(), body("new"));
    }

    #[test]
    fn invalidation_drops_older_entries_only() {
        let now = Instant::now();
        let mut cache = leased(4, now);
        fill(&mut cache, "tux", 7, "v7", now);
        cache.invalidate("tux", 7);
        assert!(
            cache.get("tux", now).is_some(),
            "the entry is as new as the change"
        );
        cache.invalidate("tux", 8);
        assert!(cache.get("tux", now).is_none());
    }

    #[test]
    fn a_zero_capacity_cache_is_off() {
        let now = Instant::now();
        let mut cache = leased(0, now);
        assert!(!fill(&mut cache, "tux", 1, "t", now));
        assert!(cache.get("tux", now).is_none());
        assert_eq!(cache.stats().misses, 1);
    }

    #[test]
    fn without_a_lease_the_cache_is_empty_and_takes_nothing() {
        let now = Instant::now();
        let mut cache = ProductCache::new(4);
        assert!(!fill(&mut cache, "tux", 1, "t", now), "no lease yet");
        cache.renewed(now, false);
        assert!(fill(&mut cache, "tux", 1, "t", now));
        let later = now + LEASE;
        assert!(cache.get("tux", later).is_none(), "the lease ran out");
        cache.renewed(later, false);
        assert!(
            cache.get("tux", later).is_none(),
            "emptied when it ran out, not hidden"
        );
    }

    #[test]
    fn a_lease_that_ran_out_unnoticed_empties_the_cache_at_the_next_renewal() {
        let now = Instant::now();
        let mut cache = leased(4, now - LEASE);
        let generation = cache.generation();
        fill(&mut cache, "tux", 1, "old", now - LEASE);
        // No query looked at the cache while its lease was out, and the renewal that ends the
        // gap carries no reset (it confirms the last one).
        cache.renewed(now, false);
        assert!(
            cache.get("tux", now).is_none(),
            "a stale entry survived the gap"
        );
        assert!(
            !cache.fill("fox", 1, body("f"), generation, now),
            "a fill fetched before the gap"
        );
    }

    #[test]
    fn a_reset_empties_the_cache_and_refuses_fills_fetched_before_it() {
        let now = Instant::now();
        let mut cache = leased(4, now);
        fill(&mut cache, "tux", 1, "t", now);
        let before_reset = cache.generation();
        cache.renewed(now, true);
        assert!(cache.get("tux", now).is_none());
        assert!(!cache.fill("fox", 3, body("f"), before_reset, now));
        assert!(fill(&mut cache, "fox", 3, "f", now));
    }

    #[test]
    fn the_list_of_products_is_dropped_by_any_newer_invalidation() {
        let now = Instant::now();
        let mut cache = ProductCache::new(4);
        cache.renewed(now, false);
        let generation = cache.generation();
        assert!(cache.fill_list(5, Bytes::from_static(b"list@5"), generation, now));
        assert_eq!(cache.get_list(now).as_deref(), Some(&b"list@5"[..]));
        // A change of any toy at or before the list's version is already in it.
        cache.invalidate("tux", 5);
        assert!(cache.get_list(now).is_some());
        cache.invalidate("whale", 6);
        assert_eq!(cache.get_list(now), None);
        // A list fetched before the change, stored after its invalidation, is refused.
        assert!(!cache.fill_list(5, Bytes::from_static(b"list@5"), generation, now));
        assert!(cache.fill_list(6, Bytes::from_static(b"list@6"), generation, now));
        // Without a lease there is no list.
        assert_eq!(cache.get_list(now + LEASE), None);
    }
}
