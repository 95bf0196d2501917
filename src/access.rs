//! Why a user may not read or write a file a service needs, in words: the user the process runs
//! as, the file or directory on the way whose permission bits refuse it, and the command that
//! would let it. The permission bits are read, not guessed, so the message also holds for a
//! stranger's uid in the tests (root may read anything).

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What a service needs of a file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read the file.
    Read,
    /// Create, replace and append to files in the directory (made if missing).
    Write,
}

/// The user a process runs as: its effective uid and groups, and its name if it has one.
#[derive(Debug)]
struct User {
    uid: u32,
    gids: Vec<u32>,
    name: Option<String>,
}

impl User {
    fn current() -> Self {
        // SAFETY: geteuid and getegid cannot fail; getgroups writes at most `groups.len()` ids.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let mut groups = [0; 64];
        let count = unsafe { libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr()) };
        let mut gids = vec![gid];
        gids.extend(&groups[..count.max(0) as usize]);
        User {
            uid,
            gids,
            name: user_name(uid),
        }
    }

    /// Which of the owner, group and other permission bits of `meta` apply to this user, and
    /// whether they grant every bit of `need` (4 read, 2 write, 1 search).
    fn may(&self, meta: &Metadata, need: u32) -> (bool, Class) {
        let (bits, class) = if meta.uid() == self.uid {
            (meta.mode() >> 6, Class::Owner)
        } else if self.gids.contains(&meta.gid()) {
            (meta.mode() >> 3, Class::Group)
        } else {
            (meta.mode(), Class::Other)
        };
        (bits & need == need, class)
    }
}

impl std::fmt::Display for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "uid {} ({name})", self.uid),
            None => write!(f, "uid {}", self.uid),
        }
    }
}

/// Whose permission bits of a file apply to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Owner,
    Group,
    Other,
}

impl Class {
    /// The users the class's bits are for.
    fn who(self) -> &'static str {
        match self {
            Class::Owner => "its owner",
            Class::Group => "its group",
            Class::Other => "other users",
        }
    }

    /// The user's relation to the file, and the file's permission for the class.
    fn describe(self, adjective: &str) -> String {
        match self {
            Class::Owner => format!("its owner, and it is not {adjective} by its owner"),
            Class::Group => format!("in its group, and it is not {adjective} by its group"),
            Class::Other => format!("not its owner, and it is not {adjective} by others"),
        }
    }
}

/// The name of user `uid` in the system's user database, if it is there.
fn user_name(uid: u32) -> Option<String> {
    let mut buffer = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd is valid (null pointers, zero ids); getpwuid_r fills it with
    // pointers into `buffer`, which outlives their use below, and sets `found` to it or null.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() || entry.pw_name.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// The message of a refused `access` to `path` by `user`, with `cause` when the modes do not
/// explain the refusal (root, ACLs, a security module).
fn denied_to(path: &Path, access: Access, user: &User, cause: &std::io::Error) -> String {
    let verb = match access {
        Access::Read => "read",
        Access::Write => "write in",
    };
    let head = format!("cannot {verb} {} as {user}", path.display());
    match refusal(path, access, user) {
        Some(why) => format!("{head}{why}"),
        None => format!("{head}: {cause}"),
    }
}

/// Why the modes refuse `user` the `access` to `path`, and what would let them: the first
/// directory on the way that does not let the user in, or else the path itself (or, for a
/// directory to make, the directory to make it in).
fn refusal(path: &Path, access: Access, user: &User) -> Option<String> {
    if user.uid == 0 {
        return None;
    }
    let path = std::path::absolute(path).ok()?;
    let deepest = match closed_directory_on_the_way(&path, user) {
        Ok(deepest) => deepest,
        Err(refused) => return Some(refused),
    };
    let path_shown = path.display();
    let Ok(meta) = std::fs::metadata(&path) else {
        // A data directory to make, in the deepest directory that exists.
        let (parent, meta) = deepest.filter(|_| access == Access::Write)?;
        let (may, class) = user.may(&meta, 3);
        return (!may).then(|| {
            format!(
                ": it does not exist, and {} ({}) does not let {} make it: make it for the service's user (install -d -o {} {path_shown})",
                parent.display(),
                mode(&meta),
                class.who(),
                user.uid,
            )
        });
    };
    let (need, adjective) = match access {
        Access::Read => (4, "readable"),
        Access::Write => (3, "writable"),
    };
    let (may, class) = user.may(&meta, need);
    if may {
        return None;
    }
    let fix = match (access, class) {
        (Access::Read, _) => "make it readable by the service's user (chmod 644".into(),
        (Access::Write, Class::Owner) => "let its owner write in it (chmod u+rwx".into(),
        (Access::Write, _) => format!("make the service's user its owner (chown -R {}", user.uid),
    };
    Some(format!(
        " ({}: {}): {fix} {path_shown})",
        class.describe(adjective),
        mode(&meta)
    ))
}

/// `mode 755, owner uid 1000`.
fn mode(meta: &Metadata) -> String {
    format!(
        "mode {:03o}, owner uid {}",
        meta.mode() & 0o7777,
        meta.uid()
    )
}

/// Walks the directories above `path` from the root: the first that does not let `user` in is
/// the refusal (its message); otherwise the deepest that exists, with its metadata.
fn closed_directory_on_the_way<'p>(
    path: &'p Path,
    user: &User,
) -> Result<Option<(&'p Path, Metadata)>, String> {
    let mut deepest = None;
    for dir in path
        .ancestors()
        .skip(1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let Ok(meta) = std::fs::metadata(dir) else {
            break;
        };
        let (may, class) = user.may(&meta, 1);
        if !may {
            return Err(format!(
                ": the directory {dir} ({}) does not let {} in: make it reachable by the service's user (chmod 755 {dir})",
                mode(&meta),
                class.who(),
                dir = dir.display(),
            ));
        }
        deepest = Some((dir, meta));
    }
    Ok(deepest)
}

