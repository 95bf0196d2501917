//! The lossy disk served to the kernel over FUSE. Every open file is in direct I/O and nothing
//! is cached by the kernel (attributes and names live for 0 s), so after a cut the processes
//! read what the disk kept, not what the kernel remembers.
//!
//! A control file, `.lossy-disk` at the mount's root (not listed), cuts the power: write
//! `cut` to lose everything unsynced, or `cut DIR` for the directory `DIR` only (one replica's
//! disk when every replica has its own directory); the write returns once the cut is done.
//! Reading it says what a cut would take back now.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::path::{Component, Path};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    consts::FOPEN_DIRECT_IO, FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    TimeOrNow,
};

use super::disk::{Disk, Kind, ROOT};

/// The control file's name, in the mount's root.
pub const CONTROL: &str = ".lossy-disk";
const CONTROL_INO: u64 = u64::MAX - 1;
/// Nothing is cached by the kernel: a cut changes files under its feet.
const TTL: Duration = Duration::ZERO;

/// The file system: the disk, and the open handles on it.
pub struct LossyFs {
    disk: Disk,
    /// What the last cut took back, for the control file to say.
    last_cut: super::disk::CutReport,
    /// Open handles: the file, and whether it appends.
    handles: HashMap<u64, (u64, bool)>,
    next_handle: u64,
}

impl LossyFs {
    pub fn new(disk: Disk) -> Self {
        LossyFs {
            disk,
            last_cut: Default::default(),
            handles: HashMap::new(),
            next_handle: 1,
        }
    }

    fn attr(&mut self, ino: u64) -> io::Result<FileAttr> {
        if ino == CONTROL_INO {
            return Ok(control_attr());
        }
        let meta = std::fs::symlink_metadata(self.disk.path(ino)?)?;
        Ok(to_attr(ino, &meta))
    }

    /// A new file or directory, and its attributes.
    fn make(
        &mut self,
        parent: u64,
        name: &OsStr,
        kind: Kind,
        mode: u32,
    ) -> io::Result<(u64, FileAttr)> {
        let ino = self.disk.create(parent, name, kind, mode)?;
        Ok((ino, self.attr(ino)?))
    }

    fn handle(&mut self, ino: u64, append: bool) -> u64 {
        let fh = self.next_handle;
        self.next_handle += 1;
        self.handles.insert(fh, (ino, append));
        self.disk.opened(ino);
        fh
    }

