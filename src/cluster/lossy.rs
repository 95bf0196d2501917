//! A cluster whose replicas keep their files on a lossy disk (`up --lossy-disk`): one
//! `storectl lossy-disk` process serves `STATE/disk` over `STATE/disk-backing`, and each replica
//! keeps its files in a directory of its own there (`disk/order-2`), a disk of its own that a
//! power cut takes back alone: whatever the replica had not fsynced is gone.

use std::path::Path;
use std::time::Duration;

use super::{process, Signal, StateDir};
use crate::error::Error;
use crate::services::ServiceName;
use crate::tool_error::{Result, ToolError};

const PID_FILE: &str = "lossy-disk.pid";
const LOG_FILE: &str = "lossy-disk.log";
/// The lossy disk's control file, in the mount's root.
const CONTROL: &str = ".lossy-disk";
/// How long the disk may take to mount, or to go.
const WAIT: Duration = Duration::from_secs(10);

/// Why this process cannot serve a lossy disk, if it cannot.
pub fn unavailable() -> Option<String> {
    if !cfg!(feature = "lossy-disk") {
        return Some("this storectl was built without the `lossy-disk` feature".into());
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("the lossy disk mounts a FUSE file system, which needs root".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("the lossy disk needs FUSE, and /dev/fuse is missing".into());
    }
    None
}

/// Mounts the lossy disk of the cluster in `state` (started by `exe`), and makes a durable
/// directory on it for each of `replicas` that has none.
pub fn start(state: &StateDir, exe: &Path, replicas: &[ServiceName]) -> Result<()> {
    if let Some(why) = unavailable() {
        return Err(ToolError::usage(format!("--lossy-disk: {why}")));
    }
    let mount = state.lossy_mount();
    let backing = state.lossy_backing();
    // A disk left serving by an earlier run is stopped; one whose server was killed leaves its
    // mount behind, unusable.
    stop(state)?;
    for dir in [&mount, &backing] {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let args = [
        "lossy-disk".to_string(),
        mount.display().to_string(),
        "--backing".to_string(),
        backing.display().to_string(),
    ];
    let log = state.logs_dir().join(LOG_FILE);
    let mut child = process::spawn(exe, &args, &[], &log)?;
    process::write_pid_file(&state.root().join(PID_FILE), child.id())?;
    let control = mount.join(CONTROL);
    let mounted = crate::poll::try_until(WAIT, Duration::from_millis(20), || {
        if !matches!(child.try_wait(), Ok(None)) {
            return Err(ToolError::LossyDiskExited(log.clone()));
        }
        Ok(control.exists().then_some(()))
    })?;
    if mounted.is_none() {
        let _ = child.kill();
        return Err(ToolError::LossyDiskNotMounted {
            secs: WAIT.as_secs(),
            log,
        });
    }
    for &replica in replicas {
        let dir = mount.join(replica.to_string());
        if !dir.is_dir() {
            std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        // A catalog's seed, if the state directory has one, is the catalog's to read.
        let seed = state.root().join(crate::catalog::seed::SEED_FILE);
        if replica.catalog_id().is_some() && seed.is_file() {
            let to = dir.join(crate::catalog::seed::SEED_FILE);
            let bytes = std::fs::read(&seed).map_err(|e| Error::io(&seed, e))?;
            crate::storage::write_atomic(&to, &bytes)?;
        }
    }
    // The replicas' directories are durable before anything is written in them.
    std::fs::File::open(&mount)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(&mount, e).into())
}

/// Unmounts the lossy disk of the cluster in `state`, if it is mounted: everything written to
/// it stays, as on a disk whose machine was shut down cleanly.
pub fn stop(state: &StateDir) -> Result<()> {
    let pid_file = state.root().join(PID_FILE);
    if let Some(pid) = process::live_pid_in(&pid_file) {
        process::send(pid, Signal::Term)?;
        if !process::wait_gone(pid, WAIT) {
            return Err(ToolError::LossyDiskStillRunning(pid));
        }
    }
    unmount(&state.lossy_mount());
    let _ = std::fs::remove_file(pid_file);
    Ok(())
}

/// Cuts the power of `replicas`' disks: everything they had not synced is gone. They must be
/// stopped first. Returns how many unsynced bytes were lost.
pub fn cut(state: &StateDir, replicas: &[ServiceName]) -> Result<u64> {
    let control = state.lossy_mount().join(CONTROL);
    let mut lost = 0;
    for replica in replicas {
        std::fs::write(&control, format!("cut {replica}\n")).map_err(|e| Error::io(&control, e))?;
        let status = std::fs::read_to_string(&control).map_err(|e| Error::io(&control, e))?;
        lost += status
            .lines()
            .find_map(|l| l.strip_prefix("last cut lost bytes: "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(lost)
}

/// Detaches a FUSE mount at `mount`, if there is one; a mount whose server is gone answers
/// nothing but this.
fn unmount(mount: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(mount.as_os_str().as_bytes()) else {
        return;
    };
    // SAFETY: `path` is a valid C string; a path that is not a mount point gives EINVAL.
    unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
}
