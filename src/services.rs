//! What each service is started with. One typed options struct per service is at once its
//! command line (clap `Args`, so `storectl serve …` parses it), its record in `cluster.json`
//! (serde), and what the service reads when it opens. `up` and `restart` turn a record back into
//! the child's command line with [`ServiceConfig::to_argv`].
//!
//! A flag is declared once, here: its field's serde name is its long flag, so the argv follows
//! from the record, and a round-trip test checks that clap reads back what was written.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use crate::cluster_file::ClusterFile;
use crate::config::{self, defaults, HumanDuration};
pub use crate::raft::identity::StartMode;

pub use crate::config::ServiceName;

/// Where a service finds the other services, and where it listens.
#[derive(Debug, Clone, PartialEq, Eq, Default, Args, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Placement {
    /// The cluster file that names every service's address, the same on every host (default:
    /// one host, 127.0.0.1, the front end on 8000, the catalog on 8001, replicas on 8010-8012)
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<PathBuf>,
    /// Listen on this address instead of this service's own in the cluster file (e.g.
    /// 0.0.0.0:8010 to listen on every interface)
    #[arg(long, value_name = "ADDRESS")]
    pub listen: Option<String>,
}

impl Placement {
    /// The cluster file, or the default cluster on this host.
    pub fn cluster_file(&self) -> crate::Result<ClusterFile> {
        crate::cluster_file::load_or_local(self.cluster.as_ref())
    }

    /// Where to listen: `--listen`, or `own` (the service's address in the cluster file).
    pub fn listen_address(&self, own: &str) -> String {
        self.listen.clone().unwrap_or_else(|| own.to_string())
    }

    /// How to name the cluster file in a message.
    pub fn file_name(&self) -> String {
        match &self.cluster {
            Some(path) => path.display().to_string(),
            None => "the default cluster".into(),
        }
    }
}

/// `storectl serve catalog`: one catalog replica: the stock, buys, restocks, invalidations.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CatalogOptions {
    /// This replica's [[catalog]] entry in the cluster file (needed when it has several; 1, 2 or
    /// 3 in a cluster `up` starts); the highest id that can win an election leads
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=config::MAX_REPLICA_ID as i64))]
    pub id: Option<u32>,
    #[command(flatten)]
    #[serde(flatten)]
    pub placement: Placement,
    /// Directory of the replica's files: catalog-raft-ID.log, catalog-snapshot-ID.json,
    /// catalog-ID.csv (a catalog.csv there is the stock a new catalog starts from)
    #[arg(long, default_value = ".")]
    pub data_dir: PathBuf,
    /// How often sold-out toys are restocked to 100 (e.g. 10s, 500ms)
    #[arg(long, default_value_t = defaults::RESTOCK_INTERVAL)]
    pub restock_interval: HumanDuration,
    /// Units of each toy in a new catalog (default: the seed's, 100 in the built-in stock)
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=config::MAX_INITIAL_STOCK))]
    pub initial_stock: Option<u64>,
    #[command(flatten)]
    #[serde(flatten)]
    pub start: StartMode,
}

/// `storectl serve frontend`: the public API, the product cache, following the order leader.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FrontendOptions {
    /// Which [[frontend]] entry of the cluster file this is (needed when it has several)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=config::MAX_REPLICA_ID as i64))]
    pub id: Option<u32>,
    #[command(flatten)]
    #[serde(flatten)]
    pub placement: Placement,
    /// Product replies the LRU cache holds (0 to 1000000); 0 turns the cache off
    #[arg(long, default_value_t = defaults::CACHE_SIZE, value_parser = config::parse_cache_size)]
    pub cache_size: usize,
    /// How often every order replica is asked who leads
    #[arg(long, default_value_t = defaults::HEALTH_INTERVAL)]
    pub health_interval: HumanDuration,
    /// How long an order is retried on new leaders before the client gets 503 (at least 10s:
    /// longer than the front end waits for one order)
    #[arg(long, default_value_t = defaults::FAILOVER_TIMEOUT)]
    pub failover_timeout: HumanDuration,
    /// How long a client may take to send a request's headers before its connection is closed
    /// (also how long an idle keep-alive connection stays open)
    #[arg(long, default_value_t = defaults::HEADER_READ_TIMEOUT)]
    pub header_read_timeout: HumanDuration,
    /// Serve the public API over HTTPS with this certificate (PEM, from any CA, e.g. one the
    /// shoppers' browsers trust); plain HTTP to this front end is then refused
    #[arg(long, value_name = "FILE", requires = "public_tls_key")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_tls_cert: Option<PathBuf>,
    /// The key of --public-tls-cert (PEM)
    #[arg(long, value_name = "FILE", requires = "public_tls_cert")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_tls_key: Option<PathBuf>,
}