    /// `cut` or `cut DIR`, written to the control file.
    fn control(&mut self, command: &[u8]) -> io::Result<String> {
        let command = String::from_utf8_lossy(command);
        let mut words = command.split_whitespace();
        if words.next() != Some("cut") {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let mut domain = ROOT;
        if let Some(dir) = words.next() {
            for part in Path::new(dir).components() {
                let Component::Normal(name) = part else {
                    return Err(io::Error::from_raw_os_error(libc::EINVAL));
                };
                domain = self
                    .disk
                    .lookup(domain, name)
                    .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
            }
        }
        let report = self.disk.cut(domain)?;
        self.last_cut = report.clone();
        // Handles on what the cut took away are worthless now.
        let disk = &self.disk;
        self.handles.retain(|_, (ino, _)| disk.kind(*ino).is_some());
        let said = format!(
            "power cut under {}: {} unsynced bytes and {} unsynced names lost",
            words_or_root(&command),
            report.bytes_lost,
            report.names_undone
        );
        tracing::info!("{said}");
        Ok(said)
    }

    fn status(&mut self) -> String {
        let unsynced = self.disk.unsynced();
        let mut status = format!(
            "cuts: {}\nlast cut lost bytes: {}\nlast cut lost names: {}\n\
             unsynced files: {}\nunsynced bytes: {}\nunsynced names: {}\n",
            self.disk.cuts(),
            self.last_cut.bytes_lost,
            self.last_cut.names_undone,
            unsynced.files,
            unsynced.bytes,
            unsynced.names
        );
        for name in self.disk.unsynced_names() {
            status.push_str(&format!("  {}\n", name.display()));
        }
        status
    }
}

fn words_or_root(command: &str) -> &str {
    command.split_whitespace().nth(1).unwrap_or("/")
}

/// Mounts the disk over `backing` at `mountpoint`, served by a thread of its own until the
/// returned session is dropped (which unmounts it).
pub fn mount(backing: &Path, mountpoint: &Path) -> io::Result<fuser::BackgroundSession> {
    let disk = Disk::open(backing)?;
    let options = [
        MountOption::FSName("storectl-lossy".into()),
        MountOption::AllowOther,
        MountOption::DefaultPermissions,
    ];
    fuser::spawn_mount2(LossyFs::new(disk), mountpoint, &options)
}

fn reply_error(e: io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// Answers an operation that returns nothing but whether it worked.
fn answer(reply: ReplyEmpty, result: io::Result<()>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(reply_error(e)),
    }
}

impl Filesystem for LossyFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        if parent == ROOT && name == CONTROL {
            return reply.entry(&TTL, &control_attr(), 0);
        }
        let Some(ino) = self.disk.lookup(parent, name) else {
            return reply.error(libc::ENOENT);
        };
        match self.attr(ino) {
            Ok(attr) => reply.entry(&TTL, &attr, 0),
            Err(e) => reply.error(reply_error(e)),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.attr(ino) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(reply_error(e)),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        if ino == CONTROL_INO {
            return reply.attr(&TTL, &control_attr());
        }
        let result = (|| {
            if let Some(size) = size {
                self.disk.truncate(ino, size)?;
            }
            if let Some(mode) = mode {
                use std::os::unix::fs::PermissionsExt;
                let path = self.disk.path(ino)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))?;
            }
            self.attr(ino)
        })();
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(reply_error(e)),
        }
    }

    fn mkdir(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        match self.make(parent, name, Kind::Dir, mode & !umask) {
            Ok((_, attr)) => reply.entry(&TTL, &attr, 0),
            Err(e) => reply.error(reply_error(e)),
        }
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        answer(reply, self.disk.unlink(parent, name))
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        answer(reply, self.disk.rmdir(parent, name))
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        if flags != 0 {
            // RENAME_NOREPLACE, RENAME_EXCHANGE: not needed by the store.
            return reply.error(libc::EINVAL);
        }
        answer(reply, self.disk.rename(parent, name, newparent, newname))
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        if ino != CONTROL_INO && self.disk.kind(ino) != Some(Kind::File) {
            return reply.error(libc::ENOENT);
        }
        let fh = self.handle(ino, flags & libc::O_APPEND != 0);
        reply.opened(fh, FOPEN_DIRECT_IO);
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.make(parent, name, Kind::File, mode & !umask) {
            Ok((ino, attr)) => {
                let fh = self.handle(ino, flags & libc::O_APPEND != 0);
                reply.created(&TTL, &attr, 0, fh, FOPEN_DIRECT_IO);
            }
            Err(e) => reply.error(reply_error(e)),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        if ino == CONTROL_INO {
            let status = self.status();
            let bytes = status.as_bytes();
            let start = (offset as usize).min(bytes.len());
            let end = (start + size as usize).min(bytes.len());
            return reply.data(&bytes[start..end]);
        }
        match self.disk.read(ino, offset as u64, size as usize) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(reply_error(e)),
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        if ino == CONTROL_INO {
            return match self.control(data) {
                Ok(_) => reply.written(data.len() as u32),
                Err(e) => reply.error(reply_error(e)),
            };
        }
        let Some(&(_, append)) = self.handles.get(&fh) else {
            return reply.error(libc::EBADF);
        };
        let at = (!append).then_some(offset as u64);
        match self.disk.write(ino, at, data) {
            Ok(_) => reply.written(data.len() as u32),
            Err(e) => reply.error(reply_error(e)),
        }
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lock: u64, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if self.handles.remove(&fh).is_some() {
            if let Err(e) = self.disk.released(ino) {
                return reply.error(reply_error(e));
            }
        }
        reply.ok();
    }

    fn fsync(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _data: bool, reply: ReplyEmpty) {
        if ino == CONTROL_INO {
            return reply.ok();
        }
        answer(reply, self.disk.sync_file(ino))
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match self.disk.kind(ino) {
            Some(Kind::Dir) => reply.opened(0, 0),
            Some(Kind::File) => reply.error(libc::ENOTDIR),
            None => reply.error(libc::ENOENT),
        }
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        if self.disk.kind(ino) != Some(Kind::Dir) {
            return reply.error(libc::ENOTDIR);
        }
        let mut entries = vec![
            (ino, FileType::Directory, ".".into()),
            (ino, FileType::Directory, "..".into()),
        ];
        entries.extend(
            self.disk
                .list(ino)
                .into_iter()
                .map(|(name, child, kind)| (child, file_type(kind), name)),
        );
        for (i, (child, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(child, (i + 1) as i64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _data: bool, reply: ReplyEmpty) {
        answer(reply, self.disk.sync_dir(ino))
    }

    fn getxattr(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _name: &OsStr,
        _size: u32,
        reply: fuser::ReplyXattr,
    ) {
        // No extended attributes: none is asked for by the store.
        reply.error(libc::ENODATA);
    }

    fn listxattr(&mut self, _req: &Request<'_>, _ino: u64, size: u32, reply: fuser::ReplyXattr) {
        if size == 0 {
            reply.size(0);
        } else {
            reply.data(&[]);
        }
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        match self.disk.path(ROOT).and_then(|p| statvfs(&p)) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(reply_error(e)),
        }
    }
}

fn statvfs(path: &Path) -> io::Result<libc::statvfs> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid C string and `stat` is written by statvfs before it is read.
    if unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs succeeded, so it filled `stat`.
    Ok(unsafe { stat.assume_init() })
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
    }
}

fn to_attr(ino: u64, meta: &std::fs::Metadata) -> FileAttr {
    use std::os::unix::fs::MetadataExt;
    let time = |secs: i64, nanos: i64| {
        UNIX_EPOCH + Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32)
    };
    FileAttr {
        ino,
        size: meta.len(),
        blocks: meta.blocks(),
        atime: time(meta.atime(), meta.atime_nsec()),
        mtime: time(meta.mtime(), meta.mtime_nsec()),
        ctime: time(meta.ctime(), meta.ctime_nsec()),
        crtime: time(meta.ctime(), meta.ctime_nsec()),
        kind: if meta.is_dir() {
            FileType::Directory
        } else {
            FileType::RegularFile
        },
        perm: (meta.mode() & 0o7777) as u16,
        nlink: if meta.is_dir() { 2 } else { 1 },
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: 0,
        blksize: meta.blksize() as u32,
        flags: 0,
    }
}

fn control_attr() -> FileAttr {
    FileAttr {
        ino: CONTROL_INO,
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0o600,
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}
