//! storectl: a toy store built as a small replicated system, and the toolkit that runs, breaks
//! and checks it.
//!
//! # Layout
//!
//! - [`wire`]: every request and reply body; the API in one place.
//! - [`config`]: topology (replica ids, ports, addresses), every default, shared value types.
//! - [`services`]: what each service is started with: its flags, its record, its argv.
//! - [`cluster_file`]: the cluster file: every service's address, the same on every host.
//! - [`http`]: the HTTP layer the services share (a catch-all warp filter, JSON replies).
//! - [`metrics`]: every service's `GET /metrics` in the Prometheus text format.
//! - [`peer`]: the pooled async client services (and the load generator) call each other with.
//! - [`group_client`]: calling whichever replica of a group leads.
//! - [`histogram`]: latencies recorded with one atomic add, read from afar.
//! - [`poll`]: waiting for a condition with a deadline.
//! - [`progress`]: how long jobs report their progress.
//! - [`tool_http`]: the blocking HTTP client of the tools.
//! - [`secret`]: the cluster's shared secret, which internal endpoints require.
//! - [`storage`]: atomic file replacement and directory fsync.
//! - [`access`]: why this process may not read or write a file, and what would let it.
//! - [`catalog`]: one replica of the catalog group: the stock, restocks, cache invalidations.
//! - [`raft`]: what every replica group's consensus engine shares: its log on disk, peer RPC.
//! - [`order`]: one replica of the order log on the openraft engine: state machine, orders.
//! - [`frontend`]: the public API, the LRU cache, following the order leader.
//! - [`client`]: the buy loop, its checks and latency summary.
//! - [`cluster`]: a cluster's state directory, spawning, stopping, killing, status.
//! - [`verify`]: comparing the replicas' order files.
//! - [`remote`]: checking a cluster over the network from any host.
//! - [`conservation`]: the stock rule, checked between the catalog group and the order log.
//! - [`chaos`]: replicas killed under client load, and the check that nothing was lost.
//! - [`top`]: what `storectl top` shows, worked out from successive status readings.
//! - [`dashboard`]: `storectl dashboard`: the same view, live in a browser.
//! - [`bench`]: the latency study (CSV, SVG plots, Markdown summary) and the throughput mode.
//! - [`batch`]: work gathered into batches (buys, confirmations, log entries).
//! - [`timeouts`]: every timeout of the cluster, and the orderings between them.
//! - [`fault`]: crash points for tests, off unless an environment variable arms them.

pub mod access;
pub mod batch;
pub mod bench;
pub mod catalog;
pub mod chaos;
pub mod client;
pub mod cluster;
pub mod cluster_file;
pub mod config;
pub mod conservation;
pub mod dashboard;
pub mod error;
pub mod fault;
pub mod frontend;
pub mod group_client;
pub mod histogram;
pub mod http;
#[cfg(feature = "lossy-disk")]
pub mod lossy;
pub mod metrics;
pub mod order;
pub mod peer;
pub mod poll;
pub mod progress;
pub mod raft;
pub mod remote;
pub mod secret;
pub mod services;
pub mod storage;
pub mod timeouts;
pub mod tls;
pub mod tool_error;
pub mod tool_http;
pub mod top;
pub mod transport;
pub mod verify;
pub mod wire;

pub use error::{Error, Result};
