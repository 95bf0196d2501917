//! The catalog's state as a replica group of its own agrees on it: the stock, one answer per
//! idempotency key, the sales whose orders the order group has not confirmed, and the totals
//! that prove stock conserved. Pure logic, no I/O: applying the same commands in the same order
//! gives the same book, so every catalog replica's `catalog-N.csv` ends byte-identical.
//!
//! It is the state machine of the catalog group ([`crate::raft::Book`]).
//!
//! The rules between the two groups, which make every sale exactly one order:
//! - **One answer per key.** A key's first buy decides: sold (stock taken) or refused (why).
//!   Every later buy with the key gets that answer and changes nothing, whichever catalog leader
//!   is asked and however late, until the key is retired.
//! - **Every sale is unconfirmed until its order is logged.** The order leader confirms a key
//!   once the key's outcome is committed in the order log; an order leader places the orders of
//!   sales left unconfirmed (their leader died first), from this committed record.
//! - **A confirmed key is retired behind a watermark both groups agree on: the order log's
//!   index.** An order leader asks to buy for a key only after it saw, in its log applied up to
//!   index `as_of`, that the key is not settled; it confirms the key once the outcome is applied,
//!   with an index `settled_at` at or past it. So every buy for a key carries an `as_of` below
//!   the key's `settled_at`, including a copy of a buy that arrives late (a retry, a paused
//!   process's socket). The book keeps a confirmed key's answer until the newest index it has
//!   heard of is [`RETAIN_ENTRIES`] past its `settled_at`, then forgets it and raises its floor
//!   to that `settled_at`; a buy whose `as_of` is below the floor is refused as too old (a
//!   current leader asks again with a fresh one). No buy can then meet a retired key, and memory
//!   stays bounded: the order log answers for retired keys.
//! - **A deposed order leader buys nothing.** Every buy and confirmation carries the order
//!   leader's term, and the book keeps the highest it has seen; a buy from an older term is
//!   refused as stale, and the front end retries on the new leader.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use super::seed::SeedRow;
use super::seed::{StockRow, RESTOCK_QUANTITY};
use crate::error::{Error, Result};
use crate::wire::{
    Bought, BuyOutcome, Invalidation, PlaceOrder, RefusalReason, Refused, VersionedProduct,
};

openraft::declare_raft_types!(
    /// The type set of the catalog group's log.
    pub CatalogGroup:
        D = CatalogEntry,
        R = CatalogApplied,
        NodeId = crate::raft::NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<CatalogGroup>,
        SnapshotData = Cursor<Vec<u8>>,
);

/// One entry of the catalog's log: the commands that reached the leader's proposer together.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CatalogEntry {
    pub commands: Vec<CatalogCommand>,
}

/// What applying an entry gave: one reply per command.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CatalogApplied {
    pub replies: Vec<CatalogReply>,
}

impl crate::raft::proposer::Bundled for CatalogGroup {
    type Command = CatalogCommand;
    type Reply = CatalogReply;

    fn bundle(commands: Vec<CatalogCommand>) -> CatalogEntry {
        CatalogEntry { commands }
    }

    fn unbundle(applied: CatalogApplied) -> Vec<CatalogReply> {
        applied.replies
    }
}

/// One command of the catalog's log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CatalogCommand {
    /// The stock a new catalog starts from; a book that has products ignores it.
    Seed { rows: Vec<SeedRow> },
    /// Buys for the orders of one batch, sent by the order leader of `term`, which saw none of
    /// their keys settled in its log applied up to index `as_of`.
    Buy {
        term: u64,
        as_of: u64,
        orders: Vec<PlaceOrder>,
    },
    /// Every toy that is sold out back to [`RESTOCK_QUANTITY`].
    Restock,
    /// The order leader of `term` holds these keys' outcomes in its log, applied by index
    /// `settled_at`: they are no longer unconfirmed, and may be retired.
    Confirm {
        term: u64,
        settled_at: u64,
        keys: Vec<String>,
    },
}

