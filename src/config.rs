//! Topology of a cluster (ids, ports and addresses: the only place ports live), every default a
//! service or `up` starts with, and the value types their flags and records share.

use std::fmt;
use std::net::TcpListener;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};

/// Ids of the replicas of each group `up` starts by default; the highest one that can win an
/// election leads.
pub const REPLICA_IDS: [u32; 3] = [1, 2, 3];
/// Most replicas `up` starts in one group: an odd number, so that a majority is one more than
/// the replicas that may be lost (three of seven).
pub const MAX_LOCAL_REPLICAS: u32 = 7;
/// Port of the front end when nothing else is said; the rest follow from it.
pub const DEFAULT_PORT_BASE: u16 = 8000;
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Largest `--port-base` for which every service's port still fits in a u16.
pub const MAX_PORT_BASE: u16 = u16::MAX - LAST_PORT_OFFSET;
/// The highest port of a one-host cluster's block, above its base: catalog replica 7's.
const LAST_PORT_OFFSET: u16 = 18;
/// Largest `--id` of an order replica: its default port, 8009 + id, must fit.
pub const MAX_REPLICA_ID: u32 = 255;

/// Every default of the services and of `up`, in one place: the flags' defaults, `--help` and
/// [`crate::cluster::UpOptions::default`] all come from here.
pub mod defaults {
    use super::HumanDuration;
    use std::time::Duration;

    /// Product replies the front end's LRU cache holds.
    pub const CACHE_SIZE: usize = 10;
    /// How often the catalog restocks sold-out toys.
    pub const RESTOCK_INTERVAL: HumanDuration = HumanDuration(Duration::from_secs(10));
    /// How often the front end asks every order replica who leads.
    pub const HEALTH_INTERVAL: HumanDuration = HumanDuration(crate::timeouts::HEALTH_POLL);
    /// How long the front end retries an order on new leaders before the client gets 503.
    pub const FAILOVER_TIMEOUT: HumanDuration = HumanDuration(crate::timeouts::FAILOVER);
    /// How long a client may take to send a request's headers (see [`crate::http::serve`]).
    pub const HEADER_READ_TIMEOUT: HumanDuration = HumanDuration(Duration::from_secs(10));
}

/// Largest cache: far beyond any catalog, and small enough that a typo cannot exhaust memory.
pub const MAX_CACHE_SIZE: usize = 1_000_000;
/// Largest `--initial-stock`.
pub const MAX_INITIAL_STOCK: u64 = 1_000_000_000;

/// Parses a cache size from 0 (no cache) to [`MAX_CACHE_SIZE`].
pub fn parse_cache_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n <= MAX_CACHE_SIZE => Ok(n),
        _ => Err(format!(
            "'{s}' is not a cache size from 0 to {MAX_CACHE_SIZE}"
        )),
    }
}

/// Parses the size of a cache that is on: 1 to [`MAX_CACHE_SIZE`].
pub fn parse_cache_size_on(s: &str) -> Result<usize, String> {
    match parse_cache_size(s) {
        Ok(0) | Err(_) => Err(format!(
            "'{s}' is not a cache size from 1 to {MAX_CACHE_SIZE}"
        )),
        Ok(n) => Ok(n),
    }
}

/// Parses a probability, from 0 to 1.
pub fn parse_probability(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("'{s}' is not a probability from 0 to 1")),
    }
}

pub fn frontend_port(base: u16) -> u16 {
    base
}

/// Catalog replica `id` listens on base + 2·id − 1: 8001, 8003, 8005 for the default base, between
/// the front ends' even ports; replicas 6 and 7 on base + 17 and + 18, after the order replicas.
pub fn catalog_port(base: u16, id: u32) -> u16 {
    if id <= 5 {
        base + 2 * id as u16 - 1
    } else {
        base + 11 + id as u16
    }
}

/// Order replica `id` listens on base + 9 + id: 8010, 8011, 8012 for the default base (up to
/// 8016 for replica 7).
pub fn replica_port(base: u16, id: u32) -> u16 {
    base + 9 + id as u16
}

/// Turns `host:port` or a URL into a base URL without a trailing slash.
pub fn base_url(addr: &str) -> String {
    let addr = addr.trim().trim_end_matches('/');
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// The URL of a service at `addr`: `https://` in a cluster that speaks TLS.
pub fn service_url(addr: &str, tls: bool) -> String {
    let url = base_url(addr);
    match (tls, url.strip_prefix("http://")) {
        (true, Some(rest)) => format!("https://{rest}"),
        _ => url,
    }
}

pub fn url(host: &str, port: u16) -> String {
    format!("http://{host}:{port}")
}

/// An order replica as its peers and the front end call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaAddr {
    pub id: u32,
    pub url: String,
}

/// A duration as people write it on a command line and in records: `250ms`, `10s`, `2m`. Never
/// zero: every duration a service takes is an interval or a timeout. Serialised as its
/// `Display` form and read back with `FromStr`, so a record holds what a command line would.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde_with::SerializeDisplay,
    serde_with::DeserializeFromStr,
)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let d = parse_duration(s)?;
        if d.is_zero() {
            return Err("must be more than zero".into());
        }
        if !d.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(format!("'{s}' is finer than a millisecond"));
        }
        Ok(HumanDuration(d))
    }
}

