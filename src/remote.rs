//! Checking a cluster from anywhere: `status --cluster FILE` and `verify-logs --cluster FILE`
//! ask the services over the network, with the cluster's secret, so a cluster spread over hosts
//! can be checked from any of them.

use std::path::PathBuf;

use serde::Serialize;

use crate::cluster_file::ClusterFile;
use crate::conservation::StockCheck;
use crate::error::Result;
use crate::secret::Secret;
use crate::services::ServiceName;
use crate::tool_http;
use crate::verify::Comparison;

/// One replica as the check found it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReplicaCopy {
    pub name: ServiceName,
    pub address: String,
    /// Orders it has applied; `None` when it could not be asked.
    pub orders: Option<u64>,
    /// FNV-1a 64 of its orders file, in hex: equal digests, identical files.
    pub digest: Option<String>,
    /// Why it could not be asked.
    pub error: Option<String>,
}

/// What `verify-logs --cluster` found.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteCheck {
    pub replicas: Vec<ReplicaCopy>,
    /// The comparison of the replicas that answered.
    pub comparison: Option<Comparison>,
    pub stock: Option<StockCheck>,
}

impl RemoteCheck {
    /// Every replica answered, none contradicts another, and stock (when checked) was conserved.
    pub fn ok(&self) -> bool {
        self.replicas.iter().all(|r| r.error.is_none())
            && self.comparison.as_ref().is_some_and(Comparison::consistent)
            && self.stock.as_ref().is_none_or(StockCheck::ok)
    }

    pub fn unreachable(&self) -> impl Iterator<Item = &ReplicaCopy> {
        self.replicas.iter().filter(|r| r.error.is_some())
    }
}

impl std::fmt::Display for RemoteCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for r in &self.replicas {
            match (&r.orders, &r.digest, &r.error) {
                (Some(orders), Some(digest), _) => writeln!(
                    f,
                    "{:<8} {:<21} {orders:>8} orders  digest {digest}",
                    r.name.to_string(),
                    r.address
                )?,
                (_, _, error) => writeln!(
                    f,
                    "{:<8} {:<21} NOT REACHED: {}",
                    r.name.to_string(),
                    r.address,
                    error.as_deref().unwrap_or("no answer")
                )?,
            }
        }
        match &self.comparison {
            Some(comparison) => write!(f, "{comparison}")?,
            None => write!(f, "NOTHING TO COMPARE: no replica answered")?,
        }
        let unreachable: Vec<String> = self.unreachable().map(|r| r.name.to_string()).collect();
        if !unreachable.is_empty() {
            write!(
                f,
                "\nINCOMPLETE: {} could not be asked; check again once it answers",
                unreachable.join(", ")
            )?;
        }
        if let Some(stock) = &self.stock {
            write!(f, "\n{stock}")?;
        }
        Ok(())
    }
}

/// Asks every replica in `topology` for its orders and compares them; with `stock`, also checks
/// the catalog's stock against the longest copy.
pub fn verify(topology: &ClusterFile, secret: &Secret, stock: bool) -> Result<RemoteCheck> {
    let agent = tool_http::agent();
    let mut replicas = Vec::new();
    let mut answered: Vec<(PathBuf, String)> = Vec::new();
    for replica in topology.replicas() {
        let name = ServiceName::Order(replica.id);
        let address = topology.address(name).unwrap_or_default().to_string();
        match replica_orders(&agent, &replica.url, secret) {
            Ok(text) => {
                replicas.push(ReplicaCopy {
                    name,
                    address,
                    orders: Some(text.lines().count().saturating_sub(1) as u64),
                    digest: Some(crate::verify::digest(text.as_bytes())),
                    error: None,
                });
                answered.push((PathBuf::from(name.to_string()), text));
            }
            Err(e) => replicas.push(ReplicaCopy {
                name,
                address,
                orders: None,
                digest: None,
                error: Some(e),
            }),
        }
    }
    let (names, texts): (Vec<PathBuf>, Vec<String>) = answered.into_iter().unzip();
    let comparison = if texts.is_empty() {
        None
    } else {
        Some(crate::verify::compare_texts(&names, &texts)?)
    };
    let stock = match (&comparison, stock) {
        (Some(comparison), true) => {
            let longest = comparison
                .longest()
                .and_then(|name| names.iter().position(|n| n == name))
                .unwrap_or(0);
            let orders =
                crate::order::orders_file::parse(texts[longest].as_bytes(), &names[longest])?;
            let snapshot = crate::conservation::catalog_snapshot(topology, Some(secret))?;
            let mut check = crate::conservation::check_snapshot(snapshot, &orders);
            check.catalogs = catalog_files(topology, secret);
            Some(check)
        }
        _ => None,
    };
    Ok(RemoteCheck {
        replicas,
        comparison,
        stock,
    })
}

/// The orders file of the replica at `base_url`, or why it could not be had.
fn replica_orders(
    agent: &ureq::Agent,
    base_url: &str,
    secret: &Secret,
) -> std::result::Result<String, String> {
    let url = format!("{base_url}/internal/orders");
    tool_http::get_authorized(agent, &url, Some(secret)).and_then(|r| {
        if r.status == 200 {
            Ok(r.body)
        } else {
            Err(format!("{}: {}", r.status, r.message()))
        }
    })
}

/// Every catalog replica's stock file, asked over the network.
fn catalog_files(topology: &ClusterFile, secret: &Secret) -> Vec<crate::conservation::CatalogCopy> {
    let agent = tool_http::health_agent();
    topology
        .catalogs()
        .into_iter()
        .map(|replica| {
            let url = format!("{}/internal/stock-file", replica.url);
            let bytes = tool_http::get_authorized(&agent, &url, Some(secret))
                .map_err(|e| e.to_string())
                .and_then(|reply| match reply.status {
                    200 => Ok(reply.body.into_bytes()),
                    _ => Err(reply.message()),
                });
            crate::conservation::CatalogCopy::of(format!("catalog-{}", replica.id), bytes)
        })
        .collect()
}