impl FrontendOptions {
    /// The certificate of its public API, when it serves HTTPS.
    pub fn public_tls(&self) -> Option<crate::transport::PublicTls> {
        Some(crate::transport::PublicTls {
            cert: self.public_tls_cert.clone()?,
            key: self.public_tls_key.clone()?,
        })
    }
}

/// `storectl serve order`: one order replica, with its own orders-N.csv.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct OrderOptions {
    /// This replica's [[order]] entry in the cluster file (1 to 255; 1, 2 or 3 in a cluster `up`
    /// starts); the highest id that can win an election leads
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=config::MAX_REPLICA_ID as i64))]
    pub id: u32,
    #[command(flatten)]
    #[serde(flatten)]
    pub placement: Placement,
    /// Directory of the replica's files: raft-ID.log, snapshot-ID.json, orders-ID.csv,
    /// identity-ID.json
    #[arg(long, default_value = ".")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    #[serde(flatten)]
    pub start: StartMode,
}

/// `storectl serve` alone: what a service runs with when only `flags` are given, every other
/// option at its flag's default.
#[derive(Debug, clap::Parser)]
struct Serve {
    #[command(subcommand)]
    service: ServiceConfig,
}

impl Serve {
    fn with(flags: &[&str]) -> ServiceConfig {
        let argv = ["serve"].iter().chain(flags);
        <Serve as clap::Parser>::parse_from(argv).service
    }
}

impl Default for CatalogOptions {
    /// The flags' own defaults, so that they are written once.
    fn default() -> Self {
        match Serve::with(&["catalog"]) {
            ServiceConfig::Catalog(options) => options,
            _ => unreachable!("`serve catalog` parses as the catalog"),
        }
    }
}

impl Default for FrontendOptions {
    /// The flags' own defaults, so that they are written once.
    fn default() -> Self {
        match Serve::with(&["frontend"]) {
            ServiceConfig::Frontend(options) => options,
            _ => unreachable!("`serve frontend` parses as the front end"),
        }
    }
}

impl FrontendOptions {
    /// Checks that the timeouts fit the cluster's table (see [`crate::timeouts`]).
    pub fn check(&self, replicas: usize) -> Result<(), String> {
        crate::timeouts::check(
            replicas,
            self.failover_timeout.get(),
            self.header_read_timeout.get(),
        )
    }
}

impl OrderOptions {
    /// Replica `id` with every other option at its flag's default.
    pub fn with_id(id: u32) -> Self {
        match Serve::with(&["order", "--id", &id.to_string()]) {
            ServiceConfig::Order(options) => options,
            _ => unreachable!("`serve order` parses as an order replica"),
        }
    }
}

/// One service and what it is started with: the subcommands of `storectl serve`, and a service's
/// record in `cluster.json`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand, Serialize, Deserialize)]
#[serde(tag = "service", rename_all = "kebab-case")]
pub enum ServiceConfig {
    /// One catalog replica: the stock, buys, restocks, cache invalidations
    #[command(after_help = "Examples:
  storectl serve catalog --id 3 --data-dir /var/lib/storectl     the default cluster on this host
  STORECTL_CLUSTER_SECRET=$(cat secret) \\
      storectl serve catalog --cluster cluster.toml --id 1 --data-dir /var/lib/storectl")]
    Catalog(CatalogOptions),
    /// The front end: the public API, the product cache, following the order leader
    #[command(after_help = "Examples:
  storectl serve frontend --cluster cluster.toml             the only [[frontend]] entry
  storectl serve frontend --cluster cluster.toml --id 2 --listen 0.0.0.0:8000")]
    Frontend(FrontendOptions),
    /// One order replica, with its own orders-N.csv
    #[command(after_help = "Example:
  STORECTL_CLUSTER_SECRET=$(cat secret) \\
      storectl serve order --cluster cluster.toml --id 3 --data-dir /var/lib/storectl")]
    Order(OrderOptions),
}

impl ServiceConfig {
    pub fn name(&self) -> ServiceName {
        match self {
            ServiceConfig::Catalog(o) => ServiceName::Catalog(o.id.unwrap_or(1)),
            ServiceConfig::Frontend(o) => ServiceName::Frontend(o.id),
            ServiceConfig::Order(o) => ServiceName::Order(o.id),
        }
    }

    /// How a replica starts without data; `None` for a front end, which keeps none.
    pub fn start(&self) -> Option<StartMode> {
        match self {
            ServiceConfig::Order(o) => Some(o.start),
            ServiceConfig::Catalog(c) => Some(c.start),
            ServiceConfig::Frontend(_) => None,
        }
    }

    /// A replica's start mode, to set; `None` for a front end.
    pub fn start_mut(&mut self) -> Option<&mut StartMode> {
        match self {
            ServiceConfig::Order(o) => Some(&mut o.start),
            ServiceConfig::Catalog(c) => Some(&mut c.start),
            ServiceConfig::Frontend(_) => None,
        }
    }

