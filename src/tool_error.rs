//! The tools layer's error: why `up`, `kill`, `restart`, `member`, `status`, `chaos` or `bench`
//! could not do what was asked, each case with the data its message names. The layers below
//! fail with [`crate::Error`], carried here as [`ToolError::Base`]; the command line maps both
//! to exit codes ([`ToolError::is_usage`]), and nothing below the tools knows these cases.

use std::path::PathBuf;

use crate::config::ServiceName;

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// A failure of a layer below the tools (a file, a port, a bad argument).
    #[error(transparent)]
    Base(#[from] crate::Error),

    // The state directory and its cluster.
    #[error("no state directory at {}: start a cluster with `storectl up`, or pass --state-dir", .0.display())]
    NoStateDir(PathBuf),
    #[error("no cluster in {}: start one with `storectl up`", .0.display())]
    NoCluster(PathBuf),
    #[error("not running in the cluster in {}: {}; start it with `storectl up` (see `storectl status`)", .root.display(), .down.join(", "))]
    NotRunning { root: PathBuf, down: Vec<String> },
    #[error("a cluster is already running in {}: {}; stop it with `storectl down` first", .root.display(), .running.join(", "))]
    AlreadyRunning { root: PathBuf, running: Vec<String> },
    #[error("{0}: the cluster's secret is missing; start the cluster again with `storectl up`")]
    NoSecret(String),
    /// Why the cluster's certificates could not be made, as `certs` says it.
    #[error("{0}")]
    Certificates(String),

    // Starting and stopping services.
    #[error(
        "{address} is in use; pick other ports with --port-base, e.g. --port-base {suggested}"
    )]
    PortTaken { address: String, suggested: u16 },
    #[error("{address} is in use; give {name} another with --address HOST:PORT")]
    AddressTaken { address: String, name: ServiceName },
    #[error("{address} of {name} is still in use by another process")]
    AddressStillInUse { address: String, name: ServiceName },
    #[error("{name} exited during start: {last_line} (see {})", .log.display())]
    ExitedDuringStart {
        name: ServiceName,
        last_line: String,
        log: PathBuf,
    },
    #[error("{} did not become healthy within {secs}s; see the logs in {}", .names.join(", "), .logs.display())]
    NotHealthy {
        names: Vec<String>,
        secs: u64,
        logs: PathBuf,
    },
    #[error("{0} is not running; start it again with `storectl restart {0}`")]
    NotStarted(ServiceName),
    #[error("{name} (pid {pid}) is still running after {signal}")]
    StillRunning {
        name: ServiceName,
        pid: u32,
        signal: &'static str,
    },
    #[error("front end address '{0}' is not HOST:PORT")]
    NotHostPort(String),
    #[error("the cluster has no {0} replica")]
    NoReplica(&'static str),
    #[error("{0} is not part of this cluster")]
    NotInCluster(ServiceName),
    #[error("cannot send {signal} to pid {pid}: {cause}")]
    Signal {
        signal: &'static str,
        pid: u32,
        cause: std::io::Error,
    },
    #[error("{replica} did not catch up within {secs}s; see its log in {}", .log.display())]
    NoCatchUp {
        replica: ServiceName,
        secs: u64,
        log: PathBuf,
    },

    // The lossy disk of power-cut tests.
    #[error("the lossy disk did not start; see {}", .0.display())]
    LossyDiskExited(PathBuf),
    #[error("the lossy disk did not mount within {secs}s; see {}", .log.display())]
    LossyDiskNotMounted { secs: u64, log: PathBuf },
    #[error("the lossy disk (pid {0}) is still running after SIGTERM")]
    LossyDiskStillRunning(u32),

    // Leaders and members.
    #[error("no {group} replica is leading right now; see `storectl status`, and start the cluster with `storectl up` if it is down")]
    NoLeaderNow { group: &'static str },
    #[error("no {group} replica leads: {answering} of {replicas} answer, and an election needs a majority; {then}")]
    NoLeader {
        group: &'static str,
        answering: usize,
        replicas: usize,
        then: &'static str,
    },
    #[error("a change of the {group} group's members is under way (a joint configuration); its leader finishes it by itself: wait until `storectl member list` shows it done, then try again")]
    ChangeUnderWay { group: &'static str },
    #[error("{name} does not answer at {address}: start it there first, as a new member: `storectl serve {group} --id {id} --join --cluster FILE` (with {address} as its address in FILE)")]
    NewcomerSilent {
        name: String,
        address: String,
        group: &'static str,
        id: u32,
    },
    #[error("{name} has only {matched} of the leader's first {wanted} entries after {secs}s; it stays a learner (it counts toward no majority): see its log, then run the command again, or remove it")]
    LearnerBehind {
        name: String,
        matched: u64,
        wanted: u64,
        secs: u64,
    },
    #[error("after this change the {group} group's voters would be {voters}, of whom only {answering} answer{} now, and it needs {majority} to commit anything; bring the others back first", if *.answering == 1 { "s" } else { "" })]
    WouldLoseMajority {
        group: &'static str,
        voters: String,
        answering: usize,
        majority: usize,
    },
    #[error("the {group} group's voters are {now}, not yet {wanted}: run `storectl member list` and try again")]
    VotersNotYet {
        group: &'static str,
        now: String,
        wanted: String,
    },
    #[error("no {group} leader took the change within {secs}s; see `storectl status`")]
    NoLeaderTookChange { group: &'static str, secs: u64 },
    /// A leader's own refusal of a change, as it worded it.
    #[error("{0}")]
    Refused(String),

    // Answers from the network.
    #[error("{url}: {reason}")]
    Remote { url: String, reason: String },
    #[error("{url}: unexpected reply {body}")]
    Unexpected { url: String, body: String },

    // Chaos and the bench.
    #[error("the stock was never checked")]
    StockNeverChecked,
    #[error("cannot {what}: {cause}")]
    Bench { what: String, cause: String },
    #[error("etcd did not elect a leader within {secs}s; its logs are in {}", .logs.display())]
    EtcdNoLeader { secs: u64, logs: PathBuf },
    #[error("no etcd member leads")]
    NoEtcdMemberLeads,
    #[error("no free port for etcd: {0}")]
    NoPortForEtcd(std::io::Error),
}

impl ToolError {
    /// The user asked for what cannot be; the message says what to ask instead.
    pub fn usage(message: impl Into<String>) -> Self {
        ToolError::Base(crate::Error::Usage(message.into()))
    }

    /// The bench could not do `what` (start a server, draw a plot) for `cause`.
    pub fn cannot(what: impl Into<String>, cause: impl std::fmt::Display) -> Self {
        ToolError::Bench {
            what: what.into(),
            cause: cause.to_string(),
        }
    }

    /// A request to `url` that failed for `reason`.
    pub fn remote(url: &str, reason: impl std::fmt::Display) -> Self {
        ToolError::Remote {
            url: url.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Whether the user asked for what cannot be (exit code 2), rather than something failed.
    pub fn is_usage(&self) -> bool {
        matches!(self, ToolError::Base(crate::Error::Usage(_)))
    }
}

pub type Result<T, E = ToolError> = std::result::Result<T, E>;