/// The message of a refused `access` to `path` by this process, with `cause` when the
/// permission bits do not explain the refusal (root, ACLs, a security module).
pub fn denied(path: &Path, access: Access, cause: &std::io::Error) -> String {
    denied_to(path, access, &User::current(), cause)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    /// A user who owns nothing the tests make and is in none of their groups, whoever runs them.
    fn stranger() -> User {
        let uid = if User::current().uid == 61234 {
            61235
        } else {
            61234
        };
        User {
            uid,
            gids: vec![uid],
            name: None,
        }
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A directory that everyone may enter (a temporary one is its owner's only), with `etc`
    /// in it made with `mode`, and `etc/cluster.toml` with `file_mode`.
    fn cluster_file(mode: u32, file_mode: u32) -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        chmod(root.path(), 0o755);
        let etc = root.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        let file = etc.join("cluster.toml");
        std::fs::write(&file, "[catalog]\n").unwrap();
        chmod(&file, file_mode);
        chmod(&etc, mode);
        (root, file)
    }

    fn refused(path: &Path, access: Access) -> String {
        let cause = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        denied_to(path, access, &stranger(), &cause)
    }

    fn owner(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().uid()
    }

    #[test]
    fn a_cluster_file_others_may_not_read_is_named_with_the_user_and_the_fix() {
        let (_root, file) = cluster_file(0o755, 0o600);
        let f = file.display();
        assert_eq!(
            refused(&file, Access::Read),
            format!(
                "cannot read {f} as uid {} (not its owner, and it is not readable by others: mode 600, owner uid {}): make it readable by the service's user (chmod 644 {f})",
                stranger().uid,
                owner(&file)
            )
        );
    }

    #[test]
    fn a_directory_others_may_not_enter_is_named_instead_of_the_file_in_it() {
        let (_root, file) = cluster_file(0o700, 0o644);
        let etc = file.parent().unwrap();
        assert_eq!(
            refused(&file, Access::Read),
            format!(
                "cannot read {} as uid {}: the directory {etc} (mode 700, owner uid {}) does not let other users in: make it reachable by the service's user (chmod 755 {etc})",
                file.display(),
                stranger().uid,
                owner(etc),
                etc = etc.display(),
            )
        );
    }

    #[test]
    fn a_data_directory_of_another_user_is_to_be_given_to_the_services_user() {
        let (_root, file) = cluster_file(0o755, 0o644);
        let dir = file.parent().unwrap();
        let message = refused(dir, Access::Write);
        assert!(
            message.starts_with(&format!("cannot write in {} as uid 6123", dir.display())),
            "{message}"
        );
        assert!(
            message.contains("not writable by others: mode 755")
                && message.ends_with(&format!("(chown -R {} {})", stranger().uid, dir.display())),
            "{message}"
        );
        let missing = dir.join("storectl-order-1");
        let message = refused(&missing, Access::Write);
        assert!(
            message.ends_with(&format!(
                "it does not exist, and {} (mode 755, owner uid {}) does not let other users make it: make it for the service's user (install -d -o {} {})",
                dir.display(),
                owner(dir),
                stranger().uid,
                missing.display()
            )),
            "{message}"
        );
    }

    #[test]
    fn a_refusal_the_modes_do_not_explain_keeps_its_cause() {
        let (_root, file) = cluster_file(0o755, 0o644);
        assert_eq!(
            refused(&file, Access::Read),
            format!(
                "cannot read {} as uid {}: permission denied",
                file.display(),
                stranger().uid
            )
        );
        let root = User {
            uid: 0,
            gids: vec![0],
            name: Some("root".into()),
        };
        let cause = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(
            denied_to(Path::new("/x"), Access::Read, &root, &cause),
            "cannot read /x as uid 0 (root): permission denied"
        );
    }
}
