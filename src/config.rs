//! Topology of a cluster: service names, ids, ports and addresses. The only place ports live.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use crate::error::{Error, Result};

/// Ids of the order replicas; the highest one that can win an election leads.
pub const REPLICA_IDS: [u32; 3] = [1, 2, 3];
/// Port of the front end when nothing else is said; the rest follow from it.
pub const DEFAULT_PORT_BASE: u16 = 8000;
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Largest `--port-base` for which every service's port still fits in a u16.
pub const MAX_PORT_BASE: u16 = u16::MAX - 9 - 3;

pub fn frontend_port(base: u16) -> u16 {
    base
}

pub fn catalog_port(base: u16) -> u16 {
    base + 1
}

/// Order replica `id` listens on base + 9 + id: 8010, 8011, 8012 for the default base.
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

pub fn url(host: &str, port: u16) -> String {
    format!("http://{host}:{port}")
}

/// An order replica as its peers and the front end know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaAddr {
    pub id: u32,
    pub url: String,
}

/// Parses `ID=ADDR` (for example `3=127.0.0.1:8012`), the form of `--replica` and `--peer`.
pub fn parse_replica_addr(s: &str) -> Result<ReplicaAddr, String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("expected ID=ADDRESS, like 3=127.0.0.1:8012, got '{s}'"))?;
    let id: u32 = id
        .trim()
        .parse()
        .map_err(|_| format!("replica id '{id}' is not a positive whole number"))?;
    if id == 0 {
        return Err("replica ids start at 1".into());
    }
    if addr.trim().is_empty() {
        return Err(format!("replica {id} has an empty address"));
    }
    Ok(ReplicaAddr {
        id,
        url: base_url(addr),
    })
}

/// The replicas of a cluster on `host` with ports from `base`.
pub fn replica_addrs(host: &str, base: u16) -> Vec<ReplicaAddr> {
    REPLICA_IDS
        .iter()
        .map(|&id| ReplicaAddr {
            id,
            url: url(host, replica_port(base, id)),
        })
        .collect()
}

/// Parses a duration such as `250ms`, `1s`, `1.5s` or `2m`; a bare number is seconds.
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
        _ => return Err(format!("'{s}' has an unknown unit; use ms, s or m")),
    };
    if !seconds.is_finite() || !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("'{s}' is out of range (0 to 24 hours)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// True when every port a cluster on `base` needs can be bound on `host` right now.
pub fn ports_free(host: &str, base: u16) -> std::result::Result<(), u16> {
    let mut ports = vec![frontend_port(base), catalog_port(base)];
    ports.extend(REPLICA_IDS.iter().map(|&id| replica_port(base, id)));
    for port in ports {
        if TcpListener::bind((host, port)).is_err() {
            return Err(port);
        }
    }
    Ok(())
}

/// Finds a port base whose five ports are free, for demos and tests that must not collide.
pub fn find_free_port_base(host: &str) -> Result<u16> {
    for _ in 0..200 {
        let probe = TcpListener::bind((host, 0)).map_err(|e| Error::Bind {
            addr: format!("{host}:0"),
            source: e,
        })?;
        let port = probe
            .local_addr()
            .map(|a: SocketAddr| a.port())
            .unwrap_or(0);
        drop(probe);
        // Keep the block below the ephemeral range's top and away from well-known ports.
        let base = port.clamp(10_000, MAX_PORT_BASE.min(60_000));
        if ports_free(host, base).is_ok() {
            return Ok(base);
        }
    }
    Err(Error::Cluster(format!(
        "could not find five free ports on {host}; pass --port-base"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_follow_the_base() {
        assert_eq!(frontend_port(8000), 8000);
        assert_eq!(catalog_port(8000), 8001);
        assert_eq!(replica_port(8000, 1), 8010);
        assert_eq!(replica_port(8000, 3), 8012);
    }

    #[test]
    fn replica_addresses_parse() {
        let r = parse_replica_addr("3=127.0.0.1:8012").unwrap();
        assert_eq!(r.id, 3);
        assert_eq!(r.url, "http://127.0.0.1:8012");
        assert!(parse_replica_addr("x=1").is_err());
        assert!(parse_replica_addr("0=a:1").is_err());
        assert!(parse_replica_addr("127.0.0.1:8012").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
