//! Crash points for tests, off unless `STORECTL_FAULT_DIR` names a directory. A file in it named
//! after a point makes the process abort there, once (the file is removed first): a SIGKILL at an
//! exact instant, which a test could not time from outside.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// After the catalog sold, before the leader commits the outcome.
pub const AFTER_BUY: &str = "after-buy";

/// The storage layer's crash points, in the order a write goes through them. Each is armed as
/// `NAME` (any file) or `NAME@FILE` (only the file named FILE, e.g.
/// `replace-renamed@snapshot-2.json`); `docs/replication.md` says what each must leave behind.
pub const STORAGE_POINTS: [&str; 5] = [
    APPEND_WRITTEN,
    APPEND_SYNCED,
    REPLACE_SYNCED,
    REPLACE_RENAMED,
    SNAPSHOT_INSTALLING,
];
/// An append's bytes are written to its file, not yet fsynced.
pub const APPEND_WRITTEN: &str = "append-written";
/// An append is fsynced, not yet reported durable.
pub const APPEND_SYNCED: &str = "append-synced";
/// A file's replacement (a snapshot, a compacted log) is written and fsynced under its
/// temporary name, not yet renamed over the file.
pub const REPLACE_SYNCED: &str = "replace-synced";
/// The replacement is renamed over the file, the directory not yet fsynced.
pub const REPLACE_RENAMED: &str = "replace-renamed";
/// A snapshot received from the leader is saved, not yet taken in place of the book.
pub const SNAPSHOT_INSTALLING: &str = "snapshot-installing";

/// With this variable set, the replicas snapshot every 50 entries, keep 10 entries behind a
/// snapshot and compact their log files after 50 records, so that a test meets snapshots,
/// their installation and compactions within a few hundred orders.
pub const SMALL_LOG_ENV: &str = "STORECTL_SMALL_LOG";

/// Whether [`SMALL_LOG_ENV`] is set.
pub fn small_log() -> bool {
    static SMALL: OnceLock<bool> = OnceLock::new();
    *SMALL.get_or_init(|| std::env::var_os(SMALL_LOG_ENV).is_some())
}

/// The crash point `name` of the storage layer, reached while writing `path`.
pub fn storage_point(name: &str, path: &Path) {
    if fault_dir().is_none() {
        return;
    }
    point(name);
    if let Some(file) = path.file_name() {
        point(&format!("{name}@{}", file.to_string_lossy()));
    }
}

/// The variable that names a service's fault directory.
pub const FAULT_DIR_ENV: &str = "STORECTL_FAULT_DIR";

fn fault_dir() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os(FAULT_DIR_ENV).map(PathBuf::from))
        .as_ref()
}

/// Aborts the process if the fault `name` is armed.
pub fn point(name: &str) {
    let Some(dir) = fault_dir() else {
        return;
    };
    if std::fs::remove_file(dir.join(name)).is_ok() {
        eprintln!("fault point '{name}' armed: aborting");
        std::process::abort();
    }
}

/// A slow disk: while the file `slow-fsync` in the fault directory holds a number of
/// milliseconds, every fsync of an append-only file (a replica's log, of either group)
/// waits that long first. Unlike a crash point it
/// stays armed until the file is removed, so a test can slow a replica's disk and heal it.
pub const SLOW_FSYNC: &str = "slow-fsync";

/// Sleeps as long as [`SLOW_FSYNC`] says, if it is armed.
pub fn slow_disk() {
    let Some(dir) = fault_dir() else {
        return;
    };
    let delay = std::fs::read_to_string(dir.join(SLOW_FSYNC))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if let Some(ms) = delay {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// A clock set wrong: while the file `clock-offset` in the fault directory holds a number of
/// seconds (negative for behind), [`clock_micros`] is off by that much.
pub const CLOCK_OFFSET: &str = "clock-offset";

/// Microseconds since the Unix epoch by the wall clock, shifted by [`CLOCK_OFFSET`] if armed.
pub fn clock_micros() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i128)
        .unwrap_or(0);
    let offset = fault_dir()
        .and_then(|dir| std::fs::read_to_string(dir.join(CLOCK_OFFSET)).ok())
        .and_then(|s| s.trim().parse::<i128>().ok())
        .unwrap_or(0);
    u64::try_from(now + offset * 1_000_000).unwrap_or(0)
}
