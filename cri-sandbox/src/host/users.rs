//! The image rootfs user database: [`RootfsUsers`] (a `cri_spec::UserLookup`
//! over `/etc/passwd` and `/etc/group` read beforehand), the
//! [`RootfsUserDb`] seam that reads them from a rootfs given as containerd
//! mounts, and [`LinuxRootfsUserDb`], which mounts that rootfs read-only
//! in a temp dir the way containerd's `WithUser` does
//! (`mount.WithReadonlyTempMount`).

use std::io::{self, ErrorKind};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use cri_api::containerd::Mount;
use cri_spec::UserLookup;
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

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
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.base_dir)?;
        let dir = self
            .base_dir
            .join(format!("users-{:016x}", rand::random::<u64>()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let mounted = mount_all_readonly(mounts, &dir);
        let read = mounted.and_then(|()| RootfsUsers::read_from(&dir));
        let unmounted = unmount_all(&dir);
        let removed = std::fs::remove_dir(&dir);
        let users = read?;
        unmounted?;
        removed?;
        Ok(users)
    }
}

/// Mounts every mount onto `target` (containerd `mount.All`), read-only.
fn mount_all_readonly(mounts: &[Mount], target: &Path) -> io::Result<()> {
    for m in mounts {
        mount_readonly(m, target)?;
    }
    Ok(())
}

/// The flags and data of `options`, forced read-only; an overlay keeps
/// its upper dir as the top lower dir (containerd `readonlyOverlay`).
fn readonly_options(kind: &str, options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::MS_RDONLY;
    let mut data: Vec<String> = Vec::new();
    let mut upper = None;
    for opt in options {
        match opt.as_str() {
            "ro" | "rw" => {}
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            o if kind == "overlay" && o.starts_with("upperdir=") => {
                upper = o.strip_prefix("upperdir=").map(str::to_owned)
            }
            o if kind == "overlay" && o.starts_with("workdir=") => {}
            o => data.push(o.to_owned()),
        }
    }
    if let Some(upper) = upper {
        for d in data.iter_mut() {
            if let Some(lower) = d.strip_prefix("lowerdir=") {
                *d = format!("lowerdir={upper}:{lower}");
            }
        }
        if !data.iter().any(|d| d.starts_with("lowerdir=")) {
            data.push(format!("lowerdir={upper}"));
        }
    }
    (flags, data.join(","))
}

fn mount_readonly(m: &Mount, target: &Path) -> io::Result<()> {
    let (flags, data) = readonly_options(&m.kind, &m.options);
    let fstype = if flags.contains(MsFlags::MS_BIND) {
        None
    } else {
        Some(m.kind.as_str())
    };
    let data = (!data.is_empty()).then_some(data.as_str());
    mount(Some(m.source.as_str()), target, fstype, flags, data).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!(
                "mount {} ({}) read-only at {}: {e}",
                m.source,
                m.kind,
                target.display()
            ),
        )
    })?;
    if flags.contains(MsFlags::MS_BIND) {
        // A bind mount ignores MS_RDONLY until remounted.
        mount(
            None::<&str>,
            target,
            None::<&str>,
            flags | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .map_err(io::Error::from)?;
    }
    Ok(())
}

/// Unmounts `target` until it is no longer a mount point.
fn unmount_all(target: &Path) -> io::Result<()> {
    for _ in 0..16 {
        match umount2(target, MntFlags::empty()) {
            Ok(()) => continue,
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EBUSY) => return umount2(target, MntFlags::MNT_DETACH).map_err(Into::into),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
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

    fn check_options(kind: &str, options: &[&str], flags: MsFlags, data: &str) {
        let options: Vec<String> = options.iter().map(|s| s.to_string()).collect();
        assert_eq!(readonly_options(kind, &options), (flags, data.to_owned()));
    }

    #[test]
    fn options_become_read_only() {
        check_options(
            "bind",
            &["rbind", "rw"],
            MsFlags::MS_RDONLY | MsFlags::MS_BIND | MsFlags::MS_REC,
            "",
        );
        check_options(
            "overlay",
            &[
                "index=off",
                "workdir=/s/2/work",
                "upperdir=/s/2/fs",
                "lowerdir=/s/1/fs",
            ],
            MsFlags::MS_RDONLY,
            "index=off,lowerdir=/s/2/fs:/s/1/fs",
        );
        check_options(
            "overlay",
            &["workdir=/w", "upperdir=/u"],
            MsFlags::MS_RDONLY,
            "lowerdir=/u",
        );
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
