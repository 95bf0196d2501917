//! `storectl bench`: what caching and replication cost and buy, measured on a real cluster.
//!
//! - The **latency study** ([`run_study`]) runs the client's buy loop at several order
//!   probabilities `p`, once against a front end with its cache on and once with it off, and
//!   keeps, per request type and point, the count, errors, latency percentiles and throughput,
//!   with the cache hit ratio. Cache-on and cache-off points at the same `p` use the same seed,
//!   so both see the same sequence of choices.
//! - The **throughput mode** ([`load`]) holds many keep-alive connections busy on one request
//!   type for a fixed time and reports requests per second.
//! - [`report`] writes the CSV and the Markdown summary, [`plot`] the SVG plots.
//!
//! The bench starts its own clusters in a work directory (one per cache mode, with a stock large
//! enough that no order is refused as sold out), or measures a running one as it is.

pub mod bare;
pub mod etcd;
pub mod load;
pub mod plot;
pub mod report;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::client::stats::LatencySummary;
use crate::client::{self, ClientConfig};
use crate::cluster::{ClusterSpec, Ephemeral, StateDir, UpOptions};
use crate::progress::Progress;
use crate::services::ServiceConfig;
use crate::tool_error::{Result, ToolError};
use crate::tool_http;
use crate::wire::{CacheStats, Data, FrontendHealth};

/// Units of each toy in a cluster the bench starts: enough for minutes of orders at full speed,
/// so that the study measures orders rather than sold-out refusals.
pub const BENCH_STOCK: u64 = 1_000_000;

/// The front end's cache during a measurement. The doc comments are `--cache`'s help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// The front end's LRU cache on (--cache-size entries)
    On,
    /// No cache: every product query goes to the catalog
    Off,
}

impl CacheMode {
    /// The mode of a front end whose cache holds `size` entries.
    pub fn of_size(size: usize) -> Self {
        if size > 0 {
            CacheMode::On
        } else {
            CacheMode::Off
        }
    }

    /// The cache size of a cluster started in this mode, with `on` entries when it is on.
    pub fn size(self, on: usize) -> usize {
        match self {
            CacheMode::On => on,
            CacheMode::Off => 0,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CacheMode::On => "on",
            CacheMode::Off => "off",
        }
    }
}

/// How long each point runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Length {
    /// Each client session runs this many iterations of the buy loop.
    Iterations(usize),
    /// Each client session runs for this long.
    Duration(Duration),
}

/// What cluster to measure.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Start a cluster per cache mode, each in a temporary directory, running `exe` for its
    /// services.
    Own { exe: &'a Path },
    /// Measure the running cluster in this state directory, with the cache it has.
    Running(&'a StateDir),
}

#[derive(Debug, Clone)]
pub struct StudyOptions {
    pub clients: usize,
    pub ps: Vec<f64>,
    /// Cache modes to measure; `None` means both for own clusters, the running one's otherwise.
    pub caches: Option<Vec<CacheMode>>,
    pub length: Length,
    pub seed: u64,
    /// Capacity of the cache when it is on, for clusters the bench starts.
    pub cache_size: usize,
}

/// One request type at one point.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct TypeStats {
    /// Requests answered as expected (a sold-out 409 counts for orders).
    pub count: u64,
    pub errors: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// `count` per second of the point's wall time.
    pub throughput_rps: f64,
}

impl TypeStats {
    pub fn new(latency: &LatencySummary, errors: u64, elapsed_s: f64) -> Self {
        TypeStats {
            count: latency.count,
            errors,
            mean_us: latency.mean_us,
            p50_us: latency.p50_us,
            p95_us: latency.p95_us,
            p99_us: latency.p99_us,
            max_us: latency.max_us,
            throughput_rps: if elapsed_s > 0.0 {
                latency.count as f64 / elapsed_s
            } else {
                0.0
            },
        }
    }

