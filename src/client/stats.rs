//! Latency statistics: percentiles by nearest rank over recorded samples.

use std::time::Duration;

use serde::Serialize;

/// Summary of one request type's latencies, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    /// `us` for people, or "–" when there were no samples (never a made-up "0µs").
    pub fn show(&self, us: f64) -> String {
        if self.count == 0 {
            "–".into()
        } else {
            human_us(us)
        }
    }
}

/// Latency samples of one request type.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    samples_us: Vec<u64>,
}

impl Latencies {
    pub fn record(&mut self, elapsed: Duration) {
        self.samples_us.push(elapsed.as_micros() as u64);
    }

    pub fn merge(&mut self, other: &Latencies) {
        self.samples_us.extend_from_slice(&other.samples_us);
    }

    pub fn len(&self) -> usize {
        self.samples_us.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples_us.is_empty()
    }

    pub fn summary(&self) -> LatencySummary {
        if self.samples_us.is_empty() {
            return LatencySummary::default();
        }
        let mut sorted = self.samples_us.clone();
        sorted.sort_unstable();
        let total: u128 = sorted.iter().map(|&s| s as u128).sum();
        LatencySummary {
            count: sorted.len() as u64,
            mean_us: total as f64 / sorted.len() as f64,
            p50_us: percentile(&sorted, 50.0),
            p95_us: percentile(&sorted, 95.0),
            p99_us: percentile(&sorted, 99.0),
            max_us: *sorted.last().unwrap_or(&0),
        }
    }
}

/// The nearest-rank percentile `p` (0–100] of ascending `sorted`.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Formats microseconds for people: `85µs`, `1.25ms`, `2.10s`.
pub fn human_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 50.0), 50);
        assert_eq!(percentile(&sorted, 95.0), 95);
        assert_eq!(percentile(&sorted, 99.0), 99);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn summary_of_samples() {
        let mut l = Latencies::default();
        for us in [100, 200, 300, 400] {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary();
        assert_eq!(s.count, 4);
        assert_eq!(s.mean_us, 250.0);
        assert_eq!(s.p50_us, 200);
        assert_eq!(s.max_us, 400);
    }

    #[test]
    fn human_units() {
        assert_eq!(human_us(85.0), "85µs");
        assert_eq!(human_us(1250.0), "1.25ms");
        assert_eq!(human_us(2_100_000.0), "2.10s");
    }
}
