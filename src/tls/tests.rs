//! A replica's listener against real handshakes on loopback: who gets in, who is refused and
//! why, and a certificate replaced on disk used for the next connection.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::certs::{self, Party};
use super::{Accepted, Credentials, Peer, PeerCheck, PublicCert, ServerSide, TlsFiles};

/// The cluster of the tests: two order replicas and the tools.
struct Cluster;

impl PeerCheck for Cluster {
    fn admit(&self, names: &[String]) -> Option<String> {
        names
            .iter()
            .find(|n| ["order-1", "order-2", "storectl"].contains(&n.as_str()))
            .cloned()
    }

    fn services_at(&self, _ip: std::net::IpAddr) -> Vec<String> {
        vec!["order-1".into(), "order-2".into()]
    }
}

fn party(name: &str) -> Party {
    Party {
        name: name.into(),
        hosts: vec!["127.0.0.1".into()],
    }
}

fn files(dir: &Path, ca_dir: &Path, name: &str) -> TlsFiles {
    let [cert, key] = certs::party_files(dir, name);
    TlsFiles {
        ca: ca_dir.join(certs::CA_CERT),
        cert,
        key,
    }
}

/// Serves order-1's listener: each connection it lets in is answered with the peer's name.
async fn serve(dir: &Path) -> (SocketAddr, Arc<ServerSide>) {
    let credentials = Credentials::load(files(dir, dir, "order-1")).unwrap();
    listen(ServerSide::for_replica(credentials, Arc::new(Cluster))).await
}

