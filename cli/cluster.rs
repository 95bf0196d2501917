//! `storectl up|down|status|kill|restart`: the cluster in a state directory.

use anyhow::{Context, Result};
use storectl::cluster::members::{self, ReplicaGroup};
use storectl::cluster::{self, Signal, StateDir};

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
    let url = spec.frontend_url();
    match spec.topology.tls_files(storectl::tls::TOOL_NAME) {
        // The public API speaks HTTPS with the cluster's certificate, and plain HTTP too.
        Some(files) => println!(
            "\nfront end: {url}   (try: curl --cacert {} {url}/products/tux)\n\
             the services speak mutual TLS; the public API answers plain HTTP too at {}",
            files.ca.display(),
            url.replacen("https://", "http://", 1)
        ),
        None => println!("\nfront end: {url}   (try: curl {url}/products/tux)"),
    }
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
        Some(file) => cluster::status_of(&storectl::tool_http::load_cluster(file)?),
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
    use storectl::cluster::reshape::LocalChange;
    let (target, change) = match command {
        MemberCommand::List(args) => return member_list(args),
        MemberCommand::Add(a) => (
            &a.target,
            LocalChange::Add {
                id: a.id,
                address: a.address.clone(),
            },
        ),
        MemberCommand::Remove(a) => (&a.target, LocalChange::Remove { id: a.id }),
        MemberCommand::Replace(a) => (
            &a.target,
            LocalChange::Replace {
                id: a.id,
                with: a.with,
                address: a.address.clone(),
            },
        ),
    };
    let group = target.group;
    let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = crate::progress::Bar::new(
        show,
        Some(0),
        "{spinner} {msg} [{bar:30}] {pos}/{len} entries",
    );
    let catch_up = target.catch_up_timeout.get();
    let done = match &target.cluster {
        None => storectl::cluster::reshape::change(
            &StateDir::new(&target.state.state_dir),
            group,
            &change,
            &exe()?,
            &bar,
            catch_up,
        )?,
        Some(file) => member_change_over_network(file, target, &change, &bar)?,
    };
    drop(bar);
    print_member_change(group, &change, &done);
    Ok(Exit::Success)
}

/// Says what a membership change did and who the group's voters and leader are now.
fn print_member_change(
    group: ReplicaGroup,
    change: &storectl::cluster::reshape::LocalChange,
    done: &storectl::cluster::member_change::Done,
) {
    use storectl::cluster::reshape::LocalChange;
    let name = |id: u32| format!("{}-{id}", group.name());
    let what = match *change {
        LocalChange::Add { id, .. } => format!("added {}", name(id)),
        LocalChange::Remove { id } => format!("removed {}", name(id)),
        LocalChange::Replace { id, with, .. } => {
            format!("replaced {} with {}", name(id), name(with))
        }
    };
    println!(
        "{what}: the {} group's voters are now {} ({} leads)",
        group.name(),
        done.voters
            .iter()
            .map(|id| name(*id))
            .collect::<Vec<_>>()
            .join(", "),
        name(done.leader)
    );
}

/// A membership change of the cluster in `file`, which is then updated to match.
fn member_change_over_network(
    file: &std::path::Path,
    target: &crate::args::MemberTarget,
    change: &storectl::cluster::reshape::LocalChange,
    progress: &dyn storectl::progress::Progress,
) -> Result<storectl::cluster::member_change::Done> {
    use storectl::cluster::member_change::GroupHandle;
    let mut topology = storectl::tool_http::load_cluster(file)?;
    let secret = target.secret.secret()?;
    let group = target.group;
    let planned = plan_network_change(file, &topology, group, change)?;
    let done = GroupHandle::new(&topology, group, &secret).apply(
        &planned.change,
        progress,
        target.catch_up_timeout.get(),
    )?;
    update_cluster_file(file, &mut topology, group, planned)?;
    Ok(done)
}

/// A membership change as the group's replicas take it, with what it does to the cluster file.
struct NetworkChange {
    change: storectl::cluster::member_change::Change,
    /// The replica the file gains, with its address.
    added: Option<(u32, String)>,
    /// The replica the file loses.
    removed: Option<u32>,
}

/// The network form of `change` to `group` of the cluster in `file`, with each new replica's
/// address as given or as the file names it.
fn plan_network_change(
    file: &std::path::Path,
    topology: &storectl::cluster_file::ClusterFile,
    group: ReplicaGroup,
    change: &storectl::cluster::reshape::LocalChange,
) -> Result<NetworkChange> {
    use storectl::cluster::member_change::Change;
    use storectl::cluster::reshape::LocalChange;
    let address = |id: u32, given: &Option<String>| address_of(file, topology, group, id, given);
    Ok(match change {
        LocalChange::Add { id, address: given } => {
            let address = address(*id, given)?;
            NetworkChange {
                change: Change::Add {
                    id: *id,
                    address: address.clone(),
                },
                added: Some((*id, address)),
                removed: None,
            }
        }
        LocalChange::Remove { id } => NetworkChange {
            change: Change::Remove { id: *id },
            added: None,
            removed: Some(*id),
        },
        LocalChange::Replace {
            id,
            with,
            address: given,
        } => {
            let address = address(*with, given)?;
            NetworkChange {
                change: Change::Replace {
                    id: *id,
                    with: *with,
                    address: address.clone(),
                },
                added: Some((*with, address)),
                removed: Some(*id),
            }
        }
    })
}

/// The address of replica `id` of `group`: the one `given`, or else the one the cluster `file`
/// (read as `topology`) names.
fn address_of(
    file: &std::path::Path,
    topology: &storectl::cluster_file::ClusterFile,
    group: ReplicaGroup,
    id: u32,
    given: &Option<String>,
) -> Result<String> {
    let entries = match group {
        ReplicaGroup::Order => &topology.order,
        ReplicaGroup::Catalog => &topology.catalog,
    };
    given
        .clone()
        .or_else(|| {
            entries
                .iter()
                .find(|e| e.id == id)
                .map(|e| e.address.clone())
        })
        .ok_or_else(|| {
            storectl::Error::Usage(format!(
                "{file} has no address for {}-{id}: give one with --address HOST:PORT",
                group.name(),
                file = file.display()
            ))
            .into()
        })
}

/// Writes the `applied` change's replicas into `group` of `topology` and saves it to `file`.
fn update_cluster_file(
    file: &std::path::Path,
    topology: &mut storectl::cluster_file::ClusterFile,
    group: ReplicaGroup,
    applied: NetworkChange,
) -> Result<()> {
    let NetworkChange { added, removed, .. } = applied;
    let entries = match group {
        ReplicaGroup::Order => &mut topology.order,
        ReplicaGroup::Catalog => &mut topology.catalog,
    };
    entries.retain(|e| Some(e.id) != removed && Some(e.id) != added.as_ref().map(|a| a.0));
    if let Some((id, address)) = added {
        entries.push(storectl::cluster_file::Entry { id, address });
        entries.sort_by_key(|e| e.id);
    }
    topology.save(file)?;
    eprintln!(
        "updated {}: copy it to every host, where services read it when they start",
        file.display()
    );
    Ok(())
}

fn member_list(args: &crate::args::MemberListArgs) -> Result<Exit> {
    let topology = match &args.cluster {
        Some(file) => storectl::tool_http::load_cluster(file)?,
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
