//! `storectl client`: the buy loop with a progress bar and a summary.

use anyhow::Result;
use storectl::client::{self, ClientConfig, Report};

use crate::args::ClientArgs;
use crate::exit::Exit;

pub fn run(args: &ClientArgs) -> Result<Exit> {
    let frontend = crate::verbs::resolve_frontend(&args.state.state_dir, args.frontend.as_deref())?;
    // A front end that does not answer at all is a setup problem, not a thousand client errors.
    let health = format!("{frontend}/health");
    if let Err(e) = storectl::tool_http::get(&storectl::tool_http::agent(), &health) {
        return Err(crate::verbs::not_answering(&frontend, &e));
    }
    let seed = args.seed.unwrap_or_else(rand::random);
    let config = ClientConfig {
        frontend,
        sessions: args.clients as usize,
        iterations: args.iterations as usize,
        p: args.p,
        seed,
        products: client::catalog_products(),
        stop: None,
        retry_for: std::time::Duration::ZERO,
    };
    let report = run_with_progress(&config, !args.json);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", client::render(&report));
        println!("seed: {seed} (repeat with --seed {seed})");
    }
    Ok(if report.ok() {
        Exit::Success
    } else {
        Exit::failed(format!(
            "{} unexpected replies, {} orders that did not read back as placed: see the errors \
             above and the services' logs (storectl logs NAME)",
            report.errors, report.mismatches
        ))
    })
}

/// Runs the client with a progress bar on stderr when `show`.
pub fn run_with_progress(config: &ClientConfig, show: bool) -> Report {
    let total = (config.sessions * config.iterations) as u64;
    let bar = crate::progress::Bar::new(
        show,
        Some(total),
        "{spinner} {bar:40} {pos}/{len} iterations and order checks, {per_sec} ({eta})",
    );
    client::run(config, &bar)
}
