//! Stock conservation, in one place: the rule every toy's stock obeys (its seed, minus what was
//! bought, plus what was restocked), replayed from the catalog's ledger, and the check that the
//! catalog's stock and buys agree with the order log.
//!
//! The catalog replays [`Totals`] when it opens; `verify-logs --stock`, `chaos` and the tests
//! run [`check_cluster`] (or [`check_stock`] on records they hold).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::catalog::ledger::{self, Kind, Record};
use crate::cluster::StateDir;
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::services::ServiceName;
use crate::wire::{Data, Entry, StockSnapshot};

/// What the ledger says, replayed.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Per lower-case toy name: (seed, bought, restocked).
    pub by_toy: HashMap<String, (u64, u64, u64)>,
    /// Every buy's key, with the toy and units.
    pub buys: HashMap<String, (String, u64)>,
    /// Every refused key, with the toy as asked and the units it had then.
    #[serde(default)]
    pub refused: HashMap<String, (String, u64)>,
    /// Keys whose orders the order service confirmed it holds (the catalog's own business: not
    /// sent with a stock check).
    #[serde(skip)]
    pub confirmed: HashSet<String>,
}

impl Totals {
    pub fn add(&mut self, record: &Record) {
        match record.kind {
            Kind::Refuse => {
                self.refused
                    .insert(record.key.clone(), (record.name.clone(), record.quantity));
                return;
            }
            Kind::Confirm => {
                self.confirmed.insert(record.key.clone());
                return;
            }
            Kind::Seed | Kind::Buy | Kind::Restock => {}
        }
        let toy = self.by_toy.entry(record.name.to_lowercase()).or_default();
        match record.kind {
            Kind::Seed => toy.0 += record.quantity,
            Kind::Buy => {
                toy.1 += record.quantity;
                self.buys
                    .insert(record.key.clone(), (record.name.clone(), record.quantity));
            }
            Kind::Restock => toy.2 += record.quantity,
            Kind::Refuse | Kind::Confirm => {}
        }
    }

    /// The stock the ledger implies for `name`: seed − bought + restocked.
    pub fn stock(&self, name: &str) -> Option<u64> {
        self.by_toy
            .get(&name.to_lowercase())
            .map(|(seed, bought, restocked)| (seed + restocked).saturating_sub(*bought))
    }
}

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
/// name the same orders.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StockCheck {
    pub toys: Vec<ToyBalance>,
    /// Keys the catalog sold stock to that no order in the log carries.
    pub buys_without_order: Vec<String>,
    /// Keys of orders in the log for which the catalog recorded no buy.
    pub orders_without_buy: Vec<String>,
}

impl StockCheck {
    pub fn conserved(&self) -> bool {
        self.toys.iter().all(ToyBalance::balanced)
            && self.buys_without_order.is_empty()
            && self.orders_without_buy.is_empty()
    }
}

impl std::fmt::Display for StockCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
        if !self.orders_without_buy.is_empty() {
            write!(
                f,
                " {} orders with no buy in the ledger;",
                self.orders_without_buy.len()
            )?;
        }
        Ok(())
    }
}

/// Balances the catalog's ledger and current `stock` (name, units) against the order log.
pub fn check_stock(
    ledger: &[Record],
    orders: &[crate::wire::Entry],
    stock: &[(String, u64)],
) -> StockCheck {
    let mut totals = Totals::default();
    for record in ledger {
        totals.add(record);
    }
    check_stock_totals(&totals, orders, stock)
}

/// [`check_stock`] from the ledger's totals, as the catalog reports them with its stock in one
/// consistent snapshot.
pub fn check_stock_totals(
    totals: &Totals,
    orders: &[crate::wire::Entry],
    stock: &[(String, u64)],
) -> StockCheck {
    use std::collections::{HashMap, HashSet};
    let mut ordered: HashMap<String, u64> = HashMap::new();
    for entry in orders {
        *ordered.entry(entry.name.to_lowercase()).or_default() += entry.quantity;
    }
    let toys = stock
        .iter()
        .map(|(name, units)| {
            let (seed, _, restocked) = totals
                .by_toy
                .get(&name.to_lowercase())
                .copied()
                .unwrap_or_default();
            ToyBalance {
                name: name.clone(),
                seed,
                restocked,
                ordered: ordered.get(&name.to_lowercase()).copied().unwrap_or(0),
                stock: *units,
            }
        })
        .collect();
    let logged: HashSet<&str> = orders.iter().map(|e| e.key.as_str()).collect();
    let mut buys_without_order: Vec<String> = totals
        .buys
        .keys()
        .filter(|k| !logged.contains(k.as_str()))
        .cloned()
        .collect();
    buys_without_order.sort();
    let orders_without_buy = orders
        .iter()
        .filter(|e| !totals.buys.contains_key(&e.key))
        .map(|e| e.key.clone())
        .collect();
    StockCheck {
        toys,
        buys_without_order,
        orders_without_buy,
    }
}

