//! What `storectl top` shows, worked out from successive `status` readings: each service, the
//! leader, orders and queries per second, the cache's hit ratio and the latencies over the last
//! seconds, and the events seen between readings (a service gone or back, a restart, a new
//! leader). The drawing is the command line's; this is the part that can be tested.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use crate::cluster::ServiceStatus;
use crate::histogram::Counts;
use crate::services::ServiceName;

/// How many events are kept.
const EVENTS_KEPT: usize = 50;

/// One reading of every service.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    rows: Vec<ServiceStatus>,
}

/// Something that happened between two readings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: SystemTime,
    pub text: String,
}

/// The readings of the last `window`, and the events seen so far.
#[derive(Debug)]
pub struct Watch {
    window: Duration,
    samples: VecDeque<Sample>,
    events: VecDeque<Event>,
}

/// One service's line.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceLine {
    pub status: ServiceStatus,
    /// For a replica: orders behind the one with the most.
    pub lag: Option<u64>,
}

/// Latencies of one request type over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
}

/// Everything on the screen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    pub services: Vec<ServiceLine>,
    /// The leading replica and its term.
    pub leader: Option<(ServiceName, u64)>,
    /// The catalog replica that leads, and its term.
    pub catalog_leader: Option<(ServiceName, u64)>,
    /// Over the window; `None` until there are two readings.
    pub orders_per_s: Option<f64>,
    pub queries_per_s: Option<f64>,
    pub hit_ratio: Option<f64>,
    pub query: Latency,
    pub order: Latency,
    /// The window the rates cover, as far as readings reach back.
    pub span: Duration,
    /// Newest first.
    pub events: Vec<Event>,
}

