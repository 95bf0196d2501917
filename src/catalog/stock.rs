//! The catalog's stock as pure state: lookups, buys and restocks, with no I/O.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ledger::{Kind, Record};
use crate::conservation::Totals;
use crate::error::{Error, Result};
use crate::wire::{Bought, Invalidation, VersionedProduct};

/// The stock every toy is brought back to by a restock.
pub const RESTOCK_QUANTITY: u64 = 100;

/// One row of `catalog.csv`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StockRow {
    pub name: String,
    pub price: f64,
    pub quantity: u64,
}

#[derive(Debug, Clone)]
struct Item {
    row: StockRow,
    version: u64,
}

/// Why a buy was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuyError {
    UnknownProduct(String),
    NotEnoughStock { name: String, available: u64 },
}

/// A refused buy: why, and whether this was the key's first answer, which the ledger must
/// record, or the same answer again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub error: BuyError,
    pub first: bool,
}

impl Refused {
    /// The ledger record of the refusal of `key`.
    pub fn record(&self, key: &str) -> Record {
        let (name, quantity) = match &self.error {
            BuyError::UnknownProduct(name) => (name.clone(), 0),
            BuyError::NotEnoughStock { name, available } => (name.clone(), *available),
        };
        Record {
            kind: Kind::Refuse,
            key: key.to_string(),
            name,
            quantity,
        }
    }
}

/// The result of a buy that changed the stock.
#[derive(Debug, Clone, PartialEq)]
pub struct Purchase {
    pub bought: Bought,
    /// `None` when the key had already bought: nothing changed this time.
    pub invalidation: Option<Invalidation>,
}

/// Products by lower-case name, and the idempotency keys that have bought.
#[derive(Debug)]
pub struct Stock {
    items: Vec<Item>,
    by_name: HashMap<String, usize>,
    bought_keys: HashMap<String, Bought>,
    /// Keys whose buy was refused, with why: a key's answer never changes.
    refused_keys: HashMap<String, BuyError>,
    next_version: u64,
}

