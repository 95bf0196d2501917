//! The cluster file (`docs/deploy.md`): every service's address, one TOML file, the same on every host.
//! Every service finds itself and the others in it; `up` writes one for a cluster on this
//! machine, so one host and many take the same path.
//!
//! ```toml
//! [[catalog]]
//! id = 1
//! address = "10.0.0.1:8001"
//!
//! [[frontend]]
//! id = 1
//! address = "10.0.0.1:8000"
//!
//! [[order]]
//! id = 1
//! address = "10.0.0.2:8010"
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::ServiceName;
use crate::config::{self, ReplicaAddr};
use crate::error::{Access, Error, Result};
use crate::tls::certs::Party;
use crate::tls::{PeerCheck, TlsFiles, TlsTable};

/// Largest number of front ends `up` starts: front end i listens on base + 2(i − 1), below the
/// first replica's base + 10.
pub const MAX_LOCAL_FRONTENDS: u32 = 5;

/// Every service of a cluster and where it listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Names this cluster among others: a replica records it when it first starts and refuses
    /// files of a cluster with another token. `up` draws one; a file without one checks nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Mutual TLS between the services (`docs/security.md`): where each finds the cluster's
    /// CA, its certificate and its key. Without it the services speak plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsTable>,
    /// The catalog's replicas. A file of an older storectl names one catalog in a `[catalog]`
    /// table; it reads as replica 1 of a catalog group of one.
    #[serde(deserialize_with = "one_or_many_catalogs")]
    pub catalog: Vec<Entry>,
    #[serde(default)]
    pub frontend: Vec<Entry>,
    #[serde(default)]
    pub order: Vec<Entry>,
}

/// A `[catalog]` table, as files of a single catalog had it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct SingleCatalog {
    /// `host:port`.
    address: String,
}

fn one_or_many_catalogs<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<Entry>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Catalogs {
        Many(Vec<Entry>),
        One(SingleCatalog),
    }
    match Catalogs::deserialize(deserializer) {
        Ok(Catalogs::Many(entries)) => Ok(entries),
        Ok(Catalogs::One(one)) => Ok(vec![Entry {
            id: 1,
            address: one.address,
        }]),
        Err(_) => Err(serde::de::Error::custom(
            "each [[catalog]] entry takes an id and an address = \"HOST:PORT\"",
        )),
    }
}

/// A catalog replica, a front end or an order replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: u32,
    /// `host:port`.
    pub address: String,
}

impl ClusterFile {
    /// A cluster on one host with three replicas in each group.
    pub fn local(host: &str, base: u16, frontends: u32) -> Self {
        let ids = &config::REPLICA_IDS;
        Self::local_with(host, base, frontends, ids, ids)
    }

    /// A cluster on one host: catalog replica N on [`config::catalog_port`], front end i on
    /// `base` + 2(i − 1), order replica N on `base` + 9 + N.
    pub fn local_with(
        host: &str,
        base: u16,
        frontends: u32,
        orders: &[u32],
        catalogs: &[u32],
    ) -> Self {
        let at = |port: u16| format!("{host}:{port}");
        ClusterFile {
            token: None,
            tls: None,
            catalog: catalogs
                .iter()
                .map(|&id| Entry {
                    id,
                    address: at(config::catalog_port(base, id)),
                })
                .collect(),
            frontend: (1..=frontends)
                .map(|id| Entry {
                    id,
                    address: at(config::frontend_port(base) + 2 * (id as u16 - 1)),
                })
                .collect(),
            order: orders
                .iter()
                .map(|&id| Entry {
                    id,
                    address: at(config::replica_port(base, id)),
                })
                .collect(),
        }
    }

