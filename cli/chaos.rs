//! `storectl chaos`: kill replicas under load and report what clients saw.

use anyhow::Result;
use storectl::chaos::{self, ChaosOptions, ChaosReport};
use storectl::client::stats::human_us;
use storectl::cluster::{Ephemeral, StateDir, UpOptions};
use storectl::progress::Progress;

use crate::args::ChaosArgs;
use crate::exit::Exit;

pub fn run(args: &ChaosArgs) -> Result<Exit> {
    let options = ChaosOptions {
        clients: args.clients as usize,
        p: args.p,
        rounds: args.rounds as usize,
        interval: args.interval,
        down_for: args.down_for,
        leader_share: args.leader_share,
        seed: args.seed.unwrap_or_else(rand::random),
        faults: args.fault.clone(),
        group: args.group,
    };
    let exe = crate::cluster::exe()?;
    let given = StateDir::new(&args.state.state_dir);
    let running = given.running().is_ok();
    let spinner = crate::progress::Bar::spinner(!args.json);
    let report = if running {
        chaos::run(&given, &options, &exe, &spinner)
    } else {
        let cluster = Ephemeral::new("chaos")?;
        spinner.message(&format!(
            "no cluster running in {}; starting one in {}",
            given.root().display(),
            cluster.root().display()
        ));
        // Stock for the whole run, so that every fault meets orders to the end.
        let up = UpOptions {
            fault_hooks: options.faults.contains(&chaos::Fault::SlowDisk),
            initial_stock: Some(chaos::OWN_CLUSTER_STOCK),
            ..Default::default()
        };
        cluster
            .up(&up, &exe)
            .and_then(|_| chaos::run(cluster.state(), &options, &exe, &spinner))
    };
    drop(spinner);
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
        println!(
            "seed: {} (repeat with --seed {})",
            options.seed, options.seed
        );
    }
    Ok(match report.problem() {
        None => Exit::Success,
        Some(problem) => Exit::failed(problem),
    })
}

/// One line per round: the fault, how long it was active, and the orders it met.
fn rounds_table(r: &ChaosReport) -> String {
    let mut out = format!(
        "{:>5}  {:<9} {:<28} {:>8}  {:>10} {:>6} {:>9}\n",
        "round", "fault", "hit", "active", "orders met", "acked", "slowest"
    );
    for k in &r.kills {
        let leader = if k.was_leader { " (leader)" } else { "" };
        let target = match k.fault {
            chaos::Fault::Two => format!("all but {}{leader}", k.replica),
            chaos::Fault::Power if k.replica.replica_id().is_some() => {
                format!("all order replicas{leader}")
            }
            chaos::Fault::Power if k.replica.catalog_id().is_some() => {
                format!("all catalogs{leader}")
            }
            _ => format!("{}{leader}", k.replica),
        };
        out.push_str(&format!(
            "{:>5}  {:<9} {:<28} {:>8}  {:>10} {:>6} {:>9}{}\n",
            k.round,
            k.fault.name(),
            target,
            format!("{:.2}s", k.active_ms as f64 / 1000.0),
            k.orders_in_flight,
            k.orders_acknowledged,
            if k.tested() {
                human_us(k.slowest_order_us as f64)
            } else {
                "–".into()
            },
            if k.tested() {
                ""
            } else {
                "  the fault met no order"
            }
        ));
    }
    out
}

fn render(r: &ChaosReport) -> String {
    let mut out = rounds_summary(r);
    out.push_str(&rounds_table(r));
    out.push_str(&power_cuts(r));
    out.push_str(&counts(r));
    out.push_str(&details(r));
    out.push_str(&verdict(r));
    out
}

/// The first line: how many rounds of each fault, how often the leader was hit, and the
/// slowest catch-up.
fn rounds_summary(r: &ChaosReport) -> String {
    let catch_up: Vec<u64> = r.kills.iter().map(|k| k.catch_up_ms).collect();
    let slowest = catch_up.iter().max().copied().unwrap_or(0);
    let mut by_fault: Vec<String> = Vec::new();
    for fault in chaos::Fault::ALL {
        let n = r.kills.iter().filter(|k| k.fault == fault).count();
        if n > 0 {
            by_fault.push(format!("{n} {}", fault.name()));
        }
    }
    format!(
        "{} rounds ({}): the leader hit {} times; slowest catch-up {} ms\n",
        r.rounds,
        by_fault.join(", "),
        r.leader_kills,
        slowest
    )
}

/// A line on the real power cuts (on a lossy disk) and the unsynced bytes they lost; empty when
/// there were none.
fn power_cuts(r: &ChaosReport) -> String {
    let cuts: Vec<u64> = r
        .kills
        .iter()
        .filter_map(|k| k.unsynced_bytes_lost)
        .collect();
    if cuts.is_empty() {
        return String::new();
    }
    format!(
        "power cut for real (lossy disk) {} times: {} bytes written but not fsynced were lost\n",
        cuts.len(),
        cuts.iter().sum::<u64>()
    )
}

/// One line per count and check: requests, errors, orders, the replicas' files, the stock and
/// the order latency.
fn counts(r: &ChaosReport) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "NO" };
    let mut out = format!("requests:               {}\n", r.requests);
    out.push_str(&format!(
        "client-visible errors:  {}{}\n",
        r.client_errors,
        if r.majority_kept || r.client_errors == 0 {
            ""
        } else {
            " (expected: some rounds left a group without a majority up)"
        }
    ));
    out.push_str(&format!(
        "orders retried (same key): {}\n",
        r.client.retries
    ));
    out.push_str(&format!(
        "orders acknowledged:    {}\n",
        r.orders_acknowledged
    ));
    out.push_str(&format!("orders lost:            {}\n", r.orders_lost));
    out.push_str(&format!(
        "orders duplicated:      {}\n",
        r.orders_duplicated
    ));
    out.push_str(&format!(
        "replica files identical: {}\n",
        yes_no(r.files_identical)
    ));
    out.push_str(&format!(
        "stock conserved:        {}\n",
        yes_no(r.stock_conserved)
    ));
    out.push_str(&format!(
        "order latency: p50 {}, p99 {}, max {}\n",
        r.client.order.show(r.client.order.p50_us as f64),
        r.client.order.show(r.client.order.p99_us as f64),
        r.client.order.show(r.client.order.max_us as f64)
    ));
    out
}

/// What explains a problem: how the files differ, the stock check that failed, samples of the
/// clients' errors, and when the toys sold out.
fn details(r: &ChaosReport) -> String {
    let mut out = String::new();
    if let Some(d) = &r.difference {
        out.push_str(&format!("difference: {d}\n"));
    }
    if !r.stock_conserved {
        out.push_str(&format!("{}\n", r.stock));
    }
    for sample in &r.client.error_samples {
        out.push_str(&format!("  error: {sample}\n"));
    }
    if let Some(after) = r.sold_out_after_s {
        out.push_str(&format!(
            "the clients found toys sold out {after:.1}s into the run; from then on they ordered \
             less\n"
        ));
    }
    out
}

/// The last line: the problem found, or what the run showed.
fn verdict(r: &ChaosReport) -> String {
    match r.problem() {
        Some(problem) => format!("FAILED: {problem}\n"),
        None if r.majority_kept => {
            "OK: no client saw an error, nothing was lost or duplicated\n".into()
        }
        None => "OK: every acknowledged order kept its number and owner; nothing was duplicated\n"
            .into(),
    }
}
