//! How long work reports its progress. The library says what it is doing and how far it got; the
//! command line decides how to show it (a bar on a terminal, nothing under `--json`).

/// Hears of a long job's steps. Both methods do nothing unless overridden.
pub trait Progress: Sync {
    /// What is being done now.
    fn message(&self, _text: &str) {}
    /// `units` more units of the work are done (client iterations, bench phases).
    fn advance(&self, _units: u64) {}
    /// The work turned out `units` larger than first said (orders found to check).
    fn grow(&self, _units: u64) {}
}

/// Shows nothing.
pub struct Quiet;

impl Progress for Quiet {}
