//! `storectl`: parses the command line and hands each command to its module.

mod args;
mod bench;
mod certs;
mod chaos;
mod client;
mod cluster;
mod dashboard;
mod demo;
mod exit;
mod generate;
mod interrupt;
#[cfg(feature = "lossy-disk")]
mod lossy;
mod progress;
mod serve;
mod top;
mod verbs;
mod verify;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};
use exit::Exit;

fn main() -> ExitCode {
    end_quietly_on_a_closed_pipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e).into(),
    };
    // `serve` stops on its own signals; `top` restores the terminal before it exits.
    if !matches!(
        cli.command,
        Command::Serve(_) | Command::Top(_) | Command::Dashboard(_)
    ) && !is_lossy_disk(&cli.command)
    {
        interrupt::stop_ephemeral_clusters_on_ctrl_c();
    }
    let result = match cli.command {
        Command::Serve(command) => serve::run(command),
        Command::Demo(args) => demo::run(&args),
        Command::Up(args) => cluster::up(&args),
        Command::Down(args) => cluster::down(&args),
        Command::Status(args) => cluster::status(&args),
        Command::Kill(args) => cluster::kill(&args),
        Command::Restart(args) => cluster::restart(&args),
        Command::Client(args) => client::run(&args),
        Command::Query(args) => verbs::query(&args),
        Command::Buy(args) => verbs::buy(&args),
        Command::Order(args) => verbs::order(&args),
        Command::Logs(args) => verbs::logs(&args),
        Command::Top(args) => top::run(&args),
        Command::Dashboard(args) => dashboard::run(&args),
        Command::Chaos(args) => chaos::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::VerifyLogs(args) => verify::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Member(command) => cluster::member(&command),
        Command::Certs(command) => certs::run(&command),
        #[cfg(feature = "lossy-disk")]
        Command::LossyDisk(args) => lossy::run(&args),
    };
    match result {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("storectl: {e:#}");
            exit_for(&e).into()
        }
    }
}

/// The exit code of a failure: 2 when the user asked for what cannot be, at whichever layer
/// found it out, 1 when something failed.
fn exit_for(e: &anyhow::Error) -> Exit {
    let usage = e
        .downcast_ref::<storectl::Error>()
        .is_some_and(|e| matches!(e, storectl::Error::Usage(_)))
        || e.downcast_ref::<storectl::tool_error::ToolError>()
            .is_some_and(|e| e.is_usage())
        || e.downcast_ref::<storectl::raft::ReplicaError>()
            .is_some_and(|e| e.is_usage());
    if usage {
        Exit::Usage
    } else {
        Exit::Failure
    }
}

/// A reader that stops early (`storectl status --json | head -c 10`) closes the pipe, and the
/// next `println!` fails with a broken pipe. That is a normal end for a command line tool, as it
/// is for ripgrep: exit 0 without a word, instead of the panic `println!` makes of it.
fn end_quietly_on_a_closed_pipe() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default_hook(info);
    }));
}

/// Prints help and version as clap does; shortens a usage error to one line that says where to
/// look.
fn clap_error(e: clap::Error) -> Exit {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            Exit::Success
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            Exit::Usage
        }
        _ => {
            eprintln!("storectl: {}", one_line(&e));
            Exit::Usage
        }
    }
}

/// A usage error on one line: clap's message, its suggestion ("did you mean 'status'?"), and the
/// help page of the command that was being typed.
fn one_line(e: &clap::Error) -> String {
    // clap puts the message first, then a tip, the usage and a pointer to the help; a missing
    // argument's name sits on the lines after "provided:".
    let text = e.render().to_string();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let message: Vec<&str> = lines
        .iter()
        .copied()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect();
    let mut out = message.join(" ");
    out = out.trim_start_matches("error: ").to_string();
    // "tip: a similar subcommand exists: 'status'" becomes "did you mean 'status'?".
    if let Some(similar) = lines
        .iter()
        .find_map(|l| {
            l.strip_prefix("tip: a similar ")
                .and_then(|t| t.split_once("exists: "))
        })
        .map(|(_, what)| what.trim())
    {
        out.push_str(&format!("; did you mean {similar}?"));
    }
    format!("{out} (see '{} --help')", command_typed())
}

/// The (sub)command the user was typing, from the command line: `storectl kill`,
/// `storectl serve order`.
fn command_typed() -> String {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut path = vec!["storectl".to_string()];
    for word in std::env::args().skip(1).filter(|w| !w.starts_with('-')) {
        let Some(sub) = command.find_subcommand(&word).cloned() else {
            break;
        };
        path.push(sub.get_name().to_string());
        command = sub;
    }
    path.join(" ")
}

/// Logs go to stderr, filtered by RUST_LOG; `default` applies when it is unset.
/// `lossy-disk` stops on its own signals, and unmounts on its way out.
fn is_lossy_disk(command: &Command) -> bool {
    #[cfg(feature = "lossy-disk")]
    if matches!(command, Command::LossyDisk(_)) {
        return true;
    }
    let _ = command;
    false
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