    pub fn placement(&self) -> &Placement {
        match self {
            ServiceConfig::Catalog(o) => &o.placement,
            ServiceConfig::Frontend(o) => &o.placement,
            ServiceConfig::Order(o) => &o.placement,
        }
    }

    /// The arguments after the executable that start this service: `serve <service> --flag
    /// value …`, every field of the record as its flag (a list repeats its flag, `None` is left
    /// out).
    pub fn to_argv(&self) -> Vec<String> {
        let record = serde_json::to_value(self).unwrap_or_default();
        let mut argv = vec!["serve".to_string()];
        let Some(fields) = record.as_object() else {
            return argv;
        };
        if let Some(service) = fields.get("service").and_then(|s| s.as_str()) {
            argv.push(service.to_string());
        }
        for (flag, value) in fields.iter().filter(|(name, _)| *name != "service") {
            let values = match value {
                serde_json::Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            for value in values {
                match value {
                    serde_json::Value::Null | serde_json::Value::Bool(false) => {}
                    serde_json::Value::Bool(true) => argv.push(format!("--{flag}")),
                    serde_json::Value::String(text) => {
                        argv.extend([format!("--{flag}"), text]);
                    }
                    other => argv.extend([format!("--{flag}"), other.to_string()]),
                }
            }
        }
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    /// Parses an argv that [`ServiceConfig::to_argv`] wrote, as `storectl` would.
    fn parse(argv: &[String]) -> ServiceConfig {
        let args = std::iter::once("storectl").chain(argv[1..].iter().map(String::as_str));
        Serve::try_parse_from(args)
            .unwrap_or_else(|e| panic!("{argv:?} does not parse: {e}"))
            .service
    }

    fn placement() -> Placement {
        Placement {
            cluster: Some("/etc/storectl/cluster.toml".into()),
            listen: Some("0.0.0.0:9000".into()),
        }
    }

    /// Every field set away from its default, so that a flag lost on the way shows.
    fn unusual() -> [ServiceConfig; 3] {
        let slow = |ms| HumanDuration(Duration::from_millis(ms));
        [
            ServiceConfig::Catalog(CatalogOptions {
                id: Some(3),
                placement: placement(),
                data_dir: "/srv/store dir".into(),
                restock_interval: slow(2500),
                initial_stock: Some(7),
                start: StartMode {
                    init: true,
                    join: false,
                },
            }),
            ServiceConfig::Frontend(FrontendOptions {
                id: Some(2),
                placement: placement(),
                cache_size: 0,
                health_interval: slow(50),
                failover_timeout: slow(12_000),
                header_read_timeout: slow(1_500),
                public_tls_cert: Some("/etc/storectl/shop.pem".into()),
                public_tls_key: Some("/etc/storectl/shop-key.pem".into()),
            }),
            ServiceConfig::Order(OrderOptions {
                id: 7,
                placement: placement(),
                data_dir: "/srv/store".into(),
                start: StartMode {
                    init: false,
                    join: true,
                },
            }),
        ]
    }

    #[test]
    fn every_service_reads_back_the_command_line_its_record_writes() {
        for config in unusual() {
            let argv = config.to_argv();
            assert_eq!(parse(&argv), config, "{argv:?}");
        }
    }

    #[test]
    fn a_record_reads_back_what_it_writes() {
        for config in unusual() {
            let json = serde_json::to_string(&config).unwrap();
            let back: ServiceConfig = serde_json::from_str(&json).unwrap();
            assert_eq!(back, config, "{json}");
        }
    }

    #[test]
    fn the_defaults_are_the_documented_cluster() {
        let frontend = FrontendOptions::default();
        assert_eq!(frontend.cache_size, defaults::CACHE_SIZE);
        assert_eq!(frontend.placement, Placement::default());
        let file = frontend.placement.cluster_file().unwrap();
        assert_eq!(file.catalogs()[2].url, "http://127.0.0.1:8005");
        assert_eq!(file.order_entry(2).unwrap().address, "127.0.0.1:8011");
        assert_eq!(OrderOptions::with_id(2).id, 2);
        assert_eq!(
            CatalogOptions::default().restock_interval,
            defaults::RESTOCK_INTERVAL
        );
    }

    #[test]
    fn service_names_read_back_what_they_write() {
        for name in [
            ServiceName::Catalog(1),
            ServiceName::Frontend(None),
            ServiceName::Frontend(Some(2)),
            ServiceName::Order(3),
        ] {
            assert_eq!(name.to_string().parse::<ServiceName>(), Ok(name));
        }
        assert!("order-0".parse::<ServiceName>().is_err());
        assert!("order-x".parse::<ServiceName>().is_err());
        assert!("frontend-".parse::<ServiceName>().is_err());
        assert!("leader".parse::<ServiceName>().is_err());
        assert!("catalog".parse::<ServiceName>().is_err(), "which replica?");
    }
}
