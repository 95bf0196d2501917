//! The engine's log on disk: entries, vote and committed index in one append-only file,
//! `raft-N.log`, with group commit.
//!
//! Each line is a record, `CRC32 JSON`. One writer thread takes every record queued since its
//! last fsync, writes them, fsyncs once and only then tells the engine they are durable (the
//! engine's flush callback): that is where many appends share one fsync. A vote is durable
//! before [`RaftLogStorage::save_vote`] returns, and so is a truncation. The committed index
//! rides along with the next fsync: losing it only means re-learning it from the leader.
//!
//! The engine (built from `vendor/openraft`) lets a leader send entries to its followers while
//! its own write of them is in flight, which asks two things of this file, both given by the one
//! queue and the one writer: flushes are reported in order, and a vote or a truncation is
//! durable only together with every append queued before it.
//!
//! On open, the records are replayed. A last line that is incomplete or fails its checksum is a
//! write a crash cut short: it was never acknowledged, so it is cut off. Any other bad line
//! stops the replica with the file and line named. When purged records outweigh the live ones,
//! the file is rewritten whole (atomically) by the same writer, so order is never lost.

use parking_lot::{Mutex, MutexGuard};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tokio::sync::watch;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, RaftLogReader, StorageIOError};
use serde::{Deserialize, Serialize};

use super::{Group, LogId, NodeId, StorageError, Vote};
use crate::error::{Error, Result};

type LogEntry<C> = openraft::Entry<C>;

/// One line of the log file. An entry is borrowed when written (no copy on the append path)
/// and owned when read back.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", bound = "")]
enum Record<'a, C: Group> {
    Entry(Cow<'a, LogEntry<C>>),
    Vote(Vote),
    Committed(Option<LogId>),
    /// Every entry from this index on is gone.
    Truncate(u64),
    /// Every entry up to this one (inclusive) is in a snapshot and gone from the log.
    Purge(LogId),
}

impl<C: Group> Record<'_, C> {
    /// Appends the record's line to `out`. A record that cannot be serialised stops the
    /// write with an error: an empty line in its place would lose it silently.
    fn encode_into(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let json = serde_json::to_vec(self)?;
        let crc = crc32fast::hash(&json);
        out.extend_from_slice(format!("{crc:08x} ").as_bytes());
        out.extend_from_slice(&json);
        out.push(b'\n');
        Ok(())
    }

    fn decode(line: &[u8]) -> std::result::Result<Record<'static, C>, String> {
        let (crc, json) = line
            .split_first_chunk::<9>()
            .ok_or_else(|| "line too short for a record".to_string())?;
        let crc = std::str::from_utf8(&crc[..8])
            .ok()
            .and_then(|c| u32::from_str_radix(c, 16).ok())
            .ok_or_else(|| "no checksum at the start of the line".to_string())?;
        if crc32fast::hash(json) != crc {
            return Err("checksum does not match".into());
        }
        serde_json::from_slice(json).map_err(|e| format!("not a log record: {e}"))
    }
}

/// What the log holds, in memory; the file holds the same.
#[derive(Debug)]
struct State<C: Group> {
    entries: BTreeMap<u64, LogEntry<C>>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
    /// Records in the file, to tell when a rewrite would shrink it.
    records: u64,
}

impl<C: Group> Default for State<C> {
    fn default() -> Self {
        State {
            entries: BTreeMap::new(),
            vote: None,
            committed: None,
            last_purged: None,
            records: 0,
        }
    }
}

impl<C: Group> State<C> {
    fn replay(&mut self, record: Record<C>) {
        match record {
            Record::Entry(entry) => {
                let entry = entry.into_owned();
                self.entries.insert(entry.log_id.index, entry);
            }
            Record::Vote(vote) => self.vote = Some(vote),
            Record::Committed(committed) => self.committed = committed,
            Record::Truncate(from) => {
                self.entries.split_off(&from);
            }
            Record::Purge(upto) => self.purge(upto),
        }
        self.records += 1;
    }

