//! The catalog's stock ledger, `catalog-ledger.csv`: every stock change ever made, appended and
//! fsynced before the change is acknowledged. `catalog.csv` is a snapshot rewritten after it.
//!
//! It is what makes stock checkable and buys exactly-once across catalog restarts: the stock of a
//! toy is its seed, minus what was bought, plus what was restocked, and every buy carries the
//! idempotency key of its order.

use std::path::Path;

use crate::conservation::Totals;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const LEDGER_FILE: &str = "catalog-ledger.csv";
const HEADER: &str = "kind,key,name,quantity\n";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The stock a toy started with.
    Seed,
    /// Units taken by the order with this key.
    Buy,
    /// Units added back by a restock.
    Restock,
    /// The order with this key was refused: the toy as it was asked for, and the units it had
    /// then (0 for a toy the catalog does not have). Changes no stock; it is the key's answer
    /// for good, so a later retry cannot buy what was refused.
    Refuse,
    /// The order service holds the order of the buy with this key: after a restart, the buy
    /// need not be checked against the order log again. Written without waiting for the disk:
    /// one lost costs only that check.
    Confirm,
}

/// One stock change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub kind: Kind,
    /// The order's idempotency key for a buy; empty otherwise.
    pub key: String,
    /// The catalog's spelling of the toy.
    pub name: String,
    pub quantity: u64,
}

/// The open ledger file.
#[derive(Debug)]
pub struct Ledger {
    file: crate::storage::AppendFile,
}

impl Ledger {
    /// Opens the ledger in `dir`, creating it with `seed` records when it does not exist yet.
    /// Returns it with its replayed totals. A torn last line (a crash during an append) was never
    /// acknowledged and is dropped.
    pub fn open(dir: &Path, seed: &[Record]) -> Result<(Ledger, Totals)> {
        let path = dir.join(LEDGER_FILE);
        let records = match std::fs::read(&path) {
            Ok(bytes) => read(&path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = HEADER.as_bytes().to_vec();
                bytes.extend(encode(seed));
                crate::storage::write_atomic(&path, &bytes)?;
                seed.to_vec()
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let mut totals = Totals::default();
        for record in &records {
            totals.add(record);
        }
        let file = crate::storage::AppendFile::open(&path)?;
        Ok((Ledger { file }, totals))
    }

    /// Appends `records` and fsyncs: when it returns Ok they survive a crash; when it fails
    /// (a full disk) none of them is in the file, so they can be appended again later.
    pub fn append(&mut self, records: &[Record]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        crate::fault::slow_disk();
        self.file
            .append(&encode(records))
            .map_err(|e| Error::io(self.file.path(), e))
    }
}

/// Reads a ledger file without changing it (the check of `verify-logs --stock` uses this too).
pub fn read_file(path: &Path) -> Result<Vec<Record>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(path, &bytes).map(|(records, _)| records)
}

/// Parses the file, truncating a torn last line away on disk.
fn read(path: &Path, bytes: &[u8]) -> Result<Vec<Record>> {
    let (records, whole) = parse(path, bytes)?;
    crate::storage::drop_torn_tail(path, whole, bytes.len())?;
    Ok(records)
}

/// The records of `bytes` and how many bytes of it are whole lines.
fn parse(path: &Path, bytes: &[u8]) -> Result<(Vec<Record>, usize)> {
    let corrupt = |line: u64, message: String| Error::Corrupt {
        path: path.to_path_buf(),
        line,
        message,
    };
    if !bytes.starts_with(HEADER.as_bytes()) {
        return Err(corrupt(
            1,
            format!("expected the header '{}'", HEADER.trim_end()),
        ));
    }
    let mut records = Vec::new();
    let mut offset = HEADER.len();
    let mut line = 1;
    while let Some(end) = bytes[offset..].iter().position(|&b| b == b'\n') {
        line += 1;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&bytes[offset..offset + end + 1]);
        let record = match reader.deserialize::<Record>().next() {
            Some(Ok(record)) => record,
            Some(Err(e)) => return Err(corrupt(line, format!("not a ledger row: {e}"))),
            None => return Err(corrupt(line, "empty line".into())),
        };
        records.push(record);
        offset += end + 1;
    }
    Ok((records, offset))
}

fn encode(records: &[Record]) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    for record in records {
        // Serialising plain records into memory cannot fail.
        let _ = writer.serialize(record);
    }
    writer.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: Kind, key: &str, name: &str, quantity: u64) -> Record {
        Record {
            kind,
            key: key.into(),
            name: name.into(),
            quantity,
        }
    }

    #[test]
    fn replay_gives_stock_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let seed = [record(Kind::Seed, "", "Tux", 100)];
        let (mut ledger, totals) = Ledger::open(dir.path(), &seed).unwrap();
        assert_eq!(totals.stock("tux"), Some(100));
        ledger
            .append(&[
                record(Kind::Buy, "k1", "Tux", 60),
                record(Kind::Buy, "k2", "Tux", 40),
                record(Kind::Restock, "", "Tux", 100),
            ])
            .unwrap();
        let (_, totals) = Ledger::open(dir.path(), &[]).unwrap();
        assert_eq!(totals.stock("TUX"), Some(100));
        assert_eq!(totals.by_toy["tux"], (100, 100, 100));
        assert_eq!(totals.buys["k2"], ("Tux".to_string(), 40));
        assert!(totals.confirmed.is_empty());
        ledger
            .append(&[record(Kind::Confirm, "k1", "", 0)])
            .unwrap();
        let (_, totals) = Ledger::open(dir.path(), &[]).unwrap();
        assert!(totals.confirmed.contains("k1") && !totals.confirmed.contains("k2"));
        assert_eq!(
            totals.by_toy["tux"],
            (100, 100, 100),
            "a confirmation moves no stock"
        );
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEDGER_FILE);
        std::fs::write(
            &path,
            format!("{HEADER}seed,,Tux,100\nbuy,k1,Tux,5\nbuy,k2,Tu"),
        )
        .unwrap();
        let (_, totals) = Ledger::open(dir.path(), &[]).unwrap();
        assert_eq!(totals.stock("tux"), Some(95));
        assert_eq!(read_file(&path).unwrap().len(), 2);
        std::fs::write(&path, format!("{HEADER}seed,,Tux,100\nsteal,k1,Tux,5\n")).unwrap();
        let err = Ledger::open(dir.path(), &[]).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
    }
}
