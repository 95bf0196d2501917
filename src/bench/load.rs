//! Throughput mode: many keep-alive connections, each sending one request type back to back for
//! a fixed time, then the same with one connection for the sequential latency.
//!
//! The load comes from one thread (a current-thread runtime driving the services' own pooled
//! client, [`PeerClient`]), so on a small machine the generator leaves the cores to the store it
//! measures. Each of the `connections` tasks sends its next request as soon as the last is
//! answered, so the pool holds that many keep-alive connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::http::{header, Method, Request, StatusCode};
use serde::Serialize;

use super::{
    frontend_cache, hit_ratio, recorded_cache_size, with_own_cluster, with_own_tls_cluster, Target,
};
use crate::client::stats::{Latencies, LatencySummary};
use crate::peer::PeerClient;
use crate::progress::Progress;
use crate::tool_error::{Result, ToolError};

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Connections of the concurrent phases; the sequential ones use one.
    pub connections: usize,
    /// How long each phase is measured.
    pub duration: Duration,
    /// How long each phase runs before it is measured: connections open, caches fill.
    pub warmup: Duration,
    /// Capacity of the cache for the cached phases, in clusters the bench starts (at least 1).
    pub cache_size: usize,
    /// The goals each phase is held to, where it has one.
    pub goals: Vec<PhaseGoal>,
    /// Also measure puts into a three-member etcd cluster started from this binary, with the
    /// same generator: the yardstick for a replicated write.
    pub etcd: Option<std::path::PathBuf>,
    /// Also measure orders on a cluster of its own whose services speak mutual TLS.
    pub tls: bool,
}

/// Bytes of each etcd put's value.
pub const ETCD_VALUE_BYTES: usize = 256;

/// A goal for one workload at one number of connections.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PhaseGoal {
    pub workload: Workload,
    pub connections: usize,
    pub goal: Goal,
}

/// The goal of `workload` at `connections` among `goals`, if it has one.
pub fn goal_for(goals: &[PhaseGoal], workload: Workload, connections: usize) -> Option<Goal> {
    goals
        .iter()
        .find(|g| g.workload == workload && g.connections == connections)
        .map(|g| g.goal)
}

/// One request type, sent back to back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Product queries for toys that all fit in the cache: after the warm-up, every one a hit.
    CachedQuery,
    /// The cached queries' requests to a bare warp server that answers each with the same
    /// reply ([`super::bare`]): what the front end's cached query is held against.
    BareWarp,
    /// Product queries with the cache off: each one a call to the catalog.
    UncachedQuery,
    /// Orders of one unit: durable and replicated, stock taken, cache invalidated.
    Order,
    /// The same orders, on a cluster whose services speak mutual TLS to each other (the
    /// clients use the front end's plain HTTP, as on one host).
    OrderTls,
    /// Puts of a 256-byte value into etcd (three members on loopback), to its leader: the
    /// replicated write orders are compared with.
    EtcdPut,
}

impl Workload {
    pub fn label(self) -> &'static str {
        match self {
            Workload::CachedQuery => "cached product query",
            Workload::BareWarp => "bare warp server, same reply",
            Workload::UncachedQuery => "uncached product query",
            Workload::Order => "order",
            Workload::OrderTls => "order, TLS between services",
            Workload::EtcdPut => "etcd put (3 members)",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Workload::CachedQuery => "cached-query",
            Workload::BareWarp => "bare-warp",
            Workload::UncachedQuery => "uncached-query",
            Workload::Order => "order",
            Workload::OrderTls => "order-tls",
            Workload::EtcdPut => "etcd-put",
        }
    }
}

/// A performance goal of the store, for the phases it is set for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    /// At least this many requests per second.
    MinRps(f64),
    /// A median latency of at most this many microseconds.
    MaxP50Us(u64),
}

impl Goal {
    pub fn met_by(self, phase: &Phase) -> bool {
        match self {
            Goal::MinRps(rps) => phase.rps >= rps,
            Goal::MaxP50Us(us) => phase.latency.count > 0 && phase.latency.p50_us <= us,
        }
    }

