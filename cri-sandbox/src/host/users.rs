//! The image rootfs user database: [`RootfsUsers`] (a `cri_spec::UserLookup`
//! over `/etc/passwd` and `/etc/group` read beforehand), the
//! [`RootfsUserDb`] seam that reads them from a rootfs given as containerd
//! mounts, and [`LinuxRootfsUserDb`], which mounts that rootfs read-only
//! in a temp dir the way containerd's `WithUser` does
//! (`mount.WithReadonlyTempMount`).

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use cri_api::containerd::Mount;
use cri_spec::UserLookup;

use super::temp_mount::with_readonly_temp_mount;

/// `/etc/passwd` and `/etc/group` of an image rootfs, read up front so
/// the (synchronous) spec builders can consult them. `None` = the file is
/// not in the image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootfsUsers {
    pub passwd: Option<String>,
    pub group: Option<String>,
}

impl RootfsUsers {
    /// An image without either file.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Reads both files below `rootfs`.
    pub fn read_from(rootfs: &Path) -> io::Result<Self> {
        Ok(Self {
            passwd: read_optional(&rootfs.join("etc/passwd"))?,
            group: read_optional(&rootfs.join("etc/group"))?,
        })
    }
}

fn read_optional(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl UserLookup for RootfsUsers {
    fn read_passwd(&self) -> io::Result<Option<String>> {
        Ok(self.passwd.clone())
    }

    fn read_group(&self) -> io::Result<Option<String>> {
        Ok(self.group.clone())
    }
}

/// Whether resolving `user` (`uid`, `name`, `uid:gid`, `name:group`...)
/// needs the image's user database: everything but empty and `uid:gid`.
pub fn needs_user_db(user: &str) -> bool {
    let numeric = |s: &str| s.parse::<i64>().is_ok();
    match user.split(':').collect::<Vec<_>>().as_slice() {
        [""] => false,
        [u, g] => !(numeric(u) && numeric(g)),
        _ => true,
    }
}

/// Reads the user database of a rootfs given as containerd mounts.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait RootfsUserDb: Send + Sync {
    fn load(&self, mounts: &[Mount]) -> io::Result<RootfsUsers>;
}

/// Mounts the rootfs read-only under a fresh dir in `base_dir`, reads the
/// files, unmounts and removes the dir. Needs CAP_SYS_ADMIN.
#[derive(Clone, Debug)]
pub struct LinuxRootfsUserDb {
    base_dir: PathBuf,
}

impl LinuxRootfsUserDb {
    pub fn new(base_dir: impl Into<PathBuf>) -> Self {
        Self {
            base_dir: base_dir.into(),
        }
    }
}

impl RootfsUserDb for LinuxRootfsUserDb {
    fn load(&self, mounts: &[Mount]) -> io::Result<RootfsUsers> {
        with_readonly_temp_mount(mounts, &self.base_dir, RootfsUsers::read_from)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn check_db(user: &str, expected: bool) {
        assert_eq!(needs_user_db(user), expected, "{user:?}");
    }

    #[test]
    fn which_users_need_the_database() {
        check_db("", false);
        check_db("65535:65535", false);
        check_db("0:0", false);
        check_db("1000", true);
        check_db("nobody", true);
        check_db("1000:video", true);
        check_db("www:33", true);
        check_db("a:b:c", true);
    }

    #[test]
    fn reads_files_and_tolerates_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            RootfsUsers::read_from(dir.path()).unwrap(),
            RootfsUsers::empty()
        );
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
        let users = RootfsUsers::read_from(dir.path()).unwrap();
        assert_eq!(
            users.read_passwd().unwrap().as_deref(),
            Some("root:x:0:0::/:/bin/sh\n")
        );
        assert_eq!(users.read_group().unwrap(), None);
    }

    #[test]
    fn linux_db_reads_through_a_bind_mount() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("etc")).unwrap();
        std::fs::write(src.path().join("etc/group"), "video:x:44:\n").unwrap();
        let base = tempfile::tempdir().unwrap();
        let db = LinuxRootfsUserDb::new(base.path());
        let mounts = vec![Mount {
            kind: "bind".into(),
            source: src.path().display().to_string(),
            target: String::new(),
            options: vec!["rbind".into(), "ro".into()],
        }];
        let users = db.load(&mounts).unwrap();
        assert_eq!(users.group.as_deref(), Some("video:x:44:\n"));
        assert_eq!(users.passwd, None);
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
    }
}
