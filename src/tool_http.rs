//! The blocking HTTP client every tool uses (`status`, `up`'s health checks, the buy loop, the
//! bench's counters): ureq, a timeout per phase, error statuses returned as replies, and in a
//! cluster that speaks TLS the cluster's CA and the tools' certificate ([`trust_cluster`]).
//!
//! The services, and the bench's load generator, use the pooled async client in
//! [`crate::peer`] instead: they run on tokio and call each other on their hot path.

use parking_lot::RwLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cluster_file::ClusterFile;

use crate::wire::ErrorBody;

/// A blocking HTTP agent with a timeout per phase (a global timeout costs a thread per request)
/// and error statuses returned as replies rather than errors.
pub fn agent() -> ureq::Agent {
    agent_waiting(Duration::from_secs(30))
}

/// An agent for health checks: a service that does not answer within a second (paused, say)
/// is reported as not answering rather than waited for.
pub fn health_agent() -> ureq::Agent {
    agent_waiting(Duration::from_secs(1))
}

/// The TLS of every agent made from now on: the CA and the tools' certificate of the cluster
/// this command works on. A command works on one cluster, so this is the process's.
static CLUSTER_TLS: RwLock<Option<ureq::tls::TlsConfig>> = RwLock::new(None);

/// Makes every agent made from now on trust `cluster`'s CA and present the tools' certificate
/// (`storectl.pem` beside the services'), when the cluster speaks TLS.
pub fn trust_cluster(cluster: &ClusterFile) -> crate::Result<()> {
    let Some(files) = cluster.tls_files(crate::tls::TOOL_NAME) else {
        return Ok(());
    };
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| {
            crate::Error::Usage(format!(
                "cannot read {}: {e}; the cluster speaks TLS and the tools need its CA and their \
                 certificate (storectl certs add storectl --cluster FILE)",
                path.display()
            ))
        })
    };
    let bad = |path: &std::path::Path, e: ureq::Error| {
        crate::Error::Usage(format!("{} is not PEM: {e}", path.display()))
    };
    let ca = certificates_in(&read(&files.ca)?).map_err(|e| bad(&files.ca, e))?;
    let chain = certificates_in(&read(&files.cert)?).map_err(|e| bad(&files.cert, e))?;
    let key =
        ureq::tls::PrivateKey::from_pem(&read(&files.key)?).map_err(|e| bad(&files.key, e))?;
    let config = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::new_with_certs(&ca))
        .client_cert(Some(ureq::tls::ClientCert::new_with_certs(&chain, key)))
        .unversioned_rustls_crypto_provider(crate::tls::provider())
        .build();
    *CLUSTER_TLS.write() = Some(config);
    Ok(())
}

/// The certificates of a PEM file.
fn certificates_in(pem: &[u8]) -> Result<Vec<ureq::tls::Certificate<'static>>, ureq::Error> {
    ureq::tls::parse_pem(pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => Some(Ok(cert)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect()
}

/// Reads the cluster file at `path` for a tool, which then speaks the cluster's TLS.
pub fn load_cluster(path: &std::path::Path) -> crate::Result<ClusterFile> {
    let cluster = ClusterFile::load(path)?;
    trust_cluster(&cluster)?;
    Ok(cluster)
}

fn agent_waiting(reply: Duration) -> ureq::Agent {
    let tls = CLUSTER_TLS.read().clone().unwrap_or_else(|| {
        ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(crate::tls::provider())
            .root_certs(ureq::tls::RootCerts::new_with_certs(&[]))
            .build()
    });
    ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_connect(Some(Duration::from_secs(2).min(reply)))
        .timeout_send_request(Some(Duration::from_secs(5).min(reply)))
        .timeout_recv_response(Some(reply))
        .timeout_recv_body(Some(reply))
        .http_status_as_error(false)
        .build()
        .into()
}

/// A reply: status and body text.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// For a product reply, whether the front end's cache answered it (its `X-Cache` header).
    pub cache_hit: Option<bool>,
}

impl Reply {
    pub fn json<T: for<'de> Deserialize<'de>>(&self) -> Option<T> {
        serde_json::from_str(&self.body).ok()
    }

    /// The API's error message, or the raw body.
    pub fn message(&self) -> String {
        self.json::<ErrorBody>()
            .map(|e| e.error.message)
            .unwrap_or_else(|| self.body.clone())
    }
}

pub fn get(agent: &ureq::Agent, url: &str) -> Result<Reply, String> {
    get_authorized(agent, url, None)
}

/// A GET that presents the cluster's secret, for a service's internal endpoints.
pub fn get_authorized(
    agent: &ureq::Agent,
    url: &str,
    secret: Option<&crate::secret::Secret>,
) -> Result<Reply, String> {
    let mut request = agent.get(url);
    if let Some(secret) = secret {
        request = request.header("Authorization", &secret.bearer());
    }
    let response = request.call().map_err(|e| e.to_string())?;
    read(response)
}

pub fn post_json<T: Serialize>(
    agent: &ureq::Agent,
    url: &str,
    body: &T,
    idempotency_key: Option<&str>,
) -> Result<Reply, String> {
    let mut request = agent.post(url);
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send_json(body).map_err(|e| e.to_string())?;
    read(response)
}

/// A POST of JSON that presents the cluster's secret, for a service's internal endpoints.
pub fn post_authorized<T: Serialize>(
    agent: &ureq::Agent,
    url: &str,
    body: &T,
    secret: &crate::secret::Secret,
) -> Result<Reply, String> {
    let response = agent
        .post(url)
        .header("Authorization", &secret.bearer())
        .send_json(body)
        .map_err(|e| e.to_string())?;
    read(response)
}

fn read(mut response: ureq::http::Response<ureq::Body>) -> Result<Reply, String> {
    let status = response.status().as_u16();
    let cache_hit = response
        .headers()
        .get(crate::wire::CACHE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| v == "hit");
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok(Reply {
        status,
        body,
        cache_hit,
    })
}
