//! The order book: the state every replica derives from the committed log, the same on all.
//!
//! Pure logic, no I/O: applying the same commands in the same order gives the same book, which
//! is why the replicas' `orders-N.csv` files end byte-identical.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::types::{BuyResult, Command, Refusal, Settled};
use crate::wire::{Entry, PlaceOrder};

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
    pub fn apply_command(&mut self, command: &Command, term: u64) -> Option<Settled> {
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

    /// The request `order`'s key was settled for, when it is another one: another product
    /// (names match in any case, as the catalog matches them) or another quantity. Shown as
    /// "2 × Tux".
    pub fn other_request(&self, order: &PlaceOrder) -> Option<String> {
        let (name, quantity) = match self.numbers.get(&order.key) {
            Some(&number) => {
                let entry = self.order(number)?;
                (entry.name.as_str(), entry.quantity)
            }
            None => {
                let refusal = self.refused.get(&order.key)?;
                if refusal.name.is_empty() {
                    // Logged before refusals kept their request: nothing to compare with.
                    return None;
                }
                (refusal.name.as_str(), refusal.quantity)
            }
        };
        let same = quantity == order.quantity && name.to_lowercase() == order.name.to_lowercase();
        (!same).then(|| format!("{quantity} × {name}"))
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
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(self).map_err(|e| format!("cannot serialise the orders: {e}"))
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
                reason: crate::wire::RefusalReason::NotEnoughStock,
                message: "not enough stock".into(),
                name: "tux".into(),
                quantity: 200,
            }),
        }
    }

    #[test]
    fn numbers_follow_the_order_outcomes_are_applied_in() {
        let mut book = OrderBook::default();
        let c = book.apply_command(&bought("c"), 1);
        let a = book.apply_command(&bought("a"), 2);
        assert_eq!(c, Some(Settled::Placed { number: 0 }));
        assert_eq!(a, Some(Settled::Placed { number: 1 }));
        assert_eq!(book.order(1).unwrap().term, 2);
        assert_eq!(book.settled("b"), None);
    }

    #[test]
    fn the_first_outcome_of_a_key_wins() {
        let mut book = OrderBook::default();
        let first = book.apply_command(&bought("k"), 1);
        assert_eq!(book.apply_command(&bought("k"), 1), first);
        assert_eq!(book.apply_command(&refused("k"), 1), first);
        assert_eq!(book.len(), 1);

        book.apply_command(&refused("r"), 1);
        let refusal = book.apply_command(&bought("r"), 1);
        assert!(matches!(refusal, Some(Settled::Refused(_))));
        assert_eq!(book.len(), 1, "a refused key never takes a number");
    }

    fn request(key: &str, name: &str, quantity: u64) -> PlaceOrder {
        PlaceOrder {
            key: key.into(),
            name: name.into(),
            quantity,
        }
    }

    #[test]
    fn a_key_names_the_request_it_was_settled_for() {
        let mut book = OrderBook::default();
        assert_eq!(
            book.other_request(&request("k", "fox", 5)),
            None,
            "unsettled"
        );
        book.apply_command(&bought("k"), 1);
        assert_eq!(book.other_request(&request("k", "tux", 2)), None);
        assert_eq!(
            book.other_request(&request("k", "TUX", 2)),
            None,
            "any case"
        );
        assert_eq!(
            book.other_request(&request("k", "fox", 2)).as_deref(),
            Some("2 × Tux")
        );
        assert!(book.other_request(&request("k", "tux", 3)).is_some());

        book.apply_command(&refused("r"), 1);
        assert_eq!(book.other_request(&request("r", "Tux", 200)), None);
        assert_eq!(
            book.other_request(&request("r", "tux", 2)).as_deref(),
            Some("200 × tux")
        );
    }

    #[test]
    fn a_refusal_logged_without_its_request_matches_any() {
        let old = r#"{"outcome":{"key":"r","result":{"refused":{"code":409,"message":"no"}}}}"#;
        let command: Command = serde_json::from_str(old).unwrap();
        let mut book = OrderBook::default();
        book.apply_command(&command, 1);
        assert_eq!(book.other_request(&request("r", "fox", 1)), None);
    }

    #[test]
    fn a_book_survives_its_snapshot() {
        let mut book = OrderBook::default();
        book.apply_command(&bought("x"), 1);
        book.apply_command(&refused("y"), 1);
        let again = OrderBook::from_bytes(&book.to_bytes().unwrap()).unwrap();
        assert_eq!(again, book);
        assert_eq!(again.settled("x"), Some(Settled::Placed { number: 0 }));
        assert!(OrderBook::from_bytes(b"{").is_err());
    }
}
