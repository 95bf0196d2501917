//! Mutual TLS between a cluster's services (`docs/security.md`): what a service shows and what
//! it trusts, read from the files the cluster file's `[tls]` table names, and read again when
//! they change, so a certificate replaced on disk is used for the next connection without a
//! restart.
//!
//! Every certificate is signed by the cluster's own CA (`storectl certs init`) and names its
//! service (`catalog-1`, `order-2`, `frontend-1`, or `storectl` for the tools) and its host.
//! A service accepts a peer whose certificate chains to the CA and names a service of the
//! cluster file; a caller accepts a service whose certificate chains to the CA and is valid for
//! the host it dialled.

pub mod certs;
mod refusals;
mod server;
#[cfg(test)]
mod tests;

use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};

pub use refusals::{Refusal, Refusals};
pub use server::{Accepted, Peer, PeerCheck, PublicCert, ServerSide};

/// The name in the certificate the tools (`status`, `verify-logs`, `member`…) present.
pub const TOOL_NAME: &str = "storectl";

/// The cluster file's `[tls]` table: where each service finds the CA, its certificate and its
/// key. `{name}` in a path stands for the service's name; a relative path is relative to the
/// cluster file's directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsTable {
    /// The cluster CA's certificate, PEM.
    pub ca: String,
    /// Each service's certificate, PEM, e.g. `tls/{name}.pem`.
    pub cert: String,
    /// Each service's private key, PEM, e.g. `tls/{name}-key.pem`.
    pub key: String,
    /// The directory relative paths start from: the cluster file's.
    #[serde(skip)]
    base: PathBuf,
}

impl PartialEq for TlsTable {
    fn eq(&self, other: &Self) -> bool {
        (&self.ca, &self.cert, &self.key) == (&other.ca, &other.cert, &other.key)
    }
}

impl Eq for TlsTable {}

impl TlsTable {
    /// The table `storectl certs init` writes for the files it made in `dir`.
    pub fn for_dir(dir: &str) -> Self {
        let dir = dir.trim_end_matches('/');
        TlsTable {
            ca: format!("{dir}/ca.pem"),
            cert: format!("{dir}/{{name}}.pem"),
            key: format!("{dir}/{{name}}-key.pem"),
            base: PathBuf::new(),
        }
    }

    /// Resolves relative paths against `dir`, the cluster file's directory.
    pub fn relative_to(mut self, dir: &Path) -> Self {
        self.base = dir.to_path_buf();
        self
    }

    /// The files of the service (or tool) called `name`.
    pub fn files(&self, name: &str) -> TlsFiles {
        let at = |path: &str| self.base.join(path.replace("{name}", name));
        TlsFiles {
            ca: at(&self.ca),
            cert: at(&self.cert),
            key: at(&self.key),
        }
    }

    /// The directory the CA's certificate is in, where `certs add` writes.
    pub fn ca_path(&self) -> PathBuf {
        self.base.join(&self.ca)
    }
}

/// One party's CA, certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    fn stamp(&self) -> Stamp {
        stamp(&[&self.ca, &self.cert, &self.key])
    }
}

/// When each file last changed, and its size: a new stamp means read them again.
type Stamp = Vec<Option<(Option<SystemTime>, u64)>>;

fn stamp(paths: &[&Path]) -> Stamp {
    paths
        .iter()
        .map(|path| {
            std::fs::metadata(path)
                .ok()
                .map(|m| (m.modified().ok(), m.len()))
        })
        .collect()
}

/// The crypto every TLS connection of storectl uses: ring, TLS 1.3.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A party's credentials, read again whenever one of its files changes. A change that cannot
/// be read (a half-written file, a key that does not match its certificate) is reported once
/// and the last good credentials stay in use.
#[derive(Debug)]
pub struct Credentials {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    loaded: Arc<Loaded>,
    /// The stamp of files that could not be read, so the warning is given once.
    rejected: Option<Stamp>,
}

/// What the files held when they were last read.
#[derive(Debug)]
struct Loaded {
    stamp: Stamp,
    key: Arc<CertifiedKey>,
    servers: Arc<WebPkiServerVerifier>,
    clients: Arc<dyn ClientCertVerifier>,
    /// The same, for a front end, whose public clients present no certificate.
    clients_optional: Arc<dyn ClientCertVerifier>,
}

