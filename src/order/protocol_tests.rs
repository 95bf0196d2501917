//! The protocol between the two groups, on their real books, under every interleaving a seeded
//! scheduler can make: order leaders deposed at any step (with their last outcome committed by
//! the next leader or lost), buys and confirmations delivered late, twice or never, restocks,
//! and the orphan sweep. Each group's own replication is the engine's (tested in
//! `cluster_tests.rs` and the storage suites); what is tested here is that, whatever happens
//! between them, every sale becomes exactly one order and every acknowledged order keeps its
//! number.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::book::OrderBook;
use super::types::{BuyResult, Command, Refusal, Settled};
use crate::catalog::book::{CatalogBook, CatalogCommand, CatalogReply, SeedRow};
use crate::wire::{BuyOutcome, PlaceOrder};

const TOYS: [&str; 3] = ["Tux", "Fox", "Lego"];

/// A message between the groups that has not arrived yet.
enum InFlight {
    Buy {
        term: u64,
        as_of: u64,
        order: PlaceOrder,
    },
    Confirm {
        term: u64,
        settled_at: u64,
        key: String,
    },
}

struct World {
    rng: StdRng,
    catalog: CatalogBook,
    /// The committed order log, as every order replica applies it.
    orders: OrderBook,
    /// The order log's index: entries other than outcomes (blank entries, other batches) move it
    /// too.
    index: u64,
    term: u64,
    /// Outcomes appended by a leader and not yet known committed or lost.
    uncommitted: Vec<(u64, Command)>,
    in_flight: Vec<InFlight>,
    /// Messages held until the very end: a paused process's socket, read minutes later.
    very_late: Vec<InFlight>,
    /// What each client was told: its key's order number.
    acknowledged: HashMap<String, u64>,
    requests: Vec<PlaceOrder>,
    /// Whether order leaders are deposed during the run; a run without keeps one leader, whose
    /// late messages the term fence cannot tell from its fresh ones.
    deposing: bool,
}

impl World {
    fn new(seed: u64, deposing: bool) -> Self {
        let mut catalog = CatalogBook::default();
        let rows = TOYS
            .iter()
            .map(|name| SeedRow {
                name: name.to_string(),
                price_cents: 100,
                quantity: 30,
            })
            .collect();
        catalog.apply_command(&CatalogCommand::Seed { rows });
        World {
            rng: StdRng::seed_from_u64(seed),
            catalog,
            orders: OrderBook::default(),
            index: 0,
            term: 1,
            uncommitted: Vec::new(),
            in_flight: Vec::new(),
            very_late: Vec::new(),
            acknowledged: HashMap::new(),
            requests: Vec::new(),
            deposing,
        }
    }

    fn commit(&mut self, term: u64, command: &Command) {
        self.index += self.rng.random_range(1..40);
        self.orders.apply_command(command, term);
    }

    /// Sends `message` now, later, much later, twice, or never.
    fn send(&mut self, message: InFlight) {
        match self.rng.random_range(0..20) {
            0 | 1 => {}
            2 => self.very_late.push(message),
            3..=7 => self.in_flight.push(message),
            8 | 9 => {
                let copy = match &message {
                    InFlight::Buy { term, as_of, order } => InFlight::Buy {
                        term: *term,
                        as_of: *as_of,
                        order: order.clone(),
                    },
                    InFlight::Confirm {
                        term,
                        settled_at,
                        key,
                    } => InFlight::Confirm {
                        term: *term,
                        settled_at: *settled_at,
                        key: key.clone(),
                    },
                };
                self.in_flight.push(copy);
                self.deliver(message);
            }
            _ => self.deliver(message),
        }
    }

    /// The catalog takes `message`; a buy's answer goes back to the leader that sent it.
    fn deliver(&mut self, message: InFlight) {
        match message {
            InFlight::Buy { term, as_of, order } => {
                let reply = self.catalog.apply_command(&CatalogCommand::Buy {
                    term,
                    as_of,
                    orders: vec![order.clone()],
                });
                if let CatalogReply::Bought { outcomes, .. } = reply {
                    self.answered(term, order, &outcomes[0]);
                }
            }
            InFlight::Confirm {
                term,
                settled_at,
                key,
            } => {
                self.catalog.apply_command(&CatalogCommand::Confirm {
                    term,
                    settled_at,
                    keys: vec![key],
                });
            }
        }
    }

    /// The catalog's answer reaches the leader of `term`: it appends the outcome, which commits
    /// at once while it leads (or is left to the next leader's fate), then confirms.
    fn answered(&mut self, term: u64, order: PlaceOrder, outcome: &BuyOutcome) {
        let result = match outcome {
            BuyOutcome::Bought(bought) => BuyResult::Bought(bought.clone()),
            BuyOutcome::Refused(detail) => BuyResult::Refused(Refusal {
                reason: detail.reason,
                message: detail.message.clone(),
                name: order.name.clone(),
                quantity: order.quantity,
            }),
        };
        let command = Command::Outcome {
            key: order.key.clone(),
            result,
        };
        if term != self.term {
            // Deposed before the answer came: it cannot append any more.
            return;
        }
        if self.rng.random_bool(0.1) {
            // Appended, and the leader deposed before it knew: the engine decides at the next
            // election whether the entry reached a majority.
            self.uncommitted.push((term, command));
            return;
        }
        self.commit(term, &command);
        if let Some(Settled::Placed { number }) = self.orders.settled(&order.key) {
            self.acknowledged.insert(order.key.clone(), number);
        }
        let message = InFlight::Confirm {
            term,
            settled_at: self.index,
            key: order.key,
        };
        self.send(message);
    }

