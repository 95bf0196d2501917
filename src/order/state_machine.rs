//! The engine's state machine: the [`OrderBook`] every replica derives from the committed log,
//! its CSV view `orders-N.csv`, and its snapshot `snapshot-N.json`.
//!
//! The book lives in memory. A snapshot (the book as JSON, written atomically with fsync) lets
//! the engine purge the log; on start the book is read from the last snapshot, the CSV is
//! rewritten from it, and the engine re-applies the committed entries after it.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, Snapshot, StorageIOError};

use super::book::OrderBook;
use super::orders_file::{self, OrdersFile};
use super::types::{
    Applied, LogEntry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::error::{Error, Result};

/// Name of replica `id`'s snapshot file.
pub fn snapshot_file_name(id: u32) -> String {
    format!("snapshot-{id}.json")
}

/// The state machine's handle for the engine; [`OrderStore`] is the same state, for reading.
#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

/// A read handle on the applied orders, for the replica's routes.
#[derive(Clone)]
pub struct OrderStore {
    shared: Arc<Shared>,
}

struct Shared {
    machine: Mutex<Machine>,
    snapshot_path: PathBuf,
    /// Held while the snapshot file is written, so an older snapshot never overwrites a newer.
    snapshot_file: Mutex<Option<LogId>>,
}

struct Machine {
    book: OrderBook,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    orders: OrdersFile,
    /// The last snapshot built or installed, with its bytes.
    current: Option<(SnapshotMeta, Vec<u8>)>,
    snapshots_built: u64,
}

/// `snapshot-N.json` holds two JSON documents: the snapshot's meta on the first line, then the
/// book as [`OrderBook::to_bytes`] wrote it.
fn encode_snapshot_file(meta: &SnapshotMeta, book: &[u8]) -> Vec<u8> {
    // Log ids and memberships are plain data: they always serialise.
    let mut bytes = serde_json::to_vec(meta).unwrap_or_default();
    bytes.push(b'\n');
    bytes.extend_from_slice(book);
    bytes
}

fn decode_snapshot_file(bytes: &[u8]) -> std::result::Result<(SnapshotMeta, &[u8]), String> {
    let split = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("no snapshot meta line")?;
    let meta = serde_json::from_slice(&bytes[..split]).map_err(|e| format!("bad meta: {e}"))?;
    Ok((meta, &bytes[split + 1..]))
}

/// Opens replica `id`'s state machine in `data_dir`, from its snapshot if it has one.
pub fn open(data_dir: &Path, id: u32) -> Result<(StateMachine, OrderStore)> {
    let snapshot_path = data_dir.join(snapshot_file_name(id));
    let (book, meta, bytes) = match std::fs::read(&snapshot_path) {
        Ok(bytes) => {
            let corrupt = |message: String| Error::Corrupt {
                path: snapshot_path.clone(),
                line: 1,
                message,
            };
            let (meta, book_bytes) = decode_snapshot_file(&bytes)
                .map_err(|e| corrupt(format!("not a snapshot: {e}")))?;
            let book = OrderBook::from_bytes(book_bytes)
                .map_err(|e| corrupt(format!("not an order book: {e}")))?;
            (book, Some(meta), book_bytes.to_vec())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (OrderBook::default(), None, Vec::new())
        }
        Err(e) => return Err(Error::io(&snapshot_path, e)),
    };
    let orders = OrdersFile::create(
        &data_dir.join(orders_file::file_name(id)),
        book.orders_from(0),
    )?;
    let machine = Machine {
        last_applied: meta.as_ref().and_then(|m| m.last_log_id),
        membership: meta
            .as_ref()
            .map(|m| m.last_membership.clone())
            .unwrap_or_default(),
        snapshots_built: 0,
        current: meta.map(|m| (m, bytes)),
        book,
        orders,
    };
    let shared = Arc::new(Shared {
        snapshot_file: Mutex::new(machine.current.as_ref().and_then(|c| c.0.last_log_id)),
        machine: Mutex::new(machine),
        snapshot_path,
    });
    Ok((
        StateMachine {
            shared: shared.clone(),
        },
        OrderStore { shared },
    ))
}

impl Shared {
    fn machine(&self) -> MutexGuard<'_, Machine> {
        self.machine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes a snapshot file unless a newer one is already there.
    fn save_snapshot(&self, meta: &SnapshotMeta, book: &[u8]) -> std::result::Result<(), String> {
        let mut saved = self.snapshot_file.lock().unwrap_or_else(|p| p.into_inner());
        if saved.is_some() && *saved > meta.last_log_id {
            return Ok(());
        }
        crate::storage::write_atomic(&self.snapshot_path, &encode_snapshot_file(meta, book))
            .map_err(|e| e.to_string())?;
        *saved = meta.last_log_id;
        Ok(())
    }
}

impl OrderStore {
    /// Runs `read` on the book as it is now.
    pub fn read<T>(&self, read: impl FnOnce(&OrderBook) -> T) -> T {
        read(&self.shared.machine().book)
    }
}

fn sm_error(e: impl ToString) -> StorageError {
    StorageIOError::write_state_machine(AnyError::error(e)).into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> std::result::Result<Snapshot<TypeConfig>, StorageError> {
        let (meta, bytes) = {
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
            (meta, machine.book.to_bytes())
        };
        let shared = self.shared.clone();
        let (meta, bytes) = tokio::task::spawn_blocking(move || {
            shared.save_snapshot(&meta, &bytes).map(|_| (meta, bytes))
        })
        .await
        .map_err(sm_error)?
        .map_err(|e| {
            StorageError::from(StorageIOError::write_snapshot(None, AnyError::error(e)))
        })?;
        self.shared.machine().current = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> std::result::Result<(Option<LogId>, StoredMembership), StorageError> {
        let machine = self.shared.machine();
        Ok((machine.last_applied, machine.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> std::result::Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = LogEntry> + Send,
        I::IntoIter: Send,
    {
        let mut machine = self.shared.machine();
        let first_new = machine.book.len();
        let mut replies = Vec::new();
        for entry in entries {
            machine.last_applied = Some(entry.log_id);
            let reply = match entry.payload {
                EntryPayload::Blank => Applied::default(),
                EntryPayload::Normal(proposal) => {
                    let term = entry.log_id.leader_id.term;
                    Applied {
                        settled: proposal
                            .commands
                            .iter()
                            .map(|command| machine.book.apply(command, term))
                            .collect(),
                    }
                }
                EntryPayload::Membership(membership) => {
                    machine.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Applied::default()
                }
            };
            replies.push(reply);
        }
        let machine = &mut *machine;
        machine
            .orders
            .append(machine.book.orders_from(first_new))
            .map_err(sm_error)?;
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
        let book = OrderBook::from_bytes(&bytes).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(None, AnyError::error(e)))
        })?;
        let shared = self.shared.clone();
        let (saved_meta, saved_bytes) = (meta.clone(), bytes.clone());
        tokio::task::spawn_blocking(move || shared.save_snapshot(&saved_meta, &saved_bytes))
            .await
            .map_err(sm_error)?
            .map_err(sm_error)?;
        let mut machine = self.shared.machine();
        machine.orders =
            OrdersFile::create(machine.orders.path(), book.orders_from(0)).map_err(sm_error)?;
        machine.book = book;
        machine.last_applied = meta.last_log_id;
        machine.membership = meta.last_membership.clone();
        machine.current = Some((meta.clone(), bytes));
        tracing::info!("installed a snapshot up to {:?}", meta.last_log_id);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> std::result::Result<Option<Snapshot<TypeConfig>>, StorageError> {
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