    pub fn describe(self) -> String {
        match self {
            Goal::MinRps(rps) => format!("≥ {} req/s", thousands(rps)),
            Goal::MaxP50Us(us) => format!("p50 ≤ {}", crate::client::stats::human_us(us as f64)),
        }
    }
}

/// `12345.6` as `12,346`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What one phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub workload: Workload,
    pub connections: usize,
    /// Requests answered with 2xx during the measured time.
    pub requests: u64,
    /// Unexpected replies: 5xx, 4xx other than a sold-out 409, broken connections.
    pub errors: u64,
    /// Orders refused as sold out (409).
    pub sold_out: u64,
    pub elapsed_s: f64,
    /// `requests` per second.
    pub rps: f64,
    pub latency: LatencySummary,
    pub hit_ratio: f64,
    pub goal: Option<Goal>,
    pub goal_met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub connections: usize,
    pub duration_s: f64,
    /// Which cluster was measured, in words.
    pub cluster: String,
    pub phases: Vec<Phase>,
}

impl LoadReport {
    pub fn errors(&self) -> u64 {
        self.phases.iter().map(|p| p.errors).sum()
    }

    /// `workload`'s phases at the most connections and at one, when both were measured.
    pub fn at_most_and_one(&self, workload: Workload) -> Option<[&Phase; 2]> {
        let phase = |connections| {
            self.phases
                .iter()
                .find(|p| p.workload == workload && p.connections == connections)
        };
        Some([phase(self.connections)?, phase(1)?])
    }
}

/// Each workload runs twice: on the many connections, then on one.
const RUNS_PER_WORKLOAD: usize = 2;

/// How many phases [`run_load`] runs: three workloads and the bare server on clusters of its
/// own; a query (and the bare server beside cached ones) and orders on a running cluster.
pub fn phase_count(target: Target<'_>, etcd: bool, tls: bool) -> usize {
    let workloads = match target {
        Target::Own { .. } => 4 + usize::from(tls),
        Target::Running(state) => {
            let cached = state.running().ok().is_some_and(|spec| {
                super::CacheMode::of_size(recorded_cache_size(&spec)) == super::CacheMode::On
            });
            2 + usize::from(cached)
        }
    };
    (workloads + usize::from(etcd)) * RUNS_PER_WORKLOAD
}

/// Runs every phase: against clusters of its own (one with the cache on for cached queries and
/// orders, one with it off for uncached queries), or against the running cluster with the cache
/// it has.
pub fn run_load(
    options: &LoadOptions,
    target: Target<'_>,
    progress: &dyn Progress,
) -> Result<LoadReport> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ToolError::cannot("start the load generator", e))?;
    let driver = Driver {
        options,
        runtime: &runtime,
        progress,
    };
    let (cluster, phases) = match target {
        Target::Own { exe } => driver.own_clusters(exe)?,
        Target::Running(state) => driver.running_cluster(state)?,
    };
    let mut report = LoadReport {
        connections: options.connections,
        duration_s: options.duration.as_secs_f64(),
        cluster,
        phases,
    };
    if let Some(exe) = &options.etcd {
        progress.message("starting three etcd members");
        let etcd = super::etcd::Etcd::start(exe)?;
        let leader = etcd.leader_url()?;
        report.cluster.push_str(
            "; etcd: three members on loopback started by the bench, puts sent to the leader",
        );
        let puts = driver.phases(&leader, &[Workload::EtcdPut], 0)?;
        report.phases.extend(puts);
    }
    Ok(report)
}

struct Driver<'a> {
    options: &'a LoadOptions,
    runtime: &'a tokio::runtime::Runtime,
    progress: &'a dyn Progress,
}