impl Credentials {
    /// Reads `files`, or says in one line which cannot be used and why.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, String> {
        let provider = provider();
        let loaded = Loaded::read(&files, &provider)?;
        Ok(Arc::new(Credentials {
            files,
            provider,
            state: Mutex::new(State {
                loaded: Arc::new(loaded),
                rejected: None,
            }),
        }))
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The credentials as the files hold them now.
    fn current(&self) -> Arc<Loaded> {
        let stamp = self.files.stamp();
        let mut state = self.state.lock();
        if state.loaded.stamp == stamp || state.rejected.as_ref() == Some(&stamp) {
            return state.loaded.clone();
        }
        match Loaded::read(&self.files, &self.provider) {
            Ok(loaded) => {
                tracing::info!(
                    "TLS: read {} again (it changed); new connections use it",
                    self.files.cert.display()
                );
                state.loaded = Arc::new(loaded);
                state.rejected = None;
            }
            Err(e) => {
                tracing::warn!("TLS: {e}; the previous certificate stays in use");
                state.rejected = Some(stamp);
            }
        }
        state.loaded.clone()
    }

    /// A client configuration that presents these credentials and trusts the cluster's CA,
    /// both as they are on disk at each handshake.
    pub fn client_config(self: &Arc<Self>) -> Arc<rustls::ClientConfig> {
        let reloading = Arc::new(Reloading(self.clone()));
        let config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("ring supports TLS 1.3")
            .dangerous()
            .with_custom_certificate_verifier(reloading.clone())
            .with_client_cert_resolver(reloading);
        Arc::new(config)
    }
}

impl Loaded {
    fn read(files: &TlsFiles, provider: &Arc<CryptoProvider>) -> Result<Loaded, String> {
        // The stamp is taken before reading, so a file changed while being read is read again.
        let stamp = files.stamp();
        let key = read_key(&files.cert, &files.key, provider)?;
        let mut roots = RootCertStore::empty();
        for ca in read_certs(&files.ca)? {
            roots
                .add(ca)
                .map_err(|e| format!("{} is not a CA certificate: {e}", files.ca.display()))?;
        }
        let roots = Arc::new(roots);
        let bad_ca = |e: rustls::server::VerifierBuilderError| {
            format!("cannot use the CA {}: {e}", files.ca.display())
        };
        let servers = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| format!("cannot use the CA {}: {e}", files.ca.display()))?;
        let clients = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(bad_ca)?;
        let clients_optional = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(bad_ca)?;
        Ok(Loaded {
            stamp,
            key: Arc::new(key),
            servers,
            clients,
            clients_optional,
        })
    }
}

/// A certificate and the key that goes with it.
fn read_key(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let certs = read_certs(cert)?;
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the key {}: {e}", key.display()))?;
    CertifiedKey::from_der(certs, private, provider).map_err(|e| {
        format!(
            "the key {} does not go with the certificate {}: {e}",
            key.display(),
            cert.display()
        )
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the certificate {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// rustls's verifiers and resolvers, each asking [`Credentials::current`] at every handshake.
#[derive(Debug)]
struct Reloading(Arc<Credentials>);

impl ServerCertVerifier for Reloading {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0.current().servers.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .current()
            .servers
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .current()
            .servers
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.current().servers.supported_verify_schemes()
    }
}

impl ResolvesClientCert for Reloading {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The client verifier of a service: required certificates, or optional ones on a front end.
#[derive(Debug)]
struct ReloadingClients {
    credentials: Arc<Credentials>,
    mandatory: bool,
}

impl ReloadingClients {
    fn verifier(&self) -> Arc<dyn ClientCertVerifier> {
        let loaded = self.credentials.current();
        if self.mandatory {
            loaded.clients.clone()
        } else {
            loaded.clients_optional.clone()
        }
    }
}

impl ClientCertVerifier for ReloadingClients {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Hints are optional; a peer has one certificate to offer anyway.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verifier()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier().supported_verify_schemes()
    }
}

/// The names a certificate is for: its DNS names and its common name.
pub fn names_in(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(name) => Some(name.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    for cn in parsed.subject().iter_common_name() {
        if let Ok(cn) = cn.as_str() {
            if !names.iter().any(|n| n == cn) {
                names.push(cn.to_string());
            }
        }
    }
    names
}

/// Why a handshake failed, in words an operator acts on; `None` when it was not refused for
/// its TLS (the peer hung up, the connection broke).
pub fn reason(e: &std::io::Error) -> Option<String> {
    use rustls::{AlertDescription, CertificateError, Error};
    let tls = e.get_ref()?.downcast_ref::<Error>()?;
    Some(match tls {
        Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => "its certificate is signed by another CA".into(),
        Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "its certificate has expired".into(),
        Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        ) => "its certificate is not valid yet".into(),
        Error::NoCertificatesPresented => "it presented no certificate".into(),
        Error::AlertReceived(AlertDescription::UnknownCA | AlertDescription::BadCertificate) => {
            "it does not trust this service's certificate (another CA?)".into()
        }
        Error::AlertReceived(AlertDescription::CertificateExpired) => {
            "it finds this service's certificate expired".into()
        }
        other => other.to_string(),
    })
}
