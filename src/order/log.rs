//! The order log: every order in number order, in memory and in `orders-N.csv`.
//!
//! The file is a CSV with a header row and one order a line, appended in batches and fsynced
//! once a batch (group commit). On start a last line without its newline is a write that a crash
//! cut short: it was never acknowledged, so it is dropped. Anything else that does not parse stops
//! the replica with the file and line named.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::wire::{Entry, LogPosition};

pub const HEADER: &str = "number,name,quantity,term,key\n";

/// How many positions a replica sends to find where its log and a peer's agree. A log can only
/// disagree with the leader's in entries that were never acknowledged, and a leader never has
/// more unacknowledged entries than that in flight.
pub const TAIL_LEN: usize = 1024;

/// The in-memory log and what of it is on disk.
#[derive(Debug, Default)]
pub struct OrderLog {
    entries: Vec<Entry>,
    numbers_by_key: HashMap<String, u64>,
    /// `entries[..written]` are in the file.
    written: u64,
    /// The file holds entries that were since truncated away: rewrite it whole.
    rewrite: bool,
}

/// A write that brings the file up to date with the log.
#[derive(Debug)]
pub enum WriteJob {
    Append(Vec<u8>),
    Rewrite(Vec<u8>),
}

impl OrderLog {
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, number: u64) -> Option<&Entry> {
        self.entries.get(usize::try_from(number).ok()?)
    }

    pub fn number_of(&self, key: &str) -> Option<u64> {
        self.numbers_by_key.get(key).copied()
    }

    pub fn term_at(&self, number: u64) -> Option<u64> {
        self.get(number).map(|e| e.term)
    }

    pub fn last_term(&self) -> u64 {
        self.entries.last().map(|e| e.term).unwrap_or(0)
    }

    pub fn position(&self, number: u64) -> Option<LogPosition> {
        self.get(number).map(|e| LogPosition {
            number: e.number,
            term: e.term,
        })
    }

    /// Positions of the last [`TAIL_LEN`] entries, oldest first.
    pub fn tail(&self) -> Vec<LogPosition> {
        let start = self.entries.len().saturating_sub(TAIL_LEN);
        self.entries[start..]
            .iter()
            .map(|e| LogPosition {
                number: e.number,
                term: e.term,
            })
            .collect()
    }

    /// How many leading entries this log shares with the log whose tail is `tail`; `None` when
    /// the tail is too short to tell.
    pub fn common_prefix(&self, tail: &[LogPosition]) -> Option<u64> {
        for position in tail.iter().rev() {
            if self.term_at(position.number) == Some(position.term) {
                return Some(position.number + 1);
            }
        }
        match tail.first() {
            None => Some(0),
            Some(first) if first.number == 0 => Some(0),
            Some(_) => None,
        }
    }

    pub fn entries_from(&self, start: u64, max: usize) -> Vec<Entry> {
        let start = (start as usize).min(self.entries.len());
        let end = start.saturating_add(max).min(self.entries.len());
        self.entries[start..end].to_vec()
    }

    /// Adds an entry at the end; its number must be the log's length.
    pub fn append(&mut self, entry: Entry) {
        debug_assert_eq!(entry.number, self.len());
        self.numbers_by_key.insert(entry.key.clone(), entry.number);
        self.entries.push(entry);
    }

    /// Drops every entry from `len` on; the file is rewritten at the next write.
    pub fn truncate(&mut self, len: u64) {
        if len >= self.len() {
            return;
        }
        for dropped in &self.entries[len as usize..] {
            self.numbers_by_key.remove(&dropped.key);
        }
        self.entries.truncate(len as usize);
        if len < self.written {
            self.written = len;
            self.rewrite = true;
        }
    }

    /// The write that would bring the file up to date, and the log length it would reach.
    pub fn pending_write(&mut self) -> Option<(WriteJob, u64)> {
        let len = self.len();
        if self.rewrite {
            self.rewrite = false;
            let mut bytes = HEADER.as_bytes().to_vec();
            bytes.extend(encode(&self.entries));
            return Some((WriteJob::Rewrite(bytes), len));
        }
        if self.written < len {
            let bytes = encode(&self.entries[self.written as usize..]);
            return Some((WriteJob::Append(bytes), len));
        }
        None
    }

    pub fn mark_written(&mut self, len: u64) {
        self.written = self.written.max(len.min(self.len()));
    }

    /// A failed write leaves the file in an unknown state: rewrite it whole next time.
    pub fn write_failed(&mut self) {
        self.rewrite = true;
    }

    /// The durable length: entries the file holds.
    pub fn written(&self) -> u64 {
        self.written
    }
}

/// The file behind an [`OrderLog`]; only one writer holds it at a time.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
}

impl LogFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Performs `job` and fsyncs: when it returns Ok, the entries survive a crash.
    pub fn apply(&mut self, job: &WriteJob) -> Result<()> {
        match job {
            WriteJob::Append(bytes) => {
                self.file
                    .write_all(bytes)
                    .and_then(|_| self.file.sync_data())
                    .map_err(|e| Error::io(&self.path, e))?;
            }
            WriteJob::Rewrite(bytes) => {
                crate::storage::write_atomic(&self.path, bytes)?;
                self.file = open_append(&self.path)?;
            }
        }
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))
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