impl Driver<'_> {
    /// Every workload on clusters of the bench's own: one with the cache on for cached queries
    /// (and the bare server beside them) and orders, one with it off for uncached queries.
    /// Returns what was measured on, and the phases.
    fn own_clusters(&self, exe: &std::path::Path) -> Result<(String, Vec<Phase>)> {
        let options = self.options;
        let mut cluster = format!(
            "clusters started by the bench: cache of {} entries for cached queries and orders, \
             cache off for uncached queries; {} units of each toy",
            options.cache_size,
            super::BENCH_STOCK
        );
        let mut phases = with_own_cluster(exe, options.cache_size, |frontend| {
            self.cached_and_orders(exe, frontend)
        })?;
        let uncached = with_own_cluster(exe, 0, |frontend| {
            self.phases(frontend, &[Workload::UncachedQuery], 0)
        })?;
        // After the cached queries and the bare server beside them.
        phases.splice(4..4, uncached);
        if options.tls {
            cluster.push_str(
                "; orders with TLS between services on a cluster of their own, measured in turn \
                 with the orders without while both clusters run",
            );
        }
        Ok((cluster, phases))
    }

    /// The running cluster in `state`, with the cache it has: its query (beside the bare server
    /// when cached), then orders.
    fn running_cluster(&self, state: &crate::cluster::StateDir) -> Result<(String, Vec<Phase>)> {
        let spec = state.running()?;
        // Its public API in plain HTTP, as its clients use it, TLS between services or not.
        let frontend = spec.frontend_url().replacen("https://", "http://", 1);
        let capacity = recorded_cache_size(&spec);
        let cluster = format!(
            "the running cluster in {} (cache of {capacity} entries)",
            state.root().display()
        );
        let mut phases = match super::CacheMode::of_size(capacity) {
            super::CacheMode::On => self.cached_beside_bare(&frontend, capacity)?,
            super::CacheMode::Off => {
                self.phases(&frontend, &[Workload::UncachedQuery], capacity)?
            }
        };
        phases.extend(self.phases(&frontend, &[Workload::Order], capacity)?);
        Ok((cluster, phases))
    }

    /// Each workload with many connections, then with one, sent to `base` (a front end, or an
    /// etcd member for [`Workload::EtcdPut`]).
    fn phases(&self, base: &str, workloads: &[Workload], cache_size: usize) -> Result<Vec<Phase>> {
        let mut phases = Vec::new();
        for &workload in workloads {
            for connections in [self.options.connections, 1] {
                phases.push(self.phase(base, workload, connections, cache_size)?);
            }
        }
        Ok(phases)
    }

    /// Cached queries at `frontend`, and the same requests to a bare warp server that gives
    /// the same reply, measured in turn at each number of connections so that a noisy
    /// machine's drift falls on both alike: the cached queries' phases, then the bare server's.
    fn cached_beside_bare(&self, frontend: &str, cache_size: usize) -> Result<Vec<Phase>> {
        let toys = crate::client::catalog_products();
        let url = format!(
            "{frontend}/products/{}",
            crate::http::encode_segment(&toys[0])
        );
        let agent = crate::tool_http::agent();
        let reply = crate::tool_http::get(&agent, &url).map_err(|e| ToolError::remote(&url, e))?;
        let product = reply
            .json::<crate::wire::Data<crate::wire::Product>>()
            .ok_or_else(|| ToolError::Unexpected {
                url: url.clone(),
                body: reply.body.clone(),
            })?
            .data;
        let bare = super::bare::BareServer::start(&product)?;
        let (mut cached, mut beside) = (Vec::new(), Vec::new());
        for connections in [self.options.connections, 1] {
            cached.push(self.phase(frontend, Workload::CachedQuery, connections, cache_size)?);
            beside.push(self.phase(bare.url(), Workload::BareWarp, connections, cache_size)?);
        }
        cached.extend(beside);
        Ok(cached)
    }

    /// One workload on `connections`, warmed up, then measured.
    fn phase(
        &self,
        base: &str,
        workload: Workload,
        connections: usize,
        cache_size: usize,
    ) -> Result<Phase> {
        let toys = crate::client::catalog_products();
        let requests = Arc::new(prepare(workload, &toys, cache_size, base));
        // Only a front end has a cache to count hits in.
        let cache = || match workload {
            Workload::EtcdPut | Workload::BareWarp => Ok(crate::wire::CacheStats::default()),
            _ => frontend_cache(base),
        };
        self.progress.message(&format!(
            "{}, {connections} connection{}",
            workload.label(),
            if connections == 1 { "" } else { "s" }
        ));
        let client = PeerClient::for_load(connections, None);
        let run = |duration| {
            self.runtime
                .block_on(drive(&client, requests.clone(), connections, duration))
        };
        run(self.options.warmup);
        let before = cache()?;
        let counts = run(self.options.duration);
        let after = cache()?;
        self.progress.advance(1);
        let goal = goal_for(&self.options.goals, workload, connections);
        Ok(counts.into_phase(workload, connections, goal, &before, &after))
    }

    /// Cached queries, then orders; with [`LoadOptions::tls`], orders on a second cluster
    /// whose services speak mutual TLS too, measured in turn with the first's while both run,
    /// so that a noisy machine's drift falls on both alike.
    fn cached_and_orders(&self, exe: &std::path::Path, frontend: &str) -> Result<Vec<Phase>> {
        let cache_size = self.options.cache_size;
        let mut phases = self.cached_beside_bare(frontend, cache_size)?;
        if !self.options.tls {
            phases.extend(self.phases(frontend, &[Workload::Order], cache_size)?);
            return Ok(phases);
        }
        with_own_tls_cluster(exe, cache_size, |tls| {
            let (mut plain, mut with_tls) = (Vec::new(), Vec::new());
            for connections in [self.options.connections, 1] {
                plain.push(self.phase(frontend, Workload::Order, connections, cache_size)?);
                with_tls.push(self.phase(tls, Workload::OrderTls, connections, cache_size)?);
            }
            phases.extend(plain);
            phases.extend(with_tls);
            Ok(phases)
        })
    }
}