    /// The log id of the last entry held, or of the last one compacted away.
    fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(self.last_purged)
    }

    fn purge(&mut self, upto: LogId) {
        self.entries = self.entries.split_off(&(upto.index + 1));
        if self.last_purged.is_none_or(|p| p.index < upto.index) {
            self.last_purged = Some(upto);
        }
    }

    /// The whole state as a fresh file's contents.
    fn encode_all(&self) -> serde_json::Result<(Vec<u8>, u64)> {
        let mut bytes = Vec::new();
        let mut records = 0;
        let mut put = |r: Record<C>| {
            records += 1;
            r.encode_into(&mut bytes)
        };
        if let Some(vote) = self.vote {
            put(Record::Vote(vote))?;
        }
        if let Some(purged) = self.last_purged {
            put(Record::Purge(purged))?;
        }
        put(Record::Committed(self.committed))?;
        for entry in self.entries.values() {
            put(Record::Entry(Cow::Borrowed(entry)))?;
        }
        Ok((bytes, records))
    }
}

/// Who waits for a write to be durable.
enum Done<C: Group> {
    Nobody,
    /// The engine, for entries up to this log id (none for an empty append).
    Engine(LogFlushed<C>, Option<LogId>),
    Caller(tokio::sync::oneshot::Sender<io::Result<()>>),
}

enum Job<C: Group> {
    Append(Vec<u8>, Done<C>),
    /// Replace the whole file with these bytes.
    Rewrite(Vec<u8>, Done<C>),
}

/// A cheap-to-clone handle to the log; clones share it (the engine's reader is one).
pub struct LogStore<C: Group> {
    shared: Arc<Shared<C>>,
}

impl<C: Group> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<C: Group> {
    state: Mutex<State<C>>,
    jobs: Mutex<mpsc::Sender<Job<C>>>,
    /// Set while the disk is full and the writer holds its writes until there is room.
    disk_full: Arc<AtomicBool>,
    /// The last entry known durable: see [`LogStore::durable`].
    durable: Arc<watch::Sender<Option<LogId>>>,
}

impl<C: Group> LogStore<C> {
    /// Opens (or creates) the log at `path`, replaying it, and starts its writer.
    pub fn open(path: &Path) -> Result<Self> {
        let mut state = State::default();
        match std::fs::read(path) {
            Ok(bytes) => {
                let whole = replay(&bytes, path, &mut state)?;
                crate::storage::drop_torn_tail(path, whole, bytes.len())?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                crate::storage::write_atomic(path, b"")?;
            }
            Err(e) => return Err(Error::io(path, e)),
        }
        // Opening fsyncs what was replayed, so the durable mark starts true.
        let file = crate::storage::AppendFile::open(path)?;
        let (tx, rx) = mpsc::channel();
        let disk_full = Arc::new(AtomicBool::new(false));
        let durable = Arc::new(watch::Sender::new(state.last_log_id()));
        let writer = Writer {
            disk_full: disk_full.clone(),
            durable: durable.clone(),
        };
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || write_jobs(file, rx, &writer))
            .map_err(|e| Error::io(path, e))?;
        Ok(LogStore {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                jobs: Mutex::new(tx),
                disk_full,
                durable,
            }),
        })
    }

    /// The index of the last entry the log holds (or the last one compacted away), as opened.
    pub fn last_index(&self) -> Option<u64> {
        self.state().last_log_id().map(|l| l.index)
    }

    /// The index of the last entry known committed, as the engine last saved it.
    pub fn committed_index(&self) -> Option<u64> {
        self.state().committed.map(|c| c.index)
    }

    /// How many entries the log holds, past its last compaction.
    pub fn entries(&self) -> u64 {
        self.state().entries.len() as u64
    }

    /// The log id of the last entry this log holds durably, as the writer's fsyncs complete.
    /// The engine lets a leader send entries to its followers before its own fsync of them
    /// ends, so a leader can learn that an entry is committed (durable on a majority) before
    /// its own copy is; its state machine waits on this before applying the entry
    /// ([`crate::raft::StateMachine::apply_only_durable`]), so that a replica never holds in its
    /// book or snapshot an entry its own log could lose. A leader's own entries carry its term,
    /// later than that of any entry its log held before, so "at least this log id" is the test
    /// there. (After a truncation the mark can stand above a follower's replacement entries,
    /// but a follower's entries are durable before it can apply them.)
    pub fn durable(&self) -> watch::Receiver<Option<LogId>> {
        self.shared.durable.subscribe()
    }

    /// Saves replica `id`'s own committed vote again as an uncommitted one, so that the engine
    /// starts the replica as a follower instead of taking its leadership back (openraft
    /// restores a leader that finds its own committed vote). Returns whether it did.
    ///
    /// A leader writes its own log beside its followers (`vendor/openraft/STORECTL.md`): an
    /// entry two followers hold durably is committed before the leader's own fsync of it ends,
    /// and a power cut can take it from the leader's disk. Back as the leader of the same term,
    /// the replica would lack a committed entry and write others under the same log ids, which
    /// the followers take for the entries they hold. As a follower it waits for an election,
    /// which only a replica holding every committed entry can win. The term and whom it voted
    /// for stay, so it votes for no other replica in that term.
    pub async fn resign_saved_leadership(
        &self,
        id: NodeId,
    ) -> std::result::Result<bool, StorageError> {
        let saved = self.state().vote;
        match saved {
            Some(vote) if vote.committed && vote.leader_id().voted_for() == Some(id) => {
                let resigned = Vote {
                    committed: false,
                    ..vote
                };
                self.write_durably(Record::Vote(resigned), |s| s.vote = Some(resigned))
                    .await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// A flag that is set while the disk is full: the replica writes nothing, so it neither
    /// acknowledges entries nor votes, until there is room.
    pub fn disk_full(&self) -> Arc<AtomicBool> {
        self.shared.disk_full.clone()
    }

    fn state(&self) -> MutexGuard<'_, State<C>> {
        self.shared.state.lock()
    }

    /// Queues `job` behind every earlier one. Called with the state locked, so the file sees
    /// records in the order the state changed.
    fn queue(&self, job: Job<C>) -> std::result::Result<(), WriterStopped> {
        self.shared.jobs.lock().send(job).map_err(|_| WriterStopped)
    }

    /// Queues `record` and waits until it is durable.
    async fn write_durably(
        &self,
        record: Record<'_, C>,
        apply: impl FnOnce(&mut State<C>),
    ) -> std::result::Result<(), StorageError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut bytes = Vec::new();
            record.encode_into(&mut bytes).map_err(unserialisable)?;
            let mut state = self.state();
            apply(&mut state);
            state.records += 1;
            self.queue(Job::Append(bytes, Done::Caller(tx)))?;
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(write_error(e)),
            Err(_) => Err(write_error("the log writer has stopped")),
        }
    }
}

