//! The front end's product cache: an LRU of serialised replies, no I/O.
//!
//! Every stock change gives the product a higher version, and the catalog's invalidation carries
//! it. The cache remembers, per product, the newest version it was told of and refuses fills
//! older than that, so a reply fetched before a change but stored after its invalidation can
//! never linger.

use std::collections::HashMap;
use std::num::NonZeroUsize;

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
    stats: CacheStats,
}

impl ProductCache {
    pub fn new(capacity: usize) -> Self {
        ProductCache {
            entries: NonZeroUsize::new(capacity).map(LruCache::new),
            floors: HashMap::new(),
            stats: CacheStats {
                capacity: capacity as u64,
                ..Default::default()
            },
        }
    }

    /// The cached reply for `key`, counting a hit or a miss.
    pub fn get(&mut self, key: &str) -> Option<Bytes> {
        let found = self
            .entries
            .as_mut()
            .and_then(|e| e.get(key))
            .map(|c| c.body.clone());
        if found.is_some() {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
        }
        found
    }

    /// Stores a reply fetched at `version`, unless an invalidation already made it stale.
    /// Returns whether it was stored.
    pub fn fill(&mut self, key: &str, version: u64, body: Bytes) -> bool {
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

    /// Drops `key`'s reply if it is older than `version`, and refuses older fills from now on.
    pub fn invalidate(&mut self, key: &str, version: u64) {
        self.stats.invalidations += 1;
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

    fn body(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    #[test]
    fn hits_misses_and_evictions_are_counted() {
        let mut cache = ProductCache::new(2);
        assert!(cache.get("tux").is_none());
        cache.fill("tux", 1, body("t"));
        cache.fill("fox", 1, body("f"));
        assert_eq!(cache.get("tux").unwrap(), body("t"));
        cache.fill("lego", 1, body("l")); // evicts fox, the least recently used
        assert!(cache.get("fox").is_none());
        let stats = cache.stats();
        assert_eq!(
            (stats.hits, stats.misses, stats.evictions, stats.size),
            (1, 2, 1, 2)
        );
    }

    #[test]
    fn a_fill_older_than_an_invalidation_is_refused() {
        let mut cache = ProductCache::new(4);
        // A miss fetched version 5; meanwhile a buy made version 6 and its invalidation came in.
        cache.invalidate("tux", 6);
        assert!(!cache.fill("tux", 5, body("old")));
        assert!(cache.get("tux").is_none());
        assert!(cache.fill("tux", 6, body("new")));
        assert_eq!(cache.get("tux").unwrap(), body("new"));
    }

    #[test]
    fn invalidation_drops_older_entries_only() {
        let mut cache = ProductCache::new(4);
        cache.fill("tux", 7, body("v7"));
        cache.invalidate("tux", 7);
        assert!(
            cache.get("tux").is_some(),
            "the entry is as new as the change"
        );
        cache.invalidate("tux", 8);
        assert!(cache.get("tux").is_none());
    }

    #[test]
    fn a_zero_capacity_cache_is_off() {
        let mut cache = ProductCache::new(0);
        assert!(!cache.fill("tux", 1, body("t")));
        assert!(cache.get("tux").is_none());
        assert_eq!(cache.stats().misses, 1);
    }
}
