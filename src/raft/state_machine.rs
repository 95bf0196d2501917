//! A replica group's state machine for the engine: the group's [`Book`], the state every
//! replica derives from the committed log, with its [`View`] file (a CSV people read) and its
//! snapshot file.
//!
//! The book lives in memory. A snapshot (the book as JSON, written atomically with fsync) lets
//! the engine purge the log; on start the book is read from the last snapshot, the view is
//! rewritten from it, and the engine re-applies the committed entries after it.

use parking_lot::{Mutex, MutexGuard};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, BasicNode, EntryPayload, RaftSnapshotBuilder, RaftTypeConfig, Snapshot,
    StorageIOError,
};

use super::{Group, LogId, NodeId, StorageError};
use crate::error::{Error, Result};

type SnapshotMeta = openraft::SnapshotMeta<NodeId, BasicNode>;
type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
type Command<B> = <<B as Book>::Group as RaftTypeConfig>::D;
type Reply<B> = <<B as Book>::Group as RaftTypeConfig>::R;

/// The state a replica group agrees on: pure, no I/O; applying the same entries in the same
/// order gives the same book on every replica.
pub trait Book: Default + Sized + Send + 'static {
    /// The group's engine types: its snapshots are bytes, and an entry without a command
    /// (blank, membership) has a default reply.
    type Group: Group<R: Default, SnapshotData = Cursor<Vec<u8>>>;
    /// The file kept beside the snapshot, rewritten from the book on start.
    type View: View<Self>;

    /// Applies one command, committed at `log_id`, and returns its reply.
    fn apply(&mut self, command: &Command<Self>, log_id: &LogId) -> Reply<Self>;
    /// The book as a snapshot's bytes, or why it cannot be written (which stops the snapshot:
    /// empty bytes in its place would lose every order in it).
    fn to_bytes(&self) -> std::result::Result<Vec<u8>, String>;
    /// A book from [`Self::to_bytes`].
    fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String>;
}

/// A file that shows a book to people (`orders-N.csv`): derived, so never fsynced.
pub trait View<B>: Sized + Send + 'static {
    /// Replaces the file at `path` with the whole of `book`.
    fn create(path: &Path, book: &B) -> Result<Self>;
    /// Brings the file up to `book` after entries were applied.
    fn update(&mut self, book: &B) -> Result<()>;
    fn path(&self) -> &Path;
    /// Writes whatever `update` left for later, and writes no more: a service that stops, or a
    /// snapshot that replaces the view, calls it last.
    fn flush(&mut self) {}
}

/// The state machine's handle for the engine; [`Store`] is the same state, for reading.
pub struct StateMachine<B: Book> {
    shared: Arc<Shared<B>>,
}

impl<B: Book> Clone for StateMachine<B> {
    fn clone(&self) -> Self {
        StateMachine {
            shared: self.shared.clone(),
        }
    }
}

/// A read handle on the applied book, for the replica's routes.
pub struct Store<B: Book> {
    shared: Arc<Shared<B>>,
}

