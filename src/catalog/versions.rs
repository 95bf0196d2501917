//! Product versions that only grow, across restarts, whatever the clock says.
//!
//! The front end orders a product's cache fills and invalidations by version and ignores an
//! invalidation older than what it has seen; a version that went back after a catalog restart
//! would leave stale replies cached. Each run reserves a block of versions above every earlier
//! run's and records the block's end in `catalog-versions` (durably, before any is used). The
//! clock only helps: a block starts at the clock's microseconds when those are ahead.

use std::path::Path;

use crate::error::{Error, Result};

pub const VERSIONS_FILE: &str = "catalog-versions";
/// Versions one run may use: a million changes a second for twelve days.
pub const BLOCK: u64 = 1 << 40;

/// Reserves this run's block and returns its first version: above the end of the last block
/// recorded in `dir`, and above `clock_micros`.
pub fn reserve(dir: &Path, clock_micros: u64) -> Result<u64> {
    let path = dir.join(VERSIONS_FILE);
    let last_end = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<u64>().map_err(|e| Error::Corrupt {
            path: path.clone(),
            line: 1,
            message: format!("not a version: {e}"),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(Error::io(&path, e)),
    };
    let first = last_end.max(clock_micros);
    let end = first.checked_add(BLOCK).ok_or_else(|| Error::Corrupt {
        path: path.clone(),
        line: 1,
        message: format!("versions are exhausted at {first}"),
    })?;
    crate::storage::write_atomic(&path, format!("{end}\n").as_bytes())?;
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_run_starts_above_the_last_even_with_the_clock_set_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = reserve(dir.path(), 5_000).unwrap();
        assert_eq!(first, 5_000);
        // The clock went back an hour: the next run still starts above the first run's block.
        let second = reserve(dir.path(), 1_000).unwrap();
        assert_eq!(second, 5_000 + BLOCK);
        // A clock far ahead is used as is.
        let third = reserve(dir.path(), 1 << 50).unwrap();
        assert_eq!(third, 1 << 50);
        std::fs::write(dir.path().join(VERSIONS_FILE), "garbage").unwrap();
        let err = reserve(dir.path(), 1).unwrap_err().to_string();
        assert!(err.contains("catalog-versions, line 1"), "{err}");
    }
}
