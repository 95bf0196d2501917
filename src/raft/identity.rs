//! Who a replica's data directory belongs to. A replica writes its identity once, the first time
//! it starts (as a new group's first member with `--init`, or as a new member with `--join`):
//! its group, its id, the cluster's token from the cluster file, and an incarnation drawn at
//! random. From then on it starts only from that same directory, holding its log.
//!
//! This is what keeps a replica whose disk was wiped, or that was pointed at another replica's
//! or another cluster's files, from rejoining under its old id: it may have voted or
//! acknowledged entries that it no longer remembers, which can elect two leaders in one term
//! or lose a committed entry. It decides alone, from its own files and flags, so it holds
//! whatever else is down; the way back for such a replica is `storectl member replace`.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::raft::start_error::{ReplicaError, Result};

/// How a replica may start when its data directory holds no identity yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StartMode {
    /// First start of a new cluster: with an empty data directory, make the group with every
    /// replica of the cluster file as a member (`up` passes this for a new state directory)
    #[arg(long, conflicts_with = "join")]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// A new member of a running group: with an empty data directory, wait to be added by
    /// `storectl member add` or `member replace`
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub join: bool,
}

/// What a replica records about itself, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// `order` or `catalog`.
    pub group: String,
    pub id: u32,
    /// The cluster file's token when the replica first started (`None` for a file without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Drawn at random when the replica first started: a replica that is removed and later added
    /// again under the same id is another incarnation.
    pub incarnation: String,
    /// Whether it was one of its group's first members, which may make the group: a member
    /// that joined later waits to be added, also when it restarts before it was.
    #[serde(default)]
    pub founder: bool,
}

/// A replica about to start: where its identity and its log are, and who it says it is.
pub struct Claim<'a> {
    /// `order` or `catalog`.
    pub group: &'static str,
    pub id: u32,
    /// The cluster file's token.
    pub cluster: Option<&'a str>,
    pub identity_path: PathBuf,
    pub log_path: PathBuf,
    pub mode: StartMode,
}

/// How the replica starts, once its identity is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// With the data it had.
    Existing,
    /// As a member of a new group, which it may make.
    New,
    /// As a new member, to be added by the group's leader.
    Joining,
}

impl Claim<'_> {
    fn name(&self) -> String {
        format!("{}-{}", self.group, self.id)
    }

    fn replace_hint(&self) -> String {
        format!(
            "if its data was lost, give the group a new member in its place: `storectl member \
             replace --group {} --id {} --with NEW_ID --address HOST:PORT`",
            self.group, self.id
        )
    }

    /// Reads the identity, or writes it on a first start; refuses a directory that is not this
    /// replica's, or that lost its data.
    pub fn settle(&self) -> Result<(Identity, Start)> {
        let has_log = self.log_path.exists();
        match read(&self.identity_path)? {
            Some(identity) => {
                self.check(&identity)?;
                if !has_log {
                    return Err(ReplicaError::LogLost {
                        name: self.name(),
                        identity: self.identity_path.clone(),
                        log: self.log_path.clone(),
                        hint: self.replace_hint(),
                    });
                }
                Ok((identity, Start::Existing))
            }
            // A replica of an older storectl has its log and no identity: it adopts one.
            None if has_log => Ok((self.write_new(true)?, Start::Existing)),
            None if self.mode.init => Ok((self.write_new(true)?, Start::New)),
            None if self.mode.join => Ok((self.write_new(false)?, Start::Joining)),
            None => Err(ReplicaError::NoData {
                name: self.name(),
                dir: self
                    .identity_path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .to_path_buf(),
                hint: self.replace_hint(),
            }),
        }
    }

    fn check(&self, identity: &Identity) -> Result<()> {
        let same_cluster = match (&identity.cluster, self.cluster) {
            (Some(had), Some(has)) => had == has,
            _ => true,
        };
        if identity.group == self.group && identity.id == self.id && same_cluster {
            return Ok(());
        }
        let of_cluster = |cluster: Option<&str>| {
            cluster
                .map(|c| format!(" of cluster {c}"))
                .unwrap_or_default()
        };
        Err(ReplicaError::OthersFiles {
            identity: self.identity_path.clone(),
            owner: format!(
                "{}-{}{}",
                identity.group,
                identity.id,
                of_cluster(identity.cluster.as_deref())
            ),
            name: format!("{}{}", self.name(), of_cluster(self.cluster)),
        })
    }

    fn write_new(&self, founder: bool) -> Result<Identity> {
        let bytes: [u8; 8] = rand::random();
        let identity = Identity {
            group: self.group.to_string(),
            id: self.id,
            cluster: self.cluster.map(str::to_string),
            incarnation: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            founder,
        };
        let mut text = serde_json::to_vec_pretty(&identity)
            .map_err(|e| Error::io(&self.identity_path, std::io::Error::other(e)))?;
        text.push(b'\n');
        crate::storage::write_atomic(&self.identity_path, &text)?;
        Ok(identity)
    }
}