    /// A latency of this type for people: `–` when there was no such request (orders at p = 0).
    pub fn show(&self, us: f64) -> String {
        LatencySummary {
            count: self.count,
            ..Default::default()
        }
        .show(us)
    }
}

/// The request types of the study, in the order the CSV and the plots list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestType {
    ProductQuery,
    /// The product queries the cache answered (the front end's `X-Cache: hit`).
    ProductQueryHit,
    /// The product queries it did not.
    ProductQueryMiss,
    Order,
    OrderQuery,
}

impl RequestType {
    /// The API's three requests: a plot and a table each.
    pub const MAIN: [RequestType; 3] = [
        RequestType::ProductQuery,
        RequestType::Order,
        RequestType::OrderQuery,
    ];
    /// Every row of the CSV: the three requests, and product queries split by hit and miss.
    pub const ALL: [RequestType; 5] = [
        RequestType::ProductQuery,
        RequestType::ProductQueryHit,
        RequestType::ProductQueryMiss,
        RequestType::Order,
        RequestType::OrderQuery,
    ];

    /// The name used in the CSV and in file names.
    pub fn slug(self) -> &'static str {
        match self {
            RequestType::ProductQuery => "product-query",
            RequestType::ProductQueryHit => "product-query-hit",
            RequestType::ProductQueryMiss => "product-query-miss",
            RequestType::Order => "order",
            RequestType::OrderQuery => "order-query",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            RequestType::ProductQuery => "Product queries (GET /products/{name})",
            RequestType::ProductQueryHit => "Product queries answered by the cache",
            RequestType::ProductQueryMiss => "Product queries the cache could not answer",
            RequestType::Order => "Orders (POST /orders)",
            RequestType::OrderQuery => "Order queries (GET /orders/{number})",
        }
    }
}

/// One point of the study: one cache mode at one `p`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    pub cache: CacheMode,
    pub p: f64,
    pub clients: usize,
    pub elapsed_s: f64,
    /// Cache hits over lookups during the point, from the front end's counters.
    pub hit_ratio: f64,
    /// Orders refused because the toy sold out (409): expected, not errors.
    pub sold_out: u64,
    /// Orders not even tried because the query found the toy sold out: the order latency of
    /// the point measured fewer orders than its p asked for.
    pub skipped_sold_out: u64,
    pub product_query: TypeStats,
    pub product_query_hit: TypeStats,
    pub product_query_miss: TypeStats,
    pub order: TypeStats,
    pub order_query: TypeStats,
}

impl Point {
    pub fn stats(&self, kind: RequestType) -> &TypeStats {
        match kind {
            RequestType::ProductQuery => &self.product_query,
            RequestType::ProductQueryHit => &self.product_query_hit,
            RequestType::ProductQueryMiss => &self.product_query_miss,
            RequestType::Order => &self.order,
            RequestType::OrderQuery => &self.order_query,
        }
    }

    pub fn errors(&self) -> u64 {
        RequestType::MAIN
            .iter()
            .map(|&k| self.stats(k).errors)
            .sum()
    }
}

/// Everything the study measured, with how.
#[derive(Debug, Clone, Serialize)]
pub struct Study {
    pub clients: usize,
    /// `iterations N` or `duration Ns`, per client session and point.
    pub length: String,
    pub seed: u64,
    /// Which cluster was measured, in words.
    pub cluster: String,
    pub points: Vec<Point>,
}

impl Study {
    pub fn errors(&self) -> u64 {
        self.points.iter().map(Point::errors).sum()
    }
}