/// Checks that the cluster in `state` conserved stock: the catalog's stock and the totals of
/// its ledger, read at one instant from the live catalog (or, when it is down, `catalog.csv`
/// brought up to `catalog-ledger.csv`), against the order log of the replica with the most
/// orders.
pub fn check_cluster(state: &StateDir) -> Result<StockCheck> {
    use crate::catalog::{stock::Stock, CATALOG_FILE};
    let spec = state.load()?;
    // The replica that has applied the most orders: one that lags would look like lost orders.
    let comparison = crate::verify::compare(&state.orders_paths())?;
    let longest = comparison
        .longest()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| state.orders_paths()[0].clone());
    let orders = crate::order::orders_file::read_entries(&longest)?;
    let secret = crate::secret::Secret::load(state.root()).ok();
    let live = spec
        .url(ServiceName::Catalog)
        .and_then(|url| catalog_snapshot(&url, secret.as_ref()).ok());
    let snapshot = match live {
        Some(snapshot) => snapshot,
        None => {
            // What the catalog would start from: its snapshot, brought up to its ledger.
            let records = ledger::read_file(&state.root().join(ledger::LEDGER_FILE))?;
            let path = state.root().join(CATALOG_FILE);
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let mut stock = Stock::parse(&text, &path)?;
            let mut totals = Totals::default();
            records.iter().for_each(|r| totals.add(r));
            stock.apply_ledger(&totals);
            StockSnapshot {
                products: stock.products(),
                totals,
            }
        }
    };
    Ok(check_snapshot(snapshot, &orders))
}

/// The live catalog at `catalog_url`: its stock and its ledger's totals, read at one instant.
pub fn catalog_snapshot(catalog_url: &str, secret: Option<&Secret>) -> Result<StockSnapshot> {
    let url = format!("{catalog_url}/internal/stock-check");
    let reply = crate::tool_http::get_authorized(&crate::tool_http::health_agent(), &url, secret)
        .map_err(|e| Error::Remote(format!("the catalog at {url} cannot be asked: {e}")))?;
    reply
        .json::<Data<StockSnapshot>>()
        .map(|d| d.data)
        .ok_or_else(|| Error::Remote(format!("{url}: {}", reply.message())))
}

/// [`check_stock_totals`] on a catalog's snapshot.
pub fn check_snapshot(snapshot: StockSnapshot, orders: &[Entry]) -> StockCheck {
    let stock: Vec<(String, u64)> = snapshot
        .products
        .into_iter()
        .map(|p| (p.name, p.quantity))
        .collect();
    check_stock_totals(&snapshot.totals, orders, &stock)
}

#[cfg(test)]
mod stock_tests {
    use super::*;
    use crate::wire::Entry;

    fn record(kind: Kind, key: &str, quantity: u64) -> Record {
        Record {
            kind,
            key: key.into(),
            name: "Tux".into(),
            quantity,
        }
    }

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
    fn balanced_stock_is_conserved() {
        let ledger = [
            record(Kind::Seed, "", 100),
            record(Kind::Buy, "a", 60),
            record(Kind::Buy, "b", 40),
            record(Kind::Restock, "", 100),
        ];
        let orders = [order(0, "a", 60), order(1, "b", 40)];
        let check = check_stock(&ledger, &orders, &[("Tux".into(), 100)]);
        assert!(check.conserved(), "{check}");
        assert!(check.to_string().starts_with("OK"));
    }

    #[test]
    fn a_lost_order_and_a_wrong_stock_are_reported() {
        let ledger = [
            record(Kind::Seed, "", 100),
            record(Kind::Buy, "a", 5),
            record(Kind::Buy, "b", 5),
        ];
        let orders = [order(0, "a", 5)];
        let check = check_stock(&ledger, &orders, &[("Tux".into(), 90)]);
        assert!(!check.conserved());
        assert_eq!(check.buys_without_order, ["b"]);
        let text = check.to_string();
        assert!(
            text.contains("Tux: 100 seed + 0 restocked − 5 ordered = 95, but the catalog has 90"),
            "{text}"
        );
    }
}