impl Stock {
    /// Reads `catalog.csv` text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|e| corrupt(path, 1, e.to_string()))?;
        if headers != vec!["name", "price", "quantity"] {
            return Err(corrupt(
                path,
                1,
                format!(
                    "header must be 'name,price,quantity', found '{}'",
                    headers.iter().collect::<Vec<_>>().join(",")
                ),
            ));
        }
        let mut rows = Vec::new();
        for (i, record) in reader.deserialize::<StockRow>().enumerate() {
            let line = i as u64 + 2;
            let row = record.map_err(|e| corrupt(path, line, e.to_string()))?;
            if row.name.trim().is_empty() || !row.price.is_finite() || row.price < 0.0 {
                return Err(corrupt(
                    path,
                    line,
                    "a product needs a name and a price ≥ 0".into(),
                ));
            }
            rows.push(row);
        }
        Self::from_rows(rows).map_err(|m| corrupt(path, 1, m))
    }

    fn from_rows(rows: Vec<StockRow>) -> std::result::Result<Self, String> {
        let mut stock = Stock {
            items: Vec::with_capacity(rows.len()),
            by_name: HashMap::new(),
            bought_keys: HashMap::new(),
            refused_keys: HashMap::new(),
            next_version: 0,
        };
        for row in rows {
            let key = row.name.to_lowercase();
            if stock.by_name.contains_key(&key) {
                return Err(format!("product '{}' is listed twice", row.name));
            }
            stock.by_name.insert(key, stock.items.len());
            let version = stock.bump();
            stock.items.push(Item { row, version });
        }
        Ok(stock)
    }

    /// Gives every product a version above `floor`, and every later change one above those:
    /// the catalog passes the floor it reserved for this run (see `versions`), so the front end
    /// never sees a version go back across a restart.
    pub fn start_versions_above(&mut self, floor: u64) {
        self.next_version = self.next_version.max(floor);
        for i in 0..self.items.len() {
            let version = self.bump();
            self.items[i].version = version;
        }
    }

    fn bump(&mut self) -> u64 {
        self.next_version += 1;
        self.next_version
    }

    pub fn to_csv(&self) -> Vec<u8> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        for item in &self.items {
            // Serialising plain rows into memory cannot fail.
            let _ = writer.serialize(&item.row);
        }
        writer.into_inner().unwrap_or_default()
    }

    /// Looks a product up by name, case-insensitively.
    pub fn get(&self, name: &str) -> Option<VersionedProduct> {
        let index = *self.by_name.get(&name.to_lowercase())?;
        let item = &self.items[index];
        Some(VersionedProduct {
            name: item.row.name.clone(),
            price: item.row.price,
            quantity: item.row.quantity,
            version: item.version,
        })
    }

    pub fn products(&self) -> Vec<VersionedProduct> {
        self.items
            .iter()
            .filter_map(|item| self.get(&item.row.name))
            .collect()
    }

    /// A seed record for every toy: the stock the ledger starts from.
    pub fn seed_records(&self) -> Vec<Record> {
        self.items
            .iter()
            .map(|item| Record {
                kind: Kind::Seed,
                key: String::new(),
                name: item.row.name.clone(),
                quantity: item.row.quantity,
            })
            .collect()
    }

    /// Takes the quantities and buy keys the ledger replays to, which are durable before the
    /// file is. Returns the toys whose quantity differed and toys the ledger has no seed for.
    pub fn apply_ledger(&mut self, totals: &Totals) -> (Vec<String>, Vec<Record>) {
        let mut repaired = Vec::new();
        let mut unseeded = Vec::new();
        for item in &mut self.items {
            match totals.stock(&item.row.name) {
                Some(quantity) if quantity != item.row.quantity => {
                    repaired.push(item.row.name.clone());
                    item.row.quantity = quantity;
                }
                Some(_) => {}
                None => unseeded.push(Record {
                    kind: Kind::Seed,
                    key: String::new(),
                    name: item.row.name.clone(),
                    quantity: item.row.quantity,
                }),
            }
        }
        for (key, (name, available)) in &totals.refused {
            let error = match self.get(name) {
                Some(product) => BuyError::NotEnoughStock {
                    name: product.name,
                    available: *available,
                },
                None => BuyError::UnknownProduct(name.clone()),
            };
            self.refused_keys.insert(key.clone(), error);
        }
        for (key, (name, quantity)) in &totals.buys {
            self.bought_keys.insert(
                key.clone(),
                Bought {
                    name: name.clone(),
                    quantity: *quantity,
                },
            );
        }
        (repaired, unseeded)
    }

    /// Gives every toy `quantity` units: a seed other than the built-in one.
    pub fn set_all_quantities(&mut self, quantity: u64) {
        for item in &mut self.items {
            item.row.quantity = quantity;
        }
    }

    /// Every key that bought, with what it bought.
    pub fn bought(&self) -> impl Iterator<Item = (&String, &Bought)> {
        self.bought_keys.iter()
    }

    pub fn units_in_stock(&self) -> u64 {
        self.items.iter().map(|i| i.row.quantity).sum()
    }

    /// Takes `quantity` of `name` unless `key` already has an answer, in which case nothing
    /// changes and the first answer (bought, or refused) is returned.
    pub fn buy(
        &mut self,
        key: &str,
        name: &str,
        quantity: u64,
    ) -> std::result::Result<Purchase, Refused> {
        if let Some(bought) = self.bought_keys.get(key) {
            return Ok(Purchase {
                bought: bought.clone(),
                invalidation: None,
            });
        }
        if let Some(error) = self.refused_keys.get(key) {
            return Err(Refused {
                error: error.clone(),
                first: false,
            });
        }
        let mut refuse = |error: BuyError| {
            self.refused_keys.insert(key.to_string(), error.clone());
            Err(Refused { error, first: true })
        };
        let Some(&index) = self.by_name.get(&name.to_lowercase()) else {
            return refuse(BuyError::UnknownProduct(name.to_string()));
        };
        let available = self.items[index].row.quantity;
        if available < quantity {
            let name = self.items[index].row.name.clone();
            return refuse(BuyError::NotEnoughStock { name, available });
        }
        let version = self.bump();
        let item = &mut self.items[index];
        item.row.quantity -= quantity;
        item.version = version;
        let bought = Bought {
            name: item.row.name.clone(),
            quantity,
        };
        self.bought_keys.insert(key.to_string(), bought.clone());
        Ok(Purchase {
            bought,
            invalidation: Some(Invalidation {
                name: item.row.name.to_lowercase(),
                version,
            }),
        })
    }

    /// Brings every toy that is sold out back to [`RESTOCK_QUANTITY`].
    pub fn restock(&mut self) -> Vec<Invalidation> {
        let sold_out: Vec<usize> = (0..self.items.len())
            .filter(|&i| self.items[i].row.quantity == 0)
            .collect();
        sold_out
            .into_iter()
            .map(|i| {
                let version = self.bump();
                let item = &mut self.items[i];
                item.row.quantity = RESTOCK_QUANTITY;
                item.version = version;
                Invalidation {
                    name: item.row.name.to_lowercase(),
                    version,
                }
            })
            .collect()
    }
}