/// Runs the latency study. `progress` advances once per client iteration and order check.
pub fn run_study(
    options: &StudyOptions,
    target: Target<'_>,
    progress: &dyn Progress,
) -> Result<Study> {
    let length = match options.length {
        Length::Iterations(n) => format!("{n} iterations"),
        Length::Duration(d) => format!("{} s", d.as_secs_f64()),
    };
    let mut study = Study {
        clients: options.clients,
        length,
        seed: options.seed,
        cluster: String::new(),
        points: Vec::new(),
    };
    match target {
        Target::Own { exe } => {
            let caches = own_caches(options);
            study.cluster = format!(
                "clusters started by the bench, one per cache mode (cache of {} entries when on), \
                 {BENCH_STOCK} units of each toy",
                options.cache_size
            );
            for cache in caches {
                let capacity = cache.size(options.cache_size);
                let points = with_own_cluster(exe, capacity, |frontend| {
                    measure_all(options, frontend, cache, progress)
                })?;
                study.points.extend(points);
            }
        }
        Target::Running(state) => {
            let spec = state.running()?;
            let frontend = spec.frontend_url();
            let capacity = recorded_cache_size(&spec);
            let cache = CacheMode::of_size(capacity);
            if let Some(wanted) = options.caches.as_ref().filter(|c| c != &&vec![cache]) {
                let wanted: Vec<&str> = wanted.iter().map(|c| c.label()).collect();
                return Err(ToolError::usage(format!(
                    "the cluster in {} has its cache {} and cannot measure --cache {}; \
                     drop --state-dir to let the bench start its own clusters",
                    state.root().display(),
                    cache.label(),
                    wanted.join(",")
                )));
            }
            study.cluster = format!(
                "the running cluster in {} (cache {}, {} entries)",
                state.root().display(),
                cache.label(),
                capacity
            );
            study.points = measure_all(options, &frontend, cache, progress)?;
        }
    }
    Ok(study)
}

/// The cache modes measured on clusters the bench starts: both unless told.
fn own_caches(options: &StudyOptions) -> Vec<CacheMode> {
    options
        .caches
        .clone()
        .unwrap_or_else(|| vec![CacheMode::On, CacheMode::Off])
}

/// How many points [`run_study`] measures: every `p` for each cache mode (a running cluster has
/// the one it was started with).
pub fn point_count(options: &StudyOptions, target: Target<'_>) -> usize {
    let modes = match (&options.caches, target) {
        (Some(modes), _) => modes.len(),
        (None, Target::Own { .. }) => own_caches(options).len(),
        (None, Target::Running(_)) => 1,
    };
    modes * options.ps.len()
}

/// Starts a cluster with a cache of `cache_size` in a temporary directory, runs `work` against
/// its front end, and stops it whatever happened.
pub fn with_own_cluster<T>(
    exe: &Path,
    cache_size: usize,
    work: impl FnOnce(&str) -> Result<T>,
) -> Result<T> {
    own_cluster(exe, cache_size, false, work)
}

/// [`with_own_cluster`], its services speaking mutual TLS to each other (`up --tls`); `work`
/// is given the front end's plain HTTP address, as clients on one host use it.
pub fn with_own_tls_cluster<T>(
    exe: &Path,
    cache_size: usize,
    work: impl FnOnce(&str) -> Result<T>,
) -> Result<T> {
    own_cluster(exe, cache_size, true, work)
}

fn own_cluster<T>(
    exe: &Path,
    cache_size: usize,
    tls: bool,
    work: impl FnOnce(&str) -> Result<T>,
) -> Result<T> {
    let cluster = Ephemeral::new("bench")?;
    let options = UpOptions {
        cache_size,
        initial_stock: Some(BENCH_STOCK),
        tls,
        ..Default::default()
    };
    let spec = cluster.up(&options, exe)?;
    work(&spec.frontend_url().replacen("https://", "http://", 1))
}

/// The cache size the running cluster's front end was started with.
pub fn recorded_cache_size(spec: &ClusterSpec) -> usize {
    spec.services
        .iter()
        .find_map(|service| match service {
            ServiceConfig::Frontend(frontend) => Some(frontend.cache_size),
            _ => None,
        })
        .unwrap_or(0)
}

/// The front end's cache counters.
pub fn frontend_cache(frontend: &str) -> Result<CacheStats> {
    let agent = tool_http::agent();
    let url = format!("{frontend}/health");
    let reply = tool_http::get(&agent, &url).map_err(|e| ToolError::remote(&url, e))?;
    reply
        .json::<Data<FrontendHealth>>()
        .map(|h| h.data.cache)
        .ok_or_else(|| ToolError::Unexpected {
            url: url.clone(),
            body: reply.body.clone(),
        })
}

