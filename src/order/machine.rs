//! The order group's state machine for the engine: the [`OrderBook`] applied from the log, with
//! `orders-N.csv` as its view and `snapshot-N.json` as its snapshot.

use std::path::Path;

use super::book::OrderBook;
use super::orders_file::{self, OrdersFile};
use super::types::{Applied, LogId, Proposal, TypeConfig};
use crate::error::Result;
use crate::raft;

pub type StateMachine = raft::StateMachine<OrderBook>;
/// A read handle on the applied orders, for the replica's routes.
pub type OrderStore = raft::Store<OrderBook>;

/// Name of replica `id`'s snapshot file.
pub fn snapshot_file_name(id: u32) -> String {
    format!("snapshot-{id}.json")
}

/// Opens replica `id`'s state machine in `data_dir`, from its snapshot if it has one.
pub fn open(data_dir: &Path, id: u32) -> Result<(StateMachine, OrderStore)> {
    raft::state_machine::open(
        &data_dir.join(snapshot_file_name(id)),
        &data_dir.join(orders_file::file_name(id)),
    )
}

impl raft::Book for OrderBook {
    type Group = TypeConfig;
    type View = OrdersFile;

    /// Every command of the entry, in order; an order's number comes from the book, its term
    /// from the leader that committed it.
    fn apply(&mut self, proposal: &Proposal, log_id: &LogId) -> Applied {
        let term = log_id.leader_id.term;
        Applied {
            settled: proposal
                .commands
                .iter()
                .map(|command| self.apply_command(command, term))
                .collect(),
        }
    }

    fn to_bytes(&self) -> std::result::Result<Vec<u8>, String> {
        OrderBook::to_bytes(self)
    }

    fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        OrderBook::from_bytes(bytes).map_err(|e| e.to_string())
    }
}

impl raft::View<OrderBook> for OrdersFile {
    fn create(path: &Path, book: &OrderBook) -> Result<Self> {
        OrdersFile::create(path, book.orders_from(0))
    }

    /// Appends the orders applied since the last update: numbers only grow.
    fn update(&mut self, book: &OrderBook) -> Result<()> {
        self.append(book.orders_from(self.written()))
    }

    fn path(&self) -> &Path {
        OrdersFile::path(self)
    }
}
