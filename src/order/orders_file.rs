//! `orders-N.csv`: the human-readable view of the orders a replica has applied.
//!
//! A CSV with a header row and one committed order a line, in number order from 0. The replicated
//! log, not this file, is what makes an order durable: the file is rewritten from the state
//! machine's snapshot when a replica starts and appended as orders are applied, so replicas that
//! applied the same log hold byte-identical files.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::wire::Entry;

pub const HEADER: &str = "number,name,quantity,term,key\n";

/// Name of replica `id`'s orders file.
pub fn file_name(id: u32) -> String {
    format!("orders-{id}.csv")
}

/// The file, open for appending.
#[derive(Debug)]
pub struct OrdersFile {
    path: PathBuf,
    file: File,
    /// Orders in the file: the next one appended is this number.
    written: u64,
}

impl OrdersFile {
    /// Replaces the file at `path` with exactly `entries` (atomically) and opens it for appending.
    pub fn create(path: &Path, entries: &[Entry]) -> Result<Self> {
        crate::storage::write_atomic(path, &render(entries))?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(OrdersFile {
            path: path.to_path_buf(),
            file,
            written: entries.len() as u64,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `entries`. No fsync: the log already made them durable, and a start rewrites
    /// the file from the state machine.
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&encode(entries))
            .map_err(|e| Error::io(&self.path, e))?;
        self.written += entries.len() as u64;
        Ok(())
    }

    /// How many orders the file holds.
    pub fn written(&self) -> u64 {
        self.written
    }
}

/// The whole file that holds exactly `entries`: what every replica that applied them has.
pub fn render(entries: &[Entry]) -> Vec<u8> {
    let mut bytes = HEADER.as_bytes().to_vec();
    bytes.extend(encode(entries));
    bytes
}

fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::with_capacity(entries.len() * 64));
    for entry in entries {
        // Serialising plain records into memory cannot fail.
        let _ = writer.serialize(entry);
    }
    writer.into_inner().unwrap_or_default()
}

/// Reads the orders of a file without changing it (a torn last line is left out).
pub fn read_entries(path: &Path) -> Result<Vec<Entry>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes, path)
}

/// Parses a whole orders file; `path` names it in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Vec<Entry>> {
    let corrupt = |line: u64, message: String| Error::Corrupt {
        path: path.to_path_buf(),
        line,
        message,
    };
    if !bytes.starts_with(HEADER.as_bytes()) {
        if HEADER.as_bytes().starts_with(bytes) {
            // The header itself was torn while the file was being created.
            return Ok(Vec::new());
        }
        return Err(corrupt(
            1,
            format!("expected the header '{}'", HEADER.trim_end()),
        ));
    }
    // Everything up to the last newline; what follows it is a torn last line, left out.
    let whole = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(&bytes[..0], |end| &bytes[..=end]);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(whole);
    let mut entries: Vec<Entry> = Vec::new();
    for (row, decoded) in reader.deserialize::<Entry>().enumerate() {
        // The header is line 1.
        let line_number = row as u64 + 2;
        let entry = decoded.map_err(|e| corrupt(line_number, format!("not an order row: {e}")))?;
        if entry.number != entries.len() as u64 {
            return Err(corrupt(
                line_number,
                format!(
                    "order {} where order {} was expected",
                    entry.number,
                    entries.len()
                ),
            ));
        }
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(number: u64) -> Entry {
        Entry {
            number,
            name: "Rubik's Cube, large".into(),
            quantity: 2,
            term: 1,
            key: format!("k{number}"),
        }
    }

    #[test]
    fn created_and_appended_orders_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders-1.csv");
        let mut file = OrdersFile::create(&path, &[entry(0)]).unwrap();
        file.append(&[entry(1), entry(2)]).unwrap();
        assert_eq!(
            read_entries(&path).unwrap(),
            vec![entry(0), entry(1), entry(2)]
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(HEADER));
        assert!(text.contains("\"Rubik's Cube, large\""));
        OrdersFile::create(&path, &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), HEADER);
    }

    #[test]
    fn a_torn_last_line_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders-1.csv");
        std::fs::write(&path, format!("{HEADER}0,Tux,1,1,a\n1,Fox,2,1,b\n2,Lego,3")).unwrap();
        assert_eq!(read_entries(&path).unwrap().len(), 2);
    }

    #[test]
    fn a_garbled_row_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders-2.csv");
        std::fs::write(&path, format!("{HEADER}0,Tux,1,1,a\nzz,Fox,two,1,b\n")).unwrap();
        let err = read_entries(&path).unwrap_err().to_string();
        assert!(err.contains("orders-2.csv, line 3"), "{err}");
        std::fs::write(&path, "id,what\n").unwrap();
        let err = read_entries(&path).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        std::fs::write(&path, format!("{HEADER}1,Tux,1,1,a\n")).unwrap();
        assert!(
            read_entries(&path).is_err(),
            "a gap in the numbers is corruption"
        );
    }
}
