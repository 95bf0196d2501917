//! `storectl verify-logs`: are the replicas' order files identical, and was stock conserved?

use anyhow::Result;
use storectl::catalog::{ledger, stock::Stock, CATALOG_FILE};
use storectl::cluster::{ClusterSpec, StateDir};
use storectl::verify::{self, StockCheck};
use storectl::wire::{Data, VersionedProduct};

use crate::args::VerifyArgs;
use crate::exit::Exit;

pub fn run(args: &VerifyArgs) -> Result<Exit> {
    let state = StateDir::new(&args.state.state_dir);
    let spec = state.load()?;
    let comparison = verify::compare(&state.orders_paths())?;
    let stock = if args.stock {
        Some(check_stock(&state, &spec)?)
    } else {
        None
    };
    let ok = comparison.identical() && stock.as_ref().is_none_or(StockCheck::conserved);
    if args.json {
        let json = serde_json::json!({
            "identical": comparison.identical(),
            "orders": comparison.orders,
            "files": comparison.files,
            "difference": comparison.difference,
            "stock": stock.as_ref().map(|s| serde_json::json!({
                "conserved": s.conserved(),
                "toys": s.toys,
                "buys_without_order": s.buys_without_order,
                "orders_without_buy": s.orders_without_buy,
            })),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        match &comparison.difference {
            None => println!(
                "OK: {} order files identical, {} orders each",
                comparison.files.len(),
                comparison.orders
            ),
            Some(difference) => println!("DIFFERENT: {difference}"),
        }
        if let Some(check) = &stock {
            println!("{check}");
        }
    }
    Ok(if ok { Exit::Success } else { Exit::Failure })
}

/// Balances the ledger and the catalog's stock (live if the catalog runs, else its file) against
/// the first replica's order log.
fn check_stock(state: &StateDir, spec: &ClusterSpec) -> Result<StockCheck> {
    let records = ledger::read_file(&state.root().join(ledger::LEDGER_FILE))?;
    let orders = storectl::order::log::read_entries(&state.orders_paths()[0])?;
    let live = spec.url("catalog").and_then(|url| {
        let agent = storectl::client::agent();
        storectl::client::get(&agent, &format!("{url}/internal/stock"))
            .ok()
            .and_then(|reply| reply.json::<Data<Vec<VersionedProduct>>>())
    });
    let products = match live {
        Some(products) => products.data,
        None => {
            let path = state.root().join(CATALOG_FILE);
            let text = std::fs::read_to_string(&path).map_err(|e| storectl::Error::io(&path, e))?;
            Stock::parse(&text, &path)?.products()
        }
    };
    let stock: Vec<(String, u64)> = products.into_iter().map(|p| (p.name, p.quantity)).collect();
    Ok(verify::check_stock(&records, &orders, &stock))
}
