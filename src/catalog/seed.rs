//! The stock a new catalog group starts from: `catalog.csv` in the data directory when there is
//! one (name, price, quantity), or the built-in stock. It is read once, when the group is new,
//! and committed to the log as its first command; from then on the log is the stock.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The stock every toy is brought back to by a restock.
pub const RESTOCK_QUANTITY: u64 = 100;

/// The built-in stock, embedded so the catalog starts from any directory.
pub const BUILT_IN: &str = include_str!("../../data/catalog.csv");

/// The seed file a user may put in a catalog replica's data directory.
pub const SEED_FILE: &str = "catalog.csv";

/// A toy of the seed. Prices as integer cents, so the log holds no floating point.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SeedRow {
    pub name: String,
    pub price_cents: u64,
    pub quantity: u64,
}

impl SeedRow {
    pub fn from_row(row: &StockRow) -> Self {
        SeedRow {
            name: row.name.clone(),
            price_cents: (row.price * 100.0).round() as u64,
            quantity: row.quantity,
        }
    }
}

/// One row of a catalog CSV file (a seed, or a replica's `catalog-N.csv`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StockRow {
    pub name: String,
    pub price: f64,
    pub quantity: u64,
}

/// The seed in `data_dir`, or the built-in one; `initial_stock` replaces every quantity.
pub fn load(data_dir: &Path, initial_stock: Option<u64>) -> Result<Vec<SeedRow>> {
    let path = data_dir.join(SEED_FILE);
    let mut rows = match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text, &path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            parse(BUILT_IN, Path::new("data/catalog.csv"))?
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    if let Some(quantity) = initial_stock {
        rows.iter_mut().for_each(|row| row.quantity = quantity);
    }
    Ok(rows)
}

/// Reads catalog CSV text; `path` only names the file in errors.
pub fn parse(text: &str, path: &Path) -> Result<Vec<SeedRow>> {
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
    let mut rows: Vec<SeedRow> = Vec::new();
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
        if rows
            .iter()
            .any(|r| r.name.to_lowercase() == row.name.to_lowercase())
        {
            return Err(corrupt(
                path,
                line,
                format!("product '{}' is listed twice", row.name),
            ));
        }
        rows.push(SeedRow::from_row(&row));
    }
    Ok(rows)
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

    #[test]
    fn bad_files_name_the_line() {
        let err = parse("name,price,quantity\nTux,abc,1\n", Path::new("c.csv")).unwrap_err();
        assert!(err.to_string().contains("c.csv, line 2"), "{err}");
        let err = parse("nom,prix\n", Path::new("c.csv")).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = parse(
            "name,price,quantity\nTux,1,1\ntux,2,2\n",
            Path::new("c.csv"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
    }

    #[test]
    fn the_built_in_stock_is_valid_and_an_initial_stock_replaces_quantities() {
        let dir = tempfile::tempdir().unwrap();
        let rows = load(dir.path(), Some(7)).unwrap();
        assert!(rows.len() >= 3);
        assert!(rows.iter().all(|r| r.quantity == 7));
        std::fs::write(
            dir.path().join(SEED_FILE),
            "name,price,quantity\nYo,1.5,2\n",
        )
        .unwrap();
        let rows = load(dir.path(), None).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].price_cents, rows[0].quantity), (150, 2));
    }
}
