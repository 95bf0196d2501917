//! `storectl verify-logs`: are the replicas' order files identical, and was stock conserved?

use anyhow::Result;
use storectl::cluster::StateDir;
use storectl::cluster_file::ClusterFile;
use storectl::conservation::StockCheck;
use storectl::verify;

use crate::args::VerifyArgs;
use crate::exit::Exit;

pub fn run(args: &VerifyArgs) -> Result<Exit> {
    if let Some(file) = &args.cluster {
        return over_the_network(args, &storectl::tool_http::load_cluster(file)?);
    }
    let state = StateDir::new(&args.state.state_dir);
    state.load()?;
    let comparison = verify::compare(&state.orders_paths())?;
    let stock = if args.stock {
        Some(storectl::cluster::check_stock(&state)?)
    } else {
        None
    };
    let ok = comparison.consistent() && stock.as_ref().is_none_or(StockCheck::ok);
    if args.json {
        let json = serde_json::json!({
            "identical": comparison.identical(),
            "consistent": comparison.consistent(),
            "orders": comparison.orders,
            "lagging": comparison.lagging,
            "files": comparison.files,
            "difference": comparison.difference,
            "stock": stock.as_ref().map(stock_json),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("{comparison}");
        if let Some(check) = &stock {
            println!("{check}");
        }
    }
    Ok(if ok {
        Exit::Success
    } else if !comparison.consistent() {
        Exit::failed(
            "the replicas' order files contradict each other: see the first difference above",
        )
    } else if stock.as_ref().is_some_and(StockCheck::conserved) {
        Exit::failed("the catalog replicas' stock files differ: one may still be catching up; run it again, or see `storectl status`")
    } else {
        Exit::failed("stock was not conserved: see the toys above and the catalog leader's log (storectl logs catalog-N)")
    })
}

/// `verify-logs --cluster FILE`: every replica asked for its orders, the catalog for its stock.
fn over_the_network(args: &VerifyArgs, topology: &ClusterFile) -> Result<Exit> {
    let secret = args.secret.secret()?;
    let check = storectl::remote::verify(topology, &secret, args.stock)?;
    if args.json {
        let comparison = check.comparison.as_ref();
        let json = serde_json::json!({
            "identical": comparison.is_some_and(|c| c.identical()) && check.unreachable().next().is_none(),
            "consistent": comparison.is_some_and(|c| c.consistent()),
            "orders": comparison.map(|c| c.orders),
            "lagging": comparison.map(|c| &c.lagging),
            "difference": comparison.and_then(|c| c.difference.as_ref()),
            "replicas": check.replicas,
            "stock": check.stock.as_ref().map(stock_json),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("{check}");
    }
    Ok(if check.ok() {
        Exit::Success
    } else {
        Exit::failed("a replica does not answer, the replicas contradict each other, or stock was not conserved: see above")
    })
}

/// The stock check in `--json` output.
fn stock_json(check: &StockCheck) -> serde_json::Value {
    serde_json::json!({
        "conserved": check.conserved(),
        "catalogs_identical": check.catalogs_identical(),
        "catalogs": check.catalogs,
        "toys": check.toys,
        "buys_without_order": check.buys_without_order,
    })
}
