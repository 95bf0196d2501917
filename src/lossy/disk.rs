//! The bookkeeping of a disk that loses what was not synced: a real directory (the backing)
//! always holds what the processes wrote, and this remembers, for each file and directory, what
//! a power cut would take back, so [`Disk::cut`] can rewind the backing to what was durable.
//!
//! The rules are POSIX's, which a real disk may hold a process to after a power cut:
//! - a file's bytes and length are durable once the file is fsynced (or fdatasynced);
//! - a name (a create, a rename to or from it, an unlink, a mkdir or rmdir) is durable once its
//!   directory is fsynced; a file fsynced under a name whose directory was not is lost with it;
//! - a file whose name is durable but whose bytes never were comes back empty.
//!
//! Undo records keep what a cut must restore: the old bytes of a durable range before it is
//! overwritten or truncated, and the durable entry of each name changed since its directory's
//! last fsync. An unlinked or replaced file that a durable name may still bring back is kept in a
//! graveyard beside the tree until that name's directory is synced. Appends, the common case,
//! cost no undo at all: a cut cuts the file back to its durable length.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The inode number of the mount's root directory, as FUSE numbers it.
pub const ROOT: u64 = 1;
/// Beside the tree in the backing directory, never shown through the mount: files unlinked
/// while a durable name may bring them back, and files being moved during a cut.
const GRAVEYARD: &str = ".lossy-graveyard";
const STAGING: &str = ".lossy-staging";

/// Names in the backing directory's root that are the disk's own, not the tree's.
pub fn is_internal(name: &OsStr) -> bool {
    name == GRAVEYARD || name == STAGING
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

struct Node {
    kind: Kind,
    /// Its directory and name now; `None` once unlinked (it waits in the graveyard).
    at: Option<(u64, OsString)>,
    /// For a file: its length when last synced.
    durable_len: u64,
    /// For a file: the old bytes of durable ranges overwritten or cut off since its last sync,
    /// in the order they were saved.
    undo: Vec<(u64, Vec<u8>)>,
    /// Open handles: an unlinked file stays readable and writable until the last is closed.
    open: u32,
}

/// What a cut took back.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CutReport {
    /// Bytes written since their file's last sync (appended or overwritten) that are gone.
    pub bytes_lost: u64,
    /// Files and directories whose creation, rename or removal was not durable.
    pub names_undone: u64,
}

/// What a cut would take back now.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unsynced {
    pub files: u64,
    pub bytes: u64,
    pub names: u64,
}

pub struct Disk {
    backing: PathBuf,
    nodes: HashMap<u64, Node>,
    /// Each directory's entries as the processes see them.
    entries: HashMap<u64, BTreeMap<OsString, u64>>,
    /// For each directory, the names changed since its last fsync, and what each was then.
    unsynced_names: HashMap<u64, HashMap<OsString, Option<u64>>>,
    /// Open descriptors on the backing files, one per file, shared by every handle.
    files: HashMap<u64, File>,
    next_ino: u64,
    cuts: u64,
}

impl Disk {
    /// The disk over `backing`, as it is now: everything in it counts as durable.
    pub fn open(backing: &Path) -> io::Result<Disk> {
        fs::create_dir_all(backing)?;
        for internal in [GRAVEYARD, STAGING] {
            let path = backing.join(internal);
            if path.exists() {
                fs::remove_dir_all(&path)?;
            }
            fs::create_dir(&path)?;
        }
        let mut disk = Disk {
            backing: backing.to_path_buf(),
            nodes: HashMap::new(),
            entries: HashMap::new(),
            unsynced_names: HashMap::new(),
            files: HashMap::new(),
            next_ino: ROOT + 1,
            cuts: 0,
        };
        disk.nodes.insert(ROOT, Node::new(Kind::Dir, None, 0));
        disk.entries.insert(ROOT, BTreeMap::new());
        disk.scan(ROOT)?;
        Ok(disk)
    }

    fn scan(&mut self, dir: u64) -> io::Result<()> {
        let path = self.path(dir)?;
        for entry in fs::read_dir(&path)? {
            let entry = entry?;
            let name = entry.file_name();
            if dir == ROOT && is_internal(&name) {
                continue;
            }
            let meta = entry.metadata()?;
            let kind = if meta.is_dir() {
                Kind::Dir
            } else if meta.is_file() {
                Kind::File
            } else {
                continue;
            };
            let ino = self.add_node(kind, dir, name, meta.len());
            if kind == Kind::Dir {
                self.scan(ino)?;
            }
        }
        Ok(())
    }