/// Opens `path`, creating it with its header when missing, and reads every order back.
pub fn open(path: &Path) -> Result<(OrderLog, LogFile)> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(path, e)),
    };
    if bytes.is_empty() {
        crate::storage::write_atomic(path, HEADER.as_bytes())?;
        let file = open_append(path)?;
        return Ok((
            OrderLog::default(),
            LogFile {
                path: path.into(),
                file,
            },
        ));
    }
    let (log, good_len) = parse(&bytes, path)?;
    crate::storage::drop_torn_tail(path, good_len, bytes.len())?;
    let file = open_append(path)?;
    Ok((
        log,
        LogFile {
            path: path.into(),
            file,
        },
    ))
}

/// Reads the orders of a file without changing it (a torn last line is left out, not cut off).
pub fn read_entries(path: &Path) -> Result<Vec<Entry>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (log, _) = parse(&bytes, path)?;
    Ok(log.entries)
}

/// Parses a whole orders file; returns the log and how many bytes of the file are whole lines.
fn parse(bytes: &[u8], path: &Path) -> Result<(OrderLog, usize)> {
    let corrupt = |line: u64, message: String| Error::Corrupt {
        path: path.to_path_buf(),
        line,
        message,
    };
    if !bytes.starts_with(HEADER.as_bytes()) {
        if HEADER.as_bytes().starts_with(bytes) {
            // The header itself was torn while the file was being created.
            return Ok((OrderLog::default(), 0));
        }
        return Err(corrupt(
            1,
            format!("expected the header '{}'", HEADER.trim_end()),
        ));
    }
    let mut log = OrderLog::default();
    let mut offset = HEADER.len();
    let mut line_number = 1;
    while offset < bytes.len() {
        line_number += 1;
        let Some(end) = bytes[offset..].iter().position(|&b| b == b'\n') else {
            break; // a torn last line
        };
        let line = &bytes[offset..offset + end + 1];
        let entry = decode_line(line).map_err(|m| corrupt(line_number, m))?;
        if entry.number != log.len() {
            return Err(corrupt(
                line_number,
                format!(
                    "order {} where order {} was expected",
                    entry.number,
                    log.len()
                ),
            ));
        }
        if log.number_of(&entry.key).is_some() {
            return Err(corrupt(
                line_number,
                format!("key '{}' appears twice", entry.key),
            ));
        }
        log.append(entry);
        offset += end + 1;
    }
    log.written = log.len();
    Ok((log, offset))
}

fn decode_line(line: &[u8]) -> std::result::Result<Entry, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line);
    match reader.deserialize::<Entry>().next() {
        Some(Ok(entry)) => Ok(entry),
        Some(Err(e)) => Err(format!("not an order row: {e}")),
        None => Err("empty line".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(number: u64, term: u64) -> Entry {
        Entry {
            number,
            name: "Rubik's Cube, large".into(),
            quantity: 2,
            term,
            key: format!("k{number}"),
        }
    }

    fn write_all(log: &mut OrderLog, file: &mut LogFile) {
        while let Some((job, len)) = log.pending_write() {
            file.apply(&job).unwrap();
            log.mark_written(len);
        }
    }

    #[test]
    fn entries_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders-1.csv");
        let (mut log, mut file) = open(&path).unwrap();
        for n in 0..3 {
            log.append(entry(n, 1));
        }
        write_all(&mut log, &mut file);
        let (again, _) = open(&path).unwrap();
        assert_eq!(again.len(), 3);
        assert_eq!(again.get(2), Some(&entry(2, 1)));
        assert_eq!(again.number_of("k1"), Some(1));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(HEADER));
        assert!(text.contains("\"Rubik's Cube, large\""));
    }

    #[test]
    fn a_torn_last_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders-1.csv");
        std::fs::write(&path, format!("{HEADER}0,Tux,1,1,a\n1,Fox,2,1,b\n2,Lego,3")).unwrap();
        let (log, _) = open(&path).unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{HEADER}0,Tux,1,1,a\n1,Fox,2,1,b\n")
        );
    }

    #[test]
    fn a_garbled_row_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders-2.csv");
        std::fs::write(&path, format!("{HEADER}0,Tux,1,1,a\nzz,Fox,two,1,b\n")).unwrap();
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("orders-2.csv, line 3"), "{err}");
        std::fs::write(&path, "id,what\n").unwrap();
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        std::fs::write(&path, format!("{HEADER}1,Tux,1,1,a\n")).unwrap();
        assert!(open(&path).is_err(), "a gap in the numbers is corruption");
    }

    #[test]
    fn truncation_rewrites_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders-3.csv");
        let (mut log, mut file) = open(&path).unwrap();
        for n in 0..4 {
            log.append(entry(n, 1));
        }
        write_all(&mut log, &mut file);
        log.truncate(2);
        log.append(entry(2, 2));
        write_all(&mut log, &mut file);
        let (again, _) = open(&path).unwrap();
        assert_eq!(again.len(), 3);
        assert_eq!(again.term_at(2), Some(2));
        assert_eq!(again.number_of("k3"), None);
    }

    #[test]
    fn common_prefix_finds_where_logs_agree() {
        let mut log = OrderLog::default();
        for n in 0..5 {
            log.append(entry(n, if n < 3 { 1 } else { 2 }));
        }
        let pos = |number, term| LogPosition { number, term };
        assert_eq!(log.common_prefix(&[]), Some(0));
        assert_eq!(
            log.common_prefix(&[pos(0, 1), pos(1, 1), pos(2, 1), pos(3, 1)]),
            Some(3)
        );
        assert_eq!(log.common_prefix(&[pos(0, 9)]), Some(0));
        assert_eq!(log.common_prefix(&[pos(7, 1), pos(8, 1)]), None);
        assert_eq!(log.common_prefix(&[pos(4, 2), pos(5, 2)]), Some(5));
    }
}
