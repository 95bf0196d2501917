//! Mutual TLS on one machine (`up --tls`, `storectl certs`), with real processes: orders through
//! leader kills, a certificate rotated under a running service, and the certificate commands'
//! refusals. The several-host side (captures, forged peers) is in `partitions.rs`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;

use crate::common::{assert_nothing_lost, chaos, eventually, stderr, storectl, Cluster};

/// The certificate the service at `address` shows now, to a caller with the tools' credentials.
fn shown_certificate(tls: &Path, address: &str) -> Vec<u8> {
    let files = storectl::tls::TlsFiles {
        ca: tls.join("ca.pem"),
        cert: tls.join("storectl.pem"),
        key: tls.join("storectl-key.pem"),
    };
    let config = storectl::tls::Credentials::load(files)
        .unwrap()
        .client_config();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&config));
        let mut tls = connector
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .expect("the tools' certificate is let in");
        let shown = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        let _ = tls.shutdown().await;
        shown
    })
}

fn certificate_in(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path).unwrap().to_vec()
}

#[test]
fn a_cluster_with_tls_keeps_every_order_through_leader_kills_and_a_rotated_certificate() {
    let cluster = Cluster::start(&["--tls", "--initial-stock", "100000"]);
    let state = cluster.state();
    let tls = state.join("tls");
    let table = std::fs::read_to_string(state.join("cluster.toml")).unwrap();
    assert!(table.contains("[tls]"), "{table}");

    let (ok, report) = chaos(&cluster, &["--rounds", "3", "--leader-share", "1"]);
    assert!(ok, "{report}");
    assert_nothing_lost(&report);

    // order-3's certificate is replaced on disk while it runs: the next connection gets the
    // new one, and the cluster goes on ordering with it.
    let order3 = format!("127.0.0.1:{}", cluster.base + 12);
    let before = shown_certificate(&tls, &order3);
    assert_eq!(before, certificate_in(&tls.join("order-3.pem")));
    let cluster_file = state.join("cluster.toml");
    let out = storectl(&[
        "certs",
        "add",
        "order-3",
        "--cluster",
        cluster_file.to_str().unwrap(),
        "--force",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = shown_certificate(&tls, &order3);
    assert_ne!(
        before, after,
        "the rotated certificate is shown without a restart"
    );
    assert_eq!(after, certificate_in(&tls.join("order-3.pem")));
    let (ok, report) = chaos(&cluster, &["--rounds", "2", "--leader-share", "1"]);
    assert!(ok, "{report}");
    assert_nothing_lost(&report);
    cluster.assert_converges(Duration::from_secs(20));

    // Nobody was refused, and plain HTTP to a replica is.
    let status = cluster.run("status", &[]);
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{said}{}", stderr(&status));
    assert!(!said.contains("refused"), "{said}");
    let plain = storectl::tool_http::get(
        &storectl::tool_http::agent(),
        &format!("http://{order3}/health"),
    )
    .unwrap();
    assert_eq!(plain.status, 400, "{}", plain.body);
    let refused = eventually(Duration::from_secs(5), || {
        let out = cluster.run("status", &[]);
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        said.contains("order-3 refused 1 connection")
            .then_some(said)
    });
    assert!(refused.is_some_and(|s| s.contains("plain HTTP")));
}

#[test]
fn certs_init_writes_owner_only_files_names_each_host_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.toml");
    std::fs::write(
        &file,
        "[[catalog]]\nid = 1\naddress = \"10.0.0.1:8001\"\n\n\
         [[order]]\nid = 1\naddress = \"10.0.0.2:8010\"\n\n\
         [[frontend]]\nid = 1\naddress = \"shop.example:8000\"\n",
    )
    .unwrap();
    let out_dir = dir.path().join("tls");
    let init = |extra: &[&str]| {
        let mut args = vec![
            "certs",
            "init",
            "--cluster",
            file.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        storectl(&args)
    };
    let out = init(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    for name in ["ca", "catalog-1", "order-1", "frontend-1", "storectl"] {
        for file in [format!("{name}.pem"), format!("{name}-key.pem")] {
            let mode = std::fs::metadata(out_dir.join(&file))
                .unwrap_or_else(|e| panic!("{file}: {e}"))
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }
    // The cluster file gained the table that names them, relative to itself.
    let table = std::fs::read_to_string(&file).unwrap();
    assert!(table.contains("ca = \"tls/ca.pem\""), "{table}");
    let loaded = storectl::cluster_file::ClusterFile::load(&file).unwrap();
    let files = loaded.tls_files("order-1").unwrap();
    assert_eq!(files.cert, out_dir.join("order-1.pem"));
    // Each certificate names its service and its host: an IP address, or a DNS name.
    let names = |name: &str| {
        storectl::tls::names_in(&CertificateDer::from_pem_file(out_dir.join(name)).unwrap())
    };
    assert_eq!(names("order-1.pem"), ["order-1"]);
    assert_eq!(names("frontend-1.pem"), ["frontend-1", "shop.example"]);

    let ca = std::fs::read(out_dir.join("ca.pem")).unwrap();
    let again = init(&[]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    let said = stderr(&again);
    assert!(
        said.contains("--force") && said.lines().count() == 1,
        "{said}"
    );
    assert_eq!(std::fs::read(out_dir.join("ca.pem")).unwrap(), ca);

    // A service the file does not have needs its address; a known one is refused over itself.
    let add = |args: &[&str]| {
        let mut all = vec!["certs", "add"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--cluster", file.to_str().unwrap()]);
        storectl(&all)
    };
    let unknown = add(&["order-4"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("--address"),
        "{}",
        stderr(&unknown)
    );
    let known = add(&["order-1"]);
    assert_eq!(known.status.code(), Some(2));
    let new = add(&["order-4", "--address", "10.0.0.4:8010"]);
    assert!(new.status.success(), "{}", stderr(&new));
    assert_eq!(names("order-4.pem"), ["order-4"]);
    let forced = init(&["--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_ne!(std::fs::read(out_dir.join("ca.pem")).unwrap(), ca);
}