/// One request of a workload, sent again and again.
struct Template {
    method: Method,
    path: String,
    body: Bytes,
}

/// The requests of `workload` to `base`, one per toy it touches (one per key for etcd).
fn prepare(workload: Workload, toys: &[String], cache_size: usize, base: &str) -> RequestSet {
    let hot = match workload {
        // Only as many toys as the cache holds, so that every query after the warm-up hits.
        Workload::CachedQuery | Workload::BareWarp => &toys[..cache_size.clamp(1, toys.len())],
        _ => toys,
    };
    let requests = hot
        .iter()
        .map(|toy| match workload {
            Workload::CachedQuery | Workload::BareWarp | Workload::UncachedQuery => Template {
                method: Method::GET,
                path: format!("/products/{}", crate::http::encode_segment(toy)),
                body: Bytes::new(),
            },
            Workload::Order | Workload::OrderTls => Template {
                method: Method::POST,
                path: "/orders".into(),
                body: Bytes::from(serde_json::json!({ "name": toy, "quantity": 1 }).to_string()),
            },
            Workload::EtcdPut => Template {
                method: Method::POST,
                path: "/v3/kv/put".into(),
                body: Bytes::from(super::etcd::put_body(
                    toys.iter().position(|t| t == toy).unwrap_or(0),
                    ETCD_VALUE_BYTES,
                )),
            },
        })
        .collect();
    RequestSet {
        base: base.trim_end_matches('/').to_string(),
        requests,
    }
}

/// The requests of a workload, sent in turn, and the base URL they go to.
struct RequestSet {
    base: String,
    requests: Vec<Template>,
}

impl RequestSet {
    fn request(&self, i: usize) -> Request<Full<Bytes>> {
        let template = &self.requests[i % self.requests.len()];
        let mut builder = Request::builder()
            .method(template.method.clone())
            .uri(format!("{}{}", self.base, template.path));
        if !template.body.is_empty() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        builder
            .body(Full::new(template.body.clone()))
            .unwrap_or_default()
    }
}

