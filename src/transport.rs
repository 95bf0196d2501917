//! How a service talks to the others: plain HTTP, or, when the cluster file has a `[tls]`
//! table, mutual TLS with its own certificate (`docs/security.md`).

use std::path::PathBuf;
use std::sync::Arc;

use crate::cluster_file::{host_of, ClusterFile, ClusterPeers};
use crate::config::ServiceName;
use crate::error::{Error, Result};
use crate::tls::{Credentials, PublicCert, Refusal, ServerSide};

/// A service's TLS, both ways; the default is plain HTTP.
#[derive(Debug, Clone, Default)]
pub struct Transport {
    /// What its calls to other services present and trust.
    pub client: Option<Arc<rustls::ClientConfig>>,
    /// What its listener shows and whom it lets in.
    pub server: Option<Arc<ServerSide>>,
}

/// A front end's certificate for its public API (`--public-tls-cert`, `--public-tls-key`).
#[derive(Debug, Clone)]
pub struct PublicTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Transport {
    /// Service `name`'s transport in `cluster`, read from `path` (read again as it changes, to
    /// check peers against it); `public` only for a front end.
    pub fn for_service(
        cluster: &ClusterFile,
        path: Option<&PathBuf>,
        name: ServiceName,
        public: Option<&PublicTls>,
    ) -> Result<Self> {
        let certificate = cluster.certificate_name(name);
        let credentials = match cluster.tls_files(&certificate) {
            Some(files) => Some(Credentials::load(files).map_err(|e| {
                Error::Usage(format!(
                    "{e}: the cluster file's [tls] table says {name} finds its certificate \
                     there; make it with `storectl certs add {certificate} --cluster FILE`"
                ))
            })?),
            None => None,
        };
        let public = match public {
            Some(public) => {
                Some(PublicCert::load(&public.cert, &public.key).map_err(Error::Usage)?)
            }
            None => None,
        };
        let peers = || Arc::new(ClusterPeers::new(path.cloned(), cluster.clone()));
        let server = match (&credentials, name) {
            (None, _) if public.is_none() => None,
            (_, ServiceName::Frontend(_)) => {
                let host = cluster
                    .address(name)
                    .map(|a| host_of(a).to_string())
                    .unwrap_or_default();
                let cluster_side = credentials
                    .clone()
                    .map(|c| (c, peers() as Arc<dyn crate::tls::PeerCheck>, host));
                Some(ServerSide::for_frontend(cluster_side, public))
            }
            (Some(credentials), _) => Some(ServerSide::for_replica(credentials.clone(), peers())),
            (None, _) => None,
        };
        Ok(Transport {
            client: credentials.map(|c| c.client_config()),
            server: server.map(Arc::new),
        })
    }

    /// Whether the routes only the cluster may call need a certificate of the cluster.
    pub fn checks_peers(&self) -> bool {
        self.server.as_ref().is_some_and(|s| s.checks_peers())
    }

    /// The connections refused for their TLS so far, for `/health`.
    pub fn refusals(&self) -> Option<Refusal> {
        self.server.as_ref().and_then(|s| s.refusals().report())
    }
}