/// Parses a duration such as `250ms`, `1s`, `1.5s`, `2m` or `1h`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{s}' is not a duration; use forms like 500ms, 1s, 1.5s or 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("'{s}' has an unknown unit; use ms, s, m or h")),
    };
    if !seconds.is_finite() || !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("'{s}' is out of range (0 to 24 hours)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// True when every port a cluster on `base` needs can be bound on `host` right now.
pub fn ports_free(host: &str, base: u16) -> std::result::Result<(), u16> {
    // The whole block, so that a cluster there can also grow to its largest size.
    let ports = (0..=LAST_PORT_OFFSET).map(|offset| base + offset);
    for port in ports {
        if TcpListener::bind((host, port)).is_err() {
            return Err(port);
        }
    }
    Ok(())
}

/// Finds a port base whose whole block is free, for demos and tests that must not collide.
///
/// The block lies below the kernel's ephemeral range: a port in that range, once its service
/// stops, can be taken as the local end of any outgoing connection, and a `restart` would find
/// its own port in use.
pub fn find_free_port_base(host: &str) -> Result<u16> {
    let candidates = free_block_range();
    for _ in 0..200 {
        let base = rand::random_range(candidates.clone());
        if ports_free(host, base).is_ok() {
            return Ok(base);
        }
    }
    Err(Error::NoFreePorts {
        host: host.to_string(),
        count: LAST_PORT_OFFSET + 1,
    })
}

/// Bases a chosen block may start at: above the well-known ports, and ending below the
/// ephemeral range where the system says where it starts.
fn free_block_range() -> std::ops::Range<u16> {
    const LOWEST: u16 = 10_000;
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let top = ephemeral_start.saturating_sub(LAST_PORT_OFFSET + 1);
    if top > LOWEST + 1_000 {
        LOWEST..top
    } else {
        // A system whose ephemeral range starts low leaves no room below it.
        LOWEST..MAX_PORT_BASE.min(60_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chosen_block_is_free_and_ends_below_the_ephemeral_range() {
        let range = free_block_range();
        assert!(
            range.start >= 10_000 && range.start < range.end,
            "{range:?}"
        );
        let base = find_free_port_base("127.0.0.1").unwrap();
        assert!(range.contains(&base), "{base} not in {range:?}");
        assert!(ports_free("127.0.0.1", base).is_ok());
        if let Ok(text) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") {
            let start: u16 = text.split_whitespace().next().unwrap().parse().unwrap();
            if start > 12_000 {
                assert!(base + LAST_PORT_OFFSET < start, "{base} reaches {start}");
            }
        }
    }

    #[test]
    fn ports_follow_the_base() {
        assert_eq!(frontend_port(8000), 8000);
        assert_eq!(catalog_port(8000, 1), 8001);
        assert_eq!(catalog_port(8000, 3), 8005);
        assert_eq!(replica_port(8000, 1), 8010);
        assert_eq!(replica_port(8000, 3), 8012);
    }

    #[test]
    fn human_durations_read_back_what_they_write() {
        for text in ["250ms", "10s", "1500ms", "2m"] {
            let d: HumanDuration = text.parse().unwrap();
            assert_eq!(d.to_string().parse::<HumanDuration>().unwrap(), d);
        }
        assert_eq!("2m".parse::<HumanDuration>().unwrap().to_string(), "120s");
        assert!("0s".parse::<HumanDuration>().is_err());
        assert!("1.0000001s".parse::<HumanDuration>().is_err());
        let json = serde_json::to_string(&defaults::HEALTH_INTERVAL).unwrap();
        assert_eq!(json, "\"200ms\"");
    }

    #[test]
    fn cache_sizes_are_bounded() {
        assert_eq!(parse_cache_size("0"), Ok(0));
        assert!(parse_cache_size("1000001").is_err());
        assert!(parse_cache_size_on("0").is_err());
        assert_eq!(parse_cache_size_on("7"), Ok(7));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("25h").is_err());
        assert!(parse_duration("5d").is_err());
    }
}

/// A service of a cluster: the name of its pid file, log, `kill` target and `status` row.
/// Serialised as that name (`order-2`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde_with::SerializeDisplay,
    serde_with::DeserializeFromStr,
)]
pub enum ServiceName {
    /// A catalog replica.
    Catalog(u32),
    Order(u32),
    /// `frontend` when the cluster has one front end, `frontend-N` when it has several.
    Frontend(Option<u32>),
}

impl ServiceName {
    /// The catalog replica's id, for a catalog replica.
    pub fn catalog_id(self) -> Option<u32> {
        match self {
            ServiceName::Catalog(id) => Some(id),
            _ => None,
        }
    }

    /// The order replica's id, for an order replica.
    pub fn replica_id(self) -> Option<u32> {
        match self {
            ServiceName::Order(id) => Some(id),
            _ => None,
        }
    }

    pub fn is_frontend(self) -> bool {
        matches!(self, ServiceName::Frontend(_))
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceName::Catalog(id) => write!(f, "catalog-{id}"),
            ServiceName::Frontend(None) => f.write_str("frontend"),
            ServiceName::Frontend(Some(id)) => write!(f, "frontend-{id}"),
            ServiceName::Order(id) => write!(f, "order-{id}"),
        }
    }
}

impl FromStr for ServiceName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let id = |prefix: &str| {
            s.strip_prefix(prefix)
                .and_then(|id| id.parse().ok())
                .filter(|id| (1..=MAX_REPLICA_ID).contains(id))
        };
        match s {
            "frontend" => Ok(ServiceName::Frontend(None)),
            _ => id("order-")
                .map(ServiceName::Order)
                .or_else(|| id("catalog-").map(ServiceName::Catalog))
                .or_else(|| id("frontend-").map(|id| ServiceName::Frontend(Some(id))))
                .ok_or_else(|| {
                    format!(
                        "'{s}' is not a service; use catalog-N, order-N, frontend or frontend-N"
                    )
                }),
        }
    }
}
