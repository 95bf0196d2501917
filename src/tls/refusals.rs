//! Connections a service refused for their TLS: each one logged in a line naming the peer and
//! the reason, counted, and the last one kept for `/health` (and so for `storectl status`).

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// What `/health` says about refused connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Connections refused since the service started.
    pub count: u64,
    /// The last one: who and why.
    pub last: String,
}

#[derive(Debug, Default)]
pub struct Refusals {
    count: AtomicU64,
    last: Mutex<Option<String>>,
}

impl Refusals {
    /// Logs and keeps a refused connection from `peer` (an address, and who is there).
    pub fn record(&self, peer: &str, reason: &str) {
        let line = format!("refused a connection from {peer}: {reason}");
        tracing::warn!("TLS: {line}");
        self.count.fetch_add(1, Ordering::Relaxed);
        *self.last.lock() = Some(line);
    }

    /// The refusals so far, if there were any.
    pub fn report(&self) -> Option<Refusal> {
        let last = self.last.lock().clone()?;
        Some(Refusal {
            count: self.count.load(Ordering::Relaxed),
            last,
        })
    }
}
