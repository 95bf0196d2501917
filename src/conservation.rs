//! Stock conservation, in one place: the rule every toy's stock obeys (its seed, minus what was
//! bought, plus what was restocked), and the check that the catalog group's stock and sales
//! agree with the order log.
//!
//! `verify-logs --stock`, `chaos` and the tests run `cluster::check_stock` on a local cluster,
//! and `verify-logs --cluster` runs [`check_snapshot`] on a snapshot asked over the network.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::wire::{Data, Entry, StockSnapshot};

/// One toy's stock balance: seed + restocked − ordered must equal the catalog's stock.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ToyBalance {
    pub name: String,
    pub seed: u64,
    pub restocked: u64,
    /// Units in the order log.
    pub ordered: u64,
    /// Units the catalog has now.
    pub stock: u64,
}

impl ToyBalance {
    pub fn balanced(&self) -> bool {
        self.seed + self.restocked == self.ordered + self.stock
    }
}

/// Whether stock was conserved: every toy balances, and the catalog's buys and the order log
/// name the same orders; and whether every catalog replica holds the same stock.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StockCheck {
    pub toys: Vec<ToyBalance>,
    /// Keys the catalog sold stock to (and holds unconfirmed) that no order in the log carries.
    pub buys_without_order: Vec<String>,
    /// Every catalog replica's `catalog-N.csv`, as it has applied the group's log.
    pub catalogs: Vec<CatalogCopy>,
}

/// One catalog replica's stock file, or why it could not be read.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CatalogCopy {
    pub name: String,
    pub units: Option<u64>,
    pub digest: Option<String>,
    /// Why the file or the replica could not be read.
    pub missing: Option<String>,
}

impl CatalogCopy {
    /// The copy of replica `name` from its file's bytes, or why there are none.
    pub fn of(name: String, bytes: std::result::Result<Vec<u8>, String>) -> Self {
        match bytes {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let file = format!("{name}'s stock file");
                let rows = crate::catalog::seed::parse(&text, std::path::Path::new(&file));
                let (units, missing) = match rows {
                    Ok(rows) => (Some(rows.iter().map(|row| row.quantity).sum()), None),
                    Err(e) => (None, Some(e.to_string())),
                };
                CatalogCopy {
                    name,
                    units,
                    digest: Some(crate::verify::digest(&bytes)),
                    missing,
                }
            }
            Err(why) => CatalogCopy {
                name,
                units: None,
                digest: None,
                missing: Some(why),
            },
        }
    }
}

impl StockCheck {
    pub fn conserved(&self) -> bool {
        self.toys.iter().all(ToyBalance::balanced) && self.buys_without_order.is_empty()
    }

    /// Every catalog replica answered with the same stock file.
    pub fn catalogs_identical(&self) -> bool {
        self.catalogs
            .first()
            .is_some_and(|first| first.digest.is_some() && first.units.is_some())
            && self
                .catalogs
                .iter()
                .all(|c| c.digest == self.catalogs[0].digest)
    }

    /// Stock conserved, and every catalog replica holds it alike.
    pub fn ok(&self) -> bool {
        self.conserved() && (self.catalogs.is_empty() || self.catalogs_identical())
    }
}

impl std::fmt::Display for StockCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.catalogs.is_empty() {
            if self.catalogs_identical() {
                writeln!(
                    f,
                    "OK: {} catalog files identical, {} units in stock each",
                    self.catalogs.len(),
                    self.catalogs[0].units.unwrap_or(0)
                )?;
            } else {
                write!(f, "CATALOG FILES DIFFER:")?;
                for copy in &self.catalogs {
                    match (&copy.units, &copy.missing) {
                        (Some(units), _) => write!(f, " {} has {units} units;", copy.name)?,
                        (None, Some(why)) => write!(f, " {}: {why};", copy.name)?,
                        (None, None) => write!(f, " {}: unread;", copy.name)?,
                    }
                }
                writeln!(f)?;
            }
        }
        let unbalanced: Vec<&ToyBalance> = self.toys.iter().filter(|t| !t.balanced()).collect();
        if self.conserved() {
            let ordered: u64 = self.toys.iter().map(|t| t.ordered).sum();
            let restocked: u64 = self.toys.iter().map(|t| t.restocked).sum();
            return write!(
                f,
                "OK: stock conserved for {} toys ({ordered} units ordered, {restocked} restocked)",
                self.toys.len()
            );
        }
        write!(f, "STOCK NOT CONSERVED:")?;
        for t in unbalanced {
            write!(
                f,
                " {}: {} seed + {} restocked − {} ordered = {}, but the catalog has {};",
                t.name,
                t.seed,
                t.restocked,
                t.ordered,
                (t.seed + t.restocked) as i128 - t.ordered as i128,
                t.stock
            )?;
        }
        if !self.buys_without_order.is_empty() {
            write!(
                f,
                " {} buys with no order in the log;",
                self.buys_without_order.len()
            )?;
        }
        Ok(())
    }
}