/// What applying a command gave.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum CatalogReply {
    /// Nothing to say (an entry without a command, a seed, a confirmation).
    #[default]
    Done,
    /// One answer per order of the batch, and the products it changed, to invalidate in the
    /// front ends' caches before the answers are given.
    Bought {
        outcomes: Vec<BuyOutcome>,
        invalidations: Vec<Invalidation>,
    },
    /// The batch came from an order leader older than one the catalog has heard from: nothing
    /// was bought, and the leader that sent it no longer leads.
    Stale { fence: u64 },
    /// The batch's keys were checked against an order log older than the floor: nothing was
    /// bought; a leader asks again with a fresh index.
    TooOld { floor: u64 },
    /// The toys a restock refilled.
    Restocked { invalidations: Vec<Invalidation> },
}

/// How many order-log entries a confirmed key's answer outlives its settlement by: buys checked
/// against an older log are refused once it is retired. Thousands of entries are many seconds of
/// orders even under full load, far longer than any buy is in flight but for a paused process.
pub const RETAIN_ENTRIES: u64 = 10_000;

/// A key's answer, for good (until the key is retired).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Answer {
    Sold(Bought),
    Refused(Refused),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Product {
    name: String,
    price_cents: u64,
    quantity: u64,
    version: u64,
    /// Units of the seed, bought and restocked so far: seed + restocked − bought = quantity.
    seeded: u64,
    bought: u64,
    restocked: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CatalogBook {
    products: Vec<Product>,
    /// Index of each product by lower-case name; rebuilt after a snapshot is read.
    #[serde(skip)]
    by_name: HashMap<String, usize>,
    /// Every key's answer, ordered so that snapshots of the same book are the same bytes.
    answers: BTreeMap<String, Answer>,
    /// Sales whose orders the order group has not confirmed, by key.
    unconfirmed: BTreeMap<String, Bought>,
    /// The highest order-leader term a buy or a confirmation came from.
    fence: u64,
    /// Confirmed keys whose answers are kept a while yet, by the order-log index they were
    /// settled by.
    confirmed: BTreeMap<u64, Vec<String>>,
    /// The newest order-log index a buy or a confirmation carried.
    newest_index: u64,
    /// Buys checked against an order log older than this are refused: a retired key could be
    /// among them.
    floor: u64,
    /// The version the next change gets: versions only grow, across leaders and restarts.
    next_version: u64,
    /// Keys retired so far.
    retired: u64,
}

impl CatalogBook {
    /// Applies one command; returns what it gave.
    pub fn apply_command(&mut self, command: &CatalogCommand) -> CatalogReply {
        match command {
            CatalogCommand::Seed { rows } => {
                self.seed(rows);
                CatalogReply::Done
            }
            CatalogCommand::Buy {
                term,
                as_of,
                orders,
            } => self.buy(*term, *as_of, orders),
            CatalogCommand::Restock => CatalogReply::Restocked {
                invalidations: self.restock(),
            },
            CatalogCommand::Confirm {
                term,
                settled_at,
                keys,
            } => {
                if *term >= self.fence {
                    self.fence = *term;
                    for key in keys {
                        self.unconfirmed.remove(key);
                        if self.answers.contains_key(key) {
                            self.confirmed
                                .entry(*settled_at)
                                .or_default()
                                .push(key.clone());
                        }
                    }
                    self.heard_of(*settled_at);
                }
                CatalogReply::Done
            }
        }
    }

    fn seed(&mut self, rows: &[SeedRow]) {
        if !self.products.is_empty() {
            return;
        }
        for row in rows {
            if self.by_name.contains_key(&row.name.to_lowercase()) {
                continue;
            }
            let version = self.bump();
            self.by_name
                .insert(row.name.to_lowercase(), self.products.len());
            self.products.push(Product {
                name: row.name.clone(),
                price_cents: row.price_cents,
                quantity: row.quantity,
                version,
                seeded: row.quantity,
                bought: 0,
                restocked: 0,
            });
        }
    }

    fn bump(&mut self) -> u64 {
        self.next_version += 1;
        self.next_version
    }

    /// The order log has reached index `index`: retire the confirmed keys settled more than
    /// [`RETAIN_ENTRIES`] before it, and raise the floor past them.
    fn heard_of(&mut self, index: u64) {
        self.newest_index = self.newest_index.max(index);
        let horizon = self.newest_index.saturating_sub(RETAIN_ENTRIES);
        while let Some(entry) = self.confirmed.first_entry() {
            if *entry.key() >= horizon {
                break;
            }
            let settled_at = *entry.key();
            for key in entry.remove() {
                if self.answers.remove(&key).is_some() {
                    self.retired += 1;
                }
            }
            self.floor = self.floor.max(settled_at);
        }
    }

    fn buy(&mut self, term: u64, as_of: u64, orders: &[PlaceOrder]) -> CatalogReply {
        if term < self.fence {
            return CatalogReply::Stale { fence: self.fence };
        }
        if as_of < self.floor {
            return CatalogReply::TooOld { floor: self.floor };
        }
        self.fence = term;
        self.heard_of(as_of);
        let mut invalidations = Vec::new();
        let outcomes = orders
            .iter()
            .map(|order| {
                let answer = match self.answers.get(&order.key) {
                    Some(answer) => answer.clone(),
                    None => {
                        let answer = self.first_answer(order, &mut invalidations);
                        self.answers.insert(order.key.clone(), answer.clone());
                        answer
                    }
                };
                match answer {
                    Answer::Sold(bought) => BuyOutcome::Bought(bought),
                    Answer::Refused(detail) => BuyOutcome::Refused(detail),
                }
            })
            .collect();
        CatalogReply::Bought {
            outcomes,
            invalidations,
        }
    }

    /// The answer to a key asked for the first time: stock taken, or why not.
    fn first_answer(
        &mut self,
        order: &PlaceOrder,
        invalidations: &mut Vec<Invalidation>,
    ) -> Answer {
        let Some(&index) = self.by_name.get(&order.name.to_lowercase()) else {
            return Answer::Refused(Refused {
                reason: RefusalReason::UnknownProduct,
                message: format!("no product named '{}'", order.name),
            });
        };
        let version = self.next_version + 1;
        let product = &mut self.products[index];
        if product.quantity < order.quantity {
            return Answer::Refused(Refused {
                reason: RefusalReason::NotEnoughStock,
                message: format!(
                    "not enough {} in stock: {} left",
                    product.name, product.quantity
                ),
            });
        }
        product.quantity -= order.quantity;
        product.bought += order.quantity;
        product.version = version;
        self.next_version = version;
        let bought = Bought {
            name: product.name.clone(),
            quantity: order.quantity,
        };
        invalidations.push(Invalidation {
            name: product.name.to_lowercase(),
            version,
        });
        self.unconfirmed.insert(order.key.clone(), bought.clone());
        Answer::Sold(bought)
    }

    fn restock(&mut self) -> Vec<Invalidation> {
        let mut invalidations = Vec::new();
        for index in 0..self.products.len() {
            if self.products[index].quantity > 0 {
                continue;
            }
            let version = self.bump();
            let product = &mut self.products[index];
            product.quantity = RESTOCK_QUANTITY;
            product.restocked += RESTOCK_QUANTITY;
            product.version = version;
            invalidations.push(Invalidation {
                name: product.name.to_lowercase(),
                version,
            });
        }
        invalidations
    }

    /// A toy as queries show it, found by any case of its name.
    pub fn product(&self, name: &str) -> Option<VersionedProduct> {
        let product = &self.products[*self.by_name.get(&name.to_lowercase())?];
        Some(versioned(product))
    }

    pub fn products(&self) -> Vec<VersionedProduct> {
        self.products.iter().map(versioned).collect()
    }

    /// Sales whose orders the order group has not confirmed, by key.
    pub fn unconfirmed(&self) -> impl Iterator<Item = (&String, &Bought)> {
        self.unconfirmed.iter()
    }

    /// The same sales, as the wire carries them.
    pub fn unconfirmed_buys(&self) -> Vec<crate::wire::UnconfirmedBuy> {
        self.unconfirmed
            .iter()
            .map(|(key, bought)| crate::wire::UnconfirmedBuy {
                key: key.clone(),
                name: bought.name.clone(),
                quantity: bought.quantity,
            })
            .collect()
    }

    /// Every toy's totals: seeded + restocked − bought is its stock.
    pub fn totals(&self) -> Vec<crate::wire::ToyTotals> {
        self.products
            .iter()
            .map(|p| crate::wire::ToyTotals {
                name: p.name.clone(),
                seeded: p.seeded,
                bought: p.bought,
                restocked: p.restocked,
            })
            .collect()
    }

    /// Whether any toy is sold out: a restock would change something.
    pub fn any_sold_out(&self) -> bool {
        self.products.iter().any(|p| p.quantity == 0)
    }

    pub fn is_seeded(&self) -> bool {
        !self.products.is_empty()
    }

    pub fn units_in_stock(&self) -> u64 {
        self.products.iter().map(|p| p.quantity).sum()
    }

    /// Keys with an answer now: what the book holds that grows with traffic, until retired.
    pub fn keys(&self) -> usize {
        self.answers.len()
    }

    /// Keys retired so far.
    pub fn retired(&self) -> u64 {
        self.retired
    }

    /// Toys whose stock is not seed + restocked − bought: none, unless the book has a bug.
    pub fn unbalanced(&self) -> Vec<String> {
        self.products
            .iter()
            .filter(|p| p.seeded + p.restocked != p.bought + p.quantity)
            .map(|p| p.name.clone())
            .collect()
    }

    /// `catalog-N.csv`: name, price, quantity, one row per toy in seed order.
    pub fn to_csv(&self) -> Vec<u8> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        for product in &self.products {
            let row = StockRow {
                name: product.name.clone(),
                price: product.price_cents as f64 / 100.0,
                quantity: product.quantity,
            };
            // Plain rows into memory cannot fail to serialise.
            let _ = writer.serialize(row);
        }
        writer.into_inner().unwrap_or_default()
    }

    fn index(&mut self) {
        self.by_name = self
            .products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.to_lowercase(), i))
            .collect();
    }
}