    /// A client sends its order (again) to the leader.
    fn order(&mut self, order: PlaceOrder) {
        match self.orders.settled(&order.key) {
            Some(Settled::Placed { number }) => {
                self.acknowledged.insert(order.key.clone(), number);
            }
            Some(Settled::Refused(_)) => {}
            None => {
                let message = InFlight::Buy {
                    term: self.term,
                    as_of: self.index,
                    order,
                };
                self.send(message);
            }
        }
    }

    /// A new order leader: each outcome its predecessors appended is committed (it reached a
    /// majority) or lost, as the engine decides; the first outcome of a key wins.
    fn depose(&mut self) {
        self.term += 1;
        for (term, command) in std::mem::take(&mut self.uncommitted) {
            if self.rng.random_bool(0.5) {
                self.commit(term, &command);
            }
        }
    }

    /// The leader's sweep: confirms the unconfirmed sales its log settles, places the others.
    fn sweep(&mut self) {
        let open: Vec<(String, String, u64)> = self
            .catalog
            .unconfirmed()
            .map(|(key, bought)| (key.clone(), bought.name.clone(), bought.quantity))
            .collect();
        for (key, name, quantity) in open {
            match self.orders.settled(&key) {
                Some(_) => {
                    let message = InFlight::Confirm {
                        term: self.term,
                        settled_at: self.index,
                        key,
                    };
                    self.send(message);
                }
                None => self.order(PlaceOrder {
                    key,
                    name,
                    quantity,
                }),
            }
        }
    }

    fn step(&mut self) {
        match self.rng.random_range(0..100) {
            0..=49 => {
                let order = if self.requests.is_empty() || self.rng.random_bool(0.6) {
                    let order = PlaceOrder {
                        key: format!("k{}", self.requests.len()),
                        name: TOYS[self.rng.random_range(0..TOYS.len())].to_string(),
                        quantity: self.rng.random_range(1..4),
                    };
                    self.requests.push(order.clone());
                    order
                } else {
                    // A client retrying with its key, however late.
                    self.requests[self.rng.random_range(0..self.requests.len())].clone()
                };
                self.order(order);
            }
            50..=74 if !self.in_flight.is_empty() => {
                let at = self.rng.random_range(0..self.in_flight.len());
                let message = self.in_flight.swap_remove(at);
                self.deliver(message);
            }
            75..=84 => self.sweep(),
            85..=92 if self.deposing => self.depose(),
            93..=95 => {
                self.catalog.apply_command(&CatalogCommand::Restock);
            }
            _ => {}
        }
    }

    /// Everything in flight arrives, late; then one stable leader sweeps until the catalog
    /// holds nothing unconfirmed.
    fn settle(&mut self) {
        self.depose();
        self.in_flight.append(&mut self.very_late);
        while let Some(message) = self.in_flight.pop() {
            self.deliver(message);
        }
        for _ in 0..50 {
            self.sweep();
            while let Some(message) = self.in_flight.pop() {
                self.deliver(message);
            }
            if self.catalog.unconfirmed().next().is_none() {
                return;
            }
        }
        panic!("sales still unconfirmed after the sweeps");
    }

    /// Every unit the catalog sold is in exactly one order; every acknowledged order kept its
    /// number.
    fn check(&self) {
        let mut ordered: HashMap<String, u64> = HashMap::new();
        for entry in self.orders.orders_from(0) {
            *ordered.entry(entry.name.clone()).or_default() += entry.quantity;
        }
        for toy in self.catalog.totals() {
            assert_eq!(
                toy.bought,
                ordered.get(&toy.name).copied().unwrap_or(0),
                "{}: units sold and units ordered differ",
                toy.name
            );
        }
        assert!(self.catalog.unbalanced().is_empty());
        for (key, number) in &self.acknowledged {
            assert_eq!(
                self.orders.settled(key),
                Some(Settled::Placed { number: *number }),
                "{key}"
            );
        }
    }
}

#[test]
fn every_sale_becomes_exactly_one_order_whatever_the_interleaving() {
    let mut retired = 0;
    for seed in 0..40 {
        let mut world = World::new(seed, seed % 2 == 0);
        for _ in 0..4_000 {
            world.step();
        }
        world.settle();
        world.check();
        assert!(!world.acknowledged.is_empty());
        retired += world.catalog.retired();
    }
    assert!(retired > 0, "the runs reached the retirement of keys");
}