/// The writer thread is gone, so nothing more can be made durable.
struct WriterStopped;

impl From<WriterStopped> for StorageError {
    fn from(_: WriterStopped) -> Self {
        write_error("the log writer has stopped")
    }
}

fn unserialisable(e: serde_json::Error) -> StorageError {
    write_error(format!("cannot serialise a log record: {e}"))
}

fn write_error(e: impl ToString) -> StorageError {
    StorageIOError::write_logs(AnyError::error(e)).into()
}

/// Replays the records of a log file; returns how many bytes of it are whole, good lines.
fn replay<C: Group>(bytes: &[u8], path: &Path, state: &mut State<C>) -> Result<usize> {
    let mut offset = 0;
    let mut line_number = 0;
    while offset < bytes.len() {
        line_number += 1;
        let Some(end) = bytes[offset..].iter().position(|&b| b == b'\n') else {
            break; // an incomplete last line
        };
        let line = &bytes[offset..offset + end];
        match Record::<C>::decode(line) {
            Ok(record) => state.replay(record),
            Err(_) if offset + end + 1 == bytes.len() => break, // a torn last line
            Err(message) => {
                return Err(Error::Corrupt {
                    path: path.to_path_buf(),
                    line: line_number,
                    message,
                })
            }
        }
        offset += end + 1;
    }
    Ok(offset)
}

/// How often a writer held by a full disk tries again.
const DISK_FULL_RETRY: Duration = Duration::from_millis(250);

