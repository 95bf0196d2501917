//! Whether the cluster in a state directory conserved stock (`verify-logs --stock`, `chaos`):
//! the rule of [`crate::conservation`], applied to this cluster's order files and catalog
//! replicas.

use crate::conservation::{self, CatalogCopy, StockCheck};
use crate::tool_error::Result;

use super::StateDir;

/// How long a catalog replica that differs from the others is given to catch up.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(3);

/// Checks that the cluster in `state` conserved stock: the catalog leader's stock, totals and
/// unconfirmed sales, read at one instant, against the order log of the replica with the most
/// orders.
pub fn check_stock(state: &StateDir) -> Result<StockCheck> {
    let spec = state.load()?;
    // The replica that has applied the most orders: one that lags would look like lost orders.
    let comparison = crate::verify::compare(&state.orders_paths())?;
    let longest = comparison
        .longest()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| state.orders_paths()[0].clone());
    let orders = crate::order::orders_file::read_entries(&longest)?;
    let secret = crate::secret::Secret::load(state.root()).ok();
    let snapshot = conservation::catalog_snapshot(&spec.topology, secret.as_ref())?;
    let mut check = conservation::check_snapshot(snapshot, &orders);
    // A running replica is asked for the stock it has applied (its file follows a moment
    // later); a stopped one's file is what it holds. One just started may still be catching
    // up: asked again for a moment before the copies are called different.
    let agent = crate::tool_http::health_agent();
    let read_all = || -> Vec<CatalogCopy> {
        spec.topology
            .catalogs()
            .into_iter()
            .map(|replica| {
                let url = format!("{}/internal/stock-file", replica.url);
                let asked = crate::tool_http::get_authorized(&agent, &url, secret.as_ref())
                    .ok()
                    .filter(|reply| reply.status == 200)
                    .map(|reply| reply.body.into_bytes());
                let bytes = match asked {
                    Some(bytes) => Ok(bytes),
                    None => {
                        let path = state
                            .data_dir(crate::services::ServiceName::Catalog(replica.id))
                            .join(crate::catalog::file_name(replica.id));
                        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
                    }
                };
                CatalogCopy::of(format!("catalog-{}", replica.id), bytes)
            })
            .collect()
    };
    check.catalogs = read_all();
    let deadline = std::time::Instant::now() + CATCH_UP;
    while !check.catalogs_identical() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        check.catalogs = read_all();
    }
    Ok(check)
}
