//! Comparing the replicas' order files. Replicas that have applied the same committed orders
//! hold byte-identical files; one that lags holds a prefix of the others', which is consistent,
//! and is named. Anything else is a difference.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// What a comparison found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Comparison {
    pub files: Vec<PathBuf>,
    /// Orders in the longest file (rows after the header).
    pub orders: u64,
    /// Files that hold a prefix of the longest one, with how many orders they hold.
    pub lagging: Vec<Lag>,
    /// The first difference, if any.
    pub difference: Option<Difference>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Lag {
    pub file: PathBuf,
    pub orders: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Difference {
    pub line: u64,
    pub file: PathBuf,
    pub expected: Option<String>,
    pub other: PathBuf,
    pub found: Option<String>,
}

impl Comparison {
    /// Every file holds the same orders.
    pub fn identical(&self) -> bool {
        self.difference.is_none() && self.lagging.is_empty()
    }

    /// No file contradicts another: they are identical, or some hold a prefix of the rest.
    pub fn consistent(&self) -> bool {
        self.difference.is_none()
    }

    /// The longest file: the one with every order any replica applied.
    pub fn longest(&self) -> Option<&Path> {
        let lagging: Vec<&PathBuf> = self.lagging.iter().map(|l| &l.file).collect();
        self.files
            .iter()
            .find(|f| !lagging.contains(f))
            .map(PathBuf::as_path)
    }
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(difference) = &self.difference {
            return write!(f, "DIFFERENT: {difference}");
        }
        if self.lagging.is_empty() {
            return write!(
                f,
                "OK: {} order files identical, {} orders each",
                self.files.len(),
                self.orders
            );
        }
        let lags: Vec<String> = self
            .lagging
            .iter()
            .map(|l| format!("{} holds {} of {}", name(&l.file), l.orders, self.orders))
            .collect();
        write!(
            f,
            "OK: {} order files agree; {} orders in the longest; behind: {} (it catches up while \
             a majority runs)",
            self.files.len(),
            self.orders,
            lags.join(", ")
        )
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |line: &Option<String>| match line {
            Some(text) => format!("'{text}'"),
            None => "end of file".to_string(),
        };
        write!(
            f,
            "{} and {} differ at line {}: {} has {}, {} has {}",
            name(&self.file),
            name(&self.other),
            self.line,
            name(&self.file),
            show(&self.expected),
            name(&self.other),
            show(&self.found)
        )
    }
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Compares every file with the longest, line by line: a shorter file that matches it as far
/// as it goes lags; the first line where two files disagree is a difference.
pub fn compare(paths: &[PathBuf]) -> Result<Comparison> {
    let mut contents = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        contents.push(text);
    }
    let Some((longest, reference)) = contents.iter().enumerate().max_by_key(|(i, text)| {
        // The most lines; among equals, the first file.
        (text.lines().count(), std::cmp::Reverse(*i))
    }) else {
        return Err(Error::Usage("no order files to compare".into()));
    };
    let orders_in = |text: &str| text.lines().count().saturating_sub(1) as u64;
    let orders = orders_in(reference);
    let mut lagging = Vec::new();
    let mut difference = None;
    for (i, other) in contents.iter().enumerate() {
        if i == longest || other == reference {
            continue;
        }
        if reference.starts_with(other.as_str()) && other.ends_with('\n') {
            lagging.push(Lag {
                file: paths[i].clone(),
                orders: orders_in(other),
            });
            continue;
        }
        let mut left = reference.split_inclusive('\n');
        let mut right = other.split_inclusive('\n');
        let mut line = 0;
        loop {
            line += 1;
            let (a, b) = (left.next(), right.next());
            if a != b {
                difference = Some(Difference {
                    line,
                    file: paths[longest].clone(),
                    expected: a.map(|s| s.trim_end_matches('\n').to_string()),
                    other: paths[i].clone(),
                    found: b.map(|s| s.trim_end_matches('\n').to_string()),
                });
                break;
            }
        }
        break;
    }
    Ok(Comparison {
        files: paths.to_vec(),
        orders,
        lagging,
        difference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_and_differing_files() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let a = write("orders-1.csv", "h\n0,Tux,1\n1,Fox,2\n");
        let b = write("orders-2.csv", "h\n0,Tux,1\n1,Fox,2\n");
        let c = write("orders-3.csv", "h\n0,Tux,1\n");
        let d = write("orders-4.csv", "h\n0,Tux,1\n1,Elephant,2\n");
        let same = compare(&[a.clone(), b.clone()]).unwrap();
        assert!(same.identical());
        assert_eq!(same.orders, 2);
        assert!(same.to_string().starts_with("OK: 2 order files identical"));

        let behind = compare(&[c.clone(), a.clone(), b.clone()]).unwrap();
        assert!(behind.consistent() && !behind.identical());
        assert_eq!(behind.orders, 2);
        assert_eq!(
            behind.lagging,
            vec![Lag {
                file: c.clone(),
                orders: 1
            }]
        );
        assert_eq!(behind.longest(), Some(a.as_path()));
        assert!(
            behind.to_string().contains("orders-3.csv holds 1 of 2"),
            "{behind}"
        );

        let diff = compare(&[a, b, c, d]).unwrap().difference.unwrap();
        assert_eq!(diff.line, 3);
        assert_eq!(diff.found.as_deref(), Some("1,Elephant,2"));
        assert!(
            diff.to_string().contains("orders-4.csv has '1,Elephant,2'"),
            "{diff}"
        );
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = compare(&[PathBuf::from("/nonexistent/orders-1.csv")]).unwrap_err();
        assert!(err.to_string().contains("orders-1.csv"));
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
    ledger: &[crate::catalog::ledger::Record],
    orders: &[crate::wire::Entry],
    stock: &[(String, u64)],
) -> StockCheck {
    let mut totals = crate::catalog::ledger::Totals::default();
    for record in ledger {
        totals.add(record);
    }
    check_stock_totals(&totals, orders, stock)
}

/// [`check_stock`] from the ledger's totals, as the catalog reports them with its stock in one
/// consistent snapshot.
pub fn check_stock_totals(
    totals: &crate::catalog::ledger::Totals,
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

#[cfg(test)]
mod stock_tests {
    use super::*;
    use crate::catalog::ledger::{Kind, Record};
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
