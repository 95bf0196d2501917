//! `storectl certs init|add`: a cluster CA and one certificate per service, made offline.
//!
//! Each certificate names its service (`order-2`) and the host the cluster file gives it (an IP
//! address or a DNS name), so a peer can check both who it is and where it is. Every file is
//! written readable by its owner only, through a temporary file renamed into place (a service
//! reading it for a new connection never sees half of one), and never over an existing file
//! without `force`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The CA's certificate and key in a certificates directory.
pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca-key.pem";
/// How long a CA made by `certs init` is valid.
pub const CA_DAYS: u32 = 3650;
/// How long a service's certificate is valid unless `--days` says otherwise.
pub const DEFAULT_DAYS: u32 = 825;

/// A party to make a certificate for: its name and the hosts it is reached at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub name: String,
    pub hosts: Vec<String>,
}

/// The files of `name` in `dir`: its certificate and its key.
pub fn party_files(dir: &Path, name: &str) -> [PathBuf; 2] {
    [
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    ]
}

/// Makes a new CA in `dir` and a certificate for each party, valid `days`. Nothing is written
/// when a file is in the way and `force` is not given.
pub fn init(dir: &Path, parties: &[Party], days: u32, force: bool) -> Result<Vec<PathBuf>, String> {
    let mut files = vec![dir.join(CA_CERT), dir.join(CA_KEY)];
    for party in parties {
        files.extend(party_files(dir, &party.name));
    }
    refuse_overwrite(&files, force)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let ca_key = KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let mut params = CertificateParams::default();
    // A name of its own, so that a certificate of another cluster's CA is told apart by its
    // issuer before its signature is even checked.
    let serial: u32 = rand::random();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("storectl cluster CA {serial:08x}"),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    valid_for(&mut params, CA_DAYS);
    let ca_cert = params
        .self_signed(&ca_key)
        .map_err(|e| format!("cannot make the CA: {e}"))?;
    write_private(&dir.join(CA_CERT), ca_cert.pem().as_bytes())?;
    write_private(&dir.join(CA_KEY), ca_key.serialize_pem().as_bytes())?;
    let issuer = Issuer::new(params, ca_key);
    let mut written = vec![dir.join(CA_CERT), dir.join(CA_KEY)];
    for party in parties {
        written.extend(issue(&issuer, dir, party, days)?);
    }
    Ok(written)
}

/// Makes a certificate for `party` with the CA in `dir`.
pub fn add(dir: &Path, party: &Party, days: u32, force: bool) -> Result<Vec<PathBuf>, String> {
    refuse_overwrite(&party_files(dir, &party.name), force)?;
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "cannot read {}: {e}; make the cluster's CA first with `storectl certs init`",
                path.display()
            )
        })
    };
    let key = KeyPair::from_pem(&read(CA_KEY)?)
        .map_err(|e| format!("{} is not a key: {e}", dir.join(CA_KEY).display()))?;
    let issuer = Issuer::from_ca_cert_pem(&read(CA_CERT)?, key).map_err(|e| {
        format!(
            "{} is not a CA certificate: {e}",
            dir.join(CA_CERT).display()
        )
    })?;
    issue(&issuer, dir, party, days)
}

/// Checks what a party's certificate needs before anything is written.
pub fn check_party(party: &Party) -> Result<(), String> {
    if party.name.is_empty()
        || !party
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(format!(
            "'{}' is not a service name (catalog-N, order-N, frontend-N or storectl)",
            party.name
        ));
    }
    Ok(())
}

fn issue(
    issuer: &Issuer<'_, KeyPair>,
    dir: &Path,
    party: &Party,
    days: u32,
) -> Result<Vec<PathBuf>, String> {
    check_party(party)?;
    let mut names = vec![party.name.clone()];
    for host in &party.hosts {
        if !names.contains(host) {
            names.push(host.clone());
        }
    }
    let mut params = CertificateParams::new(names)
        .map_err(|e| format!("cannot name {} in a certificate: {e}", party.name))?;
    params
        .distinguished_name
        .push(DnType::CommonName, party.name.as_str());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Every service is both a server and a client of the others.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    valid_for(&mut params, days);
    let key = KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|e| format!("cannot sign {}'s certificate: {e}", party.name))?;
    let [cert_path, key_path] = party_files(dir, &party.name);
    // The key first: a service that sees the new certificate finds the key that goes with it.
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    write_private(&cert_path, cert.pem().as_bytes())?;
    Ok(vec![cert_path, key_path])
}

/// Valid from an hour ago (clocks of several hosts differ a little) for `days`.
fn valid_for(params: &mut CertificateParams, days: u32) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64;
    let at = |secs: i64| {
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    };
    params.not_before = at(now - 3600);
    params.not_after = at(now + i64::from(days) * 86_400);
}

fn refuse_overwrite(files: &[PathBuf], force: bool) -> Result<(), String> {
    if force {
        return Ok(());
    }
    let present: Vec<String> = files
        .iter()
        .filter(|f| f.exists())
        .map(|f| f.display().to_string())
        .collect();
    if present.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} already exist{}; nothing was written (pass --force to replace {})",
            present.join(", "),
            if present.len() == 1 { "s" } else { "" },
            if present.len() == 1 { "it" } else { "them" }
        ))
    }
}

/// Writes `bytes` to `path` readable by its owner only, through a temporary file in the same
/// directory renamed into place.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let failed = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(failed)?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    file.as_file().sync_all().map_err(failed)?;
    file.persist(path).map_err(|e| failed(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{Credentials, TlsFiles};

    fn party(name: &str) -> Party {
        Party {
            name: name.into(),
            hosts: vec!["127.0.0.1".into()],
        }
    }

    #[test]
    fn init_makes_a_ca_and_owner_only_files_that_load_as_credentials() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let written = init(dir.path(), &[party("order-1")], 30, false).unwrap();
        assert_eq!(written.len(), 4);
        for file in &written {
            let mode = std::fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
        let [cert, key] = party_files(dir.path(), "order-1");
        let files = TlsFiles {
            ca: dir.path().join(CA_CERT),
            cert: cert.clone(),
            key,
        };
        Credentials::load(files).unwrap();
        let der = rustls::pki_types::CertificateDer::from_pem_file(&cert).unwrap();
        assert_eq!(super::super::names_in(&der), vec!["order-1".to_string()]);
    }

    #[test]
    fn nothing_is_overwritten_without_force() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), &[party("order-1")], 30, false).unwrap();
        let ca = std::fs::read(dir.path().join(CA_CERT)).unwrap();
        let e = init(dir.path(), &[party("order-1")], 30, false).unwrap_err();
        assert!(e.contains("--force"), "{e}");
        assert_eq!(std::fs::read(dir.path().join(CA_CERT)).unwrap(), ca);
        let e = add(dir.path(), &party("order-1"), 30, false).unwrap_err();
        assert!(e.contains("order-1.pem"), "{e}");
        add(dir.path(), &party("order-4"), 30, false).unwrap();
        init(dir.path(), &[party("order-1")], 30, true).unwrap();
        assert_ne!(std::fs::read(dir.path().join(CA_CERT)).unwrap(), ca);
    }

    use rustls::pki_types::pem::PemObject;
}