/// Hits over lookups between two readings of the cache counters.
pub fn hit_ratio(before: &CacheStats, after: &CacheStats) -> f64 {
    let hits = after.hits.saturating_sub(before.hits);
    let misses = after.misses.saturating_sub(before.misses);
    if hits + misses == 0 {
        0.0
    } else {
        hits as f64 / (hits + misses) as f64
    }
}

fn measure_all(
    options: &StudyOptions,
    frontend: &str,
    cache: CacheMode,
    progress: &dyn Progress,
) -> Result<Vec<Point>> {
    let mut points = Vec::new();
    for (i, &p) in options.ps.iter().enumerate() {
        progress.message(&format!("cache {}, p = {p}", cache.label()));
        // The same seed for both cache modes at one p: the same choices, a fair comparison.
        let seed = options.seed.wrapping_add(i as u64 * 1_000);
        points.push(measure_point(options, frontend, cache, p, seed, progress)?);
    }
    Ok(points)
}

fn measure_point(
    options: &StudyOptions,
    frontend: &str,
    cache: CacheMode,
    p: f64,
    seed: u64,
    progress: &dyn Progress,
) -> Result<Point> {
    let stop = Arc::new(AtomicBool::new(false));
    let config = ClientConfig {
        frontend: frontend.to_string(),
        sessions: options.clients,
        iterations: match options.length {
            Length::Iterations(n) => n,
            Length::Duration(_) => usize::MAX,
        },
        p,
        seed,
        products: client::catalog_products(),
        stop: Some(stop.clone()),
        retry_for: Duration::ZERO,
    };
    let before = frontend_cache(frontend)?;
    let report = std::thread::scope(|scope| {
        if let Length::Duration(d) = options.length {
            let stop = stop.clone();
            scope.spawn(move || {
                std::thread::sleep(d);
                stop.store(true, Ordering::Relaxed);
            });
        }
        client::run(&config, progress)
    });
    let after = frontend_cache(frontend)?;
    let elapsed = report.elapsed_s;
    let errors = report.errors_by_kind;
    Ok(Point {
        cache,
        p,
        clients: options.clients,
        elapsed_s: elapsed,
        hit_ratio: hit_ratio(&before, &after),
        sold_out: report.sold_out,
        skipped_sold_out: report.skipped_sold_out,
        product_query: TypeStats::new(&report.query, errors.query, elapsed),
        product_query_hit: TypeStats::new(&report.query_hit, 0, elapsed),
        product_query_miss: TypeStats::new(&report.query_miss, 0, elapsed),
        order: TypeStats::new(&report.order, errors.order, elapsed),
        order_query: TypeStats::new(&report.order_query, errors.order_query, elapsed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_ratio_is_hits_over_lookups_between_readings() {
        let before = CacheStats {
            hits: 10,
            misses: 10,
            ..Default::default()
        };
        let after = CacheStats {
            hits: 40,
            misses: 20,
            ..Default::default()
        };
        assert_eq!(hit_ratio(&before, &after), 0.75);
        assert_eq!(hit_ratio(&after, &after), 0.0, "no lookups, no ratio");
    }

    #[test]
    fn type_stats_take_throughput_over_the_point() {
        let latency = LatencySummary {
            count: 500,
            mean_us: 120.0,
            p50_us: 100,
            p95_us: 200,
            p99_us: 300,
            max_us: 900,
        };
        let stats = TypeStats::new(&latency, 2, 2.0);
        assert_eq!(stats.throughput_rps, 250.0);
        assert_eq!((stats.count, stats.errors, stats.p99_us), (500, 2, 300));
        assert_eq!(TypeStats::new(&latency, 0, 0.0).throughput_rps, 0.0);
    }
}
