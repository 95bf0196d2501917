//! `storectl verify-logs`: are the replicas' order files identical, and was stock conserved?

use anyhow::Result;
use storectl::cluster::StateDir;
use storectl::conservation::{self, StockCheck};
use storectl::verify;

use crate::args::VerifyArgs;
use crate::exit::Exit;

pub fn run(args: &VerifyArgs) -> Result<Exit> {
    let state = StateDir::new(&args.state.state_dir);
    state.load()?;
    let comparison = verify::compare(&state.orders_paths())?;
    let stock = if args.stock {
        Some(conservation::check_cluster(&state)?)
    } else {
        None
    };
    let ok = comparison.consistent() && stock.as_ref().is_none_or(StockCheck::conserved);
    if args.json {
        let json = serde_json::json!({
            "identical": comparison.identical(),
            "consistent": comparison.consistent(),
            "orders": comparison.orders,
            "lagging": comparison.lagging,
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
        println!("{comparison}");
        if let Some(check) = &stock {
            println!("{check}");
        }
    }
    Ok(if ok { Exit::Success } else { Exit::Failure })
}