    /// Reads and checks the file at `path`; every error names the file and the entry.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Usage(format!(
                    "no cluster file at {}: write one (see docs/deploy.md) or pass another --cluster",
                    path.display()
                ))
            } else {
                Error::access(path, Access::Read, e)
            }
        })?;
        let mut file: ClusterFile = toml::from_str(&text).map_err(|e| Error::Corrupt {
            path: path.to_path_buf(),
            line: e
                .span()
                .map(|span| text[..span.start].lines().count().max(1) as u64)
                .unwrap_or(0),
            message: e.message().trim().to_string(),
        })?;
        file.check()
            .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        file.tls = file.tls.map(|tls| tls.relative_to(dir));
        Ok(file)
    }

    /// The file as TOML, as [`ClusterFile::load`] reads it.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Writes the file atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = format!(
            "# The cluster: every service's address, the same file on every host.\n{}",
            self.to_toml()
        );
        crate::storage::write_atomic(path, text.as_bytes())
    }

    /// Duplicate ids or addresses, an address that is not `host:port`, no replica.
    fn check(&self) -> Result<(), String> {
        let mut addresses = HashSet::new();
        let mut check_address = |what: String, address: &str| {
            let valid = address
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                return Err(format!(
                    "{what} has address '{address}', which is not HOST:PORT"
                ));
            }
            if !addresses.insert(address.to_string()) {
                return Err(format!(
                    "{what} has address {address}, which another entry has too"
                ));
            }
            Ok(())
        };
        for (table, entries) in [
            ("catalog", &self.catalog),
            ("frontend", &self.frontend),
            ("order", &self.order),
        ] {
            let mut ids = HashSet::new();
            for entry in entries {
                let what = format!("[[{table}]] id {}", entry.id);
                if entry.id == 0 || entry.id > config::MAX_REPLICA_ID {
                    return Err(format!(
                        "{what}: ids run from 1 to {}",
                        config::MAX_REPLICA_ID
                    ));
                }
                if !ids.insert(entry.id) {
                    return Err(format!("two [[{table}]] entries have id {}", entry.id));
                }
                check_address(what, &entry.address)?;
            }
        }
        if self.catalog.is_empty() {
            return Err("no [[catalog]] entry: a cluster needs its catalog replicas".into());
        }
        if self.order.is_empty() {
            return Err("no [[order]] entry: a cluster needs its order replicas".into());
        }
        if self.frontend.is_empty() {
            return Err("no [[frontend]] entry: a cluster needs a front end".into());
        }
        Ok(())
    }

    /// Every catalog replica, as its peers, the front ends and the order leader call it.
    pub fn catalogs(&self) -> Vec<ReplicaAddr> {
        self.addresses(&self.catalog)
    }

    /// Every order replica, as its peers and the front ends call it.
    pub fn replicas(&self) -> Vec<ReplicaAddr> {
        self.addresses(&self.order)
    }

    /// The catalog replica `id`, or the only one when `id` is `None`.
    pub fn catalog_entry(&self, id: Option<u32>) -> Result<&Entry, String> {
        entry(&self.catalog, "catalog", id)
    }

    /// Every front end as the catalog calls it: its id and base URL.
    pub fn frontend_urls(&self) -> Vec<(u32, String)> {
        self.frontend
            .iter()
            .map(|e| (e.id, self.base_url(&e.address)))
            .collect()
    }

    /// The front end `id`, or the only one when `id` is `None`.
    pub fn frontend_entry(&self, id: Option<u32>) -> Result<&Entry, String> {
        entry(&self.frontend, "frontend", id)
    }

    pub fn order_entry(&self, id: u32) -> Result<&Entry, String> {
        self.order
            .iter()
            .find(|e| e.id == id)
            .ok_or_else(|| format!("no [[order]] entry with id {id}"))
    }

    /// The name of front end `id`: `frontend` when it is the only one, `frontend-N` otherwise.
    pub fn frontend_name(&self, id: u32) -> ServiceName {
        if self.frontend.len() == 1 {
            ServiceName::Frontend(None)
        } else {
            ServiceName::Frontend(Some(id))
        }
    }

    /// Every service, with its name and address, catalog replicas first, front ends last.
    pub fn services(&self) -> Vec<(ServiceName, String)> {
        let mut all: Vec<(ServiceName, String)> = self
            .catalog
            .iter()
            .map(|e| (ServiceName::Catalog(e.id), e.address.clone()))
            .collect();
        all.extend(
            self.order
                .iter()
                .map(|e| (ServiceName::Order(e.id), e.address.clone())),
        );
        all.extend(
            self.frontend
                .iter()
                .map(|e| (self.frontend_name(e.id), e.address.clone())),
        );
        all
    }

    /// The address of service `name`.
    pub fn address(&self, name: ServiceName) -> Option<&str> {
        match name {
            ServiceName::Catalog(id) => self
                .catalog_entry(Some(id))
                .ok()
                .map(|e| e.address.as_str()),
            ServiceName::Order(id) => self.order_entry(id).ok().map(|e| e.address.as_str()),
            ServiceName::Frontend(id) => self.frontend_entry(id).ok().map(|e| e.address.as_str()),
        }
    }

    pub fn url(&self, name: ServiceName) -> Option<String> {
        self.address(name).map(|a| self.base_url(a))
    }

    /// The URL of a service at `address`: `https://` when the cluster speaks TLS.
    pub fn base_url(&self, address: &str) -> String {
        config::service_url(address, self.tls.is_some())
    }

    fn addresses(&self, entries: &[Entry]) -> Vec<ReplicaAddr> {
        entries
            .iter()
            .map(|e| ReplicaAddr {
                id: e.id,
                url: self.base_url(&e.address),
            })
            .collect()
    }

    /// The name in `name`'s certificate: a front end is `frontend-N` even when it is the only
    /// one, so that adding a second one changes no certificate.
    pub fn certificate_name(&self, name: ServiceName) -> String {
        match name {
            ServiceName::Frontend(None) => {
                format!("frontend-{}", self.frontend.first().map_or(1, |e| e.id))
            }
            other => other.to_string(),
        }
    }

    /// Every service as `storectl certs` makes certificates for it, and the tools.
    pub fn certificate_parties(&self) -> Vec<Party> {
        let mut parties: Vec<Party> = self
            .services()
            .into_iter()
            .map(|(name, address)| Party {
                name: self.certificate_name(name),
                hosts: vec![host_of(&address).to_string()],
            })
            .collect();
        parties.push(Party {
            name: crate::tls::TOOL_NAME.to_string(),
            hosts: Vec::new(),
        });
        parties
    }

    /// The files of service `name` (or the tools') when the cluster speaks TLS.
    pub fn tls_files(&self, name: &str) -> Option<TlsFiles> {
        self.tls.as_ref().map(|tls| tls.files(name))
    }
}

