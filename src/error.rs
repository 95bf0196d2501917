//! The library's error type: every failure a caller can act on, with a message that says what to do.

use std::path::PathBuf;

/// Failures of the library's operations. Services turn them into HTTP errors; the CLI prints them
/// as one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cause is in the message and not a `source`, so that a printed chain does not say it
    /// twice.
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
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
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Cluster(String),
    #[error("{0}")]
    Remote(String),
    /// The bench could not measure or could not render what it measured.
    #[error("{0}")]
    Bench(String),
}

impl Error {
    /// Wraps an I/O error with the path it happened on, so the message names the file.
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
