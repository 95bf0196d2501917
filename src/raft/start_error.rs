//! Why a replica of either group would not start or stopped serving: each case with what its
//! message names. Failures of the layers below (a file, a port) come as
//! [`ReplicaError::Base`]; the command line maps both to exit codes.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Base(#[from] crate::Error),
    #[error("{name} has its identity in {} but no log ({}): its data was lost, and it may have acknowledged entries it no longer has; {hint}", .identity.display(), .log.display())]
    LogLost {
        name: String,
        identity: PathBuf,
        log: PathBuf,
        hint: String,
    },
    #[error("{name} has no data in {}: it is neither a new cluster's first start (--init) nor a new member (--join), so it will not rejoin under its old id; {hint}", .dir.display())]
    NoData {
        name: String,
        dir: PathBuf,
        hint: String,
    },
    /// The data directory holds the files of `owner`, another replica (or cluster) than `name`.
    #[error("{} belongs to {owner}, not to {name}: these are another replica's files; point --data-dir at this replica's own directory, or add this host as a new member with `storectl member replace`", .identity.display())]
    OthersFiles {
        identity: PathBuf,
        owner: String,
        name: String,
    },
    #[error("{} holds {orders} orders but {} is missing: this replica's log was lost or was written by an older storectl; start a new cluster in an empty state directory", .orders_file.display(), .log.display())]
    OrdersWithoutLog {
        orders_file: PathBuf,
        orders: usize,
        log: PathBuf,
    },
    /// `what` says how far this replica's log goes; the leader holds more of it.
    #[error("{what}, but its group's leader (replica {leader}) holds a copy of its entries up to index {index}: this replica's data was lost or restored from an older copy. Give the group a new member in its place with `storectl member replace`")]
    GoneBack {
        what: String,
        leader: u32,
        index: u64,
    },
    /// Timeouts or engine settings that do not fit together.
    #[error("{0}")]
    Settings(String),
    #[error("{name} cannot start: {cause}")]
    EngineStart { name: String, cause: String },
    #[error("{0}'s engine stopped; see the lines above for why")]
    EngineStopped(String),
}

impl ReplicaError {
    /// Whether the user asked for what cannot be (exit code 2), rather than something failed.
    pub fn is_usage(&self) -> bool {
        matches!(self, ReplicaError::Base(crate::Error::Usage(_)))
    }
}

pub type Result<T, E = ReplicaError> = std::result::Result<T, E>;
