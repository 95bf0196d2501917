//! The order book: the state every replica derives from the committed log, the same on all.
//!
//! Pure logic, no I/O: applying the same commands in the same order gives the same book, which
//! is why the replicas' `orders-N.csv` files end byte-identical.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::types::{BuyResult, Command, Refusal, Settled};
use crate::wire::Entry;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OrderBook {
    /// Every placed order, in number order from 0.
    orders: Vec<Entry>,
    /// Keys whose orders the catalog refused, with its answer.
    refused: HashMap<String, Refusal>,
    /// Order number of each placed key; rebuilt from `orders` after a snapshot is read.
    #[serde(skip)]
    numbers: HashMap<String, u64>,
}

impl OrderBook {
    /// Applies one command committed in leader term `term`; returns the key's settlement.
    pub fn apply(&mut self, command: &Command, term: u64) -> Option<Settled> {
        let Command::Outcome { key, result } = command;
        if self.settled(key).is_none() {
            match result {
                BuyResult::Bought(bought) => {
                    let number = self.orders.len() as u64;
                    self.numbers.insert(key.clone(), number);
                    self.orders.push(Entry {
                        number,
                        name: bought.name.clone(),
                        quantity: bought.quantity,
                        term,
                        key: key.clone(),
                    });
                }
                BuyResult::Refused(refusal) => {
                    self.refused.insert(key.clone(), refusal.clone());
                }
            }
        }
        self.settled(key)
    }

    /// How the order with `key` ended, if it has.
    pub fn settled(&self, key: &str) -> Option<Settled> {
        if let Some(&number) = self.numbers.get(key) {
            return Some(Settled::Placed { number });
        }
        self.refused.get(key).cloned().map(Settled::Refused)
    }

    pub fn order(&self, number: u64) -> Option<&Entry> {
        self.orders.get(usize::try_from(number).ok()?)
    }

    /// Orders from number `start` on.
    pub fn orders_from(&self, start: u64) -> &[Entry] {
        let start = usize::try_from(start)
            .unwrap_or(usize::MAX)
            .min(self.orders.len());
        &self.orders[start..]
    }

    pub fn len(&self) -> u64 {
        self.orders.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }

    /// Serialises the book for a snapshot.
    pub fn to_bytes(&self) -> Vec<u8> {
        // A book of strings and integers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a book back from [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let mut book: OrderBook = serde_json::from_slice(bytes)?;
        book.numbers = book
            .orders
            .iter()
            .map(|o| (o.key.clone(), o.number))
            .collect();
        Ok(book)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Bought;

    fn bought(key: &str) -> Command {
        Command::Outcome {
            key: key.into(),
            result: BuyResult::Bought(Bought {
                name: "Tux".into(),
                quantity: 2,
            }),
        }
    }

    fn refused(key: &str) -> Command {
        Command::Outcome {
            key: key.into(),
            result: BuyResult::Refused(Refusal {
                code: 409,
                message: "not enough stock".into(),
            }),
        }
    }

    #[test]
    fn numbers_follow_the_order_outcomes_are_applied_in() {
        let mut book = OrderBook::default();
        let c = book.apply(&bought("c"), 1);
        let a = book.apply(&bought("a"), 2);
        assert_eq!(c, Some(Settled::Placed { number: 0 }));
        assert_eq!(a, Some(Settled::Placed { number: 1 }));
        assert_eq!(book.order(1).unwrap().term, 2);
        assert_eq!(book.settled("b"), None);
    }

    #[test]
    fn the_first_outcome_of_a_key_wins() {
        let mut book = OrderBook::default();
        let first = book.apply(&bought("k"), 1);
        assert_eq!(book.apply(&bought("k"), 1), first);
        assert_eq!(book.apply(&refused("k"), 1), first);
        assert_eq!(book.len(), 1);

        book.apply(&refused("r"), 1);
        let refusal = book.apply(&bought("r"), 1);
        assert!(matches!(refusal, Some(Settled::Refused(_))));
        assert_eq!(book.len(), 1, "a refused key never takes a number");
    }

    #[test]
    fn a_book_survives_its_snapshot() {
        let mut book = OrderBook::default();
        book.apply(&bought("x"), 1);
        book.apply(&refused("y"), 1);
        let again = OrderBook::from_bytes(&book.to_bytes()).unwrap();
        assert_eq!(again, book);
        assert_eq!(again.settled("x"), Some(Settled::Placed { number: 0 }));
        assert!(OrderBook::from_bytes(b"{").is_err());
    }
}