/// Entry `id` of `[[table]]`, or its only entry when `id` is `None`.
fn entry<'a>(entries: &'a [Entry], table: &str, id: Option<u32>) -> Result<&'a Entry, String> {
    match id {
        Some(id) => entries
            .iter()
            .find(|e| e.id == id)
            .ok_or_else(|| format!("no [[{table}]] entry with id {id}")),
        None => match entries {
            [only] => Ok(only),
            _ => Err(format!(
                "{} [[{table}]] entries: pass --id to say which this is",
                entries.len()
            )),
        },
    }
}

/// The host of `host:port` (an IPv6 address without its brackets).
pub fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The cluster file as a service checks its TLS peers against it: read again whenever it
/// changes on disk, so that a service added to it is let in and one removed is kept out.
pub struct ClusterPeers {
    path: Option<PathBuf>,
    current: parking_lot::Mutex<(Option<std::time::SystemTime>, ClusterFile)>,
}

impl ClusterPeers {
    pub fn new(path: Option<PathBuf>, file: ClusterFile) -> Self {
        let stamp = path.as_deref().and_then(modified);
        ClusterPeers {
            path,
            current: parking_lot::Mutex::new((stamp, file)),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&ClusterFile) -> T) -> T {
        let mut current = self.current.lock();
        if let Some(path) = &self.path {
            let stamp = modified(path);
            if stamp != current.0 {
                match ClusterFile::load(path) {
                    Ok(file) => *current = (stamp, file),
                    Err(e) => {
                        tracing::warn!("{e}; checking peers against the file as it was");
                        current.0 = stamp;
                    }
                }
            }
        }
        f(&current.1)
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl PeerCheck for ClusterPeers {
    fn admit(&self, names: &[String]) -> Option<String> {
        self.read(|file| {
            let known: Vec<String> = file
                .services()
                .into_iter()
                .map(|(name, _)| file.certificate_name(name))
                .chain([crate::tls::TOOL_NAME.to_string()])
                .collect();
            names.iter().find(|n| known.contains(n)).cloned()
        })
    }

    fn services_at(&self, ip: std::net::IpAddr) -> Vec<String> {
        self.read(|file| {
            file.services()
                .into_iter()
                .filter(|(_, address)| host_of(address).parse() == Ok(ip))
                .map(|(name, _)| name.to_string())
                .collect()
        })
    }
}

/// Where a service finds the cluster: `--cluster FILE`, or the default cluster on this host.
pub fn load_or_local(path: Option<&PathBuf>) -> Result<ClusterFile> {
    match path {
        Some(path) => ClusterFile::load(path),
        None => Ok(ClusterFile::local(
            config::DEFAULT_HOST,
            config::DEFAULT_PORT_BASE,
            1,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<ClusterFile> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, text).unwrap();
        ClusterFile::load(&path)
    }

    /// The cluster file of docs/deploy.md, as a user would copy it.
    fn spec_example() -> String {
        let guide = include_str!("../docs/deploy.md");
        let start = guide
            .find("```toml\n")
            .expect("the guide has a cluster file")
            + 8;
        let length = guide[start..].find("```").expect("it ends");
        guide[start..start + length].to_string()
    }

    #[test]
    fn the_specs_example_reads() {
        let file = load_text(&spec_example()).unwrap();
        // The guide's cluster speaks mutual TLS: its services call each other at https://.
        assert_eq!(file.catalogs()[0].url, "https://10.0.0.1:8001");
        assert_eq!(file.catalogs().len(), 3);
        assert_eq!(file.replicas()[2].url, "https://10.0.0.3:8010");
        assert_eq!(
            file.frontend_urls(),
            [
                (1, "https://10.0.0.1:8000".to_string()),
                (2, "https://10.0.0.2:8000".to_string()),
                (3, "https://10.0.0.3:8000".to_string())
            ]
        );
        let files = file.tls_files("order-2").expect("a [tls] table");
        assert!(files.cert.ends_with("tls/order-2.pem"), "{files:?}");
        assert!(files.key.ends_with("tls/order-2-key.pem"), "{files:?}");
        assert_eq!(
            file.frontend_name(2).to_string(),
            "frontend-2",
            "several front ends are numbered"
        );
        assert!(file.frontend_entry(None).is_err(), "which front end?");
    }

    #[test]
    fn a_written_file_reads_back() {
        let file = ClusterFile::local("127.0.0.1", 9000, 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        file.save(&path).unwrap();
        assert_eq!(ClusterFile::load(&path).unwrap(), file);
        assert_eq!(file.frontend[1].address, "127.0.0.1:9002");
        assert_eq!(file.order[0].address, "127.0.0.1:9010");
        assert_eq!(
            ClusterFile::local("127.0.0.1", 9000, 1).frontend_name(1),
            ServiceName::Frontend(None)
        );
    }

    #[test]
    fn bad_files_name_the_file_and_the_entry() {
        let duplicate_address = spec_example().replace("10.0.0.2:8010", "10.0.0.1:8010");
        let err = load_text(&duplicate_address).unwrap_err().to_string();
        assert!(err.contains("cluster.toml"), "{err}");
        assert!(err.contains("[[order]] id 2"), "{err}");
        let duplicate_id = spec_example().replace(
            "id = 2\naddress = \"10.0.0.2:8010",
            "id = 1\naddress = \"10.0.0.2:8010",
        );
        let err = load_text(&duplicate_id).unwrap_err().to_string();
        assert!(err.contains("two [[order]] entries have id 1"), "{err}");
        let err = load_text("[catalog]\naddress = \"x:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no [[order]] entry"), "{err}");
        let err = load_text(&spec_example().replace("10.0.0.1:8001", "nowhere"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[[catalog]] id 1") && err.contains("HOST:PORT"),
            "{err}"
        );
        let err = load_text("[catalog]\naddres = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cluster.toml"), "{err}");
    }

    /// A file written for a single catalog still loads: one catalog replica, id 1.
    #[test]
    fn a_single_catalog_table_reads_as_a_group_of_one() {
        let text = "[catalog]\naddress = \"10.0.0.1:8001\"\n\n[[frontend]]\nid = 1\n\
                    address = \"10.0.0.1:8000\"\n\n[[order]]\nid = 1\naddress = \"10.0.0.2:8010\"\n";
        let file = load_text(text).unwrap();
        assert_eq!(
            file.catalogs(),
            [ReplicaAddr {
                id: 1,
                url: "http://10.0.0.1:8001".into()
            }]
        );
        assert_eq!(
            file.services()[0].0,
            ServiceName::Catalog(1),
            "named catalog-1"
        );
    }
}