fn read(path: &Path) -> crate::Result<Option<Identity>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                path: path.to_path_buf(),
                line: e.line() as u64,
                message: format!("not a replica identity: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Whether `dir` holds any data of a replica: its identity or its log.
pub fn has_data(identity_path: &Path, log_path: &Path) -> bool {
    identity_path.exists() || log_path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(
        dir: &Path,
        id: u32,
        cluster: Option<&'static str>,
        mode: StartMode,
    ) -> Claim<'static> {
        Claim {
            group: "order",
            id,
            cluster,
            identity_path: dir.join(format!("identity-{id}.json")),
            log_path: dir.join(format!("raft-{id}.log")),
            mode,
        }
    }

    const INIT: StartMode = StartMode {
        init: true,
        join: false,
    };
    const JOIN: StartMode = StartMode {
        init: false,
        join: true,
    };

    #[test]
    fn an_empty_directory_starts_only_with_init_or_join() {
        let dir = tempfile::tempdir().unwrap();
        let refused = claim(dir.path(), 2, None, StartMode::default()).settle();
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("member replace"), "{message}");
        assert!(!dir.path().join("identity-2.json").exists());
        let (_, start) = claim(dir.path(), 2, None, INIT).settle().unwrap();
        assert_eq!(start, Start::New);
        let (joiner, start) = claim(dir.path(), 3, None, JOIN).settle().unwrap();
        assert_eq!(start, Start::Joining);
        assert!(!joiner.founder, "a member that joins never makes a group");
    }

    #[test]
    fn a_wiped_log_is_refused_even_with_init() {
        let dir = tempfile::tempdir().unwrap();
        let first = claim(dir.path(), 1, Some("t1"), INIT);
        first.settle().unwrap();
        std::fs::write(&first.log_path, b"").unwrap();
        let (identity, start) = claim(dir.path(), 1, Some("t1"), INIT).settle().unwrap();
        assert_eq!(start, Start::Existing);
        assert_eq!(identity.cluster.as_deref(), Some("t1"));
        std::fs::remove_file(&first.log_path).unwrap();
        let message = claim(dir.path(), 1, Some("t1"), INIT)
            .settle()
            .unwrap_err()
            .to_string();
        assert!(message.contains("no log"), "{message}");
    }

    #[test]
    fn another_clusters_or_replicas_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = claim(dir.path(), 1, Some("t1"), INIT);
        first.settle().unwrap();
        std::fs::write(&first.log_path, b"").unwrap();
        let message = claim(dir.path(), 1, Some("t2"), INIT)
            .settle()
            .unwrap_err()
            .to_string();
        assert!(message.contains("of cluster t1"), "{message}");
        // Replica 1's files under replica 3's names.
        std::fs::copy(&first.identity_path, dir.path().join("identity-3.json")).unwrap();
        std::fs::copy(&first.log_path, dir.path().join("raft-3.log")).unwrap();
        let message = claim(dir.path(), 3, Some("t1"), INIT)
            .settle()
            .unwrap_err()
            .to_string();
        assert!(message.contains("belongs to order-1"), "{message}");
    }

    #[test]
    fn an_older_replica_with_a_log_adopts_an_identity() {
        let dir = tempfile::tempdir().unwrap();
        let old = claim(dir.path(), 2, None, StartMode::default());
        std::fs::write(&old.log_path, b"").unwrap();
        let (identity, start) = old.settle().unwrap();
        assert_eq!(start, Start::Existing);
        assert_eq!(identity.incarnation.len(), 16);
        let (again, _) = old.settle().unwrap();
        assert_eq!(again, identity, "the identity is written once");
    }
}