    fn add_node(&mut self, kind: Kind, dir: u64, name: OsString, durable_len: u64) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes
            .insert(ino, Node::new(kind, Some((dir, name.clone())), durable_len));
        self.entries.entry(dir).or_default().insert(name, ino);
        if kind == Kind::Dir {
            self.entries.insert(ino, BTreeMap::new());
        }
        ino
    }

    /// How many cuts this disk has been through.
    pub fn cuts(&self) -> u64 {
        self.cuts
    }

    pub fn kind(&self, ino: u64) -> Option<Kind> {
        self.nodes.get(&ino).map(|n| n.kind)
    }

    pub fn lookup(&self, dir: u64, name: &OsStr) -> Option<u64> {
        self.entries.get(&dir)?.get(name).copied()
    }

    /// A directory's entries, as the processes see them.
    pub fn list(&self, dir: u64) -> Vec<(OsString, u64, Kind)> {
        self.entries
            .get(&dir)
            .into_iter()
            .flatten()
            .filter_map(|(name, ino)| Some((name.clone(), *ino, self.kind(*ino)?)))
            .collect()
    }

    /// Where a file or directory is in the backing directory now.
    pub fn path(&self, ino: u64) -> io::Result<PathBuf> {
        let node = self.nodes.get(&ino).ok_or_else(gone)?;
        match &node.at {
            _ if ino == ROOT => Ok(self.backing.clone()),
            Some((dir, name)) => Ok(self.path(*dir)?.join(name)),
            None => Ok(self.backing.join(GRAVEYARD).join(ino.to_string())),
        }
    }

    /// A new empty file or directory `name` in `dir`.
    pub fn create(&mut self, dir: u64, name: &OsStr, kind: Kind, mode: u32) -> io::Result<u64> {
        if self.kind(dir) != Some(Kind::Dir) {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        if self.lookup(dir, name).is_some() {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        let path = self.path(dir)?.join(name);
        match kind {
            Kind::File => {
                use std::os::unix::fs::OpenOptionsExt;
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .open(&path)?;
            }
            Kind::Dir => {
                use std::os::unix::fs::DirBuilderExt;
                fs::DirBuilder::new().mode(mode).create(&path)?;
            }
        }
        self.note_name(dir, name);
        Ok(self.add_node(kind, dir, name.to_os_string(), 0))
    }

    /// Remembers what `name` in `dir` durably is, before its first change since the last sync.
    fn note_name(&mut self, dir: u64, name: &OsStr) {
        let now = self.lookup(dir, name);
        self.unsynced_names
            .entry(dir)
            .or_default()
            .entry(name.to_os_string())
            .or_insert(now);
    }

    fn file(&mut self, ino: u64) -> io::Result<&File> {
        if !self.files.contains_key(&ino) {
            if self.kind(ino) != Some(Kind::File) {
                return Err(io::Error::from_raw_os_error(libc::EISDIR));
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(self.path(ino)?)?;
            self.files.insert(ino, file);
        }
        Ok(&self.files[&ino])
    }

    pub fn len(&mut self, ino: u64) -> io::Result<u64> {
        Ok(self.file(ino)?.metadata()?.len())
    }

    pub fn read(&mut self, ino: u64, offset: u64, size: usize) -> io::Result<Vec<u8>> {
        let file = self.file(ino)?;
        let mut buffer = vec![0; size];
        let mut filled = 0;
        while filled < size {
            let n = file.read_at(&mut buffer[filled..], offset + filled as u64)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buffer.truncate(filled);
        Ok(buffer)
    }

    /// Writes `data` at `offset`, or at the end for `None` (a file opened to append); returns
    /// where it went.
    pub fn write(&mut self, ino: u64, offset: Option<u64>, data: &[u8]) -> io::Result<u64> {
        let len = self.len(ino)?;
        let at = offset.unwrap_or(len);
        self.save_durable(ino, at, at + data.len() as u64, len)?;
        self.file(ino)?.write_all_at(data, at)?;
        Ok(at)
    }

    /// Sets a file's length.
    pub fn truncate(&mut self, ino: u64, new_len: u64) -> io::Result<()> {
        let len = self.len(ino)?;
        if new_len < len {
            self.save_durable(ino, new_len, len, len)?;
        }
        self.file(ino)?.set_len(new_len)
    }

    /// Saves the durable bytes in `start..end` that are about to change (those within both
    /// the durable length and the file's current length `len`; durable bytes past `len` were
    /// saved when the file was cut shorter).
    fn save_durable(&mut self, ino: u64, start: u64, end: u64, len: u64) -> io::Result<()> {
        let durable_len = self.nodes.get(&ino).ok_or_else(gone)?.durable_len;
        let end = end.min(durable_len).min(len);
        if start >= end {
            return Ok(());
        }
        let old = self.read(ino, start, (end - start) as usize)?;
        self.nodes
            .get_mut(&ino)
            .ok_or_else(gone)?
            .undo
            .push((start, old));
        Ok(())
    }

    /// fsync or fdatasync of a file: its bytes and length are durable.
    pub fn sync_file(&mut self, ino: u64) -> io::Result<()> {
        let len = self.len(ino)?;
        let node = self.nodes.get_mut(&ino).ok_or_else(gone)?;
        node.durable_len = len;
        node.undo.clear();
        Ok(())
    }

    /// fsync of a directory: its entries are durable.
    pub fn sync_dir(&mut self, dir: u64) -> io::Result<()> {
        if self.kind(dir) != Some(Kind::Dir) {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        self.unsynced_names.remove(&dir);
        self.collect_graveyard()
    }

    pub fn unlink(&mut self, dir: u64, name: &OsStr) -> io::Result<()> {
        let ino = self.lookup(dir, name).ok_or_else(not_found)?;
        if self.kind(ino) == Some(Kind::Dir) {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        self.note_name(dir, name);
        self.bury(ino)?;
        self.collect_graveyard()
    }

    pub fn rmdir(&mut self, dir: u64, name: &OsStr) -> io::Result<()> {
        let ino = self.lookup(dir, name).ok_or_else(not_found)?;
        if self.kind(ino) != Some(Kind::Dir) {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        if self.entries.get(&ino).is_some_and(|e| !e.is_empty()) {
            return Err(io::Error::from_raw_os_error(libc::ENOTEMPTY));
        }
        self.note_name(dir, name);
        self.bury(ino)?;
        self.collect_graveyard()
    }

    /// Moves `ino` out of the tree into the graveyard, where a cut can bring it back from.
    fn bury(&mut self, ino: u64) -> io::Result<()> {
        let from = self.path(ino)?;
        let node = self.nodes.get_mut(&ino).ok_or_else(gone)?;
        let Some((dir, name)) = node.at.take() else {
            return Ok(());
        };
        if let Some(entries) = self.entries.get_mut(&dir) {
            entries.remove(&name);
        }
        fs::rename(from, self.path(ino)?)
    }

    pub fn rename(
        &mut self,
        dir: u64,
        name: &OsStr,
        new_dir: u64,
        new_name: &OsStr,
    ) -> io::Result<()> {
        let ino = self.lookup(dir, name).ok_or_else(not_found)?;
        if self.kind(new_dir) != Some(Kind::Dir) {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        if self.is_within(new_dir, ino) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let replaced = self.lookup(new_dir, new_name);
        if replaced == Some(ino) {
            return Ok(());
        }
        if let Some(old) = replaced {
            match (self.kind(ino), self.kind(old)) {
                (Some(Kind::File), Some(Kind::Dir)) => {
                    return Err(io::Error::from_raw_os_error(libc::EISDIR))
                }
                (Some(Kind::Dir), Some(Kind::File)) => {
                    return Err(io::Error::from_raw_os_error(libc::ENOTDIR))
                }
                (Some(Kind::Dir), _) if self.entries.get(&old).is_some_and(|e| !e.is_empty()) => {
                    return Err(io::Error::from_raw_os_error(libc::ENOTEMPTY))
                }
                _ => {}
            }
        }
        self.note_name(dir, name);
        self.note_name(new_dir, new_name);
        if let Some(old) = replaced {
            self.bury(old)?;
        }
        let from = self.path(ino)?;
        let to = self.path(new_dir)?.join(new_name);
        fs::rename(from, to)?;
        if let Some(entries) = self.entries.get_mut(&dir) {
            entries.remove(name);
        }
        self.entries
            .entry(new_dir)
            .or_default()
            .insert(new_name.to_os_string(), ino);
        self.nodes.get_mut(&ino).ok_or_else(gone)?.at = Some((new_dir, new_name.to_os_string()));
        self.collect_graveyard()
    }

    /// Whether `ino` is `ancestor` or inside it.
    fn is_within(&self, mut ino: u64, ancestor: u64) -> bool {
        loop {
            if ino == ancestor {
                return true;
            }
            match self.nodes.get(&ino).and_then(|n| n.at.as_ref()) {
                Some((dir, _)) => ino = *dir,
                None => return false,
            }
        }
    }

    /// A handle on `ino` was opened.
    pub fn opened(&mut self, ino: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.open += 1;
        }
    }

    /// A handle on `ino` was closed.
    pub fn released(&mut self, ino: u64) -> io::Result<()> {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.open = node.open.saturating_sub(1);
        }
        self.collect_graveyard()
    }

    /// Deletes what is in the graveyard that no durable name can bring back and no handle
    /// holds open.
    fn collect_graveyard(&mut self) -> io::Result<()> {
        let wanted: HashSet<u64> = self
            .unsynced_names
            .values()
            .flat_map(|names| names.values().flatten().copied())
            .collect();
        let dead: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(ino, n)| n.at.is_none() && **ino != ROOT && n.open == 0)
            .map(|(ino, _)| *ino)
            .filter(|ino| !wanted.contains(ino))
            .collect();
        for ino in dead {
            let path = self.path(ino)?;
            self.forget(ino);
            remove_any(&path)?;
        }
        Ok(())
    }

    fn forget(&mut self, ino: u64) {
        self.nodes.remove(&ino);
        self.entries.remove(&ino);
        self.unsynced_names.remove(&ino);
        self.files.remove(&ino);
    }

    /// The names changed since their directory's last fsync, as paths from the root.
    pub fn unsynced_names(&self) -> Vec<PathBuf> {
        let mut names: Vec<PathBuf> = self
            .unsynced_names
            .iter()
            .flat_map(|(dir, names)| {
                let dir = self
                    .path(*dir)
                    .ok()
                    .and_then(|p| p.strip_prefix(&self.backing).ok().map(Path::to_path_buf))
                    .unwrap_or_default();
                names.keys().map(move |name| dir.join(name))
            })
            .collect();
        names.sort();
        names
    }

    /// What a cut would take back now.
    pub fn unsynced(&mut self) -> Unsynced {
        let mut unsynced = Unsynced {
            names: self.unsynced_names.values().map(|n| n.len() as u64).sum(),
            ..Unsynced::default()
        };
        let files: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.kind == Kind::File)
            .map(|(ino, _)| *ino)
            .collect();
        for ino in files {
            let Ok(len) = self.len(ino) else { continue };
            let node = &self.nodes[&ino];
            let changed = len.saturating_sub(node.durable_len)
                + node.undo.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
            if changed > 0 || len < node.durable_len {
                unsynced.files += 1;
                unsynced.bytes += changed;
            }
        }
        unsynced
    }

    /// Power lost under `domain` (a directory, or the whole disk for [`ROOT`]): everything in it
    /// that was not durable is gone, and the backing directory holds what a disk would after
    /// the cut. Processes using the disk must be stopped first: their handles are worthless.
    pub fn cut(&mut self, domain: u64) -> io::Result<CutReport> {
        if self.kind(domain) != Some(Kind::Dir) {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        let (durable, placed) = self.durable_tree(domain);
        let live = self.live_tree(domain);
        let touched: HashSet<u64> = live.iter().copied().chain(placed.iter().copied()).collect();
        let report = self.measure_loss(&touched)?;
        let staging = self.backing.join(STAGING);
        self.clear_domain(domain, &durable, &staging)?;
        self.forget_undone(domain, &touched, &placed);
        self.rebuild_durable(durable, &staging)?;
        self.collect_graveyard()?;
        self.cuts += 1;
        Ok(report)
    }

    /// The durable tree under `domain` as (inode, directory, name), each directory before what
    /// is in it, and the set of inodes it places (the domain included).
    fn durable_tree(&self, domain: u64) -> (Vec<(u64, u64, OsString)>, HashSet<u64>) {
        let mut durable: Vec<(u64, u64, OsString)> = Vec::new();
        let mut placed: HashSet<u64> = HashSet::from([domain]);
        let mut stack = vec![domain];
        while let Some(dir) = stack.pop() {
            for (name, ino) in self.durable_entries(dir) {
                if !placed.insert(ino) {
                    continue;
                }
                durable.push((ino, dir, name));
                if self.kind(ino) == Some(Kind::Dir) {
                    stack.push(ino);
                }
            }
        }
        (durable, placed)
    }

    /// Every file and directory the processes see under `domain` now.
    fn live_tree(&self, domain: u64) -> Vec<u64> {
        let mut live: Vec<u64> = Vec::new();
        let mut stack = vec![domain];
        while let Some(dir) = stack.pop() {
            for (_, ino, kind) in self.list(dir) {
                live.push(ino);
                if kind == Kind::Dir {
                    stack.push(ino);
                }
            }
        }
        live
    }

    /// What a cut of the `touched` files and directories takes back: their unsynced names and
    /// bytes.
    fn measure_loss(&mut self, touched: &HashSet<u64>) -> io::Result<CutReport> {
        let mut report = CutReport::default();
        for ino in touched {
            report.names_undone += self.unsynced_names.get(ino).map_or(0, |n| n.len() as u64);
            if self.kind(*ino) == Some(Kind::File) {
                let len = self.len(*ino)?;
                let node = &self.nodes[ino];
                report.bytes_lost += len.saturating_sub(node.durable_len)
                    + node.undo.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
            }
        }
        Ok(report)
    }

    /// Moves the `durable` files into `staging` while the tree is rebuilt, and removes
    /// everything else under `domain` from the backing directory.
    fn clear_domain(
        &mut self,
        domain: u64,
        durable: &[(u64, u64, OsString)],
        staging: &Path,
    ) -> io::Result<()> {
        self.files.clear();
        for (ino, _, _) in durable {
            let path = self.path(*ino)?;
            match self.kind(*ino) {
                Some(Kind::File) => fs::rename(path, staging.join(ino.to_string()))?,
                // Rebuilt empty below; one in the graveyard is empty already.
                _ if self.nodes[ino].at.is_none() => remove_any(&path)?,
                _ => {}
            }
        }
        for (_, ino, _) in self.list(domain) {
            remove_any(&self.path(ino)?)?;
        }
        Ok(())
    }

    /// Drops the unsynced names under `domain` and forgets the `touched` files and directories
    /// that no durable name `placed`; leaves `domain` with no entries, to be rebuilt.
    fn forget_undone(&mut self, domain: u64, touched: &HashSet<u64>, placed: &HashSet<u64>) {
        for ino in touched {
            self.unsynced_names.remove(ino);
            if !placed.contains(ino) {
                self.forget(*ino);
            }
        }
        self.unsynced_names.remove(&domain);
        self.entries.insert(domain, BTreeMap::new());
    }

    /// Puts each `durable` file and directory back at its durable name: directories anew, files
    /// from `staging` with their overwritten bytes restored and their durable length.
    fn rebuild_durable(
        &mut self,
        durable: Vec<(u64, u64, OsString)>,
        staging: &Path,
    ) -> io::Result<()> {
        for (ino, dir, name) in durable {
            let node = self.nodes.get_mut(&ino).ok_or_else(gone)?;
            node.at = Some((dir, name.clone()));
            node.open = 0;
            let undo = std::mem::take(&mut node.undo);
            let (kind, durable_len) = (node.kind, node.durable_len);
            self.entries.entry(dir).or_default().insert(name, ino);
            let path = self.path(ino)?;
            match kind {
                Kind::Dir => {
                    fs::create_dir(&path)?;
                    self.entries.insert(ino, BTreeMap::new());
                }
                Kind::File => {
                    fs::rename(staging.join(ino.to_string()), &path)?;
                    let file = OpenOptions::new().write(true).open(&path)?;
                    for (offset, bytes) in undo.iter().rev() {
                        file.write_all_at(bytes, *offset)?;
                    }
                    file.set_len(durable_len)?;
                }
            }
        }
        Ok(())
    }

    /// A directory's entries as a cut would leave them.
    fn durable_entries(&self, dir: u64) -> BTreeMap<OsString, u64> {
        let mut entries = self.entries.get(&dir).cloned().unwrap_or_default();
        for (name, was) in self.unsynced_names.get(&dir).into_iter().flatten() {
            match was {
                Some(ino) => entries.insert(name.clone(), *ino),
                None => entries.remove(name),
            };
        }
        entries
    }
}

impl Node {
    fn new(kind: Kind, at: Option<(u64, OsString)>, durable_len: u64) -> Self {
        Node {
            kind,
            at,
            durable_len,
            undo: Vec::new(),
            open: 0,
        }
    }
}

fn remove_any(path: &Path) -> io::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn gone() -> io::Error {
    io::Error::from_raw_os_error(libc::ESTALE)
}

fn not_found() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        backing: PathBuf,
        disk: Disk,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let backing = dir.path().join("backing");
        let disk = Disk::open(&backing).unwrap();
        Fixture {
            _dir: dir,
            backing,
            disk,
        }
    }

    impl Fixture {
        fn file(&mut self, dir: u64, name: &str, data: &[u8]) -> u64 {
            let ino = self
                .disk
                .create(dir, name.as_ref(), Kind::File, 0o644)
                .unwrap();
            self.disk.write(ino, None, data).unwrap();
            ino
        }

        fn content(&self, path: &str) -> Option<Vec<u8>> {
            fs::read(self.backing.join(path)).ok()
        }

        /// The tree in the backing directory, internal directories aside.
        fn tree(&self) -> Vec<String> {
            fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
                for entry in fs::read_dir(dir).unwrap() {
                    let entry = entry.unwrap();
                    if dir == root && is_internal(&entry.file_name()) {
                        continue;
                    }
                    let path = entry.path();
                    out.push(path.strip_prefix(root).unwrap().display().to_string());
                    if path.is_dir() {
                        walk(root, &path, out);
                    }
                }
            }
            let mut out = Vec::new();
            walk(&self.backing, &self.backing, &mut out);
            out.sort();
            out
        }
    }

    #[test]
    fn appended_bytes_last_only_once_synced() {
        let mut f = fixture();
        let log = f.file(ROOT, "log", b"one\n");
        f.disk.sync_file(log).unwrap();
        f.disk.sync_dir(ROOT).unwrap();
        f.disk.write(log, None, b"two\n").unwrap();
        f.disk.sync_file(log).unwrap();
        f.disk.write(log, None, b"three\n").unwrap();
        assert_eq!(f.content("log").unwrap(), b"one\ntwo\nthree\n");
        let report = f.disk.cut(ROOT).unwrap();
        assert_eq!(f.content("log").unwrap(), b"one\ntwo\n");
        assert_eq!(report.bytes_lost, 6);
        // The file is usable after the cut, through the same inode.
        f.disk.write(log, None, b"four\n").unwrap();
        assert_eq!(f.disk.read(log, 0, 100).unwrap(), b"one\ntwo\nfour\n");
    }

    #[test]
    fn a_new_name_lasts_only_once_its_directory_is_synced() {
        let mut f = fixture();
        let synced_data_only = f.file(ROOT, "a", b"data");
        f.disk.sync_file(synced_data_only).unwrap();
        f.disk.cut(ROOT).unwrap();
        assert_eq!(
            f.tree(),
            Vec::<String>::new(),
            "a file fsynced in a directory never synced"
        );

        let named = f.file(ROOT, "b", b"data");
        f.disk.sync_dir(ROOT).unwrap();
        f.disk.cut(ROOT).unwrap();
        assert_eq!(
            f.content("b").unwrap(),
            b"",
            "named durably, bytes never synced: empty"
        );
        assert_eq!(f.disk.lookup(ROOT, "b".as_ref()), Some(named));

        let whole = f.file(ROOT, "c", b"data");
        f.disk.sync_file(whole).unwrap();
        f.disk.sync_dir(ROOT).unwrap();
        f.disk.cut(ROOT).unwrap();
        assert_eq!(f.content("c").unwrap(), b"data");
    }

    #[test]
    fn a_replacement_by_rename_lasts_only_once_the_directory_is_synced() {
        let mut f = fixture();
        let old = f.file(ROOT, "snapshot", b"old");
        f.disk.sync_file(old).unwrap();
        f.disk.sync_dir(ROOT).unwrap();
        for sync_dir in [false, true] {
            let new = f.file(ROOT, "snapshot.tmp", b"new");
            f.disk.sync_file(new).unwrap();
            f.disk
                .rename(ROOT, "snapshot.tmp".as_ref(), ROOT, "snapshot".as_ref())
                .unwrap();
            assert_eq!(f.content("snapshot").unwrap(), b"new");
            if sync_dir {
                f.disk.sync_dir(ROOT).unwrap();
            }
            f.disk.cut(ROOT).unwrap();
            let expected: &[u8] = if sync_dir { b"new" } else { b"old" };
            assert_eq!(f.content("snapshot").unwrap(), expected);
            assert_eq!(f.tree(), vec!["snapshot"]);
        }
        assert_eq!(
            fs::read_dir(f.backing.join(GRAVEYARD)).unwrap().count(),
            0,
            "nothing is kept once no durable name needs it"
        );
    }

    #[test]
    fn an_unlink_or_a_truncation_not_synced_is_undone() {
        let mut f = fixture();
        let file = f.file(ROOT, "ledger", b"0123456789");
        f.disk.sync_file(file).unwrap();
        f.disk.sync_dir(ROOT).unwrap();
        f.disk.truncate(file, 4).unwrap();
        f.disk.write(file, Some(2), b"xy").unwrap();
        f.disk.write(file, None, b"tail").unwrap();
        assert_eq!(f.content("ledger").unwrap(), b"01xytail");
        f.disk.cut(ROOT).unwrap();
        assert_eq!(f.content("ledger").unwrap(), b"0123456789");

        f.disk.unlink(ROOT, "ledger".as_ref()).unwrap();
        assert_eq!(f.tree(), Vec::<String>::new());
        f.disk.cut(ROOT).unwrap();
        assert_eq!(f.content("ledger").unwrap(), b"0123456789");

        f.disk.unlink(ROOT, "ledger".as_ref()).unwrap();
        f.disk.sync_dir(ROOT).unwrap();
        f.disk.cut(ROOT).unwrap();
        assert_eq!(f.tree(), Vec::<String>::new());
    }

    #[test]
    fn a_directory_not_synced_into_its_parent_goes_with_everything_in_it() {
        let mut f = fixture();
        let dir = f
            .disk
            .create(ROOT, "data".as_ref(), Kind::Dir, 0o755)
            .unwrap();
        let file = f.file(dir, "orders", b"1\n");
        f.disk.sync_file(file).unwrap();
        f.disk.sync_dir(dir).unwrap();
        f.disk.cut(ROOT).unwrap();
        assert_eq!(f.tree(), Vec::<String>::new());

        let dir = f
            .disk
            .create(ROOT, "data".as_ref(), Kind::Dir, 0o755)
            .unwrap();
        f.disk.sync_dir(ROOT).unwrap();
        let file = f.file(dir, "orders", b"1\n");
        f.disk.sync_file(file).unwrap();
        f.disk.sync_dir(dir).unwrap();
        f.disk.write(file, None, b"2\n").unwrap();
        f.disk.cut(ROOT).unwrap();
        assert_eq!(f.tree(), vec!["data", "data/orders"]);
        assert_eq!(f.content("data/orders").unwrap(), b"1\n");
    }

    #[test]
    fn a_cut_of_one_directory_leaves_the_others_alone() {
        let mut f = fixture();
        let mut files = Vec::new();
        for name in ["order-1", "order-2"] {
            let dir = f
                .disk
                .create(ROOT, name.as_ref(), Kind::Dir, 0o755)
                .unwrap();
            let file = f.file(dir, "log", b"synced\n");
            f.disk.sync_file(file).unwrap();
            f.disk.sync_dir(dir).unwrap();
            f.disk.write(file, None, b"not yet\n").unwrap();
            f.file(dir, "new", b"unnamed");
            files.push(dir);
        }
        f.disk.sync_dir(ROOT).unwrap();
        f.disk.cut(files[0]).unwrap();
        assert_eq!(f.content("order-1/log").unwrap(), b"synced\n");
        assert_eq!(f.content("order-1/new"), None);
        assert_eq!(f.content("order-2/log").unwrap(), b"synced\nnot yet\n");
        assert_eq!(f.content("order-2/new").unwrap(), b"unnamed");
        assert_eq!(f.disk.unsynced().names, 1);
    }

    #[test]
    fn what_was_there_before_the_disk_opened_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let backing = dir.path().join("backing");
        fs::create_dir_all(backing.join("order-1")).unwrap();
        fs::write(backing.join("order-1/log"), b"before\n").unwrap();
        let mut disk = Disk::open(&backing).unwrap();
        let order = disk.lookup(ROOT, "order-1".as_ref()).unwrap();
        let log = disk.lookup(order, "log".as_ref()).unwrap();
        disk.write(log, None, b"after\n").unwrap();
        disk.cut(ROOT).unwrap();
        assert_eq!(fs::read(backing.join("order-1/log")).unwrap(), b"before\n");
    }
}
