//! A latency histogram a service can record into on every request for the cost of one atomic
//! add, and a tool can read from afar: cumulative counts in logarithmic buckets, four per power
//! of two (so a bucket spans at most 19%). Two readings taken seconds apart give the latencies of
//! the requests in between ([`Counts::since`]), which is how `storectl top` shows p50 and p99
//! "over the last seconds" without the service keeping any window.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two.
const SUB: u32 = 4;
/// Buckets: up to 2^40 µs (12 days), far past any request.
const BUCKETS: usize = 40 * SUB as usize;

/// Recorded from many threads at once.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// The bucket of `us` microseconds.
fn bucket(us: u64) -> usize {
    if us < u64::from(SUB) {
        return us as usize;
    }
    let msb = 63 - us.leading_zeros(); // us >= SUB, so msb >= 2
    let sub = (us >> (msb - 2)) & u64::from(SUB - 1);
    ((msb - 1) * SUB + sub as u32).min(BUCKETS as u32 - 1) as usize
}

/// The smallest latency, in microseconds, that falls in bucket `index`.
fn lower_bound(index: usize) -> u64 {
    let index = index as u32;
    if index < SUB {
        return u64::from(index);
    }
    let msb = index / SUB + 1;
    let sub = u64::from(index % SUB);
    (1 << msb) | (sub << (msb - 2))
}

impl Histogram {
    pub fn record(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// Every non-empty bucket's count so far.
    pub fn counts(&self) -> Counts {
        Counts(
            self.buckets
                .iter()
                .enumerate()
                .filter_map(|(i, b)| {
                    let n = b.load(Ordering::Relaxed);
                    (n > 0).then_some((i as u16, n))
                })
                .collect(),
        )
    }
}

/// Cumulative counts of the non-empty buckets, as `(bucket, count)` pairs in bucket order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts(pub Vec<(u16, u64)>);

impl Counts {
    /// The requests recorded after `earlier` was read.
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts(
            self.0
                .iter()
                .map(|&(i, n)| {
                    let before = earlier
                        .0
                        .iter()
                        .find(|(j, _)| *j == i)
                        .map_or(0, |(_, m)| *m);
                    (i, n.saturating_sub(before))
                })
                .filter(|&(_, n)| n > 0)
                .collect(),
        )
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(|(_, n)| n).sum()
    }

    /// The latency below which a share `q` (0 to 1) of the requests fell, to the bucket's
    /// resolution; `None` without requests.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for &(i, n) in &self.0 {
            seen += n;
            if seen >= rank {
                // The bucket's middle: within 10% of any latency in it.
                let low = lower_bound(i as usize);
                let high = lower_bound(i as usize + 1);
                return Some(Duration::from_micros((low + high) / 2));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_by_a_quarter_of_a_power_of_two() {
        for us in [0, 1, 3, 4, 5, 7, 8, 100, 1_000, 123_456, 10_000_000] {
            let i = bucket(us);
            assert!(
                lower_bound(i) <= us && us < lower_bound(i + 1),
                "{us} in {i}"
            );
        }
        assert_eq!(bucket(4), 4);
        assert_eq!(bucket(8), 8);
    }

    #[test]
    fn quantiles_of_the_requests_between_two_readings() {
        let h = Histogram::default();
        for _ in 0..10 {
            h.record(Duration::from_micros(5_000));
        }
        let before = h.counts();
        for _ in 0..98 {
            h.record(Duration::from_micros(100));
        }
        for _ in 0..2 {
            h.record(Duration::from_micros(2_000));
        }
        let window = h.counts().since(&before);
        assert_eq!(window.total(), 100);
        let p50 = window.quantile(0.5).unwrap().as_micros();
        assert!((90..=115).contains(&p50), "{p50}");
        let p99 = window.quantile(0.99).unwrap().as_micros();
        assert!((1_800..=2_300).contains(&p99), "{p99}");
        assert_eq!(Counts::default().quantile(0.5), None);
    }
}