/// The writer thread: group commit. Takes every job queued, writes them, fsyncs once, and tells
/// who waits. A full disk holds the writes (nobody is told, so nothing is acknowledged or
/// voted for) and tries them again, with whatever arrived meanwhile, until there is room; any
/// other failure leaves the log in doubt, and every write from then on fails, which stops the
/// engine.
fn write_jobs<C: Group>(
    mut file: crate::storage::AppendFile,
    jobs: mpsc::Receiver<Job<C>>,
    writer: &Writer,
) {
    let disk_full = &*writer.disk_full;
    let mut broken: Option<String> = None;
    let mut batch: Vec<Job<C>> = Vec::new();
    loop {
        if batch.is_empty() {
            match jobs.recv() {
                Ok(first) => batch.push(first),
                Err(_) => return,
            }
        }
        while let Ok(next) = jobs.try_recv() {
            batch.push(next);
        }
        if broken.is_none() {
            match write_batch(&mut file, &batch) {
                Ok(()) => {
                    writer.made_durable(&batch);
                    if disk_full.swap(false, Ordering::Relaxed) {
                        tracing::warn!("{}: room again; writes resume", file.path().display());
                    }
                }
                Err(e) if is_full(&e) => {
                    if !disk_full.swap(true, Ordering::Relaxed) {
                        tracing::error!(
                            "disk full: cannot write {} ({e}); this replica holds its writes, \
                             acknowledging and voting for nothing, until there is room",
                            file.path().display()
                        );
                    }
                    std::thread::sleep(DISK_FULL_RETRY);
                    continue;
                }
                Err(e) => {
                    let path = file.path().display().to_string();
                    tracing::error!("cannot write {path}: {e}; this replica stops");
                    broken = Some(format!("{path}: {e}"));
                }
            }
        }
        tell_who_waits(batch.drain(..), broken.as_deref());
    }
}

/// Tells each job's waiter that it is durable, or that the log is broken.
fn tell_who_waits<C: Group>(jobs: impl Iterator<Item = Job<C>>, broken: Option<&str>) {
    for job in jobs {
        let done = match job {
            Job::Append(_, done) | Job::Rewrite(_, done) => done,
        };
        let result = match broken {
            None => Ok(()),
            Some(e) => Err(io::Error::other(e.to_string())),
        };
        match done {
            Done::Nobody => {}
            Done::Engine(callback, _) => callback.log_io_completed(result),
            Done::Caller(tx) => {
                let _ = tx.send(result);
            }
        }
    }
}

/// What the writer thread reports besides each waiter's own answer.
struct Writer {
    disk_full: Arc<AtomicBool>,
    durable: Arc<watch::Sender<Option<LogId>>>,
}

impl Writer {
    /// Moves the durable mark to the last entry of a batch just written and fsynced.
    fn made_durable<C: Group>(&self, batch: &[Job<C>]) {
        let last = batch
            .iter()
            .filter_map(|job| match job {
                Job::Append(_, Done::Engine(_, last)) => *last,
                _ => None,
            })
            .max();
        if let Some(last) = last {
            self.durable.send_if_modified(|durable| {
                let later = *durable < Some(last);
                if later {
                    *durable = Some(last);
                }
                later
            });
        }
    }
}

/// Whether a write failed for want of room (a full disk, or a quota), which more room cures.
fn is_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        || e.kind() == io::ErrorKind::StorageFull
}

/// Writes a batch and fsyncs it; a failed write or fsync leaves the file as it was before the
/// batch ([`crate::storage::AppendFile`]).
fn write_batch<C: Group>(
    file: &mut crate::storage::AppendFile,
    batch: &[Job<C>],
) -> io::Result<()> {
    let waited_for = batch.iter().any(|job| {
        !matches!(
            job,
            Job::Append(_, Done::Nobody) | Job::Rewrite(_, Done::Nobody)
        )
    });
    for job in batch {
        match job {
            Job::Append(bytes, _) => file.write(bytes)?,
            Job::Rewrite(bytes, _) => file.replace(bytes).map_err(|e| match e {
                // The system's own error, so that a full disk is told from a failed one.
                Error::Io { cause, .. } => cause,
                other => io::Error::other(other),
            })?,
        }
    }
    // Records nobody waits for (the committed index, a purge) ride along with the next fsync.
    if !waited_for {
        return Ok(());
    }
    crate::fault::slow_disk();
    file.sync()
}