impl Watch {
    pub fn new(window: Duration) -> Self {
        Watch {
            window,
            samples: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Takes a reading made at `at` (wall clock `wall`, for the events' times).
    pub fn observe(&mut self, rows: Vec<ServiceStatus>, at: Instant, wall: SystemTime) {
        if let Some(previous) = self.samples.back() {
            for text in changes(&previous.rows, &rows) {
                self.events.push_front(Event { at: wall, text });
            }
            self.events.truncate(EVENTS_KEPT);
        } else if leader_of(&rows, Group::Order).is_none() {
            self.events.push_front(Event {
                at: wall,
                text: "no order replica leads".into(),
            });
        }
        self.samples.push_back(Sample { at, rows });
        // Keep one reading at or beyond the window's start, so rates cover the whole window.
        while self.samples.len() > 2 && self.samples[1].at + self.window <= at {
            self.samples.pop_front();
        }
    }

    pub fn view(&self) -> View {
        let Some(newest) = self.samples.back() else {
            return View::default();
        };
        let most = newest.rows.iter().filter_map(|r| r.orders).max();
        let services = newest
            .rows
            .iter()
            .map(|status| ServiceLine {
                lag: status
                    .name
                    .replica_id()
                    .and_then(|_| Some(most?.saturating_sub(status.orders?))),
                status: status.clone(),
            })
            .collect();
        let mut view = View {
            services,
            leader: leader_of(&newest.rows, Group::Order),
            catalog_leader: leader_of(&newest.rows, Group::Catalog),
            events: self.events.iter().cloned().collect(),
            ..View::default()
        };
        let oldest = &self.samples[0];
        let span = newest.at.saturating_duration_since(oldest.at);
        if self.samples.len() < 2 || span.is_zero() {
            return view;
        }
        view.span = span;
        let seconds = span.as_secs_f64();
        let orders = |s: &Sample| s.rows.iter().filter_map(|r| r.orders).max().unwrap_or(0);
        view.orders_per_s = Some(orders(newest).saturating_sub(orders(oldest)) as f64 / seconds);
        let (hits, misses) = cache_delta(oldest, newest);
        view.queries_per_s = Some((hits + misses) as f64 / seconds);
        view.hit_ratio = (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64);
        view.query = latency(oldest, newest, |l| &l.query);
        view.order = latency(oldest, newest, |l| &l.order);
        view
    }
}

/// A replica group, as `top` follows its leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Order,
    Catalog,
}

impl Group {
    fn holds(self, name: ServiceName) -> bool {
        match self {
            Group::Order => name.replica_id().is_some(),
            Group::Catalog => name.catalog_id().is_some(),
        }
    }
}

fn leader_of(rows: &[ServiceStatus], group: Group) -> Option<(ServiceName, u64)> {
    rows.iter()
        .filter(|r| group.holds(r.name) && r.role.as_deref() == Some("leader"))
        .max_by_key(|r| r.term)
        .map(|r| (r.name, r.term.unwrap_or(0)))
}

/// What changed from `before` to `after`, in words.
fn changes(before: &[ServiceStatus], after: &[ServiceStatus]) -> Vec<String> {
    let mut events = Vec::new();
    for now in after {
        let Some(then) = before.iter().find(|b| b.name == now.name) else {
            continue;
        };
        match (then.alive, now.alive) {
            (true, false) => events.push(format!("{} stopped answering", now.name)),
            // With no process before, it was started again (`storectl restart`).
            (false, true) => match (then.pid, now.pid) {
                (None, Some(pid)) => {
                    events.push(format!("{} restarted (pid {pid}) and answers", now.name))
                }
                _ => events.push(format!("{} answers again", now.name)),
            },
            _ => {}
        }
        if let (Some(a), Some(b)) = (then.pid, now.pid) {
            if a != b {
                events.push(format!("{} restarted (pid {b})", now.name));
            }
        }
    }
    for (group, named) in [(Group::Order, "order"), (Group::Catalog, "catalog")] {
        match (leader_of(before, group), leader_of(after, group)) {
            (Some((a, term_a)), Some((b, term_b))) if a != b || term_a != term_b => {
                events.push(format!("{b} leads (term {term_b}), after {a}"));
            }
            (None, Some((b, term))) => events.push(format!("{b} leads (term {term})")),
            (Some((a, _)), None) => events.push(format!("no {named} replica leads ({a} led)")),
            _ => {}
        }
    }
    events
}

/// Cache hits and misses of every front end between two readings.
fn cache_delta(oldest: &Sample, newest: &Sample) -> (u64, u64) {
    let mut hits = 0;
    let mut misses = 0;
    for now in &newest.rows {
        let (Some(c), Some(then)) = (now.cache, oldest.rows.iter().find(|r| r.name == now.name))
        else {
            continue;
        };
        let before = then.cache.unwrap_or_default();
        // A restarted front end counts from zero again.
        let restarted = c.hits < before.hits || c.misses < before.misses;
        let (h0, m0) = if restarted {
            (0, 0)
        } else {
            (before.hits, before.misses)
        };
        hits += c.hits - h0;
        misses += c.misses - m0;
    }
    (hits, misses)
}

/// Every front end's latencies of one request type between two readings, together.
fn latency(
    oldest: &Sample,
    newest: &Sample,
    kind: impl Fn(&crate::wire::FrontendLatency) -> &Counts,
) -> Latency {
    let mut merged: Vec<(u16, u64)> = Vec::new();
    for now in &newest.rows {
        let Some(latest) = now.latency.as_ref() else {
            continue;
        };
        let before = oldest
            .rows
            .iter()
            .find(|r| r.name == now.name)
            .and_then(|r| r.latency.as_ref())
            .map(|l| kind(l).clone())
            .unwrap_or_default();
        for (bucket, n) in kind(latest).since(&before).0 {
            match merged.iter_mut().find(|(b, _)| *b == bucket) {
                Some((_, total)) => *total += n,
                None => merged.push((bucket, n)),
            }
        }
    }
    merged.sort_unstable();
    let window = Counts(merged);
    Latency {
        count: window.total(),
        p50: window.quantile(0.5),
        p99: window.quantile(0.99),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Histogram;
    use crate::wire::{CacheStats, FrontendLatency};

    fn replica(id: u32, role: &str, term: u64, orders: u64, pid: u32) -> ServiceStatus {
        let address = format!("127.0.0.1:{}", 8009 + id);
        ServiceStatus {
            role: Some(role.into()),
            ready: Some(true),
            term: Some(term),
            last_order: orders.checked_sub(1),
            orders: Some(orders),
            ..ServiceStatus::answering(ServiceName::Order(id), Some(pid), address, true)
        }
    }

    fn frontend(hits: u64, misses: u64, latency: FrontendLatency) -> ServiceStatus {
        let address = "127.0.0.1:8000".into();
        ServiceStatus {
            leader_id: Some(3),
            cache: Some(CacheStats {
                hits,
                misses,
                ..CacheStats::default()
            }),
            cache_leased: Some(true),
            latency: Some(latency),
            ..ServiceStatus::answering(ServiceName::Frontend(None), Some(50), address, true)
        }
    }

    #[test]
    fn rates_latencies_and_lag_over_the_window() {
        let orders = Histogram::default();
        let mut watch = Watch::new(Duration::from_secs(5));
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let snapshot = |hits, misses, orders: &Histogram| {
            frontend(
                hits,
                misses,
                FrontendLatency {
                    query: Counts::default(),
                    order: orders.counts(),
                },
            )
        };
        watch.observe(
            vec![
                replica(3, "leader", 1, 100, 30),
                replica(2, "follower", 1, 100, 20),
                snapshot(10, 10, &orders),
            ],
            t0,
            wall,
        );
        for _ in 0..100 {
            orders.record(Duration::from_millis(2));
        }
        watch.observe(
            vec![
                replica(3, "leader", 1, 300, 30),
                replica(2, "follower", 1, 290, 20),
                snapshot(70, 30, &orders),
            ],
            t0 + Duration::from_secs(2),
            wall,
        );
        let view = watch.view();
        assert_eq!(view.leader, Some((ServiceName::Order(3), 1)));
        assert_eq!(view.orders_per_s, Some(100.0));
        assert_eq!(view.queries_per_s, Some(40.0));
        assert_eq!(view.hit_ratio, Some(0.75));
        assert_eq!(view.order.count, 100);
        let p50 = view.order.p50.unwrap().as_micros();
        assert!((1_800..=2_300).contains(&p50), "{p50}");
        assert_eq!(view.query.p50, None, "no queries timed: no made-up latency");
        assert_eq!(view.services[1].lag, Some(10));
        assert!(view.events.is_empty());
    }

    #[test]
    fn a_killed_leader_a_new_one_and_a_restart_are_events() {
        let mut watch = Watch::new(Duration::from_secs(5));
        let t0 = Instant::now();
        let wall = SystemTime::now();
        watch.observe(
            vec![
                replica(3, "leader", 1, 10, 30),
                replica(2, "follower", 1, 10, 20),
            ],
            t0,
            wall,
        );
        let mut dead = replica(3, "leader", 1, 10, 30);
        dead.alive = false;
        dead.role = None;
        dead.pid = None;
        watch.observe(
            vec![dead, replica(2, "leader", 2, 12, 20)],
            t0 + Duration::from_secs(1),
            wall,
        );
        watch.observe(
            vec![
                replica(3, "follower", 2, 12, 31),
                replica(2, "leader", 2, 12, 20),
            ],
            t0 + Duration::from_secs(2),
            wall,
        );
        let texts: Vec<String> = watch.view().events.into_iter().map(|e| e.text).collect();
        assert_eq!(
            texts,
            [
                "order-3 restarted (pid 31) and answers",
                "order-2 leads (term 2), after order-3",
                "order-3 stopped answering",
            ]
        );
    }
}