fn corrupt(path: &Path, line: u64, message: String) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        line,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stock() -> Stock {
        Stock::parse(
            "name,price,quantity\nTux,25.99,3\nFox,9.99,0\n",
            Path::new("t.csv"),
        )
        .unwrap()
    }

    #[test]
    fn lookups_ignore_case_and_keep_spelling() {
        let s = stock();
        assert_eq!(s.get("TUX").unwrap().name, "Tux");
        assert!(s.get("yeti").is_none());
    }

    #[test]
    fn buys_take_stock_once_per_key() {
        let mut s = stock();
        let first = s.buy("k1", "tux", 2).unwrap();
        assert!(first.invalidation.is_some());
        let again = s.buy("k1", "tux", 2).unwrap();
        assert!(again.invalidation.is_none());
        assert_eq!(s.get("tux").unwrap().quantity, 1);
        let short = BuyError::NotEnoughStock {
            name: "Tux".into(),
            available: 1,
        };
        assert_eq!(
            s.buy("k2", "tux", 2),
            Err(Refused {
                error: short.clone(),
                first: true
            })
        );
        assert!(matches!(
            s.buy("k3", "yeti", 1),
            Err(Refused {
                error: BuyError::UnknownProduct(_),
                first: true
            })
        ));
    }

    #[test]
    fn a_refused_key_stays_refused_after_a_restock_and_a_restart() {
        let mut s = stock();
        let refused = s.buy("k", "tux", 5).unwrap_err();
        s.restock();
        s.buy("other", "tux", 3).unwrap();
        s.restock();
        assert_eq!(s.get("tux").unwrap().quantity, RESTOCK_QUANTITY);
        let again = s.buy("k", "tux", 5).unwrap_err();
        assert_eq!(again.error, refused.error, "the first answer, for good");
        assert!(!again.first, "nothing new to record");
        assert_eq!(s.get("tux").unwrap().quantity, RESTOCK_QUANTITY);

        // From the ledger: the refusal replays as the key's answer.
        let mut totals = Totals::default();
        s.seed_records().iter().for_each(|r| totals.add(r));
        totals.add(&refused.record("k"));
        totals.add(
            &Refused {
                error: BuyError::UnknownProduct("yeti".into()),
                first: true,
            }
            .record("y"),
        );
        let mut restarted = stock();
        restarted.apply_ledger(&totals);
        assert_eq!(
            restarted.buy("k", "tux", 1).unwrap_err().error,
            refused.error
        );
        assert!(matches!(
            restarted.buy("y", "yeti", 1).unwrap_err().error,
            BuyError::UnknownProduct(name) if name == "yeti"
        ));
        assert_eq!(totals.stock("yeti"), None, "a refusal takes no stock");
    }

    #[test]
    fn every_change_raises_the_version() {
        let mut s = stock();
        let v0 = s.get("tux").unwrap().version;
        let inv = s.buy("k", "tux", 1).unwrap().invalidation.unwrap();
        assert!(inv.version > v0);
        assert_eq!(s.get("tux").unwrap().version, inv.version);
    }

    #[test]
    fn restock_refills_only_sold_out_toys() {
        let mut s = stock();
        let changed = s.restock();
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].name, "fox");
        assert_eq!(s.get("fox").unwrap().quantity, RESTOCK_QUANTITY);
        assert_eq!(s.get("tux").unwrap().quantity, 3);
    }

    #[test]
    fn csv_round_trips_and_bad_files_name_the_line() {
        let s = stock();
        let text = String::from_utf8(s.to_csv()).unwrap();
        assert_eq!(text, "name,price,quantity\nTux,25.99,3\nFox,9.99,0\n");
        let err = Stock::parse("name,price,quantity\nTux,abc,1\n", Path::new("c.csv")).unwrap_err();
        assert!(err.to_string().contains("c.csv, line 2"), "{err}");
        let err = Stock::parse("nom,prix\n", Path::new("c.csv")).unwrap_err();
        assert!(err.to_string().contains("header"), "{err}");
    }

    #[test]
    fn the_embedded_catalog_is_valid() {
        let s = Stock::parse(
            crate::catalog::INITIAL_CATALOG,
            Path::new("data/catalog.csv"),
        )
        .unwrap();
        assert!(s.products().len() >= 15);
        assert!(s.products().iter().all(|p| p.quantity == 100));
        for toy in [
            "tux", "whale", "elephant", "dolphin", "fox", "monopoly", "lego", "marbles", "frisbee",
            "bicycle",
        ] {
            assert!(s.get(toy).is_some(), "{toy} missing");
        }
    }
}
