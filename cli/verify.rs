//! `storectl verify-logs`: are the replicas' order files identical?

use anyhow::Result;
use storectl::cluster::StateDir;

use crate::args::VerifyArgs;
use crate::exit::Exit;

pub fn run(args: &VerifyArgs) -> Result<Exit> {
    let state = StateDir::new(&args.state.state_dir);
    state.load()?;
    let comparison = storectl::verify::compare(&state.orders_paths())?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "identical": comparison.identical(),
                "orders": comparison.orders,
                "files": comparison.files,
                "difference": comparison.difference,
            }))?
        );
    } else {
        match &comparison.difference {
            None => println!(
                "OK: {} order files identical, {} orders each",
                comparison.files.len(),
                comparison.orders
            ),
            Some(difference) => println!("DIFFERENT: {difference}"),
        }
    }
    Ok(if comparison.identical() {
        Exit::Success
    } else {
        Exit::Failure
    })
}
