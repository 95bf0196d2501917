//! The library's error type: every failure a caller can act on, with a message that says what to do.

use std::path::PathBuf;

pub use crate::access::Access;

/// Failures of the layers up to the services' plumbing. The replicas' start
/// (`raft::ReplicaError`) and the tools (`tool_error::ToolError`) carry it in errors of their
/// own; services turn it into HTTP errors, and the CLI prints it as one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cause is in the message and not a `source`, so that a printed chain does not say it
    /// twice.
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// A file or directory that a service needs and that the user it runs as may not use: the
    /// message names the path, the user, and what to change.
    #[error("{0}")]
    Denied(String),
    #[error("{path}, line {line}: {message}")]
    Corrupt {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("cannot listen on {addr}: {source} (is another service using that port? pick another with --port or --port-base)")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The caller asked for what cannot be: exit code 2 at the command line.
    #[error("{0}")]
    Usage(String),
    #[error("could not find {count} free ports in a row on {host}; pass --port-base")]
    NoFreePorts { host: String, count: u16 },
    /// Why each catalog replica asked for the stock did not give it.
    #[error("no catalog replica leads, so the stock cannot be checked ({}); start the catalog replicas (storectl status says which are down)", .0.join("; "))]
    NoCatalogLeader(Vec<String>),
}

impl Error {
    /// Wraps an I/O error with the path it happened on, so the message names the file.
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause,
        }
    }

    /// Like [`Error::io`], for a file or directory that a service needs to start (its cluster
    /// file, its data directory): when the system refuses it, the message says which user the
    /// service runs as, which file or directory on the way refuses it, and what to change.
    pub fn access(path: impl Into<PathBuf>, access: Access, cause: std::io::Error) -> Self {
        let path = path.into();
        if cause.kind() == std::io::ErrorKind::PermissionDenied {
            Error::Denied(crate::access::denied(&path, access, &cause))
        } else {
            Error::io(path, cause)
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refusal_gets_the_users_message() {
        let denied = Error::access(
            "/etc/storectl/cluster.toml",
            Access::Read,
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        let message = denied.to_string();
        assert!(
            message.starts_with("cannot read /etc/storectl/cluster.toml as uid "),
            "{message}"
        );
        let other = Error::access(
            "/x",
            Access::Read,
            std::io::Error::from(std::io::ErrorKind::InvalidData),
        );
        assert!(matches!(other, Error::Io { .. }), "{other:?}");
    }
}
