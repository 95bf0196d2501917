//! What `up` starts: the options of a cluster, and the record of every service they make.

use std::path::Path;

use clap::Args;

use super::ClusterSpec;
use crate::cluster_file::{ClusterFile, MAX_LOCAL_FRONTENDS};
use crate::config::{self, defaults, HumanDuration};
use crate::services::{CatalogOptions, FrontendOptions, OrderOptions, Placement, ServiceConfig};

/// Options of `storectl up`, as flags. [`UpOptions::default`] is what `up` with no flags does.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct UpOptions {
    /// Front end on N (front end i on N+2(i-1)), catalog on N+1, order replica i on N+9+i (1 to
    /// 65523)
    #[arg(long, default_value_t = config::DEFAULT_PORT_BASE,
          value_parser = clap::value_parser!(u16).range(1..=config::MAX_PORT_BASE as i64))]
    pub port_base: u16,
    /// Address every service listens on
    #[arg(long, default_value = config::DEFAULT_HOST)]
    pub host: String,
    /// Order replicas of a new cluster: 1, 3, 5 or 7 (default 3). A cluster that has its files
    /// keeps its members; change them with `storectl member add|remove`
    #[arg(long, value_parser = parse_group_size)]
    pub replicas: Option<u32>,
    /// Catalog replicas of a new cluster: 1, 3, 5 or 7 (default 3)
    #[arg(long, value_parser = parse_group_size)]
    pub catalog_replicas: Option<u32>,
    /// Front ends to start (1 to 5); with more than one they are frontend-1, frontend-2, …
    #[arg(long, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=MAX_LOCAL_FRONTENDS as i64))]
    pub frontends: u32,
    /// Product replies the front end's LRU cache holds (0 to 1000000); 0 turns it off
    #[arg(long, default_value_t = defaults::CACHE_SIZE, value_parser = config::parse_cache_size)]
    pub cache_size: usize,
    /// How often sold-out toys are restocked
    #[arg(long, default_value_t = defaults::RESTOCK_INTERVAL)]
    pub restock_interval: HumanDuration,
    /// Units of each toy in a new catalog (default: the built-in 100; restocks still refill to 100)
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=config::MAX_INITIAL_STOCK))]
    pub initial_stock: Option<u64>,
    /// How often the front end asks every order replica who leads
    #[arg(long, default_value_t = defaults::HEALTH_INTERVAL)]
    pub health_interval: HumanDuration,
    /// How long a client may take to send its request headers to the front end
    #[arg(long, default_value_t = defaults::HEADER_READ_TIMEOUT)]
    pub header_read_timeout: HumanDuration,
    /// Give each service a fault directory under STATE_DIR/faults/ (for tests and
    /// `chaos --fault slow-disk`): a file slow-fsync there holding milliseconds slows that
    /// replica's every fsync until it is removed
    #[arg(long)]
    pub fault_hooks: bool,
    /// Keep every replica's files on a lossy disk (STATE_DIR/disk, one directory per replica,
    /// a FUSE file system; needs root): `chaos --fault power` then loses whatever a replica had
    /// not fsynced, as a real power cut would
    #[arg(long)]
    pub lossy_disk: bool,
    /// Mutual TLS between the services (and the tools): a CA and a certificate per service in
    /// STATE_DIR/tls, made once, named by the cluster file's [tls] table. The front end's
    /// public API speaks both HTTP and HTTPS
    #[arg(long)]
    pub tls: bool,
}

impl Default for UpOptions {
    /// The flags' own defaults, so that they are written once.
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Up {
            #[command(flatten)]
            options: UpOptions,
        }
        <Up as clap::Parser>::parse_from(["up"]).options
    }
}

/// A replica group's size as `up` takes it: odd, so that no size wastes a replica, and at most
/// [`config::MAX_LOCAL_REPLICAS`].
fn parse_group_size(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n % 2 == 1 && n <= config::MAX_LOCAL_REPLICAS => Ok(n),
        _ => Err(format!(
            "'{s}' is not 1, 3, 5 or 7: a group of an even size survives no more failures than \
             the odd size below it"
        )),
    }
}

/// The replicas of each group a plan starts: the order group's ids and the catalog's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Groups {
    pub order: Vec<u32>,
    pub catalog: Vec<u32>,
}

impl Groups {
    /// Ids 1 to N of each group, as `options` size them.
    pub fn sized(options: &UpOptions) -> Self {
        let three = config::REPLICA_IDS.len() as u32;
        Groups {
            order: (1..=options.replicas.unwrap_or(three)).collect(),
            catalog: (1..=options.catalog_replicas.unwrap_or(three)).collect(),
        }
    }
}

