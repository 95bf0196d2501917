//! `storectl demo`: the first thing a newcomer runs. A whole cluster in a temporary directory,
//! clients against it, a leader crash in the middle, the restarted replica catching up, and the
//! replicas verified identical; everything stopped at the end, also on Ctrl-C.

use std::time::Duration;

use anyhow::Result;
use storectl::client::{self, ClientConfig};
use storectl::cluster::{self, Ephemeral, Signal, StateDir, Target, UpOptions};
use storectl::services::ServiceName;

use crate::args::DemoArgs;
use crate::exit::Exit;

pub fn run(args: &DemoArgs) -> Result<Exit> {
    let cluster = Ephemeral::new("demo")?;
    let outcome = act(&cluster, args);
    if args.keep {
        let kept = cluster.keep();
        println!(
            "\nthe cluster's files and logs are kept in {}",
            kept.display()
        );
    }
    outcome
}

fn act(cluster: &Ephemeral, args: &DemoArgs) -> Result<Exit> {
    let state = cluster.state();
    let spec = start_cluster(cluster, args)?;
    let (config, first) = order_with_every_client(&spec, args);
    let (victim, during) = crash_the_leader(state, config)?;
    restart_and_catch_up(state, victim)?;

    println!("\n== 5/5 are the replicas identical? ==");
    let comparison = storectl::verify::compare(&state.orders_paths())?;
    println!("{comparison}");
    let clean = first.ok() && during.ok() && comparison.identical();
    let verdict = verdict(clean, &first, &during, &comparison);
    println!("\n{verdict}; stopping the cluster");
    Ok(if clean {
        Exit::Success
    } else {
        Exit::failed("the demo found a problem (see above); run it with --keep to look at its files and logs")
    })
}

/// Step 1: starts the cluster with stock enough for the whole demo, and shows its status.
fn start_cluster(cluster: &Ephemeral, args: &DemoArgs) -> Result<cluster::ClusterSpec> {
    let state = cluster.state();
    println!("== 1/5 starting a cluster in {} ==", state.root().display());
    // Enough of every toy that no step sells out: the crash step must place orders to show
    // anything (restocks still refill a toy that does run out to 100).
    let stock = (args.clients * args.iterations * 5 + CRASH_STEP_ORDERS * 5).max(100);
    let options = UpOptions {
        initial_stock: Some(stock),
        ..Default::default()
    };
    let spec = cluster.up(&options, &crate::cluster::exe()?)?;
    println!("front end on {}", spec.frontend_url());
    print!("{}", cluster::render_status(&cluster::status(state)?));
    Ok(spec)
}

/// Step 2: every client orders against the healthy cluster; returns their configuration, for
/// the crash step, and what they saw.
fn order_with_every_client(
    spec: &cluster::ClusterSpec,
    args: &DemoArgs,
) -> (ClientConfig, client::Report) {
    println!(
        "\n== 2/5 {} clients, {} iterations each, ordering with p = {} ==",
        args.clients, args.iterations, args.p
    );
    let config = ClientConfig {
        frontend: spec.frontend_url(),
        sessions: args.clients as usize,
        iterations: args.iterations as usize,
        p: args.p,
        seed: rand::random(),
        products: client::catalog_products(),
        stop: None,
        retry_for: std::time::Duration::ZERO,
    };
    let first = crate::client::run_with_progress(&config, true);
    print!("{}", client::render(&first));
    (config, first)
}

/// Step 3: kills the order leader and has one client of `config` keep ordering; returns the
/// replica killed and what the client saw.
fn crash_the_leader(
    state: &StateDir,
    mut config: ClientConfig,
) -> Result<(ServiceName, client::Report)> {
    println!("\n== 3/5 crash: the order leader is killed with SIGKILL ==");
    let (victim, pid) = cluster::kill(state, Target::Leader, Signal::Kill)?;
    println!("{victim} (pid {pid}) killed; one client keeps ordering:");
    config.sessions = 1;
    config.iterations = CRASH_STEP_ORDERS as usize;
    config.p = 1.0;
    config.seed = config.seed.wrapping_add(1000);
    let during = crate::client::run_with_progress(&config, true);
    print!("{}", client::render(&during));
    print!("{}", cluster::render_status(&cluster::status(state)?));
    Ok((victim, during))
}

/// Step 4: restarts the killed replica and waits for it to catch up from the others.
fn restart_and_catch_up(state: &StateDir, victim: ServiceName) -> Result<()> {
    println!("\n== 4/5 {victim} restarts and catches up from the others ==");
    cluster::restart(state, victim.into(), &crate::cluster::exe()?)?;
    wait_for_convergence(state, Duration::from_secs(15));
    print!("{}", cluster::render_status(&cluster::status(state)?));
    Ok(())
}

/// What the demo showed, from the orders placed `first` and `during` the crash and the
/// replicas' `comparison`.
fn verdict(
    clean: bool,
    first: &client::Report,
    during: &client::Report,
    comparison: &storectl::verify::Comparison,
) -> String {
    let placed = first.orders + during.orders;
    if !clean {
        "something went wrong (see above)".to_string()
    } else if during.orders == 0 {
        format!(
            "no order was placed while the leader was down ({} refused as sold out), so this run \
             shows nothing about a crash; {placed} orders in all, every one read back",
            during.sold_out
        )
    } else {
        format!(
            "{} orders placed while the leader was down and {placed} in all, every one read back \
             at its number, and the three replicas hold the same {} orders",
            during.orders, comparison.orders
        )
    }
}

/// Orders the one client of the crash step tries to place (p = 1).
const CRASH_STEP_ORDERS: u64 = 30;

/// Waits until every replica holds as many orders as the leader, or `timeout` passes.
fn wait_for_convergence(state: &StateDir, timeout: Duration) {
    storectl::poll::until(timeout, Duration::from_millis(100), || {
        let rows = cluster::status(state).ok()?;
        cluster::status::replicas_converged(&rows).then_some(())
    });
}
