//! `storectl up|down|status|kill|restart`: the cluster in a state directory.

use anyhow::{Context, Result};
use storectl::cluster::members::{self, ReplicaGroup};
use storectl::cluster::{self, Signal, StateDir};
use storectl::cluster_file::ClusterFile;

use crate::args::{KillArgs, MemberCommand, StateArgs, StatusArgs, TargetArgs, UpArgs};
use crate::exit::Exit;

pub fn exe() -> Result<std::path::PathBuf> {
    std::env::current_exe().context("cannot find the storectl executable to start services with")
}

pub fn up(args: &UpArgs) -> Result<Exit> {
    let state = StateDir::new(&args.state.state_dir);
    // Progress for a person watching; a script reads only the outcome (or one error line).
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("starting a cluster in {} …", state.root().display());
    }
    let spec = cluster::up(&state, &args.options, &exe()?)?;
    print!("{}", cluster::render_status(&cluster::status(&state)?));
    println!(
        "\nfront end: {}   (try: curl {}/products/tux)",
        spec.frontend_url(),
        spec.frontend_url()
    );
    println!("logs and data: {}", state.root().display());
    Ok(Exit::Success)
}

pub fn down(args: &StateArgs) -> Result<Exit> {
    let state = StateDir::new(&args.state_dir);
    let stopped = cluster::down(&state)?;
    if stopped.is_empty() {
        println!("nothing was running in {}", state.root().display());
    } else {
        let names: Vec<String> = stopped
            .iter()
            .map(|(n, pid)| format!("{n} ({pid})"))
            .collect();
        println!("stopped {}", names.join(", "));
    }
    Ok(Exit::Success)
}

pub fn status(args: &StatusArgs) -> Result<Exit> {
    let rows = match &args.cluster {
        Some(file) => cluster::status_of(&ClusterFile::load(file)?),
        None => cluster::status(&StateDir::new(&args.state.state_dir))?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", cluster::render_status(&rows));
    }
    Ok(match cluster::problem(&rows, args.cluster.is_none()) {
        None => Exit::Success,
        Some(problem) => Exit::failed(problem),
    })
}

pub fn member(command: &MemberCommand) -> Result<Exit> {
    let MemberCommand::List(args) = command;
    let topology = match &args.cluster {
        Some(file) => ClusterFile::load(file)?,
        None => StateDir::new(&args.state.state_dir).load()?.topology,
    };
    let groups = match args.group {
        Some(group) => vec![group],
        None => vec![ReplicaGroup::Catalog, ReplicaGroup::Order],
    };
    let mut rows = Vec::new();
    let mut problem = None;
    for group in groups {
        match members::list(&topology, group) {
            Ok(members) => rows.extend(members),
            Err(e) => problem = problem.or(Some(e.to_string())),
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if !rows.is_empty() {
        print!("{}", members::render(&rows));
    }
    Ok(match problem {
        None => Exit::Success,
        Some(problem) => Exit::failed(problem),
    })
}

pub fn kill(args: &KillArgs) -> Result<Exit> {
    let state = StateDir::new(&args.target.state.state_dir);
    let signal = args.signal;
    let (name, pid) = cluster::kill(&state, args.target.target, signal)?;
    let what = match signal {
        Signal::Stop => "paused",
        Signal::Cont => "resumed",
        Signal::Kill | Signal::Term => "stopped",
    };
    println!("{name} (pid {pid}) {what} with {}", signal.name());
    Ok(Exit::Success)
}

/// How long `restart` waits for a replica to catch up with its leader.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(30);

pub fn restart(args: &TargetArgs) -> Result<Exit> {
    let state = StateDir::new(&args.state.state_dir);
    let (name, pid) = cluster::restart(&state, args.target, &exe()?)?;
    // A replica catches up from its leader before it serves: say when it has, when there is a
    // leader to catch up from (with no majority up there is none yet).
    let leader = name.replica_id().and_then(|_| {
        let spec = state.load().ok()?;
        cluster::find_leader(&spec.topology)
    });
    match leader {
        Some(_) => {
            cluster::wait_caught_up(&state, name, CATCH_UP)?;
            println!("{name} started again (pid {pid}) and has caught up with the leader");
        }
        None if name.replica_id().is_some() => println!(
            "{name} started again (pid {pid}); it catches up once a majority of replicas runs"
        ),
        None => println!("{name} started again (pid {pid})"),
    }
    Ok(Exit::Success)
}
