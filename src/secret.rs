//! The cluster's shared secret: what a caller presents to use a service's internal endpoints
//! (the engine's peer messages, buys, confirmations, invalidations).
//!
//! `storectl up` makes a random one, keeps it in the state directory readable by its owner
//! only, and hands it to each service in its environment, never on a command line that `ps`
//! shows. Calls between services carry it as `Authorization: Bearer <secret>`; it is compared in
//! constant time.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// The environment variable that carries the secret to a service (and the `--cluster-secret`
/// flag's).
pub const SECRET_ENV: &str = "STORECTL_CLUSTER_SECRET";
/// The file in a state directory that holds the secret.
pub const SECRET_FILE: &str = "cluster-secret";
/// Shortest secret a service accepts: guessing must be out of the question.
pub const MIN_SECRET_LEN: usize = 16;

/// A cheap-to-clone secret. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// A secret given by a user: at least [`MIN_SECRET_LEN`] visible ASCII characters, so that it
    /// fits in a header.
    pub fn parse(text: &str) -> std::result::Result<Secret, String> {
        if text.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the cluster secret must be at least {MIN_SECRET_LEN} characters"
            ));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the cluster secret must be visible ASCII characters, no spaces".into());
        }
        Ok(Secret(text.into()))
    }

    /// 256 random bits, in hex.
    pub fn generate() -> Secret {
        let bytes: [u8; 32] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Secret(hex.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value of the `Authorization` header that presents it.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether an `Authorization` header value presents this secret, compared in constant time.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let presented = authorization
            .and_then(|value| value.strip_prefix(b"Bearer "))
            .unwrap_or_default();
        bool::from(presented.ct_eq(self.0.as_bytes()))
    }

    /// Writes the secret to `dir/cluster-secret`, readable and writable by its owner only.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(SECRET_FILE);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        // A file made before with wider permissions keeps them through `open`: narrow them.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .and_then(|_| file.write_all(self.0.as_bytes()))
            .and_then(|_| file.sync_all())
            .map_err(|e| Error::io(&path, e))?;
        Ok(path)
    }

    /// Reads the secret `up` saved in `dir`.
    pub fn load(dir: &Path) -> Result<Secret> {
        let path = dir.join(SECRET_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        Secret::parse(text.trim()).map_err(|message| Error::Corrupt {
            path,
            line: 1,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_bearer_is_admitted() {
        let secret = Secret::parse("0123456789abcdef").unwrap();
        assert!(secret.admits(Some(b"Bearer 0123456789abcdef")));
        assert!(!secret.admits(Some(b"Bearer 0123456789abcdeX")));
        assert!(!secret.admits(Some(b"Bearer 0123456789abcde")));
        assert!(
            !secret.admits(Some(b"0123456789abcdef")),
            "the scheme is needed"
        );
        assert!(!secret.admits(Some(b"")));
        assert!(!secret.admits(None));
    }

    #[test]
    fn weak_or_unprintable_secrets_are_refused() {
        assert!(Secret::parse("short").is_err());
        assert!(Secret::parse("sixteen chars ok").is_err(), "spaces");
        assert!(Secret::parse("0123456789abcdef").is_ok());
        let generated = Secret::generate();
        assert_eq!(generated.expose().len(), 64);
        assert_ne!(generated, Secret::generate());
        assert!(!format!("{generated:?}").contains(generated.expose()));
    }

    #[test]
    fn a_saved_secret_is_private_and_loads_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let secret = Secret::generate();
        let path = secret.save(dir.path()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Secret::load(dir.path()).unwrap(), secret);
    }
}