fn versioned(product: &Product) -> VersionedProduct {
    VersionedProduct {
        name: product.name.clone(),
        price: product.price_cents as f64 / 100.0,
        quantity: product.quantity,
        version: product.version,
    }
}

impl crate::raft::Book for CatalogBook {
    type Group = CatalogGroup;
    type View = CatalogFile;

    fn apply(&mut self, entry: &CatalogEntry, _log_id: &crate::raft::LogId) -> CatalogApplied {
        CatalogApplied {
            replies: entry
                .commands
                .iter()
                .map(|command| self.apply_command(command))
                .collect(),
        }
    }

    fn to_bytes(&self) -> std::result::Result<Vec<u8>, String> {
        serde_json::to_vec(self).map_err(|e| format!("cannot serialise the catalog: {e}"))
    }

    fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        let mut book: CatalogBook = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        book.index();
        Ok(book)
    }
}

/// `catalog-N.csv`, the view of a catalog replica's book: rewritten whole when the stock
/// changed (a temporary file renamed over it, so a reader never sees half), never fsynced: a
/// start rewrites it from the snapshot and the log.
///
/// The rewrite is a writer thread's, off the apply path: a rename over a file makes the file
/// system start writing it out, which would cost every buy a millisecond. The thread writes the
/// newest stock it was given, then waits [`VIEW_GAP`] before the next, so under load it rewrites
/// the file a few dozen times a second however many buys are applied.
pub struct CatalogFile {
    path: PathBuf,
    /// The stock last handed to the writer.
    handed: Vec<u8>,
    writer: Option<std::thread::JoinHandle<()>>,
    slot: std::sync::Arc<ViewSlot>,
}