/// Serves `side` on loopback, answering each connection it lets in with the peer's name.
async fn listen(side: ServerSide) -> (SocketAddr, Arc<ServerSide>) {
    let side = Arc::new(side);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let serving = side.clone();
    tokio::spawn(async move {
        loop {
            let (stream, remote) = listener.accept().await.unwrap();
            let side = serving.clone();
            tokio::spawn(async move {
                if let Some(Accepted::Tls(mut tls, peer)) =
                    side.accept(stream, remote, Duration::from_secs(5)).await
                {
                    let name = match peer {
                        Peer::Service(name) => name,
                        Peer::Public => "public".into(),
                    };
                    let _ = tls.write_all(name.as_bytes()).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    (address, side)
}

/// Connects as `files`' owner: the name the server answered, and the certificate it showed;
/// an error when the handshake or the reply failed.
async fn call(address: SocketAddr, files: TlsFiles) -> Result<(String, Vec<u8>), String> {
    let config = Credentials::load(files)?.client_config();
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let server = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector
        .connect(server, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let shown = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let mut reply = String::new();
    tls.read_to_string(&mut reply)
        .await
        .map_err(|e| e.to_string())?;
    if reply.is_empty() {
        return Err("closed without a reply".into());
    }
    Ok((reply, shown))
}

/// The last refusal's line, once there is one.
async fn refusal(side: &ServerSide) -> String {
    for _ in 0..100 {
        if let Some(r) = side.refusals().report() {
            return r.last;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no refusal was recorded")
}

/// A certificate for `name` signed by the CA in `dir` that expired yesterday.
fn expired(dir: &Path, name: &str) {
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(dir.join(certs::CA_KEY)).unwrap()).unwrap();
    let ca_pem = std::fs::read_to_string(dir.join(certs::CA_CERT)).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = now() - time::Duration::days(1);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let [cert_path, key_path] = certs::party_files(dir, name);
    std::fs::write(key_path, key.serialize_pem()).unwrap();
    std::fs::write(cert_path, cert.pem()).unwrap();
}

fn now() -> time::OffsetDateTime {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

fn cluster_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let parties = [party("order-1"), party("order-2"), party("storectl")];
    certs::init(dir.path(), &parties, 30, false).unwrap();
    dir
}

#[tokio::test]
async fn a_service_of_the_cluster_gets_in_under_its_name() {
    let dir = cluster_dir();
    let (address, side) = serve(dir.path()).await;
    let (name, _) = call(address, files(dir.path(), dir.path(), "order-2"))
        .await
        .unwrap();
    assert_eq!(name, "order-2");
    let (name, _) = call(address, files(dir.path(), dir.path(), "storectl"))
        .await
        .unwrap();
    assert_eq!(name, "storectl");
    assert!(side.refusals().report().is_none());
}

#[tokio::test]
async fn a_certificate_of_another_ca_is_refused_and_the_refusal_names_the_peer() {
    let dir = cluster_dir();
    let foreign = tempfile::tempdir().unwrap();
    certs::init(foreign.path(), &[party("order-2")], 30, false).unwrap();
    let (address, side) = serve(dir.path()).await;
    // The stranger trusts the cluster's CA (it has a copy), and still is not let in.
    let stranger = files(foreign.path(), dir.path(), "order-2");
    assert!(call(address, stranger).await.is_err());
    let line = refusal(&side).await;
    assert!(line.contains("signed by another CA"), "{line}");
    assert!(line.contains("127.0.0.1:"), "{line}");
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let dir = cluster_dir();
    expired(dir.path(), "order-2");
    let (address, side) = serve(dir.path()).await;
    assert!(call(address, files(dir.path(), dir.path(), "order-2"))
        .await
        .is_err());
    let line = refusal(&side).await;
    assert!(line.contains("expired"), "{line}");
}

#[tokio::test]
async fn a_certificate_for_a_name_not_in_the_cluster_is_refused() {
    let dir = cluster_dir();
    certs::add(dir.path(), &party("order-9"), 30, false).unwrap();
    let (address, side) = serve(dir.path()).await;
    assert!(call(address, files(dir.path(), dir.path(), "order-9"))
        .await
        .is_err());
    let line = refusal(&side).await;
    assert!(
        line.contains("order-9") && line.contains("names no service"),
        "{line}"
    );
}

#[tokio::test]
async fn plain_http_gets_a_reply_that_says_to_use_tls() {
    let dir = cluster_dir();
    let (address, side) = serve(dir.path()).await;
    let mut tcp = TcpStream::connect(address).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("HTTPS only"), "{reply}");
    assert!(refusal(&side).await.contains("plain HTTP"));
}

#[tokio::test]
async fn a_certificate_replaced_on_disk_is_shown_on_the_next_connection() {
    let dir = cluster_dir();
    let (address, side) = serve(dir.path()).await;
    let client = || files(dir.path(), dir.path(), "order-2");
    let (_, before) = call(address, client()).await.unwrap();
    certs::add(dir.path(), &party("order-1"), 30, true).unwrap();
    let (name, after) = call(address, client()).await.unwrap();
    assert_eq!(name, "order-2");
    assert_ne!(
        before, after,
        "the new certificate is shown without a restart"
    );
    assert_eq!(
        after,
        std::fs::read(dir.path().join("order-1.pem"))
            .map(|pem| { CertificateDer::from_pem_slice(&pem).unwrap().to_vec() })
            .unwrap()
    );
    // A key that does not go with the certificate is not taken: the last good pair stays.
    let [_, key] = certs::party_files(dir.path(), "order-1");
    std::fs::write(&key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let (_, still) = call(address, client()).await.unwrap();
    assert_eq!(still, after);
    assert!(side.refusals().report().is_none());
}

#[tokio::test]
async fn a_front_end_shows_shoppers_its_public_certificate_and_peers_its_cluster_one() {
    let dir = cluster_dir();
    certs::add(dir.path(), &party("frontend-1"), 30, false).unwrap();
    // The public certificate comes from another CA altogether, as a shop's would.
    let shop = tempfile::tempdir().unwrap();
    let public = Party {
        name: "shop".into(),
        hosts: vec!["shop.example".into()],
    };
    certs::init(shop.path(), std::slice::from_ref(&public), 30, false).unwrap();
    let [shop_cert, shop_key] = certs::party_files(shop.path(), "shop");
    let credentials = Credentials::load(files(dir.path(), dir.path(), "frontend-1")).unwrap();
    let side = ServerSide::for_frontend(
        Some((credentials, Arc::new(Cluster), "127.0.0.1".into())),
        Some(PublicCert::load(&shop_cert, &shop_key).unwrap()),
    );
    let (address, side) = listen(side).await;

    // A peer dials the front end's address and proves who it is.
    let (name, shown) = call(address, files(dir.path(), dir.path(), "order-2"))
        .await
        .unwrap();
    assert_eq!(name, "order-2");
    assert_eq!(
        shown,
        CertificateDer::from_pem_file(dir.path().join("frontend-1.pem"))
            .unwrap()
            .to_vec()
    );

    // A shopper asks for the shop's name, trusts only the shop's CA and shows no certificate.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(shop.path().join(certs::CA_CERT)).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(super::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(address).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("shop.example").unwrap(), tcp)
        .await
        .expect("the shopper trusts the public certificate");
    let mut reply = String::new();
    tls.read_to_string(&mut reply).await.unwrap();
    assert_eq!(reply, "public");

    // With a public certificate, plain HTTP is refused.
    let mut tcp = TcpStream::connect(address).await.unwrap();
    tcp.write_all(b"GET /products/tux HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(refusal(&side).await.contains("plain HTTP"));
}
