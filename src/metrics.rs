//! Every service's `GET /metrics`, in the Prometheus text format (OpenMetrics 1.0, which
//! Prometheus scrapes natively). Two kinds of figures:
//!
//! - recorded as they happen, process-wide, by the layers every service shares: requests by
//!   route, method and status with their latencies (the HTTP layer), and fsync latencies (the
//!   storage layer);
//! - read at each scrape from the service's own state ([`Reading`]): a front end's cache, a
//!   replica's raft term, leader, indexes and log size, the catalog's restocks.
//!
//! The route label is the route's pattern (`/products/{name}`), never the path as sent, so a
//! client cannot make the label set grow.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// The content type of a scrape's reply.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// A request's labels: static strings and a number, so recording one allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: &'static str,
}

/// Latency buckets from 100 µs to about 13 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 18))
}

/// What the shared layers record as it happens.
struct Recorded {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    fsync: Histogram,
}

static RECORDED: LazyLock<Recorded> = LazyLock::new(|| Recorded {
    requests: Family::default(),
    latency: Family::new_with_constructor(latency_histogram),
    fsync: latency_histogram(),
});

/// What a request is counted under: its route's pattern and its method, both static, so that
/// telling them costs no allocation on the request's path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestKind {
    route: &'static str,
    method: &'static str,
}

impl RequestKind {
    pub fn of(method: &str, path: &str) -> Self {
        let method = match method {
            "GET" => "GET",
            "HEAD" => "HEAD",
            "POST" => "POST",
            "PUT" => "PUT",
            "DELETE" => "DELETE",
            _ => "other",
        };
        RequestKind {
            route: route_of(path),
            method,
        }
    }
}

/// Counts a request answered with `status` after `elapsed`.
pub fn record_request(request: RequestKind, status: u16, elapsed: Duration) {
    let RequestKind { route, method } = request;
    RECORDED
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status,
        })
        .inc();
    RECORDED
        .latency
        .get_or_create(&RouteLabels { route, method })
        .observe(elapsed.as_secs_f64());
}

/// Times one fsync of a log or data file.
pub fn record_fsync(elapsed: Duration) {
    RECORDED.fsync.observe(elapsed.as_secs_f64());
}

/// The routes of every service; any other path is counted as `other`.
const ROUTES: &[&str] = &[
    "/",
    "/products",
    "/orders",
    "/health",
    "/metrics",
    "/events",
    "/internal/buy",
    "/internal/confirm",
    "/internal/invalidate",
    "/internal/lease",
    "/internal/members",
    "/internal/orders",
    "/internal/raft/append",
    "/internal/raft/snapshot",
    "/internal/raft/vote",
    "/internal/stock-check",
    "/internal/stock-file",
    "/internal/unconfirmed",
];

/// The pattern of the route `path` takes.
pub fn route_of(path: &str) -> &'static str {
    let mut segments = path.strip_prefix('/').unwrap_or(path).split('/');
    let (first, second, more) = (segments.next(), segments.next(), segments.next());
    match (first, second, more) {
        (Some("products"), Some(name), None) if !name.is_empty() => "/products/{name}",
        (Some("orders"), Some(number), None) if !number.is_empty() => "/orders/{number}",
        _ => ROUTES
            .iter()
            .find(|route| **route == path)
            .copied()
            .unwrap_or("other"),
    }
}

/// Whether a figure only grows (a counter) or goes up and down (a gauge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One figure a service reads from its state at a scrape. Readings that share a name are one
/// metric family, told apart by their labels.
#[derive(Debug, Clone)]
pub struct Reading {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub labels: Labels,
    pub value: f64,
}

impl Reading {
    pub fn gauge(name: &'static str, help: &'static str, value: impl Into<f64>) -> Self {
        Reading {
            name,
            help,
            kind: Kind::Gauge,
            labels: Vec::new(),
            value: value.into(),
        }
    }

    /// `name` without the `_total` that the format adds to every counter.
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Self {
        Reading {
            name,
            help,
            kind: Kind::Counter,
            labels: Vec::new(),
            value: value as f64,
        }
    }

    pub fn with(mut self, key: &'static str, value: impl ToString) -> Self {
        self.labels.push((key, value.to_string()));
        self
    }
}

/// The readings of one scrape, encoded as metric families.
#[derive(Debug)]
struct Readings(Vec<Reading>);

impl Collector for Readings {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut names: Vec<&'static str> = Vec::new();
        for reading in &self.0 {
            if !names.contains(&reading.name) {
                names.push(reading.name);
            }
        }
        for name in names {
            let family: Vec<&Reading> = self.0.iter().filter(|r| r.name == name).collect();
            let first = family[0];
            let metric_type = match first.kind {
                Kind::Counter => ConstCounter::new(0u64).metric_type(),
                Kind::Gauge => ConstGauge::new(0.0f64).metric_type(),
            };
            let mut metric = encoder.encode_descriptor(name, first.help, None, metric_type)?;
            for reading in family {
                let sample = metric.encode_family(&reading.labels)?;
                match reading.kind {
                    Kind::Counter => ConstCounter::new(reading.value as u64).encode(sample)?,
                    Kind::Gauge => ConstGauge::new(reading.value).encode(sample)?,
                }
            }
        }
        Ok(())
    }
}

/// The whole scrape: what the shared layers recorded in this process, then `readings`.
pub fn render(readings: Vec<Reading>) -> String {
    let mut registry = Registry::with_prefix("storectl");
    registry.register(
        "http_requests",
        "HTTP requests answered, by route pattern, method and status",
        RECORDED.requests.clone(),
    );
    registry.register_with_unit(
        "http_request_duration",
        "Time from a request's arrival to its reply's head, by route pattern and method",
        Unit::Seconds,
        RECORDED.latency.clone(),
    );
    registry.register_with_unit(
        "fsync_duration",
        "Time one fsync of a log or data file took",
        Unit::Seconds,
        RECORDED.fsync.clone(),
    );
    registry.register_collector(Box::new(Readings(readings)));
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_patterns_and_unknown_paths_are_one_label() {
        assert_eq!(route_of("/products/Tux"), "/products/{name}");
        assert_eq!(route_of("/orders/12"), "/orders/{number}");
        assert_eq!(route_of("/internal/raft/vote"), "/internal/raft/vote");
        assert_eq!(route_of("/"), "/");
        assert_eq!(route_of("/no/such/path"), "other");
        assert_eq!(route_of("/products/"), "other");
    }

    #[test]
    fn readings_are_families_with_their_labels() {
        record_request(
            RequestKind::of("GET", "/products/Tux"),
            200,
            Duration::from_millis(3),
        );
        let text = render(vec![
            Reading::gauge("raft_term", "The term", 4.0).with("group", "order"),
            Reading::counter("cache_hits", "Hits", 7),
        ]);
        assert!(text.contains("# TYPE storectl_raft_term gauge"), "{text}");
        assert!(
            text.contains("storectl_raft_term{group=\"order\"} 4"),
            "{text}"
        );
        assert!(text.contains("storectl_cache_hits_total 7"), "{text}");
        assert!(
            text.contains(
                "storectl_http_requests_total{route=\"/products/{name}\",method=\"GET\",status=\"200\"}"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
