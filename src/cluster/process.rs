//! Processes of a cluster: spawning `storectl serve …` detached, signalling them by pid, and
//! telling whether a pid is still one of ours.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::error::Error;
use crate::tool_error::{Result, ToolError};

/// Starts `exe args…` in its own process group (so a Ctrl-C meant for the caller does not reach
/// it), with `env` added to its environment and its output appended to `log`. Dropping the
/// returned child leaves it running.
pub fn spawn(exe: &Path, args: &[String], env: &[(&str, &str)], log: &Path) -> Result<Child> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io(log, e))?;
    let err = out.try_clone().map_err(|e| Error::io(log, e))?;
    Command::new(exe)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| Error::io(exe, e).into())
}

/// When `pid` started, in clock ticks since boot (field 22 of `/proc/PID/stat`): with the pid,
/// it names one process for good, since a pid can be reused but not at the same instant.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start at field 3 (the state).
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// True when `pid` is the `storectl serve` (or `lossy-disk`) process that started at `started`
/// (when known): alive, not a zombie, and not another process that got the pid after ours ended.
pub fn is_ours(pid: u32, started: Option<u64>) -> bool {
    is_alive(pid) && started.is_none_or(|s| start_time(pid) == Some(s))
}

/// The state letter of `pid` in `/proc/PID/stat` (R, S, T for stopped, Z for a zombie…).
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the parenthesised command name.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim().chars().next())
}

/// True when `pid` is stopped by a signal (SIGSTOP): it runs, and answers nothing.
pub fn is_paused(pid: u32) -> bool {
    state(pid) == Some('T')
}

/// True when `pid` runs and is a `storectl serve` or `storectl lossy-disk` process (not a
/// zombie).
pub fn is_alive(pid: u32) -> bool {
    let state = state(pid);
    if matches!(state, Some('Z') | Some('X') | None) {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmd| {
            let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
            args.iter().any(|a| *a == b"serve" || *a == b"lossy-disk")
        })
        .unwrap_or(false)
}

/// A signal `storectl kill` sends; the doc comments are its `--signal` help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Signal {
    /// SIGKILL: a crash, nothing flushed
    Kill,
    /// SIGTERM: a graceful stop
    Term,
    /// SIGSTOP: a pause; the process holds its sockets and answers nothing
    Stop,
    /// SIGCONT: resumes a paused process
    Cont,
}

impl Signal {
    fn number(self) -> i32 {
        match self {
            Signal::Kill => libc::SIGKILL,
            Signal::Term => libc::SIGTERM,
            Signal::Stop => libc::SIGSTOP,
            Signal::Cont => libc::SIGCONT,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Kill => "SIGKILL",
            Signal::Term => "SIGTERM",
            Signal::Stop => "SIGSTOP",
            Signal::Cont => "SIGCONT",
        }
    }
}

pub fn send(pid: u32, signal: Signal) -> Result<()> {
    let Ok(number) = i32::try_from(pid) else {
        return Err(ToolError::Signal {
            signal: signal.name(),
            pid,
            cause: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        });
    };
    // SAFETY: kill(2) with a concrete positive pid and a valid signal number has no memory effects.
    let rc = unsafe { libc::kill(number, signal.number()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(ToolError::Signal {
            signal: signal.name(),
            pid,
            cause: std::io::Error::last_os_error(),
        })
    }
}

/// Waits until `pid` is gone, for at most `timeout`. Returns whether it went.
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    crate::poll::until(timeout, Duration::from_millis(20), || {
        (!is_alive(pid)).then_some(())
    })
    .is_some()
}

/// Stops `pid` gracefully, then forcibly after `grace`.
pub fn stop(pid: u32, grace: Duration) -> Result<()> {
    if !is_alive(pid) {
        return Ok(());
    }
    send(pid, Signal::Term)?;
    if wait_gone(pid, grace) {
        return Ok(());
    }
    send(pid, Signal::Kill)?;
    wait_gone(pid, Duration::from_secs(5));
    Ok(())
}

/// Writes the pid file at `path` for `pid`: the pid and when it started.
pub fn write_pid_file(path: &Path, pid: u32) -> Result<()> {
    let record = match start_time(pid) {
        Some(started) => format!("{pid} {started}\n"),
        None => format!("{pid}\n"),
    };
    Ok(crate::storage::write_atomic(path, record.as_bytes())?)
}

/// A pid file holds `PID START_TIME`: the pid and when that process started, so that a
/// later process given the same pid is never taken for ours.
pub fn read_pid_file(path: &Path) -> Option<(u32, Option<u64>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut fields = text.split_whitespace();
    let pid = fields.next()?.parse().ok()?;
    let started = fields.next().and_then(|s| s.parse().ok());
    Some((pid, started))
}

/// The pid in the pid file at `path`, if that very process still runs.
pub fn live_pid_in(path: &Path) -> Option<u32> {
    read_pid_file(path)
        .filter(|&(pid, started)| is_ours(pid, started))
        .map(|(pid, _)| pid)
}