/// Shortest time between two rewrites of `catalog-N.csv`.
const VIEW_GAP: std::time::Duration = std::time::Duration::from_millis(20);

#[derive(Default)]
struct ViewSlot {
    /// The newest stock not yet written, and whether the writer should stop once it has
    /// written it.
    pending: parking_lot::Mutex<(Option<Vec<u8>>, bool)>,
    ready: parking_lot::Condvar,
}

impl crate::raft::View<CatalogBook> for CatalogFile {
    fn create(path: &Path, book: &CatalogBook) -> Result<Self> {
        let csv = book.to_csv();
        write_view(path, &csv)?;
        let slot = std::sync::Arc::new(ViewSlot::default());
        let writer = {
            let (slot, owned) = (slot.clone(), path.to_path_buf());
            std::thread::Builder::new()
                .name("catalog-view".into())
                .spawn(move || write_views(&slot, &owned))
                .map_err(|e| Error::io(path, e))?
        };
        Ok(CatalogFile {
            path: path.to_path_buf(),
            handed: csv,
            writer: Some(writer),
            slot,
        })
    }

    fn update(&mut self, book: &CatalogBook) -> Result<()> {
        let csv = book.to_csv();
        if csv != self.handed {
            self.handed = csv.clone();
            let mut pending = self.slot.pending.lock();
            pending.0 = Some(csv);
            self.slot.ready.notify_one();
        }
        Ok(())
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn flush(&mut self) {
        self.stop_writer();
        if let Err(e) = write_view(&self.path, &self.handed) {
            tracing::warn!("cannot rewrite {}: {e}", self.path.display());
        }
    }
}

impl CatalogFile {
    fn stop_writer(&mut self) {
        if let Some(writer) = self.writer.take() {
            self.slot.pending.lock().1 = true;
            self.slot.ready.notify_one();
            let _ = writer.join();
        }
    }
}

impl Drop for CatalogFile {
    fn drop(&mut self) {
        self.stop_writer();
    }
}

/// The writer thread: the newest stock handed over, one rewrite at a time, until told to stop.
fn write_views(slot: &ViewSlot, path: &Path) {
    // Said once until a rewrite works again: a full disk would say it every few milliseconds.
    let mut failing = false;
    loop {
        let (csv, stop) = {
            let mut pending = slot.pending.lock();
            while pending.0.is_none() && !pending.1 {
                slot.ready.wait(&mut pending);
            }
            (pending.0.take(), pending.1)
        };
        if let Some(csv) = csv {
            match write_view(path, &csv) {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(
                        "cannot rewrite {}: {e}; trying again at each change",
                        path.display()
                    );
                }
                Err(_) => {}
            }
        }
        if stop {
            return;
        }
        std::thread::sleep(VIEW_GAP);
    }
}