/// What the connections of one phase counted.
#[derive(Default)]
struct Counts {
    ok: u64,
    errors: u64,
    sold_out: u64,
    latencies: Latencies,
    elapsed: Duration,
}

impl Counts {
    fn merge(&mut self, other: Counts) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.sold_out += other.sold_out;
        self.latencies.merge(&other.latencies);
    }

    fn into_phase(
        self,
        workload: Workload,
        connections: usize,
        goal: Option<Goal>,
        before: &crate::wire::CacheStats,
        after: &crate::wire::CacheStats,
    ) -> Phase {
        let elapsed_s = self.elapsed.as_secs_f64();
        let mut phase = Phase {
            workload,
            connections,
            requests: self.ok,
            errors: self.errors,
            sold_out: self.sold_out,
            elapsed_s,
            rps: if elapsed_s > 0.0 {
                self.ok as f64 / elapsed_s
            } else {
                0.0
            },
            latency: self.latencies.summary(),
            hit_ratio: hit_ratio(before, after),
            goal,
            goal_met: None,
        };
        phase.goal_met = phase.goal.map(|g| g.met_by(&phase));
        phase
    }
}

/// Keeps `connections` connections busy for `duration`.
async fn drive(
    client: &PeerClient,
    requests: Arc<RequestSet>,
    connections: usize,
    duration: Duration,
) -> Counts {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let client = client.clone();
            let requests = requests.clone();
            tokio::spawn(async move { connection(&client, &requests, i, deadline).await })
        })
        .collect();
    let mut total = Counts::default();
    for task in tasks {
        if let Ok(counts) = task.await {
            total.merge(counts);
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// One connection's worth of load: requests back to back until `deadline`, each sent as soon
/// as the one before it is answered.
async fn connection(
    client: &PeerClient,
    requests: &RequestSet,
    first: usize,
    deadline: Instant,
) -> Counts {
    let mut counts = Counts::default();
    let mut next = first;
    while Instant::now() < deadline {
        let request = requests.request(next);
        next += 1;
        let started = Instant::now();
        match client.status_of(request).await {
            Ok(status) if status.is_success() => {
                counts.ok += 1;
                counts.latencies.record(started.elapsed());
            }
            Ok(StatusCode::CONFLICT) => counts.sold_out += 1,
            Ok(_) => counts.errors += 1,
            Err(_) => {
                counts.errors += 1;
                // The front end is down or overwhelmed: do not spin on it.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_is_held_to_the_goal_of_its_workload_and_connections() {
        let goals = [
            PhaseGoal {
                workload: Workload::Order,
                connections: 32,
                goal: Goal::MinRps(6_000.0),
            },
            PhaseGoal {
                workload: Workload::Order,
                connections: 1,
                goal: Goal::MaxP50Us(1_500),
            },
        ];
        assert_eq!(
            goal_for(&goals, Workload::Order, 1),
            Some(Goal::MaxP50Us(1_500))
        );
        assert_eq!(goal_for(&goals, Workload::Order, 16), None);
        assert_eq!(goal_for(&goals, Workload::CachedQuery, 32), None);
    }

    #[test]
    fn a_goal_is_met_or_not() {
        let mut counts = Counts {
            ok: 60_000,
            elapsed: Duration::from_secs(1),
            ..Default::default()
        };
        for us in [50, 60, 70] {
            counts.latencies.record(Duration::from_micros(us));
        }
        let stats = crate::wire::CacheStats::default();
        let goal = Some(Goal::MinRps(45_000.0));
        let phase = counts.into_phase(Workload::CachedQuery, 32, goal, &stats, &stats);
        assert_eq!(phase.rps, 60_000.0);
        assert_eq!(phase.goal_met, Some(true));
        assert!(Goal::MaxP50Us(60).met_by(&phase));
        assert!(!Goal::MaxP50Us(59).met_by(&phase));
        assert!(!Goal::MinRps(60_001.0).met_by(&phase));
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(45_000.0), "45,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
