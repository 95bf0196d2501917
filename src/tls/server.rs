//! A service's side of TLS: which certificate it shows, which peers it lets in, and what it
//! does with a connection that does not speak TLS.

use parking_lot::Mutex;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::{names_in, reason, Credentials, Refusals, ReloadingClients};

/// The cluster as a service checks its peers against: read again when its file changes, so
/// that a service added or removed there is let in or kept out without a restart.
pub trait PeerCheck: Send + Sync + 'static {
    /// The name, among a certificate's `names`, of a service of the cluster or of its tools.
    fn admit(&self, names: &[String]) -> Option<String>;
    /// The services the cluster places at `ip`, to name a refused peer.
    fn services_at(&self, ip: IpAddr) -> Vec<String>;
}

/// Who is at the other end of a connection, for the routes that only the cluster may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A service (or tool) of the cluster, proven by its certificate.
    Service(String),
    /// Anyone else: plain HTTP, or TLS without a certificate (a front end's public clients).
    Public,
}

/// A connection a service serves.
pub enum Accepted {
    Tls(Box<TlsStream<TcpStream>>, Peer),
    Plain(TcpStream),
}

/// A listener's TLS: set up once, reading its certificates again as they change.
pub struct ServerSide {
    acceptor: TlsAcceptor,
    peers: Option<Arc<dyn PeerCheck>>,
    /// Whether a connection without TLS is served (a front end's public API without HTTPS).
    plain_allowed: bool,
    refusals: Arc<Refusals>,
}

impl fmt::Debug for ServerSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSide")
            .field("plain_allowed", &self.plain_allowed)
            .finish_non_exhaustive()
    }
}

impl ServerSide {
    /// A replica: TLS only, and only for peers with a certificate of the cluster.
    pub fn for_replica(credentials: Arc<Credentials>, peers: Arc<dyn PeerCheck>) -> Self {
        let certs = Arc::new(Shown {
            cluster: Some(credentials.clone()),
            public: None,
            cluster_host: None,
        });
        let clients = ReloadingClients {
            credentials,
            mandatory: true,
        };
        Self::new(certs, Some(Arc::new(clients)), Some(peers), false)
    }

    /// A front end: its public API in plain HTTP or, with `public`, HTTPS; its internal routes
    /// only for peers with a certificate of the cluster when `cluster` is set.
    pub fn for_frontend(
        cluster: Option<(Arc<Credentials>, Arc<dyn PeerCheck>, String)>,
        public: Option<Arc<PublicCert>>,
    ) -> Self {
        let plain_allowed = public.is_none();
        let (credentials, peers, host) = match cluster {
            Some((credentials, peers, host)) => (Some(credentials), Some(peers), Some(host)),
            None => (None, None, None),
        };
        let clients = credentials.clone().map(|credentials| {
            Arc::new(ReloadingClients {
                credentials,
                mandatory: false,
            }) as Arc<dyn rustls::server::danger::ClientCertVerifier>
        });
        let certs = Arc::new(Shown {
            cluster: credentials,
            public,
            cluster_host: host,
        });
        Self::new(certs, clients, peers, plain_allowed)
    }