/// Balances the catalog's stock snapshot against the order log: every toy's seed + restocks
/// must equal the units ordered plus the units in stock, and every sale the catalog holds
/// unconfirmed must have its order in the log (the order leader places those it lacks within
/// seconds: one still missing once the store is quiet is stock that leaked).
pub fn check_snapshot(snapshot: StockSnapshot, orders: &[Entry]) -> StockCheck {
    let mut ordered: HashMap<String, u64> = HashMap::new();
    for entry in orders {
        *ordered.entry(entry.name.to_lowercase()).or_default() += entry.quantity;
    }
    let toys = snapshot
        .products
        .iter()
        .map(|product| {
            let totals = snapshot
                .toys
                .iter()
                .find(|t| t.name.eq_ignore_ascii_case(&product.name));
            ToyBalance {
                name: product.name.clone(),
                seed: totals.map_or(0, |t| t.seeded),
                restocked: totals.map_or(0, |t| t.restocked),
                ordered: ordered
                    .get(&product.name.to_lowercase())
                    .copied()
                    .unwrap_or(0),
                stock: product.quantity,
            }
        })
        .collect();
    let logged: HashSet<&str> = orders.iter().map(|e| e.key.as_str()).collect();
    let mut buys_without_order: Vec<String> = snapshot
        .unconfirmed
        .iter()
        .filter(|buy| !logged.contains(buy.key.as_str()))
        .map(|buy| buy.key.clone())
        .collect();
    buys_without_order.sort();
    StockCheck {
        toys,
        buys_without_order,
        catalogs: Vec::new(),
    }
}

/// The catalog group's stock snapshot, from whichever replica leads.
pub fn catalog_snapshot(
    topology: &crate::cluster_file::ClusterFile,
    secret: Option<&Secret>,
) -> Result<StockSnapshot> {
    let agent = crate::tool_http::health_agent();
    let mut why = Vec::new();
    for catalog in topology.catalogs() {
        let url = format!("{}/internal/stock-check", catalog.url);
        match crate::tool_http::get_authorized(&agent, &url, secret) {
            Ok(reply) => match reply.json::<Data<StockSnapshot>>() {
                Some(Data { data }) => return Ok(data),
                None => why.push(format!("catalog-{}: {}", catalog.id, reply.message())),
            },
            Err(e) => why.push(format!("catalog-{}: {e}", catalog.id)),
        }
    }
    Err(Error::NoCatalogLeader(why))
}

#[cfg(test)]
mod stock_tests {
    use super::*;
    use crate::wire::{ToyTotals, UnconfirmedBuy, VersionedProduct};

    fn order(number: u64, key: &str, quantity: u64) -> Entry {
        Entry {
            number,
            name: "Tux".into(),
            quantity,
            term: 1,
            key: key.into(),
        }
    }

    #[test]
    fn a_stock_file_is_read_as_csv_and_a_garbled_one_is_never_identical() {
        let file = b"name,price,quantity\n\"Rubik's Cube, large\",9.5,7\nTux,25.99,3\n".to_vec();
        let copy = CatalogCopy::of("catalog-1".into(), Ok(file.clone()));
        assert_eq!((copy.units, copy.missing), (Some(10), None));
        let garbled = b"name,price,quantity\nTux,25.99,three\n".to_vec();
        let bad = CatalogCopy::of("catalog-2".into(), Ok(garbled.clone()));
        assert_eq!(bad.units, None);
        assert!(bad.missing.unwrap().contains("line 2"));
        let check = StockCheck {
            toys: Vec::new(),
            buys_without_order: Vec::new(),
            catalogs: vec![
                CatalogCopy::of("catalog-1".into(), Ok(garbled.clone())),
                CatalogCopy::of("catalog-2".into(), Ok(garbled)),
            ],
        };
        assert!(!check.catalogs_identical(), "{check}");
    }

    fn snapshot(stock: u64, bought: u64, restocked: u64, unconfirmed: &[&str]) -> StockSnapshot {
        StockSnapshot {
            products: vec![VersionedProduct {
                name: "Tux".into(),
                price: 1.0,
                quantity: stock,
                version: 1,
            }],
            toys: vec![ToyTotals {
                name: "Tux".into(),
                seeded: 100,
                bought,
                restocked,
            }],
            unconfirmed: unconfirmed
                .iter()
                .map(|key| UnconfirmedBuy {
                    key: key.to_string(),
                    name: "Tux".into(),
                    quantity: 5,
                })
                .collect(),
        }
    }

    #[test]
    fn balanced_stock_is_conserved() {
        let orders = [order(0, "a", 60), order(1, "b", 40)];
        // "b" is still unconfirmed at the catalog, but its order is in the log.
        let check = check_snapshot(snapshot(100, 100, 100, &["b"]), &orders);
        assert!(check.conserved(), "{check}");
        assert!(check.to_string().starts_with("OK"));
    }

    #[test]
    fn a_lost_order_and_a_wrong_stock_are_reported() {
        let orders = [order(0, "a", 5)];
        let check = check_snapshot(snapshot(90, 10, 0, &["b"]), &orders);
        assert!(!check.conserved());
        assert_eq!(check.buys_without_order, ["b"]);
        let text = check.to_string();
        assert!(
            text.contains("Tux: 100 seed + 0 restocked − 5 ordered = 95, but the catalog has 90"),
            "{text}"
        );
    }
}
