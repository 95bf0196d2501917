//! Durable file operations: atomic replacement and directory fsync, so a crash at any instant
//! leaves either the old file or the new one, never a torn one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Access, Error, Result};

/// Replaces `path` with `contents`: write a temporary file beside it, fsync it, rename it over
/// the old one, fsync the directory.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    file.write_all(contents).map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    crate::fault::storage_point(crate::fault::REPLACE_SYNCED, path);
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    crate::fault::storage_point(crate::fault::REPLACE_RENAMED, path);
    sync_dir(path)
}

/// Fsyncs the directory holding `path`, so a create or rename in it survives a crash.
pub fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Cuts an append-only file back to its first `whole` bytes when more follow: the rest is a last
/// line that a crash cut short, never fsynced and so never acknowledged.
pub fn drop_torn_tail(path: &Path, whole: usize, len: usize) -> Result<()> {
    if whole >= len {
        return Ok(());
    }
    tracing::warn!(
        "{}: dropping a torn last line ({} bytes) left by a crash during a write",
        path.display(),
        len - whole
    );
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.set_len(whole as u64)
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// An append-only file whose appends are all or nothing: an append that fails (a full disk, a
/// failed fsync) is cut back off the file before the error is returned, so a retry never
/// writes the same records twice and a start never finds half a record in the middle. Both the
/// replicas' logs of both groups append this way.
#[derive(Debug)]
pub struct AppendFile {
    path: PathBuf,
    file: File,
    /// Bytes of the file that are whole, durable appends.
    len: u64,
}

impl AppendFile {
    /// Opens `path` for appending. What it holds may be only in the page cache (a process that
    /// died while the machine did not): it is fsynced first, so that `len` is durable.
    pub fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        file.sync_data().map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok(AppendFile {
            path: path.to_path_buf(),
            file,
            len,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `bytes` without waiting for the disk; [`Self::sync`] makes them durable. On a
    /// failure the file is cut back to its last durable length.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes).inspect_err(|_| self.cut_back())
    }

    /// Makes everything written since the last sync durable, or cuts it off again.
    pub fn sync(&mut self) -> std::io::Result<()> {
        crate::fault::storage_point(crate::fault::APPEND_WRITTEN, &self.path);
        let started = std::time::Instant::now();
        let synced = self.file.sync_data();
        crate::metrics::record_fsync(started.elapsed());
        match synced {
            Ok(()) => {
                crate::fault::storage_point(crate::fault::APPEND_SYNCED, &self.path);
                self.len = self.file.metadata()?.len();
                Ok(())
            }
            Err(e) => {
                self.cut_back();
                Err(e)
            }
        }
    }

    /// Appends `bytes` and fsyncs; on any failure the file is as it was before.
    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write(bytes)?;
        self.sync()
    }

    /// Cuts off whatever a failed append left past the last whole one.
    fn cut_back(&mut self) {
        if let Err(e) = self
            .file
            .set_len(self.len)
            .and_then(|_| self.file.sync_data())
        {
            tracing::error!(
                "{}: cannot cut a failed append back off: {e}",
                self.path.display()
            );
        }
    }

    /// Replaces the whole file with `contents` (atomically) and appends after them.
    pub fn replace(&mut self, contents: &[u8]) -> Result<()> {
        write_atomic(&self.path, contents)?;
        *self = AppendFile::open(&self.path)?;
        Ok(())
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Makes the data directory `dir` (and its parents) if it is missing, as a service's first start
/// on a new host needs, and checks that the service's user may make files in it: a directory
/// another user owns (a copy not given to the service's user) fails here, with a message that
/// names the directory and the user, rather than at the first file written in it.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::access(dir, Access::Write, e))?;
    let path =
        std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|e| Error::io(dir, e.into()))?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        )
    };
    if rc != 0 {
        return Err(Error::access(
            dir,
            Access::Write,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!temp_path(&path).exists());
    }
}