    fn new(
        certs: Arc<Shown>,
        clients: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
        peers: Option<Arc<dyn PeerCheck>>,
        plain_allowed: bool,
    ) -> Self {
        let builder = rustls::ServerConfig::builder_with_provider(super::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("ring supports TLS 1.3");
        let builder = match clients {
            Some(clients) => builder.with_client_cert_verifier(clients),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(certs);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        ServerSide {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            peers,
            plain_allowed,
            refusals: Arc::new(Refusals::default()),
        }
    }

    /// The refusals of this listener, for `/health`.
    pub fn refusals(&self) -> Arc<Refusals> {
        self.refusals.clone()
    }

    /// Whether the routes only the cluster may call need a peer certificate.
    pub fn checks_peers(&self) -> bool {
        self.peers.is_some()
    }

    /// Reads the first byte to tell TLS from plain HTTP, then shakes hands and checks the peer;
    /// `None` when the connection was refused (and logged) or went away.
    pub async fn accept(
        &self,
        stream: TcpStream,
        remote: SocketAddr,
        within: Duration,
    ) -> Option<Accepted> {
        let mut first = [0u8; 1];
        match tokio::time::timeout(within, stream.peek(&mut first)).await {
            Ok(Ok(1)) => {}
            _ => return None,
        }
        // 22 is a TLS handshake record; an HTTP request starts with a letter.
        if first[0] != 22 {
            if self.plain_allowed {
                return Some(Accepted::Plain(stream));
            }
            self.refuse_plain(stream, remote).await;
            return None;
        }
        let tls = match tokio::time::timeout(within, self.acceptor.accept(stream)).await {
            Ok(Ok(tls)) => tls,
            // A peer that hung up mid-handshake (a call it gave up on) was refused nothing.
            Ok(Err(e)) => {
                match reason(&e) {
                    Some(why) => self.refusals.record(&self.who(remote), &why),
                    // A peer that hung up mid-handshake (a call it gave up on) was refused
                    // nothing.
                    None => tracing::debug!("TLS handshake with {remote} ended: {e}"),
                }
                return None;
            }
            Err(_) => return None,
        };
        let peer = self.peer_of(&tls, remote)?;
        Some(Accepted::Tls(Box::new(tls), peer))
    }

    /// Who the certificate presented on `tls` proves the peer to be; `None` (refused and
    /// recorded) when it names no service of the cluster.
    fn peer_of(&self, tls: &TlsStream<TcpStream>, remote: SocketAddr) -> Option<Peer> {
        let presented = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(names_in);
        let peer = match (presented, &self.peers) {
            (None, _) | (Some(_), None) => Peer::Public,
            (Some(names), Some(peers)) => match peers.admit(&names) {
                Some(name) => Peer::Service(name),
                None => {
                    self.refusals.record(
                        &self.who(remote),
                        &format!(
                            "its certificate (for {}) names no service of the cluster file",
                            if names.is_empty() {
                                "no name".to_string()
                            } else {
                                names.join(", ")
                            }
                        ),
                    );
                    return None;
                }
            },
        };
        Some(peer)
    }

    /// Answers a plain HTTP request with a line that says what to do, and closes.
    async fn refuse_plain(&self, mut stream: TcpStream, remote: SocketAddr) {
        self.refusals.record(
            &self.who(remote),
            "it spoke plain HTTP to a TLS-only service",
        );
        let body = r#"{"error":{"code":400,"message":"this service speaks HTTPS only (mutual TLS with a certificate of the cluster's CA; see docs/security.md)"}}"#;
        let reply = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ =
            tokio::time::timeout(Duration::from_secs(1), stream.write_all(reply.as_bytes())).await;
        let _ = stream.shutdown().await;
    }

    /// A peer's address and the services the cluster places on its host.
    fn who(&self, remote: SocketAddr) -> String {
        let services = self
            .peers
            .as_ref()
            .map(|p| p.services_at(remote.ip()))
            .unwrap_or_default();
        if services.is_empty() {
            format!("{remote} (no service of the cluster on that host)")
        } else {
            format!("{remote} (the host of {})", services.join(", "))
        }
    }
}

/// Which certificate a service shows: its cluster one, or on a front end with a public
/// certificate, that one to a client that asks for another name than the cluster's.
#[derive(Debug)]
struct Shown {
    cluster: Option<Arc<Credentials>>,
    public: Option<Arc<PublicCert>>,
    /// The host the cluster file gives the front end, which its peers ask for.
    cluster_host: Option<String>,
}

impl ResolvesServerCert for Shown {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let asks_public = match (&self.cluster_host, hello.server_name()) {
            (Some(host), Some(asked)) => asked != host,
            (Some(_), None) => false,
            (None, _) => true,
        };
        match (&self.public, &self.cluster) {
            (Some(public), _) if asks_public => Some(public.current()),
            (_, Some(cluster)) => Some(cluster.current().key.clone()),
            (Some(public), None) => Some(public.current()),
            (None, None) => None,
        }
    }
}

/// A front end's certificate for its public API (`--public-tls-cert`), from any CA, read
/// again when it changes.
#[derive(Debug)]
pub struct PublicCert {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    loaded: Mutex<(super::Stamp, Arc<CertifiedKey>)>,
}

impl PublicCert {
    pub fn load(cert: &std::path::Path, key: &std::path::Path) -> Result<Arc<Self>, String> {
        let (stamp, certified) = Self::read(cert, key)?;
        Ok(Arc::new(PublicCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            loaded: Mutex::new((stamp, certified)),
        }))
    }

    fn stamp(cert: &std::path::Path, key: &std::path::Path) -> super::Stamp {
        super::stamp(&[cert, key])
    }

    fn read(
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Result<(super::Stamp, Arc<CertifiedKey>), String> {
        let stamp = Self::stamp(cert, key);
        let certified = super::read_key(cert, key, &super::provider())?;
        Ok((stamp, Arc::new(certified)))
    }

    fn current(&self) -> Arc<CertifiedKey> {
        let stamp = Self::stamp(&self.cert, &self.key);
        let mut loaded = self.loaded.lock();
        if loaded.0 != stamp {
            match Self::read(&self.cert, &self.key) {
                Ok(new) => *loaded = new,
                Err(e) => {
                    tracing::warn!("TLS: {e}; the previous public certificate stays in use");
                    loaded.0 = stamp;
                }
            }
        }
        loaded.1.clone()
    }
}