/// Works out what every service of a cluster whose files live in `data_dir` is started with:
/// the cluster file `data_dir/cluster.toml`, and every service's options.
pub fn plan(options: &UpOptions, data_dir: &Path) -> ClusterSpec {
    plan_groups(options, &Groups::sized(options), data_dir)
}

/// [`plan`] for the replicas of `groups`, which a cluster's membership changes may have made
/// other than 1 to N.
///
/// Every option `up` does not set keeps its flag's default (`..Default`), so a new flag of a
/// service needs no edit here, even when today every field happens to be set.
#[allow(clippy::needless_update)]
pub fn plan_groups(options: &UpOptions, groups: &Groups, data_dir: &Path) -> ClusterSpec {
    let topology = ClusterFile::local_with(
        &options.host,
        options.port_base,
        options.frontends,
        &groups.order,
        &groups.catalog,
    );
    let placement = Placement {
        cluster: Some(data_dir.join(super::TOPOLOGY_FILE)),
        listen: None,
    };
    // Each replica on a disk of its own, or all in the state directory.
    let replica_dir = |name: crate::services::ServiceName| {
        if options.lossy_disk {
            data_dir
                .join(super::state_dir::LOSSY_MOUNT)
                .join(name.to_string())
        } else {
            data_dir.to_path_buf()
        }
    };
    let mut services: Vec<ServiceConfig> = topology
        .catalog
        .iter()
        .map(|replica| {
            ServiceConfig::Catalog(CatalogOptions {
                id: Some(replica.id),
                placement: placement.clone(),
                data_dir: replica_dir(crate::services::ServiceName::Catalog(replica.id)),
                restock_interval: options.restock_interval,
                initial_stock: options.initial_stock,
                ..CatalogOptions::default()
            })
        })
        .collect();
    services.extend(topology.order.iter().map(|replica| {
        ServiceConfig::Order(OrderOptions {
            placement: placement.clone(),
            data_dir: replica_dir(crate::services::ServiceName::Order(replica.id)),
            ..OrderOptions::with_id(replica.id)
        })
    }));
    let several = topology.frontend.len() > 1;
    services.extend(topology.frontend.iter().map(|frontend| {
        ServiceConfig::Frontend(FrontendOptions {
            id: several.then_some(frontend.id),
            placement: placement.clone(),
            cache_size: options.cache_size,
            health_interval: options.health_interval,
            header_read_timeout: options.header_read_timeout,
            ..FrontendOptions::default()
        })
    }));
    ClusterSpec { topology, services }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::ServiceName;

    #[test]
    fn the_plan_wires_every_service_to_the_cluster_file() {
        let options = UpOptions {
            port_base: 9000,
            ..Default::default()
        };
        let spec = plan(&options, Path::new("/data"));
        let names: Vec<String> = spec.names().map(|n| n.to_string()).collect();
        assert_eq!(
            names,
            [
                "catalog-1",
                "catalog-2",
                "catalog-3",
                "order-1",
                "order-2",
                "order-3",
                "frontend"
            ]
        );
        assert_eq!(spec.address(ServiceName::Order(2)), Some("127.0.0.1:9011"));
        assert_eq!(spec.frontend_url(), "http://127.0.0.1:9000");
        let catalog = spec
            .service(ServiceName::Catalog(3))
            .unwrap()
            .to_argv()
            .join(" ");
        assert!(catalog.starts_with("serve catalog "), "{catalog}");
        assert!(catalog.contains("--id 3"), "{catalog}");
        assert_eq!(
            spec.address(ServiceName::Catalog(3)),
            Some("127.0.0.1:9005")
        );
        assert!(
            catalog.contains("--cluster /data/cluster.toml"),
            "{catalog}"
        );
        assert!(catalog.contains("--restock-interval 10s"), "{catalog}");
    }

    #[test]
    fn several_front_ends_are_numbered_and_spaced_by_two() {
        let options = UpOptions {
            port_base: 9000,
            frontends: 3,
            ..Default::default()
        };
        let spec = plan(&options, Path::new("/data"));
        let frontends: Vec<String> = spec
            .names()
            .filter(|n| n.is_frontend())
            .map(|n| format!("{n}@{}", spec.address(n).unwrap()))
            .collect();
        assert_eq!(
            frontends,
            [
                "frontend-1@127.0.0.1:9000",
                "frontend-2@127.0.0.1:9002",
                "frontend-3@127.0.0.1:9004"
            ]
        );
    }

    #[test]
    fn up_with_no_flags_is_the_documented_cluster() {
        let options = UpOptions::default();
        assert_eq!(options.port_base, 8000);
        assert_eq!(options.frontends, 1);
        assert_eq!(options.cache_size, defaults::CACHE_SIZE);
        assert_eq!(options.restock_interval, defaults::RESTOCK_INTERVAL);
        assert!(!options.fault_hooks);
    }
}