fn write_view(path: &Path, csv: &[u8]) -> Result<()> {
    let temporary = path.with_extension("csv.new");
    std::fs::write(&temporary, csv).map_err(|e| Error::io(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{LogStore, StateMachine, StorageError};
    use openraft::testing::{StoreBuilder, Suite};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    struct Builder;

    impl
        StoreBuilder<
            CatalogGroup,
            LogStore<CatalogGroup>,
            StateMachine<CatalogBook>,
            tempfile::TempDir,
        > for Builder
    {
        async fn build(
            &self,
        ) -> Result<
            (
                tempfile::TempDir,
                LogStore<CatalogGroup>,
                StateMachine<CatalogBook>,
            ),
            StorageError,
        > {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let log = LogStore::open(&dir.path().join("catalog-raft-1.log")).expect("a new log");
            let (machine, _) = crate::raft::state_machine::open(
                &dir.path().join("catalog-snapshot-1.json"),
                &dir.path().join("catalog-1.csv"),
            )
            .expect("a new state machine");
            Ok((dir, log, machine))
        }
    }

    /// The catalog group's storage (the shared log store, its book as the state machine)
    /// passes openraft's own storage suite, as the order group's does.
    #[test]
    fn openraft_storage_suite_on_the_catalog_group() {
        Suite::test_all(Builder).unwrap();
    }

    fn seeded(quantity: u64) -> CatalogBook {
        let mut book = CatalogBook::default();
        let rows = ["Tux", "Fox", "Lego"]
            .iter()
            .map(|name| SeedRow {
                name: name.to_string(),
                price_cents: 1999,
                quantity,
            })
            .collect();
        book.apply_command(&CatalogCommand::Seed { rows });
        book
    }

    fn order(key: &str, name: &str, quantity: u64) -> PlaceOrder {
        PlaceOrder {
            key: key.into(),
            name: name.into(),
            quantity,
        }
    }

    fn buy(book: &mut CatalogBook, term: u64, orders: &[PlaceOrder]) -> CatalogReply {
        buy_as_of(book, term, 0, orders)
    }

    fn buy_as_of(
        book: &mut CatalogBook,
        term: u64,
        as_of: u64,
        orders: &[PlaceOrder],
    ) -> CatalogReply {
        book.apply_command(&CatalogCommand::Buy {
            term,
            as_of,
            orders: orders.to_vec(),
        })
    }

    fn confirm(book: &mut CatalogBook, term: u64, settled_at: u64, keys: &[&str]) {
        book.apply_command(&CatalogCommand::Confirm {
            term,
            settled_at,
            keys: keys.iter().map(|k| k.to_string()).collect(),
        });
    }

    fn outcomes(reply: CatalogReply) -> Vec<BuyOutcome> {
        match reply {
            CatalogReply::Bought { outcomes, .. } => outcomes,
            other => panic!("not a buy's reply: {other:?}"),
        }
    }

    #[test]
    fn a_key_gets_one_answer_for_good() {
        let mut book = seeded(3);
        let sold = outcomes(buy(&mut book, 1, &[order("a", "tux", 2)]));
        assert!(matches!(&sold[0], BuyOutcome::Bought(b) if b.name == "Tux" && b.quantity == 2));
        assert_eq!(book.product("TUX").unwrap().quantity, 1);
        // The same key again, even with another body: the first answer, nothing taken.
        assert_eq!(outcomes(buy(&mut book, 1, &[order("a", "fox", 9)])), sold);
        assert_eq!(book.product("tux").unwrap().quantity, 1);

        let refused = outcomes(buy(&mut book, 1, &[order("r", "tux", 5)]));
        assert!(
            matches!(&refused[0], BuyOutcome::Refused(d) if d.reason == RefusalReason::NotEnoughStock)
        );
        // Sold out, restocked: the refused key stays refused.
        buy(&mut book, 1, &[order("b", "tux", 1)]);
        book.apply_command(&CatalogCommand::Restock);
        assert_eq!(book.product("tux").unwrap().quantity, RESTOCK_QUANTITY);
        assert_eq!(
            outcomes(buy(&mut book, 1, &[order("r", "tux", 5)])),
            refused
        );
        assert_eq!(book.product("tux").unwrap().quantity, RESTOCK_QUANTITY);
        let unknown = outcomes(buy(&mut book, 1, &[order("y", "yeti", 1)]));
        assert!(
            matches!(&unknown[0], BuyOutcome::Refused(d) if d.reason == RefusalReason::UnknownProduct)
        );
        assert!(book.unbalanced().is_empty());
    }

    #[test]
    fn a_buy_from_a_deposed_order_leader_buys_nothing() {
        let mut book = seeded(10);
        buy(&mut book, 5, &[order("a", "tux", 1)]);
        assert_eq!(
            buy(&mut book, 4, &[order("b", "tux", 1)]),
            CatalogReply::Stale { fence: 5 }
        );
        assert_eq!(book.product("tux").unwrap().quantity, 9);
        // A confirmation raises the fence too.
        confirm(&mut book, 7, 0, &[]);
        assert!(matches!(
            buy(&mut book, 6, &[order("c", "tux", 1)]),
            CatalogReply::Stale { fence: 7 }
        ));
    }

    #[test]
    fn a_sale_is_unconfirmed_until_its_order_is_logged_then_retired() {
        let mut book = seeded(10);
        buy_as_of(
            &mut book,
            1,
            5,
            &[
                order("a", "tux", 1),
                order("b", "fox", 2),
                order("r", "lego", 99),
            ],
        );
        let open: Vec<&String> = book.unconfirmed().map(|(k, _)| k).collect();
        assert_eq!(open, ["a", "b"], "refusals sell nothing to confirm");
        assert_eq!(book.keys(), 3);
        // Settled in the order log by index 8.
        confirm(&mut book, 1, 8, &["a", "r"]);
        assert_eq!(book.unconfirmed().count(), 1);
        // A copy of the first buy that arrives late still gets its answer: the keys are kept.
        let late = outcomes(buy_as_of(&mut book, 1, 5, &[order("a", "tux", 1)]));
        assert!(matches!(&late[0], BuyOutcome::Bought(_)));
        assert_eq!(book.product("tux").unwrap().quantity, 9, "not sold twice");
        assert_eq!(book.keys(), 3);
        // Once the order log has moved far past their settlement, they are retired, and a buy
        // checked against a log from before it is refused: it could be a late copy.
        let now = 8 + RETAIN_ENTRIES + 1;
        buy_as_of(&mut book, 1, now, &[order("c", "tux", 1)]);
        assert_eq!(book.keys(), 2, "b and c: memory stays bounded");
        assert_eq!(
            buy_as_of(&mut book, 1, 5, &[order("a", "tux", 1)]),
            CatalogReply::TooOld { floor: 8 }
        );
        assert_eq!(book.product("tux").unwrap().quantity, 8);
        // A confirmation from a deposed leader is ignored, like its buys.
        buy_as_of(&mut book, 2, now, &[]);
        confirm(&mut book, 1, now, &["b"]);
        assert_eq!(book.unconfirmed().count(), 2);
    }

    #[test]
    fn versions_only_grow() {
        let mut book = seeded(1);
        let v0 = book.product("tux").unwrap().version;
        let reply = buy(&mut book, 1, &[order("a", "tux", 1)]);
        let CatalogReply::Bought { invalidations, .. } = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(invalidations[0].name, "tux");
        assert!(invalidations[0].version > v0);
        let CatalogReply::Restocked {
            invalidations: refilled,
        } = book.apply_command(&CatalogCommand::Restock)
        else {
            panic!("a restock's reply")
        };
        assert_eq!(refilled.len(), 1);
        assert!(refilled[0].version > invalidations[0].version);
        assert_eq!(book.product("tux").unwrap().version, refilled[0].version);
    }

    #[test]
    fn the_same_commands_make_the_same_book_and_stock_is_always_conserved() {
        let mut rng = StdRng::seed_from_u64(7);
        let toys = ["tux", "fox", "lego", "yeti"];
        let mut commands = Vec::new();
        let mut term = 1;
        for i in 0..2000 {
            let command = match rng.random_range(0..10) {
                0 => CatalogCommand::Restock,
                1 => {
                    term += rng.random_range(0..2);
                    CatalogCommand::Confirm {
                        term,
                        settled_at: i * 10,
                        keys: (0..3)
                            .map(|_| format!("k{}", rng.random_range(0..i + 1)))
                            .collect(),
                    }
                }
                _ => CatalogCommand::Buy {
                    term: term - rng.random_range(0..2).min(term - 1),
                    as_of: (i * 10).saturating_sub(rng.random_range(0..20_000)),
                    orders: (0..rng.random_range(1..4))
                        .map(|_| {
                            let key = format!("k{}", rng.random_range(0..i + 1));
                            order(
                                &key,
                                toys[rng.random_range(0..toys.len())],
                                rng.random_range(1..6),
                            )
                        })
                        .collect(),
                },
            };
            commands.push(command);
        }
        let mut a = seeded(20);
        let mut b = seeded(20);
        for command in &commands {
            a.apply_command(command);
            assert!(a.unbalanced().is_empty(), "after {command:?}");
        }
        for command in &commands {
            b.apply_command(command);
        }
        assert_eq!(a.to_csv(), b.to_csv());
        assert!(a == b, "the same commands, the same book");
        assert!(
            crate::raft::Book::to_bytes(&a).unwrap() == crate::raft::Book::to_bytes(&b).unwrap(),
            "the same snapshot bytes"
        );
        let again: CatalogBook =
            crate::raft::Book::from_bytes(&crate::raft::Book::to_bytes(&a).unwrap()).unwrap();
        assert_eq!(again, a);
        assert_eq!(again.product("TUX"), a.product("tux"));
    }

    /// Runs `work` to its end on a runtime of its own, as a replica's engine would call it.
    fn block_on<F: std::future::Future>(work: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(work)
    }

    /// An entry of term 1 at `index` that carries `command`.
    fn entry(index: u64, command: CatalogCommand) -> openraft::Entry<CatalogGroup> {
        use openraft::{CommittedLeaderId, EntryPayload, LogId};
        openraft::Entry::<CatalogGroup> {
            log_id: LogId::new(CommittedLeaderId::new(1, 3), index),
            payload: EntryPayload::Normal(CatalogEntry {
                commands: vec![command],
            }),
        }
    }

    /// The seed of [`seeded`]`(quantity)`, as the leader commits it.
    fn seed_rows(quantity: u64) -> Vec<SeedRow> {
        seeded(quantity)
            .products
            .iter()
            .map(|p| SeedRow {
                name: p.name.clone(),
                price_cents: p.price_cents,
                quantity: p.quantity,
            })
            .collect()
    }

    #[test]
    fn a_replica_keeps_its_csv_current_and_comes_back_from_its_snapshot() {
        use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
        let dir = tempfile::tempdir().unwrap();
        let snapshot = dir.path().join("catalog-snapshot-2.json");
        let csv = dir.path().join("catalog-2.csv");
        let seed = seed_rows(5);
        block_on(async {
            let (mut machine, store) =
                crate::raft::state_machine::open::<CatalogBook>(&snapshot, &csv).unwrap();
            assert_eq!(std::fs::read_to_string(&csv).unwrap(), "", "an empty book");
            let replies = machine
                .apply([
                    entry(1, CatalogCommand::Seed { rows: seed }),
                    entry(
                        2,
                        CatalogCommand::Buy {
                            term: 1,
                            as_of: 0,
                            orders: vec![order("a", "fox", 2)],
                        },
                    ),
                ])
                .await
                .unwrap();
            assert!(matches!(replies[1].replies[0], CatalogReply::Bought { .. }));
            store.flush_view();
            let text = std::fs::read_to_string(&csv).unwrap();
            assert!(text.contains("Fox,19.99,3\n"), "{text}");
            machine
                .get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap();
            assert_eq!(store.read(|b| b.product("fox").unwrap().quantity), 3);
        });
        std::fs::remove_file(&csv).unwrap();
        let (_, store) = crate::raft::state_machine::open::<CatalogBook>(&snapshot, &csv).unwrap();
        assert_eq!(store.read(|b| b.product("FOX").unwrap().quantity), 3);
        assert_eq!(store.read(|b| b.unconfirmed().count()), 1);
        assert!(std::fs::read_to_string(&csv)
            .unwrap()
            .contains("Fox,19.99,3\n"));
    }

    #[test]
    fn a_snapshot_installed_while_a_rewrite_waits_leaves_the_snapshots_stock_in_the_csv() {
        use openraft::storage::RaftStateMachine;
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("catalog-2.csv");
        let snapshot_path = dir.path().join("catalog-snapshot-2.json");
        let buy = |index, key, quantity| {
            let orders = vec![order(key, "fox", quantity)];
            entry(
                index,
                CatalogCommand::Buy {
                    term: 1,
                    as_of: 0,
                    orders,
                },
            )
        };
        block_on(async {
            let (mut machine, _store) =
                crate::raft::state_machine::open::<CatalogBook>(&snapshot_path, &csv).unwrap();
            let seed = CatalogCommand::Seed { rows: seed_rows(5) };
            machine
                .apply([entry(1, seed), buy(2, "a", 2)])
                .await
                .unwrap();
            // The view's writer has written fox at 3 and waits before its next rewrite: the
            // next change waits for it.
            let written = || {
                let text = std::fs::read_to_string(&csv).unwrap_or_default();
                text.contains("Fox,19.99,3\n").then_some(())
            };
            let (timeout, every) = (
                std::time::Duration::from_secs(5),
                std::time::Duration::from_millis(1),
            );
            assert!(crate::poll::until(timeout, every, written).is_some());
            machine.apply([buy(3, "b", 1)]).await.unwrap();
            let book = seeded(7);
            let meta = openraft::SnapshotMeta {
                last_log_id: Some(entry(9, CatalogCommand::Restock).log_id),
                last_membership: Default::default(),
                snapshot_id: "9".into(),
            };
            let bytes = crate::raft::Book::to_bytes(&book).unwrap();
            let snapshot = Box::new(std::io::Cursor::new(bytes));
            machine.install_snapshot(&meta, snapshot).await.unwrap();
        });
        let text = std::fs::read_to_string(&csv).unwrap();
        assert!(
            text.contains("Fox,19.99,7\n"),
            "the stock before the snapshot: {text}"
        );
    }

    #[test]
    fn the_csv_has_a_header_and_the_catalogs_spelling() {
        let book = seeded(100);
        let csv = String::from_utf8(book.to_csv()).unwrap();
        assert_eq!(
            csv,
            "name,price,quantity\nTux,19.99,100\nFox,19.99,100\nLego,19.99,100\n"
        );
    }
}