impl<C: Group> RaftLogReader<C> for LogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> std::result::Result<Vec<LogEntry<C>>, StorageError> {
        Ok(self
            .state()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl<C: Group> RaftLogStorage<C> for LogStore<C> {
    type LogReader = LogStore<C>;

    async fn get_log_state(&mut self) -> std::result::Result<LogState<C>, StorageError> {
        let state = self.state();
        Ok(LogState {
            last_purged_log_id: state.last_purged,
            last_log_id: state.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> std::result::Result<(), StorageError> {
        let vote = *vote;
        self.write_durably(Record::Vote(vote), |s| s.vote = Some(vote))
            .await
    }

    async fn read_vote(&mut self) -> std::result::Result<Option<Vote>, StorageError> {
        Ok(self.state().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId>,
    ) -> std::result::Result<(), StorageError> {
        let mut bytes = Vec::new();
        Record::<C>::Committed(committed)
            .encode_into(&mut bytes)
            .map_err(unserialisable)?;
        let mut state = self.state();
        state.committed = committed;
        state.records += 1;
        Ok(self.queue(Job::Append(bytes, Done::Nobody))?)
    }

    async fn read_committed(&mut self) -> std::result::Result<Option<LogId>, StorageError> {
        Ok(self.state().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> std::result::Result<(), StorageError>
    where
        I: IntoIterator<Item = LogEntry<C>> + Send,
        I::IntoIter: Send,
    {
        // Every entry is encoded before any is taken: a batch is written whole or not at all.
        let entries: Vec<LogEntry<C>> = entries.into_iter().collect();
        let last = entries.last().map(|e| e.log_id);
        let mut bytes = Vec::new();
        for entry in &entries {
            Record::<C>::Entry(Cow::Borrowed(entry))
                .encode_into(&mut bytes)
                .map_err(unserialisable)?;
        }
        let mut state = self.state();
        for entry in entries {
            state.records += 1;
            state.entries.insert(entry.log_id.index, entry);
        }
        Ok(self.queue(Job::Append(bytes, Done::Engine(callback, last)))?)
    }

    async fn truncate(&mut self, log_id: LogId) -> std::result::Result<(), StorageError> {
        let from = log_id.index;
        self.write_durably(Record::Truncate(from), |s| {
            s.entries.split_off(&from);
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> std::result::Result<(), StorageError> {
        let mut state = self.state();
        state.purge(log_id);
        let live = state.entries.len() as u64;
        let slack = if crate::fault::small_log() {
            50
        } else {
            10_000
        };
        if state.records > 2 * live + slack {
            let (bytes, records) = state.encode_all().map_err(unserialisable)?;
            state.records = records;
            Ok(self.queue(Job::Rewrite(bytes, Done::Nobody))?)
        } else {
            let mut bytes = Vec::new();
            Record::<C>::Purge(log_id)
                .encode_into(&mut bytes)
                .map_err(unserialisable)?;
            state.records += 1;
            Ok(self.queue(Job::Append(bytes, Done::Nobody))?)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    /// A command that cannot be serialised when it says so.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    #[serde(from = "bool")]
    struct Command {
        unwritable: bool,
    }

    impl From<bool> for Command {
        fn from(unwritable: bool) -> Self {
            Command { unwritable }
        }
    }

    impl Serialize for Command {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            if self.unwritable {
                return Err(serde::ser::Error::custom("this command cannot be written"));
            }
            s.serialize_bool(false)
        }
    }

    openraft::declare_raft_types!(
        Test:
            D = Command,
            R = (),
            NodeId = super::super::NodeId,
            Node = openraft::BasicNode,
            Entry = openraft::Entry<Test>,
            SnapshotData = Cursor<Vec<u8>>,
    );

    fn entry(index: u64, unwritable: bool) -> openraft::Entry<Test> {
        openraft::Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command { unwritable }),
        }
    }

    #[test]
    fn an_entry_that_cannot_be_serialised_is_refused_and_written_nowhere() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("raft-1.log");
                let mut log = LogStore::<Test>::open(&path).unwrap();
                log.blocking_append([entry(0, false)]).await.unwrap();
                let refused = log.blocking_append([entry(1, false), entry(2, true)]).await;
                assert!(refused.is_err(), "the append says it failed");
                let state = log.get_log_state().await.unwrap();
                assert_eq!(state.last_log_id.map(|l| l.index), Some(0));
                drop(log);
                let mut reopened = LogStore::<Test>::open(&path).expect("the file is whole");
                let entries = reopened.try_get_log_entries(..).await.unwrap();
                assert_eq!(entries.len(), 1);
            });
    }
}