impl<B: Book> Clone for Store<B> {
    fn clone(&self) -> Self {
        Store {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<B: Book> {
    machine: Mutex<Machine<B>>,
    snapshot_path: PathBuf,
    /// Held while the snapshot file is written, so an older snapshot never overwrites a newer.
    snapshot_file: Mutex<Option<LogId>>,
    /// The replica's own log's durable mark, once [`StateMachine::apply_only_durable`] set it.
    durable_log: OnceLock<watch::Receiver<Option<LogId>>>,
}

struct Machine<B: Book> {
    book: B,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    view: B::View,
    /// The last snapshot built or installed, with its bytes.
    current: Option<(SnapshotMeta, Vec<u8>)>,
    snapshots_built: u64,
}

/// `snapshot-N.json` holds two JSON documents: the snapshot's meta on the first line, then the
/// book as [`OrderBook::to_bytes`] wrote it.
fn encode_snapshot_file(meta: &SnapshotMeta, book: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut bytes =
        serde_json::to_vec(meta).map_err(|e| format!("cannot serialise a snapshot's meta: {e}"))?;
    bytes.push(b'\n');
    bytes.extend_from_slice(book);
    Ok(bytes)
}

fn decode_snapshot_file(bytes: &[u8]) -> std::result::Result<(SnapshotMeta, &[u8]), String> {
    let split = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("no snapshot meta line")?;
    let meta = serde_json::from_slice(&bytes[..split]).map_err(|e| format!("bad meta: {e}"))?;
    Ok((meta, &bytes[split + 1..]))
}

/// Opens a state machine from its snapshot at `snapshot_path` if there is one, with its view at
/// `view_path`.
pub fn open<B: Book>(
    snapshot_path: &Path,
    view_path: &Path,
) -> Result<(StateMachine<B>, Store<B>)> {
    let snapshot_path = snapshot_path.to_path_buf();
    let (book, meta, bytes) = match std::fs::read(&snapshot_path) {
        Ok(bytes) => {
            let corrupt = |message: String| Error::Corrupt {
                path: snapshot_path.clone(),
                line: 1,
                message,
            };
            let (meta, book_bytes) = decode_snapshot_file(&bytes)
                .map_err(|e| corrupt(format!("not a snapshot: {e}")))?;
            let book = B::from_bytes(book_bytes)
                .map_err(|e| corrupt(format!("not a snapshot of this group: {e}")))?;
            (book, Some(meta), book_bytes.to_vec())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (B::default(), None, Vec::new()),
        Err(e) => return Err(Error::io(&snapshot_path, e)),
    };
    let view = B::View::create(view_path, &book)?;
    let machine = Machine {
        last_applied: meta.as_ref().and_then(|m| m.last_log_id),
        membership: meta
            .as_ref()
            .map(|m| m.last_membership.clone())
            .unwrap_or_default(),
        snapshots_built: 0,
        current: meta.map(|m| (m, bytes)),
        book,
        view,
    };
    let shared = Arc::new(Shared {
        snapshot_file: Mutex::new(machine.current.as_ref().and_then(|c| c.0.last_log_id)),
        machine: Mutex::new(machine),
        snapshot_path,
        durable_log: OnceLock::new(),
    });
    Ok((
        StateMachine {
            shared: shared.clone(),
        },
        Store { shared },
    ))
}

impl<B: Book> StateMachine<B> {
    /// From now on, applies an entry only once the replica's own log holds it durably
    /// ([`crate::raft::LogStore::durable`]). A leader can learn that an entry is committed from
    /// two followers before its own fsync of it ends; waiting here keeps the rule that a
    /// replica's book (and so its snapshots and replies) never runs ahead of its own log.
    pub fn apply_only_durable(&self, durable: watch::Receiver<Option<LogId>>) {
        let _ = self.shared.durable_log.set(durable);
    }

    /// Waits until the replica's own log holds `last` durably (at once without a log to follow).
    async fn wait_until_durable(&self, last: LogId) -> std::result::Result<(), StorageError> {
        let Some(durable) = self.shared.durable_log.get() else {
            return Ok(());
        };
        let mut durable = durable.clone();
        if durable.wait_for(|d| *d >= Some(last)).await.is_ok() {
            Ok(())
        } else {
            Err(sm_error("the log writer has stopped"))
        }
    }

    /// The index of the last entry the book holds, from its snapshot on opening: entries a
    /// replica holds though its log may no longer list them.
    pub fn last_applied_index(&self) -> Option<u64> {
        self.shared.machine().last_applied.map(|l| l.index)
    }
}

impl<B: Book> Shared<B> {
    fn machine(&self) -> MutexGuard<'_, Machine<B>> {
        self.machine.lock()
    }

    /// Writes a snapshot file unless a newer one is already there.
    fn save_snapshot(&self, meta: &SnapshotMeta, book: &[u8]) -> std::result::Result<(), String> {
        let mut saved = self.snapshot_file.lock();
        if saved.is_some() && *saved > meta.last_log_id {
            return Ok(());
        }
        crate::storage::write_atomic(&self.snapshot_path, &encode_snapshot_file(meta, book)?)
            .map_err(|e| e.to_string())?;
        *saved = meta.last_log_id;
        Ok(())
    }
}

impl<B: Book> Store<B> {
    /// Runs `read` on the book as it is now.
    pub fn read<T>(&self, read: impl FnOnce(&B) -> T) -> T {
        read(&self.shared.machine().book)
    }

    /// Brings the view's file up to the book now, for a service that stops.
    pub fn flush_view(&self) {
        self.shared.machine().view.flush();
    }

    /// Runs `read` on the book as it is now, and gives the index of the last entry applied to
    /// it: exactly the state `read` saw.
    pub fn read_at<T>(&self, read: impl FnOnce(&B) -> T) -> (T, u64) {
        let machine = self.shared.machine();
        let index = machine.last_applied.map_or(0, |l| l.index);
        (read(&machine.book), index)
    }
}

fn sm_error(e: impl ToString) -> StorageError {
    StorageIOError::write_state_machine(AnyError::error(e)).into()
}

impl<B: Book> StateMachine<B> {
    /// The first half of building a snapshot: the book as it is now, and its meta.
    pub(crate) fn take_snapshot(&self) -> std::result::Result<(SnapshotMeta, Vec<u8>), String> {
        let mut machine = self.shared.machine();
        machine.snapshots_built += 1;
        let snapshot_id = match machine.last_applied {
            Some(id) => format!(
                "{}-{}-{}",
                id.leader_id.term, id.index, machine.snapshots_built
            ),
            None => format!("empty-{}", machine.snapshots_built),
        };
        let meta = SnapshotMeta {
            last_log_id: machine.last_applied,
            last_membership: machine.membership.clone(),
            snapshot_id,
        };
        let bytes = machine.book.to_bytes()?;
        Ok((meta, bytes))
    }

    /// The second half: the snapshot written to its file and kept as the current one, unless a
    /// newer one was installed meanwhile (openraft builds and installs concurrently): a leader
    /// must never send a snapshot older than the log it has already purged.
    pub(crate) async fn keep_snapshot(
        &self,
        meta: SnapshotMeta,
        bytes: Vec<u8>,
    ) -> std::result::Result<Snapshot<B::Group>, StorageError> {
        let shared = self.shared.clone();
        let (meta, bytes) = tokio::task::spawn_blocking(move || {
            shared.save_snapshot(&meta, &bytes).map(|_| (meta, bytes))
        })
        .await
        .map_err(sm_error)?
        .map_err(|e| {
            StorageError::from(StorageIOError::write_snapshot(None, AnyError::error(e)))
        })?;
        let mut machine = self.shared.machine();
        let newer_installed = machine
            .current
            .as_ref()
            .is_some_and(|(current, _)| current.last_log_id > meta.last_log_id);
        if !newer_installed {
            machine.current = Some((meta.clone(), bytes.clone()));
        }
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl<B: Book> RaftSnapshotBuilder<B::Group> for StateMachine<B> {
    async fn build_snapshot(&mut self) -> std::result::Result<Snapshot<B::Group>, StorageError> {
        let (meta, bytes) = self.take_snapshot().map_err(|e| {
            StorageError::from(StorageIOError::write_snapshot(None, AnyError::error(e)))
        })?;
        self.keep_snapshot(meta, bytes).await
    }
}

impl<B: Book> RaftStateMachine<B::Group> for StateMachine<B> {
    type SnapshotBuilder = StateMachine<B>;

    async fn applied_state(
        &mut self,
    ) -> std::result::Result<(Option<LogId>, StoredMembership), StorageError> {
        let machine = self.shared.machine();
        Ok((machine.last_applied, machine.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> std::result::Result<Vec<Reply<B>>, StorageError>
    where
        I: IntoIterator<Item = openraft::Entry<B::Group>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        if let Some(last) = entries.last() {
            self.wait_until_durable(last.log_id).await?;
        }
        let mut machine = self.shared.machine();
        let mut replies = Vec::new();
        for entry in entries {
            machine.last_applied = Some(entry.log_id);
            let reply = match entry.payload {
                EntryPayload::Blank => Reply::<B>::default(),
                EntryPayload::Normal(command) => machine.book.apply(&command, &entry.log_id),
                EntryPayload::Membership(membership) => {
                    machine.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Reply::<B>::default()
                }
            };
            replies.push(reply);
        }
        let machine = &mut *machine;
        machine.view.update(&machine.book).map_err(sm_error)?;
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> std::result::Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> std::result::Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let book = B::from_bytes(&bytes).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(None, AnyError::error(e)))
        })?;
        let shared = self.shared.clone();
        let (saved_meta, saved_bytes) = (meta.clone(), bytes.clone());
        tokio::task::spawn_blocking(move || shared.save_snapshot(&saved_meta, &saved_bytes))
            .await
            .map_err(sm_error)?
            .map_err(sm_error)?;
        crate::fault::storage_point(
            crate::fault::SNAPSHOT_INSTALLING,
            &self.shared.snapshot_path,
        );
        let mut machine = self.shared.machine();
        // The old view's writer stops first: left running, it could write an older stock over
        // the file the new view has just written.
        machine.view.flush();
        machine.view = B::View::create(machine.view.path(), &book).map_err(sm_error)?;
        machine.book = book;
        machine.last_applied = meta.last_log_id;
        machine.membership = meta.last_membership.clone();
        machine.current = Some((meta.clone(), bytes));
        tracing::info!("installed a snapshot up to {:?}", meta.last_log_id);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> std::result::Result<Option<Snapshot<B::Group>>, StorageError> {
        Ok(self
            .shared
            .machine()
            .current
            .clone()
            .map(|(meta, bytes)| Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(bytes)),
            }))
    }
}
