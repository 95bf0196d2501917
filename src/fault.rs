//! Crash points for tests, off unless `STORECTL_FAULT_DIR` names a directory. A file in it named
//! after a point makes the process abort there, once (the file is removed first): a SIGKILL at an
//! exact instant, which a test could not time from outside.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Between the catalog's buy and the leader's append of the order.
pub const AFTER_BUY: &str = "after-buy";

fn fault_dir() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os("STORECTL_FAULT_DIR").map(PathBuf::from))
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
